"""Grading on a Dask cluster: ``course-grade EXERCISE SUBMISSIONS --out OUT --scheduler ADDRESS``.

The client (the machine running ``course-grade``) reads each submission and the hidden tests and
sends them *with the task*, as bytes: workers share no filesystem with it, they only need the
README setup (this repository, its .venv, its data). A task runs the local per-submission code
path, ``runner.grade_one``, in a temp folder of its worker: the sandbox and its limits, the
timeout and process cleanup, the hidden checks in a separate process. The outcome and the
executed notebook come back as data; only the client writes OUT_DIR (batch.py), so grades.csv is
the same as a local run's. This module is the client's side; cluster_task.py runs on the workers.

Faults: when a worker dies while grading, the scheduler runs the task on another worker (up to
its ``distributed.scheduler.allowed-failures``, 3 by default); an exception raised on a worker
is retried ``RETRIES`` times. A submission that still cannot be graded gets its rows, with the
reason, and so does every one left when no worker has been connected for
``NO_WORKER_PATIENCE_S``. Dask is imported inside the functions only: ``course-grade`` without
``--scheduler`` never loads it.
"""
from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections import Counter
from concurrent.futures import CancelledError
from dataclasses import replace
from pathlib import Path

from course_utils.grading import sandbox
from course_utils.grading.cluster_task import grade_task, grader_digest, worker_ready
from course_utils.grading.runner import Outcome, Settings, internal_error
from course_utils.grading.spec import Exercise
from course_utils.grading.submissions import MAX_NOTEBOOK_BYTES, load_submission

CONNECT_S = 20.0  # to reach the scheduler
WORKERS_WAIT_S = 60.0  # for a first worker, when the scheduler has none yet
PREFLIGHT_S = 180.0  # for a worker to start its sandbox (the probe alone may take 60 s)
# One more run, possibly elsewhere, for an exception on a worker (a full disk, a transient
# OSError); more would multiply the cost of a deterministic grader bug.
RETRIES = 1
NO_WORKER_PATIENCE_S = 300.0  # a cluster without workers for this long ends the batch
POLL_S = 2.0


class ClusterError(Exception):
    """The scheduler cannot be reached or its workers cannot grade; CLI exit 2."""


class DaskPool:
    """Grades on the workers of the Dask scheduler at ``address`` (the interface of
    ``batch.LocalPool``: prepare, run, notes, timing)."""

    def __init__(self, address: str, exercise: Exercise, settings: Settings):
        self.address, self.exercise, self.settings = address, exercise, settings
        self.notes: list[str] = []
        self.client = self.job = None
        self.boxes: dict = {}  # worker address -> its sandbox, as summary.json records it

    def __enter__(self) -> "DaskPool":
        self.client = _connect(self.address)
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()

    def prepare(self, hide: list, progress: bool) -> dict:
        """Start the sandbox on every worker (SandboxError or ClusterError if one cannot grade)."""
        # Paths resolved here: a worker has another cwd, and hides those that exist on it (all
        # of them when it runs on this machine).
        self.job = {"exercise": _portable(self.exercise), "settings": self.settings,
                    "hide": [str(Path(p).resolve()) for p in hide]}
        workers = self.client.scheduler_info(n_workers=-1)["workers"]  # asked once
        ready = _preflight(self.client, self.job, sorted(workers))
        self.job["host_slots"] = _host_slots(workers)
        self.boxes = {w: info["sandbox"] for w, info in ready.items()}
        if progress:
            threads = sum(self.job["host_slots"].values())
            print(f"dask: {len(ready)} workers, {threads} threads at {self.address}; "
                  f"{next(iter(ready.values()))['line']}", file=sys.stderr)
        return _sandbox_summary(self.boxes)[0]

    def run(self, submissions: dict, executed_dir: Path, report) -> list[Outcome]:
        from distributed import as_completed

        outcomes, futures = [], {}
        for student, path in submissions.items():
            refused = _too_big(self.exercise, student, path)
            if refused:
                outcomes.append(refused)
                report(refused)
            else:
                futures[self._submit(student, path)] = student
        with _Watchdog(self.client, list(futures)) as watchdog:
            for future in as_completed(futures, loop=self.client.loop):
                outcomes.append(self._receive(future, futures[future], watchdog, executed_dir))
                report(outcomes[-1])
        self.notes += _sandbox_summary(self.boxes)[1]
        return sorted(outcomes, key=lambda o: o.student)

    def timing(self) -> dict:
        return {"scheduler": self.address, "workers": len(self.boxes)}

    def _submit(self, student: str, path: Path):
        job = dict(self.job, student=student, notebook=Path(path).read_bytes())
        key = f"course-grade-{self.exercise.name}-{secrets.token_hex(4)}-{student}"
        return self.client.submit(grade_task, job, key=key, pure=False, retries=RETRIES)

    def _receive(self, future, student: str, watchdog, executed_dir: Path) -> Outcome:
        if future.cancelled() and watchdog.reason:
            return _uniform_error(self.exercise, student, watchdog.reason)
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - KilledWorker, CancelledError...: rows, a reason
            return _lost(self.exercise, student, exc)
        finally:
            future.release()  # the notebook bytes and the result: done with them
        if result["executed"] is not None:
            (executed_dir / f"{student}.ipynb").write_bytes(result["executed"])
        self.boxes[result["worker"]] = result["sandbox"]
        return result["outcome"]


