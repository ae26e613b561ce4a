"""The course's main job: execute every notebook headless with papermill and summarise.

``course run [--fast] [--out DIR] [--only PATTERN]`` writes the executed copies to
``DIR/notebooks/`` and ``DIR/summary.json``, prints one line per notebook, and exits non-zero
if any notebook failed; ``course run --solutions`` does the same for the worked solutions in
``notebooks/solutions/`` (to ``DIR/notebooks/solutions/`` and ``DIR/solutions_summary.json``).
``course colab [--repo URL]`` rewrites the Colab badge and setup cell of the notebooks and the exercises, then regenerates exercises/release/ (see course_utils/tooling/colab.py).
``course results`` runs the benchmarks and writes docs/RESULTS.md (see course_utils/tooling/results.py).
``course site`` builds the course website in out/site/ from the executed notebooks (see course_utils/tooling/site.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from course_utils.tooling import results as results_page
from course_utils.tooling import site as site_page
from course_utils.config import is_fast, repo_root
from course_utils.tooling.notebooks import SOLUTIONS, LESSONS, find_notebooks, is_prose_cell


def kernel_config():
    """Settings for the kernel papermill starts: its channels encrypted with CurveZMQ.

    ipykernel (>= 7) warns at every start whose channels are plain TCP ("Kernel is running over
    TCP without encryption ..."), one warning block per notebook in `course run`. The fix is the
    one the warning names: the kernel manager provisions CurveZMQ keys ('auto' does so when the
    kernelspec declares support, as ipykernel's does). Where jupyter_client or pyzmq cannot do
    that, nothing is configured and the kernel runs as before (the warning then stays).
    """
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if not (zmq.has("curve") and KernelManager.class_traits().get("transport_encryption")):
        return Config()
    return Config({"KernelManager": {"transport_encryption": "auto"}})


def run_notebook(path: Path, out_dir: Path, fast: bool, timeout: int, fits_log: Path | None = None) -> dict:
    """Execute one notebook; never raises, so one failure does not stop the others.

    The kernel inherits this process's environment: ``COURSE_FAST`` (the one FAST switch, also
    what ``load_dataset`` follows), and with ``fits_log`` ``COURSE_FITS_LOG`` and ``COURSE_NOTEBOOK``,
    so every training run in the notebook appends a line to that file (``train.log_fit``)."""
    import papermill as pm

    out_path = out_dir / path.name
    os.environ["COURSE_FAST"] = "1" if fast else "0"
    if fits_log is not None:
        os.environ.update(COURSE_FITS_LOG=str(fits_log.resolve()), COURSE_NOTEBOOK=path.name)
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(path), str(out_path), parameters={"FAST": fast}, kernel_name="python3",
                            cwd=str(path.parent), progress_bar=False, execution_timeout=timeout,
                            config=kernel_config())
        status, detail = "ok", ""
    except Exception as err:  # papermill wraps cell errors; keep the first line for the summary
        status, detail = "failed", f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
    return {"notebook": path.name, "status": status, "seconds": round(time.perf_counter() - start, 1),
            "output": str(out_path), "detail": detail}


def fit_summary(fits_log: Path) -> dict:
    """Counts over ``fits.jsonl``: training runs, those that stopped on a plateau, those still rising."""
    rows = [json.loads(line) for line in fits_log.read_text().splitlines()] if fits_log.exists() else []
    rising = sum(r["still_rising"] for r in rows)
    return {"fits": len(rows), "stopped_before_cap": sum(r["epochs_run"] < r["max_epochs"] for r in rows),
            "still_rising": rising, "still_rising_share": rising / len(rows) if rows else 0.0}


CHECK_MARK = "# NBVAL_CHECK_OUTPUT"


def strip_outputs(path: Path, executed: Path | None = None) -> int:
    """Clear outputs of every cell except those nbval checks; those take the executed run's outputs.

    Cells are matched by id (papermill inserts its parameters cell, so indices shift).
    Returns the number of checked cells kept.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    ran = {c.get("id"): c for c in nbformat.read(executed, as_version=4).cells} if executed else {}
    kept = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if CHECK_MARK in cell.source:
            source = ran.get(cell.get("id"))
            if source is not None:
                cell.outputs = source.outputs  # checked cells should print text only, no figures
                cell.execution_count = source.execution_count
            if cell.outputs and cell.execution_count is None:
                # nbval refuses outputs without a count ("Unrun reference cell has outputs")
                cell.execution_count = kept + 1
            kept += 1
        else:
            cell.outputs, cell.execution_count = [], None
    nb.metadata.pop("papermill", None)
    nbformat.write(nb, path)
    return kept


PROSE_TITLE = "# @title Text built from this run's numbers (double-click to see the code)"


def hide_prose(path: Path) -> int:
    """Collapse the source of every prose cell, in JupyterLab (metadata ``jupyter.source_hidden``) and on
    Colab (``cellView: form`` and a ``# @title`` first line: Colab ignores JupyterLab's flag); returns how
    many cells changed. Their outputs, the text itself, stay visible."""
    import nbformat

    nb, changed = nbformat.read(path, as_version=4), 0
    for cell in nb.cells:
        if cell.cell_type != "code" or not is_prose_cell(cell.source):
            continue
        before = (dict(cell.metadata), cell.source)
        cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
        cell.metadata["cellView"] = "form"
        if not cell.source.lstrip().startswith("# @title"):
            cell.source = f"{PROSE_TITLE}\n{cell.source}"
        changed += (dict(cell.metadata), cell.source) != before
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute every notebook in notebooks/ headless")
    run.add_argument("--fast", action="store_true", default=is_fast(),
                     help="small data and few epochs (also env COURSE_FAST=1 / true / yes / on)")
    run.add_argument("--out", type=Path, default=repo_root() / "out", help="where executed notebooks go")
    run.add_argument("--only", help="run only notebooks whose file name contains this text")
    run.add_argument("--timeout", type=int, default=1800, help="seconds per cell before giving up")
    run.add_argument("--solutions", action="store_true",
                     help="execute the worked solutions (notebooks/solutions/) instead of the lessons")
    strip = sub.add_parser("strip", help="clear committed outputs except cells marked " + CHECK_MARK)
    strip.add_argument("notebooks", nargs="+", type=Path)
    strip.add_argument("--executed", type=Path, help="folder of executed copies to take checked outputs from")
    hide = sub.add_parser("hide-prose", help="collapse the source of cells that only render text (say, transfer_note)")
    hide.add_argument("notebooks", nargs="+", type=Path)
    colab = sub.add_parser("colab", help="write the Open-in-Colab badge and setup cell into every notebook and exercise")
    colab.add_argument("--repo", help="the course's GitHub URL; stored in pyproject.toml first")
    results_page.add_parser(sub)
    site_page.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "site":
        out = args.out or repo_root() / "out"
        if not site_page.executed_notebooks(out):
            print("course site: no executed notebooks in out/notebooks/: running `course run --fast` first")
            main(["run", "--fast", "--out", str(out)])
        return site_page.main(args)
    if args.command == "results":
        return results_page.main(args)
    if args.command == "colab":
        from course_utils.tooling import colab
        return colab.main(args.repo)
    if args.command == "hide-prose":
        for nb in args.notebooks:
            print(f"{nb}: collapsed {hide_prose(nb)} prose cell(s)")
        return 0
    if args.command == "strip":
        for nb in args.notebooks:
            executed = args.executed / nb.name if args.executed else None
            print(f"{nb}: kept outputs of {strip_outputs(nb, executed)} checked cell(s)")
        return 0

    folder = SOLUTIONS if args.solutions else LESSONS
    notebooks = find_notebooks(repo_root() / folder, args.only)
    if not notebooks:
        print(f"course run: no notebooks found in {folder}/ (nothing to execute yet)")
        return 0
    out_dir = args.out / folder
    out_dir.mkdir(parents=True, exist_ok=True)
    mode = "FAST" if args.fast else "full"
    print(f"course run: executing {len(notebooks)} notebook(s) in {mode} mode -> {out_dir}")
    fits_log = args.out / ("solutions_fits.jsonl" if args.solutions else "fits.jsonl")
    fits_log.unlink(missing_ok=True)   # one line per training run of this run only
    results = []
    for path in notebooks:
        result = run_notebook(path, out_dir, args.fast, args.timeout, fits_log)
        results.append(result)
        print(f"  {result['status']:>6}  {result['seconds']:7.1f} s  {path.name}  {result['detail']}", flush=True)
    total = sum(r["seconds"] for r in results)
    summary = {"mode": mode, "total_seconds": round(total, 1), "notebooks": results, "fits": fit_summary(fits_log)}
    summary_path = args.out / ("solutions_summary.json" if args.solutions else "summary.json")
    summary_path.write_text(json.dumps(summary, indent=2))
    failed = [r for r in results if r["status"] != "ok"]
    print(f"course run: {len(results) - len(failed)} ok, {len(failed)} failed, {total:.0f} s in all; "
          f"summary in {summary_path}")
    fits = summary["fits"]
    if fits["fits"]:
        print(f"course run: {fits['fits']} training runs, {fits['still_rising']} hit the epoch cap while validation "
              f"still rose ({fits['still_rising_share']:.0%}); one line each in {fits_log}")
    print("Open the course in JupyterLab with:  .venv/bin/jupyter lab notebooks/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
