"""``course-grade export OUT_DIR --to canvas|moodle --roster ROSTER.csv [--out FILE]``.

Writes the final points of OUT_DIR/totals.csv as a CSV the LMS's own grade import reads as it is.
ROSTER.csv has the columns ``student_id,name,email,sis_user_id,sis_login_id,section``;
``student_id`` is the submission's file name (STUDENT_ID.ipynb).

- Canvas (Grades > Import): ``Student,ID,SIS User ID,SIS Login ID,Section,<assignment>``, a
  ``Points Possible`` row, then one row per roster student. Canvas matches a row by ID (the
  Canvas user ID: use it as the student_id), SIS User ID or SIS Login ID; a new column name
  creates the assignment, ``Name (12345)`` (the name and ID Canvas exports) updates that one.
- Moodle (Grade administration > Import > CSV file): ``Email address`` (or with
  ``--moodle-id idnumber``, ``ID number`` from the roster's sis_user_id), then the grade column;
  on import, map that identifier column to the user's email address (or ID number) and the
  grade column to the grade item.

A roster student without a submission gets an empty grade (the LMS leaves it unchanged), and
every such student, and every submission without a roster row (not exported), is listed.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from course_utils.grading.spec import ExerciseError

ROSTER_COLUMNS = ("student_id", "name", "email", "sis_user_id", "sis_login_id", "section")
CANVAS_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_ID = {"email": ("Email address", "email"), "idnumber": ("ID number", "sis_user_id")}


def export(out_dir: Path, to: str, roster_path: Path, dest: Path | None = None,
           assignment: str | None = None, moodle_id: str = "email", say=print) -> Path:
    """Write the LMS file; return its path. ExerciseError for unusable inputs."""
    out_dir = Path(out_dir)
    finals, exercise, max_points = _read_out(out_dir)
    roster = read_roster(Path(roster_path))
    column = assignment or exercise
    dest = Path(dest) if dest else out_dir / f"{to}.csv"
    rows = (_canvas(roster, finals, column, max_points) if to == "canvas"
            else _moodle(roster, finals, column, moodle_id))
    tmp = dest.with_name(dest.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    tmp.replace(dest)
    _report(roster, finals, dest, say)
    return dest


def _read_out(out_dir: Path) -> tuple[dict, str, float]:
    try:
        summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
        with open(out_dir / "totals.csv", newline="", encoding="utf-8") as fh:
            finals = {r["student"]: r["final"] for r in csv.DictReader(fh)}
    except (OSError, ValueError, KeyError) as exc:
        raise ExerciseError(f"{out_dir} holds no graded batch (summary.json and totals.csv): "
                            f"{exc}") from None
    return finals, summary["exercise"], summary["max_points"]


def read_roster(path: Path) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ExerciseError(f"--roster {path}: {exc.strerror}") from None
    missing = [c for c in ROSTER_COLUMNS if not rows or c not in rows[0]]
    if missing:
        raise ExerciseError(f"{path}: needs the columns {','.join(ROSTER_COLUMNS)} "
                            f"(missing: {', '.join(missing)})")
    ids = [r["student_id"].strip() for r in rows]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ExerciseError(f"{path}: student_id listed twice: {', '.join(twice)}")
    return [{k: (r.get(k) or "").strip() for k in ROSTER_COLUMNS} for r in rows]


def _canvas(roster: list[dict], finals: dict, column: str, max_points: float) -> list[list]:
    rows = [CANVAS_COLUMNS + [column], ["Points Possible", "", "", "", ""] + [f"{max_points:g}"]]
    for r in roster:
        rows.append([r["name"], r["student_id"], r["sis_user_id"], r["sis_login_id"], r["section"],
                     finals.get(r["student_id"], "")])
    return rows


def _moodle(roster: list[dict], finals: dict, column: str, moodle_id: str) -> list[list]:
    header, field = MOODLE_ID[moodle_id]
    blank = [r["student_id"] for r in roster if not r[field]]
    if blank:
        raise ExerciseError(f"the roster has no {field} for {', '.join(blank)}: Moodle could not "
                            f"match them (fill it in, or use --moodle-id "
                            f"{'idnumber' if moodle_id == 'email' else 'email'})")
    return [[header, column]] + [[r[field], finals.get(r["student_id"], "")] for r in roster]


def _report(roster: list[dict], finals: dict, dest: Path, say) -> None:
    on_roster = {r["student_id"] for r in roster}
    absent = [r["student_id"] for r in roster if r["student_id"] not in finals]
    unknown = sorted(set(finals) - on_roster)
    say(f"wrote {dest}: {len(roster) - len(absent)} grades for {len(roster)} students on the roster")
    if absent:
        say(f"no submission (exported with an empty grade): {', '.join(absent)}")
    if unknown:
        say(f"NOT EXPORTED, not on the roster: {', '.join(unknown)}")
