import pytest
import torch
from torch import nn

from course_utils.batchnorm import adapt_bn, bn_drift, bn_layers, bn_running_stats
from course_utils.finetune import freeze, set_bn_eval


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))


def test_layers_and_snapshot_are_copies():
    net = _net()
    assert [n for n, _ in bn_layers(net)] == ["1", "4"]
    snap = bn_running_stats(net)
    net[1].running_mean.add_(1.0)
    assert torch.equal(snap["1"][0], torch.zeros(4))


def test_frozen_net_in_train_mode_drifts_and_bn_eval_stops_it():
    net = freeze(_net())
    before = bn_running_stats(net)
    net.train()
    net(torch.rand(8, 3, 8, 8) * 3 + 2)  # data far from the initial statistics (mean 0, var 1)
    drift = bn_drift(before, net)
    assert all(m > 0 and v > 0 for m, v in [drift["1"]]), "train-mode BN should move its statistics"
    after = bn_running_stats(net)
    net.train()
    set_bn_eval(net)
    net(torch.rand(8, 3, 8, 8) * 3 + 2)
    assert all(m == 0 and v == 0 for m, v in bn_drift(after, net).values())


def test_drift_of_identical_snapshots_is_zero_and_mismatch_raises():
    net = _net()
    snap = bn_running_stats(net)
    assert bn_drift(snap, snap) == {"1": (0.0, 0.0), "4": (0.0, 0.0)}
    with pytest.raises(ValueError, match="different BatchNorm layers"):
        bn_drift(snap, {"1": snap["1"]})


def test_adapt_bn_matches_target_statistics_and_restores_momentum():
    net = nn.Sequential(nn.BatchNorm2d(3))
    x = torch.randn(40, 3, 4, 4) * 2 + 5
    adapt_bn(net, x, batch_size=8, device="cpu")
    bn = net[0]
    assert not bn.training and bn.momentum == 0.1
    # an equal-weight average of batch statistics: with equal batches, the data's channel mean
    assert torch.allclose(bn.running_mean, x.mean(dim=(0, 2, 3)), atol=1e-4)
    assert torch.allclose(bn.running_var, x.var(dim=(0, 2, 3)), rtol=0.05)


def test_adapt_bn_uses_transform_and_keeps_weights():
    net = _net()
    weights = [p.clone() for p in net.parameters()]
    adapt_bn(net, torch.rand(16, 3, 8, 8), transform=lambda b: b * 0 + 3, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters()))
    assert net[1].running_var.abs().max() < 1e-3  # constant input: (almost) no variance


def test_adapt_bn_errors():
    with pytest.raises(ValueError, match="no BatchNorm"):
        adapt_bn(nn.Linear(2, 2), torch.rand(4, 2), device="cpu")
    with pytest.raises(ValueError, match="at least 2"):
        adapt_bn(_net(), torch.rand(1, 3, 8, 8), device="cpu")


def test_adapt_bn_first_layers_only():
    net = _net()
    adapt_bn(net, torch.rand(16, 3, 8, 8) + 4, layers=1, device="cpu")
    assert net[1].running_mean.abs().max() > 0.1  # adapted
    assert torch.equal(net[4].running_mean, torch.zeros(4)) and torch.equal(net[4].running_var, torch.ones(4))
    with pytest.raises(ValueError, match="layers must be"):
        adapt_bn(_net(), torch.rand(4, 3, 8, 8), layers=3, device="cpu")
