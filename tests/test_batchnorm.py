import pytest
import torch
from torch import nn

from course_utils.batchnorm import adapt_bn, bn_drift, bn_layers, bn_running_stats
from course_utils.layers import freeze, set_bn_eval


def _net():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))


def _stats(h):
    """The closed form BatchNorm records for one batch: per-channel mean and unbiased variance."""
    return h.mean(dim=(0, 2, 3)), h.var(dim=(0, 2, 3), correction=1)


def _rel(new, old):
    return ((new - old).norm() / old.norm()).item()


def test_layers_and_snapshot_are_copies():
    net = _net()
    assert [n for n, _ in bn_layers(net)] == ["1", "4"]
    snap = bn_running_stats(net)
    net[1].running_mean.add_(1.0)
    assert torch.equal(snap["1"][0], torch.zeros(4))


def test_frozen_net_in_train_mode_drifts_and_bn_eval_stops_it():
    net = freeze(_net())
    net[1].running_mean.fill_(0.5)  # non-zero, so the mean's relative drift is defined
    before = bn_running_stats(net)
    net.train()
    x = torch.rand(8, 3, 8, 8) * 3 + 2  # data far from the initial statistics
    net(x)
    # the momentum formula by hand: running <- 0.9 * running + 0.1 * batch (unbiased variance)
    with torch.no_grad():
        mean, var = _stats(net[0](x))
    new_mean, new_var = 0.9 * before["1"][0] + 0.1 * mean, 0.9 * before["1"][1] + 0.1 * var
    drift = bn_drift(before, net)
    assert drift["1"] == pytest.approx((_rel(new_mean, before["1"][0]), _rel(new_var, before["1"][1])), rel=1e-4)
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
    # with equal batches: the plain average of the five batches' statistics, by hand
    mean, var = (torch.stack(s).mean(0) for s in zip(*[_stats(xb) for xb in x.split(8)]))
    torch.testing.assert_close(bn.running_mean, mean)
    torch.testing.assert_close(bn.running_var, var)
    # with equal batches the mean is the data's; the variance misses the between-batch spread
    torch.testing.assert_close(bn.running_mean, x.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-5)


def test_adapt_bn_weighs_a_last_partial_batch_by_its_size():
    """70 images in batches of 64: the last 6 count for 6 images, not for half of the estimate."""
    net = nn.Sequential(nn.BatchNorm2d(3))
    x = torch.cat([torch.randn(64, 3, 4, 4), torch.randn(6, 3, 4, 4) + 10])
    adapt_bn(net, x, batch_size=64, device="cpu")
    torch.testing.assert_close(net[0].running_mean, x.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    sizes, stats = [64, 6], [_stats(xb) for xb in x.split(64)]
    weighted_var = sum(n * v for n, (_, v) in zip(sizes, stats)) / 70
    torch.testing.assert_close(net[0].running_var, weighted_var)


def test_adapt_bn_uses_transform_and_keeps_weights():
    net = _net()
    weights = [p.clone() for p in net.parameters()]
    adapt_bn(net, torch.rand(16, 3, 8, 8), transform=lambda b: b * 0 + 3, device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters()))
    # the transform's constant image, not x, reaches the network: conv output = 3 * sum(w) + b per channel
    conv = net[0]
    torch.testing.assert_close(net[1].running_mean, 3 * conv.weight.sum(dim=(1, 2, 3)) + conv.bias)
    torch.testing.assert_close(net[1].running_var, torch.zeros(4), atol=1e-5, rtol=0)


def test_adapt_bn_errors():
    with pytest.raises(ValueError, match="no BatchNorm"):
        adapt_bn(nn.Linear(2, 2), torch.rand(4, 2), device="cpu")
    with pytest.raises(ValueError, match="at least 2"):
        adapt_bn(_net(), torch.rand(1, 3, 8, 8), device="cpu")


def test_adapt_bn_first_layers_only():
    net = _net()
    x = torch.rand(16, 3, 8, 8) + 4
    adapt_bn(net, x, layers=1, device="cpu")
    with torch.no_grad():
        mean, var = _stats(net[0](x))  # one batch of 16: the first layer's input statistics
    torch.testing.assert_close(net[1].running_mean, mean)
    torch.testing.assert_close(net[1].running_var, var)
    assert torch.equal(net[4].running_mean, torch.zeros(4)) and torch.equal(net[4].running_var, torch.ones(4))
    with pytest.raises(ValueError, match="layers must be"):
        adapt_bn(_net(), torch.rand(4, 3, 8, 8), layers=3, device="cpu")
