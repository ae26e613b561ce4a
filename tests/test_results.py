"""docs/RESULTS.md is rendered from a run's executed notebooks and benchmark outputs."""
import base64
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_utils import results

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
    (run_dir / "benchmarks" / "cached_head.txt").write_text("method seconds\ncached 0.1\nspeedup: 42.0x\n")
    (run_dir / "machine.json").write_text(json.dumps(
        {"platform": "Linux x86_64", "python": "3.11", "cpu": "Some CPU", "cores": 2, "torch": "2.x",
         "gpu": None, "date": "2026-01-01"}))


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
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
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
