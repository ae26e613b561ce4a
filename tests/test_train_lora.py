import pytest
import torch
from torch import nn

from course_utils.layers import count_trainable, freeze
from course_utils.lora import LoRA, add_lora, merge_lora
from course_utils.train import evaluate, fit


def _toy(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x, y


def test_fit_learns_and_reports_history():
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    h = fit(model, _toy(), 10, torch.optim.Adam(model.parameters(), 1e-2), val_data=_toy(seed=1),
            device="cpu", progress=False)
    assert len(h.loss) == 10 and h.loss[-1] < h.loss[0]
    assert h.final_val > 0.85 and evaluate(model, _toy(seed=1), device="cpu") == pytest.approx(h.final_val)


def test_fit_is_reproducible():
    def run():
        torch.manual_seed(0)
        model = nn.Linear(10, 2)
        fit(model, _toy(), 3, torch.optim.SGD(model.parameters(), 0.1), device="cpu", progress=False)
        return model.weight.detach().clone()
    assert torch.equal(run(), run())


def test_fit_diverging_lr_raises():
    model = nn.Linear(10, 2)
    x, y = _toy()
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit(model, (x * 1e10, y), 5, torch.optim.SGD(model.parameters(), 1e30), device="cpu", progress=False)


def test_fit_mismatched_data():
    with pytest.raises(ValueError, match="labels"):
        fit(nn.Linear(10, 2), (torch.zeros(5, 10), torch.zeros(4).long()), 1,
            torch.optim.SGD(nn.Linear(1, 1).parameters(), 0.1), progress=False)


def test_lora_starts_at_pretrained_and_counts(lite0):
    import copy
    features = copy.deepcopy(lite0.features).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        before = features(x)
    freeze(features)
    names = add_lora(features, rank=4, target=lambda n: n.endswith("conv_pwl"))
    assert len(names) == 15  # the first block has no expansion, so no conv_pwl
    lora_params = sum(m.down.weight.numel() + m.up.weight.numel() for m in features.modules() if isinstance(m, LoRA))
    assert count_trainable(features) == lora_params > 0
    with torch.no_grad():
        assert torch.allclose(features(x), before, atol=1e-5)  # B = 0 at init


def test_lora_merge_is_exact():
    lin = nn.Linear(8, 6)
    wrapped = LoRA(lin, rank=2)
    nn.init.normal_(wrapped.up.weight)
    x = torch.randn(3, 8)
    with torch.no_grad():
        y = wrapped(x)
        model = merge_lora(nn.Sequential(wrapped))
        assert isinstance(model[0], nn.Linear)
        assert torch.allclose(model(x), y, atol=1e-5)


def test_lora_rejects_unsupported():
    with pytest.raises(TypeError, match="1x1"):
        LoRA(nn.Conv2d(3, 3, 3))
    with pytest.raises(ValueError, match="matched"):
        add_lora(nn.Sequential(nn.ReLU()))


def test_add_lora_twice_does_not_wrap_wrappers():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    assert add_lora(model, rank=2) == ["0", "1"]
    with pytest.raises(ValueError, match="matched"):
        add_lora(model, rank=2)  # every eligible layer is already adapted


def test_padded_pointwise_conv_is_not_eligible():
    with pytest.raises(TypeError):
        LoRA(nn.Conv2d(3, 3, 1, padding=1))
