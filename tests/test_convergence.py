"""Trained to convergence: ``fit`` stops on a validation plateau under a cap, says when a run hit the
cap still rising, and ``course run`` can audit every fit through ``out/fits.jsonl``."""
from __future__ import annotations

import json

import pytest
import torch

from course_utils.train import History, fit, run_epochs


def _task(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 4, generator=g), torch.arange(n) % 2
    x[:, 0] += y * 3
    return x, y


def _scripted(curve):
    """A run_epochs whose validation accuracy follows ``curve`` (0 or 1 per epoch)."""
    model = torch.nn.Linear(1, 2)
    val = (torch.zeros(10, 1), torch.zeros(10, dtype=torch.long))
    epoch_acc = iter(curve)

    def one_epoch(epoch):
        acc = next(epoch_acc)   # the bias alone decides: class 0 (right) when acc = 1, class 1 when 0
        with torch.no_grad():
            model.weight.zero_()
            model.bias.copy_(torch.tensor([acc, 0.5]))
        return 0.0, None
    return model, val, one_epoch


def test_patience_stops_on_a_plateau_and_keeps_the_best_epoch():
    model, val, one_epoch = _scripted([0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    hist = run_epochs(model, 6, one_epoch, val_data=val, patience=3)
    assert hist.epochs_run == 5 and hist.stopped_early and hist.epoch_kept == 2
    assert not hist.still_rising


def test_a_run_that_hits_the_cap_while_rising_is_flagged():
    model, val, one_epoch = _scripted([0.0, 0.0, 1.0])
    hist = run_epochs(model, 3, one_epoch, val_data=val, patience=2)
    assert hist.epochs_run == 3 and not hist.stopped_early and hist.still_rising
    model, val, one_epoch = _scripted([1.0, 0.0, 0.0])
    assert not run_epochs(model, 3, one_epoch, val_data=val, patience=5).still_rising  # hit the cap, flat


def test_equal_accuracy_at_lower_loss_is_better():
    h = History()
    model = torch.nn.Linear(1, 2)
    x, y = torch.ones(4, 1), torch.zeros(4, dtype=torch.long)
    from course_utils.train import score_epoch
    with torch.no_grad():
        model.weight.zero_(), model.bias.copy_(torch.tensor([1.0, 0.0]))
    assert score_epoch(h, model, 0, (x, y))
    with torch.no_grad():
        model.bias.copy_(torch.tensor([3.0, 0.0]))   # same accuracy (1.0), lower loss
    assert score_epoch(h, model, 1, (x, y)) and h.best_epoch == 1
    with torch.no_grad():
        model.bias.copy_(torch.tensor([2.0, 0.0]))
    assert not score_epoch(h, model, 2, (x, y)) and h.best_epoch == 1


def test_fit_writes_one_json_line_per_run(tmp_path, monkeypatch):
    log = tmp_path / "fits.jsonl"
    monkeypatch.setenv("COURSE_FITS_LOG", str(log))
    monkeypatch.setenv("COURSE_NOTEBOOK", "02_fine_tuning.ipynb")
    data = _task()
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    hist = fit(model, data, 8, opt, val_data=data, restore_best=True, patience=2, progress=False, label="probe")
    fit(model, data, 1, opt, progress=False)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert set(first) == {"notebook", "label", "max_epochs", "epochs_run", "epoch_kept", "val_curve", "still_rising"}
    assert first["notebook"] == "02_fine_tuning.ipynb" and first["label"] == "probe" and first["max_epochs"] == 8
    assert first["epochs_run"] == hist.epochs_run and first["epoch_kept"] == hist.best_epoch + 1
    assert len(first["val_curve"]) == hist.epochs_run and first["still_rising"] == hist.still_rising
    assert lines[1]["val_curve"] == [] and lines[1]["epoch_kept"] == 1


def test_errors_say_what_to_pass():
    data = _task()
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="val_data"):
        fit(model, data, 2, opt, patience=2, progress=False)
    with pytest.raises(ValueError, match="patience must be >= 1"):
        fit(model, data, 2, opt, val_data=data, patience=0, progress=False)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit(model, data, 0, opt, progress=False)


def _fit_twice(tmp_path, monkeypatch, split: int | None, epochs=5, **options):
    """Weights and History of one uninterrupted fit, or of a fit stopped after ``split`` epochs and resumed."""
    monkeypatch.setenv("COURSE_FITS_LOG", str(tmp_path / f"fits-{split}.jsonl"))
    data = _task()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    kw = dict(val_data=data, batch_size=8, progress=False, **options)
    if split is None:
        hist = fit(model, data, epochs, opt, **kw)
    else:
        hist = fit(model, data, split, opt, label=None, **kw)
        hist = fit(model, data, epochs, opt, resume=hist, **kw)
    return model.state_dict(), hist, tmp_path / f"fits-{split}.jsonl"


def test_a_resumed_run_is_the_uninterrupted_run(tmp_path, monkeypatch):
    """Successive halving (notebook 09) stops trials at a rung and lets the winner go on: going on must
    train exactly as if the run had never stopped (the same shuffles), and log once, as one run."""
    whole, straight, _ = _fit_twice(tmp_path, monkeypatch, None)
    resumed_weights, resumed, log = _fit_twice(tmp_path, monkeypatch, 2)
    assert all(torch.equal(whole[k], resumed_weights[k]) for k in whole)
    assert resumed.val_acc == straight.val_acc and resumed.epochs_run == 5 and resumed.max_epochs == 5
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["epochs_run"] == 5  # the screening part (label=None) logged nothing


def test_a_resumed_run_keeps_no_epoch_before_the_resume_point():
    """The weights of earlier epochs are gone when a run resumes: the epoch kept is the resume point or later."""
    model, val, one_epoch = _scripted([1.0, 0.0, 0.0, 0.0])
    first = run_epochs(model, 2, one_epoch, val_data=val, restore_best=False, label=None)
    assert first.best_epoch == 0
    hist = run_epochs(model, 4, one_epoch, val_data=val, restore_best=True, resume=first, label=None)
    assert hist.epochs_run == 4 and hist.epoch_kept == 2
    assert model.bias[0].item() == 0.0  # the weights of epoch 2, the one kept


def test_length_batches_group_sentences_of_similar_length():
    from course_utils.train import LengthBatches, _loader
    lengths = torch.tensor([3, 9, 1, 7, 5, 2, 8, 4, 6, 10, 2, 5])
    ids = (torch.arange(12)[None, :] < lengths[:, None]).long() * 7  # row i: lengths[i] tokens, then padding (0)
    sampler = LengthBatches(ids, 4, torch.Generator().manual_seed(0))
    epochs = [list(sampler) for _ in range(3)]
    for batches in epochs:
        assert sorted(i for b in batches for i in b) == list(range(12))   # every row once per epoch
        spans = sorted((lengths[b].min().item(), lengths[b].max().item()) for b in batches)
        assert all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:]))  # batches cut from the sorted rows
    assert len({tuple(map(tuple, e)) for e in epochs}) > 1                  # a new batch order each epoch
    padded = {g: sum(len(xb) * xb.ne(0).sum(1).max().item() for xb, _ in _loader((ids, lengths), 4, True, 0, group_by_length=g))
              for g in (False, True)}  # the tokens a model computes, padding included
    assert padded[True] < padded[False]
    with pytest.raises(ValueError, match="token ids"):
        LengthBatches(torch.randn(4, 3), 2, torch.Generator())
