"""What a graded batch writes into OUT_DIR (through outdir.Staging): grades.csv, totals.csv,
summary.json, feedback/, similarity.csv and the report.

Everything except summary.json's ``timing`` key and the report's run times is a function of the
submissions (and the deadline, times and overrides given): rows are sorted, no clock times or
temp paths, so reruns, any ``--jobs`` value and a Dask cluster give byte-identical files.
With ``--only`` (``previous`` given) the other students' rows, summary entries, submission times
and run times are taken over unchanged from the batch already in OUT_DIR.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from course_utils.grading import deadlines, feedback, report, similarity
from course_utils.grading.overrides import override_detail
from course_utils.grading.spec import STATUSES
from course_utils.grading.submissions import load_submission

COLUMNS = ["student", "exercise", "question", "points", "max_points", "status", "detail"]


def question_rows(exercise, outcome, overrides: dict) -> list[dict]:
    """grades.csv's rows of one outcome; ``overrides``: {(student, question): Override}."""
    rows = []
    for q, (status, detail) in outcome.results.items():
        points, detail = (exercise.questions[q] if status == "ok" else 0), detail or status
        override = overrides.get((outcome.student, q))
        if override is not None:
            points = override.points
            detail = override_detail(override, exercise.questions[q], status, detail)
        rows.append({"student": outcome.student, "exercise": exercise.name, "question": q,
                     "points": _num(points), "max_points": exercise.questions[q],
                     "status": status, "detail": detail})
    return rows


def write_batch(staging: Path, batch: dict) -> dict:
    """Write every file of ``batch`` into ``staging``; return the summary.

    ``batch``: exercise, guide, settings, outcomes, overrides (list), deadline, times, notes,
    sandbox, timing, submissions ({student: path}) and previous (None, or outdir.previous)."""
    ex, previous = batch["exercise"], batch["previous"]
    by_key = {(o.student, o.question): o for o in batch["overrides"]}
    rows = [r for o in batch["outcomes"] for r in question_rows(ex, o, by_key)]
    graded = {o.student for o in batch["outcomes"]}
    if previous:
        rows += [r for r in previous["rows"] if r["student"] not in graded]
    rows.sort(key=lambda r: (r["student"], r["question"]))
    _write_csv(staging / "grades.csv", rows)
    statuses = _statuses(batch, previous)
    raw = {s: 0.0 for s in statuses}
    for r in rows:
        raw[r["student"]] += float(r["points"])
    totals = deadlines.totals(raw, statuses, batch["times"], batch["deadline"], ex.max_points)
    deadlines.write_totals(staging / "totals.csv", totals)
    _write_feedback(staging, batch, by_key, totals)
    pairs = similarity.similarity(_notebooks(batch["submissions"]), batch["release"])
    similarity.write_similarity(staging / "similarity.csv", pairs)
    summary = _summary(batch, rows, statuses, totals, pairs)
    text = json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False)
    (staging / "summary.json").write_text(text + "\n", encoding="utf-8")
    report.write_report(staging, {
        "exercise": ex.name, "max_points": ex.max_points, "guide": batch["guide"], "rows": rows,
        "totals": totals, "statuses": statuses, "seconds": summary["timing"]["per_student_s"],
        "similarity": pairs, "overrides": summary["overrides"], "deadline": summary["deadline"],
    }, feedback.hidden_lines(ex.hidden_source))
    return summary


def _statuses(batch: dict, previous) -> dict:
    statuses = {}
    if previous:
        statuses = {s: v["notebook_status"] for s, v in previous["summary"]["students"].items()}
    statuses.update({o.student: o.status for o in batch["outcomes"]})
    return statuses


def _write_feedback(staging: Path, batch: dict, overrides: dict, totals: dict) -> None:
    marks = {}
    for o in batch["outcomes"]:
        rows = question_rows(batch["exercise"], o, overrides)
        marks[o.student] = feedback.Marks(
            points={r["question"]: r["points"] for r in rows}, total=totals[o.student],
            overrides={q: v for (s, q), v in overrides.items() if s == o.student})
    feedback.write_all(staging / "feedback", batch["guide"], batch["outcomes"],
                       batch["exercise"].hidden_source, batch["settings"], marks)


def _notebooks(submissions: dict) -> dict:
    """{student: notebook} of the readable submissions (for similarity)."""
    found = {}
    for student, path in submissions.items():
        nb, _ = load_submission(path)
        if nb is not None:
            found[student] = nb
    return found


def _summary(batch: dict, rows: list, statuses: dict, totals: dict, pairs: list) -> dict:
    ex, settings, previous = batch["exercise"], batch["settings"], batch["previous"]
    due = bool(batch["deadline"].due)
    students = dict(previous["summary"]["students"]) if previous else {}
    for o in batch["outcomes"]:
        students[o.student] = {"questions": {q: s for q, (s, _) in sorted(o.results.items())},
                               "notebook_status": o.status, "max_points": ex.max_points}
    for student, entry in students.items():
        total = totals[student]
        entry.update(points=total["raw"], late_penalty=total["late_penalty"], final=total["final"])
        if due:
            entry.update(submitted_at=total["submitted_at"], days_late=total["days_late"])
    overrides = [o.to_dict() for o in batch["overrides"]]
    if previous:
        graded = {o.student for o in batch["outcomes"]}
        overrides += [o for o in previous["summary"].get("overrides", []) if o["student"] not in graded]
    timing = dict(batch["timing"])
    if previous:
        timing["per_student_s"] = {**previous["summary"]["timing"].get("per_student_s", {}),
                                   **timing["per_student_s"]}
    counts = [r["status"] for r in rows]
    return {
        "exercise": ex.name, "max_points": ex.max_points, "n_students": len(students),
        "students": students, "questions": _question_stats(ex, rows),
        "status_counts": {s: counts.count(s) for s in STATUSES},
        "settings": {"fast": settings.fast, "seed": settings.seed, "device": settings.device,
                     "timeout_s": settings.timeout,
                     "check_timeout_s": settings.check_timeout or settings.timeout},
        "deadline": batch["deadline"].to_dict(), "overrides": sorted(
            overrides, key=lambda o: (o["student"], o["question"])),
        "similar_pairs": [[p["a"], p["b"], p["score"]] for p in pairs if p["flagged"]],
        "notes": _notes(batch["notes"], previous), "sandbox": batch["sandbox"], "timing": timing,
    }


def _notes(notes: list, previous) -> list:
    """This run's notes; with --only, after the batch's own (each once)."""
    kept = list(previous["summary"].get("notes", [])) if previous else []
    return kept + [n for n in notes if n not in kept]


def _question_stats(ex, rows: list) -> dict:
    questions = {}
    for q, max_points in ex.questions.items():
        statuses = [r["status"] for r in rows if r["question"] == q]
        points = [float(r["points"]) for r in rows if r["question"] == q]
        questions[q] = {
            "max_points": max_points, "n_ok": statuses.count("ok"),
            "mean_points": round(sum(points) / len(points), 4) if points else 0,
            "by_status": {s: statuses.count(s) for s in STATUSES if s in statuses},
        }
    return questions


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _num(value):
    value = float(value)
    return int(value) if value == int(value) else value
