"""Pairwise similarity of the submissions' code: OUT_DIR/similarity.csv (``a,b,score,flagged``).

Winnowing (Schleimer, Wilkerson and Aiken 2003, the method behind MOSS) over normalised tokens:

1. every code cell of a notebook is read as Python tokens (``tokenize``); comments, blank lines
   and IPython magics are dropped, numbers become ``N`` and strings ``S``, and every name becomes
   ``V`` unless the exercise fixes it: keywords, builtins, attributes (``x.backward``) and the
   names the release notebook itself uses (its imports, data, required answers). So renaming
   variables and rewriting comments changes nothing;
2. each run of K tokens is hashed; of every W consecutive hashes the smallest is kept: the
   notebook's fingerprints;
3. the fingerprints of the release notebook (the scaffold every student starts from) are removed,
   so only what the students wrote counts;
4. score(a, b) = shared fingerprints / fingerprints of the smaller of the two (1.0: one is
   contained in the other). A pair is flagged at score >= FLAG_AT when both wrote at least
   MIN_FINGERPRINTS fingerprints of their own (too little code says nothing).

A flagged pair is a reason for a person to read both notebooks, never a verdict.
"""
from __future__ import annotations

import builtins
import csv
import hashlib
import io
import keyword
import tokenize
from itertools import combinations
from pathlib import Path

K = 12  # tokens per hashed run: a statement or two
W = 4  # window: at least one fingerprint in every W + K - 1 tokens
FLAG_AT = 0.75
MIN_FINGERPRINTS = 12
COLUMNS = ["a", "b", "score", "flagged"]
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENDMARKER, tokenize.ENCODING}
_FIXED = set(keyword.kwlist) | set(dir(builtins))


def code_of(nb) -> list[str]:
    """The notebook's code cells, IPython magics and shell lines removed."""
    cells = []
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
            cells.append("\n".join(line for line in source.splitlines()
                                   if not line.lstrip().startswith(("%", "!"))))
    return cells


def names_of(nb) -> set:
    """Every name the notebook's code uses: for the release, the names the exercise fixes."""
    names = set()
    for source in code_of(nb):
        names.update(t.string for t in _tokens(source) if t.type == tokenize.NAME)
    return names


def tokens(nb, fixed: set) -> list[str]:
    """The notebook's code as normalised tokens (see the module's docstring)."""
    out = []
    for source in code_of(nb):
        previous = ""
        for tok in _tokens(source):
            if tok.type == tokenize.NAME:
                keep = tok.string in _FIXED or tok.string in fixed or previous == "."
                out.append(tok.string if keep else "V")
            elif tok.type == tokenize.NUMBER:
                out.append("N")
            elif tok.type == tokenize.STRING or tokenize.tok_name[tok.type].startswith("FSTRING"):
                out.append("S")  # (an f-string's expressions, from Python 3.12, stay tokens)
            else:
                out.append(tok.string)
            previous = tok.string
    return out


def _tokens(source: str):
    try:
        return [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type not in _SKIP]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []  # a cell that is not Python: no fingerprints from it


def fingerprints(toks: list[str]) -> set[int]:
    """Winnowing: the smallest hash of every window of W consecutive K-token hashes."""
    hashes = [int.from_bytes(hashlib.blake2b("\x1f".join(toks[i:i + K]).encode(),
                                             digest_size=8).digest(), "big")
              for i in range(len(toks) - K + 1)]
    if len(hashes) < W:
        return set(hashes)
    return {min(hashes[i:i + W]) for i in range(len(hashes) - W + 1)}


def similarity(notebooks: dict, release) -> list[dict]:
    """Rows of similarity.csv for ``notebooks`` ({student: nb}), ``release`` being the scaffold;
    every pair, highest score first."""
    fixed = names_of(release)
    scaffold = fingerprints(tokens(release, fixed))
    own = {s: fingerprints(tokens(nb, fixed)) - scaffold for s, nb in notebooks.items()}
    rows = []
    for a, b in combinations(sorted(own), 2):
        small = min(len(own[a]), len(own[b]))
        score = len(own[a] & own[b]) / small if small else 0.0
        rows.append({"a": a, "b": b, "score": round(score, 3),
                     "flagged": score >= FLAG_AT and small >= MIN_FINGERPRINTS})
    return sorted(rows, key=lambda r: (-r["score"], r["a"], r["b"]))


def write_similarity(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, "flagged": "yes" if r["flagged"] else "no"} for r in rows)
