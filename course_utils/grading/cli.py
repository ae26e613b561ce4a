"""``course-grade``: release student notebooks, make a kit, grade a folder, export the grades.

    course-grade release [--source DIR] [--release DIR] [--kit DIR] [--check]
    course-grade check NOTEBOOK [--exercise NAME] [--timeout S] [--no-run] [--sandbox ...]
    course-grade kit DIR
    course-grade EXERCISE SUBMISSIONS_DIR --out OUT_DIR [--kit DIR] [--timeout S] [--jobs N]
                 [--fast] [--sandbox {auto,bwrap,none}] [--memory-mb MB] [--max-procs N]
                 [--disk-mb MB] [--scheduler tcp://HOST:PORT] [--due ISO]
                 [--late-penalty PCT_PER_DAY] [--late-floor PCT] [--submitted-at TIMES.csv]
                 [--overrides OVERRIDES.csv] [--only STUDENT_ID]
    course-grade export OUT_DIR --to {canvas,moodle} --roster ROSTER.csv [--out FILE]

Exit codes: 0 done (students may still have failed), 1 ``release --check`` found a stale
release or ``check`` found problems in the notebook, 2 a usage problem (unknown exercise, missing
folder, malformed hidden tests, kit, overrides, times or roster), a sandbox that cannot run here,
or a Dask cluster that cannot grade (``--scheduler``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def _release_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="course-grade release",
                                description="Write the student notebooks (release/) from the "
                                            "source notebooks, with the metadata a self-check reads.")
    p.add_argument("--source", type=Path, default=None, help="source notebooks (default: "
                   "the repo's exercises/source, or KIT/source)")
    p.add_argument("--release", type=Path, default=None, help="where to write (default: "
                   "the repo's exercises/release, or KIT/release)")
    p.add_argument("--kit", type=Path, default=None, help="release from an instructor kit")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    return p


def _release(args) -> int:
    from course_utils.grading.release import run_release
    from course_utils.grading.spec import default_exercises_dir

    base = args.kit or default_exercises_dir()
    return run_release(args.source or base / "source", args.release or base / "release",
                       check=args.check)


def _kit(argv: list[str]) -> int:
    from course_utils.grading.kit import make_kit
    from course_utils.grading.spec import default_exercises_dir

    p = argparse.ArgumentParser(prog="course-grade kit",
                                description="Write an instructor's private kit for one term: the "
                                            "source notebooks, hidden tests and a fresh secret.")
    p.add_argument("dir", type=Path, help="a new folder, kept where no student can read it")
    p.add_argument("--exercises-dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    names = make_kit(args.dir, args.exercises_dir or default_exercises_dir())
    print(f"kit for {len(names)} exercises in {args.dir} (keep it private): {', '.join(names)}\n"
          f"next: course-grade release --kit {args.dir}")
    return 0


def _check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="course-grade check", description=(
        "A student's self-check before handing in: list what the grader will check, look for obvious problems "
        "and run the notebook as the grader does (FAST), with its visible self-checks only; no hidden check runs."))
    p.add_argument("notebook", type=Path, help="your notebook, e.g. ex01_freeze_and_probe.ipynb")
    p.add_argument("--exercise", default=None,
                   help="exercise name (default: from the notebook's metadata or title)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds for the whole notebook (default: the release's time limit)")
    p.add_argument("--no-run", action="store_true", help="only list and inspect; do not run")
    p.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto",
                   help="auto: the grader's bubblewrap sandbox when it can run here, else none")
    p.add_argument("--exercises-dir", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def _selfcheck(args) -> int:
    from course_utils.grading.runner import Settings
    from course_utils.grading.selfcheck import run_selfcheck

    if args.timeout is not None and args.timeout <= 0:
        print("course-grade check: error: --timeout must be > 0", file=sys.stderr)
        return 2
    settings = Settings(timeout=args.timeout, fast=True, device=detect_device(),
                        sandbox=args.sandbox)
    release_dir = args.exercises_dir / "release" if args.exercises_dir else None
    return run_selfcheck(args.notebook, args.exercise, release_dir, settings, run=not args.no_run)


_EXPORT_OPTIONS = {
    "--to": dict(choices=["canvas", "moodle"], required=True),
    "--roster": dict(type=Path, required=True, help="CSV: student_id,name,email,sis_user_id,sis_login_id,section"),
    "--out": dict(type=Path, default=None, help="default: OUT_DIR/canvas.csv or moodle.csv"),
    "--assignment": dict(default=None, help="the grade column's name (default: the exercise's name); for Canvas "
                                            "the name of an existing assignment, as Canvas exports it, updates that one"),
    "--moodle-id": dict(choices=["email", "idnumber"], default="email",
                        help="Moodle's identifier column: Email address, or ID number (sis_user_id)"),
}


def _export(argv: list[str]) -> int:
    from course_utils.grading.export import export

    p = argparse.ArgumentParser(prog="course-grade export",
                                description="Write a batch's final points as the LMS's own "
                                            "grade-import CSV.")
    p.add_argument("out_dir", type=Path, help="a graded batch (course-grade ... --out OUT_DIR)")
    for flag, options in _EXPORT_OPTIONS.items():
        p.add_argument(flag, **options)
    args = p.parse_args(argv)
    export(args.out_dir, args.to, args.roster, args.out, args.assignment, args.moodle_id)
    return 0


def _grade_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="course-grade",
        description="Grade STUDENT_ID.ipynb submissions against an exercise's hidden tests. "
                    "Other commands: `course-grade release [--check]`, `course-grade kit DIR`, "
                    "`course-grade check NOTEBOOK` (a student's self-check), "
                    "`course-grade export OUT_DIR --to canvas|moodle --roster ROSTER.csv`.",
    )
    p.add_argument("exercise", help="exercise name, e.g. ex01_freeze_and_probe")
    p.add_argument("submissions", type=Path, help="folder with one STUDENT_ID.ipynb per student")
    p.add_argument("--out", type=Path, required=True, help="folder for grades.csv, summary.json")
    p.add_argument("--kit", type=Path, default=None,
                   help="the instructor kit (course-grade kit): its hidden tests and secret")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="wall-clock seconds per notebook (default 600)")
    p.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel")
    p.add_argument("--fast", action="store_true", help="run notebooks with FAST=True")
    p.add_argument("--check-timeout", type=float, default=None,
                   help="seconds for the hidden checks of one notebook (default: --timeout)")
    p.add_argument("--exercises-dir", type=Path, default=None,
                   help="tree with source/ and grading/ (default: the repo's exercises/)")
    p.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto",
                   help="isolate each notebook with bubblewrap (auto: bwrap, or stop if it "
                        "cannot run); none: no isolation (default auto)")
    p.add_argument("--memory-mb", type=int, default=4096,
                   help="memory per notebook and per check process (default 4096)")
    p.add_argument("--max-procs", type=int, default=256,
                   help="processes + threads per notebook (default 256)")
    p.add_argument("--disk-mb", type=int, default=1024,
                   help="disk a notebook may write, per file and in total (default 1024)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="grade on the workers of this Dask scheduler instead of locally (each "
                        "worker grades as many notebooks at once as it has threads; --jobs is "
                        "then unused); see docs/GRADING.md")
    _deadline_args(p)
    p.add_argument("--overrides", type=Path, default=None, metavar="OVERRIDES.csv",
                   help="student_id,question,points,reason: points set by hand, applied last")
    p.add_argument("--only", default=None, metavar="STUDENT_ID",
                   help="grade this one submission again, into an existing OUT_DIR")
    return p


def _deadline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--due", default=None, metavar="ISO",
                   help="due time, ISO 8601 (e.g. 2026-12-01T23:59; local time without a zone)")
    p.add_argument("--late-penalty", type=float, default=0.0, metavar="PCT_PER_DAY",
                   help="percent of the points lost per started day late (default 0)")
    p.add_argument("--late-floor", type=float, default=0.0, metavar="PCT",
                   help="the lowest percent of the points a late submission keeps (default 0)")
    p.add_argument("--submitted-at", type=Path, default=None, metavar="TIMES.csv",
                   help="student_id,submitted_at (ISO 8601); default: the files' modification times")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from course_utils.grading.sandbox import SandboxError
    from course_utils.grading.spec import ExerciseError
    from course_utils.grading.submissions import SubmissionsError

    commands = {"release": lambda a: _release(_release_parser().parse_args(a)), "kit": _kit,
                "check": lambda a: _selfcheck(_check_parser().parse_args(a)), "export": _export}
    try:
        if argv and argv[0] in commands:
            return commands[argv[0]](argv[1:])
        return _grade(_grade_parser().parse_args(argv))
    except (ExerciseError, SubmissionsError, SandboxError) as exc:
        print(f"course-grade: error: {exc}", file=sys.stderr)
        return 2


def _grade(args) -> int:
    from course_utils.grading.runner import Settings
    from course_utils.grading.spec import load_exercise

    if args.timeout <= 0 or args.jobs < 1 or min(args.memory_mb, args.max_procs, args.disk_mb) < 1:
        print("course-grade: error: --timeout, --memory-mb, --max-procs, --disk-mb must be > 0 "
              "and --jobs >= 1", file=sys.stderr)
        return 2
    exercises_dir, secret = _exercises(args)
    exercise = load_exercise(args.exercise, exercises_dir)
    settings = Settings(timeout=args.timeout, check_timeout=args.check_timeout, jobs=args.jobs,
                        fast=args.fast, device=detect_device(), sandbox=args.sandbox,
                        memory_mb=args.memory_mb, max_procs=args.max_procs, disk_mb=args.disk_mb,
                        secret=secret)
    summary = _batch(args, exercise, settings)
    if summary is None:
        return 2
    for note in summary["notes"]:
        print(f"note: {note}", file=sys.stderr)
    counts = ", ".join(f"{k} {v}" for k, v in summary["status_counts"].items() if v)
    where = f" on {args.scheduler}" if args.scheduler else ""
    what = f"submission {args.only} of" if args.only else f"{summary['n_students']} submissions of"
    print(f"graded {what} {exercise.name}{where} -> {args.out} "
          f"({counts}; sandbox {summary['sandbox']['kind']})")
    return 0


def _exercises(args) -> tuple[Path | None, str | None]:
    """(exercises folder, the kit's secret); says so when grading with the public exercises."""
    from course_utils.grading.kit import read_secret
    from course_utils.grading.spec import ExerciseError

    if args.kit and args.exercises_dir:
        raise ExerciseError("--kit and --exercises-dir are two ways to name the exercises: give one")
    if args.kit:
        return args.kit, read_secret(args.kit)
    if args.exercises_dir is None:
        print("note: grading with the repository's exercises/, whose hidden tests every student "
              "can read; a graded class uses a kit: `course-grade kit DIR`, then --kit DIR "
              "(docs/GRADING.md)", file=sys.stderr)
    return args.exercises_dir, None


def _batch(args, exercise, settings) -> dict | None:
    """Grade locally, or on the Dask cluster; None (having said why) if the cluster cannot."""
    from course_utils.grading.batch import BatchOptions, grade_batch
    from course_utils.grading.deadlines import Deadline

    deadline = None
    if args.due or args.late_penalty or args.late_floor:
        deadline = Deadline(args.due, args.late_penalty, args.late_floor)
    options = BatchOptions(deadline, args.submitted_at, args.overrides, args.only)
    if not args.scheduler:
        return grade_batch(exercise, args.submissions, args.out, settings, options=options)
    from course_utils.grading.cluster import ClusterError  # dask itself loads only later

    try:
        return grade_batch(exercise, args.submissions, args.out, settings,
                           scheduler=args.scheduler, options=options)
    except ClusterError as exc:
        print(f"course-grade: error: {exc}", file=sys.stderr)
        return None


def detect_device() -> str:
    """"cuda" when a GPU is usable, else "cpu"; avoids importing torch on machines without one."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return "cpu"
    if not (shutil.which("nvidia-smi") or Path("/proc/driver/nvidia/version").exists()):
        return "cpu"
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:  # noqa: BLE001 - no torch or a broken CUDA setup: grade on CPU
        return "cpu"


if __name__ == "__main__":
    sys.exit(main())
