"""``course-grade release``: student versions of the exercise notebooks.

exercises/source/X.ipynb  ->  exercises/release/X.ipynb with every solution block replaced
by a stub, outputs and execution counts cleared, and the notebook's ``course_grade`` metadata
(guide.py) written for ``course-grade check``: the exercise, its title, time limit, and per
question the label, points, what is handed in, a hint and the names the grader reads. The output
is a pure function of the source (sorted keys, fixed cell ids, no timestamps), so regenerating is
byte-identical and ``--check`` can tell a stale release from a fresh one. Of the hidden tests
(grading/X.py next to source/, when present) only ``QUESTIONS`` is read, to check that the
metadata's points are the ones graded; nothing of them is written.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

from course_utils.grading.guide import (
    DEFAULT_TIME_LIMIT_S, FORMAT, META_KEY, Guide, check_points, defined_names,
    guide_from_metadata, release_guide, title_of,
)
from course_utils.grading.spec import (
    DEFAULT_HINT, HINT_PREFIX, PARAMETER_NAMES, SOLUTION_BEGIN, SOLUTION_END, ExerciseError,
    parse_hidden,
)

_RUN_METADATA = ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime")


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace each BEGIN/END SOLUTION block by a stub raising NotImplementedError(hint)."""
    out, block_indent, hint = [], None, None
    for lineno, line in enumerate(source.splitlines(keepends=True), 1):
        marker = line.strip()
        if marker.startswith(SOLUTION_BEGIN):
            if block_indent is not None:
                raise ExerciseError(f"{where}, line {lineno}: BEGIN SOLUTION inside another block")
            block_indent, hint = line[: len(line) - len(line.lstrip())], None
        elif marker.startswith(SOLUTION_END):
            if block_indent is None:
                raise ExerciseError(f"{where}, line {lineno}: END SOLUTION without BEGIN")
            message = json.dumps(hint or DEFAULT_HINT, ensure_ascii=False)
            out.append(f"{block_indent}# YOUR CODE HERE\n")
            out.append(f"{block_indent}raise NotImplementedError({message})\n")
            block_indent = None
        elif block_indent is None:
            out.append(line)
        elif marker.startswith(HINT_PREFIX):
            hint = marker[len(HINT_PREFIX):].strip() or None
    if block_indent is not None:
        raise ExerciseError(f"{where}: BEGIN SOLUTION without END SOLUTION")
    return "".join(out).rstrip("\n") if not source.endswith("\n") else "".join(out)


def lint_source(nb, where: str) -> list[str]:
    """Problems that break the exercise format (empty list: fine)."""
    problems = []
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        problems.append(f"{where}: the first cell must be markdown (title and instructions)")
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(params) != 1 or params[0].cell_type != "code":
        problems.append(f"{where}: needs exactly one code cell tagged `parameters`")
    else:
        for name in PARAMETER_NAMES:
            if not re.search(rf"^{name}\s*=", params[0].source, re.MULTILINE):
                problems.append(f"{where}: the parameters cell must assign {name}")
    if not any(SOLUTION_BEGIN in c.source for c in nb.cells if c.cell_type == "code"):
        problems.append(f"{where}: no `{SOLUTION_BEGIN}` block, so nothing to hand in")
    return problems + _lint_metadata(nb.metadata.get(META_KEY), where)


def _lint_metadata(meta, where: str) -> list[str]:
    example = ('{"questions": [{"name": "q1_...", "label": "Q1", "points": 2, '
               '"description": "what is handed in", "hint": "..."}], "time_limit_s": 600}')
    questions = meta.get("questions") if isinstance(meta, dict) else None
    if not isinstance(questions, list) or not questions:
        return [f"{where}: needs notebook metadata {META_KEY!r}: {example}"]
    for q in questions:
        ok = (isinstance(q, dict) and isinstance(q.get("name"), str) and q["name"].isidentifier()
              and isinstance(q.get("points"), (int, float)) and not isinstance(q["points"], bool)
              and q["points"] > 0
              and all(isinstance(q.get(k, ""), str) for k in ("label", "description", "hint"))
              and all(isinstance(n, str) for n in q.get("reads", [])))
        if not ok:
            return [f"{where}: {META_KEY!r} question {q!r} needs a name (identifier), points > 0 "
                    f"and text label, description, hint (optional: reads, a list of names): "
                    f"{example}"]
    return []


