"""Domain-adversarial training (DANN; Ganin & Lempitsky 2015, Ganin et al. 2016), written out.

A domain classifier learns to tell source images from (unlabelled) target images by their features;
a *gradient reversal* layer between it and the features flips the sign of its gradient, so the
features are pushed to make the domains indistinguishable while the label head keeps them useful.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from course_utils.layers import set_bn_eval
from course_utils.repro import get_device
from course_utils.train import History, run_epochs, step


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, strength):
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.strength * grad, None


def reverse_gradient(x: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient is multiplied by ``-strength`` on the way back."""
    return _Reverse.apply(x, strength)


def dann_strength(progress: float) -> float:
    """Ganin et al.'s schedule 2 / (1 + exp(-10 p)) - 1: 0 at the start (the domain classifier is still
    random, its gradient is noise), towards 1 at the end of training (p in [0, 1])."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


def domain_classifier(feature_dim: int, hidden: int = 256) -> nn.Module:
    """A small MLP: pooled features -> one logit, 'this image is from the target domain'."""
    return nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def fit_dann(model: nn.Sequential, domain_head: nn.Module, source, target_x: torch.Tensor, epochs: int,
             optimizer: torch.optim.Optimizer, *, weight: float = 1.0, val=None, transform=None,
             bn_eval: bool = True, batch_size: int = 32, seed: int = 0, device=None,
             patience: int | None = None, label: str | None = None) -> History:
    """Train ``model`` (``features`` then ``head``) on labelled ``source`` and unlabelled ``target_x``.

    Each step: cross-entropy on a source batch + ``weight`` x the domain loss on that batch and an
    equally large target batch, through ``reverse_gradient`` with ``dann_strength``'s schedule.
    ``optimizer`` must hold the domain head's parameters too. ``weight = 0`` is source-only training
    with the same batches. With ``val`` (labelled *source* validation: target labels are not used) the
    best epoch on it is kept and ``patience`` stops on a plateau, as in ``fit``. The schedule's
    progress counts towards the cap ``epochs``, so a run that stops early never reached full strength.
    """
    device = device or get_device()
    model.to(device), domain_head.to(device)
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(source.y) / batch_size)

    def one_epoch(epoch: int) -> tuple[float, None]:
        model.train(), domain_head.train()
        if bn_eval:
            set_bn_eval(model)
        order = torch.randperm(len(source.y), generator=gen)
        total = 0.0
        for batch in range(steps_per_epoch):
            idx = order[batch * batch_size:(batch + 1) * batch_size]
            tidx = torch.randint(len(target_x), (len(idx),), generator=gen)
            xs, ys = source.x[idx].to(device), source.y[idx].to(device)
            # source-only (weight 0) skips the target batch: same batches and steps, half the compute
            both = torch.cat([xs, target_x[tidx].to(device)]) if weight else xs
            feats = model.features(transform(both) if transform else both)
            label_loss = F.cross_entropy(model.head(feats[:len(idx)]), ys)
            loss = label_loss
            if weight:
                strength = dann_strength((epoch * steps_per_epoch + batch) / (epochs * steps_per_epoch))
                domain = torch.cat([torch.zeros(len(idx)), torch.ones(len(idx))]).to(device)
                loss = loss + weight * F.binary_cross_entropy_with_logits(
                    domain_head(reverse_gradient(feats, strength)).squeeze(1), domain)
            step(optimizer, loss)
            total += label_loss.item() * len(idx)
        return total / len(source.y), None

    return run_epochs(model, epochs, one_epoch, val_data=val, transform=transform, device=device,
                      restore_best=val is not None, patience=patience,
                      label=label or ("DANN" if weight else "source only"))


__all__ = ["reverse_gradient", "dann_strength", "domain_classifier", "fit_dann"]
