"""Bottleneck adapters (Houlsby et al. 2019), written out: the course teaches them, so they are not a library call
(the maintained library, ``adapters``, requires transformers 4; the course runs 5).

An adapter is a small residual MLP, ``x + up(gelu(down(x)))``, with a bottleneck of ``b`` numbers: 2·d·b + b + d
parameters for width d. Houlsby et al. put two in every transformer layer, after the attention's output projection
and after the feed-forward output projection, before the residual sum and LayerNorm, and trained the adapters and
the LayerNorms with everything else frozen. ``up`` starts at zero, so the adapted encoder starts as the pretrained one.
"""
from __future__ import annotations

from torch import nn


class BottleneckAdapter(nn.Module):
    """``x + up(gelu(down(x)))``; ``up`` is zero at the start, so the adapter starts as the identity."""

    def __init__(self, dim: int, bottleneck: int):
        super().__init__()
        if not 1 <= bottleneck <= dim:
            raise ValueError(f"the bottleneck must be between 1 and the width {dim}, got {bottleneck!r}")
        self.down, self.act, self.up = nn.Linear(dim, bottleneck), nn.GELU(), nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x):
        return x + self.up(self.act(self.down(x)))


def add_adapters(encoder_model: nn.Module, bottleneck: int = 16) -> list[str]:
    """Freeze a BERT-style encoder (``encoder_model.encoder.layer[i]``) and put an adapter after each layer's
    attention output projection and feed-forward output projection (the projection, then the adapter, then the
    encoder's own dropout, residual sum and LayerNorm); the adapters and the LayerNorms train. Returns the names
    of the wrapped projections."""
    layers = getattr(getattr(encoder_model, "encoder", None), "layer", None)
    if layers is None:
        raise TypeError(f"{type(encoder_model).__name__} has no .encoder.layer: add_adapters expects a BERT-style encoder")
    for p in encoder_model.parameters():
        p.requires_grad_(False)
    wrapped = []
    for i, layer in enumerate(layers):
        for part, where in ((layer.attention.output, "attention.output"), (layer.output, "output")):
            dim = part.dense.out_features
            part.dense = nn.Sequential(part.dense, BottleneckAdapter(dim, bottleneck))
            wrapped.append(f"encoder.layer.{i}.{where}.dense")
    for module in encoder_model.modules():
        if isinstance(module, nn.LayerNorm):
            module.requires_grad_(True)
    return wrapped


__all__ = ["BottleneckAdapter", "add_adapters"]
