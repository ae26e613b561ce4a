"""The sandbox, attack by attack (docs/GRADING.md, "Threat model").

Every attack is one submission of ONE batch, graded with the default sandbox next to a correct
submission. The limits are small (256 MB, 32 processes, 64 MB of disk) so that the memory,
process and disk attacks end in seconds; the defaults go through the same code. Skipped only
where bubblewrap truly cannot run, with the reason.
"""
from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from course_utils.config import repo_root
from conftest import leftover_processes
from course_utils.grading import cli, limits, sandbox

FIXTURES = Path(__file__).parent / "grading_fixtures" / "exercises"
EXERCISE = "ex01_add"
REPO = repo_root()
TOKEN = f"sandbox-attack-{secrets.token_hex(4)}"  # in every file name and process an attack makes
LIMITS = ["--memory-mb", "256", "--max-procs", "32", "--disk-mb", "64"]
WRONG = {3: "def add(a, b):\n    return a - b", 4: "import numpy as np\nweights = np.zeros(3)",
         5: "pass"}


def _why_no_bwrap() -> str | None:
    try:
        sandbox.prepare("bwrap")
    except sandbox.SandboxError as exc:
        return str(exc)
    return None


NO_BWRAP = _why_no_bwrap()
if NO_BWRAP:
    print(f"test_grading_sandbox: bubblewrap cannot run here: {NO_BWRAP}", file=sys.stderr)
needs_bwrap = pytest.mark.skipif(NO_BWRAP is not None, reason=f"bwrap cannot run: {NO_BWRAP}")


def _nb(attack: str = "", replace=None):
    """The fixture's solution notebook, cells replaced, with ``attack`` as a last cell."""
    nb = nbformat.read(str(FIXTURES / "source" / f"{EXERCISE}.ipynb"), as_version=4)
    for index, code in (replace or {}).items():
        nb.cells[index].source = code
    if attack:
        nb.cells.append(new_code_cell(attack))
    return nb


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


def _write_files(exercises: Path) -> str:
    targets = [REPO / "course_utils" / "__init__.py", REPO / f"{TOKEN}.txt",
               REPO / "exercises" / "grading" / f"{TOKEN}.py", exercises / "grading" / f"{EXERCISE}.py",
               Path(sys.prefix) / f"{TOKEN}.pth", Path("/var/tmp") / TOKEN]
    kept = [Path("/tmp") / TOKEN, Path("/dev/shm") / TOKEN, f"~/{TOKEN}", f"../work/{TOKEN}"]
    return f"""
import os, subprocess, sys
for path in {[str(p) for p in targets]!r}:
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


def _submissions(exercises: Path, subs: Path, out: Path, ports) -> dict:
    """{student: (notebook, expected statuses)}."""
    source = str(exercises / "source" / f"{EXERCISE}.ipynb")
    return {
        "good": (_nb(), "ok ok"),
        "read_secrets": (_nb(_read_secrets(exercises, subs, out), WRONG), "failed failed"),
        "write_files": (_nb(_write_files(exercises)), "ok ok"),
        "network": (_nb(_network(*ports)), "ok ok"),
        "memory": (_nb("big = np.ones(2**30 // 8)  # 1 GB"), "error error"),
        "procs": (_nb(f"import subprocess\nkids = [subprocess.Popen(['sleep', '300', '{TOKEN}']) "
                      "for _ in range(64)]"), "error error"),
        "disk_file": (_nb(WRITE.format(files=["big"], mb=200)), "error error"),
        "disk_tmp": (_nb(WRITE.format(files=["/tmp/big"], mb=200)), "error error"),
        "disk_many": (_nb(WRITE.format(files=[f"~/f{i}" for i in range(10)], mb=8)), "error error"),
        "graded_objects": (_nb(GRADED_OBJECTS), "ok ok"),
        "symlink_exfil": (_nb(SYMLINK_EXFIL.format(
            source=source, hidden=str(exercises / "grading" / f"{EXERCISE}.py"))), "error error"),
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


def _git_status() -> list[str]:
    """``git status --porcelain``, less edits of tracked files' content (" M") and notebooks/:
    other work on a shared checkout may edit those while this batch runs. The files the attack
    writes to are compared byte for byte instead (``_fingerprints``)."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines()
            if not line.startswith(" M") and not line[3:].startswith("notebooks/")]


