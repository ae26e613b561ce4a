"""Plotting: each function takes data and returns a matplotlib Axes (or Figure) to show or save."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
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


def curve_with_band(xs, runs: dict[str, np.ndarray], xlabel: str, ylabel: str = "accuracy", ax=None,
                    logx: bool = False):
    """Mean line and ±1 std band for each method; ``runs[name]`` is (seeds, len(xs))."""
    ax = _ax(ax)
    for name, values in runs.items():
        values = np.asarray(values, dtype=float)
        mean, std = values.mean(0), values.std(0)
        ax.plot(xs, mean, marker="o", label=name)
        ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


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


def history(h, ax=None, label: str = ""):
    """Training loss and validation accuracy per epoch of a ``train.History``."""
    ax = _ax(ax)
    epochs = np.arange(1, len(h.loss) + 1)
    ax.plot(epochs, h.loss, label=f"{label} train loss".strip())
    if h.val_acc:
        ax.plot(epochs, h.val_acc, linestyle="--", label=f"{label} val acc".strip())
    ax.set_xlabel("epoch")
    ax.legend()
    return ax


def matrix(values: np.ndarray, row_labels, col_labels, ax=None, fmt: str = "{:.2f}", title: str | None = None,
           annotations=None):
    """A labelled heat map with a number (or text from ``annotations``) in each cell."""
    ax = _ax(ax)
    values = np.asarray(values, dtype=float)
    ax.imshow(values, cmap="viridis")
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            text = annotations[i][j] if annotations is not None else fmt.format(values[i, j])
            ax.text(j, i, text, ha="center", va="center", color="w", fontsize=9)
    if title:
        ax.set_title(title)
    return ax
