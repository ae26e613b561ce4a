"""The course's real exercises: release is fresh and clean, and the grader gives the reference
solution full marks and the student version none.

Grading runs real notebooks (torch, the Lite0 backbone): every exercise is graded (~15-60 s each on
a 2-core CPU); ``COURSE_SKIP_SLOW=1`` keeps only the cheapest one for a quick local run.
"""
from __future__ import annotations

import ast
import csv
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from course_utils.grading import cli
from course_utils.grading.spec import HINT_PREFIX, SOLUTION_BEGIN, SOLUTION_END, load_exercise

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"
NAMES = ["ex01_freeze_and_probe", "ex02_finetune_bn", "ex03_fix_preprocessing", "ex04_lp_ft_ood",
         "ex05_choose_on_validation", "ex06_lora_by_hand", "ex07_detect_negative_transfer"]
CHEAPEST = "ex01_freeze_and_probe"
SLOW = os.environ.get("COURSE_SKIP_SLOW", "").strip().lower() not in {"1", "true", "yes", "on"}
slow = pytest.mark.skipif(not SLOW, reason="grades a real exercise end to end (~1 min); COURSE_SKIP_SLOW=1 is set")


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


def _grade(name: str, notebooks: dict[str, Path], tmp_path: Path) -> dict[tuple[str, str], dict]:
    subs = tmp_path / "submissions"
    subs.mkdir()
    for student, path in notebooks.items():
        shutil.copyfile(path, subs / f"{student}.ipynb")
    out = tmp_path / "out"
    code = cli.main([name, str(subs), "--out", str(out), "--fast", "--jobs", "2", "--timeout", "400"])
    assert code == 0
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        return {(row["student"], row["question"]): row for row in csv.DictReader(fh)}


def _assert_full_marks(rows, student, name):
    questions = load_exercise(name).questions
    for q, points in questions.items():
        row = rows[(student, q)]
        assert row["status"] == "ok" and float(row["points"]) == points, f"{name} {q}: {row}"


def test_cheapest_exercise_grades_solution_full_and_release_zero(tmp_path):
    rows = _grade(CHEAPEST, {"solution": EXERCISES / "source" / f"{CHEAPEST}.ipynb",
                             "release": EXERCISES / "release" / f"{CHEAPEST}.ipynb"}, tmp_path)
    _assert_full_marks(rows, "solution", CHEAPEST)
    for q in load_exercise(CHEAPEST).questions:
        row = rows[("release", q)]
        assert float(row["points"]) == 0 and row["status"] == "error"
        assert "NotImplementedError" in row["detail"], row["detail"]  # says which stub stopped the run


@slow
@pytest.mark.parametrize("name", [n for n in NAMES if n != CHEAPEST])
def test_other_exercises_grade_solution_full_marks(name, tmp_path):
    rows = _grade(name, {"solution": EXERCISES / "source" / f"{name}.ipynb"}, tmp_path)
    _assert_full_marks(rows, "solution", name)
