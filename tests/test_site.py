"""The course website (course_utils/tooling/site.py), opened in a real browser.

A tiny course (two executed notebooks with figures, a README, the three docs, one exercise) is built
into a site in a temporary folder; headless Chromium (Debian's ``chromium`` + ``chromium-driver``,
driven by selenium; ``bash course.sh setup`` installs them) then opens every page reachable from
index.html and checks that it loads (a title, no SEVERE console error from a file of the site),
that its figures render (each local ``<img>`` has ``naturalWidth > 0``) and that every link to a
local file resolves (the file exists, its page loads, its ``#anchor`` exists). When a real build
exists (``bash course.sh site`` wrote out/site/), the same checks run on it too.

The browser resolves no host name (``--host-resolver-rules``): the site must work from its own
files; external links (GitHub, Colab) are only checked for their form, never fetched.
"""
from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import nbformat
import pytest

from course_utils.config import repo_root
from course_utils.tooling import site
from course_utils.tooling.notebooks import GLOB

REPO = "https://github.com/someone/tl-course"
BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/someone/tl-course/blob/main/notebooks/{name})")


# --------------------------------------------------------------------------- the tiny course

def png_bytes(color: str) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=40)
    ax.plot([0, 1, 2], [0, 1, 0], color=color)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def tiny_notebook(name: str, title: str, body: str, figures: int, executed: bool):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell(BADGE.format(name=name) + f"\n# {title}\n\n{body}"),
                nbformat.v4.new_code_cell("FAST = False", metadata={"tags": ["parameters"]})]
    if executed:  # what papermill inserts; the site leaves it out
        nb.cells.append(nbformat.v4.new_code_cell("FAST = True", metadata={"tags": ["injected-parameters"]}))
    for i in range(figures):
        cell = nbformat.v4.new_code_cell(f"plot({i})")
        if executed:
            data = {"image/png": base64.b64encode(png_bytes(f"C{i}")).decode(), "text/plain": "<Figure>"}
            cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
        nb.cells.append(cell)
    nb.cells.append(nbformat.v4.new_markdown_cell("## Questionnaire\n\n1. What did the figure show?"))
    return nb


