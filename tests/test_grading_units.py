"""Fast, in-process tests of the grader's pieces (no kernels started)."""
from __future__ import annotations

import json
import sys
import time
from collections import OrderedDict

import numpy as np
import psutil
import pytest

from course_utils.grading import procs
from course_utils.grading.answers import AnswerMissing, build_collect_cell, load_answers
from course_utils.grading.checker import run_check
from course_utils.grading.release import strip_solutions
from course_utils.grading.spec import ExerciseError, load_exercise, parse_hidden
from course_utils.grading.submissions import load_submission

COLLECT = '''
def collect(ns):
    import numpy as np
    return {
        "sum": lambda: ns["add"](2, 3),
        "missing": lambda: ns["nope"],
        "broken": lambda: 1 / 0,
        "nested": lambda: {"w": np.arange(3.0), (1, 2): [np.float32(1.5), None, True]},
        "odict": lambda: ns["state"],
        "rigged": lambda: ns["Liar"](7.0),
        "objects": lambda: np.array([object()]),
        "module": lambda: np,
        "plain": 5,
    }
'''


def _run_cell(tmp_path, namespace, collect=COLLECT):
    base = str(tmp_path / "answers")
    exec(compile(build_collect_cell(collect, base), "<cell>", "exec"), namespace)
    return load_answers(base)


class Liar(float):
    def __eq__(self, other):
        return True


def test_answers_round_trip(tmp_path):
    ns = {"add": lambda a, b: a + b, "state": OrderedDict(b=np.ones(2), a=np.zeros(1)),
          "Liar": Liar}
    answers = _run_cell(tmp_path, ns)
    assert answers["sum"] == 5 and answers["plain"] == 5
    assert "_CourseGradeCollector" not in ns  # the cell cleans up after itself
    nested = answers["nested"]
    np.testing.assert_array_equal(nested["w"], np.arange(3.0))
    assert nested[(1, 2)] == [1.5, None, True]
    assert list(answers["odict"]) == ["b", "a"]  # order kept
    assert type(answers["rigged"]) is float and answers["rigged"] == 7.0  # no rigged __eq__
    with pytest.raises(AnswerMissing, match="does not define `nope`"):
        answers["missing"]
    with pytest.raises(AnswerMissing, match="ZeroDivisionError"):
        answers["broken"]
    with pytest.raises(AnswerMissing, match="objects"):
        answers["objects"]
    with pytest.raises(AnswerMissing, match="cannot send a module"):
        answers["module"]
    with pytest.raises(AnswerMissing, match="no answer `other`"):
        answers["other"]
    assert answers.get("missing") is None


def test_answers_file_is_plain_data(tmp_path):
    _run_cell(tmp_path, {"add": lambda a, b: a + b, "state": {}, "Liar": Liar})
    payload = json.loads((tmp_path / "answers.json").read_text())
    assert payload["format"] == 1 and payload["arrays"]
    with np.load(tmp_path / "answers.npz", allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)


@pytest.mark.parametrize("check, expected", [
    (lambda a: None, ("ok", "passed")),
    (lambda a: True, ("ok", "passed")),
    (lambda a: False, ("failed", "check failed")),
    (lambda a: (True, "fine"), ("ok", "fine")),
    (lambda a: (False, "too big\nsecond line"), ("failed", "too big")),
    (lambda a: a["missing"], ("failed", "no answer `missing` was collected from the notebook")),
    (lambda a: 1 / 0, ("error", "check raised ZeroDivisionError: division by zero")),
    (lambda a: 3, ("error", "check returned int; expected (bool, message)")),
    # what numpy comparisons give: numpy.bool_ counts as a bool, alone or in the pair
    (lambda a: np.bool_(True), ("ok", "passed")),
    (lambda a: np.float64(0.3) < 0.5, ("ok", "passed")),
    (lambda a: (np.bool_(False), "too far"), ("failed", "too far")),
    (lambda a: (np.float64(0.3) < 0.5, "close"), ("ok", "close")),
    (lambda a: np.float64(1.0), ("error", "check returned float64; expected (bool, message)")),
])
def test_run_check_outcomes(check, expected):
    from course_utils.grading.answers import Answers

    assert run_check(check, Answers()) == expected


