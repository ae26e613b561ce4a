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
