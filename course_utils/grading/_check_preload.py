"""Imported once by the grader's check server before it forks check processes (checkserver.py).

Only library imports: no data, no models, nothing from a submission or the hidden tests, so
every forked check starts from the same clean state.
"""
import numpy  # noqa: F401
import torch

import course_utils.backbones  # noqa: F401  (torch, torchvision, timm: the ~3.5 s we save)
import course_utils.datasets  # noqa: F401
import course_utils.features  # noqa: F401
import course_utils.layers  # noqa: F401
import course_utils.grading.checker  # noqa: F401
import course_utils.grading.toolkit  # noqa: F401

# Checks of parallel submissions run side by side on a small CPU: one thread each.
torch.set_num_threads(1)
