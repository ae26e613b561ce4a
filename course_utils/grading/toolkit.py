"""Helpers for hidden tests (they run in the check process, never in a student's kernel).

``term_rng``/``term_subset``/``heldout_objects``: held-out items the instructor kit's per-term
secret picks (``course-grade kit``; the grader hands it to the check process only), so reading the
public hidden tests does not tell which renders a check scores on. Without a kit (the repository's
exercises, self-study) the secret is absent and the picks are fixed.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

from course_utils.grading.spec import SECRET_ENV


@lru_cache(maxsize=4)
def check_backbone(image_size: int):
    """The pretrained backbone, loaded once per check process, on one thread.

    One thread: checks of parallel submissions run side by side on a small CPU.
    """
    import torch

    from course_utils.backbones import load_backbone
    torch.set_num_threads(1)
    return load_backbone("efficientnet_lite0", image_size=image_size)


def submitted_state(state, num_classes: int, image_size: int, label: str = "model") -> dict:
    """A submitted ``state_dict`` (plain arrays) as tensors, checked against
    ``replace_head(Lite0, num_classes)``: same keys, shapes, finite values. Raises AssertionError."""
    import numpy as np
    import torch

    from course_utils.layers import replace_head
    assert isinstance(state, dict), f"{label}: the state_dict arrived as {type(state).__name__}, not a dict"
    expected = replace_head(check_backbone(image_size), num_classes).state_dict()
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    assert not missing and not extra, (f"{label} is not replace_head(Lite0, {num_classes}): "
                                       f"missing {missing[:2]}, unexpected {extra[:2]}")
    out = {}
    for key, ref in expected.items():
        value = torch.from_numpy(np.asarray(state[key])).to(ref.dtype)
        assert tuple(value.shape) == tuple(ref.shape), \
            f"{label}: {key} has shape {tuple(value.shape)}, expected {tuple(ref.shape)}"
        assert torch.isfinite(value.float()).all(), f"{label}: {key} contains NaN/inf"
        out[key] = value
    return out


def term_rng(label: str):
    """A numpy Generator seeded by the kit's secret and ``label`` (one stream per use); a fixed
    seed without a kit."""
    import numpy as np

    secret = os.environ.get(SECRET_ENV, "")
    digest = hmac.new(secret.encode(), label.encode(), hashlib.sha256).digest() if secret else bytes(8)
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def term_subset(labels, per_class: int, label: str):
    """Sorted indices of ``per_class`` items of every class in ``labels``, picked by ``term_rng``."""
    import numpy as np

    labels = np.asarray(labels)
    rng = term_rng(label)
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
             for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def heldout_objects(image_size: int, per_group: int = 10, views: int = 6, label: str = "objects"):
    """Renders of the test objects (never in a kernel: the sandbox hides them), ``per_group`` of
    every group picked by the term's secret among ``views`` views of each object, the canonical
    view 0 (the one a notebook's own objects are rendered in first) left out."""
    from course_utils.datasets import load_dataset, objects_per_group

    pool = min(objects_per_group("test").values()) * views  # every render of the smallest group
    data = load_dataset("objects", "test", per_class=pool, image_size=image_size, seed=0, views=views)
    data = data.subset(data.meta["view"] != 0)
    return data.subset(term_subset(data.y.numpy(), per_group, f"{label}:{image_size}"))
