"""Knowledge distillation (Hinton, Vinyals & Dean 2015), written out: the course teaches the loss.

A small *student* learns from a large *teacher*'s softened output distribution as well as from the
labels. The teacher's logits are computed once (``teacher_logits``): the teacher is frozen, and on a
CPU running it again every epoch would cost more than training the student.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from course_utils.repro import get_device
from course_utils.train import History, predict, run_epochs, step


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
                      temperature: float, alpha: float) -> torch.Tensor:
    """``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)``.

    Dividing logits by T > 1 flattens both distributions so the student sees how the teacher ranks the
    *wrong* classes ("dark knowledge"); the soft term's gradients shrink as 1/T^2, hence the T^2 factor
    (Hinton et al. 2015, section 2). ``alpha = 0`` is plain training on hard labels.
    """
    if temperature <= 0 or not 0 <= alpha <= 1:
        raise ValueError(f"need temperature > 0 and 0 <= alpha <= 1, got T={temperature!r}, alpha={alpha!r}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ: both must be (batch, classes)")
    hard = F.cross_entropy(student_logits, labels)
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1), log_target=True, reduction="batchmean")
    return alpha * temperature ** 2 * soft + (1 - alpha) * hard


def teacher_logits(teacher: nn.Module, x: torch.Tensor, *, transform=None, device=None) -> torch.Tensor:
    """The frozen teacher's logits for every image, once (eval mode, no gradients)."""
    return predict(teacher, x, device=device, transform=transform)


def distill(student: nn.Module, train, soft_targets: torch.Tensor, epochs: int, optimizer: torch.optim.Optimizer, *,
            temperature: float = 4.0, alpha: float = 0.9, val=None, transform=None, batch_size: int = 32,
            seed: int = 0, device=None, patience: int | None = None, label: str = "distill") -> History:
    """Train ``student`` on ``train`` (.x, .y) with the teacher's ``soft_targets`` (one row per image).

    With ``val``, the epoch that scores best on it is kept and ``patience`` stops on a plateau
    (``epochs`` is then the cap), as in ``fit``.
    """
    if len(soft_targets) != len(train.y):
        raise ValueError(f"{len(soft_targets)} teacher rows for {len(train.y)} training images: compute "
                         "teacher_logits on exactly the training images, in the same order")
    device = device or get_device()
    student.to(device)
    loader = DataLoader(TensorDataset(train.x, train.y, soft_targets), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))

    def one_epoch(epoch: int) -> tuple[float, None]:
        student.train()
        total = 0.0
        for xb, yb, tb in loader:
            xb, yb, tb = xb.to(device), yb.to(device), tb.to(device)
            loss = step(optimizer, distillation_loss(student(transform(xb) if transform else xb), tb, yb,
                                                     temperature=temperature, alpha=alpha))
            total += loss.item() * len(yb)
        return total / len(train.y), None

    return run_epochs(student, epochs, one_epoch, val_data=val, transform=transform, device=device,
                      restore_best=val is not None, patience=patience, label=label)


__all__ = ["distillation_loss", "teacher_logits", "distill"]