def _fingerprints(paths) -> dict:
    return {str(p): (p.read_bytes() if p.is_file() else None) for p in paths}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if NO_BWRAP:
        pytest.skip(f"bwrap cannot run: {NO_BWRAP}")
    base = tmp_path_factory.mktemp("sandbox")
    exercises, subs, out = base / "exercises", base / "subs", base / "out"
    shutil.copytree(FIXTURES, exercises)
    subs.mkdir()
    listener = Listener()
    expected = {}
    for student, (nb, statuses) in _submissions(exercises, subs, out, listener.ports).items():
        nbformat.write(nb, str(subs / f"{student}.ipynb"))
        expected[student] = statuses
    watched = [exercises / "grading" / f"{EXERCISE}.py", REPO / "course_utils" / "__init__.py",
               REPO / "exercises" / "grading" / f"{TOKEN}.py", REPO / f"{TOKEN}.txt"]
    before = {"git": _git_status(), "files": _fingerprints(watched), "tmp": set(os.listdir("/tmp"))}
    try:
        rc = cli.main([EXERCISE, str(subs), "--out", str(out), "--timeout", "60", "--jobs", "2",
                       "--exercises-dir", str(exercises), *LIMITS])
    finally:
        listener.close()
    assert rc == 0
    after = {"git": _git_status(), "files": _fingerprints(watched), "tmp": set(os.listdir("/tmp"))}
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {"rows": rows, "summary": summary, "expected": expected, "out": out,
            "before": before, "after": after, "network": listener.got}


def _rows(graded, student):
    return [r for r in graded["rows"] if r["student"] == student]


def _output(graded, student) -> str:
    """What the notebook printed (not its source, which names the same words)."""
    nb = nbformat.read(str(graded["out"] / "executed" / f"{student}.ipynb"), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_every_submission_gets_its_own_status(graded):
    got = {}
    for r in graded["rows"]:
        got.setdefault(r["student"], []).append(r["status"])
    assert {s: " ".join(v) for s, v in got.items()} == graded["expected"]
    assert graded["summary"]["students"]["good"]["points"] == 5


def test_solutions_and_other_submissions_are_invisible(graded):
    text = _output(graded, "read_secrets")
    assert "FOUND []" in text and text.count("UNREADABLE") == 2
    assert all(float(r["points"]) == 0 for r in _rows(graded, "read_secrets"))


def test_files_outside_the_submission_are_read_only(graded):
    text = _output(graded, "write_files")
    assert "WROTE" not in text and text.count("DENIED") == 6, text
    assert graded["before"]["git"] == graded["after"]["git"]
    assert graded["before"]["files"] == graded["after"]["files"]
    assert not any("changed while grading" in n for n in graded["summary"]["notes"])


def test_nothing_is_left_behind(graded):
    assert "PRIVATE" in _output(graded, "write_files")  # it did write /tmp, /dev/shm, HOME
    new = graded["after"]["tmp"] - graded["before"]["tmp"]
    assert not [n for n in new if TOKEN in n or n.startswith("course-grade-")], new
    for folder in ("/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"), str(REPO)):
        assert not list(Path(folder).glob(f"*{TOKEN}*")), folder


def test_no_network(graded):
    text = _output(graded, "network")
    assert "CONNECTED" not in text and text.count("NO NETWORK") == 3
    assert graded["network"] == []


@pytest.mark.parametrize("student, detail", [
    ("memory", "memory limit 256 MB exceeded"),
    ("procs", "process limit 32 reached"),
    ("disk_file", "disk limit 64 MB exceeded"),
    ("disk_tmp", "disk limit 64 MB exceeded"),
    ("disk_many", "disk limit 64 MB exceeded"),
])
def test_limits_are_named(graded, student, detail):
    assert {(r["status"], r["detail"]) for r in _rows(graded, student)} == {("error", detail)}


def test_planted_symlinks_are_not_followed(graded):
    assert not (graded["out"] / "executed" / "symlink_exfil.ipynb").exists()
    details = " ".join(r["detail"] for r in _rows(graded, "symlink_exfil"))
    assert "grader worker failed" in details and "QUESTIONS" not in details


def test_no_process_survives(graded):
    assert not leftover_processes(TOKEN)


def test_summary_records_the_sandbox(graded):
    box = graded["summary"]["sandbox"]
    assert box["kind"] == "bwrap" and box["network"] == "none"
    assert (box["memory_mb"], box["max_procs"], box["disk_mb"]) == (256, 32, 64)
    assert set(box["enforced_by"]) == {"memory", "processes", "disk"}


def test_none_is_recorded_and_printed(tmp_path, capsys):
    """--sandbox none grades without isolation: a submission can then rewrite the hidden tests
    on disk (the batch used its snapshot, and warns)."""
    subs, exercises = tmp_path / "subs", tmp_path / "exercises"
    shutil.copytree(FIXTURES, exercises)
    subs.mkdir()
    hidden = exercises / "grading" / f"{EXERCISE}.py"
    nbformat.write(_nb(f"open({str(hidden)!r}, 'a').write('# changed')"), str(subs / "a.ipynb"))
    assert cli.main([EXERCISE, str(subs), "--out", str(tmp_path / "out"), "--timeout", "60",
                     "--exercises-dir", str(exercises), "--sandbox", "none"]) == 0
    captured = capsys.readouterr()
    assert "sandbox none" in captured.out and "sandbox: NONE" in captured.err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["sandbox"]["kind"] == "none" and summary["sandbox"]["network"] == "host"
    assert summary["students"]["a"]["points"] == 5
    assert any("changed while grading" in n for n in summary["notes"])


