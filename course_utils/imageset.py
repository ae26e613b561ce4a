"""The :class:`ImageSet` container every data set loads into, and the array -> tensor conversion."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .config import is_fast

FAST_PER_CLASS = 50


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
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(y == c), int(per_class), replace=False) for c in range(len(classes))]
    return np.sort(np.concatenate(chosen))


def from_arrays(x, y, classes, name, per_class, seed, image_size, mode="bilinear", meta=None) -> ImageSet:
    """Subsample first (cheap), then convert only the chosen images to tensors."""
    idx = pick(y, classes, per_class, seed, name)
    meta = {k: np.asarray(v)[idx] for k, v in (meta or {}).items()}
    x = to_tensor(x[idx], image_size, mode)
    return ImageSet(x, torch.from_numpy(y[idx]).long(), list(classes), name, meta)
