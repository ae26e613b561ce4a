"""docs/RESULTS.md is rendered from a run's executed notebooks and benchmark outputs."""
import base64
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_utils.tooling import results
from course_utils.tooling.notebooks import lessons, solutions

ROOT = Path(__file__).resolve().parents[1]
PNG = base64.b64decode(  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def _fake_run(run_dir: Path) -> None:
    tagged = new_code_cell("plot()", metadata={"tags": ["result"]}, outputs=[
        new_output("stream", name="stdout", text="probe 0.712\n"),
        new_output("display_data", data={"image/png": base64.b64encode(PNG).decode()}),
        new_output("display_data", data={"text/markdown": "**measured: 0.712**"}),
        new_output("execute_result", execution_count=1, data={
            "text/html": "<div><style scoped>.x {color: red}</style>\n\n<table><tr><td>0.712</td></tr></table></div>",
            "text/plain": "   0\n0  0.712"}),
    ])
    untagged = new_code_cell("secret()", outputs=[new_output("stream", name="stdout", text="NOT SHOWN\n")])
    nb = new_notebook(cells=[new_markdown_cell("# 00 — A title\n\ntext"),
                             new_markdown_cell("## 1. A section"), untagged, tagged])
    folder = run_dir / "course" / "full" / "notebooks"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "00_demo.ipynb")
    (run_dir / "benchmarks").mkdir()
    _record(run_dir, "cached_head", "method seconds\ncached 0.1\nspeedup: 42.0x\n", "2026-01-01")
    _record(run_dir, "course_runtime", "total 9.0\nfull_total_s: 9\n", "2025-12-24")


def _machine(date: str, cpu: str = "Some CPU", gpu=None) -> dict:
    return {"platform": "Linux x86_64", "python": "3.11", "cpu": cpu, "cores": 2, "torch": "2.x",
            "gpu": gpu, "date": date}


def _record(run_dir: Path, name: str, output: str, date: str, exit_code: int = 0, **machine) -> None:
    record = {"benchmark": name, "args": [], "exit": exit_code, "seconds": 1.0,
              "machine": _machine(date, **machine), "output": output}
    (run_dir / "benchmarks" / f"{name}.json").write_text(json.dumps(record))


def _section(text: str, heading: str) -> str:
    """The page's text from ``heading`` to the next heading of any level."""
    start = text.index(heading)
    following = [i for i in (text.find("\n#", start + 1),) if i != -1]
    return text[start:following[0] if following else None]


def test_page_holds_tagged_outputs_figures_benchmarks_and_machine(tmp_path):
    _fake_run(tmp_path / "run")
    page = results.render(tmp_path / "run", tmp_path / "docs" / "RESULTS.md")
    text = page.read_text()
    assert "## 00 — A title" in text and "### 1. A section" in text
    assert "probe 0.712" in text and "**measured: 0.712**" in text
    assert "NOT SHOWN" not in text  # only cells tagged `result`
    assert "<table>" in text and "color: red" not in text  # DataFrame kept, pandas' CSS dropped
    figures = list((tmp_path / "docs" / "results").glob("*.png"))
    assert len(figures) == 1 and figures[0].read_bytes() == PNG
    assert f"](results/{figures[0].name})" in text
    assert "speedup: 42.0x" in text and "Some CPU, 2 cores" in text
    assert "`benchmarks/grader_throughput.py` — (not run)" in text
    assert "- CPU only: no section" in text.split("## 00")[0]  # the header says so when no GPU was used


def test_each_section_carries_its_own_machine_and_date(tmp_path):
    run = tmp_path / "run"
    _fake_run(run)
    _record(run, "backbone_throughput", "img/s 100\nhead_train_seconds: 0.1\n", "2026-02-02", cpu="Other CPU",
            gpu="NVIDIA H200")
    text = results.render(run, tmp_path / "RESULTS.md").read_text()
    assert "Run on 2026-01-01: Some CPU" in _section(text, "### `benchmarks/cached_head.py`")
    assert "Run on 2026-02-02: Other CPU, 2 cores, GPU: NVIDIA H200" in _section(
        text, "### `benchmarks/backbone_throughput.py`")
    # the notebooks ran inside course_runtime.py: their sections carry its date
    assert "Run on 2025-12-24" in _section(text, "## 00 — A title")
    header = text.split("## 00")[0]
    assert "- GPU: NVIDIA H200" in header and "- CPU only" not in header


def _fake_scripts(root: Path, names, exit_codes=None) -> None:
    """benchmarks/<name>.py stand-ins that print a headline (and exit with a given code)."""
    (root / "benchmarks").mkdir(parents=True, exist_ok=True)
    for name in names:
        code = (exit_codes or {}).get(name, 0)
        (root / "benchmarks" / f"{name}.py").write_text(
            f"import sys\nprint('table of {name}')\nprint('{name}_headline: 1')\nsys.exit({code})\n")


