"""Pitfall detectors a student calls before trusting a number.

Each raises ``AssertionError``/``ValueError`` with what is wrong and how to fix it, or returns
quietly (``check_input_stats`` returns a report too).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from course_utils.layers import BN_TYPES


def assert_frozen(module: nn.Module, name: str = "module") -> None:
    """Every parameter of ``module`` has ``requires_grad=False``."""
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    if trainable:
        raise AssertionError(f"{name} is not frozen: {len(trainable)} parameter tensors still train "
                             f"(first: {trainable[:3]}); call freeze({name})")


def assert_trainable(module: nn.Module, name: str = "module") -> None:
    """Every parameter of ``module`` trains (e.g. the new head)."""
    frozen = [n for n, p in module.named_parameters() if not p.requires_grad]
    if frozen or not list(module.parameters()):
        raise AssertionError(f"{name} has frozen or no parameters ({frozen[:3]}); call unfreeze({name})")


def assert_bn_eval(module: nn.Module) -> None:
    """No BatchNorm layer is in training mode (its running statistics would drift)."""
    training = [n for n, m in module.named_modules() if isinstance(m, BN_TYPES) and m.training]
    if training:
        raise AssertionError(f"{len(training)} BatchNorm layers are in training mode (first: {training[:3]}); "
                             "call set_bn_eval(model) after model.train()")


@dataclass
class InputReport:
    mean: float
    std: float
    min: float
    max: float
    channel_means: list[float]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def input_report(x: torch.Tensor, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> InputReport:
    """Statistics of a normalised batch and what looks wrong with it, given the expected normalisation.

    The heuristics: a correctly normalised natural-image batch has values within a few units of
    0 and per-channel means near 0. Raw 0-255 pixels, [0, 1] pixels, the wrong mean/std and a
    single channel each leave a distinct fingerprint.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}")
    x = x.detach().float()
    lo, hi = (0 - mean[0]) / std[0], (1 - mean[0]) / std[0]  # the range [0, 1] pixels map to
    problems = []
    if x.shape[1] != 3:
        problems.append(f"{x.shape[1]} channel(s), expected 3: expand grayscale with x.expand(-1, 3, -1, -1)")
    if x.max() > 10 * max(abs(lo), abs(hi)):
        problems.append(f"max {x.max():.1f}: looks like raw 0-255 pixels; divide by 255, then normalise")
    elif x.min() >= 0 and hi - lo > 1.5:
        problems.append("no negative values: looks like [0, 1] pixels that were never normalised; "
                        "apply backbone.normalize(x)")
    elif x.min() < lo - 0.5 or x.max() > hi + 0.5:
        problems.append(f"values in [{x.min():.2f}, {x.max():.2f}] exceed [{lo:.2f}, {hi:.2f}]: normalised with "
                        "a different mean/std than this backbone expects")
    chan = x.mean(dim=(0, 2, 3)).tolist()
    return InputReport(x.mean().item(), x.std().item(), x.min().item(), x.max().item(), chan, problems)


def check_input_stats(x: torch.Tensor, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)) -> InputReport:
    """Raise ``ValueError`` if a batch does not look normalised the way the backbone expects."""
    report = input_report(x, mean, std)
    if not report.ok:
        raise ValueError("input batch looks wrongly preprocessed: " + "; ".join(report.problems))
    return report
