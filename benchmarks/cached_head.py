"""Training a linear head for 10 epochs: on cached embeddings vs the common tutorial way
(re-running the frozen backbone on every batch of every epoch). Same data, same head
initialisation, same batch order, same optimizer: the two must reach the same accuracy.

    .venv/bin/python benchmarks/cached_head.py

Prints a table; the last line is `speedup: N.Nx` (tutorial time / cached time, cache warm:
the situation of every experiment after the first, which is what the course does).
"""
from __future__ import annotations

import tempfile
import time

import torch
from torch import nn

from course_utils.backbones import load_backbone
from course_utils.data import load_dataset
from course_utils.features import cached_embeddings
from course_utils.repro import seed_everything, setup_threads

EPOCHS, BATCH, LR = 10, 32, 1e-2


def train_head(head: nn.Linear, inputs: torch.Tensor, y: torch.Tensor, encode) -> float:
    """Minibatch Adam for EPOCHS; ``encode`` maps a batch of inputs to features. Returns seconds."""
    opt = torch.optim.Adam(head.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(y), generator=gen).split(BATCH):
            loss = nn.functional.cross_entropy(head(encode(inputs[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def accuracy(head, feats, y) -> float:
    with torch.no_grad():
        return (head(feats).argmax(1) == y).float().mean().item()


def main() -> None:
    seed_everything(0)
    setup_threads()
    bb = load_backbone(image_size=64)
    train = load_dataset("fashion_mnist", "train", per_class=80, image_size=64)
    test = load_dataset("fashion_mnist", "test", per_class=50, image_size=64)
    features = bb.features.eval()

    cache = tempfile.TemporaryDirectory()  # an empty cache, so "cold" really computes
    start = time.perf_counter()
    ftr = cached_embeddings(bb, train, directory=cache.name)  # cold: computes and writes the cache
    cold = time.perf_counter() - start
    start = time.perf_counter()
    ftr = cached_embeddings(bb, train, directory=cache.name)  # warm: read back from disk
    warm_read = time.perf_counter() - start
    fte = cached_embeddings(bb, test, directory=cache.name)

    torch.manual_seed(1)
    init = nn.Linear(bb.feature_dim, 10).state_dict()
    cached_head, tutorial_head = nn.Linear(bb.feature_dim, 10), nn.Linear(bb.feature_dim, 10)
    cached_head.load_state_dict(init)
    tutorial_head.load_state_dict(init)
    t_cached = train_head(cached_head, ftr, train.y, lambda f: f)

    def through_backbone(x):
        with torch.no_grad():  # frozen, as tutorials do it: requires_grad=False / no_grad
            return features(bb.normalize(x))
    t_tutorial = train_head(tutorial_head, train.x, train.y, through_backbone)

    acc_c, acc_t = accuracy(cached_head, fte, test.y), accuracy(tutorial_head, fte, test.y)
    print(f"data: fashion_mnist @64 px, {len(train)} train / {len(test)} test, {EPOCHS} epochs, batch {BATCH}")
    print(f"{'method':<42} {'seconds':>8} {'test acc':>9}")
    print(f"{'tutorial: backbone on every batch, every epoch':<42} {t_tutorial:>8.2f} {acc_t:>9.3f}")
    print(f"{'cached: head on stored embeddings':<42} {t_cached:>8.2f} {acc_c:>9.3f}")
    print(f"{'  + embedding once (cold cache)':<42} {cold:>8.2f}")
    print(f"{'  + reading the cache (warm)':<42} {warm_read:>8.2f}")
    print(f"accuracy difference: {abs(acc_c - acc_t) * 100:.2f} points; "
          f"speedup with a cold cache: {t_tutorial / (t_cached + cold):.1f}x")
    print(f"speedup: {t_tutorial / (t_cached + warm_read):.1f}x")


if __name__ == "__main__":
    main()
