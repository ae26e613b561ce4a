"""LoRA written out by hand (Hu et al. 2021), small enough to read in one go.

A frozen weight ``W`` gets a trainable low-rank update ``(alpha / r) * B @ A`` with ``B``
initialised to zero, so training starts exactly at the pretrained model. For a 1x1
convolution the same update applies to the channel-mixing matrix. Notebook 06 checks the
trainable-parameter count against the ``peft`` library.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class LoRA(nn.Module):
    """Wraps a Linear or 1x1 Conv2d: output = base(x) + scale * up(down(x))."""

    def __init__(self, base: nn.Module, rank: int = 4, alpha: float = 8.0):
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.base, self.rank, self.scale = base, rank, alpha / rank
        for p in base.parameters():
            p.requires_grad_(False)
        if isinstance(base, nn.Linear):
            self.down = nn.Linear(base.in_features, rank, bias=False)
            self.up = nn.Linear(rank, base.out_features, bias=False)
        elif _is_pointwise(base):
            self.down = nn.Conv2d(base.in_channels, rank, 1, stride=base.stride, bias=False)
            self.up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        else:
            raise TypeError(f"LoRA here supports nn.Linear and 1x1 nn.Conv2d, got {base}")
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up.weight)  # zero update at the start: same outputs as the pretrained model
        # the factors live where the wrapped weight lives (a model may already be on a GPU)
        self.down.to(base.weight.device, base.weight.dtype)
        self.up.to(base.weight.device, base.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * self.up(self.down(x))

    @torch.no_grad()
    def merged(self) -> nn.Module:
        """The base layer with the update folded into its weight: no extra cost at inference."""
        delta = (self.up.weight.flatten(1) @ self.down.weight.flatten(1)) * self.scale
        self.base.weight += delta.view_as(self.base.weight)
        return self.base


def _is_pointwise(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1
            and m.padding in ((0, 0), 0, "valid"))


def add_lora(model: nn.Module, rank: int = 4, alpha: float = 8.0, target=None) -> list[str]:
    """Replace every Linear / 1x1 conv whose qualified name passes ``target`` with a LoRA wrapper.

    ``target`` is a callable ``name -> bool`` (default: all eligible layers). Returns the
    names wrapped. Parameters outside the LoRA factors are left as they were: freeze the
    model first if only LoRA should train.
    """
    wrapped = []
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRA) or any(isinstance(m, LoRA) for m in _ancestors(model, name)):
            continue  # already adapted: never wrap a wrapper's own base or factors
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if (isinstance(child, nn.Linear) or _is_pointwise(child)) and (target is None or target(full)):
                setattr(module, child_name, LoRA(child, rank, alpha))
                wrapped.append(full)
    if not wrapped:
        raise ValueError("no Linear or 1x1 Conv2d layer matched the target")
    return wrapped


def _ancestors(model: nn.Module, name: str) -> list[nn.Module]:
    parts, out, module = name.split(".") if name else [], [], model
    for part in parts[:-1]:
        module = getattr(module, part)
        out.append(module)
    return out


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA wrapper back into a plain layer (in place)."""
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, LoRA):
                setattr(module, child_name, child.merged())
    return model
