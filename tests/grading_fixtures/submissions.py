"""Submissions of the fixture exercise ``ex01_add`` for the grader's tests: one per kind of notebook
(correct, wrong, crashing, hanging, invalid...) and one per attack on the sandbox. They are built
from the fixture's solution notebook, so they follow the exercise as it changes. Kernels start
without torch, so each notebook takes seconds. ``batches.py`` grades them all in one batch.
"""
from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from course_utils.config import repo_root

FIXTURES = Path(__file__).parent / "exercises"
EXERCISE = "ex01_add"
QUESTIONS = ["q1_add", "q2_weights"]
REPO = repo_root()
TIMEOUT = 20
LIMITS = {"memory_mb": 256, "max_procs": 32, "disk_mb": 64}  # small: the attacks end in seconds
MARKER = "course-grade-test-stray-4f1d"  # in the cmdline of processes a submission spawns
TOKEN = f"sandbox-attack-{secrets.token_hex(4)}"  # in every file name and process an attack makes
ODD = "Zoë Müller v1.2 (final)"
NO_SELF_CHECK = {5: "pass"}  # a student with a wrong answer deletes the failing self-check
WRONG = {3: "def add(a, b):\n    return a - b", 4: "import numpy as np\nweights = np.zeros(3)",
         **NO_SELF_CHECK}
INVALID = ("bad_json", "empty", "zero_cells", "bad_schema")
# The grader's own environment: a token no kernel, row or feedback file may ever show.
TOKEN_VAR, TOKEN_VALUE = "INSTRUCTOR_API_TOKEN", f"tok-{secrets.token_hex(12)}"
# Folders of the host that no kernel needs: other courses, the repo's notebooks and tests, /etc's secrets
HOST_SECRET = Path("/var/tmp") / f"host-secret-{secrets.token_hex(4)}"
HOST_PATHS = [str(HOST_SECRET / "answers.txt"), str(HOST_SECRET), str(REPO / "notebooks"),
              str(REPO / "tests" / "grading_fixtures"), str(REPO / "README.md"), "/etc/shadow",
              "/usr/share/tuxpaint"]


def source_nb():
    return nbformat.read(str(FIXTURES / "source" / f"{EXERCISE}.ipynb"), as_version=4)


def variant(replace=None, insert=(), attack: str = ""):
    """The solution notebook with cells replaced, extra cells inserted (index, code) and
    ``attack`` as a last cell."""
    nb = source_nb()
    for index, code in (replace or {}).items():
        nb.cells[index].source = code
    for index, code in sorted(insert, reverse=True):
        nb.cells.insert(index, new_code_cell(code))
    if attack:
        nb.cells.append(new_code_cell(attack))
    return nb


# ------------------------------------------------------------------ kinds of notebooks

SPAWN_AND_HANG = f"""
import subprocess, sys, time
sleeper = [sys.executable, "-c", "import time; time.sleep(300)", "{MARKER}"]
child = subprocess.Popen(sleeper)  # a direct child of the kernel
# a grandchild that escapes the process tree: its parent exits at once
subprocess.run([sys.executable, "-c",
    "import subprocess, sys; subprocess.Popen(sys.argv[1:], start_new_session=True)", *sleeper])
time.sleep(1)
while True:
    pass
"""

CHEAT_PATCH = """
import builtins, numpy as np, numpy.testing
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.testing.assert_array_equal = lambda *a, **k: None
np.allclose = lambda *a, **k: True
builtins.AssertionError = type("Never", (Exception,), {})
class Anything(float):  # equal to everything, zero distance to anything
    def __eq__(self, other): return True
    def __sub__(self, other): return Anything(0)
    def __rsub__(self, other): return Anything(0)
    def __abs__(self): return 0.0
def add(a, b):
    return Anything(0)
weights = np.zeros(3)
numpy.testing.assert_allclose(add(2, 3), 5)
assert add(2, 3) == 5
"""


