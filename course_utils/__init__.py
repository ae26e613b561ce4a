"""Helpers for the transfer-learning course.

Import what you need from its modules, e.g. ``from course_utils.backbones import load_backbone``.
This file stays light on purpose: the grader CLI imports the package without torch.
"""
__version__ = "0.1.0"
