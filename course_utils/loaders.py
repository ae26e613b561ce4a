"""One loader per data set: ``(split, image_size, seed, per_class, **options) -> ImageSet``.

Keyword-only parameters are the data set's options (``course_utils.data`` checks names against them).
Three splits: ``train`` (what a model learns from), ``val`` (every choice: LR, epochs, depth, ...) and
``test`` (read once per reported number). Val and test never depend on ``seed``; generated train
images do (and never equal a val or test image). For ``objects`` the splits hold out whole objects.
"""
from __future__ import annotations

import hashlib
from importlib.metadata import version

import numpy as np
import torch

from . import datafiles, scenes
from .imageset import ImageSet, from_arrays, pick, to_tensor

VAL_SHAPE_SEED = 2**31 - 1  # no train seed (seed + 1 for the small seeds the course uses) reaches it
CACHE_MIN_IMAGES = 1000  # generated sets this large are cached under cache_dir(); smaller ones render fast


VAL_FRACTION = 0.2   # of what is not test: held out for choosing settings
MIN_VAL_PER_CLASS = 2


def _hold_out(groups: np.ndarray, members: np.ndarray, fraction: float, rng, minimum: int = 1) -> np.ndarray:
    """A boolean mask over ``members``: round(fraction * n) of each group's members (at least ``minimum``)."""
    out = np.zeros(len(members), bool)
    for g in np.unique(groups[members]):
        mine = np.flatnonzero(groups[members] == g)
        n = max(minimum, int(round(fraction * len(mine))))
        out[rng.choice(mine, min(n, len(mine) - 1), replace=False)] = True
    return out


def fixed_split(y: np.ndarray, split: str, test_fraction: float = 0.2, val_fraction: float = VAL_FRACTION) -> np.ndarray:
    """Indices of a stratified train/val/test split that never changes: test is round(test_fraction*n)
    per class (seed 0, as before val existed), val is round(val_fraction*rest) of the rest (seed 1)."""
    rng, is_test = np.random.default_rng(0), np.zeros(len(y), bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        is_test[rng.choice(members, int(round(test_fraction * len(members))), replace=False)] = True
    return _role_indices(y, is_test, split, val_fraction)


def _role_indices(groups: np.ndarray, is_test: np.ndarray, split: str, val_fraction: float = VAL_FRACTION,
                  minimum: int = 1) -> np.ndarray:
    """Split the non-test items into train and val by ``groups`` (a class, or an object's group)."""
    rest = np.flatnonzero(~is_test)
    is_val = _hold_out(groups, rest, val_fraction, np.random.default_rng(1), minimum)
    return {"test": np.flatnonzero(is_test), "val": rest[is_val], "train": rest[~is_val]}[split]


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
    part = "test" if split == "test" else "train"
    x, y = a[f"x_{part}"], a[f"y_{part}"]
    if part == "train":  # val: a fixed sixth of the shipped 600 train images per class (500 / 100)
        keep = _role_indices(y, np.zeros(len(y), bool), split, val_fraction=1 / 6)
        x, y = x[keep], y[keep]
    return from_arrays(x, y, [str(c) for c in a["classes"]], f"fashion_mnist/{split}", per_class, seed, image_size)


def mnist(split, image_size, seed, per_class):
    x, y = datafiles.mnist_arrays()
    keep = fixed_split(y, split)  # 320 train / 80 val / 100 test per class
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
    keep = object_split(a, split)
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


def object_split(arrays: dict, split: str) -> np.ndarray:
    """Cut-out indices of one split: test objects as shipped; val holds out 20 % of every group's
    other objects (at least 2), so no object - hence no render of it - is in two splits."""
    if split == "test" and "redacted" in arrays:
        raise datafiles.DataError("the test objects are not available here: a graded notebook runs without "
                                  "them (the grader scores on them). Use 'train' and 'val'.")
    return _role_indices(arrays["group"], arrays["split"].astype(bool), split, minimum=MIN_VAL_PER_CLASS)


def textures(split, image_size, seed, per_class, *, crops=None, crop_size=128, grayscale=False):
    crops = positive(crops, per_class or {"train": 100, "val": 50, "test": 50}[split], "crops")
    crop_size = positive(crop_size, 128, "crop_size")
    crop_seed = seed if split == "train" else 0  # val and test crops never depend on seed
    x, y, boxes = scenes.texture_crops(split, crops, crop_size, image_size, crop_seed, bool(grayscale))
    return from_arrays(x, y, list(scenes.TEXTURES), f"textures/{split}", per_class, seed, image_size,
                       meta={"box": boxes})


def shapes(split, image_size, seed, per_class, *, count=None, colour=True, background="white"):
    n = positive(count, per_class or {"train": 200, "val": 100, "test": 100}[split], "count")
    choice(background, scenes.SHAPE_BACKGROUNDS, "background")
    # test draws with seed 0, val with VAL_SHAPE_SEED, train with seed + 1: three disjoint streams
    shape_seed = {"train": seed + 1, "val": VAL_SHAPE_SEED, "test": 0}[split]
    key = f"shapes:{split}:{image_size}:{shape_seed}:{n}:{bool(colour)}:{background}:{version('scikit-image')}"
    x = _generated(key, n * len(scenes.SHAPES),
                   lambda: scenes.shape_images(n, image_size, shape_seed, bool(colour), background)[0])
    y = np.repeat(np.arange(len(scenes.SHAPES)), n)
    return from_arrays(x, y, list(scenes.SHAPES), f"shapes/{split}", per_class, seed, image_size)
