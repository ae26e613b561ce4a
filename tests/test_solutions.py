"""Worked solutions: one companion notebook per lesson, one solution per exercise, one answer per
questionnaire question, in the shape of a course notebook. (They run in FAST under nbval with the
lessons: `pytest notebooks` collects notebooks/solutions/ too.)"""
import re
from pathlib import Path

import nbformat
import pytest
from course_utils.tooling.notebooks import lessons, solutions

ROOT = Path(__file__).resolve().parent.parent
LESSONS = lessons(ROOT)
SOLUTIONS = ROOT / "notebooks" / "solutions"


def solution_of(lesson: Path) -> Path:
    return SOLUTIONS / f"{lesson.stem}_solutions.ipynb"


def _section(cells, heading: str) -> str:
    found = [c.source for c in cells if c.cell_type == "markdown" and c.source.lstrip().startswith(heading)]
    assert len(found) == 1, f"expected one markdown cell starting {heading!r}, found {len(found)}"
    return found[0]


def numbered(text: str) -> list[str]:
    """The top-level numbered items of a Markdown list ('1. ...' at the start of a line)."""
    return re.findall(r"^(\d+)\. ", text, flags=re.M)


def counts(lesson: Path) -> dict:
    lesson_cells = nbformat.read(lesson, as_version=4).cells
    cells = nbformat.read(solution_of(lesson), as_version=4).cells
    headings = [c.source for c in cells if c.cell_type == "markdown" and c.source.startswith("## Exercise ")]
    return {"exercises": len(numbered(_section(lesson_cells, "## Exercises"))),
            "solutions": len(headings),
            "questions": len(numbered(_section(lesson_cells, "## Questionnaire"))),
            "answers": len(numbered(_section(cells, "## Questionnaire answers"))),
            "solution numbers": [int(re.match(r"## Exercise (\d+)", h).group(1)) for h in headings]}


def test_every_lesson_has_its_solutions_and_nothing_else_is_there():
    assert LESSONS
    assert sorted(SOLUTIONS.glob("*.ipynb")) == sorted(solution_of(p) for p in LESSONS)


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name)
def test_one_solution_per_exercise_and_one_answer_per_question(lesson):
    n = counts(lesson)
    assert n["exercises"] >= 2 and n["solutions"] == n["exercises"], n
    assert n["solution numbers"] == list(range(1, n["exercises"] + 1)), n
    assert n["questions"] >= 5 and n["answers"] == n["questions"], n


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name)
def test_solution_notebook_shape(lesson):
    path = solution_of(lesson)
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].cell_type == "markdown" and f"../{lesson.name}" in cells[0].source, "link back to the lesson"
    assert "runtime" in cells[0].source.lower()
    assert "parameters" in cells[1].metadata.get("tags", []) and "FAST" in cells[1].source
    code = [c for c in cells if c.cell_type == "code"]  # outputs, prose, parameters: test_notebook_shape.py
    assert any("from course_utils" in c.source for c in code)
    results = [c for c in code if "result" in c.metadata.get("tags", [])]
    assert len(results) >= counts(lesson)["exercises"], "each exercise ends with a result cell from its run"
    # numbers in the text come from the run: no decimal typed into a markdown cell of a solution
    for cell in cells[4:]:
        if cell.cell_type == "markdown":
            typed = re.findall(r"(?<![\w.])0\.\d{2,}", cell.source)
            assert not typed, f"a typed measurement {typed} in markdown: format it from the run with say(f'...')"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name)
def test_the_lesson_links_its_solutions(lesson):
    exercises = _section(nbformat.read(lesson, as_version=4).cells, "## Exercises")
    assert f"solutions/{solution_of(lesson).name}" in exercises
