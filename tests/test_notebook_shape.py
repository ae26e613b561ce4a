"""The shape docs/NOTEBOOKS.md asks of every course notebook, checked without running it."""
import ast
import json
import re
from pathlib import Path

import nbformat
import pytest
from course_utils.tooling.notebooks import lessons, solutions

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = lessons(ROOT)
# the worked solutions follow the same rules for prose, outputs, parameters and choosing on validation
WITH_SOLUTIONS = NOTEBOOKS + solutions(ROOT)


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _src(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_course_has_notebooks():
    assert NOTEBOOKS, "notebooks/ has no NN_name.ipynb files"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_shape(path):
    cells = _cells(path)
    first = _src(cells[0])
    assert cells[0]["cell_type"] == "markdown", "first cell must be markdown (objectives, prerequisites, runtime)"
    for word in ("Objectives", "Prerequisites", "Runtime"):
        assert word.lower() in first.lower(), f"first cell lacks a '{word}' part"
    assert first.startswith("[![Open In Colab]"), "first line: the Colab badge (run `course colab`)"
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell must be tagged 'parameters' for papermill"
    assert params[0] is cells[1], "the parameters cell comes second"
    assert "FAST" in _src(params[0]) and "SEED" in _src(params[0])
    assert "colab-setup" in cells[2].get("metadata", {}).get("tags", []), \
        "third: the Colab setup cell (run `course colab`; tests/test_colab.py checks its content)"
    code = [_src(c) for c in cells if c["cell_type"] == "code"]
    assert not any("sys.path" in s for s in code), "import the installed course_utils; no sys.path edits"
    assert any("from course_utils" in s for s in code)
    markdown = "\n".join(_src(c) for c in cells if c["cell_type"] == "markdown").lower()
    assert "questionnaire" in markdown, "end with a questionnaire (a '## Questionnaire' section)"
    assert "exercises" in markdown and "predict first" in markdown
    assert any("transfer_note(" in s for s in code), "fill the five-field transfer note from the run"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_transfer_note_has_five_fields(path):
    """Every keyword of notes.transfer_note is passed (the call fails on an empty field at run time)."""
    from course_utils.notes import TRANSFER_NOTE_FIELDS

    calls = [s[s.index("transfer_note("):] for s in map(_src, _cells(path)) if "transfer_note(" in s]
    assert calls
    for field in TRANSFER_NOTE_FIELDS:
        assert all(f"{field}=" in call for call in calls), f"transfer note lacks {field}="


@pytest.mark.parametrize("path", WITH_SOLUTIONS, ids=lambda p: p.name)
def test_prose_cells_are_collapsed(path):
    """Cells that render generated text keep their source collapsed, in JupyterLab and on Colab
    (run `course hide-prose`)."""
    from course_utils.tooling.notebooks import is_prose_cell

    for cell in _cells(path):
        if cell["cell_type"] == "code" and is_prose_cell(_src(cell)):
            fix = "(run .venv/bin/course hide-prose notebooks/*.ipynb notebooks/solutions/*.ipynb)"
            assert cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"), \
                f"prose cell not collapsed in JupyterLab: {_src(cell)[:60]!r} {fix}"
            assert cell["metadata"].get("cellView") == "form" and _src(cell).startswith("# @title"), \
                f"prose cell not collapsed on Colab (cellView form + a '# @title' line): {_src(cell)[:60]!r} {fix}"


CHOOSERS = {"argmax", "idxmax", "argmin", "idxmin", "max", "min", "sorted", "nlargest", "nsmallest", "sort_values"}
TEST_NAME = re.compile(r"(^|_)test($|_)|test_acc|^tests?$")


def _code_trees(path):
    """Each code cell of a notebook as (source, ast), IPython magics and shell lines blanked out."""
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            src = _src(cell)
            code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in src.splitlines())
            yield src, ast.parse(code)


def _nodes(path):
    """Every ast node of the notebook's code as (cell source, node, called name or "")."""
    for src, tree in _code_trees(path):
        for node in ast.walk(tree):
            func = getattr(node, "func", None) if isinstance(node, ast.Call) else None
            yield src, node, (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))


def _identifiers(node) -> list[str]:
    """Every name, attribute, keyword and string constant inside ``node``."""
    out = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            out.append(sub.id)
        elif isinstance(sub, ast.Attribute):
            out.append(sub.attr)
        elif isinstance(sub, ast.keyword) and sub.arg:
            out.append(sub.arg)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            out.append(sub.value)
    return out


def _is_prediction(call: ast.Call) -> bool:
    """``logits.argmax(1)`` / ``argmax(dim=1)`` / ``axis=1``: a predicted class per row, not a choice."""
    ones = [a for a in call.args if isinstance(a, ast.Constant) and a.value in (1, -1)]
    keys = [k for k in call.keywords if k.arg in ("dim", "axis") and isinstance(k.value, ast.Constant)
            and k.value.value in (1, -1)]
    return bool(ones or keys)


def choices_reading_test(path) -> list[str]:
    """Selections (argmax, idxmax, max, sorted, ...) whose expression - receiver, arguments, over any
    number of lines - reads something named test. Read as code (ast), not line by line."""
    return [ast.get_source_segment(src, node) or name for src, node, name in _nodes(path)
            if name in CHOOSERS and not _is_prediction(node) and any(TEST_NAME.search(i) for i in _identifiers(node))]


