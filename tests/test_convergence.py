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
