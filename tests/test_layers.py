import pytest
import torch

from course_utils.checks import assert_bn_eval, assert_frozen, assert_trainable
from course_utils.layers import (count_trainable, freeze, freeze_to, layer_groups, layerwise_lr_groups, param_groups,
                                   replace_head, set_bn_eval, unfreeze, unfreeze_schedule)


def test_freeze_pattern(lite0):
    model = replace_head(lite0, 5)
    freeze(model.features)
    assert count_trainable(model.features) == 0
    assert count_trainable(model) == 1280 * 5 + 5
    assert_frozen(model.features, "features")
    assert_trainable(model.head, "head")
    unfreeze(model.features)
    with pytest.raises(AssertionError, match="not frozen"):
        assert_frozen(model.features, "features")


def test_replace_head_copies_features(lite0):
    model = replace_head(lite0, 3)
    with torch.no_grad():
        next(model.features.parameters()).add_(1.0)
    assert not torch.equal(next(model.features.parameters()), next(lite0.features.parameters()))
    with pytest.raises(ValueError):
        replace_head(lite0, 1)


def _bn_stats(model):
    return [b.clone() for n, b in model.named_buffers() if "running_mean" in n]


def test_set_bn_eval_keeps_running_stats(lite0):
    model = replace_head(lite0, 3)
    x = torch.rand(8, 3, 64, 64) * 2 - 1
    before = _bn_stats(model)
    model.train()
    set_bn_eval(model)
    assert_bn_eval(model)
    model(x)
    assert all(torch.equal(a, b) for a, b in zip(before, _bn_stats(model)))
    model.train()  # without the fix the statistics move
    with pytest.raises(AssertionError, match="BatchNorm"):
        assert_bn_eval(model)
    model(x)
    assert any(not torch.equal(a, b) for a, b in zip(before, _bn_stats(model)))


def test_param_groups_named_lrs(lite0):
    model = replace_head(lite0, 3)
    groups = param_groups(model, {"head": 1e-2, "features": 1e-4})
    opt = torch.optim.SGD(groups, lr=1.0)
    assert [g["lr"] for g in opt.param_groups] == [1e-2, 1e-4]
    assert sum(p.numel() for g in groups for p in g["params"]) == count_trainable(model)
    with pytest.raises(ValueError, match="unknown part"):
        param_groups(model, {"body": 1e-3})


def test_param_groups_decay_and_frozen_excluded(lite0):
    model = replace_head(lite0, 3)
    freeze_to(model, 8)  # only the top conv group and the head train
    groups = param_groups(model, head_lr=1e-2, decay=0.1)
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-2])
    assert sum(p.numel() for g in groups for p in g["params"]) == count_trainable(model)


def test_freeze_to_and_schedule(lite0):
    model = replace_head(lite0, 3)
    groups = layer_groups(model)
    assert len(groups) == 10
    freeze_to(model, -1)
    assert count_trainable(model) == count_trainable(model.head)
    freeze_to(model, 0)
    assert count_trainable(model) == sum(p.numel() for p in model.parameters())
    assert unfreeze_schedule(model, 4) == [1, 2, 3, 4]
    assert unfreeze_schedule(model, 12)[-1] == 10
    with pytest.raises(ValueError):
        freeze_to(model, 11)


def test_layerwise_lr_groups(lite0):
    model = replace_head(lite0, 3)
    groups = layerwise_lr_groups(model, head_lr=1e-3, decay=0.5)
    assert len(groups) == len(layer_groups(model)) == 10
    assert [g["lr"] for g in groups] == pytest.approx([1e-3 * 0.5 ** i for i in range(9, -1, -1)])
    assert sum(p.numel() for g in groups for p in g["params"]) == count_trainable(model)
    freeze_to(model, 6)
    assert len(layerwise_lr_groups(model, head_lr=1e-3, decay=0.5)) == 4
    for bad in ({"head_lr": 1e-3, "decay": 0.0}, {"head_lr": 1e-3, "decay": 1.5}, {"head_lr": 0.0, "decay": 0.5}):
        with pytest.raises(ValueError):
            layerwise_lr_groups(model, **bad)


def test_unfreeze_schedule_in_blocks(lite0):
    model = replace_head(lite0, 3)
    assert unfreeze_schedule(model, 5, step=3) == [1, 4, 7, 10, 10]
    assert unfreeze_schedule(model, 2, step=9) == [1, 10]
    assert unfreeze_schedule(model, 3) == unfreeze_schedule(model, 3, step=1) == [1, 2, 3]
    with pytest.raises(ValueError):
        unfreeze_schedule(model, 3, step=0)
