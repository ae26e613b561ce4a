"""Grading a folder of submissions (``course-grade EXERCISE SUBMISSIONS --out OUT``).

Runs every submission (or with ``--only``, one) through a pool: local worker processes, or a
Dask cluster (cluster.py), then hands the outcomes to results.py, which writes OUT_DIR's files
through a staging folder (outdir.py): a batch that fails half-way changes nothing there.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_utils.grading import checkserver, outdir, results, sandbox
from course_utils.grading.deadlines import Deadline, check_deadline, submission_times
from course_utils.grading.hide import batch_private, machine_private
from course_utils.grading.overrides import check_students, read_overrides
from course_utils.grading.release import load_guide, release_text
from course_utils.grading.runner import Outcome, Settings, grade_one, internal_error
from course_utils.grading.spec import Exercise, ExerciseError, load_exercise
from course_utils.grading.submissions import find_submissions

COLUMNS = results.COLUMNS


@dataclass(frozen=True)
class BatchOptions:
    """What the instructor adds to a batch: a deadline (``--due`` ...), submission times
    (``--submitted-at``), overrides (``--overrides``), and ``--only STUDENT``."""
    deadline: Deadline | None = None  # None: none, or with --only the batch's own
    submitted_at: Path | None = None
    overrides: Path | None = None
    only: str | None = None


def grade_batch(exercise: Exercise, submissions_dir: Path, out_dir: Path, settings: Settings,
                progress: bool = True, scheduler: str | None = None,
                options: BatchOptions | None = None) -> dict:
    """Grade every STUDENT.ipynb in ``submissions_dir`` (or ``options.only``); return the summary.

    ``scheduler`` (``tcp://HOST:PORT``): grade on that Dask cluster's workers (cluster.py)
    instead of in local processes; the files written are the same. Raises ExerciseError for
    unusable options and ``sandbox.SandboxError`` (both before writing anything).
    """
    options, out_dir = options or BatchOptions(), Path(out_dir)
    submissions, notes = find_submissions(submissions_dir)
    batch = _plan(exercise, submissions, out_dir, settings, options)
    start = time.monotonic()
    with _pool(exercise, settings, scheduler) as pool:
        batch["sandbox"] = pool.prepare(batch_private(exercise, submissions_dir, out_dir), progress)
        with outdir.Staging(out_dir) as staging:  # OUT_DIR is made only once the sandbox runs
            report = _Progress(exercise, len(batch["graded"]), progress)
            try:
                batch["outcomes"] = pool.run(batch["graded"], staging.path / "executed", report)
            finally:
                report.close()
            batch["notes"] = notes + batch["notes"] + pool.notes + _tamper_notes(exercise)
            batch["timing"] = {**pool.timing(), "total_s": round(time.monotonic() - start, 2),
                               "per_student_s": {o.student: round(o.seconds, 2)
                                                 for o in batch["outcomes"]}}
            summary = results.write_batch(staging.path, batch)
            staging.commit(sorted(batch["graded"]), full=options.only is None)
    return summary


def _plan(exercise: Exercise, submissions: dict, out_dir: Path, settings: Settings,
          options: BatchOptions) -> dict:
    """Everything a batch needs before any submission runs (an ExerciseError stops it there)."""
    guide = load_guide(exercise)  # read before any submission runs, like the hidden tests
    previous = outdir.previous(out_dir, exercise.name) if options.only else None
    graded = submissions
    if options.only:
        if options.only not in submissions:
            raise ExerciseError(f"--only {options.only}: no {options.only}.ipynb in the submissions")
        graded = {options.only: submissions[options.only]}
    overrides = []
    if options.overrides:
        labels = {q.label.upper(): q.name for q in guide.questions.values()}
        overrides = [o for o in read_overrides(options.overrides, exercise.questions, labels)
                     if o.student in graded or not options.only]
        check_students(overrides, graded)
    deadline = _deadline(options, previous)
    times, notes = {}, []
    if deadline.due:
        times, notes = submission_times(graded, options.submitted_at, submissions)
        if previous:
            kept = {s: v.get("submitted_at") for s, v in previous["summary"]["students"].items()}
            times = {**{s: t for s, t in kept.items() if s not in graded}, **times}
    release = nbformat.reads(release_text(exercise.source), as_version=4)
    return {"exercise": exercise, "guide": guide, "settings": settings, "graded": graded,
            "submissions": submissions, "previous": previous, "overrides": overrides,
            "deadline": deadline, "times": times, "notes": notes, "release": release}


def _deadline(options: BatchOptions, previous) -> Deadline:
    if previous is None:
        deadline = options.deadline or Deadline()
    else:  # --only: the batch's own deadline, which the other students' totals used
        deadline = Deadline(**previous["summary"].get("deadline", {}))
        if options.deadline and options.deadline != deadline:
            raise ExerciseError(
                f"--only keeps the batch's deadline ({deadline.to_dict()}); to change the "
                "deadline or the penalty, grade the whole batch again")
    check_deadline(deadline)
    return deadline


def _pool(exercise: Exercise, settings: Settings, scheduler: str | None):
    if not scheduler:
        return LocalPool(exercise, settings)
    from course_utils.grading.cluster import DaskPool  # imports dask: only when asked for

    return DaskPool(scheduler, exercise, settings)


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
