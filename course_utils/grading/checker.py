"""Runs the hidden ``check_*`` functions in a fresh process, away from the student's kernel.

``python -m course_utils.grading.checker HIDDEN.py ANSWERS_BASE RESULTS.jsonl Q1 Q2 ...``

Nothing the notebook did to its own interpreter (patched asserts, numpy.testing, builtins,
IPython's exception hook) exists here: checks see only the deserialized answers. One JSON
line is appended per finished question, so when a check hangs and the parent kills this
process, the questions already checked keep their results.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import sys

from course_utils.grading.answers import AnswerMissing, load_answers
from course_utils.grading.procs import first_line, forget_cwd_on_path


def main(argv: list[str] | None = None) -> int:
    forget_cwd_on_path()
    hidden, answers_base, results_path, *questions = argv if argv is not None else sys.argv[1:]
    with open(results_path, "a", encoding="utf-8") as out:
        try:
            answers = load_answers(answers_base)
        except Exception as exc:  # noqa: BLE001 - a corrupt file is this submission's problem
            return _write_all(out, questions, "error", f"answers could not be read: {_what(exc)}")
        try:
            module = _import(hidden)
        except Exception as exc:  # noqa: BLE001 - a broken hidden-tests file: tell the instructor
            detail = f"hidden tests failed to import: {_what(exc)}"
            return _write_all(out, questions, "error", detail)
        for question in questions:
            status, detail = run_check(getattr(module, f"check_{question}"), answers)
            out.write(json.dumps({"question": question, "status": status, "detail": detail}) + "\n")
            out.flush()
    return 0


def run_check(check, answers) -> tuple[str, str]:
    """Map a check's outcome to (status, detail).

    Returning (True/False, message), True/False or None (asserts passed), or raising
    AssertionError, are the ways to grade; any other exception is reported as ``error``,
    which usually means the check needs to handle an unexpected answer shape.
    """
    try:
        result = check(copy.deepcopy(answers))  # a check cannot alter what the next one sees
    except AssertionError as exc:  # AnswerMissing included
        return "failed", first_line(str(exc)) or "assertion failed"
    except Exception as exc:  # noqa: BLE001
        return "error", f"check raised {_what(exc)}"
    if result is None:
        return "ok", "passed"
    verdict = _as_bool(result)
    if verdict is not None:
        return ("ok", "passed") if verdict else ("failed", "check failed")
    if isinstance(result, tuple) and len(result) == 2 and _as_bool(result[0]) is not None:
        message = first_line(str(result[1]))
        return ("ok", message or "passed") if _as_bool(result[0]) else ("failed", message or "check failed")
    return "error", f"check returned {type(result).__name__}; expected (bool, message)"


def _as_bool(value) -> bool | None:
    """``value`` as a verdict: a bool, or numpy's bool (what ``np.float64(x) < y`` gives); else None."""
    if isinstance(value, bool):
        return value
    numpy = sys.modules.get("numpy")  # a check that made a numpy bool has imported numpy
    return bool(value) if numpy is not None and isinstance(value, numpy.bool_) else None


def _import(path: str):
    spec = importlib.util.spec_from_file_location("course_grade_hidden_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_all(out, questions, status, detail) -> int:
    for question in questions:
        out.write(json.dumps({"question": question, "status": status, "detail": detail}) + "\n")
    return 0


def _what(exc: BaseException) -> str:
    message = first_line(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


__all__ = ["AnswerMissing", "main", "run_check"]


if __name__ == "__main__":
    sys.exit(main())