def test_missing_bwrap_stops_with_advice(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sandbox, "find_bwrap", lambda: None)
    nbformat.write(_nb(), str(tmp_path / "a.ipynb"))
    assert cli.main([EXERCISE, str(tmp_path), "--out", str(tmp_path / "out"),
                     "--exercises-dir", str(FIXTURES)]) == 2
    err = capsys.readouterr().err
    assert "bubblewrap was not found" in err and "--sandbox none" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("system", ["darwin", "win32"])
def test_other_systems_stop_with_advice(monkeypatch, system):
    monkeypatch.setattr(sys, "platform", system)
    with pytest.raises(sandbox.SandboxError, match="only on Linux.*--sandbox none"):
        sandbox.prepare("auto")


def test_a_bwrap_that_fails_stops_with_its_error(monkeypatch):
    monkeypatch.setattr(sandbox, "find_bwrap", lambda: shutil.which("false") or "/bin/false")
    with pytest.raises(sandbox.SandboxError, match="(?s)could not start.*--sandbox none"):
        sandbox.prepare("bwrap")


@needs_bwrap
def test_hiding_a_folder_the_grader_needs_is_refused():
    with pytest.raises(sandbox.SandboxError, match="cannot hide"):
        sandbox.prepare("bwrap", hide=[REPO])


MOUNTINFO_V1 = """\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
OWN_V1 = "8:pids:/\n4:memory:/jobs/a1\n0::/\n"


def test_cgroup_places_v1():
    parents = limits.cgroup_parents(MOUNTINFO_V1, OWN_V1)
    assert parents == [limits.CgroupParent(1, "/sys/fs/cgroup/memory/jobs/a1", ("memory",)),
                       limits.CgroupParent(1, "/sys/fs/cgroup/pids", ("pids",))]


def test_cgroup_places_v2(tmp_path):
    own = tmp_path / "user.slice" / "grader.scope"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpu memory pids\n")
    mountinfo = f"30 23 0:26 / {tmp_path} rw - cgroup2 cgroup2 rw\n"
    parents = limits.cgroup_parents(mountinfo, "0::/user.slice/grader.scope\n")
    assert parents == [limits.CgroupParent(2, str(own), ("memory", "pids"))]
    assert limits.cgroup_parents(mountinfo, "0::/elsewhere\n") == []  # no controllers there


@needs_bwrap
def test_without_cgroups_the_watchdog_enforces_the_limits(tmp_path, monkeypatch):
    """Where the grader may not create cgroups (no root; cgroup v2 without delegation)."""
    monkeypatch.setattr(sandbox, "usable_cgroups", lambda limits: ())
    subs = tmp_path / "subs"
    subs.mkdir()
    spawn = f"import subprocess\nkids = [subprocess.Popen(['sleep', '300', '{TOKEN}']) for _ in range(64)]"
    for student, attack in {"good": "", "memory": "big = np.ones(2**30 // 8)",
                            "procs": spawn}.items():
        # the watchdog samples: an attack that ends at once could slip between two samples
        nbformat.write(_nb(attack + ("\nimport time\ntime.sleep(30)" if attack else "")),
                       str(subs / f"{student}.ipynb"))
    out = tmp_path / "out"
    assert cli.main([EXERCISE, str(subs), "--out", str(out), "--timeout", "60", "--jobs", "2",
                     "--exercises-dir", str(FIXTURES), "--memory-mb", "512", "--max-procs", "32",
                     "--disk-mb", "64"]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["sandbox"]["enforced_by"]["memory"] == "watchdog"
    assert summary["sandbox"]["enforced_by"]["processes"] == "watchdog"
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        got = {(r["student"], r["status"], r["detail"]) for r in csv.DictReader(fh)
               if r["student"] != "good" or r["status"] != "ok"}
    assert got == {("memory", "error", "memory limit 512 MB exceeded"),
                   ("procs", "error", "process limit 32 reached")}
    assert summary["students"]["good"]["points"] == 5


def test_the_graded_objects_are_not_in_the_kernel(graded):
    """ex01/ex02 grade on the test objects: inside the sandbox data/objects.npz has none of them."""
    text = _output(graded, "graded_objects")
    assert "TEST ROWS 0 REDACTED True" in text, text


def test_the_redacted_objects_load_except_test(tmp_path, monkeypatch):
    """The registry accepts the redacted copy (its sha256 from the grader) and says why test is empty."""
    from course_utils import datasets
    from course_utils.datafiles import DataError
    from course_utils.grading import redact

    (tmp_path / "data").mkdir()
    path, sha = redact.redacted_objects(tmp_path)
    path.rename(tmp_path / "data" / "objects.npz")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(redact.SHA_ENV, json.dumps({"objects.npz": sha}))
    full_val = len(datasets.load_dataset("objects", "val", image_size=16))
    assert full_val > 0
    with pytest.raises(DataError, match="not available"):
        datasets.load_dataset("objects", "test", image_size=16)
    monkeypatch.delenv(redact.SHA_ENV)
    with pytest.raises(DataError, match="corrupt"):  # without the grader's word it is just a bad file
        datasets.load_dataset("objects", "val", image_size=16)
