"""Grading a folder of submissions and writing grades.csv / summary.json / executed/.

Everything that lands in grades.csv and in summary.json (outside its ``timing`` key) is a
function of the submissions alone: rows are sorted, no clock times or temp paths, so reruns and
any ``--jobs`` value give byte-identical files.
"""
from __future__ import annotations

import csv
import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from course_utils.config import repo_root
from course_utils.grading import checkserver, sandbox
from course_utils.grading.runner import Outcome, Settings, grade_one
from course_utils.grading.spec import STATUSES, Exercise, default_exercises_dir, load_exercise
from course_utils.grading.submissions import find_submissions

COLUMNS = ["student", "exercise", "question", "points", "max_points", "status", "detail"]


def grade_batch(exercise: Exercise, submissions_dir: Path, out_dir: Path, settings: Settings,
                progress: bool = True) -> dict:
    """Grade every STUDENT.ipynb in ``submissions_dir``; return the summary that was written.

    Raises ``sandbox.SandboxError`` (before writing anything) if the sandbox cannot run.
    """
    submissions, notes = find_submissions(submissions_dir)
    out_dir = Path(out_dir)
    start = time.monotonic()
    tmp_root = Path(tempfile.mkdtemp(prefix="course-grade-"))
    try:
        hide = _hidden_from_submissions(exercise, submissions_dir, out_dir, tmp_root)
        box = sandbox.prepare(settings.sandbox, settings.limits, hide=hide, scratch=tmp_root,
                              gpu=settings.device == "cuda")
        if progress:
            print(box.line(), file=sys.stderr)
        executed_dir = _fresh_executed_dir(out_dir)
        outcomes = _run_all(exercise, submissions, settings, box, executed_dir, tmp_root, progress)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    notes += _tamper_notes(exercise)
    rows = [row for o in outcomes for row in _rows(exercise, o)]
    rows.sort(key=lambda r: (r["student"], r["question"]))
    _write_csv(out_dir / "grades.csv", rows)
    summary = _summary(exercise, outcomes, rows, settings, notes)
    summary["sandbox"] = box.describe()
    summary["timing"] = {
        "jobs": settings.jobs, "total_s": round(time.monotonic() - start, 2),
        "per_student_s": {o.student: round(o.seconds, 2) for o in outcomes},
    }
    text = json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False)
    (out_dir / "summary.json").write_text(text + "\n", encoding="utf-8")
    return summary


def _hidden_from_submissions(exercise: Exercise, submissions_dir, out_dir, tmp_root) -> list:
    """What a submission must not see: the solutions and hidden tests (also in git's history),
    the other submissions, the grades, the other submissions' temp folders."""
    return [exercise.source.parent, exercise.hidden.parent, default_exercises_dir(),
            repo_root() / ".git", Path(submissions_dir), out_dir, tmp_root]


def _fresh_executed_dir(out_dir: Path) -> Path:
    executed_dir = out_dir / "executed"
    executed_dir.mkdir(parents=True, exist_ok=True)
    for old in executed_dir.glob("*.ipynb"):  # results of an earlier run must not linger
        old.unlink()
    return executed_dir


def _run_all(exercise, submissions, settings, box, executed_dir, tmp_root,
             progress) -> list[Outcome]:
    from tqdm import tqdm

    outcomes = []
    checkserver.warm_up()
    bar = tqdm(total=len(submissions), desc=exercise.name, unit="nb", disable=not progress)
    # Threads only wait on subprocesses; the work itself happens in the worker processes.
    with ThreadPoolExecutor(max_workers=max(1, settings.jobs)) as pool:
        futures = {
            pool.submit(grade_one, exercise, sid, path, settings, executed_dir, tmp_root, box): sid
            for sid, path in submissions.items()
        }
        for future in as_completed(futures):
            outcome = _safe_result(future, futures[future], exercise)
            outcomes.append(outcome)
            bar.update(1)
            if progress:
                points = sum(_points(exercise, q, s) for q, (s, _) in outcome.results.items())
                bar.write(f"{outcome.student}: {points:g}/{exercise.max_points:g} "
                          f"({outcome.status}, {outcome.seconds:.1f} s)")
    bar.close()
    return sorted(outcomes, key=lambda o: o.student)


def _safe_result(future, student, exercise) -> Outcome:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - a grader bug on one file must not lose the batch
        detail = f"grader internal error: {type(exc).__name__}: {exc}".splitlines()[0][:300]
        return Outcome(student, "error", {q: ("error", detail) for q in exercise.questions}, 0.0)


def _tamper_notes(exercise: Exercise) -> list[str]:
    """Warn if the hidden tests on disk changed while grading (this batch used its snapshot)."""
    try:
        current = load_exercise(exercise.name, exercise.source.parent.parent).hidden_digest()
    except Exception:  # noqa: BLE001 - deleted or broken: also a change
        current = None
    if current == exercise.hidden_digest():
        return []
    return [f"WARNING: {exercise.hidden} changed while grading; grades used the copy read at "
            "start. Check whether a submission wrote it, and restore it from git."]


def _points(exercise, question, status) -> float:
    return exercise.questions[question] if status == "ok" else 0


def _rows(exercise: Exercise, outcome: Outcome) -> list[dict]:
    return [
        {"student": outcome.student, "exercise": exercise.name, "question": q,
         "points": _points(exercise, q, status), "max_points": exercise.questions[q],
         "status": status, "detail": detail or status}
        for q, (status, detail) in outcome.results.items()
    ]


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _summary(exercise, outcomes, rows, settings: Settings, notes) -> dict:
    students = {
        o.student: {
            "points": sum(_points(exercise, q, s) for q, (s, _) in o.results.items()),
            "max_points": exercise.max_points, "notebook_status": o.status,
            "questions": {q: s for q, (s, _) in sorted(o.results.items())},
        }
        for o in outcomes
    }
    questions = {}
    for q, max_points in exercise.questions.items():
        statuses = [r["status"] for r in rows if r["question"] == q]
        points = [r["points"] for r in rows if r["question"] == q]
        questions[q] = {
            "max_points": max_points, "n_ok": statuses.count("ok"),
            "mean_points": round(sum(points) / len(points), 4) if points else 0,
            "by_status": {s: statuses.count(s) for s in STATUSES if s in statuses},
        }
    counts = [r["status"] for r in rows]
    return {
        "exercise": exercise.name, "max_points": exercise.max_points,
        "n_students": len(outcomes), "students": students, "questions": questions,
        "status_counts": {s: counts.count(s) for s in STATUSES},
        "settings": {"fast": settings.fast, "seed": settings.seed, "device": settings.device,
                     "timeout_s": settings.timeout,
                     "check_timeout_s": settings.check_timeout or settings.timeout},
        "notes": notes,
    }
