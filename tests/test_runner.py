import json

import nbformat
import pytest

from course_utils.tooling import runner
from course_utils.config import is_fast
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


def test_run_solutions_executes_the_solutions_folder_only(tmp_path, monkeypatch):
    (tmp_path / "notebooks" / "solutions").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("FAST = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print('solved', FAST)")]
    nbformat.write(nb, tmp_path / "notebooks" / "solutions" / "00_a_solutions.ipynb")
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise ValueError('a lesson')")])
    nbformat.write(bad, tmp_path / "notebooks" / "00_a.ipynb")  # a lesson: not run with --solutions
    monkeypatch.setattr(runner, "repo_root", lambda: tmp_path)
    assert runner.main(["run", "--solutions", "--fast", "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "solutions_summary.json").read_text())
    assert [r["notebook"] for r in summary["notebooks"]] == ["00_a_solutions.ipynb"]
    ran = nbformat.read(tmp_path / "out" / "notebooks" / "solutions" / "00_a_solutions.ipynb", as_version=4)
    assert "solved True" in ran.cells[-1].outputs[0]["text"]
    assert not (tmp_path / "out" / "summary.json").exists()  # the lessons' summary is left alone


def test_run_fast_is_the_same_switch_in_the_kernel_and_logs_every_fit(tmp_path, monkeypatch):
    """`course run --fast` reaches what the notebook's code reads (env COURSE_FAST, so load_dataset's
    defaults follow), and every training run lands as one line in out/fits.jsonl."""
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("FAST = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import torch\nfrom course_utils import fit, is_fast\nprint('env fast', is_fast(), FAST)\n"
        "x, y = torch.randn(16, 3), torch.arange(16) % 2\nm = torch.nn.Linear(3, 2)\n"
        "fit(m, (x, y), 3, torch.optim.SGD(m.parameters(), lr=0.1), val_data=(x, y), restore_best=True,"
        " patience=1, progress=False, label='tiny')")]
    nbformat.write(nb, tmp_path / "notebooks" / "00_fits.ipynb")
    monkeypatch.setattr(runner, "repo_root", lambda: tmp_path)
    monkeypatch.delenv("COURSE_FAST", raising=False)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "fits.jsonl").write_text('{"stale": "line from an earlier run"}\n')
    assert runner.main(["run", "--fast", "--out", str(tmp_path / "out")]) == 0
    ran = nbformat.read(tmp_path / "out" / "notebooks" / "00_fits.ipynb", as_version=4)
    assert "env fast True True" in ran.cells[-1].outputs[0]["text"]
    fits = [json.loads(line) for line in (tmp_path / "out" / "fits.jsonl").read_text().splitlines()]
    assert [(f["notebook"], f["label"], f["max_epochs"]) for f in fits] == [("00_fits.ipynb", "tiny", 3)]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["mode"] == "FAST" and summary["fits"]["fits"] == 1


def test_hide_prose_collapses_in_jupyterlab_and_on_colab(tmp_path):
    prose, code = nbformat.v4.new_code_cell("say(f'{1 + 1} apples')"), nbformat.v4.new_code_cell("x = 1")
    path = _nb(tmp_path, [prose, code])
    assert runner.hide_prose(path) == 1 and runner.hide_prose(path) == 0   # idempotent
    cell, plain = nbformat.read(path, as_version=4).cells
    assert cell.metadata["jupyter"]["source_hidden"] and cell.metadata["cellView"] == "form"
    assert cell.source.splitlines()[0].startswith("# @title") and cell.source.endswith("say(f'{1 + 1} apples')")
    assert "cellView" not in plain.metadata and plain.source == "x = 1"


def test_fast_flag_from_env(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert is_fast()
    monkeypatch.setenv("COURSE_FAST", "0")
    assert not is_fast()


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


def test_run_starts_the_kernel_without_the_plain_tcp_warning(tmp_path, capfd):
    """`course run` prints one line per notebook: the kernel's channels are CurveZMQ-encrypted,
    so ipykernel has no "running over TCP without encryption" block to add (on stderr, which the
    kernel process shares with us: capfd sees it)."""
    import zmq
    if not zmq.has("curve"):
        pytest.skip("this pyzmq has no CURVE support")
    assert runner.kernel_config()["KernelManager"]["transport_encryption"] == "auto"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("FAST = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print('ran', FAST)")]
    nbformat.write(nb, tmp_path / "00_tiny.ipynb")
    (tmp_path / "out").mkdir()
    result = runner.run_notebook(tmp_path / "00_tiny.ipynb", tmp_path / "out", True, 60)
    assert result["status"] == "ok", result["detail"]
    assert "without encryption" not in capfd.readouterr().err
    ran = nbformat.read(tmp_path / "out" / "00_tiny.ipynb", as_version=4)
    assert ran.cells[-1].outputs[0]["text"] == "ran True\n"


def _course_runtime():
    """benchmarks/course_runtime.py as a module (benchmarks/ is a folder of scripts, not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "course_runtime.py"
    spec = importlib.util.spec_from_file_location("course_runtime_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _summary(*rows):
    return {"notebooks": [{"notebook": n, "status": s, "seconds": t} for n, s, t in rows],
            "total_seconds": sum(t for _, _, t in rows)}  # the runner's total counts failed runs too


def test_course_runtime_fails_when_a_notebook_fails_and_totals_only_successes(monkeypatch, capsys):
    bench = _course_runtime()
    runs = {True: _summary(("00_a.ipynb", "ok", 10.0), ("01_b.ipynb", "failed", 2.0)),
            False: _summary(("00_a.ipynb", "ok", 50.0), ("01_b.ipynb", "ok", 70.0))}
    monkeypatch.setattr(bench, "run_course", lambda fast, out, only=None: runs[fast])
    assert bench.main([]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["fast_total_s: 10", "full_total_s: 120"]  # the failed run's 2 s left out
    assert any(line.startswith("01_b.ipynb") and "FAILED" in line for line in out)
    assert any(line.startswith("FAILED: 1 run(s)") and "01_b.ipynb (FAST)" in line for line in out)


def test_course_runtime_succeeds_when_every_notebook_runs(monkeypatch, capsys):
    bench = _course_runtime()
    monkeypatch.setattr(bench, "run_course", lambda fast, out, only=None: _summary(("00_a.ipynb", "ok", 12.4)))
    assert bench.main(["--fast-only"]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and out.splitlines()[-1] == "fast_total_s: 12"


def test_course_runtime_without_a_summary_stops(tmp_path, monkeypatch):
    bench = _course_runtime()
    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **k: None)  # a runner that wrote nothing
    with pytest.raises(SystemExit, match="wrote no"):
        bench.run_course(True, tmp_path / "fast")
