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
from dataclasses import replace
from pathlib import Path

from course_utils.grading import batch, checkserver, sandbox
from course_utils.grading.runner import grade_one

_LOCK = threading.Lock()
_BOXES: dict = {}  # in each worker process: (sandbox settings, hidden paths) -> (scratch, box)
_KEEP_BOXES = 4
_ROOT: list = []  # this worker process's temp folder, once made


def grade_task(job: dict) -> dict:
    """On a Dask worker: one submission through the local code path (runner.grade_one)."""
    from distributed import get_worker

    scratch, box = _worker_box(job)
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
    _, box = _worker_box(job)
    return {"sandbox": box.describe(), "line": box.line(), "grader": grader_digest()}


def _worker_box(job: dict) -> tuple[Path, sandbox.Sandbox]:
    """This worker process's sandbox for the batch, made once: preparing one (probe, cgroups,
    the redacted data) costs ~0.25 s, half the overhead a submission may add."""
    s = job["settings"]
    key = (s.sandbox, s.limits, s.device, tuple(job["hide"]))
    with _LOCK:
        if key not in _BOXES:
            scratch = Path(tempfile.mkdtemp(prefix="b-", dir=_process_root()))
            hide = [*job["hide"], *batch.machine_private(_shared_root()), *_dask_dirs()]
            box = sandbox.prepare(s.sandbox, s.limits, hide=hide, scratch=scratch,
                                  gpu=s.device == "cuda")
            checkserver.warm_up()
            _BOXES[key] = (scratch, box)
            while len(_BOXES) > _KEEP_BOXES:  # a long-lived worker serves many batches
                old_scratch, _ = _BOXES.pop(next(iter(_BOXES)))
                shutil.rmtree(old_scratch, ignore_errors=True)
        return _BOXES[key]


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
