from types import SimpleNamespace

import pytest
import torch

from course_utils import recipes


def _toy_set(n_per_class=8, size=32, seed=0):
    """Two classes a frozen backbone separates easily: dark vs bright images."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(2).repeat_interleave(n_per_class)
    x = (torch.rand(len(y), 3, size, size, generator=g) * 0.3 + 0.6 * y.view(-1, 1, 1, 1)).clamp(0, 1)
    return SimpleNamespace(x=x, y=y, classes=["dark", "bright"])


def _accuracy_by_hand(model, data) -> float:
    """The reported accuracy recomputed outside the library: scale [0, 1] to [-1, 1] (mean = std = 0.5,
    what both backbones were built with), one forward pass in eval mode, argmax."""
    with torch.no_grad():
        logits = model.eval()(data.x * 2 - 1)
    return (logits.argmax(1) == data.y).float().mean().item()


def test_probe_finetune_lpft_scratch_run_and_report(lite0):
    train, test = _toy_set(), _toy_set(seed=1)
    p = recipes.probe(lite0, train, test)
    assert p.accuracy >= 0.85 and p.trainable == 1280 * 2 + 2
    ft = recipes.finetune(lite0, train, test, epochs=1, lr=1e-4, freeze_groups=8)
    assert ft.accuracy == pytest.approx(_accuracy_by_hand(ft.model, test))
    trainable_by_hand = sum(p.numel() for g in ft.model.features.groups()[8:] for p in g.parameters()) + 1280 * 2 + 2
    assert ft.trainable == trainable_by_hand and len(ft.extra["history"].loss) == 1
    lp = recipes.lp_ft(lite0, train, test, epochs=1, lr=1e-5, freeze_groups=8, bn_eval=True)
    assert lp.method == "LP-FT" and lp.accuracy >= 0.8  # starts from a probed head; tiny LR and fixed BN keep it
    sc = recipes.scratch(train, test, epochs=1)
    assert sc.method.startswith("scratch") and sc.accuracy == pytest.approx(_accuracy_by_hand(sc.model, test))


def test_finetune_does_not_touch_the_loaded_backbone(lite0):
    before = [p.clone() for p in lite0.features.parameters()][:5]
    recipes.finetune(lite0, _toy_set(), _toy_set(seed=1), epochs=1, lr=1e-2)
    assert all(torch.equal(a, b) for a, b in zip(before, list(lite0.features.parameters())[:5]))


def test_feature_distance_zero_for_same_model_and_one_for_doubled_embeddings(lite0):
    ref = recipes.frozen_copy(lite0.features)
    x = _toy_set(2).x
    assert recipes.feature_distance(ref, lite0.features, x, lite0) < 1e-5

    class Doubled(torch.nn.Module):   # every embedding twice as long: |2f - f| / |f| = 1 exactly
        def forward(self, inputs):
            return 2 * ref(inputs)
    assert recipes.feature_distance(ref, Doubled(), x, lite0) == pytest.approx(1.0, abs=1e-5)


def _explained_by(out, x, dy, dx):
    """Per image: is ``out`` the circular shift by (dy, dx) of the image or of its mirror image?"""
    plain, mirrored = (torch.roll(v, (dy, dx), dims=(2, 3)) for v in (x, x.flip(3)))
    return (out == plain).flatten(1).all(1), (out == mirrored).flatten(1).all(1)


def test_flip_and_shift_is_a_random_flip_then_one_small_circular_shift():
    x = torch.rand(32, 3, 16, 16)
    out = recipes.flip_and_shift(x, max_shift=4)
    # search every allowed shift for the one that explains the whole batch
    shifts = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)]
    found = [s for s in shifts if torch.logical_or(*_explained_by(out, x, *s)).all()]
    assert len(found) == 1
    _, mirrored = _explained_by(out, x, *found[0])
    assert 0 < int(mirrored.sum()) < len(x)  # a random flip per image: some flipped, some not
    unshifted = recipes.flip_and_shift(x, max_shift=0)
    plain, mirrored = _explained_by(unshifted, x, 0, 0)
    assert (plain | mirrored).all()


def test_a_cached_frozen_prefix_trains_the_same_weights(lite0):
    """With the first groups frozen, BatchNorm statistics fixed and no augmentation, the frozen part
    maps an image to the same activations every epoch: computing them once must change nothing."""
    train, val = _toy_set(), _toy_set(seed=1)
    runs = [recipes.finetune(lite0, train, None, epochs=2, lr=1e-3, freeze_groups=6, bn_eval=True, val=val,
                             select_epoch=True, seed=3, cache_frozen=cache) for cache in (True, False)]
    cached, plain = (r.model.state_dict() for r in runs)
    assert all(torch.allclose(cached[k].float(), plain[k].float(), atol=1e-6) for k in plain)
    assert runs[0].history.val_acc == runs[1].history.val_acc
    groups, original = runs[0].model.features.groups(), lite0.features.groups()
    same = [all(torch.equal(a, b) for a, b in zip(g.parameters(), o.parameters())) for g, o in zip(groups, original)]
    assert same == [True] * 6 + [False] * (len(groups) - 6)   # the prefix stayed, the top trained


def test_results_carry_per_item_scores_for_compare(lite0):
    train, test = _toy_set(), _toy_set(seed=1)
    test.meta = {"object_id": torch.arange(len(test.y)) // 2}   # two renders per object
    ft = recipes.finetune(lite0, train, test, epochs=1, lr=1e-4, freeze_groups=8, bn_eval=True, val=test)
    assert len(ft.items) == len(test.y) // 2 and ft.items.mean() == pytest.approx(ft.accuracy)
    assert ft.val_items is not None
    p = recipes.probe(lite0, train, test)
    assert len(p.items) == len(ft.items) and p.items.mean() == pytest.approx(p.accuracy)


def test_an_unknown_optimizer_is_an_error_not_sgd(lite0):
    with pytest.raises(ValueError, match="adamw"):
        recipes.finetune(lite0, _toy_set(), None, epochs=1, optimizer="adamax")
    run = recipes.finetune(lite0, _toy_set(), None, epochs=1, freeze_groups=8, optimizer="adamw")
    assert run.history.epochs_run == 1


def test_lp_ft_names_its_run_in_the_fits_log(lite0, tmp_path, monkeypatch):
    """Notebook 05 labels each LP-FT run (task, rate, seed) so out/fits.jsonl can be audited run by run."""
    import json

    log = tmp_path / "fits.jsonl"
    monkeypatch.setenv("COURSE_FITS_LOG", str(log))
    train, val = _toy_set(), _toy_set(seed=1)
    res = recipes.lp_ft(lite0, train, None, epochs=1, lr=1e-5, freeze_groups=8, val=val, select_epoch=True,
                        method="LP-FT, toy, lr 1e-05")
    assert res.method == "LP-FT, toy, lr 1e-05"
    assert [json.loads(line)["label"] for line in log.read_text().splitlines()] == ["LP-FT, toy, lr 1e-05"]
    assert recipes.lp_ft(lite0, train, None, epochs=1, lr=1e-5, freeze_groups=8).method == "LP-FT"
