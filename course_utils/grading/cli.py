"""``course-grade``: release student notebooks, or grade a folder of submissions.

    course-grade release [--source DIR] [--release DIR] [--check]
    course-grade check NOTEBOOK [--exercise NAME] [--timeout S] [--no-run] [--sandbox ...]
    course-grade EXERCISE SUBMISSIONS_DIR --out OUT_DIR [--timeout S] [--jobs N] [--fast]
                 [--sandbox {auto,bwrap,none}] [--memory-mb MB] [--max-procs N] [--disk-mb MB]
                 [--scheduler tcp://HOST:PORT]

Exit codes: 0 done (students may still have failed), 1 ``release --check`` found a stale
release or ``check`` found problems in the notebook, 2 a usage problem (unknown exercise, missing folder, malformed hidden tests), a
sandbox that cannot run here, or a Dask cluster that cannot grade (``--scheduler``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def _release_parser() -> argparse.ArgumentParser:
    from course_utils.grading.spec import default_exercises_dir

    base = default_exercises_dir()
    p = argparse.ArgumentParser(prog="course-grade release",
                                description="Write exercises/release/ from exercises/source/.")
    p.add_argument("--source", type=Path, default=base / "source", help="source notebooks")
    p.add_argument("--release", type=Path, default=base / "release", help="where to write")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 if stale")
    return p


def _check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="course-grade check",
        description="A student's self-check before handing in: list what the grader will check, "
                    "look for obvious problems and run the notebook as the grader does (FAST), "
                    "with its visible self-checks only; no hidden check runs.")
    p.add_argument("notebook", type=Path, help="your notebook, e.g. ex01_freeze_and_probe.ipynb")
    p.add_argument("--exercise", default=None,
                   help="exercise name (default: found from the notebook's title or file name)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds for the whole notebook, as the grader's default (600)")
    p.add_argument("--no-run", action="store_true", help="only list and inspect; do not run")
    p.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto",
                   help="auto: the grader's bubblewrap sandbox when it can run here, else none")
    p.add_argument("--exercises-dir", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def _selfcheck(args) -> int:
    from course_utils.grading.runner import Settings
    from course_utils.grading.selfcheck import run_selfcheck

    if args.timeout <= 0:
        print("course-grade check: error: --timeout must be > 0", file=sys.stderr)
        return 2
    settings = Settings(timeout=args.timeout, fast=True, device=detect_device(),
                        sandbox=args.sandbox)
    return run_selfcheck(args.notebook, args.exercise, args.exercises_dir, settings,
                         run=not args.no_run)


def _grade_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="course-grade",
        description="Grade STUDENT_ID.ipynb submissions against an exercise's hidden tests. "
                    "Other commands: `course-grade release [--check]`, "
                    "`course-grade check NOTEBOOK` (a student's self-check).",
    )
    p.add_argument("exercise", help="exercise name, e.g. ex01_freeze_and_probe")
    p.add_argument("submissions", type=Path, help="folder with one STUDENT_ID.ipynb per student")
    p.add_argument("--out", type=Path, required=True, help="folder for grades.csv, summary.json")
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
                   help="memory per notebook, its processes together (default 4096)")
    p.add_argument("--max-procs", type=int, default=256,
                   help="processes + threads per notebook (default 256)")
    p.add_argument("--disk-mb", type=int, default=1024,
                   help="disk a notebook may write, per file and in total (default 1024)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="grade on the workers of this Dask scheduler instead of locally (each "
                        "worker grades as many notebooks at once as it has threads; --jobs is "
                        "then unused); see docs/GRADING.md")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from course_utils.grading.sandbox import SandboxError
    from course_utils.grading.spec import ExerciseError
    from course_utils.grading.submissions import SubmissionsError

    try:
        if argv and argv[0] == "release":
            args = _release_parser().parse_args(argv[1:])
            from course_utils.grading.release import run_release

            return run_release(args.source, args.release, check=args.check)
        if argv and argv[0] == "check":
            return _selfcheck(_check_parser().parse_args(argv[1:]))
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
    exercise = load_exercise(args.exercise, args.exercises_dir)
    settings = Settings(timeout=args.timeout, check_timeout=args.check_timeout, jobs=args.jobs,
                        fast=args.fast, device=detect_device(), sandbox=args.sandbox,
                        memory_mb=args.memory_mb, max_procs=args.max_procs, disk_mb=args.disk_mb)
    summary = _batch(args, exercise, settings)
    if summary is None:
        return 2
    for note in summary["notes"]:
        print(f"note: {note}", file=sys.stderr)
    counts = ", ".join(f"{k} {v}" for k, v in summary["status_counts"].items() if v)
    where = f" on {args.scheduler}" if args.scheduler else ""
    print(f"graded {summary['n_students']} submissions of {exercise.name}{where} -> {args.out} "
          f"({counts}; sandbox {summary['sandbox']['kind']})")
    return 0


def _batch(args, exercise, settings) -> dict | None:
    """Grade locally, or on the Dask cluster; None (having said why) if the cluster cannot."""
    from course_utils.grading.batch import grade_batch

    if not args.scheduler:
        return grade_batch(exercise, args.submissions, args.out, settings)
    from course_utils.grading.cluster import ClusterError  # dask itself loads only later

    try:
        return grade_batch(exercise, args.submissions, args.out, settings,
                           scheduler=args.scheduler)
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
