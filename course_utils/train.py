"""A plain training loop: ``fit`` and ``evaluate`` on in-memory tensors (the course's sets are small)."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils.layers import set_bn_eval
from course_utils.progress import tqdm
from course_utils.repro import get_device


@dataclass
class History:
    """What happened in ``fit``: one entry per epoch."""

    loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: float = 0.0
    best_epoch: int | None = None  # 0-based; set when fit(restore_best=True) kept the best-on-val weights

    @property
    def final_val(self) -> float | None:
        return self.val_acc[-1] if self.val_acc else None


def _as_xy(data) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept an ImageSet, an (x, y) pair, or anything with .x and .y."""
    x, y = (data.x, data.y) if hasattr(data, "x") else data
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs but {len(y)} labels")
    return x, y


def _loader(data, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    x, y = _as_xy(data)
    gen = torch.Generator().manual_seed(seed)
    # num_workers=0: the data are in memory; worker processes would only add start-up time on 2 cores.
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=gen)


@torch.no_grad()  # not inference_mode: its tensors could not feed a later backward (e.g. a head on embeddings)
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 256, device=None,
            transform: Callable | None = None) -> torch.Tensor:
    """Logits for every row of ``x`` (model in eval mode; restored afterwards)."""
    device = device or get_device()
    was_training = model.training
    model.eval().to(device)
    outs = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size].to(device)
        outs.append(model(transform(xb) if transform else xb).float().cpu())
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate(model: nn.Module, data, batch_size: int = 256, device=None, transform: Callable | None = None) -> float:
    """Top-1 accuracy on an ImageSet or an (x, y) pair."""
    x, y = _as_xy(data)
    return (predict(model, x, batch_size, device, transform).argmax(1) == y).float().mean().item()


def fit(model: nn.Module, train_data, epochs: int, optimizer: torch.optim.Optimizer, *, val_data=None,
        batch_size: int = 32, device=None, transform: Callable | None = None, bn_eval: bool = False,
        on_epoch: Callable[[int, nn.Module], None] | None = None, seed: int = 0,
        progress: bool = True, restore_best: bool = False) -> History:
    """Train with cross-entropy; returns a History.

    ``transform`` runs on each batch on the device (normalisation, augmentation); ``bn_eval``
    keeps BatchNorm statistics fixed (see ``set_bn_eval``); ``on_epoch(epoch, model)`` is
    called before each epoch (progressive unfreezing hooks in there). With ``val_data``, accuracy
    on it is recorded after every epoch; ``restore_best`` then ends with the weights of the best
    epoch on validation (early stopping chosen on val, never on test).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if restore_best and val_data is None:
        raise ValueError("restore_best picks the best epoch on validation data: pass val_data too")
    device = device or get_device()
    model.to(device)
    loader = _loader(train_data, batch_size, shuffle=True, seed=seed)
    history, best, start = History(), None, time.perf_counter()
    for epoch in tqdm(range(epochs), desc="epochs", disable=not progress, leave=False):
        if on_epoch:
            on_epoch(epoch, model)
        loss, acc = train_epoch(model, loader, optimizer, device, transform, bn_eval)
        history.loss.append(loss)
        history.train_acc.append(acc)
        if val_data is not None:
            best = score_epoch(history, model, epoch, val_data, device, transform, keep=restore_best) or best
    if restore_best:
        model.load_state_dict(best)
    history.seconds = time.perf_counter() - start
    return history


def score_epoch(history: History, model: nn.Module, epoch: int, val_data, device=None, transform=None,
                keep: bool = True) -> dict | None:
    """Record validation accuracy after ``epoch``; with ``keep``, returns a copy of the weights when it is
    the best so far (early stopping chosen on val: ``fit``, distillation, DANN), else None."""
    history.val_acc.append(evaluate(model, val_data, device=device, transform=transform))
    if keep and history.val_acc[-1] >= max(history.val_acc):
        history.best_epoch = epoch
        return copy.deepcopy(model.state_dict())
    return None


def train_epoch(model, loader, optimizer, device, transform, bn_eval) -> tuple[float, float]:
    model.train()
    if bn_eval:
        set_bn_eval(model)
    total_loss, correct, seen = 0.0, 0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        logits = model(transform(xb) if transform else xb)
        loss = nn.functional.cross_entropy(logits, yb)
        if not torch.isfinite(loss):
            raise FloatingPointError("the loss became NaN/inf: the learning rate is probably too large")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(yb)
        correct += (logits.argmax(1) == yb).sum().item()
        seen += len(yb)
    return total_loss / seen, correct / seen
