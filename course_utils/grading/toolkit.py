"""Helpers for hidden tests (they run in the check process, never in a student's kernel)."""
from __future__ import annotations

from functools import lru_cache


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
