"""Repeat experiments over seeds and summarise them as pandas tables: mean ± std, winner, margin.

    df = run_seeds({"probe": lambda s: probe(...), "fine-tune": lambda s: finetune(..., seed=s)},
                   seeds=[0, 1, 2], task="objects")
    table = summarize(df, by=["task", "method"])      # one row per (task, method)
    compare_methods(df, "fine-tune", "probe")         # the course's comparison rule, paired by seed and item

A run is any callable ``seed -> result`` where the result has ``accuracy`` (and optionally
``trainable``), like ``recipes.Result``, or is a dict with those keys. The runner measures
each call's wall time itself, so every method is timed the same way (embedding included).
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from course_utils.evaluation import compare


def _as_row(result) -> dict:
    """The numbers of one result: ``accuracy`` and, when present, ``val_accuracy``, ``trainable`` and
    the per-item scores ``items`` / ``val_items`` (what ``compare`` pairs)."""
    data = result if isinstance(result, dict) else vars(result)
    if "accuracy" not in data:
        raise ValueError(f"a run must return something with an 'accuracy'; got keys {sorted(data)}")
    row = {"accuracy": float(data["accuracy"])}
    if data.get("val_accuracy") is not None:
        row["val_accuracy"] = float(data["val_accuracy"])
    if data.get("trainable") is not None:
        row["trainable"] = int(data["trainable"])
    for key in ("items", "val_items"):
        if data.get(key) is not None:
            row[key] = np.asarray(data[key], float)
    return row


def item_matrix(df: pd.DataFrame, method: str, column: str = "items") -> np.ndarray:
    """One method's per-item scores from ``run_seeds``' table, shaped (seeds, items) in seed order:
    ``compare(item_matrix(df, "a"), item_matrix(df, "b"))``."""
    rows = df[df["method"] == method].sort_values("seed")
    if rows.empty:
        raise ValueError(f"no runs of {method!r}; the table has {sorted(df['method'].unique())}")
    if column not in rows or rows[column].isna().any():
        raise ValueError(f"runs of {method!r} carry no {column!r}: return a Result scored on that set "
                         "(recipes do) or a dict with per-item scores under that key")
    return np.stack(rows[column].to_list())


def compare_methods(df: pd.DataFrame, a: str, b: str, column: str = "items", **words):
    """``compare`` two methods of a ``run_seeds`` table, paired by seed and by item."""
    return compare(item_matrix(df, a, column), item_matrix(df, b, column), **words)


def run_seeds(runs: dict[str, Callable[[int], object]], seeds: Iterable[int], *, on_result=None,
              **labels) -> pd.DataFrame:
    """Call every run once per seed; one row per (seed, method) with accuracy, trainable, wall_s.

    ``labels`` (e.g. ``domain="far", size="small"``) are copied into every row so tables from
    several sweeps can be concatenated; ``on_result(row)`` is called after each run (progress).
    """
    if not runs:
        raise ValueError("give at least one run: {'name': lambda seed: ...}")
    rows = []
    for seed in seeds:
        for method, run in runs.items():
            start = time.perf_counter()
            result = run(seed)
            row = {**labels, "method": method, "seed": seed, **_as_row(result),
                   "wall_s": time.perf_counter() - start}
            rows.append(row)
            if on_result is not None:
                on_result(row)
    return pd.DataFrame(rows)


def mean_std(mean: float, std: float, digits: int = 3) -> str:
    """``0.712 ± 0.031``; a single seed (std NaN: no spread measured) prints just the mean."""
    if pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summarize(df: pd.DataFrame, by=("method",), metric: str = "accuracy") -> pd.DataFrame:
    """Mean, std (sample, over seeds; NaN for one seed: no spread measured) and seed count of
    ``metric`` per group, plus mean wall time and trainable parameters, and a printable
    ``"mean ± std"`` column."""
    by = list(by)
    grouped = df.groupby(by, sort=False)
    out = grouped[metric].agg(["mean", "std", "count"]).rename(
        columns={"mean": f"{metric}_mean", "std": f"{metric}_std", "count": "seeds"})
    out[metric] = [mean_std(m, s) for m, s in zip(out[f"{metric}_mean"], out[f"{metric}_std"])]
    if "wall_s" in df:
        out["wall_s"] = grouped["wall_s"].mean()
    if "trainable" in df:
        out["trainable"] = grouped["trainable"].first()
    return out.reset_index()
