"""One loader per data set: ``(split, image_size, seed, per_class, **options) -> ImageSet``.

Keyword-only parameters are the data set's options (``course_utils.data`` checks names against them).
Test splits never depend on ``seed``; generated train images do (and never equal a test image).
"""
from __future__ import annotations

import hashlib
from importlib.metadata import version

import numpy as np
import torch

from . import datafiles, scenes
from .imageset import ImageSet, from_arrays, pick, to_tensor

CACHE_MIN_IMAGES = 1000  # generated sets this large are cached under cache_dir(); smaller ones render fast


def fixed_split(y: np.ndarray, split: str, test_fraction: float = 0.2) -> np.ndarray:
    """Indices of a stratified train/test split that never changes (seed 0, round(fraction*n) per class)."""
    rng, is_test = np.random.default_rng(0), np.zeros(len(y), bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        is_test[rng.choice(members, int(round(test_fraction * len(members))), replace=False)] = True
    return np.flatnonzero(is_test == (split == "test"))


def choice(value, allowed, what):
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(map(repr, allowed))}")
    return value


def positive(value, default, what) -> int:
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return int(value)


def _generated(key: str, n: int, build) -> np.ndarray:
    if n < CACHE_MIN_IMAGES:
        return build()
    return datafiles.cached(key, lambda: {"x": build()})["x"]


def fashion_mnist(split, image_size, seed, per_class):
    a = datafiles.fashion_arrays()
    return from_arrays(a[f"x_{split}"], a[f"y_{split}"], [str(c) for c in a["classes"]],
                       f"fashion_mnist/{split}", per_class, seed, image_size)


def mnist(split, image_size, seed, per_class):
    x, y = datafiles.mnist_arrays()
    keep = fixed_split(y, split)  # 400 train / 100 test per class
    return from_arrays(x[keep], y[keep], [str(d) for d in range(10)], f"mnist/{split}", per_class, seed,
                       image_size)


def digits(split, image_size, seed, per_class, *, interpolation="nearest"):
    choice(interpolation, ("nearest", "bilinear"), "interpolation")
    x, y = datafiles.digits_arrays()
    keep = fixed_split(y, split)
    mode = "nearest-exact" if interpolation == "nearest" else "bilinear"
    return from_arrays(x[keep] / 16.0, y[keep], [str(d) for d in range(10)], f"digits/{split}", per_class,
                       seed, image_size, mode=mode)


def objects(split, image_size, seed, per_class, *, views=1, background="white"):
    views = positive(views, 1, "views")
    choice(background, scenes.BACKGROUNDS, "background")
    a = datafiles.objects_arrays()
    classes = [str(g) for g in a["groups"]]
    keep = np.flatnonzero(a["split"] == (split == "test"))
    y = np.repeat(a["group"][keep], views)
    item, view = np.repeat(keep, views), np.tile(np.arange(views), len(keep))
    idx = pick(y, classes, per_class, seed, f"objects/{split} with views={views}")
    item, view, render_seed = item[idx], view[idx], seed if split == "train" else 0
    chosen = hashlib.sha256(np.stack([item, view]).astype(np.int64).tobytes()).hexdigest()[:16]
    key = (f"objects:{split}:{image_size}:{render_seed}:{background}:{chosen}:"
           f"{datafiles.FILES['objects.npz']['sha256'][:16]}:{version('pillow')}")
    x = _generated(key, len(idx), lambda: scenes.render_objects(
        a["images"][item], a["object_id"][item], view, image_size, render_seed, background))
    meta = {"object_id": a["object_id"][item], "view": view, "file": a["file"][item]}
    return ImageSet(to_tensor(x, image_size), torch.from_numpy(y[idx]).long(), classes, f"objects/{split}", meta)


def textures(split, image_size, seed, per_class, *, crops=None, crop_size=128, grayscale=False):
    crops = positive(crops, per_class or {"train": 100, "test": 50}[split], "crops")
    crop_size = positive(crop_size, 128, "crop_size")
    crop_seed = seed if split == "train" else 0
    x, y, boxes = scenes.texture_crops(split, crops, crop_size, image_size, crop_seed, bool(grayscale))
    return from_arrays(x, y, list(scenes.TEXTURES), f"textures/{split}", per_class, seed, image_size,
                       meta={"box": boxes})


def shapes(split, image_size, seed, per_class, *, count=None, colour=True, background="white"):
    n = positive(count, per_class or {"train": 200, "test": 100}[split], "count")
    choice(background, scenes.SHAPE_BACKGROUNDS, "background")
    shape_seed = seed + 1 if split == "train" else 0  # train seeds start at 1: never the test images
    key = f"shapes:{split}:{image_size}:{shape_seed}:{n}:{bool(colour)}:{background}:{version('scikit-image')}"
    x = _generated(key, n * len(scenes.SHAPES),
                   lambda: scenes.shape_images(n, image_size, shape_seed, bool(colour), background)[0])
    y = np.repeat(np.arange(len(scenes.SHAPES)), n)
    return from_arrays(x, y, list(scenes.SHAPES), f"shapes/{split}", per_class, seed, image_size)