def _connect(address: str):
    from distributed import Client
    from distributed.comm import get_address_host_port

    try:  # before Client(): a Client that failed to start spends seconds on closing itself
        get_address_host_port(address)
    except ValueError as exc:
        raise ClusterError(f"--scheduler {address}: {exc}; expected tcp://HOST:PORT") from None
    try:
        client = Client(address, timeout=CONNECT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address} ({_what(exc)}). Start one with "
            "`dask scheduler` and pass the address it prints (docs/GRADING.md).") from None
    try:
        client.wait_for_workers(1, timeout=WORKERS_WAIT_S)
    except TimeoutError:
        client.close()
        raise ClusterError(
            f"the Dask scheduler at {address} has no workers (waited {WORKERS_WAIT_S:g} s): "
            f"start some with `dask worker {address}` (docs/GRADING.md).") from None
    return client


def _preflight(client, job: dict, workers: list) -> dict:
    """{worker: its sandbox} once each worker has started one; stops at the first that cannot."""
    futures = {w: client.submit(worker_ready, job, workers=[w], allow_other_workers=False,
                                pure=False, key=f"course-grade-ready-{secrets.token_hex(6)}")
               for w in workers}
    ready, here = {}, grader_digest()
    for worker, future in futures.items():
        try:
            info = future.result(timeout=PREFLIGHT_S)
        except TimeoutError:
            continue  # gone or stuck: it may still take tasks, which then prepare for themselves
        except sandbox.SandboxError as exc:
            raise sandbox.SandboxError(f"on Dask worker {worker}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - e.g. course_utils missing on that machine
            raise ClusterError(
                f"Dask worker {worker} cannot grade ({_what(exc)}). Each worker needs the "
                "README setup and must run from the course's .venv (docs/GRADING.md).") from None
        if info["grader"] != here:
            raise ClusterError(
                f"Dask worker {worker} has other course_utils code than this machine: update "
                "its checkout (git pull; bash course.sh setup), then restart the worker.")
        ready[worker] = info
    client.cancel(list(futures.values()))
    if not ready:
        raise ClusterError(f"no Dask worker answered within {PREFLIGHT_S:g} s")
    return ready


def _host_slots(workers: dict) -> dict:
    """{host: submissions it grades at once}: all its workers' threads together
    (``workers``: the scheduler's ``{address: info}``)."""
    slots: dict = {}
    for info in workers.values():
        slots[info["host"]] = slots.get(info["host"], 0) + info["nthreads"]
    return slots


def _portable(exercise: Exercise) -> Exercise:
    """The exercise as a task carries it: the hidden tests' text, none of this machine's paths."""
    return replace(exercise, source=Path(f"{exercise.name}.ipynb"),
                   hidden=Path(f"{exercise.name}.py"))


def _too_big(exercise: Exercise, student: str, path: Path) -> Outcome | None:
    """A file over the size limit is refused from its size (as grade_one would), not sent."""
    if Path(path).stat().st_size <= MAX_NOTEBOOK_BYTES:
        return None
    return _uniform(exercise, student, "invalid", load_submission(path)[1])


def _uniform(exercise: Exercise, student: str, status: str, detail: str) -> Outcome:
    return Outcome(student, status, {q: (status, detail) for q in exercise.questions}, 0.0)


def _uniform_error(exercise: Exercise, student: str, detail: str) -> Outcome:
    return _uniform(exercise, student, "error", detail)


def _lost(exercise: Exercise, student: str, exc: BaseException) -> Outcome:
    """The rows of a submission the cluster could not grade, with the reason."""
    from distributed import KilledWorker

    if isinstance(exc, KilledWorker):  # its own text names a worker: rows must not vary
        return _uniform_error(exercise, student, (
            f"not graded: the {exc.allowed_failures + 1} Dask workers that ran it all died "
            "(KilledWorker); see the workers' logs, then grade it again"))
    if isinstance(exc, CancelledError):  # its text names the task's random key
        return _uniform_error(exercise, student, (
            "not graded: the Dask cluster cancelled it (scheduler restarted or lost?); "
            "grade it again"))
    return internal_error(exercise, student, exc)


def _sandbox_summary(boxes: dict) -> tuple[dict, list[str]]:
    """The sandbox summary.json records (the most common), and a note if the workers differ."""
    counts = Counter(json.dumps(d, sort_keys=True) for d in boxes.values())
    common = counts.most_common(1)[0][0]
    odd = sorted(w for w, d in boxes.items() if json.dumps(d, sort_keys=True) != common)
    if not odd:
        return json.loads(common), []
    return json.loads(common), [
        f"WARNING: the sandbox differs on Dask workers {', '.join(odd)} (limits enforced another "
        f"way, or another kind): {[boxes[w] for w in odd]}"]


def _what(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


class _Watchdog:
    """Cancels what is left once no worker has been connected for NO_WORKER_PATIENCE_S, so a
    cluster that lost all its workers (ended SLURM jobs) still ends the batch, with reasons."""

    def __init__(self, client, futures: list):
        self.client, self.futures, self.reason = client, futures, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="course-grade-watchdog",
                                        daemon=True)

    def __enter__(self) -> "_Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        alone_since = None
        while not self._stop.wait(POLL_S):
            try:
                workers = self.client.scheduler_info(n_workers=-1)["workers"]
            except Exception:  # noqa: BLE001 - the scheduler itself is gone: same as no workers
                workers = {}
            alone_since = None if workers else (alone_since or time.monotonic())
            if alone_since and time.monotonic() - alone_since >= NO_WORKER_PATIENCE_S:
                self.reason = (f"not graded: no Dask worker was connected for "
                               f"{NO_WORKER_PATIENCE_S:g} s")
                self.client.cancel([f for f in self.futures if not f.done()])
                return
