"""Distillation, gradient reversal (DANN) and visual prompts: each against a hand computation."""
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from course_utils import (ImageSet, VisualPrompt, dann_strength, distill, distillation_loss, domain_classifier,
                          fit_dann, prompted, reverse_gradient)


def test_distillation_loss_by_hand():
    g = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g), torch.tensor([0, 1, 2, 3, 0])
    T, a = 3.0, 0.7
    p_t, p_s = (t / T).softmax(1), (s / T).softmax(1)
    kl = (p_t * (p_t.log() - p_s.log())).sum(1).mean()
    ce = -(s.log_softmax(1)[torch.arange(5), y]).mean()
    expected = a * T * T * kl + (1 - a) * ce
    assert torch.allclose(distillation_loss(s, t, y, temperature=T, alpha=a), expected, atol=1e-6)
    assert torch.allclose(distillation_loss(s, t, y, temperature=T, alpha=0.0), F.cross_entropy(s, y))
    assert distillation_loss(t, t, y, temperature=T, alpha=1.0).abs() < 1e-6  # same logits: no soft loss
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(s, t, y, temperature=0, alpha=0.5)
    with pytest.raises(ValueError, match="differ"):
        distillation_loss(s, t[:, :3], y, temperature=2, alpha=0.5)


def _toy(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.rand(n, 3, 8, 8, generator=g) * 0.5
    x[:, 0] += 0.5 * y.view(-1, 1, 1)  # class b is redder
    return ImageSet(x, y, ["a", "b"], "toy")


def _tiny_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def test_distill_learns_a_teacher_and_keeps_the_best_val_epoch():
    train, val = _toy(), _toy(seed=1)
    red = train.x[:, 0].mean((1, 2))
    teacher_logits = torch.stack([0.5 - red, red - 0.5], 1) * 10
    assert torch.equal(teacher_logits.argmax(1), train.y)  # a teacher right on every image
    student = _tiny_net()
    torch.manual_seed(0)
    hist = distill(student, train, teacher_logits, 30, torch.optim.Adam(student.parameters(), 3e-2),
                   temperature=2.0, alpha=1.0, val=val, device="cpu")  # alpha=1: soft labels only
    assert max(hist.val_acc) >= 0.8 and hist.val_acc[hist.best_epoch] == max(hist.val_acc)
    with pytest.raises(ValueError, match="teacher rows"):
        distill(student, train, teacher_logits[:10], 1, torch.optim.SGD(student.parameters(), 0.1), device="cpu")


def test_reverse_gradient_flips_and_scales():
    x = torch.randn(3, 2, requires_grad=True)
    (reverse_gradient(x, 0.5) * torch.tensor([1.0, 2.0])).sum().backward()
    assert torch.equal(reverse_gradient(x, 0.5), x)
    assert torch.allclose(x.grad, torch.tensor([[-0.5, -1.0]] * 3))


def test_dann_strength_schedule():
    assert dann_strength(0.0) == 0.0
    assert dann_strength(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann_strength(0.2) < dann_strength(0.5) < dann_strength(1.0) < 1


def test_fit_dann_pushes_the_features_towards_the_domain_classifier_loss():
    """The features receive the *reversed* domain gradient: after one step on the domain loss alone
    (label head's LR 0), the domain classifier's loss on the same batch gets *higher* for the features'
    part. Checked directly: the features' gradient equals minus the gradient without reversal."""
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    model.add_module("head", nn.Linear(4, 2))
    dom = domain_classifier(4, hidden=8)
    x = torch.rand(6, 3, 8, 8)
    labels = torch.tensor([0.0, 0, 0, 1, 1, 1])
    for sign, fn in ((1, lambda f: f), (-1, lambda f: reverse_gradient(f, 1.0))):
        model.zero_grad(), dom.zero_grad()
        F.binary_cross_entropy_with_logits(dom(fn(model.features(x))).squeeze(1), labels).backward()
        grad = model.features[0].weight.grad.clone()
        if sign == 1:
            plain = grad
    assert torch.allclose(grad, -plain) and plain.abs().sum() > 0
    # and the loop runs, trains the label head on source, and keeps the best source-val epoch
    src, tgt = _toy(), _toy(seed=2)
    opt = torch.optim.Adam(list(model.parameters()) + list(dom.parameters()), 3e-2)
    hist = fit_dann(model, dom, src, tgt.x, 5, opt, val=_toy(seed=1), device="cpu", batch_size=16)
    assert len(hist.val_acc) == 5 and hist.val_acc[hist.best_epoch] == max(hist.val_acc)


def test_visual_prompt_is_a_border_that_starts_at_zero():
    prompt = VisualPrompt(16, width=3)
    assert sum(p.numel() for p in prompt.parameters()) == 3 * (16 * 16 - 10 * 10)
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(prompt(x), x)  # starts as the unprompted model
    with torch.no_grad():
        prompt.values.fill_(1.0)
    diff = prompt(x) - x
    assert diff[:, :, 3:13, 3:13].abs().max() == 0 and torch.allclose(diff[:, :, :3], torch.ones(2, 3, 3, 16))
    assert sum(p.numel() for p in VisualPrompt(16, width=8).parameters()) == 3 * 16 * 16  # whole image
    with pytest.raises(ValueError, match="16x16"):
        prompt(torch.rand(1, 3, 20, 20))


def test_prompted_model_trains_only_the_prompt_when_the_model_is_frozen():
    net = _tiny_net()
    for p in net.parameters():
        p.requires_grad_(False)
    model = prompted(net, 8, width=2)
    model(torch.rand(4, 3, 8, 8)).sum().backward()
    assert model.prompt.values.grad is not None and model.prompt.values.grad.abs().sum() > 0
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["prompt.values"]


def test_fit_dann_updates_the_features_with_the_reversed_domain_gradient(monkeypatch):
    """One SGD step of fit_dann against the update computed by hand: the features move along the label
    gradient *minus* the domain gradient, the domain head along its own gradient. Without the reversal
    inside fit_dann the features would move along the sum, and this fails."""
    import copy

    from course_utils import dann

    monkeypatch.setattr(dann, "dann_strength", lambda progress: 1.0)   # full strength from the first step
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    model.add_module("head", nn.Linear(4, 2))
    dom = domain_classifier(4, hidden=8)
    src, tgt = _toy(16), _toy(16, seed=2)
    m0, d0 = copy.deepcopy(model), copy.deepcopy(dom)
    lr = 0.1
    fit_dann(model, dom, src, tgt.x, 1, torch.optim.SGD(list(model.parameters()) + list(dom.parameters()), lr),
             batch_size=16, seed=0, bn_eval=False, device="cpu")
    gen = torch.Generator().manual_seed(0)   # the batch fit_dann drew
    order = torch.randperm(16, generator=gen)
    tidx = torch.randint(16, (16,), generator=gen)
    feats = m0.features(torch.cat([src.x[order], tgt.x[tidx]]))
    label_loss = F.cross_entropy(m0.head(feats[:16]), src.y[order])
    domain_loss = F.binary_cross_entropy_with_logits(dom_out := d0(feats).squeeze(1),
                                                     torch.cat([torch.zeros(16), torch.ones(16)]))
    body = list(m0.features.parameters())
    g_label = torch.autograd.grad(label_loss, body, retain_graph=True)
    g_domain = torch.autograd.grad(domain_loss, body + list(d0.parameters()))
    for after, before, gl, gd in zip(model.features.parameters(), body, g_label, g_domain):
        torch.testing.assert_close(after, before - lr * (gl - gd))
    for after, before, gd in zip(dom.parameters(), d0.parameters(), g_domain[len(body):]):
        torch.testing.assert_close(after, before - lr * gd)
    assert dom_out.shape == (32,)


def test_distill_ends_with_the_best_validation_epochs_weights():
    """The kept weights are the best epoch's, not the last one's: scored again, they give the best val
    accuracy, and a rising-then-falling run ends below its last epoch's weights."""
    from course_utils.train import evaluate

    train, val = _toy(), _toy(seed=1)
    teacher = torch.randn(len(train.y), 2, generator=torch.Generator().manual_seed(5)) * 5  # a misleading teacher
    student = _tiny_net()
    torch.manual_seed(0)
    hist = distill(student, train, teacher, 12, torch.optim.Adam(student.parameters(), 5e-2), temperature=2.0,
                   alpha=0.5, val=val, device="cpu")
    assert evaluate(student, val) == pytest.approx(hist.val_acc[hist.best_epoch])
    assert hist.epoch_kept == hist.best_epoch + 1
