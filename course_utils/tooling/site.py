"""The course as a website: ``course site`` writes a static site to out/site/ (entry index.html).

Sphinx with myst-nb renders what is already there and executes nothing (``nb_execution_mode =
"off"``), so the build works offline. The pages, in this order: the README as the home page, the
notebooks in course order as ``course run`` executed them (out/notebooks/; a notebook without an
executed copy is shown as committed, without outputs, and says so), docs/RESULTS.md with its
figures (docs/results/), GRADING.md, NOTEBOOKS.md, and the student exercises (exercises/release/,
unexecuted). When out/notebooks/ holds no executed notebook, ``course run --fast`` runs first; a
banner on every page says which mode (full or FAST, from out/summary.json) the outputs come from.

Each notebook page keeps the notebook's Open-in-Colab badge (its first markdown line). A link to
a repository file that is not a page (data/README.md, a module) points to that file on GitHub
(the URL in pyproject.toml), so no link on the site leads nowhere; tests/test_site.py opens every
page in headless Chromium and checks pages, figures and links. The sources Sphinx reads are
staged in out/site-build/src/ (links rewritten, papermill's parameter cell removed); nothing in
the repository is modified.
"""
from __future__ import annotations

import json
import posixpath
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from course_utils.tooling.notebooks import find_notebooks, is_prose_cell, lessons

DOCS = ("docs/RESULTS.md", "docs/GRADING.md", "docs/NOTEBOOKS.md")
# A markdown link or image target: ](target) or ](target "title"). Targets that are not files of
# the repository (code like `f(a, b)` in a fence) are left exactly as they are.
LINK = re.compile(r"(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")

CONF = """\
project = {title!r}
html_title = {title!r}
extensions = ["myst_nb"]
nb_execution_mode = "off"          # render the executed notebooks as they are; never run them
nb_merge_streams = True
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 4           # RESULTS.md#some-heading links resolve
html_theme = "sphinx_book_theme"
html_copy_source = False
html_show_sourcelink = False
html_theme_options = {{
    "announcement": {banner!r},
    "repository_url": {repo!r},
    "use_repository_button": True,
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": False,  # its links need the copied sources; the Colab badge opens a notebook
}}
html_context = {{"default_mode": "light"}}
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]
"""


def executed_notebooks(out: Path) -> list[Path]:
    """The executed lessons of a course run (``course site`` runs the course in FAST first when none)."""
    return find_notebooks(Path(out) / "notebooks")


def run_mode(out: Path) -> str:
    """Which run the outputs come from, in words, from out/summary.json."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return "outputs from an earlier course run (mode unknown)"
    mode = summary.get("mode", "unknown")
    how = "full settings" if mode == "full" else "small data, few epochs" if mode == "FAST" else "mode unknown"
    return f"outputs from course run in {mode} mode ({how})"


def page_sources(root: Path, out: Path) -> dict[str, Path]:
    """Staged path (relative, posix) -> the file it is copied from, in site order."""
    pages = {"index.md": root / "README.md"}
    for name in [p.name for p in lessons(root)]:
        executed = out / "notebooks" / name
        pages[f"notebooks/{name}"] = executed if executed.exists() else root / "notebooks" / name
    pages.update({doc: root / doc for doc in DOCS if (root / doc).exists()})
    for figure in sorted((root / "docs" / "results").glob("*")):
        pages[f"docs/results/{figure.name}"] = figure
    for exercise in sorted((root / "exercises" / "release").glob("*.ipynb")):
        pages[f"exercises/release/{exercise.name}"] = exercise
    return pages


def github_url(root: Path) -> str:
    from course_utils.tooling.colab import repository_url

    try:
        return repository_url(root).rstrip("/")
    except (OSError, ValueError):
        return "https://github.com"


def rewrite_links(text: str, staged_as: str, staged: set[str], root: Path, github: str) -> str:
    """Point each link of a page staged at ``staged_as`` at a page of the site or, for a repository
    file that is not on the site, at that file on GitHub. Other targets are left as they are."""
    source_dir = posixpath.dirname("README.md" if staged_as == "index.md" else staged_as)

    def fix(match: re.Match) -> str:
        target = match.group(2)
        path, hash_, fragment = target.partition("#")
        if not path or re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", path):
            return match.group(0)  # in-page anchor, http(s), mailto, ...
        resolved = posixpath.normpath(posixpath.join(source_dir, path))
        if resolved == "README.md":
            resolved = "index.md"
        if resolved in staged:
            new = posixpath.relpath(resolved, posixpath.dirname(staged_as) or ".")
        elif not resolved.startswith("..") and (root / resolved).exists():
            kind = "tree" if (root / resolved).is_dir() else "blob"
            new = f"{github}/{kind}/main/{resolved}"
        else:
            return match.group(0)
        return match.group(1) + new + hash_ + fragment + match.group(3)

    return LINK.sub(fix, text)


def stage_notebook(source: Path, dest: Path, fix_links, executed: bool) -> None:
    """Copy a notebook for the site: links fixed, papermill's injected cell removed, the source of
    prose cells (collapsed in JupyterLab) hidden so their text reads as text."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if cell.cell_type == "markdown":
            cell.source = fix_links(cell.source)
        elif "injected-parameters" in tags:
            tags.append("remove-cell")
        elif is_prose_cell(cell.source) or cell.metadata.get("jupyter", {}).get("source_hidden"):
            tags.append("remove-input")
    if not executed and nb.cells and nb.cells[0].cell_type == "markdown":
        nb.cells[0].source += ("\n\n*Not executed yet: run `bash course.sh run` to see this "
                               "notebook's outputs here.*")
    nb.metadata.pop("widgets", None)  # widget state would pull widget JavaScript from a CDN
    nbformat.write(nb, dest)


