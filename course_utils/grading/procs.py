"""Starting a grading subprocess with a hard wall-clock limit, and making sure it is all gone.

jupyter_client starts the kernel in a new session, so killing the worker's process group
would leave the kernel (and its DataLoader workers, or anything the student spawned) running.
Two nets catch them: the psutil process tree, collected *before* anything is killed (orphans
lose their parent link), and an environment marker every descendant inherits, which also
finds processes that were double-forked away from the tree.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

MARKER_VAR = "COURSE_GRADE_RUN"
TERM_GRACE_S = 3.0  # time the worker gets to save the partial notebook after SIGTERM
WATCH_EVERY_S = 0.25  # how often ``watch`` is asked while a command runs


def run_limited(cmd, *, cwd, env, stdin_text, timeout, log_path, marker, watch=None,
                term_target=None) -> tuple[int | None, bool]:
    """Run ``cmd`` for at most ``timeout`` seconds; return (exit code or None, timed_out).

    Whatever carries ``marker`` in its environment is killed afterwards in every case, so a
    background process a notebook started cannot outlive its grading. ``watch(pid)`` is polled
    while it runs: True stops it early (returns (None, False)). ``term_target(root)`` picks the
    process that gets the SIGTERM on a timeout (default: ``cmd`` itself; a sandbox sits between).
    """
    env = dict(env, **{MARKER_VAR: marker})
    started = time.time()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _feed(proc, stdin_text)
            rc = _wait(proc, started + timeout, watch)
            if rc is None:
                stop_tree(proc, term_target)
            return rc, False
        except subprocess.TimeoutExpired:
            stop_tree(proc, term_target)
            return None, True
        finally:
            kill_marked(marker, since=started)
            proc.poll()


def _wait(proc, deadline: float, watch) -> int | None:
    """The exit code; None once ``watch`` says stop; TimeoutExpired at the deadline."""
    while True:
        left = max(0.1, deadline - time.time())
        try:
            return proc.wait(timeout=min(left, WATCH_EVERY_S) if watch else left)
        except subprocess.TimeoutExpired:
            if watch is None or time.time() >= deadline:
                raise
            if watch(proc.pid):
                return None


def _feed(proc, text: str) -> None:
    try:
        proc.stdin.write(text.encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass  # it died at once; its exit code tells the story


def stop_tree(proc: subprocess.Popen, term_target=None) -> None:
    """SIGTERM the worker (it saves what ran), then SIGKILL it and all its descendants."""
    try:
        root = psutil.Process(proc.pid)
        family = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    try:
        worker = term_target(root) if term_target else root
        worker.send_signal(signal.SIGTERM)
        proc.wait(timeout=TERM_GRACE_S)
    except (subprocess.TimeoutExpired, psutil.Error):
        pass
    kill_family(family)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants at once (nothing to save, e.g. a check)."""
    try:
        root = psutil.Process(pid)
        kill_family([root] + root.children(recursive=True))
    except psutil.NoSuchProcess:
        return


def kill_family(family) -> None:
    for _ in range(3):  # a process may spawn more while we kill: look again
        family = _alive(family + _descendants(family))
        if not family:
            return
        for p in family:
            _kill(p)
        _wait_gone(family)


def kill_marked(marker: str, since: float = 0.0) -> int:
    """Kill every process (not us) whose environment carries ``marker``; return how many."""
    found = []
    for p in psutil.process_iter(["pid", "create_time"]):
        if p.pid == os.getpid() or (p.info["create_time"] or 0) < since - 1:
            continue  # older processes cannot belong to this run: skip reading their environ
        try:
            if p.environ().get(MARKER_VAR) == marker:
                found.append(p)
        except (psutil.Error, OSError):
            continue
    for p in found:
        _kill(p)
    _wait_gone(found)
    return len(found)


def _wait_gone(procs, timeout: float = 2.0) -> None:
    # Not psutil.wait_procs: an orphan reparented to a PID 1 that does not reap (common in
    # containers) stays a zombie, which wait_procs counts as alive until its timeout.
    deadline = time.monotonic() + timeout
    while any(_running(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.02)


def _descendants(procs):
    out = []
    for p in procs:
        try:
            out.extend(p.children(recursive=True))
        except psutil.Error:
            pass
    return out


def _alive(procs):
    seen, out = set(), []
    for p in procs:
        if p.pid not in seen and _running(p):
            seen.add(p.pid)
            out.append(p)
    return out


def _running(p) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _kill(p) -> None:
    try:
        p.kill()
    except psutil.Error:
        pass


def first_line(text, default: str = "") -> str:
    """The first line of an error message, at most 300 characters: one row of grades.csv stays one line."""
    lines = str(text).strip().splitlines()
    return lines[0][:300] if lines else default


def forget_cwd_on_path() -> None:
    """``python -m`` put our cwd first on sys.path, and the notebook's code can write files there:
    drop it so a planted .py cannot shadow a module this process imports later."""
    if sys.path and sys.path[0] == os.getcwd():
        sys.path.pop(0)
