"""``course-grade check NOTEBOOK``: a student's self-check before handing in.

Says what the grader will run (questions, points, what each one checks, the time limit) from the
exercise's release notebook only, looks for obvious problems (unreadable file, wrong exercise,
answers still missing), then runs the notebook the way grading does (FAST = True, SEED = 0,
papermill, in the sandbox when bubblewrap can run here) with its own visible self-check cells
and no hidden check. Exit 0: nothing found; 1: problems found; 2: usage problem.
"""
from __future__ import annotations

import ast
import re
import shutil
import tempfile
import time
from pathlib import Path

import nbformat

from course_utils.grading.guide import Guide, load_guide, text_of, title_of
from course_utils.grading.spec import (
    ExerciseError, default_exercises_dir, known_exercises, load_exercise, timeout_detail,
)
from course_utils.grading.submissions import load_submission

_STUB = re.compile(r"^\s*raise NotImplementedError\b", re.MULTILINE)
_NAME = re.compile(r"`([A-Za-z_]\w*)(?:\(.*?\))?`")
_QHEAD = re.compile(r"^#{1,6}\s+Q(\d+)(?!\d)", re.MULTILINE)


def run_selfcheck(path: Path, exercise: str | None, exercises_dir: Path | None,
                  settings, run: bool = True, out=print) -> int:
    """Print the plan and the problems found; return the exit code (0 clean, 1 problems)."""
    path, base = Path(path), Path(exercises_dir or default_exercises_dir())
    if not path.is_file():
        raise ExerciseError(f"no notebook at {path}")
    nb, unreadable = load_submission(path)
    if nb is None:
        out(f"PROBLEM: {path.name} cannot be read as a notebook: {unreadable}. "
            "The grader would give 0 points. Save it from Jupyter and check the file you hand in.")
        return 1
    name, problems = identify(nb, path, exercise, base)
    ex = load_exercise(name, base)
    guide = load_guide(ex)
    print_plan(guide, path, settings.timeout, out)
    problems += missing_answers(nb, guide) + missing_names(nb, guide, ex.source)
    if run:
        problems += run_problems(nb, guide, settings, ex, out)
    return report(problems, out)


def identify(nb, path: Path, requested: str | None, base: Path) -> tuple[str, list[str]]:
    """The exercise to check against, and a problem if the notebook looks like another one."""
    titles = _titles(base)
    mine = title_of(nb)
    by_title = next((n for n, t in titles.items() if t and t == mine), None)
    name = requested or by_title or (path.stem if path.stem in titles else None)
    if name is None:
        raise ExerciseError(
            f"cannot tell which exercise {path.name} is (its title {mine!r} is no exercise's): "
            f"pass --exercise NAME, one of: {', '.join(titles) or '(none)'}")
    if by_title and by_title != name:
        return name, [f"wrong exercise? this notebook's title is that of {by_title} "
                      f"({mine!r}), not of {name}: hand it in for {by_title}, or check the file"]
    return name, []


def _titles(base: Path) -> dict:
    titles = {}
    for name in known_exercises(base):
        try:
            titles[name] = load_guide(load_exercise(name, base)).title
        except ExerciseError:
            continue
    return titles


def print_plan(guide: Guide, path: Path, timeout: float, out=print) -> None:
    out(f"Self-check of {path.name} for {guide.exercise}: {guide.title}")
    out(f"The grader runs your notebook from a fresh kernel with FAST = True, SEED = 0, within "
        f"{timeout:g} s (kernel start included; the instructor may set another limit), then "
        f"checks {len(guide.questions)} questions ({guide.max_points:g} points) in a separate "
        "process, on data your notebook never sees:")
    for q in guide.questions.values():
        what = q.description or "(see the notebook)"
        out(f"  {q.label:<4} {q.name:<24} {q.points:g} point{'s' if q.points != 1 else ''}: {what}")
    out("Those hidden checks are NOT run here; your notebook's own self-check cells are.")


def missing_answers(nb, guide: Guide) -> list[str]:
    """A cell that still raises NotImplementedError: an answer not written yet."""
    problems = []
    for index, label in _code_cells_with_labels(nb):
        if _STUB.search(text_of(nb.cells[index])):
            where = f" ({label})" if label else ""
            problems.append(f"answer missing{where}: cell {index + 1} of the notebook (markdown "
                            "cells counted) still raises NotImplementedError; write your solution there")
    return problems


def _code_cells_with_labels(nb):
    label = ""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            heads = _QHEAD.findall(text_of(cell))
            label = f"Q{int(heads[-1])}" if heads else label
        elif cell.cell_type == "code":
            yield index, label


def missing_names(nb, guide: Guide, source: Path) -> list[str]:
    """Names a question says you hand in (`model`, `predict_groups(x)`) that no cell defines."""
    try:
        reference = defined_names(nbformat.read(str(source), as_version=4))
    except Exception:  # noqa: BLE001 - no reference: nothing to compare with
        return []
    mine, problems, said = defined_names(nb), [], set()
    for q in guide.questions.values():
        wanted = [n for n in dict.fromkeys(_NAME.findall(q.description)) if n in reference]
        lost = [n for n in wanted if n not in mine and n not in said]
        said.update(lost)
        if lost:
            problems.append(f"{q.label}: the grader reads {', '.join(f'`{n}`' for n in lost)}, "
                            "which no cell of your notebook defines (keep the names the exercise gives)")
    return problems


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


def run_problems(nb, guide: Guide, settings, exercise, out=print) -> list[str]:
    """Run the notebook as the grader would (no grader cell); what stopped it, if anything."""
    from course_utils.grading import runner

    out(f"Running the notebook (FAST = True, time limit {settings.timeout:g} s) ...")
    tmp = Path(tempfile.mkdtemp(prefix="course-selfcheck-"))
    start = time.monotonic()
    try:
        box, note = _sandbox(settings, exercise, tmp)
        if note:
            out(note)
        sub = tmp / "run"
        sub.mkdir()
        status, detail = runner.run_notebook(nb, sub, settings, box)
        detail = runner._clean(detail, sub)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.monotonic() - start
    if status == "ok":
        out(f"The notebook ran to the end in {seconds:.0f} s, its self-check cells included.")
        return []
    if status == "timeout":
        return [f"{timeout_detail(settings.timeout)}: the grader would give 0 points"]
    return [f"the notebook stopped: {detail}. The grader would stop there too (0 points); "
            "fix the first failing cell"]


def _sandbox(settings, exercise, tmp: Path):
    """The grader's sandbox when it can run here, else none (your own notebook, your machine)."""
    from course_utils.grading import sandbox
    from course_utils.grading.batch import machine_private

    hide = [exercise.source.parent, exercise.hidden.parent, *machine_private(tmp)]
    kind = "bwrap" if settings.sandbox == "auto" else settings.sandbox
    try:
        return sandbox.prepare(kind, settings.limits, hide=hide, scratch=tmp,
                               gpu=settings.device == "cuda"), ""
    except sandbox.SandboxError:
        if settings.sandbox != "auto":
            raise
    box = sandbox.prepare("none", settings.limits, scratch=tmp, gpu=settings.device == "cuda")
    return box, "note: bubblewrap cannot run here, so the notebook runs without the grader's sandbox"


def report(problems: list[str], out=print) -> int:
    if not problems:
        out("No problems found. The hidden checks may still find some: they use other data.")
        return 0
    out(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} found:")
    for problem in problems:
        out(f"  - {problem}")
    return 1