def _cheat_files(exercises_dir: Path):
    hidden = exercises_dir / "grading" / f"{EXERCISE}.py"
    code = f"""
import json, os, pathlib
fake = {{"format": 1, "arrays": [], "answers": {{"add_pairs": [3, 0, 2.75, 1000001]}}}}
for place in [".", "..", "../grader", os.path.expanduser("~")]:
    for name in ["answers.json", "result.json"]:
        try:
            pathlib.Path(place, name).write_text(json.dumps(fake))
        except OSError:
            pass
pathlib.Path("../grader/result.json").write_text('{{"status": "ok", "detail": "x", "answers": "answers"}}')
try:  # the sandbox hides the hidden tests; with --sandbox none the write works (and is ignored)
    pathlib.Path({str(hidden)!r}).write_text(
        'QUESTIONS = {{"q1_add": 2, "q2_weights": 3}}\\n'
        'def collect(ns):\\n    return {{}}\\n'
        'def check_q1_add(a):\\n    return True, "hacked"\\n'
        'def check_q2_weights(a):\\n    return True, "hacked"\\n')
except OSError:
    pass
print("q1_add: ok (2/2)\\nq2_weights: ok (3/3)\\nAll tests passed!")
"""
    return variant(replace={3: "def add(a, b):\n    return 0", 4: "weights = 0", **NO_SELF_CHECK},
                   insert=[(6, code)])


def kinds(exercises_dir: Path) -> dict:
    """{student: (notebook, expected status per question)}: one per kind of notebook."""
    return {
        "alice": (variant(insert=[(6, "import os, sys\nprint('KERNEL', sys.executable)\n"
                                      "print('CWD', sorted(os.listdir('.')))\n"
                                      "print('HOME', sorted(os.listdir(os.path.expanduser('~'))))\n"
                                      "print('PARAMS', FAST, SEED, DEVICE)")]), "ok ok"),
        ODD: (source_nb(), "ok ok"),
        "release": (nbformat.read(str(FIXTURES / "release" / f"{EXERCISE}.ipynb"), as_version=4),
                    "error error"),
        "wrong": (variant(replace=WRONG), "failed failed"),
        "missing_weights": (variant(replace={4: "X = 1", **NO_SELF_CHECK}), "ok failed"),
        "crash": (variant(insert=[(4, "1 / 0")]), "error error"),
        "crash_object": (variant(insert=[(4, "raise KeyError(object())")]), "error error"),
        "infinite_loop": (variant(insert=[(4, SPAWN_AND_HANG)]), "timeout timeout"),
        "os_exit": (variant(insert=[(4, "import os\nos._exit(1)")]), "error error"),
        "sys_exit": (variant(insert=[(4, "import sys\nsys.exit()")]), "error error"),
        "huge_output": (variant(insert=[(4, "for i in range(60_000):\n    print('x' * 200)\n"
                                            "print('y' * 5_000_000)")]), "ok ok"),
        "cheat_custom_exc": (variant(insert=[(3, "get_ipython().set_custom_exc("
                                                 "(BaseException,), lambda *a, **k: None)"),
                                             (4, "raise ValueError('hidden')")]), "error error"),
        "cheat_patch": (variant(replace={3: CHEAT_PATCH, 4: "pass", 5: "pass"}), "failed failed"),
        "cheat_files": (_cheat_files(exercises_dir), "failed failed"),
    }


