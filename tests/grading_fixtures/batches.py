"""Graded batches the grading test files share: each is graded once per test session (tests/conftest.py
registers this module as a pytest plugin), and the tests only read what it wrote.

- ``fixture_batch``: the fixture exercise ex01_add, every kind of notebook and every attack on the
  sandbox in ONE batch (--jobs 2, small limits), with a deadline, submission times and an override;
- ``checks_batch``: ex02_checks, whose hidden checks hang and crash on purpose;
- ``real_batches``: every real exercise, graded end to end from a kit made by ``course-grade kit``
  (a fresh secret): the reference solution of each, and for ex01 the release, a copied-and-renamed
  solution, an independent one and a second untouched release. Two batches run at a
  time: each grades one or two notebooks, which alone would leave one of the two cores idle.
"""
from __future__ import annotations

import ast
import csv
import json
import os
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import nbformat
import pytest

from course_utils.grading import cli, sandbox
from course_utils.grading.batch import grade_batch
from course_utils.grading.runner import Settings
from course_utils.grading.spec import load_exercise

from . import ex01_variants
from .submissions import (
    EXERCISE, FIXTURES, HOST_SECRET, LIMITS, ODD, REPO, TIMEOUT, TOKEN, TOKEN_VALUE, TOKEN_VAR,
    Listener, attacks, fingerprints, git_status, kinds, write_invalid, write_targets,
)

DUE = "2030-06-01T23:59:00+00:00"
TIMES = {"alice": "2030-06-01T20:00:00+00:00", ODD: "2030-06-02T10:00:00+00:00",
         "wrong": "2030-06-05T00:00:00+00:00", "crash": "2030-06-08T12:00:00+00:00"}
OVERRIDE = ("wrong", "Q2", "1.5", "partial credit: the least-squares set-up is right")
REAL = ["ex04_lp_ft_ood", "ex02_finetune_bn", "ex05_choose_on_validation",
        "ex07_detect_negative_transfer", "ex06_lora_by_hand", "ex03_fix_preprocessing",
        "ex01_freeze_and_probe"]  # the slowest first, so the two lanes end together


@lru_cache(maxsize=1)
def why_no_bwrap() -> str | None:
    """Why the sandbox cannot run here (None: it can); asked once, when a batch needs it."""
    try:
        sandbox.prepare("bwrap", redact=False)
    except sandbox.SandboxError as exc:
        print(f"grading tests: bubblewrap cannot run here: {exc}", file=sys.stderr)
        return str(exc)
    return None


def skip_without_bwrap() -> None:
    if why_no_bwrap():
        pytest.skip(f"bwrap cannot run: {why_no_bwrap()}")


