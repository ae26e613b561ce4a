"""Tests for the data registry and loaders (course_utils.datasets, datafiles, scenes); fast, offline."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils import datafiles, datasets, scenes
from course_utils.scenes import permutation

SMALL = dict(image_size=32)
EXPECTED_CLASSES = {"fashion_mnist": 10, "mnist": 10, "digits": 10, "objects": 9, "textures": 5, "shapes": 4}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own empty cache; FAST mode off unless a test turns it on."""
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("COURSE_FAST", raising=False)


def test_registry_info_agrees_with_the_loaders_and_data_readme():
    """What dataset_info says is what the loader takes and what data/README.md documents."""
    import inspect

    readme = (Path(__file__).resolve().parent.parent / "data" / "README.md").read_text()
    assert datasets.list_datasets() == list(EXPECTED_CLASSES)
    for name in datasets.list_datasets():
        info = datasets.dataset_info(name)
        assert info["kind"] in ("near", "mid", "far") and info["splits"] == list(datasets.SPLITS)
        loader = inspect.signature(datasets._REGISTRY[name]["loader"]).parameters
        assert set(info["options"]) == {p for p, v in loader.items() if v.kind is v.KEYWORD_ONLY}, name
        for file, sha in info["files"].items():
            assert sha == datafiles.FILES[file]["sha256"], (name, file)
        shipped = [f for f in info["files"] if (datafiles.data_dir() / f).exists()]
        for file in shipped:   # a file that ships in data/ is documented there with its checksum
            assert file in readme and info["files"][file] in readme, (name, file)


def test_shipped_files_match_registry():
    for name in ("fashion_mnist_subset.npz", "objects.npz"):
        path = datafiles.data_dir() / name
        assert datafiles.sha256_file(path) == datafiles.FILES[name]["sha256"]


@pytest.mark.parametrize("name", list(EXPECTED_CLASSES))
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_every_set_loads_with_the_contract(name, split):
    s = datasets.load_dataset(name, split, per_class=2, **SMALL)
    assert s.x.dtype == torch.float32 and s.x.shape == (len(s), 3, 32, 32)
    assert 0.0 <= float(s.x.min()) and float(s.x.max()) <= 1.0 and float(s.x.std()) > 0.01
    assert s.y.dtype == torch.int64 and len(s.classes) == EXPECTED_CLASSES[name]
    assert set(s.counts().values()) == {2} and len(s) == 2 * len(s.classes)
    assert s.name == f"{name}/{split}"


def test_full_split_sizes():
    assert len(datasets.load_dataset("fashion_mnist", "test", image_size=28)) == 2000
    mnist = {sp: datasets.load_dataset("mnist", sp, image_size=28) for sp in datasets.SPLITS}
    assert [set(mnist[sp].counts().values()) for sp in datasets.SPLITS] == [{320}, {80}, {100}]
    digits = [datasets.load_dataset("digits", sp, image_size=8) for sp in datasets.SPLITS]
    assert sum(map(len, digits)) == 1797 and 0.18 < len(digits[2]) / 1797 < 0.22
    assert 0.14 < len(digits[1]) / 1797 < 0.18
    fashion = [datasets.load_dataset("fashion_mnist", sp, image_size=28) for sp in ("train", "val")]
    assert [set(f.counts().values()) for f in fashion] == [{500}, {100}]


def test_digits_nearest_upsampling_keeps_the_17_grey_levels():
    s = datasets.load_dataset("digits", "train", per_class=3, image_size=64)
    assert set(torch.unique(s.x * 16).round().tolist()) <= set(range(17))
    smooth = datasets.load_dataset("digits", "train", per_class=3, image_size=64, interpolation="bilinear")
    assert len(torch.unique(smooth.x)) > 17


def test_per_class_subsampling_is_balanced_and_seeded():
    a, b = (datasets.load_dataset("fashion_mnist", "train", per_class=5, seed=0, **SMALL) for _ in range(2))
    c = datasets.load_dataset("fashion_mnist", "train", per_class=5, seed=1, **SMALL)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x) and set(c.counts().values()) == {5}
    full = datasets.load_dataset("mnist", "test", **SMALL)
    s0, s0b, s1 = datasets.subsample(full, 7, seed=0), datasets.subsample(full, 7, seed=0), datasets.subsample(full, 7, seed=1)
    assert set(s0.counts().values()) == {7} and torch.equal(s0.x, s0b.x) and not torch.equal(s0.x, s1.x)


@pytest.mark.parametrize("name", datasets.list_datasets())
@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize("per_class", [None, 2])
def test_val_and_test_never_depend_on_the_seed(name, split, per_class, monkeypatch):
    """Every registered set, whole and subsampled, in FAST mode too (which subsamples per_class=None):
    runs with different seeds must be scored on the same items, or a paired comparison pairs nothing."""
    monkeypatch.setenv("COURSE_FAST", "1")
    t0 = datasets.load_dataset(name, split, seed=0, per_class=per_class, image_size=16)
    t5 = datasets.load_dataset(name, split, seed=5, per_class=per_class, image_size=16)
    assert torch.equal(t0.x, t5.x) and torch.equal(t0.y, t5.y), (name, split)


