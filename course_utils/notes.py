"""Text built from the run: ``say`` renders Markdown, ``compared`` writes a comparison with its interval,
``transfer_note`` the course's five-field note.

Cells that only call these keep their source collapsed in JupyterLab (cell metadata
``jupyter.source_hidden``) and on Colab (``cellView: form`` with a ``# @title`` line); ``course
hide-prose`` sets both and ``tests/test_notebook_shape.py`` checks them, so a reader sees the
sentence, not the f-string that built it.
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


def compared(a: str, comparison, b: str, unit: str = "test items") -> str:
    """The course's comparison sentence, its verdict word always beside its interval::

        compared("fine-tune", compare(ft_items, probe_items), "the linear probe", "test objects")
        # 'fine-tune **beats** the linear probe (+0.047, 95 % CI +0.011 to +0.083; 3 seeds x 59 test objects)'
    """
    seeds = (f"{comparison.seeds} seeds" if comparison.seeds > 1 else "1 seed: seed noise not measured")
    return (f"{a} **{comparison.word}** {b} ({comparison.difference:+.3f}, {comparison.interval}; "
            f"{seeds} \N{MULTIPLICATION SIGN} {comparison.items} {unit})")


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


__all__ = ["compared", "say", "transfer_note", "transfer_note_markdown", "TRANSFER_NOTE_FIELDS"]
