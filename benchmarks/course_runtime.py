"""Wall time of every course notebook, FAST and full settings, as the README's main job runs them.

    .venv/bin/python benchmarks/course_runtime.py [--fast-only] [--keep DIR]

--keep DIR keeps the executed notebooks (DIR/fast, DIR/full); `course results` uses them.

Targets on a 2-core CPU: FAST total <= 3 min, full total <= 15 min. Prints a table; the last
line is the headline `full_total_s: N` (or `fast_total_s: N` with --fast-only).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run_course(fast: bool, out: Path) -> dict:
    """One `course run` with an empty embedding cache: what a student's first run costs."""
    cmd = [sys.executable, "-m", "course_utils.runner", "run", "--out", str(out)] + (["--fast"] if fast else [])
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, COURSE_CACHE_DIR=cache)
        env.pop("COURSE_FAST", None)  # the --fast flag alone decides the mode
        # its progress lines go to stderr so that stdout is this script's table only
        subprocess.run(cmd, check=False, env=env, stdout=sys.stderr)
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast-only", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the executed notebooks here (default: a temp dir)")
    args = parser.parse_args()
    modes = [True] if args.fast_only else [True, False]
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        summaries = {fast: run_course(fast, root / ("fast" if fast else "full")) for fast in modes}
    names = [r["notebook"] for r in summaries[True]["notebooks"]]
    print(f"{'notebook':<40} " + " ".join(f"{('FAST' if f else 'full') + ' s':>9}" for f in modes))
    for i, name in enumerate(names):
        cells = []
        for f in modes:
            r = summaries[f]["notebooks"][i]
            cells.append(f"{r['seconds']:>9.1f}" if r["status"] == "ok" else f"{'FAILED':>9}")
        print(f"{name:<40} " + " ".join(cells))
    totals = {f: summaries[f]["total_seconds"] for f in modes}
    print(f"{'total':<40} " + " ".join(f"{totals[f]:>9.1f}" for f in modes))
    print("targets: FAST <= 180 s, full <= 900 s")
    if args.fast_only:
        print(f"fast_total_s: {totals[True]:.0f}")
    else:
        print(f"fast_total_s: {totals[True]:.0f}")
        print(f"full_total_s: {totals[False]:.0f}")


if __name__ == "__main__":
    main()
