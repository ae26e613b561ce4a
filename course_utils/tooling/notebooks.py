"""Where the course's notebooks are and which of their cells render text: one place for every tool
(``course run``, ``results``, ``site``, ``colab``) and test that lists or reads them."""
from __future__ import annotations

from pathlib import Path

GLOB = "[0-9][0-9]_*.ipynb"           # lessons and solutions: two digits, an underscore, a name
LESSONS = "notebooks"                 # folders, relative to the repository root
SOLUTIONS = "notebooks/solutions"
PROSE_CALLS = ("say(", "transfer_note(", "Markdown(")


def find_notebooks(folder: Path, only: str | None = None) -> list[Path]:
    """The numbered notebooks in ``folder``, in teaching order; ``only`` keeps names containing it."""
    return [p for p in sorted(Path(folder).glob(GLOB)) if only is None or only in p.name]


def lessons(root: Path) -> list[Path]:
    return find_notebooks(Path(root) / LESSONS)


def solutions(root: Path) -> list[Path]:
    return find_notebooks(Path(root) / SOLUTIONS)


def is_prose_cell(source: str) -> bool:
    """A code cell whose job is to render text built from the run (``say``, ``transfer_note``, Markdown)."""
    return any(call in source for call in PROSE_CALLS)
