import pytest
import torch

from course_utils.checks import check_input_stats, input_report


def _photo_like(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 0.8 + 0.1  # pixels in [0, 1]


def test_correct_input_passes():
    x = _photo_like() * 2 - 1
    assert check_input_stats(x).ok


@pytest.mark.parametrize("transform, message", [
    (lambda x: x * 255, "0-255"),
    (lambda x: x, "never normalised"),
    (lambda x: ((x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)), "different mean/std"),
    (lambda x: (x * 2 - 1)[:, :1], "channel"),
])
def test_bad_inputs_flagged(transform, message):
    with pytest.raises(ValueError, match=message):
        check_input_stats(transform(_photo_like()))


def test_report_without_raising():
    rep = input_report(_photo_like() * 255)
    assert not rep.ok and rep.max > 100


def test_not_a_batch():
    with pytest.raises(ValueError, match="B, C, H, W"):
        input_report(torch.zeros(3, 8, 8))
