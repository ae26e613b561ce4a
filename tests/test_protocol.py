"""The course's protocol (docs/NOTEBOOKS.md): three splits that never share an object, choices on
validation, metrics from scikit-learn, and the transfer note (the comparison rule: tests/test_compare.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from course_utils import datasets
from course_utils.datafiles import objects_arrays
from course_utils.evaluation import (error_report, expected_calibration_error, gallery, report_from_proba,
                                     unit_standard_error)
from course_utils.notes import TRANSFER_NOTE_FIELDS, say, transfer_note, transfer_note_markdown
from course_utils.train import fit


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("COURSE_FAST", raising=False)


def test_objects_no_object_in_two_splits():
    ids = {split: set(datasets.load_dataset("objects", split, image_size=16, views=2).meta["object_id"].tolist())
           for split in datasets.SPLITS}
    assert all(ids.values())
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    every = set(objects_arrays()["object_id"].tolist())
    assert ids["train"] | ids["val"] | ids["test"] == every  # nothing dropped either


def test_objects_val_holds_out_whole_objects_of_every_group():
    a = objects_arrays()
    val, test = datasets.object_split(a, "val"), datasets.object_split(a, "test")
    assert np.array_equal(test, np.flatnonzero(a["split"]))  # the shipped test objects are unchanged
    counts = np.bincount(a["group"][val], minlength=len(a["groups"]))
    assert counts.min() >= datasets.MIN_VAL_PER_CLASS


@pytest.mark.parametrize("name", ["fashion_mnist", "mnist", "digits"])
def test_array_sets_have_disjoint_fixed_splits(name):
    sets = {s: datasets.load_dataset(name, s, image_size=8 if name == "digits" else 28) for s in datasets.SPLITS}
    flat = {s: {bytes(v) for v in (sets[s].x[:, 0] * 255).round().to(torch.uint8).numpy()} for s in sets}
    # identical images can exist in the source data; a split must not share more than a stray few
    assert len(flat["train"] & flat["val"]) <= 0.01 * len(flat["val"])
    assert len(flat["val"] & flat["test"]) <= 0.01 * len(flat["test"])
    again = datasets.load_dataset(name, "val", image_size=8 if name == "digits" else 28, seed=3)
    assert torch.equal(again.x, sets["val"].x)  # val never depends on seed


def test_textures_and_shapes_val_differs_from_train_and_test():
    for name in ("textures", "shapes"):
        val, test = (datasets.load_dataset(name, s, per_class=3, image_size=16) for s in ("val", "test"))
        train = datasets.load_dataset(name, "train", per_class=3, image_size=16, seed=4)
        assert not torch.equal(val.x, test.x) and not torch.equal(val.x, train.x)
    sets = {s: datasets.load_dataset("textures", s, per_class=20, image_size=16) for s in datasets.SPLITS}
    for c in range(len(sets["val"].classes)):
        box = {s: sets[s].meta["box"][(sets[s].y == c).numpy()] for s in sets}
        assert box["train"][:, 2].max() <= box["val"][:, 0].min()  # train rows end where val rows begin
        assert box["val"][:, 3].max() <= box["test"][:, 1].min()   # and test is the other half


def test_unknown_split_names_the_three():
    with pytest.raises(ValueError, match="'train', 'val', 'test'"):
        datasets.load_dataset("objects", "validation")


def test_report_metrics_match_sklearn_and_count_units():
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    proba = np.eye(3)[[0, 1, 1, 1, 2, 2, 0, 2]] * 0.7 + 0.1
    r = report_from_proba(y, proba, ["a", "b", "c"], units=[0, 0, 1, 1, 2, 2, 3, 3])
    assert r.accuracy == pytest.approx(6 / 8)
    assert r.macro_f1 == pytest.approx(f1_score(y, proba.argmax(1), average="macro"))
    table = r.per_class()
    assert table["accuracy"].tolist() == [0.5, 1.0, 0.75] and table["images"].tolist() == [2, 2, 4]
    assert table["most confused with"].tolist() == ["b", "-", "a"]
    # 4 units with accuracies 0.5, 1, 1, 0.5: the SE counts 4 units, not 8 rows
    assert r.standard_error == pytest.approx(np.std([0.5, 1, 1, 0.5], ddof=1) / 2)
    assert r.mistakes_first()[:2].tolist() == [1, 6]
    assert r.summary()["independent units"].item() == 4


def test_unit_standard_error_with_one_row_per_unit_is_the_binomial_one():
    correct = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1])
    p = correct.mean()
    assert unit_standard_error(correct, np.arange(10)) == pytest.approx(np.sqrt(p * (1 - p) / 9))


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident():
    conf = np.full(100, 0.75)
    assert expected_calibration_error(conf, np.arange(100) % 4 != 0) == pytest.approx(0.0)
    assert expected_calibration_error(np.full(100, 0.99), np.arange(100) % 2 == 0) == pytest.approx(0.49)


def test_error_report_and_gallery_from_a_model():
    x = torch.rand(12, 3, 8, 8)
    y = torch.arange(12) % 3
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3))
    r = error_report(model, (x, y))
    with torch.no_grad():  # the reference: softmax of the model's logits, by hand
        proba = torch.softmax(model.eval()(x), dim=1).numpy()
    np.testing.assert_allclose(r.proba, proba, rtol=1e-5, atol=1e-6)
    assert np.array_equal(r.y_pred, proba.argmax(1))
    assert r.accuracy == pytest.approx((proba.argmax(1) == y.numpy()).mean())
    fig = gallery(x, r, n=6, ncols=3)
    assert len([ax for ax in fig.axes if ax.images]) == 6


def test_transfer_note_needs_all_five_fields(capsys):
    fields = {k: f"value of {k}" for k in TRANSFER_NOTE_FIELDS}
    text = transfer_note_markdown(**fields)
    assert all(label in text for label in TRANSFER_NOTE_FIELDS.values())
    assert transfer_note(**fields) is None and say("*x*") is None  # shown once, not echoed as a value
    with pytest.raises(ValueError, match="Why that depth"):
        transfer_note(**{**fields, "why_depth": " "})


def test_fit_restores_the_best_epoch_on_validation():
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), (torch.arange(64) % 2)
    x[:, 0] += y * 3  # learnable
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    hist = fit(model, (x, y), 6, opt, val_data=(x, y), restore_best=True, progress=False)
    best_acc = np.flatnonzero(hist.val_acc == np.max(hist.val_acc))   # ties on accuracy: the lowest loss wins
    assert hist.best_epoch == best_acc[np.argmin(np.asarray(hist.val_loss)[best_acc])]
    from course_utils.train import evaluate
    assert evaluate(model, (x, y)) == pytest.approx(max(hist.val_acc))
    with pytest.raises(ValueError, match="val_data"):
        fit(model, (x, y), 1, opt, restore_best=True)
