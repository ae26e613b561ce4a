"""End-to-end: the shared fixture batch (grading_fixtures/batches.py: ``fixture_batch``) holds one
submission per kind of notebook (correct, wrong, crashing, hanging, cheating, invalid...) next to
the sandbox's attacks; these tests read what it wrote. Kernels start without torch, so the batch
takes seconds per notebook, not minutes.
"""
from __future__ import annotations

import json
import shutil
import sys

import nbformat

from conftest import leftover_processes
from course_utils.grading import cli
from grading_fixtures.submissions import (
    EXERCISE, FIXTURES, INVALID, MARKER, ODD, QUESTIONS, TIMEOUT, kinds, variant,
)


def test_csv_shape(fixture_batch):
    out, rows, expected = fixture_batch["out"], fixture_batch["rows"], fixture_batch["expected"]
    header = (out / "grades.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "student,exercise,question,points,max_points,status,detail"
    assert [(r["student"], r["question"]) for r in rows] == sorted(
        (s, q) for s in expected for q in QUESTIONS)
    assert all(r["detail"].strip() for r in rows)
    assert all(r["status"] in ("ok", "failed", "error", "timeout", "invalid") for r in rows)
    assert all(r["exercise"] == EXERCISE for r in rows)


def test_statuses_and_points(fixture_batch):
    got, kinds_here = {}, set(kinds(fixture_batch["exercises"])) | set(INVALID)
    for r in fixture_batch["rows"]:
        got.setdefault(r["student"], []).append(r["status"])
        if not r["detail"].startswith("override:"):  # the override's row: see test_grading_cohort
            assert float(r["points"]) == (float(r["max_points"]) if r["status"] == "ok" else 0)
    got = {s: " ".join(v) for s, v in got.items() if s in kinds_here}
    assert got == {s: fixture_batch["expected"][s] for s in kinds_here}
    totals = {s: v["points"] for s, v in fixture_batch["summary"]["students"].items()}
    assert totals["alice"] == totals[ODD] == 5
    assert all(totals[s] == 0 for s in totals if s.startswith("cheat_"))


def _detail(batch, student, question="q1_add"):
    return next(r["detail"] for r in batch["rows"]
                if r["student"] == student and r["question"] == question)


def test_details_explain(fixture_batch):
    assert "NotImplementedError" in _detail(fixture_batch, "release")
    assert "ZeroDivisionError" in _detail(fixture_batch, "crash")
    assert "kernel died" in _detail(fixture_batch, "os_exit")
    assert "SystemExit" in _detail(fixture_batch, "sys_exit")
    assert f"{TIMEOUT}" in _detail(fixture_batch, "infinite_loop")
    assert "does not define `weights`" in _detail(fixture_batch, "missing_weights", "q2_weights")
    assert "invalid JSON" in _detail(fixture_batch, "bad_json")
    assert "empty file" in _detail(fixture_batch, "empty")
    assert "no cells" in _detail(fixture_batch, "zero_cells")
    assert "schema" in _detail(fixture_batch, "bad_schema")
    assert "hacked" not in " ".join(r["detail"] for r in fixture_batch["rows"])


def test_stray_processes_are_gone(fixture_batch):
    assert not leftover_processes(MARKER)


def test_executed_notebooks(fixture_batch):
    executed = fixture_batch["out"] / "executed"
    names = {p.stem for p in executed.glob("*.ipynb")}
    assert names == set(fixture_batch["expected"]) - set(INVALID) - {"symlink_exfil"}
    huge = executed / "huge_output.ipynb"
    assert huge.stat().st_size < 2_500_000
    assert "output truncated by the grader" in huge.read_text(encoding="utf-8")
    alice = nbformat.read(str(executed / "alice.ipynb"), as_version=4)
    text = json.dumps(alice)
    assert f"KERNEL {sys.executable}" in text  # the kernel is this environment's python
    assert "CWD ['submission.ipynb']" in text  # a private cwd with only the notebook
    assert "HOME ['.ipython']" in text  # a private HOME: only the grader's kernel startup file
    assert "PARAMS False 0 cpu" in text or "PARAMS False 0 cuda" in text
    assert "_CourseGradeCollector" not in text  # the grader's cell is not handed back
    assert "collect" not in text


def test_summary(fixture_batch):
    summary = fixture_batch["summary"]
    assert summary["exercise"] == EXERCISE and summary["n_students"] == len(fixture_batch["expected"])
    counts = {}
    for statuses in fixture_batch["expected"].values():
        for status in statuses.split():
            counts[status] = counts.get(status, 0) + 1
    assert {k: v for k, v in summary["status_counts"].items() if v} == counts
    assert summary["questions"]["q1_add"]["max_points"] == 2
    assert any("notes.txt" in n for n in summary["notes"])
    # the sandbox kept cheat_files from rewriting the hidden tests (test_grading_sandbox shows
    # the warning a batch gives when --sandbox none lets a submission do it)
    assert not any("changed while grading" in n for n in summary["notes"])
    assert set(summary["timing"]) == {"jobs", "total_s", "per_student_s"}


def test_same_grades_for_any_jobs_and_reruns(fixture_batch, tmp_path):
    """Three of the batch's students graded again, one at a time (--jobs 1): the same rows and
    totals, byte for byte, as in the batch that graded them two at a time."""
    subs = tmp_path / "subs"
    subs.mkdir()
    students = ["alice", "crash_object", "bad_json"]
    for student in students:
        shutil.copy(fixture_batch["subs"] / f"{student}.ipynb", subs)
    args = [str(subs) if a == str(fixture_batch["subs"]) else a for a in fixture_batch["args"]]
    del args[args.index("--overrides"):args.index("--overrides") + 2]  # none of theirs
    out = tmp_path / "out"
    args[args.index("--out") + 1], args[args.index("--jobs") + 1] = str(out), "1"
    assert cli.main(args) == 0
    for name in ("grades.csv", "totals.csv"):
        lines = lambda path: [ln for ln in path.read_text(encoding="utf-8").splitlines()  # noqa: E731
                              if ln.split(",")[0] in ("student", *students)]
        assert lines(out / name) == lines(fixture_batch["out"] / name), name
    assert "0x…" in (out / "grades.csv").read_text(encoding="utf-8")  # the object address masked


def test_hung_and_buggy_checks_cost_only_their_question(checks_batch):
    assert checks_batch["summary"]["students"]["s1"]["questions"] == {
        "q1_value": "ok", "q2_hangs": "error", "q3_buggy": "error", "q4_after": "ok"}
    rows = (checks_batch["out"] / "grades.csv").read_text(encoding="utf-8")
    assert "did not finish within 4 s" in rows and "KeyError" in rows
    executed = (checks_batch["out"] / "executed" / "s1.ipynb").read_text(encoding="utf-8")
    assert "FAST = True" in executed  # --fast reaches the notebook's parameters


def test_feedback_for_every_student(fixture_batch):
    # one readable file per student, whatever happened; none quotes the hidden tests (see
    # test_grading_feedback.py for the contents)
    folder = fixture_batch["out"] / "feedback"
    assert {p.stem for p in folder.glob("*.md")} == set(fixture_batch["expected"])
    hidden = (FIXTURES / "grading" / f"{EXERCISE}.py").read_text(encoding="utf-8")
    lines = [ln.strip() for ln in hidden.splitlines() if len(ln.strip()) >= 8]
    for path in folder.glob("*.md"):
        text = path.read_text(encoding="utf-8")
        assert text.startswith(f"# Feedback on {EXERCISE}") and "**Total: " in text
        assert not any(line in text for line in lines) and "hacked" not in text
