"""The sandbox, attack by attack (docs/GRADING.md, "Threat model").

Every attack is one submission of the shared fixture batch (grading_fixtures/batches.py:
``fixture_batch``), graded with the default sandbox next to correct submissions, with small
limits (256 MB, 32 processes, 64 MB of disk) so that the memory, process and disk attacks end in
seconds; the defaults go through the same code. Skipped only where bubblewrap truly cannot run,
with the reason.
"""
from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import leftover_processes
from course_utils.grading import cli, limits, sandbox
from grading_fixtures.batches import read_rows, why_no_bwrap
from grading_fixtures.submissions import (
    EXERCISE, FIXTURES, HOST_PATHS, REPO, SHM_FILL, TOKEN, TOKEN_VALUE, TOKEN_VAR, variant,
)

needs_bwrap = pytest.mark.skipif("why_no_bwrap() is not None", reason="bwrap cannot run here")
ATTACKS = ["good", "read_secrets", "write_files", "network", "memory", "procs", "disk_file",
           "disk_tmp", "disk_many", "graded_objects", "symlink_exfil", "env_token", "npz_bomb",
           "host_files"]
# What a kernel's environment may hold: the allow-list, and what the grader, bwrap and
# ipykernel set for the kernel
ALLOWED_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_", "TMPDIR", "TZ", "COURSE_", "JUPYTER_",
               "PYTHON", "PYDEVD_", "OMP_", "MKL_", "MPLBACKEND", "CUDA_VISIBLE_DEVICES",
               "JPY_", "CLICOLOR", "FORCE_COLOR", "TERM", "PAGER", "GIT_PAGER", "PWD")


@pytest.fixture
def graded(fixture_batch):
    return fixture_batch


def _rows(graded, student):
    return [r for r in graded["rows"] if r["student"] == student]