def release_metadata(nb, name: str) -> dict:
    """The ``course_grade`` metadata of the release of source notebook ``nb`` (exercise ``name``)."""
    meta = nb.metadata[META_KEY]
    defined = defined_names(nb)
    questions = []
    for q in meta["questions"]:
        reads = q.get("reads")
        if reads is None:  # the `names` of its description that the source notebook defines
            said = re.findall(r"`([A-Za-z_]\w*)(?:\(.*?\))?`", q.get("description", ""))
            reads = [n for n in dict.fromkeys(said) if n in defined]
        questions.append({"name": q["name"], "label": q.get("label") or q["name"],
                          "points": q["points"], "description": q.get("description", ""),
                          "hint": q.get("hint", ""), "reads": reads})
    return {"format": FORMAT, "exercise": name, "title": title_of(nb),
            "time_limit_s": meta.get("time_limit_s", DEFAULT_TIME_LIMIT_S),
            "parameters": {"FAST": True, "SEED": 0}, "questions": questions}


def release_text(source_path: Path) -> str:
    """The exact text of the release notebook for ``source_path``."""
    source_path = Path(source_path)
    nb = nbformat.read(str(source_path), as_version=4)
    problems = lint_source(nb, source_path.name)
    if problems:
        raise ExerciseError("\n".join(problems))
    meta = release_metadata(nb, source_path.stem)  # before the solutions go: what they define
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index:03d}"  # fixed ids: nbformat would otherwise invent random ones
        for key in _RUN_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{source_path.name} cell {index}")
            cell.outputs, cell.execution_count = [], None
    nb.nbformat_minor = max(nb.nbformat_minor, 5)  # cell ids need nbformat 4.5
    for key in ("papermill", "widgets"):
        nb.metadata.pop(key, None)
    nb.metadata[META_KEY] = meta
    return nbformat.writes(nb) + "\n"


def load_guide(exercise) -> Guide:
    """The guide of ``exercise``'s release, computed from its source notebook (as ``course-grade
    release`` writes it); ExerciseError if its questions are not those of the hidden tests."""
    nb = nbformat.reads(release_text(exercise.source), as_version=4)
    guide = release_guide(nb, exercise.source.name)
    check_points(guide, exercise.questions, exercise.source.name)
    return guide


def plan(source_dir: Path, release_dir: Path) -> tuple[dict[Path, str], list[Path]]:
    """({release path: text it should have}, [release notebooks without a source]). The points
    in each release are checked against its hidden tests, where those sit next to source/."""
    wanted = {}
    for path in sorted(source_dir.glob("*.ipynb")):
        text = wanted[release_dir / path.name] = release_text(path)
        hidden = source_dir.parent / "grading" / f"{path.stem}.py"
        if hidden.is_file():
            questions, _ = parse_hidden(hidden.read_text(encoding="utf-8"), str(hidden))
            guide = guide_from_metadata(nbformat.reads(text, as_version=4).metadata[META_KEY])
            check_points(guide, questions, path.name)
    orphans = sorted(p for p in release_dir.glob("*.ipynb") if p not in wanted)
    return wanted, orphans


def run_release(source_dir: Path, release_dir: Path, check: bool = False) -> int:
    """Write (or with ``check``, only compare) the release notebooks; return the exit code."""
    source_dir, release_dir = Path(source_dir), Path(release_dir)
    if not source_dir.is_dir():
        raise ExerciseError(f"source folder {source_dir} does not exist (use --source DIR)")
    wanted, orphans = plan(source_dir, release_dir)
    if not wanted:
        print(f"no source notebooks in {source_dir}: nothing to release")
    stale = [p for p, text in wanted.items()
             if not p.is_file() or p.read_text(encoding="utf-8") != text]
    if check:
        for path in stale:
            print(f"stale: {path} (differs from its source)" if path.exists()
                  else f"missing: {path}")
        for path in orphans:
            print(f"orphan: {path} (no source notebook)")
        if stale or orphans:
            print("release is out of date: run `course-grade release` and commit the result")
            return 1
        print(f"release is up to date ({len(wanted)} notebooks)")
        return 0
    release_dir.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.write_text(wanted[path], encoding="utf-8", newline="\n")
        print(f"wrote {path}")
    for path in orphans:
        path.unlink()
        print(f"removed {path} (no source notebook)")
    print(f"release: {len(wanted)} notebooks, {len(stale)} updated")
    return 0
