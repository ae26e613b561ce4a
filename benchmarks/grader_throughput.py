"""Grader cost: the sandbox's overhead per submission, the grader's overhead beyond the
notebook's own compute, --jobs scaling, and Dask's overhead (`--scheduler`).

Grades N copies of a small exercise (the test fixture `ex01_add`, or a real one with
--exercise) with --sandbox none and --sandbox bwrap (the default), each with --jobs 1 and 2,
and with --sandbox bwrap on a 2-worker Dask LocalCluster (one thread each, on loopback) whose
workers are started as docs/GRADING.md says (not daemonic: the warm check server works) and,
for comparison, with Dask's default nanny settings (checks as plain subprocesses). Settings
alternate so that a change in machine load hits all alike; the best of --repeat runs counts.
The clusters start before the timing: a scheduler is up before anyone grades on it. Also times
the sandbox's start alone (launcher + cgroups + bwrap around `python -c pass`, against a plain
`python -c pass`), which machine load blurs less.

    .venv/bin/python benchmarks/grader_throughput.py [--n 8] [--exercise ex01_freeze_and_probe --fast]
    .venv/bin/python benchmarks/grader_throughput.py --only-dask   # --jobs 2 against Dask only

Targets: sandbox overhead <= 0.5 s per submission; grader overhead <= 5 s per submission;
--jobs 2 >= 1.7x faster than --jobs 1 on 2 cores; Dask <= 0.5 s per submission more than
--jobs 2. Last lines: `dask_overhead_s: N.NN`, then `sandbox_overhead_s: N.NN`.
"""
from __future__ import annotations

import argparse
import contextlib
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
# Dask clusters: name -> whether its worker processes are daemonic (Dask's default)
CLUSTERS = {"dask": False, "dask-default": True}


def grade(exercise: str, exercises_dir: Path, subs: Path, out: Path, jobs: int, fast: bool,
          kind: str, scheduler: str | None = None) -> float:
    cmd = [sys.executable, "-m", "course_utils.grading.cli", exercise, str(subs), "--out", str(out),
           "--jobs", str(jobs), "--exercises-dir", str(exercises_dir), "--sandbox", kind]
    cmd += ["--scheduler", scheduler] if scheduler else []
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


def start_cluster(stack: contextlib.ExitStack, daemon: bool) -> str:
    """A 2-worker LocalCluster on loopback (one thread per worker, as --jobs 2); its address."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.worker.daemon": daemon}):  # read as the workers start
        cluster = stack.enter_context(LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=":0"))
    return cluster.scheduler_address


def settings_to_run(args, stack: contextlib.ExitStack) -> dict:
    """{(kind, jobs): scheduler address or None}, in the order they alternate."""
    local = [(kind, jobs) for jobs in (1, 2) for kind in KINDS]
    runs = {key: None for key in ([("bwrap", 2)] if args.only_dask else local)}
    for name, daemon in CLUSTERS.items():
        runs[name, 2] = start_cluster(stack, daemon)
    return runs


def run_batches(args, exercises_dir: Path, tmp: Path, runs: dict) -> tuple[dict, dict]:
    """(best, first) seconds per setting; the first batch on fresh Dask workers also pays
    their one-off start (imports, sandbox, the check server's torch import)."""
    subs = tmp / "subs"
    subs.mkdir()
    for i in range(args.n):
        shutil.copy(exercises_dir / "source" / f"{args.exercise}.ipynb", subs / f"student{i:02d}.ipynb")
    times, first = {}, {}
    for _ in range(args.repeat):
        for (kind, jobs), scheduler in runs.items():
            out = tmp / f"out-{kind}-{jobs}"
            sandbox_kind = "bwrap" if scheduler else kind
            t = grade(args.exercise, exercises_dir, subs, out, jobs, args.fast, sandbox_kind,
                      scheduler)
            times[kind, jobs] = min(t, times.get((kind, jobs), t))
            first.setdefault((kind, jobs), t)
    return times, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="submissions per batch")
    parser.add_argument("--exercise", default="ex01_add")
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--repeat", type=int, default=2, help="runs per setting; the best counts")
    parser.add_argument("--only-dask", action="store_true",
                        help="only --jobs 2 against the Dask clusters (all with the sandbox)")
    args = parser.parse_args()
    exercises_dir = FIXTURE if args.exercise == "ex01_add" else repo_root() / "exercises"
    with tempfile.TemporaryDirectory(prefix="grader-throughput-") as tmp, \
            contextlib.ExitStack() as clusters:
        tmp = Path(tmp)
        runs = settings_to_run(args, clusters)
        times, first = run_batches(args, exercises_dir, tmp, runs)
        compute = [notebook_compute(p) for p in (tmp / "out-bwrap-1" / "executed").glob("*.ipynb")]
        grades = {(tmp / f"out-{k}-{j}" / "grades.csv").read_text() for k, j in times}
    print(f"exercise {args.exercise}, {args.n} submissions{' (--fast)' if args.fast else ''}")
    print(f"{'grading on':>12} {'jobs':>4} {'batch s':>8} {'s / submission':>15} {'first s':>8}")
    for (kind, jobs), t in times.items():
        print(f"{kind:>12} {jobs:>4} {t:>8.1f} {t / args.n:>15.2f} {first[kind, jobs]:>8.1f}")
    print(f"grades identical across sandbox, --jobs and Dask: {len(grades) == 1}")
    if not args.only_dask:
        local_summary(times, compute, args.n)
    dask_summary(times, first, args.n)
    if not args.only_dask:
        print(f"sandbox_overhead_s: {(times['bwrap', 1] - times['none', 1]) / args.n:.2f}")


def local_summary(times: dict, compute: list, n: int) -> None:
    starts = {kind: start_cost(kind) for kind in (None, *KINDS)}
    mean_compute = sum(compute) / len(compute)
    print(f"notebook's own cell time {mean_compute:.2f} s; grader overhead per submission "
          f"{times['bwrap', 1] / n - mean_compute:.2f} s (target <= 5 s)")
    print(f"start of `python -c pass`: {starts[None]:.3f} s plain, {starts['none']:.3f} s with "
          f"the limits (launcher + cgroups), {starts['bwrap']:.3f} s in bwrap too: the sandbox's "
          f"fixed cost is {starts['bwrap'] - starts[None]:.3f} s")
    print(f"jobs2_speedup: {times['bwrap', 1] / times['bwrap', 2]:.1f}x with the sandbox, "
          f"{times['none', 1] / times['none', 2]:.1f}x without")


def dask_summary(times: dict, first: dict, n: int) -> None:
    """Dask's cost per submission beyond local --jobs 2 (same sandbox, same 2 cores)."""
    extra = {name: (times[name, 2] - times["bwrap", 2]) / n for name in CLUSTERS}
    cold = (first["dask", 2] - times["bwrap", 2]) / n
    print(f"Dask, 2 workers x 1 thread, against --jobs 2: {extra['dask']:+.2f} s per submission "
          f"(target <= 0.5 s; {cold:+.2f} s for the first batch on fresh workers); with Dask's "
          f"default daemonic workers (checks as subprocesses) {extra['dask-default']:+.2f} s. "
          "Each local batch starts its own check server (a torch import); warm workers keep theirs")
    print(f"dask_overhead_s: {extra['dask']:.2f}")


if __name__ == "__main__":
    main()