def _output(graded, student) -> str:
    """What the notebook printed (not its source, which names the same words)."""
    nb = nbformat.read(str(graded["out"] / "executed" / f"{student}.ipynb"), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_every_attack_gets_its_own_status(graded):
    got = {}
    for r in graded["rows"]:
        got.setdefault(r["student"], []).append(r["status"])
    assert {s: " ".join(got[s]) for s in ATTACKS} == {s: graded["expected"][s] for s in ATTACKS}
    assert graded["summary"]["students"]["good"]["points"] == 5


def test_solutions_and_other_submissions_are_invisible(graded):
    text = _output(graded, "read_secrets")
    assert "FOUND []" in text and text.count("UNREADABLE") == 2
    assert all(float(r["points"]) == 0 for r in _rows(graded, "read_secrets"))


def test_files_outside_the_submission_are_read_only(graded):
    text = _output(graded, "write_files")
    tried = [line.split() for line in text.splitlines() if line.startswith(("WROTE", "DENIED"))]
    assert len(tried) == 6, text
    # A write the sandbox lets through can only land in its own private /tmp: a checkout under /tmp (where a CI
    # clone may be) is bound back into that tmpfs, so its root folder is writable there and nowhere else.
    reached_host = [path for word, path, *_ in tried if word == "WROTE" and Path(path).exists()]
    assert not reached_host, text
    assert all(path.startswith("/tmp/") for word, path, *_ in tried if word == "WROTE"), text
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


def test_the_graders_environment_never_reaches_a_notebook(graded):
    """A token in the grader's environment: no cell sees it, so no row, feedback file or executed
    notebook can show it; the kernel's environment holds only the allow-listed names."""
    text = _output(graded, "env_token")
    assert "TOKEN absent" in text, text
    names = ast.literal_eval(text.split("ENV NAMES ", 1)[1].splitlines()[0])
    assert TOKEN_VAR not in names
    assert not [n for n in names if not n.startswith(ALLOWED_ENV)], names
    for path in graded["out"].rglob("*"):
        if path.is_file():
            assert TOKEN_VALUE not in path.read_text(encoding="utf-8", errors="replace"), path
    assert {r["detail"] for r in _rows(graded, "env_token")} == {"cell [7] raised ValueError: absent"}


def test_an_npz_bomb_is_refused_before_it_expands(graded):
    assert {(r["status"], r["detail"]) for r in _rows(graded, "npz_bomb")} == {
        ("error", "answers too large: 512 MB expanded, limit 64 MB")}
    feedback = (graded["out"] / "feedback" / "npz_bomb.md").read_text(encoding="utf-8")
    assert "answers too large: 512 MB expanded, limit 64 MB" in feedback


def test_host_folders_outside_the_allow_list_are_invisible(graded):
    text = _output(graded, "host_files")
    assert "VISIBLE" not in text and text.count("HIDDEN") == len(HOST_PATHS), text


@needs_bwrap
def test_the_limits_summary_json_names_are_the_ones_in_force(tmp_path):
    """What summary.json says enforces each limit is true: where it names a cgroup, a process
    the sandbox starts lives in a cgroup with exactly those limits; the watchdog otherwise."""
    box = sandbox.prepare("bwrap", limits.Limits(256, 32, 64), scratch=tmp_path, redact=False)
    said = box.describe()
    assert (said["kind"], said["network"], said["memory_mb"], said["max_procs"], said["disk_mb"]) \
        == ("bwrap", "none", 256, 32, 64)
    for name in sandbox.WRITABLE:
        (tmp_path / name).mkdir()
    with box.enter(tmp_path) as run:
        proc = subprocess.Popen(run.wrap(["sleep", "30"]), env=run.env({"PATH": "/usr/bin:/bin"}))
        try:
            found = _limits_of_a_sleeper(proc.pid)
        finally:
            proc.kill()
            proc.wait()
    for limit, controller, value in (("memory", "memory", 256 << 20), ("processes", "pids", 32)):
        if said["enforced_by"][limit].startswith("cgroup"):
            assert found.get(controller) == value, (limit, said["enforced_by"], found)
        else:
            assert said["enforced_by"][limit] == "watchdog" and controller not in found


def _limits_of_a_sleeper(root: int) -> dict:
    """{controller: limit} of the cgroups the ``sleep`` below ``root`` (bwrap) is in, read
    from the host's side."""
    import psutil

    for _ in range(100):
        sleepers = [p for p in psutil.Process(root).children(recursive=True) if p.name() == "sleep"]
        if sleepers:
            break
        time.sleep(0.05)
    own = Path(f"/proc/{sleepers[0].pid}/cgroup").read_text()
    with open("/proc/self/mountinfo") as fh:
        mounts = fh.read()
    found = {}
    for parent in limits.cgroup_parents(mounts, own):
        for controller in parent.controllers:
            name = {"memory": "memory.max" if parent.version == 2 else "memory.limit_in_bytes",
                    "pids": "pids.max"}[controller]
            try:  # the root cgroup has no limit files
                value = (Path(parent.path) / name).read_text().strip()
            except OSError:
                continue
            if value not in ("max", "9223372036854771712"):  # unlimited (v2, v1)
                found[controller] = int(value)
    return found


def test_none_is_recorded_and_printed(tmp_path, capsys):
    """--sandbox none grades without isolation: a submission can then rewrite the hidden tests
    on disk (the batch used its snapshot, and warns)."""
    subs, exercises = tmp_path / "subs", tmp_path / "exercises"
    shutil.copytree(FIXTURES, exercises)
    subs.mkdir()
    hidden = exercises / "grading" / f"{EXERCISE}.py"
    nbformat.write(variant(attack=f"open({str(hidden)!r}, 'a').write('# changed')"),
                   str(subs / "a.ipynb"))
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
    nbformat.write(variant(), str(tmp_path / "a.ipynb"))
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
    """Where the grader may not create cgroups (no root; cgroup v2 without delegation): the
    watchdog counts the process tree's memory and the private tmpfs folders, and its threads."""
    monkeypatch.setattr(sandbox, "usable_cgroups", lambda limits: ())
    subs = tmp_path / "subs"
    subs.mkdir()
    spawn = f"import subprocess\nkids = [subprocess.Popen(['sleep', '300', '{TOKEN}']) for _ in range(64)]"
    for student, attack in {"good": "", "memory": "big = np.ones(2**30 // 8)", "procs": spawn,
                            "shm": SHM_FILL.format(mb=256)}.items():
        # the watchdog samples every 0.25 s: an attack that ended at once could slip between two
        # samples, so each holds what it took for a few seconds (it is stopped long before)
        nbformat.write(variant(attack=attack + ("\nimport time\ntime.sleep(8)" if attack else "")),
                       str(subs / f"{student}.ipynb"))
    out = tmp_path / "out"
    assert cli.main([EXERCISE, str(subs), "--out", str(out), "--timeout", "60", "--jobs", "2",
                     "--exercises-dir", str(FIXTURES), "--memory-mb", "256", "--max-procs", "32",
                     "--disk-mb", "64"]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["sandbox"]["enforced_by"]["memory"] == "watchdog"
    assert summary["sandbox"]["enforced_by"]["processes"] == "watchdog"
    got = {(r["student"], r["status"], r["detail"]) for r in read_rows(out)
           if r["student"] != "good" or r["status"] != "ok"}
    assert got == {("memory", "error", "memory limit 256 MB exceeded"),
                   ("procs", "error", "process limit 32 reached"),
                   ("shm", "error", "memory limit 256 MB exceeded")}
    assert summary["students"]["good"]["points"] == 5


def test_the_graded_objects_are_not_in_the_kernel(graded):
    """ex01/ex02 grade on the test objects: inside the sandbox data/objects.npz has none of them."""
    text = _output(graded, "graded_objects")
    assert "TEST ROWS 0 REDACTED True" in text, text


def test_the_redacted_objects_load_except_test(tmp_path):
    """The grader's startup file (redact.py) teaches the unchanged data registry the redacted
    copy's sha256 and makes `test` say why it is empty; without it the copy is just a bad file."""
    from course_utils.grading import redact

    (tmp_path / "data").mkdir()
    path, sha = redact.redacted_objects(tmp_path)
    path.rename(tmp_path / "data" / "objects.npz")
    startup = tmp_path / "startup.py"
    startup.write_text(redact.startup_code(sha), encoding="utf-8")
    code = (
        "import sys\n"
        "if sys.argv[1] == 'hook':\n"
        f"    exec(open({str(startup)!r}).read())\n"
        "from course_utils import datasets\n"
        "from course_utils.datafiles import DataError\n"
        "for split in ('val', 'test'):\n"
        "    try:\n"
        "        print(split, len(datasets.load_dataset('objects', split, image_size=16)))\n"
        "    except DataError as exc:\n"
        "        print(split, 'DataError', exc)\n")
    env = dict(os.environ, COURSE_DATA_DIR=str(tmp_path / "data"), COURSE_CACHE_DIR=str(tmp_path / "c"))
    runs = {mode: subprocess.run([sys.executable, "-c", code, mode], env=env, capture_output=True,
                                 text=True, timeout=300) for mode in ("hook", "plain")}
    hooked, plain = (runs[m].stdout.splitlines() for m in ("hook", "plain"))
    assert hooked[0].startswith("val ") and int(hooked[0].split()[1]) > 0, runs["hook"].stderr[-2000:]
    assert hooked[1].startswith("test DataError") and "not available here" in hooked[1]
    assert all("corrupt" in line for line in plain), plain  # the registry alone refuses the copy
