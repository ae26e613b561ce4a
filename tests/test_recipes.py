from types import SimpleNamespace

import torch

from course_utils import recipes


def _toy_set(n_per_class=8, size=32, seed=0):
    """Two classes a frozen backbone separates easily: dark vs bright images."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(2).repeat_interleave(n_per_class)
    x = (torch.rand(len(y), 3, size, size, generator=g) * 0.3 + 0.6 * y.view(-1, 1, 1, 1)).clamp(0, 1)
    return SimpleNamespace(x=x, y=y, classes=["dark", "bright"])


def test_probe_finetune_lpft_scratch_run_and_report(lite0):
    train, test = _toy_set(), _toy_set(seed=1)
    p = recipes.probe(lite0, train, test)
    assert p.accuracy >= 0.85 and p.trainable == 1280 * 2 + 2
    ft = recipes.finetune(lite0, train, test, epochs=1, lr=1e-4, freeze_groups=8)
    assert 0 <= ft.accuracy <= 1 and ft.trainable < 1_000_000 and ft.extra["history"].loss
    lp = recipes.lp_ft(lite0, train, test, epochs=1, lr=1e-5, freeze_groups=8, bn_eval=True)
    assert lp.method == "LP-FT" and lp.accuracy >= 0.8  # starts from a probed head; tiny LR and fixed BN keep it
    sc = recipes.scratch(train, test, epochs=1)
    assert sc.method.startswith("scratch") and 0 <= sc.accuracy <= 1


def test_finetune_does_not_touch_the_loaded_backbone(lite0):
    before = [p.clone() for p in lite0.features.parameters()][:5]
    recipes.finetune(lite0, _toy_set(), _toy_set(seed=1), epochs=1, lr=1e-2)
    assert all(torch.equal(a, b) for a, b in zip(before, list(lite0.features.parameters())[:5]))


def test_feature_distance_zero_for_same_model(lite0):
    ref = recipes.frozen_copy(lite0.features)
    x = _toy_set(2).x
    assert recipes.feature_distance(ref, lite0.features, x, lite0) < 1e-5


def test_flip_and_shift_keeps_shape_and_values():
    x = torch.rand(4, 3, 16, 16)
    out = recipes.flip_and_shift(x)
    assert out.shape == x.shape and torch.allclose(out.sum(), x.sum(), rtol=1e-4)
