"""Grader cost: the sandbox's overhead per submission, the grader's overhead beyond the
notebook's own compute, and --jobs scaling.

Grades N copies of a small exercise (the test fixture `ex01_add`, or a real one with
--exercise) with --sandbox none and --sandbox bwrap (the default), each with --jobs 1 and 2,
alternating so that a change in machine load hits both alike, and keeps the best of --repeat
runs. Also times the sandbox's start alone (launcher + cgroups + bwrap around
`python -c pass`, against a plain `python -c pass`), which machine load blurs less.

    .venv/bin/python benchmarks/grader_throughput.py [--n 8] [--exercise ex01_freeze_and_probe --fast]

Targets: sandbox overhead <= 0.5 s per submission; grader overhead <= 5 s per submission;
--jobs 2 >= 1.7x faster than --jobs 1 on 2 cores. Last line: `sandbox_overhead_s: N.NN`.
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
from course_utils.grading import sandbox

FIXTURE = repo_root() / "tests" / "grading_fixtures" / "exercises"
KINDS = ("none", "bwrap")


def grade(exercise: str, exercises_dir: Path, subs: Path, out: Path, jobs: int, fast: bool,
          kind: str) -> float:
    cmd = [sys.executable, "-m", "course_utils.grading.cli", exercise, str(subs), "--out", str(out),
           "--jobs", str(jobs), "--exercises-dir", str(exercises_dir), "--sandbox", kind]
    start = time.perf_counter()
    proc = subprocess.run(cmd + (["--fast"] if fast else []), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        sys.exit(f"grading failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return time.perf_counter() - start


def notebook_compute(executed: Path) -> float:
    """Seconds the cells themselves took (papermill records each cell's duration)."""
    nb = json.loads(executed.read_text())
    return sum((c.get("metadata", {}).get("papermill", {}).get("duration") or 0) for c in nb["cells"])


def start_cost(kind: str | None, repeats: int = 20) -> float:
    """Mean seconds to run `python -I -S -c pass` in the sandbox (kind None: plainly)."""
    box = sandbox.prepare(kind) if kind else None
    cmd = [sys.executable, "-I", "-S", "-c", "pass"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in sandbox.WRITABLE:
            (Path(tmp) / name).mkdir()
        start = time.perf_counter()
        for _ in range(repeats):
            if box is None:
                subprocess.run(cmd, check=True)
                continue
            with box.enter(Path(tmp)) as run:
                subprocess.run(run.wrap(cmd), check=True)
        return (time.perf_counter() - start) / repeats


def run_batches(args, exercises_dir: Path, tmp: Path) -> dict:
    subs = tmp / "subs"
    subs.mkdir()
    for i in range(args.n):
        shutil.copy(exercises_dir / "source" / f"{args.exercise}.ipynb", subs / f"student{i:02d}.ipynb")
    times = {}
    for _ in range(args.repeat):
        for jobs in (1, 2):
            for kind in KINDS:
                out = tmp / f"out-{kind}-{jobs}"
                t = grade(args.exercise, exercises_dir, subs, out, jobs, args.fast, kind)
                times[kind, jobs] = min(t, times.get((kind, jobs), t))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="submissions per batch")
    parser.add_argument("--exercise", default="ex01_add")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting; the best counts")
    args = parser.parse_args()
    exercises_dir = FIXTURE if args.exercise == "ex01_add" else repo_root() / "exercises"
    with tempfile.TemporaryDirectory(prefix="grader-throughput-") as tmp:
        tmp = Path(tmp)
        times = run_batches(args, exercises_dir, tmp)
        compute = [notebook_compute(p) for p in (tmp / "out-bwrap-1" / "executed").glob("*.ipynb")]
        grades = {(tmp / f"out-{k}-{j}" / "grades.csv").read_text() for k in KINDS for j in (1, 2)}
    starts = {kind: start_cost(kind) for kind in (None, *KINDS)}
    n = args.n
    print(f"exercise {args.exercise}, {n} submissions{' (--fast)' if args.fast else ''}")
    print(f"{'sandbox':>7} {'jobs':>4} {'batch s':>8} {'s / submission':>15}")
    for (kind, jobs), t in times.items():
        print(f"{kind:>7} {jobs:>4} {t:>8.1f} {t / n:>15.2f}")
    overhead = (times["bwrap", 1] - times["none", 1]) / n
    mean_compute = sum(compute) / len(compute)
    print(f"notebook's own cell time {mean_compute:.2f} s; grader overhead per submission "
          f"{times['bwrap', 1] / n - mean_compute:.2f} s (target <= 5 s); "
          f"grades identical across sandbox and --jobs: {len(grades) == 1}")
    print(f"start of `python -c pass`: {starts[None]:.3f} s plain, {starts['none']:.3f} s with "
          f"the limits (launcher + cgroups), {starts['bwrap']:.3f} s in bwrap too: the sandbox's "
          f"fixed cost is {starts['bwrap'] - starts[None]:.3f} s")
    print(f"jobs2_speedup: {times['bwrap', 1] / times['bwrap', 2]:.1f}x with the sandbox, "
          f"{times['none', 1] / times['none', 2]:.1f}x without")
    print(f"sandbox_overhead_s: {overhead:.2f}")


if __name__ == "__main__":
    main()
