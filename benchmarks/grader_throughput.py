"""Grader cost: overhead per submission beyond the notebook's own compute, and --jobs scaling.

Grades N copies of a small exercise (the test fixture `ex01_add`, or a real one with
--exercise) with --jobs 1 and --jobs 2.

    .venv/bin/python benchmarks/grader_throughput.py [--n 8] [--exercise ex01_freeze_and_probe --fast]

Targets: overhead <= 5 s per submission, --jobs 2 >= 1.7x faster than --jobs 1 on 2 cores.
Last line: `jobs2_speedup: N.Nx`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from course_utils.config import repo_root

FIXTURE = repo_root() / "tests" / "grading_fixtures" / "exercises"


def grade(exercise: str, exercises_dir: Path, subs: Path, out: Path, jobs: int, fast: bool) -> float:
    cmd = [sys.executable, "-m", "course_utils.grading.cli", exercise, str(subs), "--out", str(out),
           "--jobs", str(jobs), "--exercises-dir", str(exercises_dir)] + (["--fast"] if fast else [])
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def notebook_compute(executed: Path) -> float:
    """Seconds the cells themselves took (papermill records each cell's duration)."""
    nb = json.loads(executed.read_text())
    return sum((c.get("metadata", {}).get("papermill", {}).get("duration") or 0) for c in nb["cells"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="submissions per batch")
    parser.add_argument("--exercise", default="ex01_add")
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args()
    exercises_dir = FIXTURE if args.exercise == "ex01_add" else repo_root() / "exercises"
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        for i in range(args.n):
            shutil.copy(exercises_dir / "source" / f"{args.exercise}.ipynb", subs / f"student{i:02d}.ipynb")
        times = {j: grade(args.exercise, exercises_dir, subs, Path(tmp) / f"out{j}", j, args.fast) for j in (1, 2)}
        compute = [notebook_compute(p) for p in (Path(tmp) / "out1" / "executed").glob("*.ipynb")]
        same = (Path(tmp) / "out1" / "grades.csv").read_text() == (Path(tmp) / "out2" / "grades.csv").read_text()
    per_sub = times[1] / args.n
    mean_compute = sum(compute) / len(compute)
    print(f"exercise {args.exercise}, {args.n} submissions{' (--fast)' if args.fast else ''}")
    print(f"{'jobs':>4} {'batch s':>8} {'s / submission':>15}")
    for j, t in times.items():
        print(f"{j:>4} {t:>8.1f} {t / args.n:>15.2f}")
    print(f"notebook's own cell time {mean_compute:.2f} s; grader overhead per submission "
          f"{per_sub - mean_compute:.2f} s (target <= 5 s); grades identical across --jobs: {same}")
    print(f"jobs2_speedup: {times[1] / times[2]:.1f}x")


if __name__ == "__main__":
    main()