def read_rows(out: Path) -> list[dict]:
    with open(out / "grades.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def read_totals(out: Path) -> dict:
    with open(out / "totals.csv", newline="", encoding="utf-8") as fh:
        return {r["student"]: r for r in csv.DictReader(fh)}


def fixture_args(exercises: Path, subs: Path, out: Path, times: Path, overrides: Path) -> list[str]:
    """The command line of the fixture batch (and of a regrade of one of its students)."""
    return [EXERCISE, str(subs), "--out", str(out), "--timeout", str(TIMEOUT), "--jobs", "2",
            "--exercises-dir", str(exercises), "--memory-mb", str(LIMITS["memory_mb"]),
            "--max-procs", str(LIMITS["max_procs"]), "--disk-mb", str(LIMITS["disk_mb"]),
            "--due", DUE, "--late-penalty", "10", "--late-floor", "50",
            "--submitted-at", str(times), "--overrides", str(overrides)]


@pytest.fixture(scope="session")
def fixture_batch(tmp_path_factory):
    skip_without_bwrap()
    base = tmp_path_factory.mktemp("fixture-batch")
    exercises, subs, out = base / "exercises", base / "subs", base / "out"
    shutil.copytree(FIXTURES, exercises)
    subs.mkdir()
    listener = Listener()
    expected = {}
    for student, (nb, statuses) in {**kinds(exercises),
                                    **attacks(exercises, subs, out, listener.ports)}.items():
        nbformat.write(nb, str(subs / f"{student}.ipynb"))
        expected[student] = statuses
    expected.update(write_invalid(subs))
    times, overrides = base / "times.csv", base / "overrides.csv"
    times.write_text("student_id,submitted_at\n" + "".join(f"{s},{t}\n" for s, t in TIMES.items()),
                     encoding="utf-8")
    overrides.write_text("student_id,question,points,reason\n" + ",".join(OVERRIDE) + "\n",
                         encoding="utf-8")
    args = fixture_args(exercises, subs, out, times, overrides)
    watched = [*write_targets(exercises), REPO / "exercises" / "grading" / f"{TOKEN}.py"]
    before = {"git": git_status(), "files": fingerprints(watched), "tmp": set(os.listdir("/tmp"))}
    HOST_SECRET.mkdir()
    (HOST_SECRET / "answers.txt").write_text("the held-out answers")
    os.environ[TOKEN_VAR] = TOKEN_VALUE  # in the grader's environment while it grades
    try:
        rc = cli.main(args)
    finally:
        os.environ.pop(TOKEN_VAR, None)
        shutil.rmtree(HOST_SECRET, ignore_errors=True)
        listener.close()
    assert rc == 0
    after = {"git": git_status(), "files": fingerprints(watched), "tmp": set(os.listdir("/tmp"))}
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return {"base": base, "exercises": exercises, "subs": subs, "out": out, "args": args,
            "rows": read_rows(out), "totals": read_totals(out), "summary": summary,
            "expected": expected, "before": before, "after": after, "network": listener.got}


@pytest.fixture(scope="session")
def checks_batch(tmp_path_factory):
    """ex02_checks with a 4 s check limit: one check hangs, one raises."""
    base = tmp_path_factory.mktemp("checks-batch")
    (base / "subs").mkdir()
    shutil.copy(FIXTURES / "source" / "ex02_checks.ipynb", base / "subs" / "s1.ipynb")
    summary = grade_batch(load_exercise("ex02_checks", FIXTURES), base / "subs", base / "out",
                          Settings(timeout=30, check_timeout=4, fast=True), progress=False)
    return {"out": base / "out", "summary": summary}


def real_submissions(name: str) -> dict:
    """{student: notebook} graded for the real exercise ``name``."""
    source = REPO / "exercises" / "source" / f"{name}.ipynb"
    notebooks = {"solution": nbformat.read(str(source), as_version=4)}
    if name == "ex01_freeze_and_probe":
        release = nbformat.read(str(REPO / "exercises" / "release" / f"{name}.ipynb"), as_version=4)
        notebooks.update({"release": release, "release_again": release,
                          "copied": ex01_variants.variant("copied"),
                          "independent": ex01_variants.variant("independent")})
    return notebooks


def _grade_real(name: str, kit: Path, base: Path) -> Path:
    subs, out = base / name / "subs", base / name / "out"
    subs.mkdir(parents=True)
    for student, nb in real_submissions(name).items():
        nbformat.write(nb, str(subs / f"{student}.ipynb"))
    code = cli.main([name, str(subs), "--out", str(out), "--kit", str(kit), "--fast",
                     "--jobs", "2", "--timeout", "400"])
    assert code == 0, name
    return out


@pytest.fixture(scope="session")
def real_batches(tmp_path_factory):
    """{exercise: OUT_DIR} of every real exercise, graded with a fresh kit."""
    skip_without_bwrap()
    base = tmp_path_factory.mktemp("real")
    kit = base / "kit"
    assert cli.main(["kit", str(kit)]) == 0
    with _one_parse_at_a_time(), ThreadPoolExecutor(max_workers=2) as lanes:
        outs = dict(zip(REAL, lanes.map(lambda n: _grade_real(n, kit, base), REAL)))
    return {"kit": kit, "outs": outs}


@contextmanager
def _one_parse_at_a_time():
    """Two threads in ``ast.parse`` at once can fail on this CPython 3.11 ("SystemError: AST
    constructor recursion depth mismatch": the AST builder's depth counter is the interpreter's,
    not the thread's; see python/cpython#106905); the grader parses the hidden tests and the
    notebooks with it, so the two lanes take turns there."""
    lock, parse = threading.Lock(), ast.parse

    def parse_alone(*args, **kwargs):
        with lock:
            return parse(*args, **kwargs)

    ast.parse = parse_alone
    try:
        yield
    finally:
        ast.parse = parse
