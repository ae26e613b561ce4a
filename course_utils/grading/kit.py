"""``course-grade kit DIR``: the instructor's private kit for one term of a graded class.

The repository every student clones keeps its exercises for self-study: ``exercises/source``
holds worked solutions and ``exercises/grading`` the reference hidden tests, so neither is a
secret. A graded class uses a kit instead, kept where no student can read it:

    DIR/source/    the source notebooks (solutions), to edit for the term if wanted
    DIR/grading/   the hidden tests (and any held-out files next to them)
    DIR/secret     a fresh random per-term secret: it picks the held-out items checks score on
                   (toolkit.term_rng), so reading the public tests does not give them away
    DIR/README.md  these steps

``course-grade release --kit DIR`` writes the student notebooks to DIR/release/ and
``course-grade EXERCISE SUBS --out OUT --kit DIR`` grades with the kit (docs/GRADING.md).
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from course_utils.grading.spec import ExerciseError, known_exercises

SECRET_FILE = "secret"
README = """# Instructor kit for one term (course-grade)

Keep this folder private: it holds the solutions (source/), the hidden tests (grading/) and this
term's secret (secret), which picks the held-out items the hidden checks score on.

1. `course-grade release --kit {kit}` writes the student notebooks to {kit}/release/.
2. Hand those out; collect one STUDENT_ID.ipynb per student into a folder.
3. `course-grade EXERCISE SUBMISSIONS --out OUT --kit {kit}` grades them.
4. Hand each student OUT/feedback/STUDENT_ID.md.

Make a new kit (a new secret) for every term: `course-grade kit NEW_FOLDER`.
"""


def make_kit(kit_dir: Path, exercises_dir: Path) -> list[str]:
    """Write a kit into the new folder ``kit_dir`` from ``exercises_dir``; the exercises copied."""
    kit_dir, exercises_dir = Path(kit_dir), Path(exercises_dir)
    if kit_dir.exists() and any(kit_dir.iterdir()):
        raise ExerciseError(f"{kit_dir} exists and is not empty: a kit (and its secret) is made "
                            "once per term; choose a new folder")
    names = [n for n in known_exercises(exercises_dir)
             if (exercises_dir / "grading" / f"{n}.py").is_file()]
    if not names:
        raise ExerciseError(f"no exercise in {exercises_dir} has both source/NAME.ipynb and "
                            "grading/NAME.py: nothing to put in a kit")
    kit_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(kit_dir, 0o700)
    shutil.copytree(exercises_dir / "grading", kit_dir / "grading",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (kit_dir / "source").mkdir()
    for name in names:
        shutil.copyfile(exercises_dir / "source" / f"{name}.ipynb",
                        kit_dir / "source" / f"{name}.ipynb")
    secret = kit_dir / SECRET_FILE
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    (kit_dir / "README.md").write_text(README.format(kit=kit_dir), encoding="utf-8")
    return names


def read_secret(kit_dir: Path) -> str:
    """The kit's per-term secret; ExerciseError if ``kit_dir`` is not a kit."""
    path = Path(kit_dir) / SECRET_FILE
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError:
        secret = ""
    if not secret or not (Path(kit_dir) / "grading").is_dir():
        raise ExerciseError(f"{kit_dir} is not a kit (no {SECRET_FILE} or grading/): make one "
                            "with `course-grade kit DIR`")
    return secret
