"""The course's standard experiments, one function each: scratch, linear probe, fine-tune, LP-FT.

Notebooks compare these on the same (train, val, test) split so a table row is one call. Every
recipe takes images in [0, 1] (an ``ImageSet``) and returns a ``Result``: ``val_accuracy`` is what
a notebook chooses with (LR, epochs, depth), ``accuracy`` is the test number it reports. Pass
``test=None`` while choosing: the test set is then not read at all.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from course_utils.backbones import load_backbone
from course_utils.features import cached_embeddings, linear_probe, train_linear_head
from course_utils.layers import count_trainable, freeze, freeze_to, layer_groups, param_groups, replace_head
from course_utils.repro import get_device, seed_everything
from course_utils.train import evaluate, fit


@dataclass
class Result:
    method: str
    accuracy: float
    seconds: float
    trainable: int
    model: nn.Module | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict)
    val_accuracy: float | None = None


def flip_and_shift(x: torch.Tensor, max_shift: int = 4) -> torch.Tensor:
    """Cheap augmentation on a batch: random horizontal flip and a small random translation."""
    flip = torch.rand(len(x), device=x.device) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    if max_shift:
        dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,)))
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    return x


def _normalizer(backbone, augment: bool):
    """Normalise (and optionally augment) each batch on the device, inside ``fit``."""
    def transform(x):
        return backbone.normalize(flip_and_shift(x) if augment and torch.is_grad_enabled() else x)
    return transform


def _score(model, backbone, data) -> float | None:
    """Accuracy of a scikit-learn probe on ``data`` (None when there is no such set)."""
    if data is None:
        return None
    return float(model.score(cached_embeddings(backbone, data).numpy(), data.y.numpy()))


def probe(backbone, train, test, *, val=None, C: float = 1.0) -> Result:
    """Linear probe: frozen features (cached) + logistic regression."""
    start = time.perf_counter()
    ftr = cached_embeddings(backbone, train)
    model = linear_probe(ftr, train.y, ftr, train.y, C=C).model
    n_classes = len(train.classes)
    acc = _score(model, backbone, test)
    return Result("linear probe", float("nan") if acc is None else acc, time.perf_counter() - start,
                  backbone.feature_dim * n_classes + n_classes, model, val_accuracy=_score(model, backbone, val))


def finetune(backbone, train, test, *, epochs: int = 5, lr: float = 1e-3, head_lr: float | None = None,
             freeze_groups: int = 0, bn_eval: bool = False, head: nn.Linear | None = None,
             augment: bool = False, batch_size: int = 32, seed: int = 0, method: str = "fine-tune",
             optimizer: str = "adam", val=None, select_epoch: bool = False) -> Result:
    """Fine-tune ``features`` + a head; ``freeze_groups`` keeps the first groups frozen (partial).

    ``head_lr`` gives the head its own learning rate (discriminative LRs); ``head`` starts
    from a given (e.g. probed) head instead of a random one: that is LP-FT. With ``val``,
    ``select_epoch`` keeps the epoch that scored best on it (early stopping on validation).
    """
    seed_everything(seed)
    model = replace_head(backbone, len(train.classes))
    if head is not None:
        model.head.load_state_dict(head.state_dict())
    freeze_to(model, freeze_groups)
    lrs = {"features": lr, "head": head_lr or lr}
    groups = param_groups(model, {k: v for k, v in lrs.items() if count_trainable(getattr(model, k))})
    opt = torch.optim.Adam(groups) if optimizer == "adam" else torch.optim.SGD(groups, momentum=0.9)
    hist = fit(model, train, epochs, opt, batch_size=batch_size, transform=_normalizer(backbone, augment),
               bn_eval=bn_eval, seed=seed, progress=False, val_data=val, restore_best=select_epoch)
    acc = float("nan") if test is None else evaluate(model, test, transform=backbone.normalize)
    val_acc = None if val is None else evaluate(model, val, transform=backbone.normalize)
    return Result(method, acc, hist.seconds, count_trainable(model), model, {"history": hist}, val_acc)


def lp_ft(backbone, train, test, *, epochs: int = 5, lr: float = 1e-4, seed: int = 0, **kwargs) -> Result:
    """LP-FT (Kumar et al. 2022): fit a linear head on frozen features, then fine-tune from it.

    Starting from a good head means the early, large gradients no longer flow into the
    features to fix a random head, so the features are distorted less.
    """
    start = time.perf_counter()
    ftr = cached_embeddings(backbone, train)
    head = train_linear_head(ftr, train.y, len(train.classes), seed=seed)
    res = finetune(backbone, train, test, epochs=epochs, lr=lr, head=head, seed=seed, method="LP-FT", **kwargs)
    res.seconds = time.perf_counter() - start
    return res


def scratch(train, test, *, arch: str = "small_cnn", epochs: int = 10, lr: float = 1e-3, augment: bool = False,
            batch_size: int = 32, seed: int = 0, val=None, select_epoch: bool = False) -> Result:
    """The baseline: the same recipe from random weights (no transfer); ``val`` and ``select_epoch``
    as in ``finetune`` (keep the best epoch on validation)."""
    seed_everything(seed)
    size = int(train.x.shape[-1])
    backbone = load_backbone(arch, pretrained=False, image_size=size) if arch != "small_cnn" \
        else load_backbone(arch, image_size=size)
    res = finetune(backbone, train, test, epochs=epochs, lr=lr, augment=augment, batch_size=batch_size,
                   seed=seed, method=f"scratch ({arch})", val=val, select_epoch=select_epoch)
    return res


def feature_distance(before: nn.Module, after: nn.Module, x: torch.Tensor, backbone) -> float:
    """How far fine-tuning moved the features: mean relative L2 change of embeddings on ``x``."""
    from course_utils.features import embed
    fa = embed(before, x, transform=backbone.normalize)
    fb = embed(after, x, transform=backbone.normalize)
    return ((fb - fa).norm(dim=1) / fa.norm(dim=1).clamp_min(1e-8)).mean().item()


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy with no gradients: a reference point to compare a fine-tuned model against."""
    return freeze(copy.deepcopy(module)).eval()


__all__ = ["Result", "probe", "finetune", "lp_ft", "scratch", "feature_distance", "frozen_copy",
           "flip_and_shift", "layer_groups", "get_device"]
