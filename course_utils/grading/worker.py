"""Runs ONE submission: ``python -m course_utils.grading.worker < job.json``.

The parent (runner.py) starts this in a fresh process per submission and owns the wall-clock
limit: it kills this process and everything below it when time is up, so nothing here has to
be trusted to stop on its own. The job arrives on stdin, not in a file, so the hidden tests'
``collect`` code and the answers file name never sit on disk where the student's code could
read them ahead of time.

Writes ``GRADER_DIR/result.json`` ({"status", "detail", "answers"}) and
``GRADER_DIR/executed.ipynb`` (outputs capped, the grader's own cell removed).
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

from course_utils.grading.answers import build_collect_cell
from course_utils.grading.spec import COLLECT_TAG, timeout_detail
from course_utils.grading.procs import forget_cwd_on_path


def main() -> int:
    forget_cwd_on_path()
    job = json.loads(sys.stdin.read())
    grader_dir = Path(job["grader_dir"])
    answers_base = str(grader_dir / f"answers-{secrets.token_hex(16)}")
    nb = nbformat.read(job["notebook"], as_version=4)
    collecting = job.get("collect_source") is not None  # None: a student's self-check
    if collecting:
        cell = new_code_cell(build_collect_cell(job["collect_source"], answers_base))
        cell.metadata["tags"] = [COLLECT_TAG]
        nb.cells.append(cell)
    # On SIGTERM (the parent's timeout) save what ran so far, then leave without cleanup:
    # the parent kills the kernel itself.
    signal.signal(signal.SIGTERM, lambda *_: _stop(grader_dir))
    status, detail = _execute(nb, job)
    if status == "ok" and collecting and not os.path.exists(answers_base + ".json"):
        status, detail = "error", "the notebook ran but the grader's final cell wrote no answers"
    _save_executed(grader_dir)
    result = {"status": status, "detail": detail,
              "answers": Path(answers_base).name if status == "ok" and collecting else None}
    (grader_dir / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return 0


def _execute(nb, job) -> tuple[str, str]:
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from course_utils.grading import engine

    logging.getLogger("papermill").setLevel(logging.ERROR)  # "unknown parameter" etc. is noise
    engine.CURRENT["nb"] = nb
    try:
        papermill.execute_notebook(
            nb, None, parameters=job["parameters"], engine_name=engine.ENGINE_NAME,
            kernel_name="python3", cwd=job["cwd"], progress_bar=False,
            request_save_on_cell_execute=False, start_timeout=job["start_timeout"],
            execution_timeout=job["cell_timeout"],
        )
    except PapermillExecutionError:
        pass  # described below from the notebook itself, like the sys.exit() papermill lets pass
    except CellTimeoutError:
        return "timeout", timeout_detail(job["timeout"])
    except DeadKernelError:
        return "error", "kernel died while running the notebook (os._exit, crash or out of memory?)"
    failure = _first_failure(engine.CURRENT["nb"])
    return ("error", failure) if failure else ("ok", "notebook ran")


def _first_failure(nb) -> str | None:
    """Describe the cell that stopped the run (papermill marks it), or None if none did."""
    for index, cell in enumerate(nb.cells):
        if not cell.get("metadata", {}).get("papermill", {}).get("exception"):
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors:
            ename = errors[0].get("ename") or "error"
            lines = str(errors[0].get("evalue") or "").strip().splitlines()
            what = f"{ename}: {lines[0]}" if lines else ename
        else:  # e.g. get_ipython().set_custom_exc(...) swallowed the traceback
            what = "an error (the notebook hid the traceback)"
        if COLLECT_TAG in cell.get("metadata", {}).get("tags", []):
            return f"the grader's final cell failed: {what}"
        where = f"cell [{cell.execution_count}]" if cell.get("execution_count") else "a cell"
        return f"{where} raised {what}"
    return None


def _save_executed(grader_dir: Path) -> None:
    from course_utils.grading import engine

    nb = engine.CURRENT.get("nb")
    if nb is None:
        return
    # The collect cell names the hidden inputs: keep it out of what students may get back.
    nb.cells = [c for c in nb.cells if COLLECT_TAG not in c.get("metadata", {}).get("tags", [])]
    nb.metadata.pop("papermill", None)
    tmp = grader_dir / "executed.ipynb.tmp"
    nbformat.write(nb, str(tmp))
    os.replace(tmp, grader_dir / "executed.ipynb")


def _stop(grader_dir: Path) -> None:
    try:
        _save_executed(grader_dir)
    finally:
        os._exit(3)


if __name__ == "__main__":
    sys.exit(main())
