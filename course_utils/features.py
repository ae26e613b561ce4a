"""Embed a data set once with a frozen backbone, cache it on disk, and probe it linearly.

Why: a frozen backbone gives the same vector for the same image every epoch, so running it
again each epoch (as many tutorials do) wastes almost all the compute. See benchmarks/.
"""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from course_utils.config import cache_dir
from course_utils.datafiles import atomic_write
from course_utils.repro import get_device
from course_utils.train import predict


# Images per forward pass when embedding. Measured on the course's 2-core CPU (EfficientNet-Lite0,
# 400 images at 64 px): batches of 32 or 64 took 0.30 s, 16 took 0.40 s and 128 took 0.48 s, as
# the activations of a larger batch no longer fit the CPU's cache. With 128, embedding a set once
# cost more than one epoch of the per-batch way with batches of 32 (benchmarks/cached_head.py).
EMBED_BATCH = 32


@torch.no_grad()
def embed(features: nn.Module, x: torch.Tensor, batch_size: int = EMBED_BATCH, device=None,
          transform=None) -> torch.Tensor:
    """Feature vectors for every image in ``x`` (``features`` in eval mode, no gradients)."""
    return predict(features, x, batch_size=batch_size, device=device or get_device(), transform=transform)


def fingerprint(*parts) -> str:
    """A short stable hash of tensors, arrays, strings and numbers (the cache key)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            part = part.detach().cpu().contiguous().numpy()
        if isinstance(part, np.ndarray):
            h.update(str((part.dtype, part.shape)).encode())
            h.update(np.ascontiguousarray(part))  # the buffer itself: tobytes() would copy it first
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"|")
    return h.hexdigest()[:20]


def module_fingerprint(module: nn.Module) -> str:
    """Hash of a module's weights and buffers: a fine-tuned backbone never hits a stale cache."""
    return fingerprint(*[t for _, t in sorted(module.state_dict().items())])


def cached_embeddings(backbone, data, *, normalize: bool = True, batch_size: int = EMBED_BATCH,
                      directory: Path | None = None, device=None) -> torch.Tensor:
    """Embeddings of ``data.x`` (images in [0, 1]) by ``backbone.features``, computed once.

    The key covers the backbone's weights, the images themselves and the preprocessing, so
    changing any of them recomputes. A corrupt or mismatched file is detected and rebuilt.
    """
    x = data.x if hasattr(data, "x") else data
    key = embedding_key(backbone, x, normalize)
    path = Path(directory or cache_dir() / "embeddings") / f"{backbone.name}-{key}.pt"
    return cached_rows(path, len(x), lambda: embed(backbone.features, x, batch_size, device,
                                                   backbone.normalize if normalize else None))


def embedding_key(backbone, x: torch.Tensor, normalize: bool = True) -> str:
    """The cache key of ``cached_embeddings``: the backbone's weights, the images and the preprocessing."""
    prep = {"normalize": normalize, "mean": backbone.mean, "std": backbone.std, "size": tuple(x.shape[1:])}
    return fingerprint(backbone.name, module_fingerprint(backbone.features), x, prep)


def cached_rows(path: Path, rows: int, compute) -> torch.Tensor:
    """``compute()`` (a tensor with ``rows`` rows) once, then read back from ``path``; a corrupt or
    mismatched file is rebuilt. The caller's file name is the cache key."""
    cached = _load_cache(path, expected_rows=rows)
    if cached is not None:
        return cached
    feats = compute()
    atomic_write(path, lambda tmp: torch.save({"features": feats, "rows": rows}, tmp))
    return feats


