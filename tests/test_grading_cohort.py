"""After the grades: totals with late penalties, overrides, one student again (--only), similarity,
the cohort report (opened in headless Chromium) and the LMS import files.

The shared batches (grading_fixtures/batches.py) carry most of it: ``fixture_batch`` is graded with
a due date, submission times and an override; ``real_batches`` grades ex01 with a copied-and-renamed
solution, an independent one and two untouched releases.
"""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from course_utils.grading import cli, report
from grading_fixtures.batches import DUE, OVERRIDE, TIMES, read_rows, read_totals
from grading_fixtures.submissions import EXERCISE, FIXTURES, ODD, variant

LMS = Path(__file__).parent / "grading_fixtures" / "lms"
EX01 = "ex01_freeze_and_probe"


# ------------------------------------------------------------------ deadlines and totals

def test_totals_have_the_late_penalty(fixture_batch):
    out, totals = fixture_batch["out"], fixture_batch["totals"]
    header = (out / "totals.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "student,raw,late_penalty,final,max_points,status"
    assert set(totals) == set(fixture_batch["expected"])
    row = lambda s: tuple(totals[s][k] for k in ("raw", "late_penalty", "final", "status"))  # noqa: E731
    assert row("alice") == ("5", "0", "5", "ok")  # on time
    assert row(ODD) == ("5", "0.5", "4.5", "ok")  # 1 started day late: 10 % off
    assert row("wrong") == ("1.5", "0.6", "0.9", "ok")  # 4 days: 40 % off (the floor is 50 %)
    assert row("crash") == ("0", "0", "0", "error")  # 8 days, but nothing to take
    assert row("good") == ("5", "0", "5", "ok")  # no time in TIMES.csv: the file's, long before
    notes = " ".join(fixture_batch["summary"]["notes"])
    assert "modification times (not in times.csv)" in notes and "good" in notes
    assert fixture_batch["summary"]["students"][ODD]["days_late"] == 1
    feedback = (out / "feedback" / f"{ODD}.md").read_text(encoding="utf-8")
    assert "1 started day after the due time" in feedback and "**4.5 of 5 points after" in feedback


def test_a_new_due_date_recomputes_the_totals(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    nbformat.write(variant(), str(subs / "a.ipynb"))
    times = tmp_path / "times.csv"
    times.write_text("student_id,submitted_at\na,2030-06-03T12:00:00+00:00\n", encoding="utf-8")
    finals = []
    for due in (DUE, "2030-06-04T00:00:00+00:00"):
        assert cli.main([EXERCISE, str(subs), "--out", str(tmp_path / "out"), "--exercises-dir",
                         str(FIXTURES), "--due", due, "--late-penalty", "25",
                         "--submitted-at", str(times)]) == 0
        finals.append(read_totals(tmp_path / "out")["a"]["final"])
    assert finals == ["2.5", "5"]  # 2 started days late at 25 %, then on time


# ------------------------------------------------------------------ overrides

def test_an_override_is_recorded_in_the_row_totals_and_feedback(fixture_batch):
    student, label, points, reason = OVERRIDE
    row = next(r for r in fixture_batch["rows"] if r["student"] == student and r["question"] == "q2_weights")
    assert row["points"] == points and row["status"] == "failed"  # the check's verdict stays
    assert row["detail"].startswith(f"override: {points} of 3 points ({reason}); graded failed: ")
    assert fixture_batch["totals"][student]["raw"] == points
    feedback = (fixture_batch["out"] / "feedback" / f"{student}.md").read_text(encoding="utf-8")
    assert f"Your instructor set this question to {points} of 3 points: {reason}" in feedback
    assert fixture_batch["summary"]["overrides"] == [
        {"student": student, "question": "q2_weights", "points": 1.5, "reason": reason}]


@pytest.mark.parametrize("line, message", [
    ("wrong,q9,1,x", "unknown question 'q9'"),
    ("wrong,Q1,3,x", "3 points for q1_add, which has 2"),
    ("nobody,Q1,1,x", "students without a submission: nobody"),
    ("wrong,Q1,1,", "give a reason"),
])
def test_a_bad_override_stops_before_grading(tmp_path, capsys, line, message):
    (tmp_path / "subs").mkdir()
    nbformat.write(variant(), str(tmp_path / "subs" / "wrong.ipynb"))
    overrides = tmp_path / "o.csv"
    overrides.write_text(f"student_id,question,points,reason\n{line}\n", encoding="utf-8")
    assert cli.main([EXERCISE, str(tmp_path / "subs"), "--out", str(tmp_path / "out"),
                     "--exercises-dir", str(FIXTURES), "--overrides", str(overrides)]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ one student again

def _late_row(report: bytes, student: str) -> str:
    """The student's row in the report's late-submissions table (student | submitted | days late | ... | final)."""
    return next(line for line in report.decode().splitlines() if line.startswith(f"| {student} | 20"))


def _snapshot(out: Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def _copy_batch(fixture_batch, tmp_path) -> tuple[Path, list[str]]:
    out = tmp_path / "out"
    shutil.copytree(fixture_batch["out"], out)
    shutil.copytree(fixture_batch["subs"], tmp_path / "subs")
    args = [str(tmp_path / "subs") if a == str(fixture_batch["subs"])
            else str(out) if a == str(fixture_batch["out"]) else a for a in fixture_batch["args"]]
    return out, args


def test_only_regrades_one_student_and_leaves_the_others(fixture_batch, tmp_path):
    out, args = _copy_batch(fixture_batch, tmp_path)
    nbformat.write(variant(), str(tmp_path / "subs" / "wrong.ipynb"))  # the fixed notebook
    before = _snapshot(out)
    assert cli.main([*args, "--only", "wrong"]) == 0
    after = _snapshot(out)
    others = {k: v for k, v in before.items()
              if k.startswith(("feedback/", "executed/")) and "/wrong." not in k}
    assert others == {k: after[k] for k in others}  # every other student's files, byte for byte
    old, new = read_rows(fixture_batch["out"]), read_rows(out)
    assert [r for r in old if r["student"] != "wrong"] == [r for r in new if r["student"] != "wrong"]
    mine = {r["question"]: (r["status"], r["points"]) for r in new if r["student"] == "wrong"}
    assert mine == {"q1_add": ("ok", "2"), "q2_weights": ("ok", "1.5")}  # the override still last
    assert read_totals(out)["wrong"]["final"] == "2.1"  # 3.5, 4 days late: 60 % kept
    assert {k: v for k, v in read_totals(out).items() if k != "wrong"} == \
        {k: v for k, v in fixture_batch["totals"].items() if k != "wrong"}
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["students"]["alice"] == fixture_batch["summary"]["students"]["alice"]
    # the report's late-submission row for this student, before and after: its final goes from 0.9 to 2.1
    # (a bare "2.1" in the report could be any other number, e.g. the median run time in seconds)
    assert _late_row(before["report.md"], "wrong").endswith("| 0.9 |")
    assert _late_row(after["report.md"], "wrong").endswith("| 2.1 |")
    assert not list(out.glob(".staging-*"))


def test_only_writes_all_or_nothing(fixture_batch, tmp_path, monkeypatch):
    out, args = _copy_batch(fixture_batch, tmp_path)
    before = _snapshot(out)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while writing the report")

    monkeypatch.setattr(report, "write_report", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        cli.main([*args, "--only", "crash"])
    assert _snapshot(out) == before and not list(out.glob(".staging-*"))


def test_only_needs_a_batch_and_its_deadline(fixture_batch, tmp_path, capsys):
    out, args = _copy_batch(fixture_batch, tmp_path)
    assert cli.main([*args, "--only", "nobody"]) == 2
    assert "no nobody.ipynb" in capsys.readouterr().err
    moved = [a if a != DUE else "2030-07-01T00:00:00+00:00" for a in args]
    assert cli.main([*moved, "--only", "alice"]) == 2
    assert "--only keeps the batch's deadline" in capsys.readouterr().err
    assert cli.main([EXERCISE, str(tmp_path / "subs"), "--out", str(tmp_path / "empty"),
                     "--exercises-dir", str(FIXTURES), "--only", "alice"]) == 2
    assert "--only needs a graded batch" in capsys.readouterr().err


# ------------------------------------------------------------------ similarity

def test_the_copied_submission_is_flagged_and_nothing_else(real_batches):
    out = real_batches["outs"][EX01]
    text = (out / "similarity.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "a,b,score,flagged"
    pairs = {(r["a"], r["b"]): r for r in csv.DictReader(text.splitlines())}
    assert pairs[("copied", "solution")]["flagged"] == "yes"
    assert float(pairs[("copied", "solution")]["score"]) >= 0.9
    flagged = [k for k, r in pairs.items() if r["flagged"] == "yes"]
    assert flagged == [("copied", "solution")]  # not the independent solution, not the releases
    assert float(pairs[("independent", "solution")]["score"]) < 0.5
    assert float(pairs[("release", "release_again")]["score"]) == 0  # the scaffold is not theirs
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["similar_pairs"] == [["copied", "solution", float(pairs[("copied", "solution")]["score"])]]


# ------------------------------------------------------------------ the report

def test_the_report_has_the_cohort_and_no_hidden_source(fixture_batch, real_batches):
    hidden = [ln.strip() for name, base in ((EXERCISE, FIXTURES), (EX01, real_batches["kit"]))
              for ln in (base / "grading" / f"{name}.py").read_text(encoding="utf-8").splitlines()
              if len(ln.strip()) >= 20]
    fixture = (fixture_batch["out"] / "report.md").read_text(encoding="utf-8")
    real = (real_batches["outs"][EX01] / "report.md").read_text(encoding="utf-8")
    for text in (fixture, real):
        assert not [ln for ln in hidden if ln in text]
        assert "Traceback" not in text and "check_q" not in text
    assert "The question most students fail: **Q2**" in fixture
    assert "| Q1 `q1_add` | 2 |" in fixture and "## Most common failure messages" in fixture
    assert "## Late submissions" in fixture and f"| {ODD} | {TIMES[ODD]} | 1 |" in fixture
    assert "## Overrides" in fixture and OVERRIDE[3] in fixture
    assert "| copied | solution |" in real and "pairs flagged" in real


def test_the_report_opens_in_chromium(real_batches):
    from test_site import chromium_driver

    page = real_batches["outs"][EX01] / "report.html"
    driver = chromium_driver()
    try:
        driver.get(page.as_uri())
        facts = driver.execute_script(
            "return {title: document.title, h1: document.querySelector('h1').textContent,"
            " img: [...document.images].map(i => i.complete && i.naturalWidth > 0),"
            " tables: document.querySelectorAll('table').length,"
            " text: document.body.innerText};")
    finally:
        driver.quit()
    assert facts["title"] == f"Cohort report: {EX01}" and EX01 in facts["h1"]
    assert facts["img"] == [True]  # the distribution of the totals, embedded in the page
    assert facts["tables"] >= 4
    assert "pass rate" in facts["text"] and "copied" in facts["text"]


# ------------------------------------------------------------------ LMS export

@pytest.fixture
def graded_out(tmp_path):
    """An OUT_DIR as a batch leaves it (only what export reads)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"exercise": EX01, "max_points": 7}))
    (out / "totals.csv").write_text("student,raw,late_penalty,final,max_points,status\n"
                                    "1001,7,0.7,6.3,7,ok\n1002,7,0,7,7,ok\n1004,5,0,5,7,ok\n")
    return out


@pytest.mark.parametrize("lms", ["canvas", "moodle"])
def test_export_writes_the_lms_import_file(graded_out, capsys, lms):
    dest = graded_out / f"{lms}-import.csv"
    assert cli.main(["export", str(graded_out), "--to", lms, "--roster", str(LMS / "roster.csv"),
                     "--out", str(dest), "--assignment", "Exercise 1"]) == 0
    assert dest.read_text(encoding="utf-8") == (LMS / f"{lms}_expected.csv").read_text(encoding="utf-8")
    said = capsys.readouterr().out
    assert "no submission (exported with an empty grade): 1003" in said
    assert "NOT EXPORTED, not on the roster: 1004" in said


def test_export_needs_a_batch_and_a_full_roster(graded_out, tmp_path, capsys):
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name\n1001,Zoë\n", encoding="utf-8")
    assert cli.main(["export", str(graded_out), "--to", "canvas", "--roster", str(roster)]) == 2
    assert "needs the columns student_id,name,email" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path), "--to", "moodle", "--roster",
                     str(LMS / "roster.csv")]) == 2
    assert "holds no graded batch" in capsys.readouterr().err
