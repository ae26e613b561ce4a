"""Catastrophic forgetting, measured: does a fine-tuned backbone still see what ImageNet taught it?

The pretrained head is a probe of the *old* task: put it on the fine-tuned ``features`` and
compare its top-1 ImageNet class with the original model's on the same images. Agreement 1.0
means the old task is intact; a frozen backbone (linear probe, or LoRA before its update moves)
scores 1.0 by construction.

    ref = imagenet_top1(bb.features, bb.head, x)           # x normalised like the backbone expects
    imagenet_agreement(tuned.features, bb.head, x, ref)     # fraction of images with the same class
"""
from __future__ import annotations

import torch
from torch import nn

from course_utils.train import predict


def photo_batch(photos, preprocess) -> torch.Tensor:
    """Stack PIL images (or ``Photo`` objects with an ``.image``) through a backbone's ``preprocess``."""
    images = [getattr(p, "image", p) for p in photos]
    if not images:
        raise ValueError("no photos given")
    return torch.stack([preprocess(im) for im in images])


def imagenet_logits(features: nn.Module, head: nn.Module, x: torch.Tensor, device=None) -> torch.Tensor:
    """ImageNet logits of ``head(features(x))`` for a normalised batch ``x`` (eval mode, on CPU after)."""
    if x.dim() != 4:
        raise ValueError(f"expected a normalised image batch (B, 3, H, W), got shape {tuple(x.shape)}")
    return predict(nn.Sequential(features, head), x, device=device)


def imagenet_top1(features: nn.Module, head: nn.Module, x: torch.Tensor, device=None) -> torch.Tensor:
    """The top-1 ImageNet class index per image."""
    return imagenet_logits(features, head, x, device).argmax(1)


def imagenet_agreement(features: nn.Module, head: nn.Module, x: torch.Tensor, reference: torch.Tensor,
                       device=None) -> float:
    """Fraction of images whose top-1 class under ``head(features(.))`` equals ``reference`` (indices)."""
    reference = torch.as_tensor(reference).cpu()
    if reference.shape != (len(x),):
        raise ValueError(f"reference must hold one class index per image ({len(x)}), got shape "
                         f"{tuple(reference.shape)}")
    return (imagenet_top1(features, head, x, device) == reference).float().mean().item()


def top1_names(indices: torch.Tensor, categories: list[str]) -> list[str]:
    """Class names for top-1 indices (for tables of what the model now thinks a photo is)."""
    return [categories[int(i)] for i in indices]
