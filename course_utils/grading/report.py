"""The cohort report of a batch: OUT_DIR/report.md, report.html and report_totals.png.

Per question the pass rate and mean points, the question most students fail, and its most common
failure messages grouped (numbers made ``#``) and counted; the distribution of the totals (a
figure); the notebooks' statuses and run times; late submissions, overrides and the flagged
similar pairs. Messages pass through the same filter as the feedback files (feedback.student_text),
so no hidden-test source or grader-side error text reaches the report. report.html is the same
Markdown rendered by markdown-it-py, with the figure embedded, so it is one self-contained file.
"""
from __future__ import annotations

import base64
import html
import io
import re
from collections import Counter
from pathlib import Path

from course_utils.grading.feedback import student_text
from course_utils.grading.spec import STATUSES

FIGURE = "report_totals.png"
TOP_MESSAGES = 5
RUNTIME_BINS = (10, 30, 60, 120, 300)  # seconds: the edges of the run-time counts
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?%?")
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
          "table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #bbb;"
          "padding:.25rem .5rem;text-align:left}img{max-width:100%}")


def write_report(out_dir: Path, data: dict, secrets: list[str]) -> list[Path]:
    """Write report.md, report.html and the figure into ``out_dir``; return the paths.

    ``data``: exercise, max_points, guide (for labels), rows (grades.csv), totals ({student: row}),
    statuses and seconds ({student: ...}), similarity rows, overrides, deadline (dict) and notes.
    """
    out_dir = Path(out_dir)
    png = totals_figure([t["final"] for t in data["totals"].values()], data["max_points"])
    (out_dir / FIGURE).write_bytes(png)
    text = markdown(data, secrets)
    (out_dir / "report.md").write_text(text, encoding="utf-8", newline="\n")
    page = to_html(text.replace(f"]({FIGURE})", f"](data:image/png;base64,{base64.b64encode(png).decode()})"),
                   f"Cohort report: {data['exercise']}")
    (out_dir / "report.html").write_text(page, encoding="utf-8", newline="\n")
    return [out_dir / "report.md", out_dir / "report.html", out_dir / FIGURE]


def markdown(data: dict, secrets: list[str]) -> str:
    parts = [_head(data), _questions(data), _messages(data, secrets), _notebooks(data),
             _late(data), _overrides(data), _similar(data)]
    return "\n\n".join(p for p in parts if p) + "\n"


