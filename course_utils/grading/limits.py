"""Resource limits for one submission: what they are (:class:`Limits`), the cgroups (v1 or v2)
that enforce memory and processes where the grader may create one, the measurements the
watchdog falls back on elsewhere, and :class:`Job`, which applies them to one process tree:
a submission's worker (``sandbox.SandboxRun``) or its check process (``runner``)."""
from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 4096
    max_procs: int = 256
    disk_mb: int = 1024

    def message(self, which: str) -> str:
        return {"memory": f"memory limit {self.memory_mb} MB exceeded",
                "pids": f"process limit {self.max_procs} reached",
                "disk": f"disk limit {self.disk_mb} MB exceeded"}[which]


# ---------------------------------------------------------------------------------- cgroups

@dataclass(frozen=True)
class CgroupParent:
    """The grader's own cgroup in one hierarchy: per-submission cgroups are created below it."""
    version: int  # 1 or 2
    path: str
    controllers: tuple  # those of ("memory", "pids") this hierarchy handles


# (version, controller) -> (limit file, events file, the event that counts a crossed limit)
_CG_FILES = {
    (1, "memory"): ("memory.limit_in_bytes", "memory.oom_control", "oom_kill"),
    (2, "memory"): ("memory.max", "memory.events", "oom_kill"),
    (1, "pids"): ("pids.max", "pids.events", "max"),
    (2, "pids"): ("pids.max", "pids.events", "max"),
}
# No swap: a notebook over its memory limit is to be stopped, not slowed down for minutes.
_NO_SWAP = {1: "memory.memsw.limit_in_bytes", 2: "memory.swap.max"}


class Cgroup:
    """One submission's cgroup in one hierarchy; ``remove`` kills what is left in it."""

    def __init__(self, parent: CgroupParent, limits: Limits):
        self.parent = parent
        self.path = os.path.join(parent.path, f"course-grade-{secrets.token_hex(6)}")
        if parent.version == 2:
            _enable_controllers(parent)
        os.mkdir(self.path)
        try:
            self._set_limits(limits)
        except OSError:
            self.remove()
            raise

    @property
    def procs_file(self) -> str:
        return os.path.join(self.path, "cgroup.procs")

    def _set_limits(self, limits: Limits) -> None:
        values = {"memory": limits.memory_mb << 20, "pids": limits.max_procs}
        version = self.parent.version
        for controller in self.parent.controllers:
            _write(self.path, _CG_FILES[version, controller][0], values[controller])
        if "memory" in self.parent.controllers:
            try:  # v1 wants memory+swap >= memory; v2 counts swap on its own
                _write(self.path, _NO_SWAP[version], values["memory"] if version == 1 else 0)
            except OSError:
                pass  # no swap accounting on this host: nothing to turn off

    def crossed(self) -> list[str]:
        """Controllers whose limit was hit: an OOM kill, or a fork refused at pids.max."""
        hit = []
        for controller in self.parent.controllers:
            _, events, key = _CG_FILES[self.parent.version, controller]
            if _event_count(os.path.join(self.path, events), key) > 0:
                hit.append(controller)
        return hit

    def remove(self) -> None:
        for _ in range(100):  # rmdir fails while a task is still exiting
            for pid in _read_pids(self.procs_file):
                _kill(pid)  # the last net: nothing can leave a cgroup it cannot write
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def _write(folder: str, name: str, value) -> None:
    with open(os.path.join(folder, name), "w") as fh:
        fh.write(str(value))


