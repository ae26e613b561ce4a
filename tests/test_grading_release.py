"""``course-grade release``: stubs, no solutions or outputs, deterministic, --check catches staleness."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from course_utils.config import repo_root
from course_utils.grading import cli
from course_utils.grading.release import run_release
from course_utils.grading.spec import SOLUTION_BEGIN, ExerciseError

FIXTURES = Path(__file__).parent / "grading_fixtures" / "exercises"


@pytest.fixture
def tree(tmp_path):
    shutil.copytree(FIXTURES, tmp_path / "exercises")
    return tmp_path / "exercises"


def _release(tree, *extra):
    return cli.main(["release", "--source", str(tree / "source"), "--release",
                     str(tree / "release"), *extra])


def test_fixture_release_is_up_to_date():
    assert run_release(FIXTURES / "source", FIXTURES / "release", check=True) == 0


def test_repo_release_is_up_to_date():
    # The course's own exercises: regenerate with `course-grade release` after editing a source.
    exercises = repo_root() / "exercises"
    assert cli.main(["release", "--source", str(exercises / "source"), "--release",
                     str(exercises / "release"), "--check"]) == 0


def test_release_content(tree):
    shutil.rmtree(tree / "release")
    assert _release(tree) == 0
    text = (tree / "release" / "ex01_add.ipynb").read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert SOLUTION_BEGIN not in text and "END SOLUTION" not in text
    assert "lstsq" not in code and "return a + b" not in code
    assert 'raise NotImplementedError("one line: return the sum")' in code
    assert '    raise NotImplementedError' in code  # indented like the block it replaces
    assert 'raise NotImplementedError("write your solution here")' in code
    assert "assert add(2, 3) == 5" in code  # visible self-checks stay
    assert all(c.outputs == [] and c.execution_count is None
               for c in nb.cells if c.cell_type == "code")
    assert "parameters" in nb.cells[1].metadata.tags
    released = {p.name for p in (tree / "release").iterdir()}
    assert released == {"ex01_add.ipynb", "ex02_checks.ipynb"}  # no hidden tests
    assert "check_q1_add" not in text and "held-out" not in text


def test_release_is_deterministic(tree):
    shutil.rmtree(tree / "release")
    assert _release(tree) == 0
    first = {p.name: p.read_bytes() for p in (tree / "release").iterdir()}
    assert _release(tree) == 0
    assert first == {p.name: p.read_bytes() for p in (tree / "release").iterdir()}
    assert first == {p.name: p.read_bytes() for p in (FIXTURES / "release").iterdir()}


def test_check_catches_stale_missing_and_orphan(tree, capsys):
    assert _release(tree, "--check") == 0
    source = tree / "source" / "ex01_add.ipynb"
    nb = nbformat.read(str(source), as_version=4)
    nb.cells[0].source += "\n\nA new sentence."
    nbformat.write(nb, str(source))
    assert _release(tree, "--check") == 1
    assert "stale" in capsys.readouterr().out
    assert _release(tree) == 0 and _release(tree, "--check") == 0
    (tree / "release" / "ex02_checks.ipynb").unlink()
    (tree / "release" / "old.ipynb").write_text("{}")
    assert _release(tree, "--check") == 1
    out = capsys.readouterr().out
    assert "missing" in out and "orphan" in out
    assert _release(tree) == 0 and not (tree / "release" / "old.ipynb").exists()


def test_outputs_in_source_do_not_matter(tree):
    source = tree / "source" / "ex01_add.ipynb"
    raw = json.loads(source.read_text(encoding="utf-8"))
    raw["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}]
    raw["cells"][2]["execution_count"] = 7
    source.write_text(json.dumps(raw), encoding="utf-8")
    assert _release(tree, "--check") == 0


def test_malformed_source_is_a_usage_error(tree, capsys):
    source = tree / "source" / "ex01_add.ipynb"
    nb = nbformat.read(str(source), as_version=4)
    nb.cells[1].metadata.tags = []
    nbformat.write(nb, str(source))
    assert _release(tree) == 2
    assert "parameters" in capsys.readouterr().err
    with pytest.raises(ExerciseError):
        run_release(tree / "missing", tree / "release")
