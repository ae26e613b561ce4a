"""What a student may know about an exercise's questions: read from the RELEASE notebook only.

For each question of ``QUESTIONS`` (``qN_name``): its label ``QN``, a one-line description and a
hint, all taken from text the student already has, so nothing here can leak a solution or a
hidden test. The release text is computed from the source (``release.release_text``), which
strips every solution block; of a source notebook only markdown and the ``### HINT:`` lines
(the release's ``NotImplementedError`` messages) are used.

- description: the row ``| QN | what you hand in | points |`` of the intro table, else the text of
  the ``## QN (p points) — title`` heading;
- hint: a markdown line ``**Hint (QN):** …`` anywhere, or ``**Hint:** …`` in the question's
  section (from its ``QN`` heading to the next heading of the same or a higher level), else the
  stub messages of the solution blocks in that section. A notebook without ``QN`` headings gives its k-th stub to its k-th question when
  there are exactly as many stubs as questions.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import nbformat

from course_utils.grading.spec import DEFAULT_HINT, Exercise

_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")
_QLABEL = re.compile(r"^Q(\d+)(?!\d)")
_TABLE_ROW = re.compile(r"^\|\s*Q(\d+)\s*\|(.*)\|\s*[\d.]+\s*\|\s*$")
_HINT_LINE = re.compile(r"^\s*(?:>\s*)?\*\*Hint(?:\s*\(Q(\d+)\))?:?\*\*:?\s*(.+\S)\s*$",
                        re.IGNORECASE)
_STUB = re.compile(r"^\s*raise NotImplementedError\((\".*\")\)\s*$")


@dataclass(frozen=True)
class Question:
    name: str
    points: float
    label: str  # "Q1", or the name when it has no number
    description: str = ""
    hint: str = ""


@dataclass(frozen=True)
class Guide:
    exercise: str
    title: str
    questions: dict = field(default_factory=dict)  # name -> Question, in QUESTIONS order

    @property
    def max_points(self) -> float:
        return sum(q.points for q in self.questions.values())


def load_guide(exercise: Exercise) -> Guide:
    """The student-facing description of ``exercise``; never fails on odd notebooks."""
    from course_utils.grading.release import release_text

    try:
        nb = nbformat.reads(release_text(exercise.source), as_version=4)
    except Exception:  # noqa: BLE001 - a malformed source: questions without descriptions
        nb = nbformat.v4.new_notebook()
    return guide_from_release(exercise.name, exercise.questions, nb)


def guide_from_release(name: str, questions: dict, nb) -> Guide:
    """The guide of a release notebook ``nb`` for the questions ``{qN_name: points}``."""
    table, headings, sections, ordered = _scan(nb)
    labelled = _labelled_hints(nb)
    out = {}
    for index, (q, points) in enumerate(questions.items()):
        number = _number(q)
        label = f"Q{number}" if number else q
        description = table.get(number) or headings.get(number, "")
        hint = labelled.get(number) or (_section_hint(sections.get(number)) if sections
                                         else _ordered_hint(ordered, questions, index))
        out[q] = Question(q, points, label, description, hint)
    return Guide(name, title_of(nb), out)


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


def _number(question: str) -> str:
    match = re.match(r"^q(\d+)(?!\d)", question)
    return str(int(match.group(1))) if match else ""


def _scan(nb):
    """(table rows, heading titles, {number: section lines and stubs}, stubs in notebook order)."""
    table, headings, sections, ordered = {}, {}, {}, []
    current, level = None, 0
    for cell in nb.cells:
        for line in text_of(cell).splitlines():
            stub = _stub_hint(line) if cell.cell_type == "code" else None
            if stub is not None:
                ordered.append(stub)
                if current is not None:
                    sections[current]["stubs"].append(stub)
                continue
            if cell.cell_type != "markdown":
                continue
            row, heading = _TABLE_ROW.match(line), _HEADING.match(line)
            if row:
                table.setdefault(str(int(row.group(1))), _clean_cell(row.group(2)))
            if heading:
                current, level = _enter_heading(heading, current, level, headings, sections)
            elif current is not None:
                sections[current]["lines"].append(line)
    return table, headings, sections, ordered


def _enter_heading(heading, current, level, headings, sections):
    """Start a question's section at a ``QN`` heading; end it at a heading as high as its own."""
    depth, text = len(heading.group(1)), heading.group(2)
    match = _QLABEL.match(text)
    if match:
        number = str(int(match.group(1)))
        headings.setdefault(number, _heading_title(text))
        sections.setdefault(number, {"lines": [], "stubs": []})
        return number, depth
    if current is not None and depth <= level:
        return None, 0
    return current, level


def _heading_title(text: str) -> str:
    parts = re.split(r"\s+[—–-]\s+", text, maxsplit=1)
    return parts[1].strip() if len(parts) == 2 else ""


def _clean_cell(text: str) -> str:
    cells = [c.strip() for c in text.split("|") if c.strip()]
    return cells[0] if cells else ""


def _stub_hint(line: str) -> str | None:
    match = _STUB.match(line)
    if not match:
        return None
    try:
        hint = json.loads(match.group(1))
    except ValueError:
        return None
    return "" if hint == DEFAULT_HINT else str(hint)


def _labelled_hints(nb) -> dict:
    """{number: text} of the ``**Hint (QN):**`` lines of the markdown cells."""
    found = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in text_of(cell).splitlines():
                match = _HINT_LINE.match(line)
                if match and match.group(1):
                    found.setdefault(str(int(match.group(1))), match.group(2))
    return found


def _section_hint(section) -> str:
    if not section:
        return ""
    for line in section["lines"]:
        match = _HINT_LINE.match(line)
        if match and not match.group(1):
            return match.group(2)
    return "; ".join(h for h in section["stubs"] if h)


def _ordered_hint(stubs: list, questions: dict, index: int) -> str:
    return stubs[index] if len(stubs) == len(questions) else ""
