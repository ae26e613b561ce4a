"""Text built from the run: ``say`` renders Markdown, ``transfer_note`` the course's five-field note.

Cells that only call these keep their source collapsed in JupyterLab (cell metadata
``jupyter.source_hidden``; ``course hide-prose`` sets it, ``tests/test_notebook_shape.py`` checks it),
so a reader sees the sentence, not the f-string that built it.
"""
from __future__ import annotations

import textwrap

TRANSFER_NOTE_FIELDS = {
    "frozen": "What was frozen",
    "trained": "What was trained",
    "why_depth": "Why that depth",
    "validation": "Validation result against simpler reuse",
    "unfreeze_evidence": "What evidence would justify unfreezing more",
}


def _display_markdown(text: str) -> None:
    try:
        from IPython.display import Markdown, display
    except ImportError:  # plain Python (a script, a test): print instead
        print(text)
        return
    display(Markdown(text))


def say(text: str) -> None:
    """Render ``text`` (Markdown, usually an f-string of this run's numbers). Returns nothing, so a
    call as a cell's last line is not shown twice."""
    _display_markdown(textwrap.dedent(text).strip())


def transfer_note(*, frozen: str, trained: str, why_depth: str, validation: str, unfreeze_evidence: str,
                  title: str = "A transfer note") -> None:
    """Render the five fields every notebook fills from its run (introduced in notebook 01)."""
    say(transfer_note_markdown(frozen=frozen, trained=trained, why_depth=why_depth, validation=validation,
                               unfreeze_evidence=unfreeze_evidence, title=title))


def transfer_note_markdown(*, frozen: str, trained: str, why_depth: str, validation: str, unfreeze_evidence: str,
                           title: str = "A transfer note") -> str:
    """The transfer note as a Markdown table; an empty field is an error."""
    values = dict(frozen=frozen, trained=trained, why_depth=why_depth, validation=validation,
                  unfreeze_evidence=unfreeze_evidence)
    empty = [TRANSFER_NOTE_FIELDS[k] for k, v in values.items() if not str(v).strip()]
    if empty:
        raise ValueError(f"a transfer note needs all five fields; empty: {', '.join(empty)}")
    rows = "\n".join(f"| **{TRANSFER_NOTE_FIELDS[k]}** | {' '.join(str(v).split())} |" for k, v in values.items())
    return f"### {title}\n\n| field | this notebook |\n|---|---|\n{rows}"


__all__ = ["say", "transfer_note", "transfer_note_markdown", "TRANSFER_NOTE_FIELDS"]
