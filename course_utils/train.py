"""A plain training loop: ``fit`` and ``evaluate`` on in-memory tensors (the course's sets are small)."""
from __future__ import annotations

import copy
import json
import os
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
    """What happened in a training run: one entry per epoch, and where it stopped and why."""

    loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    best_epoch: int | None = None  # 0-based: the best epoch on validation (kept when restore_best)
    max_epochs: int = 0            # the cap
    stopped_early: bool = False    # stopped on a validation plateau (patience) before the cap
    kept_best: bool = False        # the model ends with the best epoch's weights (else the last epoch's)

    @property
    def final_val(self) -> float | None:
        return self.val_acc[-1] if self.val_acc else None

    @property
    def epochs_run(self) -> int:
        return len(self.loss)

    @property
    def epoch_kept(self) -> int:
        """The epoch, counted from 1, whose weights the model ends with."""
        return self.best_epoch + 1 if self.kept_best and self.best_epoch is not None else self.epochs_run

    @property
    def still_rising(self) -> bool:
        """Ran into the cap while validation accuracy still rose: its last epoch beat every earlier one.
        Such a run describes the schedule, not the method: raise the cap (``epochs``)."""
        acc = self.val_acc
        return (not self.stopped_early and self.epochs_run >= self.max_epochs and len(acc) > 1
                and acc[-1] > max(acc[:-1]))

    def record(self, label: str) -> dict:
        """One line of ``out/fits.jsonl`` (see ``log_fit``)."""
        return {"notebook": os.environ.get("COURSE_NOTEBOOK", ""), "label": label, "max_epochs": self.max_epochs,
                "epochs_run": self.epochs_run, "epoch_kept": self.epoch_kept,
                "val_curve": [round(v, 4) for v in self.val_acc], "still_rising": self.still_rising}


def log_fit(history: History, label: str) -> None:
    """Append the run to the file named by env ``COURSE_FITS_LOG`` (``course run`` sets it to
    ``out/fits.jsonl``, one JSON line per fit), so the course's convergence can be audited."""
    path = os.environ.get("COURSE_FITS_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(history.record(label)) + "\n")


def _as_xy(data) -> tuple[torch.Tensor, torch.Tensor]:
    """Accept an ImageSet, an (x, y) pair, or anything with .x and .y."""
    x, y = (data.x, data.y) if hasattr(data, "x") else data
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs but {len(y)} labels")
    return x, y


class LengthBatches(torch.utils.data.Sampler):
    """Batches of token-id rows of similar length, in a new random order every epoch.

    A batch of sentences is padded to its longest one, so random batches spend much of their compute
    on padding. Sorting by length (ties broken at random, once) and cutting the sorted rows into
    batches keeps each batch's padding small; the batches are then shuffled each epoch. This is the
    bucketing of torchtext's BucketIterator; transformers' LengthGroupedSampler sorts only within
    "megabatches" of 50 batches, which on a set of a few batches saves little.
    """

    def __init__(self, ids: torch.Tensor, batch_size: int, generator: torch.Generator, pad_id: int = 0):
        if ids.ndim != 2 or ids.dtype.is_floating_point:
            raise ValueError(f"group_by_length needs token ids shaped (rows, tokens), got {tuple(ids.shape)} {ids.dtype}")
        lengths = (ids != pad_id).sum(1)
        tie_break = torch.randperm(len(ids), generator=generator)
        order = tie_break[torch.argsort(lengths[tie_break], stable=True)]
        self.batches, self.generator = list(order.split(batch_size)), generator

    def __iter__(self):
        for b in torch.randperm(len(self.batches), generator=self.generator).tolist():
            yield self.batches[b].tolist()

    def __len__(self) -> int:
        return len(self.batches)


def _loader(data, batch_size: int, shuffle: bool, seed: int, group_by_length: bool = False) -> DataLoader:
    x, y = _as_xy(data)
    gen = torch.Generator().manual_seed(seed)
    # num_workers=0: the data are in memory; worker processes would only add start-up time on 2 cores.
    if group_by_length:
        return DataLoader(TensorDataset(x, y), batch_sampler=LengthBatches(x, batch_size, gen))
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
        progress: bool = True, restore_best: bool = False, patience: int | None = None,
        label: str | None = "fit", eval_transform: Callable | None = None, group_by_length: bool = False,
        resume: History | None = None) -> History:
    """Train with cross-entropy; returns a History.

    ``transform`` runs on each batch on the device (normalisation, augmentation); ``bn_eval``
    keeps BatchNorm statistics fixed (see ``set_bn_eval``); ``on_epoch(epoch, model)`` is
    called before each epoch (progressive unfreezing hooks in there). With ``val_data``, accuracy
    and loss on it are recorded after every epoch; ``restore_best`` then ends with the weights of the
    best epoch on validation, and ``patience`` stops after that many epochs without a better one
    (``epochs`` is then the cap). Never on test. ``label`` names the run in ``out/fits.jsonl``.
    ``eval_transform`` (default: ``transform``) prepares validation batches: pass the plain
    normalisation there when ``transform`` augments. ``group_by_length`` (token ids only) batches
    sentences of similar length together (``LengthBatches``): less padding, the same data each epoch.
    ``resume`` continues a run from its History (the model and optimizer as that run left them):
    ``epochs`` is then the cap counting the epochs already run. ``label=None`` logs nothing (a trial
    that a screening rule stopped: successive halving in notebook 09).
    """
    device = device or get_device()
    model.to(device)
    loader = _loader(train_data, batch_size, shuffle=True, seed=seed, group_by_length=group_by_length)
    for _ in range(resume.epochs_run if resume else 0):
        for _ in loader:  # replay the shuffles of the epochs already run: a resumed run = one uninterrupted run
            pass

    def one_epoch(epoch: int) -> tuple[float, float]:
        if on_epoch:
            on_epoch(epoch, model)
        return train_epoch(model, loader, optimizer, device, transform, bn_eval)

    return run_epochs(model, epochs, one_epoch, val_data=val_data, transform=eval_transform or transform,
                      device=device, restore_best=restore_best, patience=patience, label=label, progress=progress,
                      resume=resume)


