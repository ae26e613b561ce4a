"""Partial fine-tuning with the frozen prefix's activations computed once, against the plain way
(the whole network forward on every batch of every epoch). Same data, seed and batch order: the two
must end with the same weights (tests/test_recipes.py proves it; this script checks it again).

    .venv/bin/python benchmarks/prefix_cache.py [--epochs 6] [--per-class 20] [--repeats 2]

Prints one row per depth (layer groups frozen): seconds per run each way, the speedup and the largest
weight difference; the last line is the headline `prefix_cache_speedup: N.Nx at depth D (...)`.
Every timing is the best of --repeats interleaved rounds after a warm-up run.
"""
from __future__ import annotations

import argparse
import time

import torch

from course_utils.backbones import load_backbone
from course_utils.datasets import load_dataset
from course_utils.recipes import finetune
from course_utils.repro import setup_threads


def run(bb, train, val, frozen: int, epochs: int, cache: bool):
    start = time.perf_counter()
    result = finetune(bb, train, None, epochs=epochs, lr=1e-4, head_lr=1e-3, freeze_groups=frozen, bn_eval=True,
                      val=val, select_epoch=True, seed=0, cache_frozen=cache)
    return time.perf_counter() - start, result.model.state_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4, 6, 8])
    args = parser.parse_args()
    setup_threads()
    bb = load_backbone("efficientnet_lite0", image_size=64)
    train = load_dataset("objects", "train", per_class=args.per_class, image_size=64, views=3)
    val = load_dataset("objects", "val", image_size=64, views=2)
    run(bb, train, val, args.depths[0], 1, True)   # warm-up: the process's first passes pay one-off costs
    print(f"objects @64 px: {len(train)} train, {len(val)} val images; {args.epochs} epochs, batch 32, "
          f"{torch.get_num_threads()} threads; best of {args.repeats}")
    print(f"{'frozen groups':>13} {'plain s':>8} {'cached s':>9} {'speedup':>8} {'max weight diff':>16}")
    rows = []
    for frozen in args.depths:
        plain, cached = [], []
        for _ in range(args.repeats):   # interleaved, so a change of load hits both alike
            seconds, plain_weights = run(bb, train, val, frozen, args.epochs, False)
            plain.append(seconds)
            seconds, cached_weights = run(bb, train, val, frozen, args.epochs, True)
            cached.append(seconds)
        diff = max((plain_weights[k].float() - cached_weights[k].float()).abs().max().item() for k in plain_weights)
        rows.append((frozen, min(plain), min(cached), diff))
        print(f"{frozen:>13} {min(plain):>8.2f} {min(cached):>9.2f} {min(plain) / min(cached):>7.1f}x {diff:>16.1e}")
    frozen, plain, cached, _ = max(rows, key=lambda r: r[0])
    print(f"prefix_cache_speedup: {plain / cached:.1f}x at depth {frozen} "
          f"({plain:.1f} s -> {cached:.1f} s a run; identical weights: {all(r[3] == 0 for r in rows)})")


if __name__ == "__main__":
    main()
