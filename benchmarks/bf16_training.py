"""bf16 autocast on the CPU: does it speed up fine-tuning here, and does accuracy hold?

    .venv/bin/python benchmarks/bf16_training.py [--steps 20] [--epochs 4]

This CPU reports avx512_bf16 (see /proc/cpuinfo), so PyTorch's CPU autocast can run convolutions and
matrix products in bfloat16. Two measurements, fp32 against bf16 autocast on EfficientNet-Lite0:
training steps per second (batch 32, full fine-tuning, channels_last, 64 and 96 px; the best of
interleaved rounds after a warm-up), and test accuracy after the same short fine-tune on objects. The
last line is the headline `bf16_speedup: N.NNx at 64 px, accuracy fp32 A vs bf16 B`.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from course_utils.backbones import load_backbone
from course_utils.datasets import load_dataset
from course_utils.layers import param_groups, replace_head
from course_utils.repro import seed_everything, setup_threads
from course_utils.train import evaluate


def has_bf16() -> bool:
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def steps_per_second(bb, size: int, bf16: bool, steps: int) -> float:
    seed_everything(0)
    model = replace_head(bb, 10).train()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    x, y = torch.rand(32, 3, size, size), torch.randint(0, 10, (32,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(model(bb.normalize(x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def short_finetune(bb, train, test, bf16: bool, epochs: int) -> float:
    seed_everything(0)
    model = replace_head(bb, len(train.classes))
    opt = torch.optim.Adam(param_groups(model, {"head": 1e-3, "features": 1e-4}))
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(train.y), generator=gen).split(32):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = nn.functional.cross_entropy(model(bb.normalize(train.x[idx])), train.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return evaluate(model, test, transform=bb.normalize)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    setup_threads()
    print(f"CPU reports avx512_bf16: {has_bf16()}; {torch.get_num_threads()} threads; best of {args.repeats}")
    print(f"{'size':>5} {'fp32 steps/s':>13} {'bf16 steps/s':>13} {'bf16 / fp32':>12}")
    speed = {}
    for size in (64, 96):
        bb = load_backbone("efficientnet_lite0", image_size=size)
        rates = {False: [], True: []}
        for _ in range(args.repeats):
            for bf16 in (False, True):
                rates[bf16].append(steps_per_second(bb, size, bf16, args.steps))
        fp32, bf16 = max(rates[False]), max(rates[True])
        speed[size] = bf16 / fp32
        print(f"{size:>5} {fp32:>13.2f} {bf16:>13.2f} {bf16 / fp32:>11.2f}x")
    bb = load_backbone("efficientnet_lite0", image_size=64)
    train = load_dataset("objects", "train", per_class=20, image_size=64, views=3)
    test = load_dataset("objects", "test", image_size=64, views=2)
    acc = {bf16: short_finetune(bb, train, test, bf16, args.epochs) for bf16 in (False, True)}
    print(f"test accuracy after {args.epochs} epochs (objects, {len(test)} test images): fp32 {acc[False]:.3f}, "
          f"bf16 {acc[True]:.3f}")
    print(f"bf16_speedup: {speed[64]:.2f}x at 64 px ({speed[96]:.2f}x at 96 px), accuracy fp32 {acc[False]:.3f} "
          f"vs bf16 {acc[True]:.3f}")


if __name__ == "__main__":
    main()