def run_epochs(model: nn.Module, epochs: int, one_epoch: Callable[[int], tuple[float, float | None]], *,
               val_data=None, transform: Callable | None = None, device=None, restore_best: bool = True,
               patience: int | None = None, label: str | None = "fit", progress: bool = False,
               resume: History | None = None) -> History:
    """The epoch loop every trainer shares (``fit``, ``distill``, ``fit_dann``): call
    ``one_epoch(epoch) -> (train loss, train accuracy or None)`` up to ``epochs`` times, score on
    ``val_data`` after each, keep the best epoch's weights (``restore_best``), stop once ``patience``
    epochs in a row brought no better one, and log the run (``log_fit``).

    "Better" means higher validation accuracy, or the same accuracy at a lower validation loss: on a
    small validation set accuracy moves in steps of one image, and the loss breaks its ties.

    ``resume`` appends to an earlier run's History. Only the weights the model holds now are at hand,
    so the epoch they come from counts as the best so far: a later epoch must beat it to be kept.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if (restore_best or patience) and val_data is None:
        raise ValueError("restore_best and patience choose on validation data: pass val_data too")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 epoch (or None: run every epoch), got {patience}")
    history, best, since_best = resume or History(), None, 0
    history.max_epochs, history.kept_best, history.stopped_early = epochs, restore_best, False
    first = history.epochs_run
    if first and history.val_acc:  # resuming: the current weights are the only earlier epoch we can go back to
        history.best_epoch = first - 1
        best = copy.deepcopy(model.state_dict()) if restore_best else None
    start = time.perf_counter()
    for epoch in tqdm(range(first, epochs), desc=label or "fit", disable=not progress, leave=False):
        loss, acc = one_epoch(epoch)
        history.loss.append(loss)
        if acc is not None:
            history.train_acc.append(acc)
        if val_data is None:
            continue
        improved = score_epoch(history, model, epoch, val_data, device, transform)
        if improved:
            since_best = 0
            best = copy.deepcopy(model.state_dict()) if restore_best else None
        else:
            since_best += 1
        if patience is not None and since_best >= patience:
            history.stopped_early = epoch + 1 < epochs
            break
    if restore_best and best is not None:
        model.load_state_dict(best)
    history.seconds += time.perf_counter() - start
    if label is not None:
        log_fit(history, label)
    return history


def score_epoch(history: History, model: nn.Module, epoch: int, val_data, device=None, transform=None) -> bool:
    """Record validation accuracy and loss after ``epoch``; True when it is the best epoch so far
    (higher accuracy, or equal accuracy at lower loss), which then becomes ``history.best_epoch``."""
    x, y = _as_xy(val_data)
    logits = predict(model, x, device=device, transform=transform)
    acc = (logits.argmax(1) == y).float().mean().item()
    loss = nn.functional.cross_entropy(logits, y).item()
    best = history.best_epoch
    history.val_acc.append(acc)
    history.val_loss.append(loss)
    if best is None or acc > history.val_acc[best] or (acc == history.val_acc[best] and loss < history.val_loss[best]):
        history.best_epoch = epoch
        return True
    return False


def step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    """One gradient step on ``loss`` (clear, backward, update); a NaN/inf loss stops with the likely cause."""
    if not torch.isfinite(loss):
        raise FloatingPointError("the loss became NaN/inf: the learning rate is probably too large")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def train_epoch(model, loader, optimizer, device, transform, bn_eval) -> tuple[float, float]:
    model.train()
    if bn_eval:
        set_bn_eval(model)
    total_loss, correct, seen = 0.0, 0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        logits = model(transform(xb) if transform else xb)
        loss = step(optimizer, nn.functional.cross_entropy(logits, yb))
        total_loss += loss.item() * len(yb)
        correct += (logits.argmax(1) == yb).sum().item()
        seen += len(yb)
    return total_loss / seen, correct / seen
