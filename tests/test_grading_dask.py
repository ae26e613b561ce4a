"""Grading on a Dask cluster (``course-grade ... --scheduler``), on a LocalCluster of two worker
processes on loopback: the same files as local ``--jobs 2``, the sandbox on the workers, and a
worker killed in the middle of a batch losing no row. The fixture exercise's kernels start
without torch, so each notebook takes seconds.
"""
from __future__ import annotations

import ast
import csv
import json
import os
import socket
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell

from course_utils.grading import cli, cluster, cluster_task
from course_utils.grading.spec import load_exercise

distributed = pytest.importorskip("distributed")

FIXTURES = Path(__file__).parent / "grading_fixtures" / "exercises"
EXERCISE = "ex01_add"
QUESTIONS = ["q1_add", "q2_weights"]
SLEEPER = "course-grade-dask-test-sleeper-7c2e"  # in the cmdline of a process a kernel starts

SLEEP_IN_KERNEL = f"""
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "{SLEEPER}"])
time.sleep(4)  # the test kills this notebook's Dask worker now
"""

TOKEN_VAR, TOKEN_VALUE = "DASK_WORKER_API_TOKEN", "tok-dask-3f9a1c7e55d0b2a4"  # in the workers' env

SNOOP = """
import os, socket
print("SNOOP token", os.environ.get({token_var!r}, "absent"))
def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return type(exc).__name__
for name, path in {paths!r}.items():
    print("SNOOP", name, listing(path))
sock = socket.socket()
sock.settimeout(2)
try:
    sock.connect(("127.0.0.1", {port}))
    print("SNOOP scheduler reachable")
except OSError as exc:
    print("SNOOP scheduler", type(exc).__name__)
"""


@pytest.fixture(scope="module")
def dask_cluster():
    os.environ[TOKEN_VAR] = TOKEN_VALUE  # the worker processes inherit it: their own secret
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None) as local:
            yield local
    finally:
        os.environ.pop(TOKEN_VAR, None)


def _variant(insert=(), replace=None):
    nb = nbformat.read(str(FIXTURES / "source" / f"{EXERCISE}.ipynb"), as_version=4)
    for index, code in (replace or {}).items():
        nb.cells[index].source = code
    for index, code in sorted(insert, reverse=True):
        nb.cells.insert(index, new_code_cell(code))
    return nb


def _write(folder: Path, notebooks: dict) -> Path:
    folder.mkdir()
    for student, nb in notebooks.items():
        nbformat.write(nb, str(folder / f"{student}.ipynb"))
    return folder


def _grade(subs: Path, out: Path, *extra) -> int:
    return cli.main([EXERCISE, str(subs), "--out", str(out), "--timeout", "30",
                     "--exercises-dir", str(FIXTURES), *extra])


def _statuses(out: Path) -> dict:
    """{student: "status of q1 status of q2"} from grades.csv."""
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    found: dict = {}
    for row in rows:
        found.setdefault(row["student"], []).append((row["question"], row["status"]))
    return {s: " ".join(status for _, status in sorted(v)) for s, v in found.items()}


