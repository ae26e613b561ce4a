"""docs/RESULTS.md, generated from a run: never typed in.

``course results`` runs the four benchmark scripts (``course_runtime.py`` executes every
notebook at FAST and at full settings and keeps the executed copies) and writes the page: the
outputs of every notebook cell tagged ``result`` (figures saved next to the page, Markdown and
printed text as they came out), then each benchmark's table. Each benchmark's output is stored
as ``benchmarks/<name>.json`` together with the machine and the date it ran on, and the page
states them per section: a partial rerun must not stamp the sections it did not rerun with its
own date. It also rewrites the **Runtime** line of every notebook's first cell from the measured times.
``course results --render-only --run DIR`` rewrites the page from an earlier run;
``course results --only backbone_throughput`` reruns one benchmark and rewrites the page.
"""
from __future__ import annotations

import base64
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from course_utils.config import repo_root
from course_utils.tooling.notebooks import find_notebooks

RESULT_TAG = "result"
_STYLE = re.compile(r"<style.*?</style>", re.DOTALL)
_RUNTIME = re.compile(r"\*\*Runtime\*\*.*?(?=\n\n|\Z)", re.DOTALL)  # the paragraph in a notebook's first cell
# script -> extra arguments; course_runtime's --keep is added at run time
BENCHMARKS = {
    "course_runtime": [],
    "cached_head": [],
    "grader_throughput": ["--exercise", "ex01_freeze_and_probe", "--fast", "--n", "6"],
    "backbone_throughput": [],
    "prefix_cache": [],
    "bf16_training": [],
}


