"""``--overrides OVERRIDES.csv``: points an instructor sets by hand, applied after the checks.

OVERRIDES.csv has the columns ``student_id,question,points,reason``; ``question`` is a question's
name (``q2_probe_head``) or label (``Q2``). An override replaces that question's points in
grades.csv (its status stays what the check said, and its detail starts with the override and
its reason), in the totals (raw, hence the late penalty and final) and in the student's feedback.
Overrides apply to the submissions graded in this run (with ``--only``, to that one).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from course_utils.grading.spec import ExerciseError

COLUMNS = ("student_id", "question", "points", "reason")


@dataclass(frozen=True)
class Override:
    student: str
    question: str
    points: float
    reason: str

    def to_dict(self) -> dict:
        return {"student": self.student, "question": self.question, "points": self.points,
                "reason": self.reason}


def read_overrides(path: Path, questions: dict, labels: dict) -> list[Override]:
    """Parse and check OVERRIDES.csv; ``questions``: {name: max points}, ``labels``: {label: name}.
    ExerciseError (exit 2, nothing graded) for a malformed row."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ExerciseError(f"--overrides {path}: {exc.strerror}") from None
    if rows and not set(COLUMNS) <= set(rows[0]):
        raise ExerciseError(f"{path}: needs the columns {','.join(COLUMNS)}")
    found, seen = [], set()
    for line, row in enumerate(rows, start=2):
        found.append(_override(row, questions, labels, f"{path.name} line {line}"))
        key = (found[-1].student, found[-1].question)
        if key in seen:
            raise ExerciseError(f"{path.name} line {line}: a second override of {key[1]} for {key[0]}")
        seen.add(key)
    return found


def _override(row: dict, questions: dict, labels: dict, where: str) -> Override:
    student, question = (row.get("student_id") or "").strip(), (row.get("question") or "").strip()
    name = question if question in questions else labels.get(question.upper())
    if not student or name is None:
        raise ExerciseError(f"{where}: unknown question {question!r} (one of "
                            f"{', '.join(questions)}, or its label)" if student
                            else f"{where}: no student_id")
    try:
        points = float(row.get("points") or "")
    except ValueError:
        raise ExerciseError(f"{where}: points {row.get('points')!r} is not a number") from None
    if not 0 <= points <= questions[name]:
        raise ExerciseError(f"{where}: {points:g} points for {name}, which has {questions[name]:g}")
    reason = " ".join((row.get("reason") or "").split())
    if not reason:
        raise ExerciseError(f"{where}: give a reason (it is recorded and shown to the student)")
    return Override(student, name, points, reason)


def check_students(overrides: list[Override], students) -> None:
    unknown = sorted({o.student for o in overrides} - set(students))
    if unknown:
        raise ExerciseError(f"overrides for students without a submission: {', '.join(unknown)}")


def override_detail(override: Override, max_points: float, status: str, detail: str) -> str:
    """grades.csv's detail of an overridden question: the override first, then the check's."""
    return (f"override: {override.points:g} of {max_points:g} points ({override.reason}); "
            f"graded {status}: {detail}")
