import copy

import pytest
import torch
from PIL import Image

from course_utils.forgetting import (imagenet_agreement, imagenet_logits, imagenet_top1, photo_batch,
                                     top1_names)


def _batch(lite0, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return lite0.normalize(torch.rand(n, 3, 64, 64, generator=g))


def test_unchanged_model_agrees_fully(lite0):
    x = _batch(lite0)
    ref = imagenet_top1(lite0.features, lite0.head, x, device="cpu")
    assert ref.shape == (6,) and ref.dtype == torch.int64
    assert imagenet_agreement(lite0.features, lite0.head, x, ref, device="cpu") == 1.0
    logits = imagenet_logits(lite0.features, lite0.head, x, device="cpu")
    assert logits.shape == (6, 1000) and torch.equal(logits.argmax(1), ref)


def test_changed_features_lower_agreement(lite0):
    x = _batch(lite0, n=8)
    ref = imagenet_top1(lite0.features, lite0.head, x, device="cpu")
    wrecked = copy.deepcopy(lite0.features)
    with torch.no_grad():
        for p in wrecked.parameters():
            p.add_(torch.randn_like(p) * p.std().clamp_min(1e-3))  # heavy damage: a "forgotten" model
    assert imagenet_agreement(wrecked, lite0.head, x, ref, device="cpu") < 1.0


def test_agreement_checks_reference_shape(lite0):
    x = _batch(lite0, n=3)
    with pytest.raises(ValueError, match="one class index per image"):
        imagenet_agreement(lite0.features, lite0.head, x, torch.zeros(4, dtype=torch.long), device="cpu")
    with pytest.raises(ValueError, match="normalised image batch"):
        imagenet_top1(lite0.features, lite0.head, x[0], device="cpu")


def test_photo_batch_and_names(lite0):
    images = [Image.new("RGB", (80, 60), (200, 30, 30)), Image.new("L", (50, 90), 128)]
    batch = photo_batch(images, lite0.preprocess)
    assert batch.shape == (2, 3, 64, 64)
    assert top1_names(torch.tensor([0, 1]), lite0.categories) == lite0.categories[:2]
    with pytest.raises(ValueError, match="no photos"):
        photo_batch([], lite0.preprocess)
