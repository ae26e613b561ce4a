"""What a sandboxed notebook sees of the host's file system: an allow-list, all of it read-only.

bwrap starts from an empty root and binds, read-only, only what Python, the course and a kernel
need (nothing else of the host exists in the sandbox):

- the system's program and library folders (``/usr``, and ``/bin``, ``/lib``... or the links
  to them), with ``/usr/share`` emptied again except fonts, time zones and MIME types: the rest
  of it holds installed data sets (the test objects' source files among them) and documentation;
- the ``/etc`` files the C library and Python read (dynamic linker, users and groups, name
  lookup, time zone, fonts, MIME types), none of the rest (e.g. ``pip.conf``, ``gitconfig``);
- the interpreter (its prefix, the venv, site-packages), the ``course_utils`` package, the
  course's ``data/`` folder and ``pyproject.toml`` (which marks the checkout for ``data_dir``).

Everything else (HOME, /root, /home, /srv, /opt, /var, /run, /mnt, the repo's notebooks, tests,
exercises and .git, other courses) is absent. A private ``/dev``, ``/proc``, ``/tmp`` and
``/dev/shm`` are mounted by the sandbox itself, and a submission's own folders are the only
writable ones. A folder a batch must hide (``hide.py``) that still lies inside a bound one is
covered by an empty read-only tmpfs.
"""
from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
USR_SHARE = "/usr/share"
USR_SHARE_KEEP = ("fonts", "fontconfig", "zoneinfo", "mime")
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "passwd", "group", "nsswitch.conf", "hosts",
       "host.conf", "gai.conf", "localtime", "timezone", "mime.types", "fonts", "alternatives",
       "os-release", "locale.alias", "protocols", "services")


def within(path: str, folder: str) -> bool:
    return folder == "/" or path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def outermost(paths) -> list[str]:
    out = []
    for path in sorted(set(paths)):
        if not any(within(path, kept) for kept in out):
            out.append(path)
    return out


def needed_paths() -> list[str]:
    """What the worker and the kernel read besides the system: the interpreter, its libraries,
    the course package and its data (real paths)."""
    import course_utils
    from course_utils.config import data_dir, repo_root

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable)), *sysconfig.get_paths().values(),
             str(Path(course_utils.__file__).parent), str(data_dir()),
             str(repo_root() / "pyproject.toml")}
    return sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})


def visible_roots() -> list[str]:
    """Every folder (or file) bound into the sandbox, outermost first."""
    system = [p for p in SYSTEM if os.path.isdir(p) and not os.path.islink(p)]
    return outermost([*system, *needed_paths()])


def bwrap_args(hidden, writable, binds, gpu: bool, disk_bytes: int, shm_bytes: int) -> list[str]:
    """The mount arguments of bwrap, in order: system, /usr/share's few, /etc's few, the private
    /dev, /proc, /tmp and /dev/shm, the interpreter and course, the hidden folders inside them,
    the writable folders, the ``binds`` (source, target) over the view, then read-only."""
    args = []
    for path in SYSTEM:
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin, recreated as the same link
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--tmpfs", USR_SHARE]
    for name in USR_SHARE_KEEP:
        args += ["--ro-bind-try", f"{USR_SHARE}/{name}", f"{USR_SHARE}/{name}"]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--dev", "/dev", "--proc", "/proc", *(_gpu_devices() if gpu else []),
             "--size", str(disk_bytes), "--tmpfs", "/tmp",
             "--size", str(shm_bytes), "--tmpfs", "/dev/shm"]  # shm is memory
    needed = [p for p in outermost(needed_paths())
              if not any(within(p, s) and not within(p, USR_SHARE) for s in SYSTEM)]
    for path in needed:  # after /tmp: a clone in /tmp (as CI may make) is bound back
        args += ["--ro-bind", path, path]
    covered = [USR_SHARE]
    roots = visible_roots()
    for folder in outermost(p for p in hidden if os.path.isdir(p)):
        if any(within(folder, r) for r in roots):  # else it is not in the view at all
            args += ["--tmpfs", folder]
            covered.append(folder)
    for path in writable:  # after the tmpfs: a submission's folders may sit in a covered one
        args += ["--bind", str(path), str(path)]
    for source, target in binds:
        args += ["--ro-bind", source, target]
    for folder in covered:  # read-only last, once bwrap made the mount points in them
        args += ["--remount-ro", folder]
    return args + ["--remount-ro", "/"]


def _gpu_devices() -> list[str]:
    # bwrap's /dev holds only null, zero, random, tty...: a CUDA kernel needs the nvidia nodes,
    # and the driver reads its devices' descriptions in /sys
    args = []
    for node in sorted(Path("/dev").glob("nvidia*")):
        args += ["--dev-bind", str(node), str(node)]
    return args + (["--ro-bind", "/sys", "/sys"] if args else [])
