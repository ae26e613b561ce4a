"""``OUT_DIR/feedback/STUDENT_ID.md``: what one graded student may read, in plain language.

Written by the grading client (also under ``--scheduler``) for every row of grades.csv: points
per question and in total, the check's one-line message, an instructor's override with its
reason, a late penalty, and for a question that did not pass a hint from the exercise's release
notebook (guide.py). The messages of hidden checks are written
for students; what is NOT theirs to see is filtered here: errors raised inside a hidden check
(their text can quote hidden inputs), log tails, tracebacks, file paths, and any line of the
hidden tests' source.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from course_utils.datafiles import atomic_write
from course_utils.grading.guide import Guide

SELF_CHECK = "course-grade check YOUR_NOTEBOOK.ipynb"
_GRADER_SIDE = ("check raised", "check process crashed", "hidden tests failed to import",
                "answers could not be read", "check returned", "grader internal error",
                "grader worker failed")
_FINAL_CELL = "the grader's final cell failed"
_PATH = re.compile(r"(?:<tmp>|~)?(?:/[\w.@+-]+){2,}/?")
_LEAK_MARKS = ("Traceback", 'File "', "hidden_tests", "check.log", "course_grade_hidden")
_NOTEBOOK_STATUS = {
    "ok": "Your notebook ran from top to bottom, and each question was checked.",
    "error": "Your notebook stopped with an error, so the grader could not check your answers.",
    "timeout": "Your notebook did not finish in time, so the grader could not check your answers.",
    "invalid": "The file you handed in could not be opened as a notebook, so nothing was run.",
}
_RESULT = {"ok": "passed", "failed": "not passed", "error": "could not be checked",
           "timeout": "not checked (time limit)", "invalid": "not checked (unreadable file)"}


def write_all(folder: Path, guide: Guide, outcomes, hidden_source: str, settings,
              marks: dict | None = None) -> Path:
    """Write one feedback file per outcome into ``folder`` (OUT_DIR/feedback, or the batch's
    staging copy of it). ``marks``: {student: Marks} (overrides, late penalty)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    secrets = hidden_lines(hidden_source)
    for outcome in outcomes:
        text = render(guide, outcome, secrets, settings.timeout, (marks or {}).get(outcome.student))
        atomic_write(folder / f"{outcome.student}.md",
                     lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8", newline="\n"))
    return folder


@dataclass(frozen=True)
class Marks:
    """What changes a student's points after the checks: overrides, and the late penalty."""
    points: dict  # question -> points (after overrides)
    overrides: dict = field(default_factory=dict)  # question -> overrides.Override
    total: dict | None = None  # the student's row of deadlines.totals (raw, late_penalty, final...)


def hidden_lines(hidden_source: str, min_len: int = 12) -> list[str]:
    """The hidden tests' lines long enough to recognise (a traceback quotes them)."""
    return sorted({line.strip() for line in hidden_source.splitlines()
                   if len(line.strip()) >= min_len})


def render(guide: Guide, outcome, secrets: list[str], limit: float, marks: Marks | None = None) -> str:
    """The whole Markdown text for one student."""
    results = outcome.results
    points = marks.points if marks else {
        q: guide.questions[q].points if s == "ok" else 0 for q, (s, _) in results.items()}
    got = sum(points.values())
    parts = [_header(guide, outcome, got, marks), _table(guide, results, points)]
    if outcome.status != "ok":
        parts.append(_notebook_problem(outcome, secrets, limit))
    overrides = marks.overrides if marks else {}
    parts += [_question(guide.questions[q], s, d, secrets, outcome.status, points[q], overrides.get(q))
              for q, (s, d) in results.items()]
    parts.append(_footer(outcome.status, got, guide.max_points))
    return "\n\n".join(p for p in parts if p) + "\n"


def _header(guide: Guide, outcome, got: float, marks: Marks | None) -> str:
    title = f"# Feedback on {guide.exercise}" + (f": {guide.title}" if guide.title else "")
    total = marks.total if marks else None
    late = ""
    if total and total["days_late"]:
        late = (f"\n\nHanded in {total['submitted_at']}, {total['days_late']} started "
                f"day{'s' if total['days_late'] > 1 else ''} after the due time: "
                f"{total['percent_kept']:g} % of the points kept, "
                f"**{total['final']:g} of {guide.max_points:g} points after the late penalty.**")
    return (f"{title}\n\nStudent: {outcome.student}\n\n"
            f"**Total: {got:g} of {guide.max_points:g} points.** "
            f"{_NOTEBOOK_STATUS.get(outcome.status, '')}{late}")


def _table(guide: Guide, results: dict, points: dict) -> str:
    rows = ["| question | points | result |", "|---|---|---|"]
    for q, (status, _) in results.items():
        info = guide.questions[q]
        rows.append(f"| {info.label} | {points[q]:g} / {info.points:g} | {_RESULT.get(status, status)} |")
    return "\n".join(rows)


def _notebook_problem(outcome, secrets: list[str], limit: float) -> str:
    detail = next(iter(outcome.results.values()), ("", ""))[1]
    if outcome.status == "timeout":
        what = (f"The grader stops a notebook after {limit:g} seconds (kernel start included); "
                "yours was still running. Look for a loop that never ends, or training that is "
                "far longer than the exercise asks for with FAST = True.")
    elif outcome.status == "invalid":
        what = (f"What was wrong with the file: {student_text(detail, secrets)}. Save the notebook "
                "from Jupyter (File > Save) and hand in the .ipynb file itself.")
    else:
        what = (f"What went wrong: {student_text(detail, secrets)}. Run *Restart kernel and run "
                "all cells* and fix the first cell that fails.")
    return f"## What happened\n\n{what}"


def _question(info, status: str, detail: str, secrets: list[str], notebook: str, points: float,
              override=None) -> str:
    head = f"## {info.label} ({points:g} of {info.points:g} points): {_RESULT.get(status, status)}"
    lines = [head]
    if info.description:
        lines.append(f"What you hand in: {info.description}")
    if notebook == "ok":
        lines.append(f"What the grader found: {student_text(detail, secrets)}")
    if override is not None:
        lines.append(f"Your instructor set this question to {override.points:g} of "
                     f"{info.points:g} points: {override.reason}")
    if status != "ok" and info.hint:
        lines.append(f"Hint: {info.hint}")
    return "\n\n".join(lines)


def _footer(status: str, got: float, total: float) -> str:
    if status == "ok" and got == total:
        return "Well done: every question passed."
    return (f"Before you hand in next time, run `{SELF_CHECK}`: it runs your notebook the way "
            "the grader does and lists the questions it will check (docs/GRADING.md).")


def student_text(detail: str, secrets: list[str]) -> str:
    """A check's or the runner's message as a student may read it."""
    text = " ".join(str(detail or "").split())
    if text.startswith("check did not finish within"):
        return (f"checking this answer took too long ({text[len('check ') :]}): does your code "
                "loop forever, or run very slowly, on new inputs?")
    if text.startswith(_FINAL_CELL):
        return ("your notebook ran, but the grader could not read your answers from it: does the "
                "notebook replace Python built-ins, or delete the names the exercise asks for?")
    if not text or text.startswith(_GRADER_SIDE) or _leaks(text, secrets):
        return ("the grader could not check this answer because of an unexpected error on its "
                "side; your instructor has the details")
    return _PATH.sub("<file>", text)


def _leaks(text: str, secrets: list[str]) -> bool:
    return any(mark in text for mark in _LEAK_MARKS) or any(s in text for s in secrets)