def test_partial_rerun_redates_only_its_own_section(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "repo_root", lambda: tmp_path)
    monkeypatch.setattr(results, "BENCHMARKS", {"first": [], "second": ["--flag"]})
    _fake_scripts(tmp_path, ["first", "second"])
    run = tmp_path / "run"
    monkeypatch.setattr(results, "machine", lambda: _machine("2026-01-01"))
    results.run_all(run)
    monkeypatch.setattr(results, "machine", lambda: _machine("2026-03-03", cpu="New CPU"))
    results.run_all(run, only=["second"])
    first, second = (results.load_benchmark(run / "benchmarks", n) for n in ("first", "second"))
    assert first["machine"]["date"] == "2026-01-01" and first["machine"]["cpu"] == "Some CPU"
    assert second["machine"]["date"] == "2026-03-03" and second["machine"]["cpu"] == "New CPU"
    assert second["output"].endswith("second_headline: 1\n") and second["args"] == ["--flag"]
    assert not (run / "machine.json").exists()  # no run-wide date left to go stale
    lines = results._benchmark_section({"first": first, "second": second})
    text = "\n".join(lines)
    assert "Run on 2026-01-01: Some CPU" in _section(text, "### `benchmarks/first.py`")
    assert "Run on 2026-03-03: New CPU" in _section(text, "### `benchmarks/second.py`")


def test_failed_benchmark_is_recorded_named_and_stops_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "repo_root", lambda: tmp_path)
    monkeypatch.setattr(results, "BENCHMARKS", {"broken": [], "after": []})
    _fake_scripts(tmp_path, ["broken", "after"], exit_codes={"broken": 3})
    with pytest.raises(SystemExit, match="broken.py failed \\(exit 3\\)"):
        results.run_all(tmp_path / "run")
    record = results.load_benchmark(tmp_path / "run" / "benchmarks", "broken")
    assert record["exit"] == 3
    assert results.load_benchmark(tmp_path / "run" / "benchmarks", "after") is None  # never started
    text = "\n".join(results._benchmark_section({"broken": record}))
    assert "`benchmarks/broken.py` — FAILED (exit 3)" in text


def test_output_from_before_per_section_metadata_is_not_dated(tmp_path):
    """An old run's bare .txt says nothing about when it ran; the page must not invent a date."""
    run = tmp_path / "run"
    _fake_run(run)
    (run / "benchmarks" / "cached_head.json").unlink()
    (run / "benchmarks" / "cached_head.txt").write_text("old table\nspeedup: 9.9x\n")
    text = results.render(run, tmp_path / "RESULTS.md").read_text()
    section = _section(text, "### `benchmarks/cached_head.py`")
    assert "speedup: 9.9x" in section and "not recorded" in section and "Run on" not in section


def test_rerender_removes_stale_figures(tmp_path):
    _fake_run(tmp_path / "run")
    stale = tmp_path / "docs" / "results" / "old.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(PNG)
    results.render(tmp_path / "run", tmp_path / "docs" / "RESULTS.md")
    assert not stale.exists()


def test_missing_run_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `course results`"):
        results.render(tmp_path / "nothing", tmp_path / "RESULTS.md")


def test_every_course_notebook_contributes_results():
    for path in lessons(ROOT):
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if results.RESULT_TAG in c.metadata.get("tags", [])]
        assert tagged, f"{path.name} has no cell tagged `{results.RESULT_TAG}`"


def test_committed_page_matches_its_figures():
    """docs/RESULTS.md links only figures that exist, and every figure is linked."""
    page = ROOT / "docs" / "RESULTS.md"
    if not page.exists():
        pytest.skip("docs/RESULTS.md not generated yet")
    text = page.read_text()
    linked = {line.split("](results/")[1].rstrip(")") for line in text.splitlines() if "](results/" in line}
    present = {p.name for p in (ROOT / "docs" / "results").glob("*.png")}
    assert linked == present


def test_unknown_benchmark_is_named(tmp_path):
    with pytest.raises(SystemExit, match="unknown benchmark.*choose from"):
        results.run_all(tmp_path, only=["nope"])


def test_runtime_line_is_rewritten_from_the_run(tmp_path):
    run = tmp_path / "run"
    _fake_run(run)
    for mode, secs in (("fast", 12.3), ("full", 123.0)):
        (run / "course" / mode).mkdir(parents=True, exist_ok=True)
        (run / "course" / mode / "summary.json").write_text(json.dumps(
            {"notebooks": [{"notebook": "00_demo.ipynb", "status": "ok", "seconds": secs}]}))
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    first = "# 00 — A title\n\n**Runtime** typed by hand: 5 min,\nwrong.\n\n**Next** paragraph"
    nbformat.write(new_notebook(cells=[new_markdown_cell(first)]), notebooks / "00_demo.ipynb")
    assert results.update_runtimes(run, notebooks) == ["00_demo.ipynb"]
    text = nbformat.read(notebooks / "00_demo.ipynb", as_version=4).cells[0].source
    assert "full settings ≈ 2.0 min, FAST ≈ 12 s" in text and "typed by hand" not in text
    assert text.startswith("# 00 — A title\n\n") and text.endswith("\n\n**Next** paragraph")
    assert results.update_runtimes(run, notebooks) == []  # idempotent