def test_same_files_as_local_jobs_2_and_sandboxed_workers(dask_cluster, tmp_path):
    subs = tmp_path / "subs"
    port = int(dask_cluster.scheduler_address.rsplit(":", 1)[1])
    snooped = {"subs": str(subs), "hidden": str(FIXTURES / "grading"),
               "out": str(tmp_path / "dask"), "shared_tmp": str(cluster_task._shared_root())}
    _write(subs, {
        "alice": _variant(),
        "crash": _variant(insert=[(4, "raise KeyError(object())")]),
        "wrong": _variant(replace={3: "def add(a, b):\n    return a - b",
                                   4: "import numpy as np\nweights = np.zeros(3)", 5: "pass"}),
        "snoop": _variant(insert=[(6, SNOOP.format(paths=snooped, port=port, token_var=TOKEN_VAR))]),
    })
    (subs / "broken.ipynb").write_text("[]", encoding="utf-8")
    outs = {"local": ["--jobs", "2"], "dask": ["--scheduler", dask_cluster.scheduler_address]}
    summaries = {}
    for name, extra in outs.items():
        assert _grade(subs, tmp_path / name, *extra) == 0
        summaries[name] = json.loads((tmp_path / name / "summary.json").read_text("utf-8"))
    local, dask = tmp_path / "local", tmp_path / "dask"
    assert (local / "grades.csv").read_bytes() == (dask / "grades.csv").read_bytes()
    timing = {name: summary.pop("timing") for name, summary in summaries.items()}
    assert summaries["local"] == summaries["dask"]
    assert timing["dask"]["workers"] == 2 and "jobs" not in timing["dask"]
    assert _statuses(dask) == {"alice": "ok ok", "crash": "error error", "wrong": "failed failed",
                               "snoop": "ok ok", "broken": "invalid invalid"}
    names = {p.name for p in (local / "executed").iterdir()}
    assert names == {p.name for p in (dask / "executed").iterdir()} and "snoop.ipynb" in names
    seen = _snooped(dask / "executed" / "snoop.ipynb")
    for name in ("subs", "hidden", "out"):  # hidden on the worker: empty, or not there at all
        assert seen[name] in ("[]", "FileNotFoundError"), (name, seen[name])
    # both workers keep their temp folders there, and each kernel sees only its own folder
    # (bwrap's mount points for its writable folders), not the other worker's
    with distributed.Client(dask_cluster, set_as_default=False) as client:
        pids = client.run(os.getpid).values()
    folders = {p.name.split("-")[0] for p in cluster_task._shared_root().iterdir()}
    assert {f"w{pid}" for pid in pids} <= folders
    visible = ast.literal_eval(seen["shared_tmp"])
    assert len(visible) == 1 and visible[0].split("-")[0] in {f"w{pid}" for pid in pids}
    assert seen["scheduler"] in ("ConnectionRefusedError", "OSError", "TimeoutError"), seen
    # the worker's environment stays out of the kernel, hence out of every file of the batch
    assert seen["token"] == "absent", seen
    for path in (p for p in dask.rglob("*") if p.is_file()):
        assert TOKEN_VALUE not in path.read_text(encoding="utf-8", errors="replace"), path