def contents(pages: dict[str, Path]) -> str:
    """The table of contents appended to the home page: notebooks, documents, exercises."""
    groups = [("Notebooks", "notebooks/"), ("Results and guides", "docs/"), ("Exercises", "exercises/")]
    text = "\n\n## On this site\n"
    for caption, prefix in groups:
        names = [p.rsplit(".", 1)[0] for p in pages if p.startswith(prefix) and p.endswith((".md", ".ipynb"))]
        if names:
            text += "\n```{toctree}\n:caption: " + caption + "\n:maxdepth: 1\n\n" + "\n".join(names) + "\n```\n"
    return text


def stage(root: Path, out: Path, src: Path, mode: str) -> dict[str, Path]:
    """Write the Sphinx sources to ``src``; returns the staged pages."""
    pages, github = page_sources(root, out), github_url(root)
    staged = set(pages)
    shutil.rmtree(src, ignore_errors=True)
    for staged_as, source in pages.items():
        dest = src / staged_as
        dest.parent.mkdir(parents=True, exist_ok=True)
        fix = lambda text, at=staged_as: rewrite_links(text, at, staged, root, github)  # noqa: E731
        if dest.suffix == ".ipynb":
            stage_notebook(source, dest, fix, executed=source.parent == out / "notebooks")
        elif dest.suffix == ".md":
            dest.write_text(fix(source.read_text()) + (contents(pages) if staged_as == "index.md" else ""))
        else:
            shutil.copy2(source, dest)
    title = next((l[2:].strip() for l in (root / "README.md").read_text().splitlines() if l.startswith("# ")), "Course")
    banner = f"This site shows the notebooks with {mode}."
    (src / "conf.py").write_text(CONF.format(title=title, banner=banner, repo=github))
    return pages


def build_site(root: Path | None = None, out: Path | None = None, site: Path | None = None) -> dict:
    """Build the site; returns what was built (pages, figures, seconds, where). Raises on a failed build."""
    from course_utils.config import repo_root

    root = Path(root or repo_root())
    out = Path(out or root / "out")
    site = Path(site or root / "out" / "site")
    start = time.perf_counter()
    if not executed_notebooks(out):
        raise RuntimeError(f"no executed notebooks in {out / 'notebooks'}: run `course run` (or `course site`, "
                           "which runs the course in FAST mode first) before building the site")
    work = site.parent / "site-build"  # sources, doctrees and myst-nb's jupyter_execute/ beside html/
    mode = run_mode(out)
    pages = stage(root, out, work / "src", mode)
    shutil.rmtree(work / "html", ignore_errors=True)
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-d", str(work / "doctrees"),
               str(work / "src"), str(work / "html")]
    done = subprocess.run(command, capture_output=True, text=True)
    warnings = [line for line in done.stderr.splitlines() if line.strip()]
    if done.returncode != 0 or not (work / "html" / "index.html").exists():
        raise RuntimeError("sphinx failed:\n" + "\n".join(warnings[-30:]))
    (work / "html" / ".nojekyll").touch()  # GitHub Pages: serve _static/ and _images/ as they are
    shutil.rmtree(site, ignore_errors=True)
    shutil.move(work / "html", site)
    return {"site": site, "pages": sum(p.endswith((".md", ".ipynb")) for p in pages),
            "figures": len(list((site / "_images").glob("*"))), "warnings": warnings,
            "mode": mode, "seconds": time.perf_counter() - start}


def add_parser(sub) -> None:
    site = sub.add_parser("site", help="build the course website in out/site/ from the executed notebooks")
    site.add_argument("--out", type=Path, help="the run whose notebooks/ to show (default: out/; "
                      "out/results for the run of `course results`); the site always goes to out/site/")


def main(args) -> int:
    try:
        built = build_site(out=args.out)
    except RuntimeError as err:
        print(f"course site: {err}", file=sys.stderr)
        return 1
    for line in built["warnings"]:
        print(f"  sphinx: {line}")
    print(f"course site: {built['pages']} pages, {built['figures']} figures, {built['mode']}; "
          f"built in {built['seconds']:.0f} s -> {built['site'] / 'index.html'}")
    return 0
