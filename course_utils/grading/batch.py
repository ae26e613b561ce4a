"""Grading a folder of submissions and writing grades.csv / summary.json / executed/ / feedback/.

Everything that lands in grades.csv and in summary.json (outside its ``timing`` key) is a
function of the submissions alone: rows are sorted, no clock times or temp paths, so reruns, any
``--jobs`` value and grading on a Dask cluster (``scheduler``) give byte-identical files.
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
from course_utils.grading import checkserver, feedback, sandbox
from course_utils.grading.guide import load_guide
from course_utils.grading.runner import Outcome, Settings, grade_one
from course_utils.grading.spec import STATUSES, Exercise, default_exercises_dir, load_exercise
from course_utils.grading.submissions import find_submissions

COLUMNS = ["student", "exercise", "question", "points", "max_points", "status", "detail"]


def grade_batch(exercise: Exercise, submissions_dir: Path, out_dir: Path, settings: Settings,
                progress: bool = True, scheduler: str | None = None) -> dict:
    """Grade every STUDENT.ipynb in ``submissions_dir``; return the summary that was written.

    ``scheduler`` (``tcp://HOST:PORT``): grade on that Dask cluster's workers (cluster.py)
    instead of in local processes; the files written are the same.
    Raises ``sandbox.SandboxError`` (before writing anything) if the sandbox cannot run.
    """
    submissions, notes = find_submissions(submissions_dir)
    out_dir = Path(out_dir)
    guide = load_guide(exercise)  # read before any submission runs, like the hidden tests
    start = time.monotonic()
    with _pool(exercise, settings, scheduler) as pool:
        isolation = pool.prepare(batch_private(exercise, submissions_dir, out_dir), progress)
        executed_dir = _fresh_executed_dir(out_dir)
        report = _Progress(exercise, len(submissions), progress)
        try:
            outcomes = pool.run(submissions, executed_dir, report)
        finally:
            report.close()
    notes += pool.notes + _tamper_notes(exercise)
    rows = [row for o in outcomes for row in _rows(exercise, o)]
    rows.sort(key=lambda r: (r["student"], r["question"]))
    _write_csv(out_dir / "grades.csv", rows)
    feedback.write_all(out_dir, guide, outcomes, exercise.hidden_source, settings)
    summary = _summary(exercise, outcomes, rows, settings, notes)
    summary["sandbox"] = isolation
    summary["timing"] = {
        **pool.timing(), "total_s": round(time.monotonic() - start, 2),
        "per_student_s": {o.student: round(o.seconds, 2) for o in outcomes},
    }
    text = json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False)
    (out_dir / "summary.json").write_text(text + "\n", encoding="utf-8")
    return summary


def _pool(exercise: Exercise, settings: Settings, scheduler: str | None):
    if not scheduler:
        return LocalPool(exercise, settings)
    from course_utils.grading.cluster import DaskPool  # imports dask: only when asked for

    return DaskPool(scheduler, exercise, settings)


def batch_private(exercise: Exercise, submissions_dir, out_dir) -> list[Path]:
    """What a submission must not see that this batch names: the exercise's solutions and
    hidden tests, the other submissions, the grades."""
    return [exercise.source.parent, exercise.hidden.parent, Path(submissions_dir), Path(out_dir)]


def machine_private(scratch: Path) -> list[Path]:
    """What a submission must not see on the machine that runs it: the repo's exercises (also
    in git's history) and the temp folder of the other submissions graded there."""
    return [default_exercises_dir(), repo_root() / ".git", Path(scratch)]


def _fresh_executed_dir(out_dir: Path) -> Path:
    executed_dir = out_dir / "executed"
    executed_dir.mkdir(parents=True, exist_ok=True)
    for old in executed_dir.glob("*.ipynb"):  # results of an earlier run must not linger
        old.unlink()
    return executed_dir


class LocalPool:
    """Grades on this machine: one worker process per submission, ``settings.jobs`` at once."""

    def __init__(self, exercise: Exercise, settings: Settings):
        self.exercise, self.settings = exercise, settings
        self.notes: list[str] = []
        self.tmp_root = self.box = None

    def __enter__(self) -> "LocalPool":
        self.tmp_root = Path(tempfile.mkdtemp(prefix="course-grade-"))
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.tmp_root, ignore_errors=True)

    def prepare(self, hide: list, progress: bool) -> dict:
        """Start the sandbox (SandboxError if it cannot run); return what summary.json records."""
        s, hide = self.settings, [*hide, *machine_private(self.tmp_root)]
        self.box = sandbox.prepare(s.sandbox, s.limits, hide=hide, scratch=self.tmp_root,
                                   gpu=s.device == "cuda")
        if progress:
            print(self.box.line(), file=sys.stderr)
        return self.box.describe()

    def run(self, submissions: dict, executed_dir: Path, report) -> list[Outcome]:
        outcomes = []
        checkserver.warm_up()
        # Threads only wait on subprocesses; the work itself happens in the worker processes.
        with ThreadPoolExecutor(max_workers=max(1, self.settings.jobs)) as pool:
            futures = {
                pool.submit(grade_one, self.exercise, sid, path, self.settings, executed_dir,
                            self.tmp_root, self.box): sid
                for sid, path in submissions.items()
            }
            for future in as_completed(futures):
                outcomes.append(_safe_result(future, futures[future], self.exercise))
                report(outcomes[-1])
        return sorted(outcomes, key=lambda o: o.student)

    def timing(self) -> dict:
        return {"jobs": self.settings.jobs}


class _Progress:
    """The progress bar and one line per graded submission (stderr)."""

    def __init__(self, exercise: Exercise, total: int, show: bool):
        from tqdm import tqdm

        self.exercise, self.show = exercise, show
        self.bar = tqdm(total=total, desc=exercise.name, unit="nb", disable=not show)

    def __call__(self, outcome: Outcome) -> None:
        self.bar.update(1)
        if self.show:
            points = sum(_points(self.exercise, q, s) for q, (s, _) in outcome.results.items())
            self.bar.write(f"{outcome.student}: {points:g}/{self.exercise.max_points:g} "
                           f"({outcome.status}, {outcome.seconds:.1f} s)")

    def close(self) -> None:
        self.bar.close()


def _safe_result(future, student, exercise) -> Outcome:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - a grader bug on one file must not lose the batch
        return internal_error(exercise, student, exc)


def internal_error(exercise: Exercise, student: str, exc: BaseException) -> Outcome:
    """The outcome of a submission the grader itself failed on: every question ``error``."""
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
