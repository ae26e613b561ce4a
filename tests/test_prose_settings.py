"""Sentences true to their parameters: settings that markdown names (epochs, seeds, images per class,
pixels) agree with the parameters cell, and "notebook NN" sends the reader where the topic is taught.
Numbers that come from a run are written by code (say), never typed; this checks the typed ones."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from course_utils.tooling.notebooks import lessons, solutions

ROOT = Path(__file__).resolve().parent.parent
LESSONS = lessons(ROOT)
WITH_SOLUTIONS = LESSONS + solutions(ROOT)

# A typed number right before one of these words names a setting that a constant of the notebook holds.
SETTING = re.compile(r"\b(\d+|a single|one)(?:\s|-)(epochs?|seeds?|(?:training )?(?:images|sentences|views|crops) "
                     r"per class|px)\b", re.I)
FACTS = {"224 px", "28 px"}   # ImageNet's input size and MNIST's native size: facts, not settings
# Where each topic is taught; "notebook NN" next to a topic must point here (the course's order).
TAUGHT_IN = {
    "data-efficiency curve": "01", "learning curve": "01", "freeze pattern": "01",
    "progressive unfreezing": "02", "discriminative": "02", "adaptation ladder": "02",
    "decision matrix": "03", "2×2": "03", "AdaBN": "04", "BatchNorm drift": "04", "preprocessing mismatch": "04",
    "LP-FT": "05", "feature distortion": "05", "LoRA": "06", "BitFit": "06", "visual prompt": "06",
    "negative transfer": "07", "catastrophic forgetting": "08", "MiniLM": "09", "distillation": "10", "DANN": "10",
}


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _src(cell):
    return "".join(cell["source"])


def _constants(path) -> dict:
    """Literal values assigned to UPPER_CASE names in the code (the parameters cell, the settings derived
    from FAST, an exercise's own settings): the settings prose may name. Both branches of
    ``X if FAST else Y`` count."""
    values = {}
    for cell in _cells(path):
        if cell["cell_type"] != "code":
            continue
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in _src(cell).splitlines())
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Assign):
                names = [t for t in node.targets if isinstance(t, ast.Name) and t.id.isupper()]
                for target in names:
                    values.setdefault(target.id, []).extend(_literals(node.value))
    return values


def _literals(node) -> list:
    """Numbers written in an expression (``1 if FAST else 2`` gives both)."""
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, (int, float))]


def _numbers(value) -> set[float]:
    if isinstance(value, bool):
        return set()
    if isinstance(value, (int, float)):
        return {float(value)}
    if isinstance(value, (list, tuple, set)):
        return set().union(*(_numbers(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return _numbers(list(value.values()))
    return set()


def typed_settings_that_disagree(path) -> list[str]:
    allowed = _numbers(list(_constants(path).values()))
    found = []
    for cell in _cells(path):
        if cell["cell_type"] != "markdown" or _src(cell).startswith("## Exercises"):
            continue   # the exercises propose other settings on purpose
        for match in SETTING.finditer(_src(cell)):
            number = match.group(1).lower()
            value = 1.0 if number in ("a single", "one") else float(number)
            if value not in allowed and match.group(0) not in FACTS:
                found.append(match.group(0))
    return found


def misdirected_references(path) -> list[str]:
    """Sentences that send the reader to "notebook NN" for a topic taught in another notebook, or to
    a notebook that does not exist."""
    existing = {p.name[:2] for p in LESSONS}
    found = []
    for cell in _cells(path):
        if cell["cell_type"] != "markdown":
            continue
        for sentence in re.split(r"(?<=[.!?])\s+|[;()\u2014:]", _src(cell)):   # sentences, then clauses
            refs = re.findall(r"\bnotebooks? (\d\d)\b", sentence, re.I)
            for ref in refs:
                if ref not in existing:
                    found.append(f"notebook {ref} does not exist: {sentence.strip()[:80]}")
            if len(refs) != 1:
                continue
            for topic, home in TAUGHT_IN.items():
                if topic.lower() in sentence.lower() and refs[0] != home and home != path.name[:2]:
                    found.append(f"{topic} is taught in notebook {home}, not {refs[0]}: {sentence.strip()[:80]}")
        # the short forms: "the data-efficiency curve (03)" and "03 (data-efficiency curve)"
        text = _src(cell)
        pairs = [(m.group(2), m.group(1)) for m in re.finditer(r"([^,;()\n]{3,60})\((\d\d)\)", text)]
        pairs += [(m.group(1), m.group(2)) for m in re.finditer(r"(?<![\u2013-])\b(\d\d) \(([^)]{3,80})\)", text)]
        for ref, words in pairs:
            for topic, home in TAUGHT_IN.items():
                if re.search(rf"(?<![\w-]){re.escape(topic.lower())}(?![\w-])", words.lower()) and ref != home:
                    found.append(f"{topic} is taught in notebook {home}, not {ref}: {words.strip()[:60]} ({ref})")
    return found


@pytest.mark.parametrize("path", WITH_SOLUTIONS, ids=lambda p: p.name)
def test_settings_named_in_prose_match_the_parameters(path):
    wrong = typed_settings_that_disagree(path)
    assert not wrong, f"markdown names {wrong} but no parameter has that value: build the sentence from the parameter"


@pytest.mark.parametrize("path", WITH_SOLUTIONS, ids=lambda p: p.name)
def test_notebook_references_point_where_the_topic_is_taught(path):
    wrong = misdirected_references(path)
    assert not wrong, wrong[0]


def test_the_checks_catch_a_wrong_epoch_count_and_a_wrong_reference(tmp_path):
    import nbformat

    params = nbformat.v4.new_code_cell("FAST = False\nSEED = 0\nEPOCHS = 4\nSIZES = [5, 20]\nVIEWS = 1 if FAST else 3")
    params.metadata["tags"] = ["parameters"]
    prose = nbformat.v4.new_markdown_cell("Scratch trains 2 epochs (then a single epoch), 20 images per class, "
                                          "3 views per class. Notebook 03 drew the data-efficiency curve. "
                                          "Prerequisites: the data-efficiency curve (03), fine-tuning (02), "
                                          "05 (LP-FT).")
    nb = nbformat.v4.new_notebook(cells=[params, prose])
    path = tmp_path / "05_x.ipynb"
    nbformat.write(nb, path)
    assert typed_settings_that_disagree(path) == ["2 epochs"]   # 1 (a single) and 3 (VIEWS) are constants
    assert len(misdirected_references(path)) == 2   # notebook 03 twice; 02 and 05 are right