def cached_weights(module: nn.Module, name: str, key_parts: tuple, train) -> dict:
    """Train ``module`` once with ``train(module)``, then load the same weights from the cache instead.

    ``train`` returns a small dict of numbers to keep beside the weights (its validation curve, its
    seconds). The key: ``name``, the module's starting weights and ``key_parts`` (the data, the
    settings), so a change to any of them trains again. Notebook 07 caches its self-supervised CNN
    this way, as the embeddings are cached: a learner's second run skips the pretraining.
    """
    path = cache_dir() / "weights" / f"{name}-{fingerprint(module_fingerprint(module), *key_parts)}.pt"

    def loaded(blob) -> dict:
        module.load_state_dict(blob["state"])
        return blob["info"]

    cached = _read_cache(path, loaded, "weight cache", "training again")
    if cached is not None:
        return cached
    info = train(module)
    atomic_write(path, lambda tmp: torch.save({"state": module.state_dict(), "info": info}, tmp))
    return info


def _load_cache(path: Path, expected_rows: int) -> torch.Tensor | None:
    def rows(blob) -> torch.Tensor:
        feats = blob["features"]
        if blob["rows"] != expected_rows or feats.shape[0] != expected_rows or not torch.isfinite(feats).all():
            raise ValueError("row count or values do not match")
        return feats
    return _read_cache(path, rows, "embedding cache", "rebuilding it")


def _read_cache(path: Path, use, what: str, then: str):
    """``use(blob)`` for the file at ``path``; None when there is none, or when it is truncated, foreign or does not
    match (``use`` raises): such a file is removed with a warning, so that the caller computes it again."""
    if not path.exists():
        return None
    try:
        return use(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # truncated file, wrong format, foreign content: all mean "compute again"
        warnings.warn(f"{what} {path.name} is unusable ({type(err).__name__}: {err}); {then}")
        path.unlink(missing_ok=True)
        return None


@dataclass
class ProbeResult:
    accuracy: float
    train_accuracy: float
    seconds: float
    model: object
    hits: np.ndarray | None = None   # per test item: right (True) or wrong, in order; compare's input


def linear_probe(train_feats, train_y, test_feats, test_y, *, C: float = 1.0, max_iter: int = 1000) -> ProbeResult:
    """Logistic regression (scikit-learn) on frozen features: the standard linear probe.

    Features are standardised first; ``C`` is the inverse L2 strength.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    xtr, ytr, xte, yte = (np.asarray(_np(a)) for a in (train_feats, train_y, test_feats, test_y))
    if xtr.ndim != 2 or len(xtr) != len(ytr):
        raise ValueError(f"train features must be (N, D) with N labels; got {xtr.shape} and {len(ytr)} labels")
    if xte.ndim != 2 or xte.shape[1] != xtr.shape[1]:
        raise ValueError(f"test features {xte.shape} do not match train features' width {xtr.shape[1]}")
    start = time.perf_counter()
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    with single_threaded():
        clf.fit(xtr, ytr)
    seconds = time.perf_counter() - start
    hits = clf.predict(xte) == yte
    return ProbeResult(float(hits.mean()), float(clf.score(xtr, ytr)), seconds, clf, hits)


def single_threaded():
    """Run small scikit-learn fits on one thread: ``with single_threaded(): ...``.

    Why: scikit-learn's logistic regression uses OpenMP and BLAS threads; next to PyTorch's own
    OpenMP threads on a small CPU they fight for the cores. Measured on the course's 2-core machine
    under load: nine probes took 10-19 s with the default threads and 0.2 s on one thread.
    """
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=1)


def _np(a):
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a


def train_linear_head(train_feats: torch.Tensor, train_y: torch.Tensor, num_classes: int, *, epochs: int = 100,
                      lr: float = 1e-2, weight_decay: float = 1e-4, seed: int = 0) -> nn.Linear:
    """A torch ``nn.Linear`` head trained full-batch with Adam on cached features.

    Written out by hand because it is the method: this head can later sit on the backbone
    (LP-FT starts fine-tuning from it). Features are used as they are (no scaling) so the head
    plugs straight onto ``features``.
    """
    with torch.random.fork_rng(devices=[]):   # seeds this head only: the caller's random stream stays as it was
        torch.manual_seed(seed)
        head = nn.Linear(train_feats.shape[1], num_classes)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(head(train_feats), train_y).backward()
        opt.step()
    return head.eval()
