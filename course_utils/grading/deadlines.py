"""Deadlines: when each submission came in, its late penalty, and OUT_DIR/totals.csv.

``--due 2026-12-01T23:59 --late-penalty 10 --late-floor 50``: a submission loses 10 % of its
points per *started* day after the due time, and keeps at least 50 % (the floor). Submission
times come from ``--submitted-at TIMES.csv`` (``student_id,submitted_at``, ISO 8601), or else
from the submitted files' modification times (the batch's notes say so). A time without a zone
is local time. totals.csv has one row per student: ``student,raw,late_penalty,final,max_points,
status``; raw counts the questions' points after overrides, status is the notebook's status.
"""
from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from course_utils.grading.spec import ExerciseError

TOTALS_COLUMNS = ["student", "raw", "late_penalty", "final", "max_points", "status"]


@dataclass(frozen=True)
class Deadline:
    due: str | None = None  # ISO 8601, as given
    penalty_pct: float = 0.0  # percent of the points per started day late
    floor_pct: float = 0.0  # the lowest percent of the points a late submission keeps

    def to_dict(self) -> dict:
        return asdict(self)


def parse_time(text: str, what: str) -> datetime:
    """An ISO 8601 time; one without a zone is local time."""
    try:
        when = datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise ExerciseError(f"{what}: {text!r} is not an ISO 8601 time (e.g. 2026-12-01T23:59 "
                            "or 2026-12-01T23:59:00+01:00)") from None
    return when if when.tzinfo else when.astimezone()


def check_deadline(deadline: Deadline) -> None:
    if deadline.due:
        parse_time(deadline.due, "--due")
    elif deadline.penalty_pct:
        raise ExerciseError("--late-penalty needs --due")
    if not (0 <= deadline.penalty_pct <= 100 and 0 <= deadline.floor_pct <= 100):
        raise ExerciseError("--late-penalty and --late-floor are percents between 0 and 100")


def submission_times(paths: dict, times_csv: Path | None, known=None) -> tuple[dict, list[str]]:
    """({student: ISO time} of ``paths``, notes): from TIMES.csv, else (and for students it
    lacks) from the files' modification times. ``known``: every submission's student id."""
    given, notes = {}, []
    if times_csv:
        given = _read_times(Path(times_csv))
        unknown = sorted(set(given) - set(known if known is not None else paths))
        if unknown:
            notes.append(f"{Path(times_csv).name}: no submission for {', '.join(unknown)}")
    missing = sorted(s for s in paths if s not in given)
    if missing:
        source = f"not in {Path(times_csv).name}" if times_csv else "no --submitted-at"
        notes.append(f"submission times from the files' modification times ({source}): "
                     f"{', '.join(missing)}")
    times = {s: given[s] if s in given else _mtime(paths[s]) for s in paths}
    return times, notes


def _read_times(path: Path) -> dict:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ExerciseError(f"--submitted-at {path}: {exc.strerror}") from None
    if rows and not {"student_id", "submitted_at"} <= set(rows[0]):
        raise ExerciseError(f"{path}: needs the columns student_id,submitted_at")
    times = {}
    for row in rows:
        parse_time(row["submitted_at"], f"{path.name}, {row['student_id']}")
        times[row["student_id"].strip()] = row["submitted_at"].strip()
    return times


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(Path(path).stat().st_mtime).astimezone().isoformat(
        timespec="seconds")


def lateness(submitted: str | None, deadline: Deadline) -> tuple[int, float]:
    """(started days late, percent of the points kept)."""
    if not deadline.due or not submitted:
        return 0, 100.0
    late = parse_time(submitted, "submitted_at") - parse_time(deadline.due, "--due")
    days = math.ceil(late / timedelta(days=1)) if late > timedelta(0) else 0
    return days, max(deadline.floor_pct, 100.0 - deadline.penalty_pct * days) if days else 100.0


def totals(raw: dict, statuses: dict, times: dict, deadline: Deadline, max_points: float) -> dict:
    """{student: row of totals.csv, plus submitted_at, days_late, percent_kept}."""
    out = {}
    for student, points in sorted(raw.items()):
        days, kept = lateness(times.get(student), deadline)
        penalty = round(points * (100.0 - kept) / 100.0, 4)
        out[student] = {"student": student, "raw": _num(points), "late_penalty": _num(penalty),
                        "final": _num(points - penalty), "max_points": _num(max_points),
                        "status": statuses[student], "submitted_at": times.get(student),
                        "days_late": days, "percent_kept": kept}
    return out


def _num(value: float):
    value = round(float(value), 4)
    return int(value) if value == int(value) else value


def write_totals(path: Path, rows: dict) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=TOTALS_COLUMNS, extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows.values())