def write_invalid(folder: Path) -> dict:
    (folder / "bad_json.ipynb").write_text("{not json", encoding="utf-8")
    (folder / "empty.ipynb").write_text("", encoding="utf-8")
    nbformat.write(new_notebook(cells=[]), str(folder / "zero_cells.ipynb"))
    (folder / "bad_schema.ipynb").write_text(json.dumps(
        {"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (folder / "notes.txt").write_text("not a notebook")
    return {s: "invalid invalid" for s in INVALID}


# ------------------------------------------------------------------ attacks on the sandbox

def _read_secrets(exercises: Path, subs: Path, out: Path) -> str:
    # Copy the solution from wherever it can be found; print what was visible.
    places = [exercises / "source" / "*", exercises / "grading" / "*", REPO / "exercises" / "*" / "*",
              REPO / ".git" / "*", subs / "*", out / "*", "/tmp/course-grade-*/*/work/*"]
    return f"""
import glob, json, os
own = os.getcwd()
found = sorted(p for pattern in {[str(p) for p in places]!r} for p in glob.glob(pattern)
               if not p.startswith(own))
print("FOUND", found)
for path in [{str(exercises / "source" / f"{EXERCISE}.ipynb")!r}, {str(subs / "good.ipynb")!r}]:
    try:
        cells = json.load(open(path))["cells"]
    except OSError as exc:
        print("UNREADABLE", type(exc).__name__)
        continue
    for cell in cells[3:5]:
        exec("".join(cell["source"]))
"""


def write_targets(exercises: Path) -> list[Path]:
    """Files outside the submission that the write_files attack tries to change."""
    return [REPO / "course_utils" / "__init__.py", REPO / f"{TOKEN}.txt",
            REPO / "exercises" / "grading" / f"{TOKEN}.py", exercises / "grading" / f"{EXERCISE}.py",
            Path(sys.prefix) / f"{TOKEN}.pth", Path("/var/tmp") / TOKEN]


def _write_files(exercises: Path) -> str:
    kept = [Path("/tmp") / TOKEN, Path("/dev/shm") / TOKEN, f"~/{TOKEN}", f"../work/{TOKEN}"]
    return f"""
import os, subprocess, sys
for path in {[str(p) for p in write_targets(exercises)]!r}:
    try:
        with open(path, "a") as fh:
            fh.write("hacked = True\\n")
        print("WROTE", path)
    except OSError as exc:
        print("DENIED", path, type(exc).__name__)
for path in {[str(p) for p in kept]!r}:
    open(os.path.expanduser(path), "w").write("left behind")
    print("PRIVATE", path)
# a daemon with a clean environment, detached from the process tree and the session
code = "import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    time.sleep(300)"
subprocess.run([sys.executable, "-c", code, {TOKEN!r}], env={{}})
"""


def _network(port: int, udp_port: int) -> str:
    return f"""
import socket
for target in [("127.0.0.1", {port}), ("1.1.1.1", 53), (socket.gethostname(), {port})]:
    try:
        socket.create_connection(target, timeout=3).sendall(b"leak")
        print("CONNECTED", target)
    except OSError as exc:
        print("NO NETWORK", target, type(exc).__name__)
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"leak", ("127.0.0.1", {udp_port}))
except OSError as exc:
    print("NO UDP", type(exc).__name__)
"""


# in 4 MB pieces: one 200 MB bytes object would hit the memory limit first
WRITE = """
import os
for name in {files!r}:
    with open(os.path.expanduser(name), "wb") as fh:
        for _ in range({mb} // 4):
            fh.write(b"x" * 4_000_000)
"""

SYMLINK_EXFIL = """
import os, signal
os.symlink({source!r}, "../grader/executed.ipynb")
os.symlink({hidden!r}, "../grader/result.json")
os.kill(os.getppid(), signal.SIGKILL)  # the worker: it never writes its own files
"""

GRADED_OBJECTS = """
import numpy as np  # numpy only: torch would not fit in this batch's 256 MB
from pathlib import Path
import course_utils
data = Path(course_utils.__file__).resolve().parent.parent / "data" / "objects.npz"
with np.load(data) as raw:
    print("TEST ROWS", int(raw["split"].sum()), "REDACTED", "redacted" in raw.files, "ROWS", len(raw["split"]))
"""

ENV_LEAK = f"""
import os
print("ENV NAMES", sorted(os.environ))
print("TOKEN", os.environ.get({TOKEN_VAR!r}, "absent"))
raise ValueError(os.environ.get({TOKEN_VAR!r}, "absent"))
"""

# numpy.savez patched to write an npz whose two arrays expand to 256 MB each (a few hundred kB on disk)
NPZ_BOMB = """
import zipfile
import numpy as np
def _bomb(path, **arrays):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name in arrays:
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array_header_1_0(
                    fh, {"descr": "<f8", "fortran_order": False, "shape": (2**25,)})
                for _ in range(64):
                    fh.write(bytes(4 << 20))
np.savez = _bomb
"""

HOST_FILES = """
import os
for path in {paths!r}:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(16)
        print("VISIBLE", path)
    except OSError as exc:
        print("HIDDEN", path, type(exc).__name__)
"""

# twice the limit written to the private /dev/shm (tmpfs: host memory that no RSS shows), then held
SHM_FILL = """
try:
    for i in range({mb} * 2 // 4):  # 4 MB files: each under the file-size limit (--disk-mb)
        with open(f"/dev/shm/fill{{i}}", "wb") as fh:
            fh.write(b"x" * (4 << 20))
except OSError:
    pass  # the tmpfs is full at the limit: the job still holds that much memory
"""


def attacks(exercises: Path, subs: Path, out: Path, ports) -> dict:
    """{student: (notebook, expected statuses)}: one per attack on the sandbox."""
    source = str(exercises / "source" / f"{EXERCISE}.ipynb")
    hidden = str(exercises / "grading" / f"{EXERCISE}.py")
    return {
        "good": (variant(), "ok ok"),
        "read_secrets": (variant(WRONG, attack=_read_secrets(exercises, subs, out)), "failed failed"),
        "write_files": (variant(attack=_write_files(exercises)), "ok ok"),
        "network": (variant(attack=_network(*ports)), "ok ok"),
        "memory": (variant(attack="big = np.ones(2**30 // 8)  # 1 GB"), "error error"),
        "procs": (variant(attack=f"import subprocess\nkids = [subprocess.Popen(['sleep', '300', "
                                 f"'{TOKEN}']) for _ in range(64)]"), "error error"),
        "disk_file": (variant(attack=WRITE.format(files=["big"], mb=200)), "error error"),
        "disk_tmp": (variant(attack=WRITE.format(files=["/tmp/big"], mb=200)), "error error"),
        "disk_many": (variant(attack=WRITE.format(files=[f"~/f{i}" for i in range(10)], mb=8)),
                      "error error"),
        "graded_objects": (variant(attack=GRADED_OBJECTS), "ok ok"),
        "symlink_exfil": (variant(attack=SYMLINK_EXFIL.format(source=source, hidden=hidden)),
                          "error error"),
        "env_token": (variant(attack=ENV_LEAK), "error error"),
        "npz_bomb": (variant(attack=NPZ_BOMB), "error error"),
        "host_files": (variant(attack=HOST_FILES.format(paths=HOST_PATHS)), "ok ok"),
    }


class Listener:
    """TCP and UDP on 127.0.0.1, free ports; records whatever arrives."""

    def __init__(self):
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.got: list = []
        for target in (self._accept, self._receive):
            threading.Thread(target=target, daemon=True).start()

    @property
    def ports(self):
        return self.tcp.getsockname()[1], self.udp.getsockname()[1]

    def _accept(self):
        while True:
            try:
                conn, addr = self.tcp.accept()
            except OSError:
                return
            self.got.append(("tcp", addr))
            conn.close()

    def _receive(self):
        while True:
            try:
                self.got.append(("udp", self.udp.recvfrom(100)))
            except OSError:
                return

    def close(self):
        self.tcp.close()
        self.udp.close()


def git_status() -> list[str]:
    """``git status --porcelain``, less edits of tracked files' content (" M") and new files of
    other work on this shared checkout ("??" outside the paths an attack writes to)."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines()
            if not line.startswith(" M") and (not line.startswith("??") or TOKEN in line)]


def fingerprints(paths) -> dict:
    return {str(p): (p.read_bytes() if p.is_file() else None) for p in paths}