def _head(data: dict) -> str:
    finals = sorted(t["final"] for t in data["totals"].values())
    n = len(finals)
    mean = sum(finals) / n if n else 0
    median = (finals[(n - 1) // 2] + finals[n // 2]) / 2 if n else 0
    return (f"# Cohort report: {data['exercise']}\n\n"
            f"{n} submissions, {data['max_points']:g} points each. Final points: mean "
            f"{mean:.2f}, median {median:g}, lowest {finals[0] if n else 0:g}, highest "
            f"{finals[-1] if n else 0:g}. Everything here comes from grades.csv, totals.csv and "
            f"similarity.csv; no hidden test is quoted.\n\n"
            f"![Distribution of the final points]({FIGURE})")


def _questions(data: dict) -> str:
    lines = ["## Questions", "", "| question | points | pass rate | mean points | "
             + " | ".join(STATUSES) + " |", "|---" * (4 + len(STATUSES)) + "|"]
    rates = {}
    for q, info in data["guide"].questions.items():
        rows = [r for r in data["rows"] if r["question"] == q]
        counts = Counter(r["status"] for r in rows)
        rates[q] = counts["ok"] / len(rows) if rows else 0.0
        mean = sum(float(r["points"]) for r in rows) / len(rows) if rows else 0.0
        lines.append(f"| {info.label} `{q}` | {info.points:g} | {rates[q]:.0%} | {mean:.2f} | "
                     + " | ".join(str(counts[s]) for s in STATUSES) + " |")
    if rates:
        worst = min(rates, key=lambda q: (rates[q], q))
        lines += ["", f"The question most students fail: **{data['guide'].questions[worst].label}** "
                      f"(`{worst}`), passed by {rates[worst]:.0%}."]
    return "\n".join(lines)


def _messages(data: dict, secrets: list[str]) -> str:
    lines = ["## Most common failure messages", "",
             "Per question, the messages of the submissions that did not pass, numbers shown as "
             "`#`, with how many submissions got each (and one example)."]
    for q, info in data["guide"].questions.items():
        groups: dict = {}
        for r in data["rows"]:
            if r["question"] == q and r["status"] != "ok":
                text = student_text(r["detail"], secrets)
                groups.setdefault(_NUMBER.sub("#", text), []).append(text)
        if not groups:
            continue
        lines += ["", f"### {info.label} `{q}`", "", "| submissions | message | example |", "|---|---|---|"]
        for pattern, texts in sorted(groups.items(), key=lambda g: (-len(g[1]), g[0]))[:TOP_MESSAGES]:
            lines.append(f"| {len(texts)} | {_cell(pattern)} | {_cell(texts[0])} |")
    return "\n".join(lines) if len(lines) > 3 else ""


def _notebooks(data: dict) -> str:
    statuses = Counter(data["statuses"].values())
    lines = ["## Notebooks", "", "| status | submissions |", "|---|---|"]
    lines += [f"| {s} | {statuses[s]} |" for s in ("ok", "error", "timeout", "invalid") if statuses[s]]
    seconds = sorted(data["seconds"].values())
    if seconds:
        lines += ["", f"Run time per submission (notebook and checks): median "
                      f"{seconds[len(seconds) // 2]:.1f} s, longest {seconds[-1]:.1f} s.", "",
                  "| run time | submissions |", "|---|---|"]
        labels = [f"under {RUNTIME_BINS[0]} s"] + [f"{lo}-{hi} s" for lo, hi in zip(RUNTIME_BINS, RUNTIME_BINS[1:])]
        labels.append(f"{RUNTIME_BINS[-1]} s or more")
        counts = [sum(s < RUNTIME_BINS[0] for s in seconds)] + [
            sum(lo <= s < hi for s in seconds) for lo, hi in zip(RUNTIME_BINS, RUNTIME_BINS[1:])]
        counts.append(sum(s >= RUNTIME_BINS[-1] for s in seconds))
        lines += [f"| {label} | {count} |" for label, count in zip(labels, counts)]
    return "\n".join(lines)


def _late(data: dict) -> str:
    deadline = data.get("deadline") or {}
    if not deadline.get("due"):
        return ""
    late = [t for t in data["totals"].values() if t["days_late"]]
    lines = ["## Late submissions", "",
             f"Due {deadline['due']}; {deadline['penalty_pct']:g} % of the points per started day "
             f"late, at least {deadline['floor_pct']:g} % kept. {len(late)} of "
             f"{len(data['totals'])} submissions were late."]
    if late:
        lines += ["", "| student | submitted | days late | raw | penalty | final |", "|---|---|---|---|---|---|"]
        lines += [f"| {_cell(t['student'])} | {t['submitted_at']} | {t['days_late']} | {t['raw']:g} | "
                  f"{t['late_penalty']:g} | {t['final']:g} |" for t in late]
    return "\n".join(lines)


def _overrides(data: dict) -> str:
    if not data.get("overrides"):
        return ""
    lines = ["## Overrides", "", "| student | question | points | reason |", "|---|---|---|---|"]
    lines += [f"| {_cell(o['student'])} | {o['question']} | {o['points']:g} | {_cell(o['reason'])} |"
              for o in data["overrides"]]
    return "\n".join(lines)


def _similar(data: dict) -> str:
    from course_utils.grading.similarity import FLAG_AT

    flagged = [r for r in data["similarity"] if r["flagged"]]
    lines = ["## Similar submissions", "",
             f"{len(flagged)} of {len(data['similarity'])} pairs flagged (score >= {FLAG_AT:g}: the "
             "share of the smaller notebook's own code fingerprints found in the other, variable "
             "names, comments and the release's scaffold left out; similarity.csv lists every pair). "
             "A flag is a reason to read both notebooks, not a verdict."]
    if flagged:
        lines += ["", "| a | b | score |", "|---|---|---|"]
        lines += [f"| {_cell(r['a'])} | {_cell(r['b'])} | {r['score']:.2f} |" for r in flagged]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def totals_figure(finals: list, max_points: float) -> bytes:
    """A histogram of the final points, as PNG bytes (no timestamp: the same data, the same file)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6, 3), dpi=100)
    ax = fig.subplots()
    ax.hist(finals, bins=max(1, min(20, int(max_points * 2))), range=(0, max_points),
            color="#4477aa", edgecolor="white")
    ax.set_xlabel(f"final points (of {max_points:g})")
    ax.set_ylabel("submissions")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Distribution of the totals")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def to_html(markdown_text: str, title: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
            f"<body>\n{body}</body></html>\n")
