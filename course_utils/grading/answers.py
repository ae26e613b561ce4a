"""The answers that travel from a student's kernel to the check process.

Kernel side: ``build_collect_cell`` pastes ``_in_kernel.py`` plus the hidden tests' ``collect``
into one cell. Grader side: ``load_answers`` reads the JSON + npz pair back without running any
code (``allow_pickle=False``), and ``Answers`` turns a missing or failed entry into
``AnswerMissing``, which the check process reports as ``failed`` with the reason.
"""
from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

_KERNEL_CODE = (Path(__file__).with_name("_in_kernel.py")).read_text(encoding="utf-8")


class AnswerMissing(AssertionError):
    """A check asked for an answer the student's notebook did not produce."""


class _Failed:
    def __init__(self, reason: str):
        self.reason = reason

    def __repr__(self) -> str:
        return f"<answer not collected: {self.reason}>"


class Answers(dict):
    """A dict whose ``answers[key]`` explains *why* an answer is missing.

    ``answers.get(key)`` returns None for a missing or failed answer.
    """

    def __getitem__(self, key):
        if not dict.__contains__(self, key):
            raise AnswerMissing(f"no answer `{key}` was collected from the notebook")
        value = dict.__getitem__(self, key)
        if isinstance(value, _Failed):
            raise AnswerMissing(f"`{key}`: {value.reason}")
        return value

    def get(self, key, default=None):
        try:
            return self[key]
        except AnswerMissing:
            return default


def build_collect_cell(collect_source: str, answers_base: str) -> str:
    """Source of the cell appended to a submission: writes ``answers_base``.json/.npz."""
    return (
        f"{_KERNEL_CODE}\n"
        f"_CourseGradeCollector({answers_base!r}).run({collect_source!r}, globals())\n"
        "del _CourseGradeCollector\n"
    )


def expanded_bytes(base: str | Path) -> int:
    """What ``base``.json + ``base``.npz take once loaded, read from their headers without
    expanding anything: the JSON file's size, and per array the larger of its size in the zip's
    directory and the shape its .npy header declares (numpy allocates that before reading).
    Raises ValueError for an npz that is not a zip of plain .npy arrays."""
    import zipfile

    import numpy as np

    base = str(base)
    total = os.path.getsize(base + ".json")
    if not os.path.exists(base + ".npz"):
        return total
    try:
        with zipfile.ZipFile(base + ".npz") as zf:
            for info in zf.infolist():
                with zf.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(member)
                declared = math.prod(shape) * dtype.itemsize
                total += max(info.file_size, declared)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"the answers' arrays are not a valid npz file ({exc})") from None
    return total


def answers_too_large(base: str | Path, limit_mb: int) -> str | None:
    """Why the answers at ``base`` are refused unread (too large once expanded, or malformed),
    else None (also when there are none: the check process says so itself)."""
    try:
        if not stat.S_ISREG(os.lstat(f"{base}.json").st_mode):
            return None  # a link the kernel planted is not ours to follow (runner.py)
        size = expanded_bytes(base)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return f"answers could not be read: {exc}"
    if size > limit_mb << 20:
        return f"answers too large: {size >> 20} MB expanded, limit {limit_mb} MB"
    return None


def load_answers(base: str | Path) -> Answers:
    """Read ``base``.json (+ ``base``.npz); executes no code from the files."""
    base = str(base)
    with open(base + ".json", encoding="utf-8") as fh:
        payload = json.load(fh)
    arrays = {}
    if payload.get("arrays"):
        import numpy as np

        with np.load(base + ".npz", allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    raw = payload.get("answers")
    if not isinstance(raw, dict):
        raise ValueError("answers file has no 'answers' mapping")
    return Answers({str(k): _decode(v, arrays) for k, v in raw.items()})


def _decode(obj, arrays: dict):
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__a" in obj:
        return arrays[obj["__a"]]
    if "__err" in obj:
        return _Failed(str(obj["__err"]))
    return {_hashable(_decode(k, arrays)): _decode(v, arrays) for k, v in obj.get("__d", [])}


def _hashable(key):
    # a tuple key became a JSON list on the way out; make it a tuple again
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key
