"""Teach your own classifier: pick classes (or upload images), a head trains on frozen embeddings in
well under a second, and its predictions on held-out images appear.

The logic (``ClassifierTeacher``) is plain Python and unit-tested; ``ClassifierApp`` only wires it
to ipywidgets. ``ClassifierApp.train_clicked()`` is the button's code path, so a headless run
(papermill, nbval) executes exactly what a click does.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from course_utils.datasets import load_dataset
from course_utils.features import cached_embeddings, embed, single_threaded, train_linear_head


@dataclass
class Examples:
    """One class: training images and held-out images (never in training), with their embeddings."""

    train: torch.Tensor
    held_out: torch.Tensor
    train_emb: torch.Tensor | None = None
    held_out_emb: torch.Tensor | None = None


@dataclass
class Taught:
    """A trained head and what it did on the held-out images of its classes."""

    classes: list[str]
    head: nn.Linear
    seconds: float            # fitting the head only: the embeddings were computed (and cached) before
    n_train: int
    held_out_x: torch.Tensor
    held_out_y: np.ndarray
    proba: np.ndarray = field(repr=False)

    @property
    def predicted(self) -> np.ndarray:
        return self.proba.argmax(1)

    @property
    def accuracy(self) -> float:
        return float((self.predicted == self.held_out_y).mean())

    @property
    def chance(self) -> float:
        return 1.0 / len(self.classes)

    def rows(self) -> list[dict]:
        """One row per held-out image: its class, the prediction, the predicted probability."""
        return [{"class": self.classes[t], "predicted": self.classes[p], "probability": round(float(pr[p]), 3),
                 "right": bool(t == p)} for t, p, pr in zip(self.held_out_y, self.predicted, self.proba)]


class ClassifierTeacher:
    """Holds the class pool and trains a linear head on frozen ``backbone`` embeddings (100 full-batch
    Adam steps, ``train_linear_head``: tens of milliseconds on a CPU)."""

    def __init__(self, backbone, pool: dict[str, Examples] | None = None):
        self.backbone = backbone
        self.pool: dict[str, Examples] = {}
        # The first Adam step in a process imports parts of torch (seconds, once): pay that here,
        # when the app is built, so the first click times the training and nothing else.
        train_linear_head(torch.zeros(2, backbone.feature_dim), torch.tensor([0, 1]), 2, epochs=1)
        for name, examples in (pool or {}).items():
            self.add_class(name, examples.train, examples.held_out)

    @classmethod
    def from_course_data(cls, backbone, image_size: int = 64, views: int = 2) -> "ClassifierTeacher":
        """The shipped pool: the 9 object groups (held out: other objects) and the 5 textures (held out:
        other crops), embedded once and cached on disk."""
        teacher = cls(backbone)
        for name, options in (("objects", {"views": views}), ("textures", {})):
            train = load_dataset(name, "train", image_size=image_size, **options)
            held = load_dataset(name, "val", image_size=image_size, **options)
            emb_train, emb_held = cached_embeddings(backbone, train), cached_embeddings(backbone, held)
            for k, label in enumerate(train.classes):
                a, b = train.y == k, held.y == k
                teacher.pool[f"{name}: {label}"] = Examples(train.x[a], held.x[b], emb_train[a], emb_held[b])
        return teacher

    @property
    def class_names(self) -> list[str]:
        return list(self.pool)

    def add_class(self, name: str, train: torch.Tensor, held_out: torch.Tensor) -> None:
        """A new class from images in [0, 1] (N, 3, H, W); at least 2 to train and 1 held out."""
        name = str(name).strip()
        if not name:
            raise ValueError("give the new class a name")
        for what, x in (("training", train), ("held-out", held_out)):
            if x.dim() != 4 or x.shape[1] != 3 or x.min() < 0 or x.max() > 1:
                raise ValueError(f"{what} images of {name!r} must be (N, 3, H, W) in [0, 1], got {tuple(x.shape)} "
                                 f"in [{x.min():.2f}, {x.max():.2f}]")
        if len(train) < 2 or len(held_out) < 1:
            raise ValueError(f"class {name!r} needs at least 2 training and 1 held-out image, got "
                             f"{len(train)} and {len(held_out)}: add more images")
        norm = self.backbone.normalize
        self.pool[name] = Examples(train, held_out, embed(self.backbone.features, train, transform=norm),
                                   embed(self.backbone.features, held_out, transform=norm))

    def train(self, classes, per_class: int | None = None, seed: int = 0) -> Taught:
        """Fit the head on up to ``per_class`` training images of each class; score the held-out ones."""
        classes = list(classes)
        unknown = [c for c in classes if c not in self.pool]
        if unknown:
            raise ValueError(f"unknown class(es) {unknown}; choose from {self.class_names}")
        if len(set(classes)) < 2:
            raise ValueError(f"pick at least two different classes, got {classes}")
        rng = np.random.default_rng(seed)
        xs, ys, hx, hy, he = [], [], [], [], []
        for k, name in enumerate(classes):
            ex = self.pool[name]
            keep = rng.permutation(len(ex.train))[:per_class]
            xs.append(ex.train_emb[keep]), ys.append(np.full(len(keep), k))
            hx.append(ex.held_out), he.append(ex.held_out_emb), hy.append(np.full(len(ex.held_out), k))
        with single_threaded():  # tiny matrices: threads only fight over the cores (see single_threaded)
            start = time.perf_counter()
            head = train_linear_head(torch.cat(xs), torch.from_numpy(np.concatenate(ys)), len(classes), seed=seed)
            seconds = time.perf_counter() - start
        with torch.no_grad():
            proba = head(torch.cat(he)).softmax(1).numpy()
        return Taught(classes, head, seconds, int(sum(map(len, ys))), torch.cat(hx), np.concatenate(hy), proba)


def images_from_uploads(uploads, image_size: int) -> torch.Tensor:
    """ipywidgets FileUpload's value (dicts with 'name' and 'content') -> images (N, 3, S, S) in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for item in uploads:
        try:
            img = Image.open(io.BytesIO(bytes(item["content"]))).convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise ValueError(f"{item.get('name', 'an upload')!r} is not an image PIL can read ({err}); "
                             "upload .jpg or .png files") from None
        side = min(img.size)  # centre square crop, then resize: the course's images are square
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((image_size, image_size))
        images.append(torch.from_numpy(np.asarray(img, np.float32) / 255).permute(2, 0, 1))
    if not images:
        raise ValueError("no files uploaded: choose some images first")
    return torch.stack(images)


