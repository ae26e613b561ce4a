"""``course-grade check NOTEBOOK``: a student's self-check before handing in.

Needs only the notebook: a student's copy of a release notebook carries the exercise's questions,
points, time limit and hints in its metadata (guide.py, written by ``course-grade release``).
Without that metadata (a copy that lost it, or ``--exercise NAME``), the release notebook of the
exercise in the release folder is read instead; nothing else (no solution, no hidden test).
Says what the grader will run, looks for obvious problems (unreadable file, wrong exercise,
answers still missing), then runs the notebook the way grading does (FAST = True, SEED = 0,
papermill, in the sandbox when bubblewrap can run here) with its own visible self-check cells and
no hidden check. Exit 0: nothing found; 1: problems found; 2: usage problem.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from course_utils.grading.guide import (
    Guide, defined_names, read_release_guide, release_guide, text_of, title_of,
)
from course_utils.grading.spec import ExerciseError, timeout_detail
from course_utils.grading.submissions import load_submission

_STUB = re.compile(r"^\s*raise NotImplementedError\b", re.MULTILINE)
_QHEAD = re.compile(r"^#{1,6}\s+Q(\d+)(?!\d)", re.MULTILINE)


def run_selfcheck(path: Path, exercise: str | None, release_dir: Path | None,
                  settings, run: bool = True, out=print) -> int:
    """Print the plan and the problems found; return the exit code (0 clean, 1 problems).
    ``settings.timeout`` None: the release's time limit."""
    path = Path(path)
    if not path.is_file():
        raise ExerciseError(f"no notebook at {path}")
    nb, unreadable = load_submission(path)
    if nb is None:
        out(f"PROBLEM: {path.name} cannot be read as a notebook: {unreadable}. "
            "The grader would give 0 points. Save it from Jupyter and check the file you hand in.")
        return 1
    guide, problems = identify(nb, path, exercise, release_dir)
    settings = replace(settings, timeout=settings.timeout or guide.time_limit_s)
    print_plan(guide, path, settings.timeout, out)
    problems += missing_answers(nb) + missing_names(nb, guide)
    if run:
        problems += run_problems(nb, settings, out)
    return report(problems, out)


def identify(nb, path: Path, requested: str | None, release_dir: Path | None):
    """(the guide to check against, [a problem if the notebook looks like another exercise])."""
    own = release_guide(nb, path.name)
    releases = _release_guides(release_dir) if (requested or own is None) else {}
    mine = own.exercise if own else next(
        (n for n, g in releases.items() if g.title and g.title == title_of(nb)), None)
    name = requested or mine or (path.stem if path.stem in releases else None)
    if name is None:
        raise ExerciseError(
            f"cannot tell which exercise {path.name} is: it carries no course-grade metadata (start "
            "from the release notebook you were given) and its title is no exercise's; pass "
            f"--exercise NAME, one of: {', '.join(releases) or '(no release notebooks found)'}")
    problems = []
    if mine and mine != name:
        problems.append(f"wrong exercise? this notebook's title is that of {mine} "
                        f"({title_of(nb)!r}), not of {name}: hand it in for {mine}, or check the file")
    if own is not None and own.exercise == name:
        return own, problems
    if name not in releases:
        raise ExerciseError(f"no release notebook of {name} in {release_dir}: known: "
                            f"{', '.join(releases) or '(none)'}")
    return releases[name], problems


def _release_guides(release_dir: Path | None) -> dict:
    """{exercise: guide} of the release notebooks in ``release_dir`` (public, like the notebook)."""
    from course_utils.grading.spec import default_exercises_dir

    folder = Path(release_dir or default_exercises_dir() / "release")
    guides = {}
    for nb_path in sorted(folder.glob("*.ipynb")):
        try:
            guide = read_release_guide(nb_path)
        except Exception:  # noqa: BLE001 - an unreadable release is simply not a candidate
            continue
        if guide is not None:
            guides[guide.exercise] = guide
    return guides


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


def missing_answers(nb) -> list[str]:
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


def missing_names(nb, guide: Guide) -> list[str]:
    """Names the grader reads for a question (the release's ``reads``) that no cell defines."""
    mine, problems, said = defined_names(nb), [], set()
    for q in guide.questions.values():
        lost = [n for n in q.reads if n not in mine and n not in said]
        said.update(lost)
        if lost:
            problems.append(f"{q.label}: the grader reads {', '.join(f'`{n}`' for n in lost)}, "
                            "which no cell of your notebook defines (keep the names the exercise gives)")
    return problems


def run_problems(nb, settings, out=print) -> list[str]:
    """Run the notebook as the grader would (no grader cell); what stopped it, if anything."""
    from course_utils.grading import runner

    out(f"Running the notebook (FAST = True, time limit {settings.timeout:g} s) ...")
    tmp = Path(tempfile.mkdtemp(prefix="course-selfcheck-"))
    start = time.monotonic()
    try:
        box, note = _sandbox(settings, tmp)
        if note:
            out(note)
        sub = tmp / "run"
        sub.mkdir()
        status, detail = runner.run_notebook(nb, sub, settings, box)
        detail = runner.clean_detail(detail, sub)
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


def _sandbox(settings, tmp: Path):
    """The grader's sandbox when it can run here, else none (your own notebook, your machine)."""
    from course_utils.grading import sandbox
    from course_utils.grading.hide import machine_private

    kind = "bwrap" if settings.sandbox == "auto" else settings.sandbox
    try:
        return sandbox.prepare(kind, settings.limits, hide=machine_private(tmp), scratch=tmp,
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