def test_run_check_assertion_message():
    from course_utils.grading.answers import Answers

    def check(answers):
        assert answers["x"] == 2, "x should be 2"

    assert run_check(check, Answers(x=1)) == ("failed", "x should be 2")


HIDDEN_OK = 'QUESTIONS = {"q1": 1, "q2": 2.5}\ndef collect(ns):\n    return {}\n' \
            'def check_q1(a):\n    pass\ndef check_q2(a):\n    pass\n'


def test_parse_hidden_ok():
    questions, collect = parse_hidden(HIDDEN_OK)
    assert questions == {"q1": 1, "q2": 2.5}
    assert collect.startswith("def collect(ns):")


@pytest.mark.parametrize("text, message", [
    ("def collect(ns):\n    pass\n", "QUESTIONS"),
    ("QUESTIONS = dict(q1=1)\ndef collect(ns):\n    pass\n", "QUESTIONS"),
    ('QUESTIONS = {"q1": 0}\ndef collect(ns):\n    pass\ndef check_q1(a):\n    pass\n', "QUESTIONS"),
    ('QUESTIONS = {"q1": 1}\ndef check_q1(a):\n    pass\n', "collect"),
    ('QUESTIONS = {"q1": 1}\ndef collect(ns):\n    pass\n', "check_q1"),
    ("def collect(ns:\n", "syntax error"),
])
def test_parse_hidden_errors(text, message):
    with pytest.raises(ExerciseError, match=message):
        parse_hidden(text, "hidden.py")


def test_unknown_exercise_lists_known(tmp_path):
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "ex01_a.ipynb").write_text("{}")
    with pytest.raises(ExerciseError, match="ex01_a"):
        load_exercise("ex09_nope", tmp_path)
    with pytest.raises(ExerciseError, match="no hidden tests"):
        load_exercise("ex01_a", tmp_path)


def test_strip_solutions_keeps_indent_and_hint():
    source = ("def f(x):\n    ### BEGIN SOLUTION\n    ### HINT: use x twice\n    return x + x\n"
              "    ### END SOLUTION\n\n### BEGIN SOLUTION\ny = 1\n### END SOLUTION\nprint(y)")
    out = strip_solutions(source)
    assert out == ('def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError("use x twice")\n\n'
                   '# YOUR CODE HERE\nraise NotImplementedError("write your solution here")\nprint(y)')
    compile(out, "<stub>", "exec")


