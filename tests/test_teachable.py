"""The teachable-classifier app's logic, run through the same code path as its buttons (no browser)."""
import datetime
import io

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils import ClassifierApp, ClassifierTeacher, images_from_uploads


@pytest.fixture(scope="module")
def teacher(lite0, tmp_path_factory):
    import os

    old = os.environ.get("COURSE_CACHE_DIR")
    os.environ["COURSE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        return ClassifierTeacher.from_course_data(lite0)
    finally:
        os.environ.pop("COURSE_CACHE_DIR") if old is None else os.environ.__setitem__("COURSE_CACHE_DIR", old)


def _png(colour, size=40, noise_seed=0) -> dict:
    rng = np.random.default_rng(noise_seed)
    pixels = np.clip(np.array(colour, float) + rng.normal(0, 20, (size, size + 10, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    data = buf.getvalue()
    return {"name": f"{colour}-{noise_seed}.png", "type": "image/png", "size": len(data),
            "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc), "content": memoryview(data)}


def test_the_train_button_path_trains_the_head_alone_and_beats_chance(teacher):
    app = ClassifierApp(teacher, classes=["objects: birds", "objects: fruit", "objects: vehicles"], per_class=10)
    app.train_clicked()   # the first click may embed the pool once; a click after it must not run the backbone
    calls = []
    hook = teacher.backbone.features.register_forward_hook(lambda *args: calls.append(1))
    try:
        taught = app.train_clicked()
    finally:
        hook.remove()
    n = len(taught.held_out_y)
    # held-out: other objects than the training ones; 3 classes, chance 1/3 (COURSE_FAST, as in the test
    # command, shrinks the sets: a dozen held-out images, fewer training images per class)
    assert n >= 9 and 3 * 4 <= taught.n_train <= 30
    assert taught.accuracy > taught.chance + 2 * np.sqrt(taught.chance * (1 - taught.chance) / n)
    assert not calls  # the head alone, on cached vectors: what makes a click take milliseconds (a test of
    # behaviour, not of wall-clock time, which depends on the machine and on what else runs)
    print(f"app path: {taught.n_train} training vectors, head trained in {taught.seconds * 1000:.0f} ms, "
          f"held-out accuracy {taught.accuracy:.3f} on {n} images (chance {taught.chance:.3f})")
    rows = taught.rows()
    assert len(rows) == n and {r["class"] for r in rows} == set(taught.classes)
    assert sum(r["right"] for r in rows) == round(taught.accuracy * n)


def test_a_click_writes_into_the_output_and_a_mistake_keeps_the_app_alive(teacher):
    app = ClassifierApp(teacher, classes=["textures: brick", "textures: grass"], per_class=5)
    app.train_button.click()
    assert app.last is not None and app.last.classes == ["textures: brick", "textures: grass"]
    app.classes.value = ("textures: brick",)
    app.train_button.click()  # one class: a clear message, no exception escapes the callback
    assert "at least two" in app.message


def test_a_class_of_your_own_from_uploads(teacher, lite0):
    app = ClassifierApp(teacher, classes=["textures: brick"], per_class=6)
    for name, colour in (("red things", (220, 30, 30)), ("blue things", (30, 30, 220))):
        app.upload.value = tuple(_png(colour, noise_seed=i) for i in range(8))
        app.new_name.value = name
        assert "6 training, 2 held-out" in app.add_clicked()
    assert {"red things", "blue things"} <= set(app.classes.options)
    app.classes.value = ("red things", "blue things")
    taught = app.train_clicked()
    assert taught.accuracy == 1.0 and len(taught.held_out_y) == 4
    x = images_from_uploads([_png((0, 200, 0))], lite0.input_size)
    assert x.shape == (1, 3, 64, 64) and 0 <= x.min() and x.max() <= 1


def test_bad_inputs_say_what_to_fix(teacher):
    with pytest.raises(ValueError, match="not an image"):
        images_from_uploads([{"name": "notes.txt", "content": b"hello"}], 64)
    with pytest.raises(ValueError, match="no files uploaded"):
        images_from_uploads([], 64)
    with pytest.raises(ValueError, match="unknown class"):
        teacher.train(["objects: birds", "objects: dragons"])
    with pytest.raises(ValueError, match="at least 2 training"):
        teacher.add_class("one", torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        teacher.add_class("raw", torch.rand(4, 3, 64, 64) * 255, torch.rand(1, 3, 64, 64))
