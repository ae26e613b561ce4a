import numpy as np
import pytest
import torch

from course_utils.backbones import load_backbone
from course_utils.datasets import ImageSet
from course_utils.features import single_threaded
from course_utils.probing import Curve, group_maps, group_names, group_widths, learning_curve, stage_embeddings


def _set(n_per_class=6, classes=2, size=32, seed=0):
    """Two easy classes: dark vs bright images with a little noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = (0.2 + 0.6 * y.float().view(-1, 1, 1, 1) / max(1, classes - 1)
         + 0.05 * torch.randn(len(y), 3, size, size, generator=g)).clamp(0, 1)
    return ImageSet(x, y, [f"c{i}" for i in range(classes)], "toy")


@pytest.mark.parametrize("name", ["efficientnet_lite0", "small_cnn"])
def test_group_widths_match_a_forward_pass(name):
    features = load_backbone(name, image_size=32).features.eval()
    with torch.no_grad():
        outs = features.stage_outputs(torch.zeros(1, 3, 32, 32))
    assert group_widths(features) == [o.shape[1] for o in outs]
    assert len(group_names(features)) == len(outs)
    assert group_names(features)[0] == "stem" and group_names(features)[-1] == "top"


def test_stage_embeddings_split_and_cache(lite0):
    data = _set()
    first = stage_embeddings(lite0, data)
    assert [f.shape for f in first] == [(12, w) for w in group_widths(lite0.features)]
    with torch.no_grad():
        direct = lite0.features.eval().stage_outputs(lite0.normalize(data.x))
    for a, b in zip(first, direct):
        assert torch.allclose(a, b, atol=1e-4)
    again = stage_embeddings(lite0, data)  # a cache hit gives the very same numbers
    assert all(torch.equal(a, b) for a, b in zip(first, again))


def test_group_maps_shapes_shrink(lite0):
    maps = group_maps(lite0.features, torch.zeros(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == group_widths(lite0.features)
    assert maps[0].shape[-1] > maps[-1].shape[-1]


def test_learning_curve_pairs_methods_on_the_same_sets():
    seen = []

    def make_train(per_class, seed):
        seen.append((per_class, seed))
        return per_class

    methods = {"a": lambda tr, te, s: tr / 10, "b": lambda tr, te, s: 0.3 + s / 100}
    c = learning_curve(make_train, None, methods, sizes=[1, 2, 5], seeds=[0, 1])
    assert seen == [(1, 0), (1, 1), (2, 0), (2, 1), (5, 0), (5, 1)]  # one set per (size, seed), shared
    assert c.runs["a"].shape == (2, 3)
    np.testing.assert_allclose(c.mean("a"), [0.1, 0.2, 0.5])
    assert c.crossing("a", "b") == 5
    assert c.crossing("b", "a") is None  # b is ahead at first but not from some size on


def test_curve_std_is_the_sample_std_and_nan_for_one_seed():
    c = Curve([1, 2], [0, 1, 2], {"a": np.array([[0.1, 0.5], [0.2, 0.5], [0.3, 0.8]])})
    np.testing.assert_allclose(c.std("a"), [0.1, np.std([0.5, 0.5, 0.8], ddof=1)])
    assert np.isnan(Curve([1], [0], {"a": np.array([[0.4]])}).std("a")).all()


def test_crossing_requires_staying_ahead():
    c = Curve([1, 2, 3, 4], [0], {"a": np.array([[0.5, 0.1, 0.6, 0.7]]), "b": np.array([[0.4, 0.4, 0.4, 0.4]])})
    assert c.crossing("a", "b") == 3


def test_single_threaded_restores_limits():
    from threadpoolctl import threadpool_info
    before = [i["num_threads"] for i in threadpool_info()]
    with single_threaded():
        assert all(i["num_threads"] == 1 for i in threadpool_info())
    assert [i["num_threads"] for i in threadpool_info()] == before
