"""End-to-end: grade synthetic submissions of the fixture exercise, one per failure kind.

One batch (module fixture, --jobs 2) runs every kind; the tests below read its outputs. The
submissions are built from the fixture's solution notebook so they follow the exercise as it
changes. Kernels start without torch, so a batch takes seconds per notebook, not minutes.
"""
from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from conftest import leftover_processes
from course_utils.grading import cli
from course_utils.grading.batch import grade_batch
from course_utils.grading.runner import Settings
from course_utils.grading.spec import load_exercise

FIXTURES = Path(__file__).parent / "grading_fixtures" / "exercises"
EXERCISE = "ex01_add"
TIMEOUT = 20
MARKER = "course-grade-test-stray-4f1d"  # in the cmdline of processes a submission spawns
ODD = "Zoë Müller v1.2 (final)"
QUESTIONS = ["q1_add", "q2_weights"]
NO_SELF_CHECK = {5: "pass"}  # a student with a wrong answer deletes the failing self-check

SPAWN_AND_HANG = f"""
import subprocess, sys, time
sleeper = [sys.executable, "-c", "import time; time.sleep(300)", "{MARKER}"]
child = subprocess.Popen(sleeper)  # a direct child of the kernel
# a grandchild that escapes the process tree: its parent exits at once
subprocess.run([sys.executable, "-c",
    "import subprocess, sys; subprocess.Popen(sys.argv[1:], start_new_session=True)", *sleeper])
time.sleep(1)
while True:
    pass
"""

CHEAT_PATCH = """
import builtins, numpy as np, numpy.testing
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.testing.assert_array_equal = lambda *a, **k: None
np.allclose = lambda *a, **k: True
builtins.AssertionError = type("Never", (Exception,), {})
class Anything(float):  # equal to everything, zero distance to anything
    def __eq__(self, other): return True
    def __sub__(self, other): return Anything(0)
    def __rsub__(self, other): return Anything(0)
    def __abs__(self): return 0.0
def add(a, b):
    return Anything(0)
weights = np.zeros(3)
numpy.testing.assert_allclose(add(2, 3), 5)
assert add(2, 3) == 5
"""


def _source_nb():
    return nbformat.read(str(FIXTURES / "source" / f"{EXERCISE}.ipynb"), as_version=4)


def _variant(replace=None, insert=()):
    """The solution notebook with some cells replaced and extra cells inserted (index, code)."""
    nb = _source_nb()
    for index, code in (replace or {}).items():
        nb.cells[index].source = code
    for index, code in sorted(insert, reverse=True):
        nb.cells.insert(index, new_code_cell(code))
    return nb


def _cheat_files(exercises_dir: Path) -> nbformat.NotebookNode:
    hidden = exercises_dir / "grading" / f"{EXERCISE}.py"
    code = f"""
import json, os, pathlib
fake = {{"format": 1, "arrays": [], "answers": {{"add_pairs": [3, 0, 2.75, 1000001]}}}}
for place in [".", "..", "../grader", os.path.expanduser("~")]:
    for name in ["answers.json", "result.json"]:
        try:
            pathlib.Path(place, name).write_text(json.dumps(fake))
        except OSError:
            pass
pathlib.Path("../grader/result.json").write_text('{{"status": "ok", "detail": "x", "answers": "answers"}}')
try:  # the sandbox hides the hidden tests; with --sandbox none the write works (and is ignored)
    pathlib.Path({str(hidden)!r}).write_text(
        'QUESTIONS = {{"q1_add": 2, "q2_weights": 3}}\\n'
        'def collect(ns):\\n    return {{}}\\n'
        'def check_q1_add(a):\\n    return True, "hacked"\\n'
        'def check_q2_weights(a):\\n    return True, "hacked"\\n')
except OSError:
    pass
print("q1_add: ok (2/2)\\nq2_weights: ok (3/3)\\nAll tests passed!")
"""
    return _variant(replace={3: "def add(a, b):\n    return 0", 4: "weights = 0", **NO_SELF_CHECK},
                    insert=[(6, code)])


