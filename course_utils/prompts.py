"""Visual prompting for a frozen CNN (Elsayed et al. 2019; Bahng et al. 2022), written out.

The closest a CNN gets to prompt tuning: a learned pattern *added to the input pixels* (here on a
border of ``width`` pixels, in the normalised input space); the network and all its weights stay frozen.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class VisualPrompt(nn.Module):
    """``x + pattern`` where the pattern is learnable on a border ``width`` pixels wide of an
    ``image_size`` image and zero inside (``width >= image_size // 2`` covers the whole image).
    Only the border pixels are parameters, so ``count_trainable`` counts what can change. Starts at
    zero: the prompted model starts exactly as the unprompted one."""

    def __init__(self, image_size: int, width: int = 4, channels: int = 3):
        super().__init__()
        if width < 1 or image_size < 1:
            raise ValueError(f"need width >= 1 and image_size >= 1 pixels, got width={width!r}, image_size={image_size!r}")
        mask = torch.ones(image_size, image_size, dtype=torch.bool)
        inner = image_size - 2 * width
        if inner > 0:
            mask[width:width + inner, width:width + inner] = False
        self.image_size = image_size
        self.register_buffer("where", mask.flatten().nonzero().squeeze(1))
        self.values = nn.Parameter(torch.zeros(channels, len(self.where)))

    def pattern(self) -> torch.Tensor:
        """The additive pattern as an image (1, C, H, W)."""
        flat = self.values.new_zeros(self.values.shape[0], self.image_size * self.image_size)
        flat = flat.index_copy(1, self.where, self.values)
        return flat.view(1, -1, self.image_size, self.image_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(f"the prompt was made for {self.image_size}x{self.image_size} images, got "
                             f"{tuple(x.shape[-2:])}: build it with VisualPrompt(image_size={x.shape[-1]})")
        return x + self.pattern()


def prompted(model: nn.Module, image_size: int, width: int = 4) -> nn.Sequential:
    """``model`` with a ``VisualPrompt`` in front (``.prompt``, then ``.model``); the model's own
    trainable flags are left as they are (freeze what should stay frozen)."""
    return nn.Sequential(OrderedDict(prompt=VisualPrompt(image_size, width), model=model))


__all__ = ["VisualPrompt", "prompted"]
