"""What a model gets right and wrong, and when a difference is a result: the course's protocol.

    report = error_report(model, test, transform=bb.normalize, units=test.meta.get("object_id"))
    report.summary()              # accuracy ± standard error over independent units, macro-F1, ECE
    report.per_class()            # one row per class: images, accuracy (recall), precision, F1
    report.confusion()            # scikit-learn's ConfusionMatrixDisplay, rows normalised
    gallery(test.x, report)       # held-out images, mistakes first, "true -> predicted (confidence)"
    verdict(margin, spread)       # "wins" / "loses" only beyond the seed spread, else "tie"

scikit-learn computes every metric and draws the matrix; this module only chooses them. The one
hand-written number is the expected calibration error (scikit-learn has no ECE), ten lines below.
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.metrics import (ConfusionMatrixDisplay, accuracy_score, confusion_matrix, f1_score,
                             precision_recall_fscore_support)

from course_utils.train import _as_xy, predict


@dataclass
class ErrorReport:
    """Predictions on a held-out set: labels, predicted labels, probabilities, class names, and the
    independent unit of each row (an object id for renders of one object; the row itself otherwise)."""

    y_true: np.ndarray
    y_pred: np.ndarray
    proba: np.ndarray
    classes: list[str]
    units: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(accuracy_score(self.y_true, self.y_pred))

    @property
    def macro_f1(self) -> float:
        return float(f1_score(self.y_true, self.y_pred, average="macro", labels=range(len(self.classes)),
                              zero_division=0))

    @property
    def confidence(self) -> np.ndarray:
        return self.proba.max(axis=1)

    @property
    def standard_error(self) -> float:
        return unit_standard_error(self.y_true == self.y_pred, self.units)

    @property
    def ece(self) -> float:
        return expected_calibration_error(self.confidence, self.y_true == self.y_pred)

    def summary(self) -> pd.DataFrame:
        """One row: accuracy ± SE over independent units, macro-F1, ECE, mean confidence, counts."""
        return pd.DataFrame([{
            "accuracy": round(self.accuracy, 3), "± SE": round(self.standard_error, 3),
            "macro-F1": round(self.macro_f1, 3), "ECE": round(self.ece, 3),
            "mean confidence": round(float(self.confidence.mean()), 3),
            "images": len(self.y_true), "independent units": len(np.unique(self.units))}])

    def per_class(self) -> pd.DataFrame:
        """Per class: images, accuracy (= recall), precision, F1, and the class it is most confused with."""
        labels = list(range(len(self.classes)))
        precision, recall, f1, support = precision_recall_fscore_support(
            self.y_true, self.y_pred, labels=labels, zero_division=0)
        cm = self.confusion_counts()
        np.fill_diagonal(cm, -1)
        confused = [self.classes[int(row.argmax())] if row.max() > 0 else "-" for row in cm]
        return pd.DataFrame({"class": self.classes, "images": support, "accuracy": recall.round(3),
                             "precision": precision.round(3), "F1": f1.round(3), "most confused with": confused})

    def confusion_counts(self) -> np.ndarray:
        """Counts: row = true class, column = predicted class."""
        return confusion_matrix(self.y_true, self.y_pred, labels=list(range(len(self.classes))))

    def confusion(self, ax=None, title: str | None = None):
        """Row-normalised confusion matrix (each row: where that class's images went)."""
        ax = ax if ax is not None else plt.subplots(figsize=(5.5, 5))[1]
        ConfusionMatrixDisplay.from_predictions(
            self.y_true, self.y_pred, labels=list(range(len(self.classes))), display_labels=self.classes,
            normalize="true", values_format=".2f", xticks_rotation=60, colorbar=False, ax=ax)
        ax.set_title(title or f"accuracy {self.accuracy:.3f}, macro-F1 {self.macro_f1:.3f}")
        return ax

    def mistakes_first(self) -> np.ndarray:
        """Row order: wrong predictions (most confident first), then right ones (least confident first)."""
        wrong = self.y_true != self.y_pred
        return np.lexsort((np.where(wrong, -self.confidence, self.confidence), ~wrong))


def unit_standard_error(correct, units) -> float:
    """Standard error of an accuracy whose rows are not independent (several renders of one object):
    the accuracy of each unit, then the standard error of their mean. With one row per unit this
    is the usual sqrt(p (1 - p) / n) (with n - 1)."""
    correct, units = np.asarray(correct, float), np.asarray(units)
    per_unit = pd.Series(correct).groupby(units).mean().to_numpy()
    if len(per_unit) < 2:
        return float("nan")
    return float(per_unit.std(ddof=1) / np.sqrt(len(per_unit)))


def expected_calibration_error(confidence, correct, bins: int = 10) -> float:
    """ECE (Guo et al. 2017): over equal-width confidence bins, the gap between confidence and
    accuracy, weighted by the share of images in the bin. Written here: scikit-learn has no ECE."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gaps = [abs(confidence[which == b].mean() - correct[which == b].mean()) * (which == b).mean()
            for b in range(bins) if (which == b).any()]
    return float(sum(gaps))


def error_report(model, data, *, transform=None, units=None, batch_size: int = 256) -> ErrorReport:
    """Predict ``data`` (an ImageSet, an (x, y) pair, or features) with ``model`` and keep everything a
    reader needs to see where it fails. ``units`` defaults to ``data.meta['object_id']`` when present."""
    x, y = _as_xy(data)
    proba = torch.softmax(predict(model, x, batch_size, transform=transform), dim=1).numpy()
    classes = list(getattr(data, "classes", range(proba.shape[1])))
    return report_from_proba(y, proba, [str(c) for c in classes], units=_units(data, units, len(y)))


def report_from_proba(y_true, proba, classes, units=None) -> ErrorReport:
    """The same report from class probabilities (e.g. scikit-learn's ``predict_proba``)."""
    y_true, proba = np.asarray(y_true), np.asarray(proba, float)
    if proba.ndim != 2 or len(proba) != len(y_true) or proba.shape[1] != len(classes):
        raise ValueError(f"proba must be (N={len(y_true)}, classes={len(classes)}); got {proba.shape}")
    units = np.arange(len(y_true)) if units is None else np.asarray(units)
    return ErrorReport(y_true, proba.argmax(1), proba, list(classes), units)


def _units(data, units, n: int) -> np.ndarray:
    if units is None:
        units = getattr(data, "meta", {}).get("object_id")
    return np.arange(n) if units is None else np.asarray(units)


def gallery(images: torch.Tensor, report: ErrorReport, n: int = 16, ncols: int = 8, title: str | None = None):
    """Held-out images with "true -> predicted (confidence)", mistakes first (red titles)."""
    order = report.mistakes_first()[:n]
    nrows = max(1, -(-len(order) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.6 * ncols, 1.9 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order):
        img = images[i].detach().cpu().float()
        ax.imshow(((img - img.min()) / (img.max() - img.min() + 1e-8)).permute(1, 2, 0).numpy())
        wrong = report.y_true[i] != report.y_pred[i]
        ax.set_title(f"{report.classes[report.y_true[i]]}\n→ {report.classes[report.y_pred[i]]} "
                     f"({report.confidence[i]:.2f})", fontsize=7, color="crimson" if wrong else "black")
    n_wrong = int((report.y_true != report.y_pred).sum())
    fig.suptitle(title or f"{n_wrong} of {len(report.y_true)} held-out images wrong; mistakes first (red)")
    fig.tight_layout()
    return fig


def verdict(margin: float, spread: float, win: str = "wins", lose: str = "loses", tie: str = "tie") -> str:
    """The course's rule for a verdict word: only a margin beyond the spread (the larger seed std,
    or a standard error) earns ``win`` / ``lose``; anything within it is a ``tie``. NaN spread (one
    seed: no spread measured) is a tie too, since nothing shows the margin is real."""
    if not np.isfinite(spread) or abs(margin) <= spread:
        return tie
    return win if margin > 0 else lose


__all__ = ["ErrorReport", "error_report", "report_from_proba", "gallery", "verdict", "unit_standard_error",
           "expected_calibration_error"]
