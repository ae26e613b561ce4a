"""Plotting: each function takes data and returns a matplotlib Axes (or Figure) to show or save."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def _ax(ax):
    return ax if ax is not None else plt.subplots(figsize=(6, 4))[1]


def show_images(x: torch.Tensor, labels=None, ncols: int = 8, title: str | None = None):
    """A grid of images given in [0, 1] (or normalised to [-1, 1]: rescaled for display)."""
    x = x.detach().cpu().float()
    if x.min() < 0:
        x = (x - x.min()) / (x.max() - x.min() + 1e-8)
    n = len(x)
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.4 * ncols, 1.5 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(x[i].permute(1, 2, 0).clamp(0, 1).numpy())
            if labels is not None:
                ax.set_title(str(labels[i]), fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def bars(values: dict[str, float], errors: dict[str, float] | None = None, ylabel: str = "accuracy",
         ax=None, title: str | None = None):
    """One bar per entry, optional error bars, value printed on each bar."""
    ax = _ax(ax)
    names = list(values)
    heights = [values[n] for n in names]
    err = [errors.get(n, 0) for n in names] if errors else None
    rects = ax.bar(names, heights, yerr=err, capsize=4, color=plt.cm.tab10.colors[: len(names)])
    ax.bar_label(rects, fmt="%.2f", fontsize=8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.tick_params(axis="x", rotation=20)
    return ax
