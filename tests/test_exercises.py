"""The course's real exercises: release is fresh and clean, its metadata carries what a self-check
needs, and the grader, with a kit made by `course-grade kit` (a fresh secret), gives the reference
solution full marks and the student version none.

Grading runs real notebooks (torch, the Lite0 backbone): every exercise is graded once per test
session, in the shared ``real_batches`` (grading_fixtures/batches.py; ~2 min on a 2-core CPU).
"""
from __future__ import annotations

import ast
import csv
from pathlib import Path

import nbformat
import pytest

from course_utils.grading import cli
from course_utils.grading.guide import read_release_guide
from course_utils.grading.spec import HINT_PREFIX, SOLUTION_BEGIN, SOLUTION_END, load_exercise

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"
NAMES = ["ex01_freeze_and_probe", "ex02_finetune_bn", "ex03_fix_preprocessing", "ex04_lp_ft_ood",
         "ex05_choose_on_validation", "ex06_lora_by_hand", "ex07_detect_negative_transfer"]


def _read(path: Path):
    return nbformat.read(str(path), as_version=4)


def _solution_lines(source: str) -> list[str]:
    """The code lines inside BEGIN/END SOLUTION blocks (markers and hints excluded)."""
    lines, inside = [], False
    for line in source.splitlines():
        marker = line.strip()
        if marker.startswith(SOLUTION_BEGIN):
            inside = True
        elif marker.startswith(SOLUTION_END):
            inside = False
        elif inside and not marker.startswith(HINT_PREFIX) and marker:
            lines.append(marker)
    return lines


def test_every_exercise_has_its_three_files():
    assert sorted(p.stem for p in (EXERCISES / "source").glob("*.ipynb")) == NAMES
    for name in NAMES:
        exercise = load_exercise(name)  # parses the hidden tests: QUESTIONS, collect, check_* present
        assert exercise.max_points >= 6 and all(q.startswith("q") for q in exercise.questions)
        assert (EXERCISES / "release" / f"{name}.ipynb").is_file()


def test_release_is_fresh(capsys):
    assert cli.main(["release", "--check"]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("name", NAMES)
def test_release_has_no_solutions_and_no_hidden_tests(name):
    source, release = _read(EXERCISES / "source" / f"{name}.ipynb"), _read(EXERCISES / "release" / f"{name}.ipynb")
    assert len(source.cells) == len(release.cells)
    text = nbformat.writes(release)
    for marker in (SOLUTION_BEGIN, SOLUTION_END, HINT_PREFIX, "def collect(", "def check_q", "QUESTIONS ="):
        assert marker not in text, f"{name}: release contains {marker!r}"
    hidden = (EXERCISES / "grading" / f"{name}.py").read_text(encoding="utf-8")
    outside = "\n".join(c.source for c in source.cells if SOLUTION_BEGIN not in c.source)
    for s_cell, r_cell in zip(source.cells, release.cells):
        if r_cell.cell_type == "code":
            assert not r_cell.outputs and r_cell.execution_count is None
            ast.parse(r_cell.source)  # every release cell is valid Python
        if SOLUTION_BEGIN not in s_cell.source:
            assert r_cell.source == s_cell.source
            continue
        stubs = r_cell.source.count("raise NotImplementedError(")
        assert stubs == s_cell.source.count(SOLUTION_BEGIN), f"{name}: a solution block lost its stub"
        for line in _solution_lines(s_cell.source):
            # a solution line may stay only if it is generic (it also appears outside the solution blocks)
            if len(line) > 12 and line not in outside:
                assert line not in r_cell.source, f"{name}: solution line leaked into release: {line!r}"
    for line in hidden.splitlines():
        if len(line.strip()) > 30 and line.strip() not in outside:
            assert line.strip() not in text, f"{name}: hidden-test line in release: {line.strip()!r}"


@pytest.mark.parametrize("name", NAMES)
def test_source_format(name):
    nb = _read(EXERCISES / "source" / f"{name}.ipynb")
    assert nb.cells[0].cell_type == "markdown" and "points" in nb.cells[0].source
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and all(f"{k} =" in params[0].source for k in ("FAST", "SEED", "DEVICE"))
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit sources without outputs"
    questions = load_exercise(name).questions
    for q, points in questions.items():  # the instructions state each question's points
        label = q.split("_", 1)[0].upper()
        assert f"| {label} |" in nb.cells[0].source and f"| {points} |" in nb.cells[0].source


@pytest.mark.parametrize("name", NAMES)
def test_release_metadata_is_all_a_self_check_needs(name):
    """The release notebook alone tells the questions, their points (those the hidden tests
    grade), a description and a hint for each, the names the grader reads and the time limit."""
    guide = read_release_guide(EXERCISES / "release" / f"{name}.ipynb")
    assert guide.exercise == name and guide.time_limit_s == 600
    assert guide.points == load_exercise(name).questions
    defined = _defined(EXERCISES / "source" / f"{name}.ipynb")
    for q in guide.questions.values():
        assert q.label == q.name.split("_", 1)[0].upper() and q.description and q.hint, q
        assert q.reads and set(q.reads) <= defined, q


def _defined(path: Path) -> set:
    from course_utils.grading.guide import defined_names
    return defined_names(_read(path))


def _rows(out: Path) -> dict[tuple[str, str], dict]:
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        return {(row["student"], row["question"]): row for row in csv.DictReader(fh)}


@pytest.mark.parametrize("name", NAMES)
def test_the_solution_gets_full_marks_with_a_fresh_kit(real_batches, name):
    rows = _rows(real_batches["outs"][name])
    for q, points in load_exercise(name).questions.items():
        row = rows[("solution", q)]
        assert row["status"] == "ok" and float(row["points"]) == points, f"{name} {q}: {row}"


def test_the_release_gets_nothing_and_says_why(real_batches):
    rows = _rows(real_batches["outs"]["ex01_freeze_and_probe"])
    for q in load_exercise("ex01_freeze_and_probe").questions:
        row = rows[("release", q)]
        assert float(row["points"]) == 0 and row["status"] == "error"
        assert "NotImplementedError" in row["detail"], row["detail"]  # says which stub stopped the run
