import time

import pytest
import torch

from course_utils.features import cached_embeddings, linear_probe, train_linear_head


def _images(n=12, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def test_cache_hit_and_miss(lite0, tmp_path):
    x = _images()
    first = cached_embeddings(lite0, x, directory=tmp_path)
    files = list(tmp_path.glob("*.pt"))
    assert len(files) == 1 and first.shape == (12, 1280)
    mtime = files[0].stat().st_mtime_ns
    again = cached_embeddings(lite0, x, directory=tmp_path)
    assert torch.equal(first, again) and files[0].stat().st_mtime_ns == mtime  # hit: not rewritten
    cached_embeddings(lite0, _images(seed=1), directory=tmp_path)  # other data: a new entry
    cached_embeddings(lite0, x, normalize=False, directory=tmp_path)  # other preprocessing: a new entry
    assert len(list(tmp_path.glob("*.pt"))) == 3


def test_changed_weights_miss_the_cache(lite0, tmp_path):
    import copy
    x = _images()
    cached_embeddings(lite0, x, directory=tmp_path)
    tuned = copy.copy(lite0)
    tuned.features = copy.deepcopy(lite0.features)
    with torch.no_grad():
        next(tuned.features.parameters()).mul_(1.1)
    cached_embeddings(tuned, x, directory=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_corrupt_cache_is_rebuilt(lite0, tmp_path):
    x = _images()
    good = cached_embeddings(lite0, x, directory=tmp_path)
    path = next(tmp_path.glob("*.pt"))
    path.write_bytes(path.read_bytes()[:100])  # truncated, as after a crash mid-write elsewhere
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt = cached_embeddings(lite0, x, directory=tmp_path)
    assert torch.allclose(good, rebuilt)
    assert not list(tmp_path.glob("*.tmp"))  # nothing half-written left behind


def test_interrupted_write_leaves_no_file(lite0, tmp_path, monkeypatch):
    import course_utils.features as F

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(F.torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        cached_embeddings(lite0, _images(), directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def _blobs(n_per_class=400, dim=1280, classes=4, seed=0):
    centers = torch.randn(classes, dim, generator=torch.Generator().manual_seed(123)) * 0.3
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = centers[y] + torch.randn(len(y), dim, generator=g)
    return x, y


def test_linear_probe_learns_and_is_fast():
    x, y = _blobs(200)  # 800 embeddings, as the seed literature's "well under a second" claim
    xt, yt = _blobs(50, seed=1)
    start = time.perf_counter()
    res = linear_probe(x, y, xt, yt)
    wall = time.perf_counter() - start
    assert res.accuracy > 0.9
    # the reported accuracy, recomputed by hand from the fitted model: standardise with the train
    # set's mean and population std, then a linear map and argmax
    scaler, clf = res.model[0], res.model[-1]
    mean, std = x.double().mean(0), x.double().std(0, correction=0)
    torch.testing.assert_close(torch.from_numpy(scaler.scale_), std)
    logits = ((xt.double() - mean) / std) @ torch.from_numpy(clf.coef_).double().T + torch.from_numpy(clf.intercept_)
    assert res.accuracy == pytest.approx((logits.argmax(1) == yt).double().mean().item())
    # "fast" measured: the fit's own time is part of this call's wall time, and under a second
    # measures ~0.1 s here; 5 s leaves room for a loaded shared CPU
    assert 0 < res.seconds <= wall and res.seconds < 5


def test_torch_linear_head():
    x, y = _blobs(100)
    head = train_linear_head(x, y, 4, epochs=100)
    xt, yt = _blobs(50, seed=1)
    assert (head(xt).argmax(1) == yt).float().mean() > 0.9


def test_torch_linear_head_leaves_the_callers_random_stream_alone():
    x, y = _blobs(20)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    head = train_linear_head(x, y, 4, epochs=2, seed=7)
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(head.weight, train_linear_head(x, y, 4, epochs=2, seed=7).weight)   # its own seed still fixes it


def test_linear_probe_bad_shapes():
    with pytest.raises(ValueError, match="width"):
        linear_probe(torch.zeros(10, 5), torch.arange(10) % 2, torch.zeros(4, 6), torch.zeros(4))


def test_fresh_embeddings_can_train_a_head(lite0, tmp_path):
    """A cache miss must return ordinary tensors: inference-mode ones cannot feed a backward pass."""
    feats = cached_embeddings(lite0, _images(), directory=tmp_path)
    head = train_linear_head(feats, torch.arange(12) % 2, 2, epochs=2)
    assert head.weight.shape == (2, 1280)


def test_cached_weights_train_once_then_load(tmp_path, monkeypatch):
    """Notebook 07's self-supervised CNN: the first call trains, the next loads the same weights without
    training, a changed setting trains again, and a corrupt file is retrained, not trusted."""
    from course_utils.features import cached_weights
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    calls = []

    def train(module):
        calls.append(1)
        with torch.no_grad():
            module.weight.add_(1.0)
        return {"val_curve": [0.5, 0.75]}

    def fresh():
        torch.manual_seed(0)
        return torch.nn.Linear(3, 2)

    first = fresh()
    assert cached_weights(first, "net", ("data", 1), train) == {"val_curve": [0.5, 0.75]} and len(calls) == 1
    second = fresh()
    assert cached_weights(second, "net", ("data", 1), train) == {"val_curve": [0.5, 0.75]} and len(calls) == 1
    assert torch.equal(first.weight, second.weight)
    cached_weights(fresh(), "net", ("data", 2), train)
    assert len(calls) == 2                                   # another setting: trained again
    for path in (tmp_path / "weights").iterdir():
        path.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="unusable"):
        cached_weights(fresh(), "net", ("data", 1), train)
    assert len(calls) == 3
