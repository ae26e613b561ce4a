"""The exercise format: where an exercise's files live and what its hidden tests declare.

The hidden-tests module is only *parsed* here (with ``ast``), never imported into the grading
process: its ``collect`` function runs inside each student's kernel and its ``check_*``
functions run in a separate check process. Reading it once, up front, also means a submission
that overwrites ``exercises/grading/`` mid-batch cannot change how anyone is graded.
See docs/GRADING.md for the format as exercise authors see it.
"""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

from course_utils.config import repo_root

SOLUTION_BEGIN = "### BEGIN SOLUTION"
SOLUTION_END = "### END SOLUTION"
HINT_PREFIX = "### HINT:"
DEFAULT_HINT = "write your solution here"
PARAMETER_NAMES = ("FAST", "SEED", "DEVICE")
COLLECT_TAG = "grader-collect"  # tag of the cell the grader appends to each submission
STATUSES = ("ok", "failed", "error", "timeout", "invalid")
# The check process gets the kit's per-term secret here (never a kernel: the grader's COURSE_GRADE_*
# variables are not on the kernel's allow-list); toolkit.term_rng reads it.
SECRET_ENV = "COURSE_GRADE_SECRET"


class ExerciseError(Exception):
    """Something the instructor has to fix (unknown name, malformed hidden tests); CLI exit 2."""


@dataclass(frozen=True)
class Exercise:
    name: str
    source: Path
    hidden: Path
    questions: dict  # question name -> max points, in the order QUESTIONS lists them
    hidden_source: str  # snapshot taken before any submission runs
    collect_source: str  # just the ``def collect(ns): ...`` text, shipped into the kernel

    @property
    def max_points(self) -> float:
        return sum(self.questions.values())

    def hidden_digest(self) -> str:
        return hashlib.sha256(self.hidden_source.encode()).hexdigest()


def timeout_detail(limit: float) -> str:
    # One wording for the parent's kill and papermill's per-cell limit: which fires first
    # can vary between runs, and grades.csv must not.
    return f"notebook did not finish within the {limit:g} s time limit"


def default_exercises_dir() -> Path:
    return repo_root() / "exercises"


def known_exercises(exercises_dir: Path) -> list[str]:
    """Exercise names that have a source notebook."""
    return sorted(p.stem for p in (Path(exercises_dir) / "source").glob("*.ipynb"))


def load_exercise(name: str, exercises_dir: Path | None = None) -> Exercise:
    """Resolve ``name`` to its source notebook and hidden tests, or explain what is missing."""
    base = Path(exercises_dir) if exercises_dir else default_exercises_dir()
    source = base / "source" / f"{name}.ipynb"
    hidden = base / "grading" / f"{name}.py"
    if not source.is_file():
        known = ", ".join(known_exercises(base)) or "(none)"
        raise ExerciseError(
            f"unknown exercise {name!r}: no {source}.\n"
            f"Known exercises in {base / 'source'}: {known}.\n"
            "Pass the notebook's file name without .ipynb "
            "(or --exercises-dir DIR for another tree)."
        )
    if not hidden.is_file():
        raise ExerciseError(
            f"exercise {name!r} has no hidden tests: expected {hidden}.\n"
            "Write QUESTIONS, collect(ns) and one check_<question>(answers) there "
            "(docs/GRADING.md)."
        )
    text = hidden.read_text(encoding="utf-8")
    questions, collect_source = parse_hidden(text, str(hidden))
    return Exercise(name, source, hidden, questions, text, collect_source)


def parse_hidden(text: str, filename: str = "<hidden tests>") -> tuple[dict, str]:
    """Return (QUESTIONS, source of collect) after checking the module has what grading needs."""
    try:
        tree = ast.parse(text, filename=filename)
    except SyntaxError as exc:
        raise ExerciseError(f"{filename}: syntax error on line {exc.lineno}: {exc.msg}") from None
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    questions = _questions(tree, filename)
    collect = functions.get("collect")
    if collect is None or len(collect.args.args) != 1:
        raise ExerciseError(f"{filename}: define `def collect(ns):` at top level (one argument)")
    missing = [f"check_{q}" for q in questions if f"check_{q}" not in functions]
    if missing:
        raise ExerciseError(
            f"{filename}: QUESTIONS lists questions without checks: {', '.join(missing)}")
    return questions, ast.get_source_segment(text, collect)


def _questions(tree: ast.Module, filename: str) -> dict:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "QUESTIONS" for t in node.targets
        ):
            try:
                questions = ast.literal_eval(node.value)
            except ValueError:
                break
            if _valid_questions(questions):
                return dict(questions)
            break
    raise ExerciseError(
        f"{filename}: needs `QUESTIONS = {{\"q1_name\": points, ...}}` as a literal dict of "
        "identifier -> positive number"
    )


def _valid_questions(questions) -> bool:
    if not isinstance(questions, dict) or not questions:
        return False
    return all(
        isinstance(q, str) and q.isidentifier()
        and isinstance(p, (int, float)) and not isinstance(p, bool) and p > 0
        for q, p in questions.items()
    )