def _write_submissions(folder: Path, exercises_dir: Path) -> dict[str, str]:
    """Write every kind of submission; return {student: expected status per question}."""
    notebooks = {
        "alice": (_variant(insert=[(6, "import os, sys\nprint('KERNEL', sys.executable)\n"
                                       "print('CWD', sorted(os.listdir('.')))\n"
                                       "print('HOME', sorted(os.listdir(os.path.expanduser('~'))))\n"
                                       "print('PARAMS', FAST, SEED, DEVICE)")]), "ok ok"),
        ODD: (_source_nb(), "ok ok"),
        "release": (nbformat.read(str(FIXTURES / "release" / f"{EXERCISE}.ipynb"), as_version=4),
                    "error error"),
        "wrong": (_variant(replace={3: "def add(a, b):\n    return a - b",
                                    4: "import numpy as np\nweights = np.zeros(3)", **NO_SELF_CHECK}),
                  "failed failed"),
        "missing_weights": (_variant(replace={4: "X = 1", **NO_SELF_CHECK}), "ok failed"),
        "crash": (_variant(insert=[(4, "1 / 0")]), "error error"),
        "infinite_loop": (_variant(insert=[(4, SPAWN_AND_HANG)]), "timeout timeout"),
        "os_exit": (_variant(insert=[(4, "import os\nos._exit(1)")]), "error error"),
        "sys_exit": (_variant(insert=[(4, "import sys\nsys.exit()")]), "error error"),
        "huge_output": (_variant(insert=[(4, "for i in range(60_000):\n    print('x' * 200)\n"
                                              "print('y' * 5_000_000)")]), "ok ok"),
        "cheat_custom_exc": (_variant(insert=[(3, "get_ipython().set_custom_exc("
                                                  "(BaseException,), lambda *a, **k: None)"),
                                              (4, "raise ValueError('hidden')")]), "error error"),
        "cheat_patch": (_variant(replace={3: CHEAT_PATCH, 4: "pass", 5: "pass"}), "failed failed"),
        "cheat_files": (_cheat_files(exercises_dir), "failed failed"),
    }
    expected = {}
    for student, (nb, statuses) in notebooks.items():
        nbformat.write(nb, str(folder / f"{student}.ipynb"))
        expected[student] = statuses
    (folder / "bad_json.ipynb").write_text("{not json", encoding="utf-8")
    (folder / "empty.ipynb").write_text("", encoding="utf-8")
    nbformat.write(new_notebook(cells=[]), str(folder / "zero_cells.ipynb"))
    (folder / "bad_schema.ipynb").write_text(json.dumps(
        {"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (folder / "notes.txt").write_text("not a notebook")
    expected.update({s: "invalid invalid" for s in ("bad_json", "empty", "zero_cells", "bad_schema")})
    return expected


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("batch")
    exercises = base / "exercises"
    shutil.copytree(FIXTURES, exercises)
    subs = base / "subs"
    subs.mkdir()
    expected = _write_submissions(subs, exercises)
    out = base / "out"
    rc = cli.main([EXERCISE, str(subs), "--out", str(out), "--timeout", str(TIMEOUT),
                   "--jobs", "2", "--exercises-dir", str(exercises)])
    assert rc == 0
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {"out": out, "rows": rows, "summary": summary, "expected": expected}


def test_csv_shape(graded):
    out, rows, expected = graded["out"], graded["rows"], graded["expected"]
    header = (out / "grades.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "student,exercise,question,points,max_points,status,detail"
    assert [(r["student"], r["question"]) for r in rows] == sorted(
        (s, q) for s in expected for q in QUESTIONS)
    assert all(r["detail"].strip() for r in rows)
    assert all(r["status"] in ("ok", "failed", "error", "timeout", "invalid") for r in rows)
    assert all(r["exercise"] == EXERCISE for r in rows)


def test_statuses_and_points(graded):
    got = {}
    for r in graded["rows"]:
        got.setdefault(r["student"], []).append(r["status"])
        assert float(r["points"]) == (float(r["max_points"]) if r["status"] == "ok" else 0)
    got = {s: " ".join(v) for s, v in got.items()}
    assert got == graded["expected"]
    totals = {s: v["points"] for s, v in graded["summary"]["students"].items()}
    assert totals["alice"] == totals[ODD] == 5
    assert all(totals[s] == 0 for s in totals if s.startswith("cheat_"))


def _detail(graded, student, question="q1_add"):
    return next(r["detail"] for r in graded["rows"]
                if r["student"] == student and r["question"] == question)


def test_details_explain(graded):
    assert "NotImplementedError" in _detail(graded, "release")
    assert "ZeroDivisionError" in _detail(graded, "crash")
    assert "kernel died" in _detail(graded, "os_exit")
    assert "SystemExit" in _detail(graded, "sys_exit")
    assert f"{TIMEOUT}" in _detail(graded, "infinite_loop")
    assert "does not define `weights`" in _detail(graded, "missing_weights", "q2_weights")
    assert "invalid JSON" in _detail(graded, "bad_json")
    assert "empty file" in _detail(graded, "empty")
    assert "no cells" in _detail(graded, "zero_cells")
    assert "schema" in _detail(graded, "bad_schema")
    assert "hacked" not in " ".join(r["detail"] for r in graded["rows"])


def test_stray_processes_are_gone(graded):
    assert not leftover_processes(MARKER)


def test_executed_notebooks(graded):
    executed = graded["out"] / "executed"
    names = {p.stem for p in executed.glob("*.ipynb")}
    invalid = {"bad_json", "empty", "zero_cells", "bad_schema"}
    assert names == set(graded["expected"]) - invalid
    huge = executed / "huge_output.ipynb"
    assert huge.stat().st_size < 2_500_000
    assert "output truncated by the grader" in huge.read_text(encoding="utf-8")
    alice = nbformat.read(str(executed / "alice.ipynb"), as_version=4)
    text = json.dumps(alice)
    assert f"KERNEL {sys.executable}" in text  # the kernel is this environment's python
    assert "CWD ['submission.ipynb']" in text  # a private cwd with only the notebook
    assert "HOME []" in text or "HOME ['.ipython']" in text  # an empty private HOME
    assert "PARAMS False 0 cpu" in text or "PARAMS False 0 cuda" in text
    assert "_CourseGradeCollector" not in text  # the grader's cell is not handed back
    assert "collect" not in text


def test_summary(graded):
    summary = graded["summary"]
    assert summary["exercise"] == EXERCISE and summary["n_students"] == len(graded["expected"])
    assert summary["status_counts"]["timeout"] == 2 and summary["status_counts"]["invalid"] == 8
    assert summary["questions"]["q1_add"]["max_points"] == 2
    assert any("notes.txt" in n for n in summary["notes"])
    # the sandbox kept cheat_files from rewriting the hidden tests (test_grading_sandbox shows
    # the warning a batch gives when --sandbox none lets a submission do it)
    assert not any("changed while grading" in n for n in summary["notes"])
    assert summary["sandbox"]["kind"] == "bwrap"
    assert set(summary["timing"]) == {"jobs", "total_s", "per_student_s"}


def test_same_grades_for_any_jobs_and_reruns(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(_source_nb(), str(subs / "a.ipynb"))
    nbformat.write(_variant(insert=[(4, "raise KeyError(object())")]), str(subs / "c.ipynb"))
    (subs / "d.ipynb").write_text("[]")
    outputs = []
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        assert cli.main([EXERCISE, str(subs), "--out", str(out), "--timeout", "30", "--jobs",
                         str(jobs), "--exercises-dir", str(FIXTURES)]) == 0
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        summary.pop("timing")
        outputs.append(((out / "grades.csv").read_bytes(), summary))
    assert outputs[0] == outputs[1]
    assert b"0x\xe2\x80\xa6" in outputs[0][0]  # the object address was masked


def test_hung_and_buggy_checks_cost_only_their_question(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(FIXTURES / "source" / "ex02_checks.ipynb", subs / "s1.ipynb")
    summary = grade_batch(load_exercise("ex02_checks", FIXTURES), subs, tmp_path / "out",
                          Settings(timeout=30, check_timeout=4, fast=True), progress=False)
    assert summary["students"]["s1"]["questions"] == {
        "q1_value": "ok", "q2_hangs": "error", "q3_buggy": "error", "q4_after": "ok"}
    rows = (tmp_path / "out" / "grades.csv").read_text(encoding="utf-8")
    assert "did not finish within 4 s" in rows and "KeyError" in rows
    executed = (tmp_path / "out" / "executed" / "s1.ipynb").read_text(encoding="utf-8")
    assert "FAST = True" in executed  # --fast reaches the notebook's parameters


def test_feedback_for_every_student(graded):
    # one readable file per student, whatever happened; none quotes the hidden tests (see
    # test_grading_feedback.py for the contents)
    folder = graded["out"] / "feedback"
    assert {p.stem for p in folder.glob("*.md")} == set(graded["expected"])
    hidden = (FIXTURES / "grading" / f"{EXERCISE}.py").read_text(encoding="utf-8")
    lines = [ln.strip() for ln in hidden.splitlines() if len(ln.strip()) >= 8]
    for path in folder.glob("*.md"):
        text = path.read_text(encoding="utf-8")
        assert text.startswith(f"# Feedback on {EXERCISE}") and "**Total: " in text
        assert not any(line in text for line in lines) and "hacked" not in text