def test_fast_mode_is_one_switch(monkeypatch):
    """A notebook's FAST parameter, env COURSE_FAST and `course run --fast` all end in the same place."""
    from course_utils.config import fast_mode, is_fast

    monkeypatch.delenv("COURSE_FAST", raising=False)
    assert fast_mode(True) and is_fast()            # the parameter turns the library's defaults on too
    monkeypatch.setenv("COURSE_FAST", "yes")
    assert fast_mode(False)                          # the environment wins over a False parameter
    monkeypatch.setenv("COURSE_FAST", "0")
    assert not fast_mode(False) and not is_fast()


def test_objects_split_by_object_and_views():
    train = datasets.load_dataset("objects", "train", views=3, **SMALL)
    test = datasets.load_dataset("objects", "test", views=2, **SMALL)
    assert not set(train.meta["object_id"]) & set(test.meta["object_id"])
    assert len(train) == 3 * len(set(train.meta["object_id"])) and set(train.meta["view"]) == {0, 1, 2}
    def objects_of(s, i):
        return set(s.subset(s.y == i).meta["object_id"])
    val = datasets.load_dataset("objects", "val", **SMALL)
    n = {k: len(objects_of(train, i)) + len(objects_of(val, i)) + len(objects_of(test, i))
         for i, k in enumerate(train.classes)}
    assert min(n.values()) >= 15
    for k, i in ((k, i) for i, k in enumerate(train.classes)):
        frac = len(objects_of(test, i)) / n[k]
        assert 0.2 <= frac <= 0.34, (k, frac)
    sub = train.subset(torch.arange(4))
    assert list(sub.meta["object_id"]) == list(train.meta["object_id"][:4])


def test_object_backgrounds_differ_and_check_values():
    white = datasets.load_dataset("objects", "train", per_class=1, **SMALL)
    assert float(white.x[:, :, 0, 0].min()) == 1.0  # corners are background
    for bg in ("noise", "texture"):
        other = datasets.load_dataset("objects", "train", per_class=1, background=bg, **SMALL)
        assert float(other.x[:, :, 0, 0].mean()) < 0.99
    with pytest.raises(ValueError, match="allowed: 'white', 'noise', 'texture'"):
        datasets.load_dataset("objects", background="plaid")