def _snooped(executed: Path) -> dict:
    """{what: result} from the SNOOP lines the notebook printed (its outputs, not its code)."""
    nb = nbformat.read(str(executed), as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    return dict(line.split(" ", 2)[1:] for line in text.splitlines() if line.startswith("SNOOP"))


class _Killer(threading.Thread):
    """SIGKILLs the Dask worker whose notebook started the sleeper, once, while it sleeps."""

    def __init__(self, worker_pids: set):
        super().__init__(daemon=True)
        self.worker_pids, self.killed, self.done = worker_pids, None, threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 60
        while self.killed is None and time.monotonic() < deadline and not self.done.is_set():
            for proc in psutil.process_iter():
                try:
                    if SLEEPER in proc.cmdline():
                        self._kill_worker_of(proc)
                except psutil.Error:
                    continue
            time.sleep(0.1)

    def _kill_worker_of(self, proc) -> None:
        for parent in proc.parents():
            if parent.pid in self.worker_pids:
                os.kill(parent.pid, signal.SIGKILL)
                self.killed = parent.pid
                return


def _grade_while_killing(pids, subs, out, address):
    """Grade on the cluster while a _Killer watches ``pids`` for the sleeping notebook."""
    killer = _Killer(pids)
    killer.start()
    try:
        return killer, _grade(subs, out, "--scheduler", address)
    finally:
        killer.done.set()
        killer.join()


def test_killed_worker_loses_no_row(dask_cluster, tmp_path):
    subs = _write(tmp_path / "subs", {"a": _variant(), "b": _variant(),
                                      "sleepy": _variant(insert=[(4, SLEEP_IN_KERNEL)])})
    with distributed.Client(dask_cluster, set_as_default=False) as client:
        pids = set(client.run(os.getpid).values())
    killer, rc = _grade_while_killing(pids, subs, tmp_path / "out", dask_cluster.scheduler_address)
    assert killer.killed in pids, "the sleeping notebook's worker was never found"
    assert rc == 0
    # graded again on the other (or the restarted) worker: every row, none lost
    assert _statuses(tmp_path / "out") == {"a": "ok ok", "b": "ok ok", "sleepy": "ok ok"}
    left = [p for p in psutil.process_iter() if _has_sleeper(p)]
    assert not left, "a kernel's child outlived its killed worker (or its rerun)"


def test_a_cluster_left_without_workers_still_ends_the_batch(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "NO_WORKER_PATIENCE_S", 1.0)
    monkeypatch.setattr(cluster, "POLL_S", 0.2)
    subs = _write(tmp_path / "subs", {"sleepy": _variant(insert=[(4, SLEEP_IN_KERNEL)])})
    (subs / "broken.ipynb").write_text("[]", encoding="utf-8")
    with distributed.LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=":0") as local:
        # one worker without a nanny: once killed, nothing restarts it
        worker = subprocess.Popen([sys.executable, "-m", "dask", "worker", local.scheduler_address,
                                   "--no-nanny", "--nthreads", "1"], stderr=subprocess.DEVNULL)
        try:
            killer, rc = _grade_while_killing({worker.pid}, subs, tmp_path / "out", local.scheduler_address)
        finally:
            worker.kill()
            worker.wait()
            cluster_task._sweep_dead(cluster_task._shared_root())  # the killed worker's temp folder
    assert killer.killed == worker.pid and rc == 0
    assert _statuses(tmp_path / "out") == {"sleepy": "error error", "broken": "invalid invalid"}
    rows = (tmp_path / "out" / "grades.csv").read_text(encoding="utf-8")
    assert "not graded: no Dask worker was connected for 1 s" in rows
    assert not [p for p in psutil.process_iter() if _has_sleeper(p)]


def _has_sleeper(proc) -> bool:
    try:
        return SLEEPER in proc.cmdline()
    except psutil.Error:
        return False


def test_a_task_the_workers_kill_gets_rows_with_a_reason():
    exercise = load_exercise(EXERCISE, FIXTURES)
    worker = type("W", (), {"address": "tcp://10.0.0.7:4711"})()
    outcome = cluster._lost(exercise, "s", distributed.KilledWorker("key", worker, 3))
    assert outcome.status == "error" and set(outcome.results) == set(QUESTIONS)
    detail = outcome.results["q1_add"][1]
    assert "4 Dask workers" in detail and "KilledWorker" in detail and "10.0.0.7" not in detail


def test_unreachable_scheduler_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cluster, "CONNECT_S", 1.0)
    subs = _write(tmp_path / "subs", {"a": _variant()})
    with socket.socket() as sock:  # a loopback port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert _grade(subs, tmp_path / "out", "--scheduler", f"tcp://127.0.0.1:{port}") == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_local_grading_never_imports_dask(tmp_path):
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "x.ipynb").write_text("[]", encoding="utf-8")  # invalid: no kernel
    code = (
        "import sys\n"
        "from course_utils.grading import checkserver, cli\n"
        "checkserver.warm_up = lambda: None  # no check runs: spare the torch preload\n"
        f"rc = cli.main([{EXERCISE!r}, {str(tmp_path / 'subs')!r}, '--out', "
        f"{str(tmp_path / 'out')!r}, '--sandbox', 'none', '--exercises-dir', {str(FIXTURES)!r}])\n"
        "print(rc, sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "0 []", proc.stderr[-2000:]
