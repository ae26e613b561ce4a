"""Real photos for prediction demos and tests, all loaded offline from files inside installed
packages (scikit-image, scikit-learn). A photo that does not load is left out, never downloaded."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

# name -> (source, acceptable ImageNet class names as in torchvision's ``meta["categories"]``).
# Empty = no ImageNet class fits (tests skip those); the sets list every class a correct model may pick.
PHOTOS = {
    "chelsea": ("skimage:chelsea", {"tabby", "tiger cat", "Egyptian cat"}),
    "coffee": ("skimage:coffee", {"espresso", "cup", "coffee mug"}),
    "astronaut": ("skimage:astronaut", set()),
    "rocket": ("skimage:rocket", {"missile", "projectile", "space shuttle"}),
    "motorcycle": ("skimage:stereo_motorcycle", {"moped", "motor scooter", "crash helmet", "disk brake"}),
    "china": ("sklearn:china.jpg", {"palace", "monastery", "bell cote", "stupa", "dome"}),
    "flower": ("sklearn:flower.jpg", {"daisy"}),
}


@dataclass
class Photo:
    name: str
    image: Image.Image  # RGB
    expected: set[str] = field(default_factory=set)  # acceptable ImageNet classes; empty = none fits


def _read(source: str) -> Image.Image:
    package, item = source.split(":")
    if package == "skimage":
        import skimage.data

        array = getattr(skimage.data, item)()
        array = array[0] if isinstance(array, tuple) else array  # stereo_motorcycle -> (left, right, disp)
        return Image.fromarray(array).convert("RGB")
    import importlib.util

    spec = importlib.util.find_spec(package)  # sklearn's sample images, without importing sklearn
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "images"
    with Image.open(folder / item) as im:
        return im.convert("RGB")


def _square(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size``, then a centre crop: what ImageNet evaluation does."""
    scale = size / min(image.size)
    w, h = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((w, h), Image.Resampling.BICUBIC)
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def load_photos(image_size: int | None = None) -> list[Photo]:
    """The photos that load offline here; with ``image_size``, each resized and centre-cropped square."""
    photos = []
    for name, (source, expected) in PHOTOS.items():
        try:
            image = _read(source)
        except Exception:  # file missing in this install (e.g. an older wheel): leave the photo out
            continue
        photos.append(Photo(name, _square(image, image_size) if image_size else image, set(expected)))
    return photos
