"""The shape docs/NOTEBOOKS.md asks of every course notebook, checked without running it."""
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# the worked solutions follow the same rules for prose, outputs, parameters and choosing on validation
WITH_SOLUTIONS = NOTEBOOKS + sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb"))


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
    """Cells that render generated text keep their source collapsed (run `course hide-prose`)."""
    from course_utils.tooling.runner import is_prose_cell

    for cell in _cells(path):
        if cell["cell_type"] == "code" and is_prose_cell(_src(cell)):
            assert cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"), \
                f"prose cell not collapsed: {_src(cell)[:60]!r} (run .venv/bin/course hide-prose notebooks/*.ipynb)"


@pytest.mark.parametrize("path", WITH_SOLUTIONS, ids=lambda p: p.name)
def test_nothing_is_chosen_on_test(path):
    """The protocol: choices (argmax, best, idxmax) are made on validation data. A line that picks
    a best value must not mention a test set, so a selection on test cannot hide in plain sight."""
    import re

    choosing = re.compile(r"\b(argmax|idxmax|max\(|best_|\.best|choose|chosen|pick)")
    for cell in _cells(path):
        if cell["cell_type"] != "code":
            continue
        for line in _src(cell).splitlines():
            code = line.split("#", 1)[0]
            if choosing.search(code) and re.search(r"\btest\b|_test\b|test_acc", code) and "argmax(1)" not in code:
                raise AssertionError(f"a choice reads the test set: {line.strip()!r}; choose on 'val'")


@pytest.mark.parametrize("path", WITH_SOLUTIONS, ids=lambda p: p.name)
def test_no_stale_outputs(path):
    """Only cells nbval checks keep outputs in git; everything else is produced by the run."""
    for cell in _cells(path):
        if cell["cell_type"] == "code" and "# NBVAL_CHECK_OUTPUT" not in _src(cell):
            assert not cell.get("outputs"), f"stale outputs in a cell starting {_src(cell)[:60]!r}"


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
