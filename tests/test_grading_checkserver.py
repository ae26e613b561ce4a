"""Checks run in processes forked from a warm server: isolated, killable, logged."""
import json
import os
import textwrap

import psutil
import pytest

from course_utils.grading import checkserver
from course_utils.grading.limits import Job, Limits, usable_cgroups

HIDDEN = textwrap.dedent('''
    import os, subprocess, sys, time
    import course_utils.grading.toolkit as toolkit

    def check_clean(answers):
        # a fork of the clean server: what an earlier check process did is not here
        assert not hasattr(toolkit, "LEFT_BEHIND"), "state leaked between check processes"
        toolkit.LEFT_BEHIND = True
        print("hello from a check")
        return True, "clean"

    def check_env(answers):
        assert os.environ.get("COURSE_CHECK_ENV") == "from this call", "the call's env did not arrive"
        assert os.environ.get("COURSE_GRADE_RUN") == "test-marker"

    def check_crash(answers):
        os._exit(7)

    def check_hog(answers):
        hog = bytearray(600 << 20)
        for i in range(0, len(hog), 4096):  # touch every page: 600 MB resident
            hog[i] = 1
        time.sleep(5)

    def check_hang_with_child(answers):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with open("child.pid", "w") as fh:
            fh.write(str(child.pid))
        while True:
            time.sleep(0.1)
''')


def _run(tmp_path, questions, timeout=60.0, job=None):
    hidden = tmp_path / "hidden_tests.py"
    hidden.write_text(HIDDEN)
    (tmp_path / "answers.json").write_text(json.dumps({"answers": {}, "arrays": []}))
    results = tmp_path / "results.jsonl"
    results.unlink(missing_ok=True)
    rc, timed_out = checkserver.run_checks(
        [str(hidden), str(tmp_path / "answers"), str(results), *questions], cwd=tmp_path,
        env=dict(os.environ, COURSE_CHECK_ENV="from this call"), log_path=tmp_path / "check.log",
        timeout=timeout, marker="test-marker", job=job)
    lines = results.read_text().splitlines() if results.exists() else []
    return rc, timed_out, [json.loads(line) for line in lines]


pytestmark = pytest.mark.skipif(not checkserver.available(), reason="no forkserver on this OS")


def test_each_check_process_starts_clean_and_logs(tmp_path):
    for _ in range(2):
        rc, timed_out, rows = _run(tmp_path, ["clean", "env"])
        assert (rc, timed_out) == (0, False)
        assert [r["status"] for r in rows] == ["ok", "ok"], rows
    assert "hello from a check" in (tmp_path / "check.log").read_text()


def test_a_crash_is_reported_with_its_exit_code(tmp_path):
    rc, timed_out, rows = _run(tmp_path, ["clean", "crash"])
    assert (rc, timed_out) == (7, False)
    assert [r["question"] for r in rows] == ["clean"]  # finished questions keep their results


def test_a_hung_check_is_killed_with_what_it_started(tmp_path):
    rc, timed_out, rows = _run(tmp_path, ["hang_with_child"], timeout=3.0)
    assert (rc, timed_out) == (None, True)
    pid = int((tmp_path / "child.pid").read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_unreadable_answers_are_this_submissions_error(tmp_path):
    (tmp_path / "answers.json").write_text("not json")
    hidden = tmp_path / "hidden_tests.py"
    hidden.write_text(HIDDEN)
    results = tmp_path / "results.jsonl"
    rc, _ = checkserver.run_checks([str(hidden), str(tmp_path / "answers"), str(results), "clean"],
                                   cwd=tmp_path, env=dict(os.environ), log_path=tmp_path / "check.log",
                                   timeout=60, marker="m2")
    row = json.loads(results.read_text().splitlines()[0])
    assert rc == 0 and row["status"] == "error" and "could not be read" in row["detail"]


@pytest.mark.parametrize("enforcer", ["cgroup", "watchdog"])
def test_a_check_over_the_memory_limit_is_stopped(tmp_path, enforcer):
    """The check process has the submission's memory limit: a cgroup where the grader may make
    one, else the watchdog, which counts only the pages the fork does not share with the server."""
    limits = Limits(memory_mb=256)
    parents = usable_cgroups(limits) if enforcer == "cgroup" else ()
    if enforcer == "cgroup" and not parents:
        pytest.skip("the grader may not create cgroups here")
    with Job(parents, limits, unique=True) as job:
        rc, timed_out, rows = _run(tmp_path, ["clean", "hog", "env"], job=job)
        over = job.exceeded()
    assert over == "memory limit 256 MB exceeded" and not timed_out, (rc, over)
    assert [r["question"] for r in rows] == ["clean"]  # stopped at the hog
