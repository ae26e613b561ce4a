"""Backbone speed on this machine: images/s for inference and a full fine-tuning step,
at 64 px (the course's size), 96, 128 and 224 px, with and without channels_last, each as the
median of its repeated calls with their min-max spread and count; then the time to train a
linear head on 800 cached embeddings. Prints a table; the line before last gives the 64 px
figures, the last line is the headline.

    .venv/bin/python benchmarks/backbone_throughput.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from course_utils.backbones import load_backbone
from course_utils.datasets import load_dataset
from course_utils.features import cached_embeddings, linear_probe, train_linear_head
from course_utils.layers import replace_head
from course_utils.repro import seed_everything, setup_threads


def images_per_second(fn, batch: int, min_seconds: float) -> list[float]:
    """Images/s of each call, over at least 3 calls and ``min_seconds``; summarise with ``spread``.

    The median is the figure, not the mean: on a small shared CPU a single slow call (another
    process woke up) would otherwise decide it; the min-max beside it shows how much it moved.
    """
    fn()  # warm-up: first call pays for allocation and kernel selection
    times = []
    while len(times) < 3 or sum(times) < min_seconds:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return [batch / t for t in times]


def spread(rates: list[float]) -> str:
    """``median (min-max, n=N)`` of per-call images/s."""
    digits = 0 if statistics.median(rates) >= 100 else 1
    return (f"{statistics.median(rates):.{digits}f} ({min(rates):.{digits}f}-{max(rates):.{digits}f}, "
            f"n={len(rates)})")


def measure(size: int, channels_last: bool, batch: int, min_seconds: float) -> tuple[list[float], list[float]]:
    bb = load_backbone(image_size=size, channels_last=channels_last)
    x = torch.rand(batch, 3, size, size) * 2 - 1
    features = bb.features.eval()

    def infer():
        with torch.inference_mode():
            features(x)

    model = replace_head(bb, 10)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    y = torch.randint(0, 10, (batch,))

    def train_step():
        model.train()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return images_per_second(infer, batch, min_seconds), images_per_second(train_step, batch, min_seconds)


def head_on_cached_embeddings() -> tuple[float, float, float]:
    """Seconds to fit a linear probe (scikit-learn) and a torch head on 800 cached embeddings."""
    bb = load_backbone(image_size=64)
    train = load_dataset("fashion_mnist", "train", per_class=80, image_size=64)
    test = load_dataset("fashion_mnist", "test", per_class=50, image_size=64)
    ftr, fte = cached_embeddings(bb, train), cached_embeddings(bb, test)
    probe = linear_probe(ftr, train.y, fte, test.y)
    start = time.perf_counter()
    train_linear_head(ftr, train.y, 10, epochs=100)
    return probe.seconds, time.perf_counter() - start, probe.accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a rougher number)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128, 224], help="image sizes in px")
    args = parser.parse_args()
    seed_everything(0)
    threads = setup_threads()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{threads} threads, CPU only" if not torch.cuda.is_available() else f"GPU: {torch.cuda.get_device_name()}")
    print("img/s: median of the repeated calls (min-max, n = calls)")
    print(f"{'px':>4} {'channels_last':>13} {'infer img/s':>26} {'train img/s':>26}")
    at_64 = {}
    for size in args.sizes:
        batch = 32 if size < 224 else 16
        for cl in (True, False):
            inf, tr = measure(size, cl, batch, 0.5 if args.quick else 2.0)
            if size == 64:
                at_64[cl] = (inf, tr)
            print(f"{size:>4} {str(cl):>13} {spread(inf):>26} {spread(tr):>26}", flush=True)
    sk, th, acc = head_on_cached_embeddings()
    print(f"linear head on 800 cached embeddings (fashion_mnist @64 px, test acc {acc:.3f}): "
          f"scikit-learn {sk:.2f} s, torch 100 epochs {th:.2f} s")
    if at_64.get(True):  # the course's own setting: 64 px, channels_last (the default)
        inf, tr = at_64[True]
        print(f"course_64px: inference {spread(inf)} img/s, training {spread(tr)} img/s")
    print(f"head_train_seconds: {max(sk, th):.2f}")


if __name__ == "__main__":
    main()
