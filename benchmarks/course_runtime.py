"""Wall time of every course notebook, FAST and full settings, as the README's main job runs them.

    .venv/bin/python benchmarks/course_runtime.py [--fast-only] [--keep DIR] [--only PATTERN]

--keep DIR keeps the executed notebooks (DIR/fast, DIR/full); `course results` uses them.
--only PATTERN times only the notebooks whose file name contains PATTERN (a quick check).

Budgets on a 2-core CPU: each notebook <= 25 s FAST and <= 5 min full; the lessons together
<= 220 s FAST and <= 35 min full. Prints a table, the runs over budget and the fits of each
mode (from `course run`'s fits.jsonl: how many stopped on a plateau, how many hit the cap still
rising); the last line is the headline `full_total_s: N` (or `fast_total_s: N` with --fast-only). Totals count
only the notebooks that ran to the end: a failed notebook stops early, so its time would make
the total look better than the course is. If any notebook failed, the script exits with 1.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


PER_NOTEBOOK = {True: 25, False: 300}   # seconds, FAST and full
TOTAL = {True: 220, False: 2100}


def run_course(fast: bool, out: Path, only: str | None = None) -> dict:
    """One `course run` with an empty embedding cache: what a student's first run costs."""
    cmd = [sys.executable, "-m", "course_utils.tooling.runner", "run", "--out", str(out)]
    cmd += (["--fast"] if fast else []) + (["--only", only] if only else [])
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, COURSE_CACHE_DIR=cache)
        env.pop("COURSE_FAST", None)  # the --fast flag alone decides the mode
        # its progress lines go to stderr so that stdout is this script's table only
        subprocess.run(cmd, check=False, env=env, stdout=sys.stderr)
    summary = out / "summary.json"
    if not summary.exists():  # the runner itself crashed: there is no timing to report
        raise SystemExit(f"course_runtime: `course run` wrote no {summary}; its errors are above")
    return json.loads(summary.read_text())


def table(summaries: dict[bool, dict]) -> tuple[list[str], list[str]]:
    """The printed table and the headline lines; also returns the names of failed runs."""
    modes = list(summaries)
    seconds = {f: {r["notebook"]: r["seconds"] for r in summaries[f]["notebooks"] if r["status"] == "ok"}
               for f in modes}
    failed = [f"{r['notebook']} ({'FAST' if f else 'full'})" for f in modes
              for r in summaries[f]["notebooks"] if r["status"] != "ok"]
    names = list(dict.fromkeys(r["notebook"] for f in modes for r in summaries[f]["notebooks"]))
    lines = [f"{'notebook':<40} " + " ".join(f"{('FAST' if f else 'full') + ' s':>9}" for f in modes)]
    for name in names:
        cells = [f"{seconds[f][name]:>9.1f}" if name in seconds[f] else f"{'FAILED':>9}" for f in modes]
        lines.append(f"{name:<40} " + " ".join(cells))
    totals = {f: sum(seconds[f].values()) for f in modes}
    label = "total (successful runs)" if failed else "total"
    lines.append(f"{label:<40} " + " ".join(f"{totals[f]:>9.1f}" for f in modes))
    lines.append(f"budgets: a notebook <= {PER_NOTEBOOK[True]} s FAST and <= {PER_NOTEBOOK[False]} s full; "
                 f"the lessons <= {TOTAL[True]} s FAST and <= {TOTAL[False]} s full")
    over = [f"{name} ({'FAST' if f else 'full'} {secs:.0f} s)" for f in modes for name, secs in seconds[f].items()
            if secs > PER_NOTEBOOK[f]] + [f"total {'FAST' if f else 'full'} {totals[f]:.0f} s" for f in modes
                                          if totals[f] > TOTAL[f]]
    lines.append(f"over budget: {', '.join(over) if over else 'none'}")
    for f in modes:
        fits = summaries[f].get("fits")
        if fits and fits.get("fits"):
            lines.append(f"{'FAST' if f else 'full'} fits: {fits['fits']} training runs, {fits['stopped_before_cap']} "
                         f"stopped on a validation plateau, {fits['still_rising']} hit the cap still rising "
                         f"({fits['still_rising_share']:.0%})")
    if failed:
        lines.append(f"FAILED: {len(failed)} run(s), left out of the totals: {', '.join(failed)}")
    lines += [f"{'fast' if f else 'full'}_total_s: {totals[f]:.0f}" for f in modes]
    return lines, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast-only", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the executed notebooks here (default: a temp dir)")
    parser.add_argument("--only", help="only the notebooks whose file name contains this text")
    args = parser.parse_args(argv)
    modes = [True] if args.fast_only else [True, False]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        summaries = {fast: run_course(fast, root / ("fast" if fast else "full"), args.only) for fast in modes}
    lines, failed = table(summaries)
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
