"""Controlled distribution shifts: the same images, moved away from the training distribution by a
known amount (``strength`` 0 = unchanged, 1 = the full shift). Used to build out-of-distribution
test splits; ``course_utils.data.shift`` is the public entry point.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SHIFT_KINDS = {
    "rotate": "rotate every image by strength x 180 degrees (border pixels extend into the corners)",
    "blur": "Gaussian blur, sigma = strength x image_size / 16",
    "invert": "blend towards the negative: (1 - strength) x + strength (1 - x); strength 1 is 1 - x",
    "noise": "add seeded Gaussian noise with sd = 0.3 x strength, clipped to [0, 1]",
    "contrast": "shrink contrast around each image's mean by a factor 1 - 0.9 x strength",
    "colour": "blend towards the channel swap RGB -> BRG (a hue change; no effect on grey images)",
    "permute": "a fixed seeded permutation of a strength fraction of pixel positions (the domain-gap knob)",
}


def apply_shift(x: torch.Tensor, kind: str, strength: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Shifted copy of a float image batch N x C x H x W in [0, 1]."""
    if kind not in SHIFT_KINDS:
        raise ValueError(f"unknown shift kind {kind!r}; allowed: {', '.join(SHIFT_KINDS)}")
    if not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be a number in [0, 1], got {strength!r}")
    s = float(strength)
    if s == 0.0 or len(x) == 0:
        return x.clone()
    if kind == "rotate":
        return _rotate(x, math.pi * s)
    if kind == "blur":
        from torchvision.transforms.functional import gaussian_blur

        sigma = s * x.shape[-1] / 16
        return gaussian_blur(x, kernel_size=2 * math.ceil(3 * sigma) + 1, sigma=sigma).clamp(0, 1)
    if kind == "invert":
        return (1 - s) * x + s * (1 - x)
    if kind == "noise":
        gen = torch.Generator().manual_seed(seed)
        return (x + 0.3 * s * torch.randn(x.shape, generator=gen, dtype=x.dtype)).clamp(0, 1)
    if kind == "contrast":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return mean + (x - mean) * (1 - 0.9 * s)
    if kind == "colour":
        return (1 - s) * x + s * x[:, [2, 0, 1]]
    return _permute(x, s, seed)


def _rotate(x: torch.Tensor, angle: float) -> torch.Tensor:
    if abs(angle - math.pi) < 1e-9:  # exact half turn: no interpolation blur
        return x.flip(-1, -2)
    cos, sin = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False).clamp(0, 1)


def permutation(height: int, width: int, strength: float, seed: int = 0) -> torch.Tensor:
    """Index map over H*W pixel positions: a seeded set of round(strength*H*W) positions is cycled
    (each chosen pixel takes the value of the next one), so every chosen pixel moves and the rest stay."""
    n = height * width
    gen = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(n, generator=gen)[: int(round(strength * n))]
    index = torch.arange(n)
    if len(chosen) > 1:
        index[chosen] = chosen.roll(-1)
    return index


def _permute(x: torch.Tensor, strength: float, seed: int) -> torch.Tensor:
    n, c, h, w = x.shape
    index = permutation(h, w, strength, seed)
    return x.reshape(n, c, h * w)[:, :, index].reshape(n, c, h, w)
