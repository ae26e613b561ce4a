"""Grading ONE submission: run it in a worker process, then its checks in a check process.

Layout of a submission's private temp dir (removed afterwards)::

    work/      the kernel's cwd; holds only submission.ipynb
    home/      the kernel's HOME (~/.ipython, ~/.cache, ... start empty)
    grader/    worker output: result.json, executed.ipynb, answers-<random>.json/.npz
    check/     created after the kernel is dead: answers + a snapshot of the hidden tests

Statuses for a whole notebook (invalid, error, timeout) apply to every question; only a
notebook that ran to the end has its questions checked one by one (ok, failed, error).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course_utils.grading import checkserver, procs
from course_utils.grading.answers import answers_too_large
from course_utils.grading.limits import Job, Limits
from course_utils.grading.sandbox import Sandbox, worker_process
from course_utils.grading.spec import SECRET_ENV, Exercise, timeout_detail
from course_utils.grading.submissions import load_submission

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])  # so `-m course_utils...` imports
MAX_EXECUTED_BYTES = 20_000_000  # an executed notebook bigger than this was not made by us
_ANSWERS_NAME = re.compile(r"answers-[0-9a-f]{32}")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


@dataclass(frozen=True)
class Settings:
    timeout: float = 600.0  # wall clock for one notebook, kernel start included
    check_timeout: float | None = None  # for the check process; None: same as timeout
    jobs: int = 1
    fast: bool = False
    seed: int = 0
    device: str = "cpu"
    start_timeout: float = 60.0
    sandbox: str = "auto"  # auto (= bwrap, or stop), bwrap, none: see sandbox.py
    memory_mb: int = Limits.memory_mb
    max_procs: int = Limits.max_procs
    disk_mb: int = Limits.disk_mb
    secret: str | None = field(default=None, repr=False)  # the kit's per-term secret (--kit)

    @property
    def limits(self) -> Limits:
        return Limits(self.memory_mb, self.max_procs, self.disk_mb)

    @property
    def answers_mb(self) -> int:
        """How large the answers may be once expanded: a quarter of the memory limit, as the
        check process holds them, one copy per check, and the check's own data."""
        return max(1, self.memory_mb // 4)

    @property
    def cell_timeout(self) -> int:
        # a bit under the outer limit so a single slow cell is reported by papermill, with the
        # executed notebook intact, before the parent has to kill everything; whole seconds,
        # as nbclient's `timeout` trait is an int (--timeout 12 gave 10.8 and failed every run)
        return max(1, int(self.timeout - max(1.0, min(10.0, 0.1 * self.timeout))))

    def parameters(self) -> dict:
        return {"FAST": self.fast, "SEED": self.seed, "DEVICE": self.device}


@dataclass
class Outcome:
    student: str
    status: str  # notebook-level: ok (it ran), error, timeout or invalid
    results: dict  # question -> (status, detail)
    seconds: float


def grade_one(exercise: Exercise, student: str, path: Path, settings: Settings,
              executed_dir: Path, tmp_root: Path, box: Sandbox) -> Outcome:
    start = time.monotonic()
    nb, problem = load_submission(path)
    if nb is None:
        return _uniform(exercise, student, "invalid", problem, start)
    sub_dir = Path(tempfile.mkdtemp(prefix="s-", dir=tmp_root))
    try:
        status, detail = _execute(exercise.collect_source, nb, sub_dir, settings, box)
        _keep_executed(sub_dir / "grader" / "executed.ipynb", executed_dir / f"{student}.ipynb")
        if status != "ok":
            return _uniform(exercise, student, status, clean_detail(detail, sub_dir), start)
        results = _check(exercise, sub_dir, settings, box)
        results = {q: (s, clean_detail(d, sub_dir)) for q, (s, d) in results.items()}
        return Outcome(student, "ok", results, time.monotonic() - start)
    finally:
        _rmtree(sub_dir)


def internal_error(exercise: Exercise, student: str, exc: BaseException) -> Outcome:
    """The outcome of a submission the grader itself failed on: every question ``error``."""
    detail = f"grader internal error: {type(exc).__name__}: {exc}".splitlines()[0][:300]
    return Outcome(student, "error", {q: ("error", detail) for q in exercise.questions}, 0.0)


def _uniform(exercise, student, status, detail, start) -> Outcome:
    results = {q: (status, detail) for q in exercise.questions}
    return Outcome(student, status, results, time.monotonic() - start)


def run_notebook(nb, sub_dir: Path, settings: Settings, box: Sandbox,
                 collect_source: str | None = None) -> tuple[str, str]:
    """Run ``nb`` in the sandbox the way grading does; (status, detail) of the notebook.

    Without ``collect_source`` (a student's self-check) no grader cell is appended and no answers
    are kept; ``sub_dir/grader/executed.ipynb`` holds the run. ``sub_dir`` must be empty.
    """
    return _execute(collect_source, nb, sub_dir, settings, box)


def _execute(collect_source: str | None, nb, sub_dir: Path, settings: Settings,
             box: Sandbox) -> tuple[str, str]:
    work, grader = sub_dir / "work", sub_dir / "grader"
    for folder in (work, grader, sub_dir / "home"):
        folder.mkdir()
    nbformat.write(nb, str(work / "submission.ipynb"))
    job = {
        "notebook": str(work / "submission.ipynb"), "cwd": str(work), "grader_dir": str(grader),
        "collect_source": collect_source, "parameters": settings.parameters(),
        "cell_timeout": settings.cell_timeout, "start_timeout": settings.start_timeout,
        "timeout": settings.timeout,
    }
    with box.enter(sub_dir) as run:
        rc, timed_out = procs.run_limited(
            run.wrap([sys.executable, "-m", "course_utils.grading.worker"]), cwd=grader,
            env=run.env(_kernel_env(sub_dir / "home", grader, settings)),
            stdin_text=json.dumps(job), timeout=settings.timeout, log_path=grader / "worker.log",
            marker=secrets.token_hex(8), watch=run.watch, term_target=worker_process,
        )
        result = _read_result(grader / "result.json", collect_source is not None)
        over = run.exceeded(result["detail"] if result else "")
    if over:  # before the timeout: a fork bomb that also hangs is reported as the fork bomb
        return "error", over
    if timed_out:
        return "timeout", timeout_detail(settings.timeout)
    if result is None:
        return "error", f"grader worker failed (exit {rc}): {_log_tail(grader / 'worker.log')}"
    if result["status"] == "ok" and collect_source is not None:
        _move_answers(grader / result["answers"], sub_dir / "check")
    return result["status"], result["detail"]


def _move_answers(answers: Path, check: Path) -> None:
    check.mkdir()
    for ext in (".json", ".npz"):
        if _regular_file(Path(f"{answers}{ext}")):
            os.replace(f"{answers}{ext}", check / f"answers{ext}")


def _regular_file(path: Path) -> bool:
    """A plain file, not a symlink: the kernel could plant a link to a file it cannot read
    (the solutions) for the grader, which runs outside the sandbox, to copy or parse."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _read_result(path: Path, collecting: bool = True) -> dict | None:
    """The worker's result, or None if missing or not in the shape the worker writes."""
    if not _regular_file(path):
        return None
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
        ok_answers = (result["status"] != "ok" or not collecting
                      or _ANSWERS_NAME.fullmatch(result["answers"]))
        if result["status"] in ("ok", "error", "timeout") and ok_answers:
            return result
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


# What of the grader's (or the Dask worker's) environment a kernel gets: nothing else, so no token,
# key or password the grading host holds can reach a cell, a row of grades.csv or a feedback file.
ENV_ALLOWED = ("PATH", "TMPDIR", "LANG", "LANGUAGE", "TZ",
               "SYSTEMROOT")  # Windows (--sandbox none) cannot open a socket without SYSTEMROOT
ENV_ALLOWED_PREFIXES = ("LC_", "COURSE_")
ENV_DENIED_PREFIXES = ("COURSE_GRADE_",)  # the grader's own (the kit's secret never goes in env)


def allowed_env(environ) -> dict:
    """The part of ``environ`` a kernel may see: PATH, TMPDIR, the locale (LANG, LANGUAGE, LC_*),
    TZ and the course's own COURSE_* settings."""
    return {k: v for k, v in environ.items()
            if (k in ENV_ALLOWED or k.startswith(ENV_ALLOWED_PREFIXES))
            and not k.startswith(ENV_DENIED_PREFIXES)}


def _kernel_env(home: Path, grader: Path, settings: Settings) -> dict:
    env = allowed_env(os.environ)
    # HOME (and so ~/.ipython, ~/.cache, ~/.local/share/jupyter) points into the private dir:
    # whatever a notebook leaves there is deleted with it and never seen by another student.
    env.update(HOME=str(home), JUPYTER_RUNTIME_DIR=str(grader / "runtime"),
               JUPYTER_CONFIG_DIR=str(grader / "jupyter-config"),
               JUPYTER_PATH=_kernelspec_dir(grader), PYTHONHASHSEED=str(settings.seed),
               PYDEVD_DISABLE_FILE_VALIDATION="1", PYTHONPATH=_PACKAGE_PARENT)
    if settings.fast:
        env["COURSE_FAST"] = "1"
    else:
        env.pop("COURSE_FAST", None)
    if settings.device == "cuda" and "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]  # the GPUs it may use
    env.update(_thread_env(settings.jobs))
    return env


def _thread_env(jobs: int) -> dict:
    """Share the cores between parallel kernels instead of letting each use all of them.

    Measured on 2 cores: two torch kernels with 2 OpenMP threads each ran a training job ~5x
    slower than with the cores split; passive waiting stops idle threads from spinning.
    """
    # The CPUs this process may use (a SLURM or cgroup allocation), not the whole node's.
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = str(max(1, usable // max(1, jobs)))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "OMP_WAIT_POLICY": "PASSIVE"}


def _kernelspec_dir(grader: Path) -> str:
    """A python3 kernelspec for THIS interpreter, first on JUPYTER_PATH.

    A user-level kernelspec named python3 (e.g. from another install) would otherwise win and
    run the students in a different environment.
    """
    spec_dir = grader / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher",
                     "-f", "{connection_file}"],
            "display_name": "Python 3 (course-grade)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return str(grader / "jupyter")


def _check(exercise: Exercise, sub_dir: Path, settings: Settings, box: Sandbox) -> dict:
    """Run check_* in fresh (forked) processes with the submission's memory and process limits;
    a hung, crashing or bloated check costs only its own question."""
    check = sub_dir / "check"
    too_big = answers_too_large(check / "answers", settings.answers_mb)
    if too_big:  # refused from the files' headers, before anything is expanded
        return {q: ("error", too_big) for q in exercise.questions}
    hidden = check / "hidden_tests.py"
    hidden.write_text(exercise.hidden_source, encoding="utf-8")
    results_path = check / "results.jsonl"
    limit = settings.check_timeout or settings.timeout
    results, pending = {}, list(exercise.questions)
    while pending:
        with Job(box.cgroups, box.limits, unique=True) as job:
            rc, timed_out = checkserver.run_checks(
                [str(hidden), str(check / "answers"), str(results_path), *pending],
                cwd=check, env=_check_env(settings), timeout=limit,
                log_path=check / "check.log", marker=secrets.token_hex(8), job=job,
            )
            over = job.exceeded()
        results.update(_read_results(results_path, pending))
        pending = [q for q in pending if q not in results]
        if pending:  # the first unanswered question is the one that hung, crashed or bloated
            why = (f"check stopped: {over}" if over
                   else f"check did not finish within {limit:g} s" if timed_out
                   else f"check process crashed (exit {rc}): {_log_tail(check / 'check.log')}")
            results[pending.pop(0)] = ("error", why)
    return results


def _check_env(settings: Settings) -> dict:
    """The check process's environment: the grader's, and the kit's secret (toolkit.term_rng)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    env.pop(SECRET_ENV, None)
    if settings.secret:
        env[SECRET_ENV] = settings.secret
    return env


def _read_results(path: Path, wanted) -> dict:
    found = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if row.get("question") in wanted and row.get("status") in ("ok", "failed", "error"):
            found[row["question"]] = (row["status"], str(row.get("detail") or row["status"]))
    return found


def _keep_executed(src: Path, dst: Path) -> None:
    if not _regular_file(src):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.stat().st_size <= MAX_EXECUTED_BYTES:
        shutil.copyfile(src, dst)


def clean_detail(detail: str, sub_dir: Path) -> str:
    """One short line, free of temp paths and memory addresses, so reruns compare equal."""
    text = _ANSI.sub("", str(detail)).replace(str(sub_dir), "<tmp>")
    text = " ".join(_ADDRESS.sub("0x…", text).split())
    return (text[:297] + "...") if len(text) > 300 else (text or "no detail")


def _log_tail(path: Path, size: int = 2000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - size))
            lines = fh.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"


def _rmtree(path: Path) -> None:
    def make_writable(func, target, _exc):
        # a notebook may chmod its files read-only; take the permission back and retry
        try:
            os.chmod(os.path.dirname(target), stat.S_IRWXU)
            os.chmod(target, stat.S_IRWXU)
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable)
