"""Probing a frozen backbone: how much does each depth know about a task, and how does it scale with data?

Helpers that make a notebook cell read like the method:

* ``stage_embeddings`` - the pooled output of every layer group, for a probe at each depth
  (Yosinski et al. 2014, "How transferable are features in deep neural networks?"; Alain & Bengio
  2016, "Understanding intermediate layers using linear classifier probes").
* ``learning_curve`` - accuracy against examples per class for several methods and seeds.

All stage outputs are computed once and cached on disk with ``features.cached_embeddings``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from course_utils.features import cached_embeddings


class StageConcat(nn.Module):
    """``features`` -> the pooled output of every group, side by side in one (B, sum of widths) vector.

    One vector per image lets ``cached_embeddings`` cache all depths in one file and one pass.
    """

    def __init__(self, features: nn.Module):
        super().__init__()
        if not hasattr(features, "stage_outputs"):
            raise TypeError(f"{type(features).__name__} has no stage_outputs(); use a Backbone's features")
        self.features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.features.stage_outputs(x), dim=1)


@dataclass
class _StageView:
    """Just enough of a ``Backbone`` for ``cached_embeddings`` (name, features, normalisation)."""

    name: str
    features: nn.Module
    mean: tuple
    std: tuple
    normalize: Callable


def group_names(features: nn.Module) -> list[str]:
    """Readable names for ``features.groups()``: stem, stage 1 ... stage N, top."""
    n = len(features.groups())
    return ["stem", *[f"stage {i}" for i in range(1, n - 1)], "top"]


def group_widths(features: nn.Module) -> list[int]:
    """Channels of each group's output, read from its last BatchNorm or conv layer.

    Read from the weights rather than found by a forward pass: on a busy CPU even a one-image pass
    can take seconds. A group without such a layer (an identity) passes the previous width on.
    """
    widths, width = [], 3
    for group in features.groups():
        for m in group.modules():
            width = getattr(m, "num_features", None) or getattr(m, "out_channels", None) or width
        widths.append(int(width))
    return widths


@torch.inference_mode()
def group_maps(features: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The un-pooled activation maps (B, C, H, W) after every group, for looking at what each depth sees."""
    if not hasattr(features, "groups"):
        raise TypeError(f"{type(features).__name__} has no groups(); use a Backbone's features")
    features.eval()
    maps = []
    for group in features.groups():
        x = group(x)
        maps.append(x.float().cpu())
    return maps


def stage_embeddings(backbone, data, *, batch_size: int = 128, device=None) -> list[torch.Tensor]:
    """Pooled output of every group for every image of ``data`` (cached: a second call is a file read)."""
    view = _StageView(f"{backbone.name}-stages", StageConcat(backbone.features), backbone.mean, backbone.std,
                      backbone.normalize)
    flat = cached_embeddings(view, data, batch_size=batch_size, device=device)
    widths = group_widths(backbone.features)
    if flat.shape[1] != sum(widths):
        raise ValueError(f"stage outputs have {flat.shape[1]} channels in all, but the groups' layers say "
                         f"{sum(widths)} ({widths}); group_widths cannot read this backbone")
    return list(torch.split(flat, widths, dim=1))


@dataclass
class Curve:
    """Accuracy of each method per seed and size: ``runs[method]`` is an array (seeds, sizes)."""

    sizes: list[int]
    seeds: list[int]
    runs: dict[str, np.ndarray]
    seconds: dict[str, float] = field(default_factory=dict)

    def mean(self, method: str) -> np.ndarray:
        return self.runs[method].mean(axis=0)

    def std(self, method: str) -> np.ndarray:
        """Sample std over seeds (ddof=1, as ``sweep.summarize``); NaN with one seed: no spread measured."""
        runs = self.runs[method]
        return runs.std(axis=0, ddof=1) if len(runs) > 1 else np.full(runs.shape[1], np.nan)

    def crossing(self, a: str, b: str) -> int | None:
        """The first size from which method ``a``'s mean is >= method ``b``'s and stays so (None: never)."""
        ahead = self.mean(a) >= self.mean(b)
        for i in range(len(self.sizes)):
            if ahead[i:].all():
                return self.sizes[i]
        return None


def learning_curve(make_train: Callable[[int, int], object], test, methods: dict[str, Callable],
                   sizes, seeds) -> Curve:
    """Accuracy vs examples per class: ``methods[name](train, test, seed) -> accuracy``.

    ``make_train(per_class, seed)`` builds the training set, so every method sees the very same
    images for a given size and seed (a paired comparison).
    """
    sizes, seeds = [int(s) for s in sizes], [int(s) for s in seeds]
    runs = {name: np.zeros((len(seeds), len(sizes))) for name in methods}
    seconds = {name: 0.0 for name in methods}
    for j, size in enumerate(sizes):
        for i, seed in enumerate(seeds):
            train = make_train(size, seed)
            for name, method in methods.items():
                start = time.perf_counter()
                runs[name][i, j] = float(method(train, test, seed))
                seconds[name] += time.perf_counter() - start
    return Curve(sizes, seeds, runs, seconds)