class ClassifierApp:
    """The widgets: classes to pick, images per class, an upload box for a class of your own, a button."""

    def __init__(self, teacher: ClassifierTeacher, classes: list[str] | None = None, per_class: int = 10):
        import ipywidgets as w

        self.teacher, self.last, self.message = teacher, None, ""
        self.classes = w.SelectMultiple(options=teacher.class_names, rows=8, description="classes",
                                        value=tuple(classes or teacher.class_names[:3]))
        self.per_class = w.IntSlider(value=per_class, min=2, max=40, description="images/class")
        self.upload = w.FileUpload(accept="image/*", multiple=True, description="your images")
        self.new_name = w.Text(placeholder="name of your class", description="class name")
        self.add_button, self.train_button = w.Button(description="add my class"), w.Button(description="train")
        self.output = w.Output()
        self.add_button.on_click(lambda _: self._in_output(self.add_clicked))
        self.train_button.on_click(lambda _: self._in_output(self.train_clicked))
        self.widget = w.VBox([w.HBox([self.classes, w.VBox([self.per_class, self.train_button])]),
                              w.HBox([self.upload, self.new_name, self.add_button]), self.output])

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    def _in_output(self, action) -> None:
        from IPython.display import display

        self.output.clear_output()
        with self.output:
            try:
                display(action())
            except ValueError as err:  # a learner's mistake: say what to fix, keep the app alive
                self.message = f"Not done: {err}"
                print(self.message)

    def add_clicked(self) -> str:
        """The 'add my class' button: three quarters of the uploads train, the rest are held out."""
        x = images_from_uploads(self.upload.value, self.teacher.backbone.input_size)
        n_train = max(2, int(round(0.75 * len(x))))
        self.teacher.add_class(self.new_name.value, x[:n_train], x[n_train:])
        self.classes.options = self.teacher.class_names
        return f"added {self.new_name.value!r}: {n_train} training, {len(x) - n_train} held-out images"

    def train_clicked(self) -> Taught:
        """The 'train' button: the head on the chosen classes; returns what it did on held-out images."""
        self.last = self.teacher.train(self.classes.value, per_class=self.per_class.value)
        return self.last


__all__ = ["ClassifierTeacher", "ClassifierApp", "Taught", "Examples", "images_from_uploads"]
