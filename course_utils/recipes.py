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

import numpy as np
import torch
from torch import nn

from course_utils.backbones import load_backbone
from course_utils.evaluation import item_scores
from course_utils.features import EMBED_BATCH, cached_embeddings, linear_probe, train_linear_head
from course_utils.layers import (count_trainable, freeze, freeze_to, layer_groups, layerwise_lr_groups, param_groups,
                                 replace_head)
from course_utils.repro import get_device, seed_everything
from course_utils.train import fit, predict


@dataclass
class Result:
    """One run of a recipe. ``val_accuracy`` chooses; ``accuracy`` (test) reports. ``items`` and
    ``val_items`` score each independent test / validation unit (object, or image when renders are
    not grouped), the input of ``evaluation.compare``; None when that set was not given."""

    method: str
    accuracy: float
    seconds: float
    trainable: int
    model: nn.Module | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict)
    val_accuracy: float | None = None
    items: np.ndarray | None = field(default=None, repr=False)
    val_items: np.ndarray | None = field(default=None, repr=False)

    @property
    def history(self):
        return self.extra.get("history")


def flip_and_shift(x: torch.Tensor, max_shift: int = 4) -> torch.Tensor:
    """Cheap augmentation on a batch: random horizontal flip and a small random translation."""
    flip = torch.rand(len(x), device=x.device) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    if max_shift:
        dx, dy = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,)))
        x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    return x


def _augmented(backbone):
    """The training transform with augmentation: flip and shift each batch, then normalise (on the device)."""
    return lambda x: backbone.normalize(flip_and_shift(x))


def _units(data):
    return getattr(data, "meta", {}).get("object_id")


def _scored(correct, data) -> tuple[float, np.ndarray]:
    """Accuracy over rows and the per-unit scores ``compare`` pairs."""
    correct = np.asarray(correct, float)
    return float(correct.mean()), item_scores(correct, _units(data))


def _probe_scores(model, backbone, data) -> tuple[float | None, np.ndarray | None]:
    """A scikit-learn probe's accuracy and per-unit scores on ``data`` (None when there is no such set)."""
    if data is None:
        return None, None
    predicted = model.predict(cached_embeddings(backbone, data).numpy())
    return _scored(predicted == data.y.numpy(), data)


def _model_scores(model, data, transform) -> tuple[float | None, np.ndarray | None]:
    if data is None:
        return None, None
    x, y = data.x, data.y
    return _scored((predict(model, x, transform=transform).argmax(1) == y).numpy(), data)


def probe(backbone, train, test, *, val=None, C: float = 1.0) -> Result:
    """Linear probe: frozen features (cached) + logistic regression."""
    start = time.perf_counter()
    ftr = cached_embeddings(backbone, train)
    model = linear_probe(ftr, train.y, ftr, train.y, C=C).model
    n_classes = len(train.classes)
    acc, items = _probe_scores(model, backbone, test)
    val_acc, val_items = _probe_scores(model, backbone, val)
    return Result("linear probe", float("nan") if acc is None else acc, time.perf_counter() - start,
                  backbone.feature_dim * n_classes + n_classes, model, val_accuracy=val_acc, items=items,
                  val_items=val_items)


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
              "sgd": lambda groups: torch.optim.SGD(groups, momentum=0.9)}