def test_texture_crops_come_from_disjoint_halves():
    widths = [img.shape[1] for img in scenes.texture_images().values()]
    train = datasets.load_dataset("textures", "train", crops=20, **SMALL)
    test = datasets.load_dataset("textures", "test", crops=20, **SMALL)
    for label, width in enumerate(widths):
        assert (train.meta["box"][train.y.numpy() == label][:, 3] <= width // 2).all()
        assert (test.meta["box"][test.y.numpy() == label][:, 1] >= width // 2).all()


def test_shapes_options():
    grey = datasets.load_dataset("shapes", "train", per_class=3, colour=False, background="black", **SMALL)
    assert torch.equal(grey.x[:, 0], grey.x[:, 1]) and float(grey.x[:, :, 0, 0].max()) == 0.0
    assert len(datasets.load_dataset("shapes", "test", count=7, **SMALL)) == 28


def test_shift_kinds_do_what_they_say():
    s = datasets.load_dataset("objects", "test", per_class=2, **SMALL)
    x = s.x
    assert torch.allclose(datasets.shift(s, "invert").x, 1 - x)
    assert torch.equal(datasets.shift(s, "permute", strength=0).x, x)
    assert torch.equal(datasets.shift(s, "rotate", strength=1.0).x, x.flip(-1, -2))
    index = permutation(32, 32, 1.0, seed=0)
    assert (index != torch.arange(32 * 32)).all()  # strength 1 moves every pixel
    half = permutation(32, 32, 0.5, seed=0)
    assert (half != torch.arange(32 * 32)).sum() == 512
    p = datasets.shift(s, "permute", strength=1.0).x
    assert torch.equal(p.flatten(2).sort(dim=2).values, x.flatten(2).sort(dim=2).values)
    assert not torch.equal(p, x)
    assert datasets.shift(s, "blur").x.diff(dim=-1).abs().mean() < x.diff(dim=-1).abs().mean()
    def spread(t):
        return (t - t.mean(dim=(1, 2, 3), keepdim=True)).std()
    assert torch.isclose(spread(datasets.shift(s, "contrast").x), 0.1 * spread(x), rtol=1e-3)
    assert torch.allclose(datasets.shift(s, "colour").x, x[:, [2, 0, 1]])
    n1, n2 = datasets.shift(s, "noise", seed=3).x, datasets.shift(s, "noise", seed=3).x
    assert torch.equal(n1, n2) and not torch.equal(n1, x) and 0 <= float(n1.min()) and float(n1.max()) <= 1
    assert torch.equal(datasets.shift(s, "noise", strength=0.5).y, s.y)
    with pytest.raises(ValueError, match="allowed: rotate, blur, invert"):
        datasets.shift(s, "sepia")
    with pytest.raises(ValueError, match="strength"):
        datasets.shift(s, "blur", strength=2)


def test_clear_value_errors():
    with pytest.raises(ValueError, match="known: fashion_mnist, mnist, digits"):
        datasets.load_dataset("cifar10")
    with pytest.raises(ValueError, match="allowed: 'train', 'val', 'test'"):
        datasets.load_dataset("mnist", "valid")
    with pytest.raises(ValueError, match="allowed: views, background"):
        datasets.load_dataset("objects", colour=True)
    with pytest.raises(ValueError, match="the max is 320"):
        datasets.load_dataset("mnist", "train", per_class=321)
    with pytest.raises(ValueError, match="the max is 9"):
        datasets.load_dataset("objects", "train", per_class=10)
    s = datasets.load_dataset("digits", "test", **SMALL)
    with pytest.raises(ValueError, match="the max is 35"):
        datasets.subsample(s, 36)
    with pytest.raises(ValueError, match="unknown data set"):
        datasets.dataset_info("nope")


def test_fast_mode_caps_per_class(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    s = datasets.load_dataset("fashion_mnist", "train", **SMALL)
    assert set(s.counts().values()) == {50}


def _no_debian_no_online(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(datafiles, "FASHION_DEBIAN_DIR", tmp_path / "no-debian")

    def offline():
        raise OSError("network is unreachable")
    monkeypatch.setattr(datafiles, "_fashion_online", offline)


def test_missing_files_raise_data_error_with_the_fix(monkeypatch, tmp_path):
    _no_debian_no_online(monkeypatch, tmp_path)
    with pytest.raises(datafiles.DataError) as err:
        datasets.load_dataset("fashion_mnist")
    message = str(err.value)
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert str(tmp_path / "empty" / "fashion_mnist_subset.npz") in message and "internet" in message
    with pytest.raises(datafiles.DataError, match="git checkout -- data/objects.npz"):
        datasets.load_dataset("objects")


def test_corrupt_shipped_file_is_detected(monkeypatch, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    raw = bytearray((datafiles.data_dir() / "objects.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (folder / "objects.npz").write_bytes(bytes(raw))
    monkeypatch.setenv("COURSE_DATA_DIR", str(folder))
    with pytest.raises(datafiles.DataError, match=r"objects.npz is corrupt \(sha256 [0-9a-f]{64}, expected"):
        datasets.load_dataset("objects")


def test_corrupt_cache_file_is_rebuilt(monkeypatch):
    calls = []

    def build():
        calls.append(1)
        return {"x": np.arange(10)}
    assert datafiles.cached("unit:test", build)["x"].sum() == 45
    path = datafiles.cache_path("unit:test")
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert datafiles.cached("unit:test", build)["x"].sum() == 45 and len(calls) == 2
    assert datafiles.cached("unit:test", build)["x"].sum() == 45 and len(calls) == 2  # valid again
    # the same through a loader: large generated sets are cached
    monkeypatch.setattr("course_utils.datasets.CACHE_MIN_IMAGES", 10)
    first = datasets.load_dataset("shapes", "test", count=5, image_size=16)
    files = list((Path(datafiles.cache_dir()) / "data").glob("shapes-*.npzc"))
    assert len(files) == 1
    files[0].write_bytes(files[0].read_bytes()[:100])  # truncated
    again = datasets.load_dataset("shapes", "test", count=5, image_size=16)
    assert torch.equal(first.x, again.x)


@pytest.mark.skipif(not (datafiles.FASHION_DEBIAN_DIR / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_debian_fallback_rebuilds_the_shipped_subset(monkeypatch, tmp_path):
    shipped = datasets.load_dataset("fashion_mnist", "test", image_size=28)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    rebuilt = datasets.load_dataset("fashion_mnist", "test", image_size=28)
    assert torch.equal(shipped.x, rebuilt.x) and torch.equal(shipped.y, rebuilt.y)


def test_photos_load_offline_with_valid_expectations():
    from torchvision.models import ResNet18_Weights

    categories = set(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])
    photos = datafiles.load_photos(image_size=96)
    assert {"chelsea", "coffee"} <= {p.name for p in photos}
    for p in photos:
        assert p.image.mode == "RGB" and p.image.size == (96, 96)
        assert p.expected <= categories, p.name


def test_imageset_subset_and_counts():
    s = datasets.load_dataset("shapes", "test", per_class=3, **SMALL)
    assert len(s.subset(slice(0, 5))) == 5 and len(s.subset(s.y == 0)) == 3
    assert s.counts() == {"circle": 3, "rectangle": 3, "triangle": 3, "ellipse": 3}
    shutil.rmtree(datafiles.cache_dir(), ignore_errors=True)
