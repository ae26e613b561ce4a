"""Run settings shared by notebooks, tests and benchmarks.

``FAST`` mode (env ``COURSE_FAST=1``) shrinks data and epochs so CI and a first look run in
seconds; the full settings are the default a student gets.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def is_fast() -> bool:
    """True when the environment asks for the small, quick settings (``COURSE_FAST=1``)."""
    return os.environ.get("COURSE_FAST", "").strip().lower() in _TRUE


def cache_dir() -> Path:
    """Where cached embeddings and prepared data live (env ``COURSE_CACHE_DIR`` overrides)."""
    path = Path(os.environ.get("COURSE_CACHE_DIR") or Path.home() / ".cache" / "transfer-course")
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_root() -> Path:
    """The project checkout this package was installed from (editable install)."""
    return Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The shipped ``data/`` folder (env ``COURSE_DATA_DIR`` overrides, e.g. on Colab)."""
    return Path(os.environ.get("COURSE_DATA_DIR") or repo_root() / "data")


@dataclass(frozen=True)
class RunConfig:
    """Settings for one experiment; ``RunConfig.from_env()`` applies FAST mode."""

    fast: bool = False
    seed: int = 0
    image_size: int = 64
    batch_size: int = 64
    epochs: int = 5
    seeds: tuple[int, ...] = (0, 1, 2)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, **overrides) -> "RunConfig":
        fast = overrides.pop("fast", is_fast())
        base = dict(fast=fast, epochs=1 if fast else 5, seeds=(0,) if fast else (0, 1, 2))
        base.update(overrides)
        return cls(**base)
