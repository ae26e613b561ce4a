"""Check processes forked from a warm server, so a submission's checks skip the big imports.

Why: importing torch, torchvision and timm takes about 3.5 s on the course's 2-core machine,
more than most checks themselves, and a fresh ``python -m course_utils.grading.checker`` paid it
for every submission. multiprocessing's *forkserver* imports them once, in a process that never
runs student code and never sees an answer, and forks a fresh copy of itself for every check.
A fork of that clean process isolates like a new interpreter: nothing one submission's checks
do (patching, caching, crashing) reaches the next one's.

Like every multiprocessing start method but fork, the child imports the parent's ``__main__``
under another name, so a script that grades must keep its work under
``if __name__ == "__main__":`` (the ``course-grade`` command and pytest do).

Where fork is not available (Windows), or in a daemonic process (a Dask worker started by its
nanny with the default settings), the checks run as plain subprocesses, as before.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

from course_utils.grading import procs

PRELOAD = ["course_utils.grading._check_preload"]
_EXEC = str(Path(__file__).with_name("_sandbox_exec.py"))


def available() -> bool:
    # multiprocessing refuses children to a daemonic process, and a Dask worker under its nanny
    # is one unless started with DASK_DISTRIBUTED__WORKER__DAEMON=False: checks run as plain
    # subprocesses there (same results, the imports paid per submission).
    return ("forkserver" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon)


def warm_up() -> None:
    """Start the check server now, while the first notebook runs, instead of at its first check."""
    if available():
        from multiprocessing import forkserver
        _context()
        forkserver.ensure_running()


def _context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def run_checks(argv: list[str], *, cwd: Path, env: dict, log_path: Path, timeout: float,
               marker: str, job=None) -> tuple[int | None, bool]:
    """Run ``checker.main(argv)`` in a forked check process for at most ``timeout`` seconds,
    within the limits of ``job`` (a ``limits.Job``: the process joins its cgroups before anything
    else runs, or its watchdog is polled).

    Returns (exit code or None, timed_out) like ``procs.run_limited``: (None, False) when the
    watchdog stopped it (``job.exceeded()`` says why).
    """
    cgroups = job.procs_files if job else []
    if not available():
        cmd = [sys.executable, "-m", "course_utils.grading.checker", *argv]
        if os.name == "posix":  # the sandbox's launcher: joins the cgroups, then becomes cmd
            cmd = [sys.executable, "-I", "-S", _EXEC, json.dumps({"cgroups": cgroups}), *cmd]
        return procs.run_limited(cmd, cwd=cwd, env=env, stdin_text="", timeout=timeout,
                                 log_path=log_path, marker=marker, watch=job and job.watch)
    context = _context()
    started = time.time()
    child = context.Process(target=_check_main, name="course-grade-check",
                            args=(argv, str(cwd), env, str(log_path), marker, cgroups))
    child.start()
    try:
        return _wait(child, started + timeout, job)
    finally:
        procs.kill_marked(marker, since=started)


def _wait(child, deadline: float, job) -> tuple[int | None, bool]:
    while True:
        child.join(max(0.0, min(procs.WATCH_EVERY_S, deadline - time.time())))
        if not child.is_alive():
            return child.exitcode, False
        stop = job is not None and job.watch(child.pid)
        if stop or time.time() >= deadline:
            procs.kill_tree(child.pid)
            child.join(5)
            return None, not stop


def _check_main(argv: list[str], cwd: str, env: dict, log_path: str, marker: str,
                cgroups: list[str]) -> None:
    """Inside the forked check process: the same setup the subprocess got, then the checks."""
    for procs_file in cgroups:  # first of all: what it allocates from here on counts
        with open(procs_file, "w") as fh:
            fh.write(str(os.getpid()))
    # The server's environment is the parent's at the start of the batch; take this call's.
    # Anything a check starts inherits the marker, so the parent can find and kill it.
    os.environ.clear()
    os.environ.update(env, **{procs.MARKER_VAR: marker})
    os.chdir(cwd)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log, 1)
    os.dup2(log, 2)
    from course_utils.grading import checker
    try:
        code = checker.main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    sys.exit(code)