def run_all(run_dir: Path, only: list[str] | None = None) -> None:
    """Execute the benchmarks (or ``only`` these) one after another: they time things, so never
    in parallel. Outputs of benchmarks not rerun stay from the earlier run, with their own
    machine and date."""
    unknown = sorted(set(only or []) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"course results: unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    bench_dir = run_dir / "benchmarks"
    bench_dir.mkdir(parents=True, exist_ok=True)
    for name, extra in BENCHMARKS.items():
        if only and name not in only:
            continue
        print(f"course results: {name} ...", flush=True)
        record = run_benchmark(name, extra, run_dir)
        (bench_dir / f"{name}.json").write_text(json.dumps(record, indent=2))
        (bench_dir / f"{name}.txt").unlink(missing_ok=True)  # an older run's output must not be read instead
        print(record["output"], end="", flush=True)
        if record["exit"] != 0:
            raise SystemExit(f"course results: benchmarks/{name}.py failed (exit {record['exit']}); "
                             "its output is above. Fix it and run `course results` again.")
        print(f"course results: {name} took {record['seconds']:.0f} s", flush=True)


def run_benchmark(name: str, extra: list[str], run_dir: Path) -> dict:
    """Run one script; return its output with the machine and date it ran on and its exit code."""
    keep = ["--keep", str(run_dir / "course")] if name == "course_runtime" else []
    cmd = [sys.executable, str(repo_root() / "benchmarks" / f"{name}.py"), *keep, *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    # the arguments are kept without the run folder: it is a path on this machine only
    return {"benchmark": name, "args": extra, "exit": proc.returncode,
            "seconds": round(time.perf_counter() - start, 1), "machine": machine(), "output": proc.stdout}


def load_benchmark(bench_dir: Path, name: str) -> dict | None:
    """A benchmark's stored record; a bare ``<name>.txt`` from before per-section metadata has no
    machine or date (``machine`` None). None when the benchmark never ran."""
    path = bench_dir / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    legacy = bench_dir / f"{name}.txt"
    if legacy.exists():
        return {"benchmark": name, "exit": 0, "machine": None, "output": legacy.read_text()}
    return None


def machine() -> dict:
    import torch

    return {"platform": f"{platform.system()} {platform.machine()}", "python": platform.python_version(),
            "cpu": _cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d")}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def render(run_dir: Path, page: Path) -> Path:
    """Write ``page`` and its figures (``<page dir>/results/``) from the run in ``run_dir``."""
    executed = find_notebooks(run_dir / "course" / "full" / "notebooks")
    if not executed:
        raise FileNotFoundError(f"no executed notebooks in {run_dir / 'course' / 'full' / 'notebooks'}: "
                                "run `course results` (without --render-only) first")
    figures = page.parent / "results"
    figures.mkdir(parents=True, exist_ok=True)
    for old in figures.glob("*.png"):  # figures of an earlier run must not linger
        old.unlink()
    records = {name: load_benchmark(run_dir / "benchmarks", name) for name in BENCHMARKS}
    lines = _header(records)
    stamp = _stamp(records["course_runtime"])  # the notebooks ran inside course_runtime.py
    for path in executed:
        lines += _notebook_section(path, figures, page.parent, stamp)
    lines += _benchmark_section(records)
    page.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return page


def _header(records: dict[str, dict | None]) -> list[str]:
    machines = [r["machine"] for r in records.values() if r and r.get("machine")]
    gpus = sorted({m["gpu"] for m in machines if m.get("gpu")})
    hardware = f"GPU: {', '.join(gpus)}" if gpus else "CPU only: no section on this page ran on a GPU"
    return [
        "# Results",
        "",
        "Generated by `bash course.sh results` from one run of every notebook at full settings and of",
        "every script in `benchmarks/`; do not edit by hand. Each section below is the output of the",
        "notebook cells tagged `result`, exactly as the run produced them.",
        "",
        "Every section names the machine and the date it ran on: `course results --only NAME` reruns",
        "one benchmark and re-dates its section only. The notebook sections come from the run of",
        "`benchmarks/course_runtime.py`.",
        "",
        f"- {hardware}",
        *[f"- {desc}" for desc in dict.fromkeys(_machine_text(m) for m in machines)],
        "",
    ]


def _machine_text(m: dict) -> str:
    return (f"{m['cpu']}, {m['cores']} cores, GPU: {m.get('gpu') or 'none (CPU only)'}; "
            f"{m['platform']}, Python {m['python']}, torch {m['torch']}")


def _stamp(record: dict | None) -> str:
    """One italic line under a section heading: where and when its numbers were measured."""
    if record is None:
        return "_Not run yet._"
    if not record.get("machine"):
        return "_Machine and date not recorded: output from a run before per-section metadata._"
    return f"_Run on {record['machine']['date']}: {_machine_text(record['machine'])}._"


def _notebook_section(path: Path, figures: Path, page_dir: Path, stamp: str) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    title = _title(nb) or path.stem
    lines = [f"## {title}", "", f"From [`notebooks/{path.name}`](../notebooks/{path.name}). {stamp}", ""]
    heading, shown = None, None
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("##"):
            heading = cell.source.lstrip().splitlines()[0].lstrip("#").strip()
        if cell.cell_type != "code" or RESULT_TAG not in cell.metadata.get("tags", []):
            continue
        if heading and heading != shown:
            lines += [f"### {heading}", ""]
            shown = heading
        for k, output in enumerate(cell.get("outputs", [])):
            stem = f"{path.stem[:2]}-{cell.get('id', 'cell')}-{k}"
            lines += _output_lines(output, figures, stem, page_dir)
    return lines


def _title(nb) -> str | None:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return None


def _output_lines(output, figures: Path, stem: str, page_dir: Path) -> list[str]:
    if output.output_type == "stream":
        return ["```text", output.text.rstrip(), "```", ""] if output.text.strip() else []
    if output.output_type == "error":
        return [f"**This cell failed:** `{output.ename}: {output.evalue}`", ""]
    data = output.get("data", {})
    if "image/png" in data:
        target = figures / f"{stem}.png"
        target.write_bytes(base64.b64decode(data["image/png"]))
        return [f"![{stem}]({target.relative_to(page_dir).as_posix()})", ""]
    if "text/markdown" in data:
        return [data["text/markdown"].rstrip(), ""]
    if "<table" in data.get("text/html", ""):
        # a DataFrame: GitHub renders the HTML table; pandas' <style> block it would show as text
        html = _STYLE.sub("", data["text/html"])
        return ["\n".join(line for line in html.splitlines() if line.strip()), ""]
    text = data.get("text/plain", "")
    if text.strip() and not text.startswith("<Figure"):
        return ["```text", text.rstrip(), "```", ""]
    return []


def _benchmark_section(records: dict[str, dict | None]) -> list[str]:
    lines = ["## Benchmarks", "",
             "Each script's full output; its last line is the headline figure. Targets are in each",
             "script's docstring.", ""]
    for name, record in records.items():
        text = record["output"].strip() if record else "(not run)"
        headline = text.splitlines()[-1] if text else ""
        if record and record.get("exit"):
            headline = f"FAILED (exit {record['exit']})"
        lines += [f"### `benchmarks/{name}.py` — {headline}", "", _stamp(record), "",
                  "```text", text, "```", ""]
    return lines


def update_runtimes(run_dir: Path, notebooks_dir: Path) -> list[str]:
    """Rewrite the **Runtime** paragraph of each notebook's first cell from the run's timings,
    so the figure a student reads before starting is measured, not typed. Returns the names changed."""
    seconds = {}
    for mode in ("fast", "full"):
        summary = run_dir / "course" / mode / "summary.json"
        if not summary.exists():
            return []
        seconds[mode] = {r["notebook"]: r["seconds"] for r in json.loads(summary.read_text())["notebooks"]
                         if r["status"] == "ok"}
    info = _runtime_machine(run_dir)
    if info is None:
        return []
    changed = []
    for path in find_notebooks(notebooks_dir):
        if path.name not in seconds["fast"] or path.name not in seconds["full"]:
            continue
        nb = nbformat.read(path, as_version=4)
        sentence = (f"**Runtime** on a {info['cores']}-core CPU with an empty embedding cache, kernel start "
                    f"included (measured by `bash course.sh results` on {info['date']}): full settings "
                    f"{_duration(seconds['full'][path.name])}, FAST {_duration(seconds['fast'][path.name])}. "
                    "The last cell prints this run's time.")
        source = _RUNTIME.sub(lambda _: sentence, nb.cells[0].source, count=1)
        if source != nb.cells[0].source:
            nb.cells[0].source = source
            nbformat.write(nb, path)
            changed.append(path.name)
    return changed


def _runtime_machine(run_dir: Path) -> dict | None:
    """Machine and date of the course_runtime run; a run's ``machine.json`` from before
    per-section metadata is the fallback."""
    record = load_benchmark(run_dir / "benchmarks", "course_runtime")
    if record and record.get("machine"):
        return record["machine"]
    legacy = run_dir / "machine.json"
    return json.loads(legacy.read_text()) if legacy.exists() else None


def _duration(seconds: float) -> str:
    return f"≈ {seconds:.0f} s" if seconds < 90 else f"≈ {seconds / 60:.1f} min"


def main(args) -> int:
    run_dir = Path(args.run)
    if not args.render_only:
        run_all(run_dir, args.only)
    changed = update_runtimes(run_dir, repo_root() / "notebooks")
    if changed:
        print(f"course results: updated the Runtime line of {', '.join(changed)}")
    page = render(run_dir, Path(args.page))
    print(f"course results: wrote {page} from {run_dir}")
    return 0


def add_parser(sub) -> None:
    parser = sub.add_parser("results", help="run the benchmarks and write docs/RESULTS.md from the run")
    parser.add_argument("--run", type=Path, default=repo_root() / "out" / "results",
                        help="where the run's executed notebooks and benchmark outputs go")
    parser.add_argument("--page", type=Path, default=repo_root() / "docs" / "RESULTS.md")
    parser.add_argument("--render-only", action="store_true",
                        help="only rewrite the page from an earlier run in --run")
    parser.add_argument("--only", nargs="+", metavar="BENCHMARK",
                        help=f"rerun only these benchmarks ({', '.join(BENCHMARKS)}), keep the others' outputs")
