"""What a student may know about an exercise's questions: the release notebook's metadata.

``course-grade release`` writes it into every release notebook (``release.release_metadata``),
under ``metadata["course_grade"]``, from the source notebook's own ``course_grade`` metadata:

    {"format": 1, "exercise": "ex01_...", "title": "...", "time_limit_s": 600,
     "parameters": {"FAST": true, "SEED": 0},
     "questions": [{"name": "q1_...", "label": "Q1", "points": 2, "description": "...",
                    "hint": "...", "reads": ["model"]}, ...]}

A student's copy keeps it, so ``course-grade check`` needs nothing but that notebook; the grader
reads the same metadata (of the release it computes from the kit's source:
``release.load_guide``) for the feedback files. Nothing here comes from the hidden tests or the
solutions.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_utils.grading.spec import ExerciseError

META_KEY = "course_grade"
FORMAT = 1
DEFAULT_TIME_LIMIT_S = 600.0
_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")


@dataclass(frozen=True)
class Question:
    name: str
    points: float
    label: str  # "Q1", or the name when it has no number
    description: str = ""  # what the student hands in
    hint: str = ""
    reads: tuple = ()  # names of the notebook the grader reads for it


@dataclass(frozen=True)
class Guide:
    exercise: str
    title: str
    questions: dict = field(default_factory=dict)  # name -> Question, in QUESTIONS order
    time_limit_s: float = DEFAULT_TIME_LIMIT_S

    @property
    def max_points(self) -> float:
        return sum(q.points for q in self.questions.values())

    @property
    def points(self) -> dict:
        return {q.name: q.points for q in self.questions.values()}


def guide_from_metadata(meta: dict, where: str = "notebook") -> Guide:
    """The guide a release notebook's ``course_grade`` metadata describes; ExerciseError if
    it is malformed."""
    try:
        questions = {q["name"]: Question(q["name"], q["points"], q.get("label") or q["name"],
                                         q.get("description", ""), q.get("hint", ""),
                                         tuple(q.get("reads", ())))
                     for q in meta["questions"]}
        guide = Guide(meta["exercise"], meta.get("title", ""), questions,
                      float(meta.get("time_limit_s", DEFAULT_TIME_LIMIT_S)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ExerciseError(f"{where}: malformed {META_KEY!r} metadata ({type(exc).__name__}: "
                            f"{exc}); regenerate the release with `course-grade release`") from None
    return guide


def release_guide(nb, where: str = "notebook") -> Guide | None:
    """The guide in a release notebook (or a student's copy of one); None if it has none."""
    meta = nb.metadata.get(META_KEY)
    if not isinstance(meta, dict) or "exercise" not in meta:
        return None
    return guide_from_metadata(meta, where)


def read_release_guide(path: Path) -> Guide | None:
    """The guide of the release notebook at ``path`` (None if it carries none)."""
    return release_guide(nbformat.read(str(path), as_version=4), Path(path).name)


def check_points(guide: Guide, questions: dict, where: str) -> None:
    """ExerciseError unless ``guide`` lists exactly the hidden tests' ``questions`` and points."""
    if list(guide.points.items()) != list(questions.items()):
        raise ExerciseError(
            f"{where}: its {META_KEY!r} metadata lists the questions {guide.points}, the hidden "
            f"tests' QUESTIONS {dict(questions)}: make them the same (names, points, order)")


def text_of(cell) -> str:
    """A cell's source as one string (a notebook read as plain JSON keeps it as a list)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def title_of(nb) -> str:
    """The first markdown heading of a notebook ("" if none)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in text_of(cell).splitlines():
                match = _HEADING.match(line)
                if match:
                    return match.group(2)
    return ""


def defined_names(nb) -> set:
    """Names bound at the top level of a notebook's code cells (assignments, def, class, import)."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                         for line in text_of(cell).splitlines())
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names
