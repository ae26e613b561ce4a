"""BatchNorm statistics: read them, measure how far they drifted, and re-estimate them (AdaBN).

A BatchNorm layer in training mode normalises with the *batch's* statistics and moves its
running mean/variance towards them; in eval mode it uses the running ones. So a backbone
whose weights are frozen (``requires_grad=False``) still changes if it is left in training
mode: its running statistics drift towards the target data. ``bn_drift`` measures that drift;
``adapt_bn`` does the same thing on purpose (AdaBN, Li et al. 2016): re-estimate the
statistics on unlabelled target images, the cheapest domain adaptation there is.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from course_utils.layers import BN_TYPES
from course_utils.repro import get_device


def bn_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every BatchNorm layer of ``module`` as (name, layer), input to output."""
    return [(n, m) for n, m in module.named_modules() if isinstance(m, BN_TYPES)]


def bn_running_stats(module: nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """A copy of each BatchNorm layer's (running_mean, running_var), keyed by layer name."""
    stats = {}
    for name, bn in bn_layers(module):
        if bn.running_mean is None:  # track_running_stats=False: nothing to drift
            continue
        stats[name] = (bn.running_mean.detach().cpu().clone(), bn.running_var.detach().cpu().clone())
    return stats


def _relative_change(new: torch.Tensor, old: torch.Tensor) -> float:
    return ((new - old).norm() / old.norm().clamp_min(1e-12)).item()


def bn_drift(before: dict, after: dict | nn.Module) -> dict[str, tuple[float, float]]:
    """Relative L2 change ``|after - before| / |before|`` of each layer's running mean and variance.

    ``before`` is a ``bn_running_stats`` snapshot; ``after`` another snapshot or the module now.
    0 means untouched; 1 means the change is as large as the statistics themselves.
    """
    if isinstance(after, nn.Module):
        after = bn_running_stats(after)
    missing = set(before) ^ set(after)
    if missing:
        raise ValueError(f"the two snapshots have different BatchNorm layers (e.g. {sorted(missing)[:3]}); "
                         "compare snapshots of the same model")
    return {name: (_relative_change(after[name][0], m), _relative_change(after[name][1], v))
            for name, (m, v) in before.items()}


@torch.no_grad()
def adapt_bn(module: nn.Module, x: torch.Tensor, *, layers: int | None = None, batch_size: int = 64,
             transform: Callable | None = None, device=None) -> nn.Module:
    """AdaBN: replace every BatchNorm layer's running statistics by those of the images ``x``.

    No labels and no gradient steps: the statistics are reset and re-estimated as the average of the
    batches' statistics weighted by batch size (a last, smaller batch counts for its images only: each
    batch's momentum is its share of the images seen so far); weights stay as they are. ``layers``
    adapts only the first ``layers`` BatchNorm layers (input side: low-level statistics such as
    contrast and colour) and keeps the source statistics above. ``transform`` normalises each
    batch (e.g. ``backbone.normalize``). The module is left in eval mode.
    """
    all_layers = [bn for _, bn in bn_layers(module)]
    if not all_layers:
        raise ValueError("the module has no BatchNorm layers: there is nothing to adapt")
    if layers is not None and not (isinstance(layers, int) and 0 <= layers <= len(all_layers)):
        raise ValueError(f"layers must be an int in [0, {len(all_layers)}] or None (all), got {layers!r}")
    layers = all_layers if layers is None else all_layers[:layers]
    if len(x) < 2:
        raise ValueError(f"need at least 2 images to estimate statistics, got {len(x)}")
    device = device or get_device()
    module.to(device).eval()
    momenta = [bn.momentum for bn in layers]
    for bn in layers:
        bn.reset_running_stats()
        bn.train()
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            for bn in layers:   # running = running + share * (batch - running): a size-weighted mean
                bn.momentum = len(xb) / (i + len(xb))
            module(transform(xb) if transform else xb)
    finally:
        for bn, momentum in zip(layers, momenta):
            bn.momentum = momentum
            bn.eval()
    return module