def _enable_controllers(parent: CgroupParent) -> None:
    # cgroup v2 hands a controller to children only when the parent's subtree_control lists it
    # (refused while the parent itself holds processes: then we fall back to the watchdog).
    enabled = _read_words(os.path.join(parent.path, "cgroup.subtree_control"))
    missing = [c for c in parent.controllers if c not in enabled]
    if missing:
        _write(parent.path, "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))


def _event_count(path: str, key: str) -> int:
    try:
        with open(path) as fh:
            for line in fh:
                name, _, value = line.partition(" ")
                if name == key:
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _read_pids(path: str) -> list[int]:
    try:
        with open(path) as fh:
            return [int(line) for line in fh if line.strip()]
    except (OSError, ValueError):
        return []


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def cgroup_parents(mountinfo: str, own: str) -> list[CgroupParent]:
    """Where memory and pids cgroups can go, from /proc/self/mountinfo and /proc/self/cgroup."""
    mounts = [m for m in map(_cgroup_mount, mountinfo.splitlines()) if m]
    paths = {}
    for line in own.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in (parts[1].split(",") if parts[1] else [""]):
                paths[controller] = parts[2]  # "" is the v2 hierarchy
    found: dict = {}
    for controller in ("memory", "pids"):
        place = _v1_place(mounts, paths, controller) or _v2_place(mounts, paths, controller)
        if place:
            found.setdefault(place, []).append(controller)
    return [CgroupParent(v, path, tuple(c)) for (v, path), c in found.items()]


def _cgroup_mount(line: str):
    fields = line.split()
    if "-" not in fields:
        return None
    tail = fields[fields.index("-") + 1:]
    if len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2") or len(fields) < 5:
        return None
    return tail[0], fields[3], fields[4], set(tail[2].split(","))  # type, root, where, options


def _inside_mount(mount, cgroup_path: str) -> str | None:
    _, root, where, _ = mount
    rel = os.path.relpath(cgroup_path, root)
    return None if rel.startswith("..") else os.path.normpath(os.path.join(where, rel))


def _v1_place(mounts, paths, controller):
    for mount in mounts:
        if mount[0] == "cgroup" and controller in mount[3] and controller in paths:
            path = _inside_mount(mount, paths[controller])
            return (1, path) if path else None
    return None


def _v2_place(mounts, paths, controller):
    for mount in mounts:
        path = _inside_mount(mount, paths[""]) if mount[0] == "cgroup2" and "" in paths else None
        if path and controller in _read_words(os.path.join(path, "cgroup.controllers")):
            return 2, path
    return None


def _read_words(path: str) -> list[str]:
    try:
        with open(path) as fh:
            return fh.read().split()
    except OSError:
        return []


def usable_cgroups(limits: Limits) -> tuple:
    """The hierarchies where this grader may create a limited cgroup (tried once, removed)."""
    if not sys.platform.startswith("linux"):
        return ()
    try:
        with open("/proc/self/mountinfo") as fh, open("/proc/self/cgroup") as own:
            parents = cgroup_parents(fh.read(), own.read())
    except OSError:
        return ()
    usable = []
    for parent in parents:
        try:
            Cgroup(parent, limits).remove()
            usable.append(parent)
        except OSError:
            pass  # not ours to write (no root, v2 without delegation): the watchdog steps in
    return tuple(usable)


class Job:
    """Memory and process limits of one process tree: its own cgroups where the grader may make
    them (the tree joins them through ``procs_files``), else a watchdog (``watch``)."""

    def __init__(self, parents: tuple, limits: Limits, extra_memory=None, unique: bool = False):
        """``extra_memory(pid)``: bytes the tree holds outside its processes (private tmpfs);
        ``unique``: count only the pages the processes do not share with others (a check forked
        from the warm check server shares its torch with it)."""
        self.limits, self.extra_memory, self.unique = limits, extra_memory, unique
        self.reason: str | None = None  # set by the watchdog
        self.cgroups: list[Cgroup] = []
        try:
            for parent in parents:
                self.cgroups.append(Cgroup(parent, limits))
        except OSError:
            self.close()
            raise

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for cgroup in self.cgroups:
            cgroup.remove()
        self.cgroups = []

    @property
    def procs_files(self) -> list[str]:
        return [c.procs_file for c in self.cgroups]

    def watch(self, pid: int) -> bool:
        """Polled while the tree runs; True: a limit no cgroup enforces was crossed, stop it."""
        if self.reason is None:
            self.reason = self._tree_over(pid)
        return self.reason is not None

    def exceeded(self) -> str | None:
        """The memory or process limit the tree crossed, if any (after the run, before ``close``)."""
        if self.reason:
            return self.reason
        hit = [c for cgroup in self.cgroups for c in cgroup.crossed()]
        return next((self.limits.message(c) for c in ("memory", "pids") if c in hit), None)

    def _tree_over(self, pid: int) -> str | None:
        unwatched = {"memory", "pids"} - {c for g in self.cgroups for c in g.parent.controllers}
        if not unwatched:
            return None
        memory, tasks = tree_usage(pid, self.unique)
        if "memory" in unwatched and self.extra_memory:
            memory += self.extra_memory(pid)
        if "memory" in unwatched and memory > self.limits.memory_mb << 20:
            return self.limits.message("memory")
        if "pids" in unwatched and tasks > self.limits.max_procs:
            return self.limits.message("pids")
        return None


def folder_bytes(folder: Path) -> int:
    total = 0
    for top, _dirs, files in os.walk(folder):  # does not follow symlinks
        for name in files:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


def tree_usage(pid: int, unique: bool = False) -> tuple[int, int]:
    """(resident bytes, threads) of a process and all its descendants; ``unique``: count only
    the pages no other process maps (USS, slower to read) instead of the resident set."""
    import psutil

    try:
        root = psutil.Process(pid)
        family = [root] + root.children(recursive=True)
    except psutil.Error:
        return 0, 0
    memory = tasks = 0
    for proc in family:
        try:
            memory += proc.memory_full_info().uss if unique else proc.memory_info().rss
            tasks += proc.num_threads()
        except psutil.Error:
            pass
    return memory, tasks


def tmpfs_bytes(pid: int, folders=("/dev/shm", "/tmp")) -> int:
    """Bytes stored in ``folders`` as the sandbox below ``pid`` (bwrap) sees them: its private
    tmpfs mounts, which hold host memory that no process's resident set shows. Read through
    /proc/CHILD/root, i.e. in the sandbox's own mount namespace; 0 if there is none yet."""
    import psutil

    try:
        children = psutil.Process(pid).children()
    except psutil.Error:
        return 0
    total = 0
    for child in children[:1]:  # bwrap's first child: the sandbox's init
        for folder in folders:
            inside = f"/proc/{child.pid}/root{folder}"
            try:  # not the host's own folder (the sandbox may not be set up yet)
                if os.stat(inside).st_dev != os.stat(folder).st_dev:
                    st = os.statvfs(inside)
                    total += (st.f_blocks - st.f_bfree) * st.f_frsize
            except OSError:
                continue
    return total