@pytest.mark.parametrize("source", ["### BEGIN SOLUTION\nx = 1", "x = 1\n### END SOLUTION",
                                    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION"])
def test_strip_solutions_rejects_unbalanced(source):
    with pytest.raises(ExerciseError):
        strip_solutions(source)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"{nope", "invalid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "list of cells"),
    (b'{"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "no cells"),
    (b'{"cells": [{"x": 1}], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "schema"),
    (b'{"cells": [1], "nbformat": 3, "metadata": {}}', "format 3"),
])
def test_invalid_submissions(tmp_path, content, reason):
    path = tmp_path / "s.ipynb"
    path.write_bytes(content)
    nb, problem = load_submission(path)
    assert nb is None and reason in problem


def test_run_limited_kills_tree_and_marked_orphans(tmp_path):
    marker = "unit-test-marker-9b2"
    code = ("import subprocess, sys, time\n"
            "sleeper = [sys.executable, '-c', 'import time; time.sleep(120)']\n"
            "subprocess.Popen(sleeper)\n"
            "subprocess.run([sys.executable, '-c', 'import subprocess, sys; "
            "subprocess.Popen(sys.argv[1:], start_new_session=True)', *sleeper])\n"
            "time.sleep(120)\n")
    start = time.time()
    rc, timed_out = procs.run_limited(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, stdin_text="",
        timeout=3, log_path=tmp_path / "log", marker=marker)
    assert timed_out and rc is None and time.time() - start < 15
    assert not [p for p in psutil.process_iter() if _env(p).get(procs.MARKER_VAR) == marker]


def _env(p):
    try:
        return p.environ()
    except (psutil.Error, OSError):
        return {}


def test_run_limited_normal_exit(tmp_path):
    rc, timed_out = procs.run_limited(
        [sys.executable, "-c", "import sys; print(sys.stdin.read()); sys.exit(4)"], cwd=tmp_path,
        env={}, stdin_text="hello", timeout=30, log_path=tmp_path / "log", marker="m-1")
    assert (rc, timed_out) == (4, False)
    assert (tmp_path / "log").read_text().strip() == "hello"


def test_a_new_batch_never_evicts_the_box_of_a_running_task(monkeypatch, tmp_path):
    """A Dask worker keeps the sandboxes of its last batches; when another batch starts while a
    task of an old one still runs, the old box's folder (the running task's) must stay."""
    import tempfile
    from pathlib import Path

    distributed = pytest.importorskip("distributed")
    from course_utils.grading import checkserver, cluster_task, sandbox
    from course_utils.grading.runner import Outcome, Settings

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(cluster_task, "_ROOT", [])
    monkeypatch.setattr(cluster_task, "_BOXES", {})
    monkeypatch.setattr(cluster_task, "_KEEP_BOXES", 1)
    monkeypatch.setattr(sandbox, "prepare", lambda kind, limits, **kw: sandbox.Sandbox("none", limits))
    monkeypatch.setattr(checkserver, "warm_up", lambda: None)
    monkeypatch.setattr(cluster_task, "_slots_here", lambda slots: 1)
    worker = type("W", (), {"address": "tcp://w:1", "local_directory": str(tmp_path / "dask")})()
    monkeypatch.setattr(distributed, "get_worker", lambda: worker)
    exercise = load_exercise("ex01_add", Path(__file__).parent / "grading_fixtures" / "exercises")
    job = {"settings": Settings(sandbox="none", disk_mb=64), "hide": [], "host_slots": {},
           "exercise": exercise, "student": "s", "notebook": b"{}"}
    other_batch = dict(job, settings=Settings(sandbox="none", disk_mb=128))
    seen = {}

    def grade_one(exercise, student, path, settings, executed_dir, task_dir, box):
        cluster_task.worker_ready(other_batch)  # the next batch prepares its box meanwhile
        seen["alive"] = Path(task_dir).is_dir() and Path(path).is_file()
        return Outcome(student, "ok", {}, 0.0)

    monkeypatch.setattr(cluster_task, "grade_one", grade_one)
    cluster_task.grade_task(job)
    assert seen == {"alive": True}
    cluster_task.worker_ready(dict(job, settings=Settings(sandbox="none", disk_mb=256)))
    assert len(list(cluster_task._ROOT[0].iterdir())) == 1  # idle old boxes are still removed


def _ex07_rule_answers(tmp_path, rule):
    """Q2's answers as the grader collects them, from ``rule`` in the student's namespace."""
    hidden = load_exercise("ex07_detect_negative_transfer").hidden
    collect = hidden.read_text().split("def collect(ns):", 1)[1].split("\n\n\n", 1)[0]
    answers = _run_cell(tmp_path, {"transfer_verdict": rule}, "def collect(ns):" + collect)
    module = {}
    exec(compile(hidden.read_text(), str(hidden), "exec"), module)
    return module["check_q2_verdict_rule"]({"rule": answers["rule"]})


def _interval_rule(z, paired=True):
    def rule(pixel_hits, probe_hits):
        pixel, probe = np.asarray(pixel_hits, float), np.asarray(probe_hits, float)
        d, n = probe - pixel, len(pixel)
        se = (d.std(ddof=1) / np.sqrt(n) if paired else
              np.sqrt(pixel.mean() * (1 - pixel.mean()) / n + probe.mean() * (1 - probe.mean()) / n))
        low, high = d.mean() - z * se, d.mean() + z * se
        return False if low > 0 else True if high < 0 else "tie"
    return rule


def test_ex07_rule_cases_tell_compare_from_the_rules_it_replaced(tmp_path):
    """Q2 grades the course's one rule (compare's paired 95 % interval): the reference passes, and each
    rule it replaced fails on some case: one SE instead of 1.96, and the unpaired SE of two accuracies."""
    ok, detail = _ex07_rule_answers(tmp_path, _interval_rule(1.96))
    assert ok, detail
    for wrong in (_interval_rule(1.0), _interval_rule(1.96, paired=False), _interval_rule(1.0, paired=False)):
        ok, detail = _ex07_rule_answers(tmp_path, wrong)
        assert not ok and "cases right" in detail, detail
