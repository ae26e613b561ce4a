import json

import nbformat
import pytest

from course_utils import runner
from course_utils.config import RunConfig, is_fast
from course_utils.repro import get_device, seed_everything


def _nb(tmp_path, cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    return path


def test_strip_keeps_only_checked_outputs(tmp_path):
    checked = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)")
    plain = nbformat.v4.new_code_cell("print(2)")
    path = _nb(tmp_path, [checked, plain])
    executed = tmp_path / "run"
    executed.mkdir()
    ran = nbformat.read(path, as_version=4)
    for cell, text in zip(ran.cells, ("1\n", "2\n")):
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    nbformat.write(ran, executed / "nb.ipynb")
    assert runner.strip_outputs(path, executed / "nb.ipynb") == 1
    out = nbformat.read(path, as_version=4)
    assert out.cells[0].outputs[0]["text"] == "1\n" and out.cells[1].outputs == []


def test_run_without_notebooks_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "repo_root", lambda: tmp_path)
    assert runner.main(["run", "--out", str(tmp_path / "out")]) == 0
    assert "no notebooks" in capsys.readouterr().out


def test_run_reports_a_failing_notebook(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    bad = nbformat.v4.new_notebook()
    bad.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("FAST = False")
    params.metadata["tags"] = ["parameters"]
    bad.cells = [params, nbformat.v4.new_code_cell("raise ValueError('broken on purpose')")]
    nbformat.write(bad, tmp_path / "notebooks" / "00_bad.ipynb")
    monkeypatch.setattr(runner, "repo_root", lambda: tmp_path)
    assert runner.main(["run", "--fast", "--out", str(tmp_path / "out")]) == 1
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["notebooks"][0]["status"] == "failed"
    assert "broken on purpose" in summary["notebooks"][0]["detail"]


def test_fast_flag_from_env(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert is_fast() and RunConfig.from_env().epochs == 1
    monkeypatch.setenv("COURSE_FAST", "0")
    assert not is_fast() and len(RunConfig.from_env().seeds) == 3


def test_repro_and_device(monkeypatch):
    import torch
    seed_everything(3)
    a = torch.rand(3)
    seed_everything(3)
    assert torch.equal(a, torch.rand(3))
    with pytest.raises(ValueError):
        seed_everything(-1)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert get_device().type == "cpu"


def test_setup_threads_respects_the_grader_split(monkeypatch):
    import torch
    from course_utils.repro import setup_threads
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert setup_threads() == 1 and torch.get_num_threads() == 1
        assert setup_threads(2) == 2
    finally:
        torch.set_num_threads(before)


def test_grader_splits_cores_between_jobs():
    from course_utils.grading.runner import _thread_env
    import os
    assert int(_thread_env(jobs=os.cpu_count() or 1)["OMP_NUM_THREADS"]) == 1
    assert int(_thread_env(jobs=1)["OMP_NUM_THREADS"]) == (os.cpu_count() or 1)
