"""Finding submissions in a folder and deciding whether each one is a usable notebook.

Validation happens in the parent, before any kernel starts: a broken file costs nothing and
gets status ``invalid`` with the reason. Outputs are cleared *before* schema validation
because they are never used, and a notebook whose only flaw is an odd output should still run.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import nbformat
from course_utils.grading.procs import first_line

MAX_NOTEBOOK_BYTES = 50_000_000  # larger files are almost surely not a hand-written notebook


class SubmissionsError(Exception):
    """The submissions folder itself is unusable; CLI exit 2."""


def find_submissions(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Return ({student id: path}, notes). The student id is the file name without .ipynb."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SubmissionsError(
            f"submissions folder {folder} does not exist.\n"
            "Pass a folder that holds one STUDENT_ID.ipynb per student."
        )
    found, notes = {}, []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.is_file() and path.suffix == ".ipynb" and not path.name.startswith("."):
            found[path.stem] = path
        elif path.name != ".ipynb_checkpoints":
            notes.append(f"ignored {path.name!r}: not a STUDENT_ID.ipynb file")
    if not found:
        raise SubmissionsError(
            f"no submissions in {folder}: expected files named STUDENT_ID.ipynb.\n"
            "Collect the students' notebooks into that folder (one file per student)."
        )
    return found, notes


def load_submission(path: Path):
    """Return (notebook, None) for a runnable notebook, else (None, reason it is invalid)."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return None, "empty file"
    if size > MAX_NOTEBOOK_BYTES:
        limit = MAX_NOTEBOOK_BYTES // 1_000_000
        return None, f"file is {size // 1_000_000} MB; notebooks over {limit} MB are refused"
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not a notebook: the file is not UTF-8 text"
    except json.JSONDecodeError as exc:
        return None, f"not a notebook: invalid JSON ({exc.msg} at line {exc.lineno})"
    return _check_structure(raw)


def _check_structure(raw):
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        return None, "not a notebook: JSON without a list of cells"
    if raw.get("nbformat") != 4:
        return None, f"unsupported notebook format {raw.get('nbformat')!r} (expected nbformat 4)"
    if not raw["cells"]:
        return None, "notebook has no cells"
    for cell in raw["cells"]:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    try:
        nb = nbformat.from_dict(raw)
        with warnings.catch_warnings():  # e.g. "missing cell id": fixable, not the student's fault
            warnings.simplefilter("ignore")
            nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        return None, f"notebook does not follow the nbformat schema: {first_line(exc.message, 'unknown problem')}"
    except Exception as exc:  # noqa: BLE001 - any other way of being malformed
        return None, f"notebook could not be read: {type(exc).__name__}: {first_line(str(exc), 'unknown problem')}"
    return nb, None

