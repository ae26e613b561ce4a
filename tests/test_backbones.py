import pytest
import torch
from PIL import Image
from skimage import data as skdata

from course_utils.backbones import list_backbones, load_backbone


@pytest.fixture(scope="module")
def lite0_224():
    return load_backbone("efficientnet_lite0")


def test_offline_weights_classify_real_photos(lite0_224):
    preds = lite0_224.predict([Image.fromarray(skdata.chelsea()), Image.fromarray(skdata.coffee())], k=3)
    cat_classes = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}
    assert preds[0][0][0] in cat_classes, preds[0]
    assert preds[1][0][0] == "espresso", preds[1]
    assert preds[1][0][1] > 0.5


def test_contract_shapes(lite0_224):
    bb = lite0_224
    assert len(bb.categories) == 1000 and bb.input_size == 224
    x = bb.preprocess(Image.fromarray(skdata.astronaut())).unsqueeze(0)
    assert x.shape == (1, 3, 224, 224)
    # EfficientNet-Lite wants [-1, 1]; the transform must produce it
    assert -1.0 <= x.min() < -0.5 and 0.5 < x.max() <= 1.0
    with torch.no_grad():
        f = bb.features.eval()(x)
        assert f.shape == (1, bb.feature_dim) == (1, 1280)
        assert bb.head(f).shape == (1, 1000)


def test_image_size_option_changes_crop():
    bb = load_backbone(image_size=96)
    assert bb.preprocess(Image.fromarray(skdata.coffee())).shape == (3, 96, 96)
    assert bb.features.eval()(torch.zeros(2, 3, 96, 96)).shape == (2, 1280)


def test_pretrained_false_differs_from_pretrained(lite0):
    rnd = load_backbone(pretrained=False, image_size=64)
    a = dict(lite0.features.named_parameters())["stem.0.weight"]
    b = dict(rnd.features.named_parameters())["stem.0.weight"]
    assert not torch.allclose(a, b)


def test_small_cnn_baseline():
    bb = load_backbone("small_cnn", image_size=64)
    assert not bb.pretrained
    assert bb.features(torch.randn(4, 3, 64, 64)).shape == (4, bb.feature_dim)


def test_stage_outputs_cover_every_group(lite0):
    outs = lite0.features.eval().stage_outputs(torch.zeros(1, 3, 64, 64))
    assert len(outs) == len(lite0.features.groups()) == 9
    assert outs[-1].shape == (1, 1280)


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 64, 64, 3), "permute"),
    (torch.zeros(2, 1, 64, 64), "grayscale"),
    (torch.zeros(3, 64, 64), "unsqueeze"),
    (torch.zeros(2, 3, 64, 64, dtype=torch.uint8), "255"),
])
def test_bad_input_has_clear_error(lite0, bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        lite0.features(bad)
    with pytest.raises((ValueError, TypeError), match=message):  # at the first step, not later
        lite0.normalize(bad)


def test_unknown_name_names_offline_choice():
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        load_backbone("resnet9000")
    assert "efficientnet_lite0" in list_backbones()


def test_bad_image_size():
    with pytest.raises(ValueError, match="image_size"):
        load_backbone(image_size=5)


def test_preprocess_rejects_arrays(lite0):
    with pytest.raises(TypeError, match="PIL"):
        lite0.preprocess(skdata.coffee())


def test_online_backbone_offline_error_is_clear(monkeypatch):
    import torchvision.models as tvm

    def no_network(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(tvm, "resnet18", no_network)
    with pytest.raises(RuntimeError, match="efficientnet_lite0"):
        load_backbone("resnet18")