@pytest.mark.parametrize("path", WITH_SOLUTIONS, ids=lambda p: p.name)
def test_nothing_is_chosen_on_test(path):
    """The protocol: choices (argmax, best, idxmax, sorted) are made on validation data."""
    found = choices_reading_test(path)
    assert not found, f"a choice reads the test set: {found[0]!r}; choose on 'val'"


def _one_cell(tmp_path, code: str) -> Path:
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), path)
    return path


def test_the_test_reading_check_sees_a_choice_split_across_lines(tmp_path):
    path = _one_cell(tmp_path, "best = table[\n    'accuracy'\n].where(table.split == 'test'\n).idxmax()\n"
                               "pred = model(test.x).argmax(1)\nlr = max(val_scores, key=val_scores.get)")
    assert len(choices_reading_test(path)) == 1   # the split-line idxmax; not the prediction, not the val choice


HAND_VERDICT_CALLS = {"verdict", "margin_and_spread", "winners"}
DIFFERENCE = re.compile(r"margin|diff|gap|gain|lead|delta", re.I)
NOISE = re.compile(r"std|spread|(^|_)se($|_)|sem\b|standard_error|noise", re.I)


def hand_built_verdicts(path) -> list[str]:
    """Verdicts made another way than ``compare``: the old helpers, or a difference compared with a
    spread in code (``abs(margin) > std``)."""
    found = []
    for src, node, name in _nodes(path):
        calls_helper = isinstance(node, ast.Call) and name in HAND_VERDICT_CALLS
        names = _identifiers(node) if isinstance(node, ast.Compare) else []
        if calls_helper or (any(DIFFERENCE.search(n) for n in names) and any(NOISE.search(n) for n in names)):
            found.append(ast.get_source_segment(src, node) or name)
    return found


@pytest.mark.parametrize("path", WITH_SOLUTIONS, ids=lambda p: p.name)
def test_verdict_words_come_from_compare(path):
    """One comparison rule: every verdict word is ``compare(...)``'s, printed with its interval."""
    found = hand_built_verdicts(path)
    assert not found, f"a verdict built by hand: {found[0]!r}; use compare(a_items, b_items) and compared(...)"


def test_the_verdict_check_catches_a_hand_rule(tmp_path):
    path = _one_cell(tmp_path, "word = 'beats' if abs(margin) > seed_std else 'tie'\nok = compare(a, b).word\n"
                               "v = verdict(m, s)")
    assert len(hand_built_verdicts(path)) == 2


@pytest.mark.parametrize("path", WITH_SOLUTIONS, ids=lambda p: p.name)
def test_no_stale_outputs(path):
    """Only cells nbval checks keep outputs in git; everything else is produced by the run."""
    for cell in _cells(path):
        if cell["cell_type"] == "code" and "# NBVAL_CHECK_OUTPUT" not in _src(cell):
            assert not cell.get("outputs"), f"stale outputs in a cell starting {_src(cell)[:60]!r}"


@pytest.mark.parametrize("path", WITH_SOLUTIONS, ids=lambda p: p.name)
def test_checked_cells_carry_a_reference_run(path):
    """nbval compares a checked cell only against a *run* reference: outputs with no
    execution_count fail as 'Unrun reference cell has outputs' (CI stop 28)."""
    for cell in _cells(path):
        if cell["cell_type"] == "code" and "# NBVAL_CHECK_OUTPUT" in _src(cell):
            assert cell.get("outputs"), (f"no reference output in {_src(cell)[:60]!r}; "
                                         "`course strip NOTEBOOK --executed DIR` takes it from an executed copy")
            assert cell.get("execution_count") is not None, \
                f"reference output without an execution_count in {_src(cell)[:60]!r}"


@pytest.mark.parametrize("path", WITH_SOLUTIONS, ids=lambda p: p.name)
def test_papermill_reads_every_parameter(path, caplog):
    """papermill parses the parameters cell line by line; a comment with a second '=' hides
    that line's name from `papermill --help-notebook` and logs 'Unable to parse'."""
    import papermill as pm

    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    names = [line.split("=", 1)[0].strip() for line in cell.source.splitlines()
             if "=" in line and not line.lstrip().startswith("#")]
    with caplog.at_level("WARNING"):
        found = list(pm.inspect_notebook(str(path)))
    assert found == names and "Unable to parse" not in caplog.text, caplog.text


def text_share(paths) -> float:
    """Share of the lessons' code lines that build text: every line of a prose cell (say, transfer_note)
    plus, elsewhere, lines that call say(...) or compared(...)."""
    from course_utils.tooling.notebooks import is_prose_cell

    text = total = 0
    for path in paths:
        for cell in _cells(path):
            if cell["cell_type"] != "code":
                continue
            lines = [line for line in _src(cell).splitlines() if line.strip() and not line.lstrip().startswith("#")]
            total += len(lines)
            text += len(lines) if is_prose_cell(_src(cell)) else sum("say(" in l or "compared(" in l for l in lines)
    return text / max(total, 1)


def test_text_building_stays_a_small_share_of_the_code():
    """By this count 19.0 % of the lessons' code lines built text before issues M and Q added sections
    (the issue's own count, ~22 %, also took in helper lines); new sections must not push it past 22 %:
    recurring sentence shapes belong in notes helpers (compared, transfer_note)."""
    share = text_share(NOTEBOOKS)
    print(f"code lines that build text: {share:.1%}")
    assert share <= 0.22