def write_tiny_course(root: Path) -> None:
    files = {
        "pyproject.toml": f'[project.urls]\nRepository = "{REPO}"\n',
        "README.md": "# Tiny course\n\nStart with [the first notebook](notebooks/00_first.ipynb), then "
                     "[the second](notebooks/01_second.ipynb#a-section). Results: [RESULTS](docs/RESULTS.md); "
                     "[grading](docs/GRADING.md), [shape](docs/NOTEBOOKS.md); data: [data](data/README.md); "
                     "exercise: [ex01](exercises/release/ex01_tiny.ipynb).\n\n## Code\n\n"
                     "```python\nf(a, b)  # ](not a link)\n```\n",
        "docs/RESULTS.md": "# Results\n\n## Curve\n\n![a curve](results/00-curve.png)\n\n"
                           "From [the first notebook](../notebooks/00_first.ipynb); back [home](../README.md).\n",
        "docs/GRADING.md": "# Grading\n\nSee [results](RESULTS.md#curve) and [the sandbox](#the-sandbox).\n\n"
                           "## The sandbox\n\nIt is a box.\n",
        "docs/NOTEBOOKS.md": "# How a notebook is built\n\nLike [this one](../notebooks/01_second.ipynb).\n",
        "data/README.md": "# Data\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "docs/results").mkdir(parents=True)
    (root / "docs/results/00-curve.png").write_bytes(png_bytes("C3"))
    notebooks = {"00_first.ipynb": ("00 — First", "Practise it in [ex01](../exercises/release/ex01_tiny.ipynb).", 2),
                 "01_second.ipynb": ("01 — Second", "## A section\n\nAfter [00](00_first.ipynb).", 1)}
    for name, (title, body, figures) in notebooks.items():
        for folder, executed in (("notebooks", False), ("out/notebooks", True)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            nbformat.write(tiny_notebook(name, title, body, figures, executed), root / folder / name)
    (root / "out/summary.json").write_text(json.dumps({"mode": "FAST", "notebooks": []}))
    (root / "exercises/release").mkdir(parents=True)
    nbformat.write(tiny_notebook("ex01_tiny.ipynb", "Exercise 1", "Do it.", 0, False),
                   root / "exercises/release/ex01_tiny.ipynb")


@pytest.fixture(scope="module")
def tiny_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    write_tiny_course(root)
    built = site.build_site(root=root, out=root / "out")
    return root, built


# --------------------------------------------------------------------------- the browser

def chromium_driver():
    """Headless Chromium from the Debian packages; fails (never skips) when they are missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.fail("headless Chromium is missing: the site's browser test needs the Debian packages "
                    "`chromium` and `chromium-driver` (`bash course.sh setup` installs them; by hand: "
                    "apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",  # no traffic leaves
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(chromedriver), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = chromium_driver()
    yield driver
    driver.quit()


PAGE_FACTS = """
const local = (u) => u.startsWith('file:');
const imgs = [...document.querySelectorAll('img')].filter(i => local(i.src));
const main = document.querySelector('main') || document.body;
return {
  title: document.title,
  images: imgs.map(i => [i.src, i.complete && i.naturalWidth > 0]),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  content_links: [...main.querySelectorAll('a[href]')].map(a => a.href),
  colab: [...document.querySelectorAll('a[href*="colab.research.google.com/github/"]')].length,
  ids: [...document.querySelectorAll('[id]')].map(e => e.id),
};
"""


LOAD_ERRORS = ("Failed to load", "net::ERR_", "Uncaught")


def site_errors(entries, site_url: str) -> list[str]:
    """SEVERE console messages of a site file that is missing or fails (a script error included);
    external hosts are unreachable on purpose, so their failures do not count."""
    return [e["message"] for e in entries if e["level"] == "SEVERE" and site_url in e["message"]
            and any(kind in e["message"] for kind in LOAD_ERRORS)]


def visit(driver, page: Path, site_url: str) -> dict:
    driver.get(page.as_uri())
    driver.execute_script("return document.readyState")
    facts = driver.execute_script(PAGE_FACTS)
    facts["errors"] = site_errors(driver.get_log("browser"), site_url)
    return facts


def crawl(driver, site_dir: Path) -> dict:
    """Open every page reachable from index.html; return per-page facts and every problem found."""
    site_dir = site_dir.resolve()
    site_url = site_dir.as_uri()
    todo, pages, problems, anchors, links = [site_dir / "index.html"], {}, [], set(), set()
    while todo:
        page = todo.pop()
        if page in pages:
            continue
        facts = pages[page] = visit(driver, page, site_url)
        rel = page.relative_to(site_dir)
        if not facts["title"].strip():
            problems.append(f"{rel}: no title")
        problems += [f"{rel}: console: {m}" for m in facts["errors"]]
        problems += [f"{rel}: image not rendered: {src}" for src, ok in facts["images"] if not ok]
        for href in facts["links"]:
            url, fragment = urldefrag(href)
            if not url.startswith("file:"):
                continue
            target = Path(unquote(urlparse(url).path))
            links.add(href)
            if not target.is_file():
                problems.append(f"{rel}: broken link {href}")
            elif target.suffix == ".html":
                todo.append(target)
                if fragment and href in facts["content_links"]:
                    anchors.add((target, unquote(fragment)))
    for target, fragment in sorted(anchors):  # every page is visited by now: check against its ids
        if fragment not in pages[target]["ids"]:
            problems.append(f"{target.relative_to(site_dir)}: no anchor #{fragment}")
    return {"pages": pages, "problems": problems, "links": links}


def notebook_figures(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def check_notebook_pages(result: dict, site_dir: Path, executed: Path) -> list[str]:
    """Each executed notebook has its page, with its Colab badge and at least its figures rendered."""
    problems = []
    for nb in sorted(executed.glob(GLOB)):
        page = (site_dir / "notebooks" / nb.with_suffix(".html").name).resolve()
        facts = result["pages"].get(page)
        if facts is None:
            problems.append(f"{nb.name}: its page was not reached from index.html")
            continue
        rendered = sum(ok and "/_images/" in src for src, ok in facts["images"])
        if rendered < notebook_figures(nb):
            problems.append(f"{nb.name}: {rendered} figures rendered, the notebook has {notebook_figures(nb)}")
        if not facts["colab"]:
            problems.append(f"{nb.name}: no Open-in-Colab badge")
    return problems


def report(result: dict) -> str:
    figures = sum(ok for f in result["pages"].values() for _, ok in f["images"])
    return f"{len(result['pages'])} pages, {figures} figures, {len(result['links'])} local links checked"


# --------------------------------------------------------------------------- tests without a browser

def test_links_point_to_pages_or_github(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data/README.md").write_text("# d\n")
    staged = {"index.md", "docs/RESULTS.md", "notebooks/01_a.ipynb", "docs/results/x.png"}
    fix = lambda text, at: site.rewrite_links(text, at, staged, tmp_path, REPO)  # noqa: E731
    assert fix("[r](docs/RESULTS.md#a-b)", "index.md") == "[r](docs/RESULTS.md#a-b)"
    assert fix("[h](../README.md)", "docs/RESULTS.md") == "[h](../index.md)"
    assert fix("![f](results/x.png)", "docs/RESULTS.md") == "![f](results/x.png)"
    assert fix("[d](data/README.md)", "index.md") == f"[d]({REPO}/blob/main/data/README.md)"
    assert fix("[d](../data)", "notebooks/01_a.ipynb") == f"[d]({REPO}/tree/main/data)"
    for untouched in ("[w](https://x.org/a.md)", "[s](#here)", "`f](a, b)`", "[m](mailto:a@b.c)"):
        assert fix(untouched, "docs/RESULTS.md") == untouched


def test_tiny_site_is_built_with_mode_and_badges(tiny_site):
    root, built = tiny_site
    out = built["site"]
    assert (out / "index.html").exists() and (out / ".nojekyll").exists()
    assert built["pages"] == 7  # README, 2 notebooks, 3 docs, 1 exercise
    index = (out / "index.html").read_text()
    assert "FAST mode" in index and "notebooks/00_first.html" in index
    assert f"{REPO}/blob/main/data/README.md" in index
    first = (out / "notebooks/00_first.html").read_text()
    assert "colab.research.google.com/github/someone/tl-course/blob/main/notebooks/00_first.ipynb" in first
    assert "FAST = True" not in first  # papermill's injected cell is not shown
    assert (root / "notebooks/00_first.ipynb").read_text().count("injected") == 0  # sources untouched


def test_notebook_without_executed_copy_is_shown_unexecuted(tmp_path):
    write_tiny_course(tmp_path)
    (tmp_path / "out/notebooks/01_second.ipynb").unlink()
    pages = site.page_sources(tmp_path, tmp_path / "out")
    assert pages["notebooks/01_second.ipynb"] == tmp_path / "notebooks/01_second.ipynb"
    assert list(pages)[:3] == ["index.md", "notebooks/00_first.ipynb", "notebooks/01_second.ipynb"]


# --------------------------------------------------------------------------- tests in the browser

def test_tiny_site_in_chromium(tiny_site, browser):
    root, built = tiny_site
    result = crawl(browser, built["site"])
    problems = result["problems"] + check_notebook_pages(result, built["site"], root / "out/notebooks")
    assert not problems, "\n".join(problems)
    assert len(result["pages"]) >= 7, report(result)
    results_page = result["pages"][(built["site"] / "docs/RESULTS.html").resolve()]
    assert sum(ok for _, ok in results_page["images"]) >= 1  # docs/results/ figure embedded
    print("tiny site:", report(result))


def test_broken_link_is_caught(tiny_site, browser, tmp_path):
    _, built = tiny_site
    copy = tmp_path / "site"
    shutil.copytree(built["site"], copy)
    (copy / "docs/GRADING.html").unlink()
    (copy / "_images" / next(p.name for p in (copy / "_images").iterdir())).unlink()
    index = (copy / "index.html").read_text()
    assert 'href="docs/RESULTS.html"' in index
    (copy / "index.html").write_text(index.replace('href="docs/RESULTS.html"', 'href="docs/RESULTS.html#no-such-anchor"'))
    problems = crawl(browser, copy)["problems"]
    assert any("broken link" in p and "GRADING.html" in p for p in problems)
    assert any("image not rendered" in p for p in problems)
    assert any("no anchor #no-such-anchor" in p for p in problems)


REAL_SITE = repo_root() / "out" / "site"


@pytest.mark.skipif(not (REAL_SITE / "index.html").exists(),
                    reason="no real build in out/site/ (bash course.sh site makes one)")
def test_real_site_in_chromium(browser):
    # The notebooks as that build staged them (out/notebooks/ may have changed since the build).
    staged = REAL_SITE.parent / "site-build" / "src" / "notebooks"
    result = crawl(browser, REAL_SITE)
    problems = result["problems"] + check_notebook_pages(
        result, REAL_SITE, staged if staged.is_dir() else repo_root() / "out" / "notebooks")
    assert not problems, "\n".join(problems[:40])
    print("out/site:", report(result))


def test_course_site_runs_the_course_fast_first_only_when_nothing_was_executed(tmp_path, monkeypatch):
    from course_utils.tooling import runner

    runs, builds = [], []
    real_main = runner.main
    monkeypatch.setattr(runner, "main", lambda argv: runs.append(argv) or 0)
    monkeypatch.setattr(site, "main", lambda args: builds.append(args.out) or 0)
    assert real_main(["site", "--out", str(tmp_path / "out")]) == 0
    assert runs == [["run", "--fast", "--out", str(tmp_path / "out")]] and len(builds) == 1
    write_tiny_course(tmp_path)
    assert real_main(["site", "--out", str(tmp_path / "out")]) == 0
    assert len(runs) == 1 and len(builds) == 2
    assert "FAST mode" in site.run_mode(tmp_path / "out")
    with pytest.raises(RuntimeError, match="no executed notebooks"):
        site.build_site(root=tmp_path, out=tmp_path / "empty", site=tmp_path / "site")


def test_missing_chromium_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y chromium chromium-driver"):
        chromium_driver()
