"""Run settings shared by notebooks, tests and benchmarks.

``FAST`` mode (env ``COURSE_FAST=1``) shrinks data and epochs so CI and a first look run in
seconds; the full settings are the default a student gets.
"""
from __future__ import annotations

import os
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def is_fast() -> bool:
    """True when the environment asks for the small, quick settings (``COURSE_FAST=1``)."""
    return os.environ.get("COURSE_FAST", "").strip().lower() in _TRUE


def fast_mode(requested: bool = False) -> bool:
    """The one FAST switch. True when a notebook's ``FAST`` parameter asks for it, when env ``COURSE_FAST``
    does (``course run --fast`` sets it), or both; the answer is written back to ``COURSE_FAST`` in this
    process, so every library default that follows the environment (``load_dataset``'s ``per_class=None``)
    gives the same run however FAST was asked for. A notebook starts with ``FAST = fast_mode(FAST)``."""
    fast = bool(requested) or is_fast()
    os.environ["COURSE_FAST"] = "1" if fast else "0"
    return fast


def cache_dir() -> Path:
    """Where cached embeddings and prepared data live (env ``COURSE_CACHE_DIR`` overrides)."""
    path = Path(os.environ.get("COURSE_CACHE_DIR") or Path.home() / ".cache" / "transfer-course")
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_root() -> Path:
    """The project checkout this package was installed from (editable install)."""
    return Path(__file__).resolve().parent.parent


COLAB_CLONE = Path("course")  # where the Colab setup cell clones the course, under the notebook's folder


def data_dir() -> Path:
    """The shipped ``data/`` folder, the first of:

    1. env ``COURSE_DATA_DIR``, when set (whether or not the folder exists);
    2. ``data/`` of the checkout the package is installed from (``bash course.sh setup``'s
       editable install), when it is one;
    3. ``course/data`` under the current folder, when it exists: the clone that the Colab setup
       cell makes, whose regular (non-editable) install does not know where it came from. It
       holds after a runtime restart too, as nothing has to be set in the kernel;
    4. otherwise the checkout's ``data/`` (2), so that a missing file is reported there.
    """
    if os.environ.get("COURSE_DATA_DIR"):
        return Path(os.environ["COURSE_DATA_DIR"])
    checkout = repo_root() / "data"
    # pyproject.toml marks a checkout: under a regular install repo_root() is site-packages,
    # where another package may have left a folder named data/.
    if checkout.is_dir() and (repo_root() / "pyproject.toml").is_file():
        return checkout
    clone = Path.cwd() / COLAB_CLONE / "data"
    return clone if clone.is_dir() else checkout
