"""What a submission must not see: the folders a batch names and those of the machine it runs on.

The sandbox binds only what the kernel needs (mounts.py), so most of these are not in its view at
all; any that lie inside a bound folder (a kit or OUT_DIR inside the repository, a temp folder
under a bound one) are covered by an empty read-only tmpfs. Used by local batches (batch.py), the
Dask workers (cluster_task.py) and the self-check (selfcheck.py).
"""
from __future__ import annotations

from pathlib import Path

from course_utils.config import repo_root


def batch_private(exercise, submissions_dir, out_dir) -> list[Path]:
    """What a batch names: the exercise's solutions and hidden tests, the submissions, the grades."""
    return [exercise.source.parent, exercise.hidden.parent, Path(submissions_dir), Path(out_dir)]


def machine_private(scratch: Path) -> list[Path]:
    """What the machine that runs a submission holds: the repo's exercises (also in git's history)
    and the temp folder of the other submissions graded there."""
    return [repo_root() / "exercises", repo_root() / ".git", Path(scratch)]
