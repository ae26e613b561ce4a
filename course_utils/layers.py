"""Which layers train, the verbs for fine-tuning: freeze, unfreeze, freeze_to, set_bn_eval, param_groups,
layerwise_lr_groups, replace_head, unfreeze_schedule, and parameter counts.

Each is a few lines on purpose: they *are* the method the course teaches.
"""
from __future__ import annotations

import copy
from collections import OrderedDict

from torch import nn

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def freeze(module: nn.Module) -> nn.Module:
    """Stop gradients for every parameter of ``module`` (its weights become constants)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Let every parameter of ``module`` train again."""
    for p in module.parameters():
        p.requires_grad_(True)
    return module


def layer_groups(model: nn.Module) -> list[nn.Module]:
    """Ordered parts, input to output: the backbone's groups, then the head if there is one."""
    features = getattr(model, "features", model)
    if not hasattr(features, "groups"):
        raise TypeError(f"{type(model).__name__} has no .groups(); pass a Backbone's features or a model "
                        "made by replace_head(...)")
    head = getattr(model, "head", None)
    return list(features.groups()) + ([head] if head is not None else [])


def freeze_to(model: nn.Module, n: int) -> nn.Module:
    """Freeze the first ``n`` layer groups and unfreeze the rest (fastai's ``freeze_to``).

    Negative ``n`` counts from the end: ``freeze_to(model, -1)`` trains only the last group.
    """
    groups = layer_groups(model)
    if not -len(groups) <= n <= len(groups):
        raise ValueError(f"n={n} is out of range for {len(groups)} layer groups")
    n = n % len(groups) if n < 0 else n
    for i, group in enumerate(groups):
        (freeze if i < n else unfreeze)(group)
    return model


def set_bn_eval(module: nn.Module) -> nn.Module:
    """Put every BatchNorm layer in eval mode, so a training step leaves its running statistics alone.

    Call it *after* ``model.train()`` (which switches them back on). Frozen BN layers would
    otherwise keep re-estimating ImageNet statistics from small target batches.
    """
    for m in module.modules():
        if isinstance(m, BN_TYPES):
            m.eval()
    return module


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def replace_head(backbone, num_classes: int, *, copy_features: bool = True) -> nn.Sequential:
    """A new classifier: the backbone's ``features`` followed by a fresh ``Linear(feature_dim, num_classes)``.

    ``copy_features`` (default) deep-copies the features so one loaded backbone can seed
    several experiments without one fine-tune leaking into the next.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    features = copy.deepcopy(backbone.features) if copy_features else backbone.features
    return nn.Sequential(OrderedDict(features=features, head=nn.Linear(backbone.feature_dim, num_classes)))


def param_groups(model: nn.Module, lrs: dict[str, float] | None = None, *, head_lr: float | None = None,
                 body_lr: float | None = None, decay: float | None = None) -> list[dict]:
    """Parameter groups for an optimizer with one learning rate per part (discriminative LRs).

    Either name the parts: ``param_groups(model, {"head": 1e-2, "features": 1e-4})``; or give
    ``head_lr`` and ``decay``: group ``i`` from the top gets ``head_lr * decay**i`` (ULMFiT's
    slanted idea, per layer group). Only trainable parameters are included.
    """
    if lrs is not None:
        return _named_groups(model, lrs)
    if head_lr is None:
        raise ValueError("give either lrs={'part': lr, ...} or head_lr=... (with decay= or body_lr=)")
    groups = layer_groups(model)
    out = []
    for depth, group in enumerate(reversed(groups)):
        lr = head_lr if depth == 0 else (body_lr if body_lr is not None else head_lr * (decay or 1.0) ** depth)
        params = [p for p in group.parameters() if p.requires_grad]
        if params:
            out.append({"params": params, "lr": lr, "name": f"group{len(groups) - 1 - depth}"})
    return out[::-1]


def _named_groups(model: nn.Module, lrs: dict[str, float]) -> list[dict]:
    children = dict(model.named_children())
    unknown = [k for k in lrs if k not in children]
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; this model's parts are {list(children)}")
    out = []
    for name, lr in lrs.items():
        if not lr > 0:
            raise ValueError(f"learning rate for {name!r} must be > 0, got {lr!r}")
        params = [p for p in children[name].parameters() if p.requires_grad]
        if params:
            out.append({"params": params, "lr": lr, "name": name})
    return out


def layerwise_lr_groups(model: nn.Module, head_lr: float, decay: float) -> list[dict]:
    """Layer-wise learning-rate decay (LLRD): the head trains at ``head_lr``, each layer group below it
    at ``decay`` times the LR of the group above (group ``i`` from the top: ``head_lr * decay**i``).

    Discriminative LRs with one group per layer group instead of two parts (ULMFiT's per-layer
    version; BEiT/ELECTRA use it too). Only trainable parameters are included.
    """
    if not head_lr > 0:
        raise ValueError(f"head_lr must be > 0, got {head_lr!r}")
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1] (1: one LR everywhere), got {decay!r}")
    return param_groups(model, head_lr=head_lr, decay=decay)


def unfreeze_schedule(model: nn.Module, epochs: int, start_trainable: int = 1, step: int = 1) -> list[int]:
    """Progressive unfreezing (ULMFiT): how many groups from the top train in each epoch.

    Epoch 0 trains ``start_trainable`` groups (the head), each later epoch ``step`` more (one in
    ULMFiT; a larger step unfreezes coarser blocks, so a short schedule still reaches the bottom),
    capped at all groups. Apply with ``freeze_to(model, len(layer_groups(model)) - k)``.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step!r}")
    n = len(layer_groups(model))
    return [min(n, start_trainable + step * e) for e in range(epochs)]
