"""CLI usage errors: exit code 2 and a message that says what is wrong and how to fix it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from course_utils.grading import cli

FIXTURES = Path(__file__).parent / "grading_fixtures" / "exercises"


def _grade(*args):
    return cli.main([*args, "--exercises-dir", str(FIXTURES)])


def test_unknown_exercise_lists_known(tmp_path, capsys):
    assert _grade("ex99_nope", str(tmp_path), "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "unknown exercise 'ex99_nope'" in err and "ex01_add" in err and "ex02_checks" in err


def test_missing_submissions_folder(tmp_path, capsys):
    assert _grade("ex01_add", str(tmp_path / "nope"), "--out", str(tmp_path / "o")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_folder_without_notebooks(tmp_path, capsys):
    (tmp_path / "readme.txt").write_text("hi")
    assert _grade("ex01_add", str(tmp_path), "--out", str(tmp_path / "o")) == 2
    assert "no submissions" in capsys.readouterr().err
    assert not (tmp_path / "o" / "grades.csv").exists()


def test_bad_numbers(tmp_path, capsys):
    assert _grade("ex01_add", str(tmp_path), "--out", str(tmp_path / "o"), "--jobs", "0") == 2
    assert "--jobs" in capsys.readouterr().err


def test_out_is_required(tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main(["ex01_add", str(tmp_path)])
    assert exc.value.code == 2


def test_module_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "course_utils.grading.cli", "ex99_nope", str(tmp_path), "--out",
         str(tmp_path / "o"), "--exercises-dir", str(FIXTURES)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Known exercises" in proc.stderr
