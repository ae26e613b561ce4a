"""OUT_DIR: written all at once, and read back when ``--only`` regrades one student into it.

Every file of a batch is first written to a staging folder inside OUT_DIR (hidden from the
submissions like OUT_DIR itself) and moved into place only once all of them exist, each by an
atomic rename: a batch that fails half-way leaves the previous files as they were. A full batch
then removes the feedback and executed notebooks of students it did not grade; ``--only S``
replaces S's and keeps everyone else's files untouched.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

from course_utils.grading.spec import ExerciseError

STAGED = ("grades.csv", "totals.csv", "summary.json", "similarity.csv", "report.md",
          "report.html", "report_totals.png")
PER_STUDENT = {"feedback": ".md", "executed": ".ipynb"}


class Staging:
    """A folder in OUT_DIR for the new files; ``commit`` moves them in, ``discard`` drops them."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for old in self.out_dir.glob(".staging-*"):  # left by a batch that was killed
            shutil.rmtree(old, ignore_errors=True)
        self.path = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.out_dir))
        for folder in PER_STUDENT:
            (self.path / folder).mkdir()

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def commit(self, students: list[str], full: bool) -> None:
        """Move the staged files into OUT_DIR. ``full``: the batch graded everyone, so per-student
        files of other students are removed; else only ``students``' files are replaced."""
        for folder, ext in PER_STUDENT.items():
            target = self.out_dir / folder
            target.mkdir(exist_ok=True)
            if full:
                for old in target.glob(f"*{ext}"):
                    if old.stem not in students:
                        old.unlink()
            for student in students:
                staged = self.path / folder / f"{student}{ext}"
                if staged.exists():
                    os.replace(staged, target / staged.name)
                elif (target / staged.name).exists():  # e.g. no executed notebook this time
                    (target / staged.name).unlink()
        for name in STAGED:
            if (self.path / name).exists():
                os.replace(self.path / name, self.out_dir / name)


def previous(out_dir: Path, exercise: str) -> dict:
    """What an earlier batch of ``exercise`` left in OUT_DIR (for ``--only``): its rows and summary."""
    out_dir = Path(out_dir)
    try:
        summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
        with open(out_dir / "grades.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, ValueError) as exc:
        raise ExerciseError(f"--only needs a graded batch in {out_dir} (grades.csv and "
                            f"summary.json): {exc}") from None
    if summary.get("exercise") != exercise:
        raise ExerciseError(f"{out_dir} holds grades of {summary.get('exercise')!r}, not {exercise!r}")
    return {"rows": rows, "summary": summary}