def finetune(backbone, train, test, *, epochs: int = 5, lr: float = 1e-3, head_lr: float | None = None,
             lr_decay: float | None = None, freeze_groups: int = 0, bn_eval: bool = False,
             head: nn.Linear | None = None, augment: bool = False, batch_size: int = 32, seed: int = 0,
             method: str = "fine-tune", optimizer: str = "adam", val=None, select_epoch: bool = False,
             patience: int | None = None, cache_frozen: bool = True) -> Result:
    """Fine-tune ``features`` + a head; ``freeze_groups`` keeps the first groups frozen (partial).

    ``head_lr`` gives the head its own learning rate (discriminative LRs); ``lr_decay`` instead gives
    every layer group its own, ``head_lr * lr_decay**depth`` (layer-wise decay). ``head`` starts from a
    given (e.g. probed) head instead of a random one: that is LP-FT. With ``val``, ``select_epoch``
    keeps the epoch that scored best on it and ``patience`` stops on a validation plateau (``epochs``
    is then the cap). ``optimizer``: "adam", "adamw" or "sgd" (momentum 0.9).

    With frozen groups, fixed BatchNorm statistics and no augmentation, the frozen prefix maps each
    image to the same activations every epoch, so they are computed once (``cache_frozen``): the
    same weights come out (tests/test_recipes.py), in less time (benchmarks/prefix_cache.py).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    start = time.perf_counter()
    seed_everything(seed)
    model = replace_head(backbone, len(train.classes))
    if head is not None:
        model.head.load_state_dict(head.state_dict())
    freeze_to(model, freeze_groups)
    head_lr = head_lr or lr
    if lr_decay is not None:
        groups = layerwise_lr_groups(model, head_lr, lr_decay)
    else:
        lrs = {"features": lr, "head": head_lr}
        groups = param_groups(model, {k: v for k, v in lrs.items() if count_trainable(getattr(model, k))})
    opt = OPTIMIZERS[optimizer](groups)
    options = dict(batch_size=batch_size, bn_eval=bn_eval, seed=seed, progress=False, restore_best=select_epoch,
                   patience=patience, label=method)
    if cache_frozen and freeze_groups > 0 and bn_eval and not augment:
        top, (train_a, val_a) = frozen_prefix(model, backbone, freeze_groups, train, val)
        hist = fit(top, train_a, epochs, opt, val_data=val_a, **options)
    else:
        hist = fit(model, train, epochs, opt, val_data=val, eval_transform=backbone.normalize,
                   transform=_augmented(backbone) if augment else backbone.normalize, **options)
    seconds = time.perf_counter() - start   # training, the prefix's activations included
    acc, items = _model_scores(model, test, backbone.normalize)
    val_acc, val_items = _model_scores(model, val, backbone.normalize)
    return Result(method, float("nan") if acc is None else acc, seconds, count_trainable(model), model,
                  {"history": hist}, val_acc, items, val_items)


class _Top(nn.Module):
    """The trainable top of a partially frozen classifier, fed the frozen prefix's cached activations.
    Its modules are the classifier's own, so training it trains the classifier."""

    def __init__(self, model: nn.Module, frozen: int):
        super().__init__()
        groups = model.features.groups()
        self.rest = nn.Sequential(*groups[frozen:])
        self.pool, self.head = model.features.pool, model.head
        self.channels_last = getattr(model.features, "channels_last", False)

    def forward(self, activations: torch.Tensor) -> torch.Tensor:
        if self.channels_last:  # the layout the full model's convolutions run in (torch.cat dropped it)
            activations = activations.contiguous(memory_format=torch.channels_last)
        return self.head(self.pool(self.rest(activations)))


@torch.no_grad()
def _prefix_activations(model, backbone, frozen: int, data) -> torch.Tensor:
    prefix = nn.Sequential(*model.features.groups()[:frozen]).eval()
    channels_last = getattr(model.features, "channels_last", False)

    def prepare(x):
        x = backbone.normalize(x)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x
    return predict(prefix, data.x, batch_size=EMBED_BATCH, transform=prepare)


def frozen_prefix(model, backbone, frozen: int, *datasets):
    """The top of ``model`` above its first ``frozen`` layer groups, and each of ``datasets`` (None kept)
    as (activations of the frozen prefix, labels): train the top on them instead of the images."""
    if not 0 < frozen <= len(model.features.groups()):
        raise ValueError(f"frozen must be 1..{len(model.features.groups())} feature groups, got {frozen}")
    cached = [None if d is None else (_prefix_activations(model, backbone, frozen, d), d.y) for d in datasets]
    return _Top(model, frozen), cached


def lp_ft(backbone, train, test, *, epochs: int = 5, lr: float = 1e-4, seed: int = 0, bn_eval: bool = True,
          method: str = "LP-FT", **kwargs) -> Result:
    """LP-FT (Kumar et al. 2022): fit a linear head on frozen features, then fine-tune from it.

    Starting from a good head means the early, large gradients no longer flow into the
    features to fix a random head, so the features are distorted less. ``method`` names the run
    (its label in ``out/fits.jsonl``), as in ``finetune``.
    """
    start = time.perf_counter()
    ftr = cached_embeddings(backbone, train)
    head = train_linear_head(ftr, train.y, len(train.classes), seed=seed)
    res = finetune(backbone, train, test, epochs=epochs, lr=lr, head=head, seed=seed, method=method,
                   bn_eval=bn_eval, **kwargs)
    res.seconds = time.perf_counter() - start
    return res


def scratch(train, test, *, arch: str = "small_cnn", epochs: int = 10, lr: float = 1e-3, augment: bool = False,
            batch_size: int = 32, seed: int = 0, val=None, select_epoch: bool = False,
            patience: int | None = None) -> Result:
    """The baseline: the same recipe from random weights (no transfer); ``val`` and ``select_epoch``
    as in ``finetune`` (keep the best epoch on validation)."""
    seed_everything(seed)
    size = int(train.x.shape[-1])
    backbone = load_backbone(arch, pretrained=False, image_size=size) if arch != "small_cnn" \
        else load_backbone(arch, image_size=size)
    res = finetune(backbone, train, test, epochs=epochs, lr=lr, augment=augment, batch_size=batch_size,
                   seed=seed, method=f"scratch ({arch})", val=val, select_epoch=select_epoch, patience=patience)
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
