"""The answers that travel from a student's kernel to the check process.

Kernel side: ``build_collect_cell`` pastes ``_in_kernel.py`` plus the hidden tests' ``collect``
into one cell. Grader side: ``load_answers`` reads the JSON + npz pair back without running any
code (``allow_pickle=False``), and ``Answers`` turns a missing or failed entry into
``AnswerMissing``, which the check process reports as ``failed`` with the reason.
"""
from __future__ import annotations

import json
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
