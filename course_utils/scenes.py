"""What the course does to pixels: it renders the generated data sets (object cut-outs composited
onto backgrounds, texture crops, procedural shapes; uint8 N x S x S x 3, seeded per image so any
subset renders the same pixels) and shifts images by a known amount (``apply_shift`` on float
tensors; ``course_utils.datasets.shift`` is the public entry point).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

BACKGROUNDS = ("white", "noise", "texture")
SHAPES = ("circle", "rectangle", "triangle", "ellipse")
SHAPE_BACKGROUNDS = ("white", "black", "noise")
# skimage.data images that ship inside the scikit-image wheel (no download); name -> function
TEXTURES = {"brick": "brick", "grass": "grass", "gravel": "gravel",
            "stars": "hubble_deep_field", "tissue": "immunohistochemistry"}


@lru_cache(maxsize=None)
def texture_images() -> dict[str, np.ndarray]:
    """The texture source images as uint8 H x W x 3 (greyscale ones repeated to 3 channels)."""
    import skimage.data

    out = {}
    for name, func in TEXTURES.items():
        img = np.asarray(getattr(skimage.data, func)())
        out[name] = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img[..., :3]
    return out


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None))


def texture_crops(split: str, crops: int, crop_size: int, size: int, seed: int, grayscale: bool = False):
    """``crops`` random crops per texture: test from the right half of each image; the left half's
    bottom ``crop_size`` rows give val, the rows above them train, so no pixel is in two splits.

    Returns (x uint8 N x size x size x 3, y, boxes N x 4 as (top, left, bottom, right) in source pixels).
    """
    xs, ys, boxes = [], [], []
    for label, (name, img) in enumerate(texture_images().items()):
        h, w = img.shape[:2]
        half = w // 2
        if crop_size > min(h // 2, half):
            raise ValueError(f"crop_size={crop_size} is too large for texture {name!r} ({h}x{w}); "
                             f"allowed: at most {min(h // 2, half)}")
        rng = np.random.default_rng([seed, label, ("train", "test", "val").index(split)])
        left0 = half if split == "test" else 0
        tops = {"train": (0, h - 2 * crop_size + 1), "val": (h - crop_size, h - crop_size + 1),
                "test": (0, h - crop_size + 1)}[split]
        for _ in range(crops):
            top, left = rng.integers(*tops), left0 + rng.integers(0, half - crop_size + 1)
            crop = img[top:top + crop_size, left:left + crop_size]
            if grayscale:
                crop = np.repeat(crop.mean(axis=2, keepdims=True).round().astype(np.uint8), 3, axis=2)
            xs.append(_resize(np.ascontiguousarray(crop), size))
            ys.append(label)
            boxes.append((top, left, top + crop_size, left + crop_size))
    return np.stack(xs), np.array(ys, dtype=np.int64), np.array(boxes, dtype=np.int64)


def background(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A float32 size x size x 3 background in [0, 1]: plain white, smooth colour noise, or a texture crop."""
    if kind == "white":
        return np.ones((size, size, 3), np.float32)
    if kind == "noise":
        coarse = rng.random((8, 8, 3), dtype=np.float32)
        smooth = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize(
            (size, size), Image.Resampling.BICUBIC), np.float32) / 255
        return np.clip(smooth + rng.normal(0, 0.08, smooth.shape).astype(np.float32), 0, 1)
    if kind == "texture":
        textures = list(texture_images().values())
        img = textures[rng.integers(len(textures))]
        side = int(rng.integers(size, min(img.shape[:2]) // 2 + 1))
        top, left = rng.integers(0, img.shape[0] - side + 1), rng.integers(0, img.shape[1] - side + 1)
        return _resize(np.ascontiguousarray(img[top:top + side, left:left + side]), size).astype(np.float32) / 255
    raise ValueError(f"unknown background {kind!r}; allowed: {', '.join(BACKGROUNDS)}")


def composite(cutout: np.ndarray, size: int, rng: np.random.Generator, kind: str, canonical: bool) -> np.ndarray:
    """One view of an RGBA cut-out on a background. The canonical view is centred at 90 % size,
    unflipped; other views get a random scale in [0.7, 1.0], a random position and a 50 % flip."""
    bg = background(kind, size, rng)
    scale = 0.9 if canonical else rng.uniform(0.7, 1.0)
    side = max(1, int(round(size * scale)))
    obj = Image.fromarray(cutout, "RGBA").convert("RGBa").resize((side, side), Image.Resampling.LANCZOS)
    if not canonical and rng.random() < 0.5:
        obj = obj.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    premult = np.asarray(obj, np.float32) / 255  # premultiplied RGB + alpha
    top, left = ((size - side) // 2,) * 2 if canonical else rng.integers(0, size - side + 1, size=2)
    patch = bg[top:top + side, left:left + side]
    patch[:] = patch * (1 - premult[..., 3:]) + premult[..., :3]
    return (np.clip(bg, 0, 1) * 255).round().astype(np.uint8)


def render_objects(cutouts: np.ndarray, object_ids: np.ndarray, views: np.ndarray, size: int, seed: int,
                   background_kind: str = "white") -> np.ndarray:
    """Image i shows cut-out i as view ``views[i]`` (view 0 is the canonical view); the pixels depend
    only on (seed, object id, view), so any subset renders identically."""
    if background_kind not in BACKGROUNDS:
        raise ValueError(f"unknown background {background_kind!r}; allowed: {', '.join(BACKGROUNDS)}")
    out = np.empty((len(cutouts), size, size, 3), np.uint8)
    for i, (cut, oid, view) in enumerate(zip(cutouts, object_ids, views)):
        rng = np.random.default_rng([seed, int(oid), int(view)])
        out[i] = composite(cut, size, rng, background_kind, canonical=view == 0)
    return out


def shape_images(count: int, size: int, seed: int, colour: bool = True, background_kind: str = "white"):
    """``count`` images per shape class, one shape each (skimage.draw.random_shapes)."""
    from skimage.draw import random_shapes

    if background_kind not in SHAPE_BACKGROUNDS:
        raise ValueError(f"unknown background {background_kind!r}; allowed: {', '.join(SHAPE_BACKGROUNDS)}")
    xs, ys = np.empty((count * len(SHAPES), size, size, 3), np.uint8), []
    for label, shape in enumerate(SHAPES):
        for j in range(count):
            rng, labels = np.random.default_rng([seed, label, j]), []
            while len(labels) != 1:  # random_shapes gives up (0 shapes) when a shape does not fit
                img, labels = random_shapes((size, size), max_shapes=1, min_shapes=1, shape=shape,
                                            min_size=max(4, size // 4), max_size=int(size * 0.9),
                                            channel_axis=-1 if colour else None,
                                            intensity_range=((0, 200),) if colour else (0, 200),
                                            rng=int(rng.integers(2**31)))
            img = img if colour else np.repeat(img[..., None], 3, axis=2)
            if background_kind != "white":
                mask = (img != 255).any(axis=2, keepdims=True)
                bg = (background(background_kind, size, rng) * 255).astype(np.uint8) \
                    if background_kind == "noise" else np.zeros_like(img)
                img = np.where(mask, img, bg)
            xs[len(ys)] = img
            ys.append(label)
    return xs, np.array(ys, dtype=np.int64)


# ---- controlled distribution shifts: strength 0 = unchanged, 1 = the full shift ---------------

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
