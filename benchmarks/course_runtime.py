"""Wall time of every course notebook, FAST and full settings, as the README's main job runs them.

    .venv/bin/python benchmarks/course_runtime.py [--fast-only]

Targets on a 2-core CPU: FAST total <= 3 min, full total <= 15 min. Prints a table; the last
line is the headline `full_total_s: N` (or `fast_total_s: N` with --fast-only).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def run_course(fast: bool, out: Path) -> dict:
    cmd = [sys.executable, "-m", "course_utils.runner", "run", "--out", str(out)] + (["--fast"] if fast else [])
    subprocess.run(cmd, check=False)
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast-only", action="store_true")
    args = parser.parse_args()
    modes = [True] if args.fast_only else [True, False]
    with tempfile.TemporaryDirectory() as tmp:
        summaries = {fast: run_course(fast, Path(tmp) / ("fast" if fast else "full")) for fast in modes}
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
