"""Feedback files (OUT_DIR/feedback/STUDENT.md) and the student's self-check (`course-grade check`).

The feedback comes from the shared batches (grading_fixtures/batches.py): one student per status
(ok, failed, error, timeout, invalid) in ``fixture_batch``, and a hidden check that crashes or hangs
in ``checks_batch``. No feedback file may quote the hidden tests or their inputs.
"""
from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from course_utils.grading import cli
from grading_fixtures.submissions import EXERCISE, FIXTURES, TIMEOUT, source_nb, variant

STUDENTS = {"alice": "passed", "wrong": "not passed", "crash": "could not be checked",
            "infinite_loop": "time limit"}  # student -> notebook-level status word in the feedback


@pytest.fixture
def batch(fixture_batch, checks_batch):
    files = {p.stem: p.read_text(encoding="utf-8")
             for p in (fixture_batch["out"] / "feedback").glob("*.md")}
    files["s1"] = (checks_batch["out"] / "feedback" / "s1.md").read_text(encoding="utf-8")
    return files


def test_one_file_per_student_and_status(batch):
    for student, word in STUDENTS.items():
        assert word in batch[student], (student, batch[student])
    assert "**Total: 5 of 5 points.**" in batch["alice"] and "Well done" in batch["alice"]
    assert "| Q1 | 2 / 2 | passed |" in batch["alice"]
    wrong = batch["wrong"]
    assert "**Total: 1.5 of 5 points.**" in wrong  # 0 from the checks, 1.5 set by an override
    assert "add is wrong on" in wrong and "held-out MSE" in wrong and "needs < 1e-6" in wrong
    assert "Hint: one line: return the sum" in wrong  # the release notebook's own stub text
    assert "Hint: fit the three weights" in wrong  # the notebook's **Hint (Q2):** line
    assert "ZeroDivisionError" in batch["crash"] and "Restart kernel" in batch["crash"]
    assert f"after {TIMEOUT} seconds" in batch["infinite_loop"]
    assert "invalid JSON" in batch["bad_json"] and "unreadable file" in batch["bad_json"]
    assert "course-grade check" in batch["wrong"]


def test_grader_side_errors_are_not_shown(batch):
    s1 = batch["s1"]
    assert "| Q3 | 0 / 1 | could not be checked |" in s1
    assert "unexpected error on its side" in s1 and "KeyError" not in s1
    assert "no such key" not in s1
    assert "took too long" in s1  # the hung check: said, without the check's code


def _hidden_secrets(name: str) -> tuple[list[str], list[re.Pattern]]:
    """Every line of the hidden module, and its numeric constants no message prints on purpose."""
    text = (FIXTURES / "grading" / f"{name}.py").read_text(encoding="utf-8")
    lines = [ln.strip() for ln in text.splitlines() if len(ln.strip()) >= 8]
    tree = ast.parse(text)
    said = " ".join(n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                    and isinstance(n.value, str))  # the messages' own words, e.g. "needs < 1e-6"
    numbers = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            for form in {ast.get_source_segment(text, node), repr(node.value)}:
                if len(form) >= 3 and form not in said:
                    numbers.add(form)
    patterns = [re.compile(rf"(?<![\w.]){re.escape(n)}(?![\w.]*\d)") for n in sorted(numbers)]
    return lines, patterns


def test_no_hidden_source_or_inputs(batch):
    for name in ("ex01_add", "ex02_checks"):
        lines, patterns = _hidden_secrets(name)
        assert patterns or name == "ex02_checks"
        for student, text in batch.items():
            for line in lines:
                assert line not in text, (student, line)
            for pattern in patterns:
                assert not pattern.search(text), (student, pattern.pattern)
    everything = "\n".join(batch.values())
    for leak in ("Traceback", "hidden_tests", "def check_", "collect(", str(FIXTURES), "/tmp/",
                 str(Path.home()), "<tmp>", "1000001", "12345"):
        assert leak not in everything, leak


def _check(nb_path: Path, *extra) -> int:
    return cli.main(["check", str(nb_path), "--exercises-dir", str(FIXTURES), "--timeout", "30",
                     *extra])


def test_selfcheck_good_notebook(tmp_path, capsys):
    path = tmp_path / "mine.ipynb"
    nbformat.write(source_nb(), str(path))
    assert _check(path) == 0
    out = capsys.readouterr().out
    assert "for ex01_add" in out and "within 30 s" in out
    assert "Q1   q1_add" in out and "2 points: `add(a, b)`" in out and "3 points" in out
    assert "NOT run here" in out and "No problems found" in out
    assert "add is correct" not in out and "12345" not in out  # no hidden check ran


def test_selfcheck_broken_notebooks(tmp_path, capsys):
    release = tmp_path / "release.ipynb"
    shutil.copy(FIXTURES / "release" / f"{EXERCISE}.ipynb", release)
    assert _check(release) == 1
    out = capsys.readouterr().out
    assert out.count("answer missing") == 2 and "NotImplementedError" in out
    assert "the notebook stopped" in out
    failing = tmp_path / "failing.ipynb"
    nbformat.write(variant(replace={3: "def add(a, b):\n    return a - b"}), str(failing))
    assert _check(failing) == 1
    assert "AssertionError" in capsys.readouterr().out  # its own visible self-check failed
    renamed = tmp_path / "renamed.ipynb"
    nbformat.write(variant(replace={4: "w = 0"}), str(renamed))
    assert _check(renamed, "--no-run") == 1
    assert "`weights`, which no cell" in capsys.readouterr().out
    garbage = tmp_path / "garbage.ipynb"
    garbage.write_text("{not json", encoding="utf-8")
    assert _check(garbage) == 1
    assert "cannot be read as a notebook" in capsys.readouterr().out
    other = tmp_path / "other.ipynb"
    shutil.copy(FIXTURES / "source" / "ex02_checks.ipynb", other)
    assert _check(other, "--exercise", EXERCISE, "--no-run") == 1
    assert "wrong exercise? this notebook's title is that of ex02_checks" in capsys.readouterr().out
