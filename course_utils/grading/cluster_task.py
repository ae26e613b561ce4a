"""The worker's side of ``course-grade --scheduler`` (cluster.py is the client's): the Dask
tasks, and the sandbox and temp folders each worker process keeps for them.

A task gets everything as data (the notebook's bytes, the exercise with its hidden tests'
text, the settings, the client's paths to hide) and runs the local per-submission code path,
``runner.grade_one``, in a temp folder of this machine. The task functions are sent to the
workers by reference, so every worker needs this package: the README setup.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from course_utils.grading import checkserver, sandbox
from course_utils.grading.hide import machine_private
from course_utils.grading.runner import grade_one

_LOCK = threading.Lock()
# In each worker process: (sandbox settings, hidden paths) -> its _Box, least recently used first
_BOXES: dict = {}
_KEEP_BOXES = 4  # idle boxes kept for later batches; one a task still uses is never removed
_ROOT: list = []  # this worker process's temp folder, once made


@dataclass
class _Box:
    scratch: Path  # the tasks' temp folders live in here
    box: sandbox.Sandbox
    users: int = 0  # tasks (or preflights) using it right now


def grade_task(job: dict) -> dict:
    """On a Dask worker: one submission through the local code path (runner.grade_one)."""
    from distributed import get_worker

    with _worker_box(job) as (scratch, box):
        return _grade_in(job, scratch, box, get_worker)


def _grade_in(job: dict, scratch: Path, box: sandbox.Sandbox, get_worker) -> dict:
    task_dir = Path(tempfile.mkdtemp(prefix="t-", dir=scratch))
    try:
        path = task_dir / "submission.ipynb"
        path.write_bytes(job["notebook"])
        executed = task_dir / "executed" / f"{job['student']}.ipynb"
        settings = replace(job["settings"], jobs=_slots_here(job["host_slots"]))
        outcome = grade_one(job["exercise"], job["student"], path, settings, executed.parent,
                            task_dir, box)
        return {"outcome": outcome, "sandbox": box.describe(), "worker": get_worker().address,
                "executed": executed.read_bytes() if executed.is_file() else None}
    finally:
        shutil.rmtree(task_dir, ignore_errors=True)


def worker_ready(job: dict) -> dict:
    """On each worker before the batch: its sandbox starts (or SandboxError says why)."""
    with _worker_box(job) as (_, box):
        return {"sandbox": box.describe(), "line": box.line(), "grader": grader_digest()}


@contextmanager
def _worker_box(job: dict):
    """This worker process's sandbox for the batch, made once (preparing one, with its probe,
    cgroups and redacted data, costs ~0.25 s), and held while the caller uses it: (scratch, box)."""
    s = job["settings"]
    key = (s.sandbox, s.limits, s.device, tuple(job["hide"]))
    with _LOCK:
        if key not in _BOXES:
            scratch = Path(tempfile.mkdtemp(prefix="b-", dir=_process_root()))
            hide = [*job["hide"], *machine_private(_shared_root()), *_dask_dirs()]
            box = sandbox.prepare(s.sandbox, s.limits, hide=hide, scratch=scratch,
                                  gpu=s.device == "cuda")
            checkserver.warm_up()
            _BOXES[key] = _Box(scratch, box)
        entry = _BOXES[key] = _BOXES.pop(key)  # now the most recently used
        entry.users += 1
    try:
        yield entry.scratch, entry.box
    finally:
        with _LOCK:
            entry.users -= 1
            _evict()


def _evict() -> None:
    """Remove the least recently used idle boxes beyond _KEEP_BOXES (a long-lived worker serves
    many batches); a box a task still uses, and the newest, stay. Called with _LOCK held."""
    keys = list(_BOXES)
    for key in keys[:-1]:
        if len(_BOXES) <= _KEEP_BOXES:
            return
        if _BOXES[key].users == 0:
            shutil.rmtree(_BOXES.pop(key).scratch, ignore_errors=True)


def _shared_root() -> Path:
    """One folder per user and machine for the temp files of all its workers, hidden from every
    submission: two workers on one machine must not see each other's submissions either."""
    uid = os.getuid() if hasattr(os, "getuid") else os.getlogin()
    root = Path(tempfile.gettempdir()) / f"course-grade-dask-{uid}"
    root.mkdir(mode=0o700, exist_ok=True)
    if root.is_symlink() or (hasattr(os, "getuid") and root.stat().st_uid != os.getuid()):
        raise sandbox.SandboxError(f"{root} belongs to another user or is a link: remove it")
    return root


def _process_root() -> Path:
    """This worker process's folder, removed at exit; those of dead workers (killed while
    grading) are removed by the next worker that starts on the machine."""
    if not _ROOT:
        shared = _shared_root()
        _sweep_dead(shared)
        root = Path(tempfile.mkdtemp(prefix=f"w{os.getpid()}-", dir=shared))
        atexit.register(shutil.rmtree, root, True)
        _ROOT.append(root)
    return _ROOT[0]


def _sweep_dead(shared: Path) -> None:
    import psutil

    for folder in shared.glob("w*-*"):
        pid = folder.name[1:].split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _dask_dirs() -> list[Path]:
    """The worker's own local directory: spilled task data, i.e. other students' results."""
    from distributed import get_worker

    try:
        return [Path(get_worker().local_directory)]
    except ValueError:  # not inside a worker
        return []


def _slots_here(host_slots: dict) -> int:
    """Submissions this machine grades at once, as --jobs: each kernel gets its share of cores."""
    from distributed import get_worker
    from distributed.comm import get_address_host

    worker = get_worker()
    return max(1, host_slots.get(get_address_host(worker.address), worker.state.nthreads))


def grader_digest() -> str:
    """A fingerprint of this machine's course_utils (the grader and what checks import):
    client and workers must grade with the same code."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(f"{path.relative_to(package)}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()
