"""Rebuild the shipped data files in data/ from the Debian packages, deterministically.

    sudo apt-get install dataset-fashion-mnist tuxpaint-stamps-default
    python data/build_data.py            # writes data/fashion_mnist_subset.npz and data/objects.npz
    python data/build_data.py --check    # rebuilds in memory and compares with the registry sha256s

Same inputs + same numpy/Pillow give byte-identical files: fixed seeds, sorted file lists, and zip
entries with a fixed timestamp (numpy's own savez stamps the current time).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from course_utils.datafiles import FASHION_DEBIAN_DIR as FASHION_DIR  # noqa: E402
from course_utils.datafiles import FILES, fashion_subset_from_idx, npz_bytes  # noqa: E402

STAMPS = Path("/usr/share/tuxpaint/stamps")
OBJECT_SIZE = 96
TEST_FRACTION = 0.28
SPLIT_SEED = 2024

# Real-photo cut-outs only (checked by eye); globs are relative to STAMPS and not recursive,
# so the cartoon/ and toys/ sub-folders are never picked up.
OBJECT_GROUPS = {
    "birds": ["animals/birds/*.png"],
    "hoofed_mammals": ["animals/mammals/bovines/*.png", "animals/mammals/camel/*.png",
                       "animals/mammals/deer/*.png", "animals/mammals/equines/*.png",
                       "animals/mammals/giraffe.png", "animals/mammals/hippopotamus.png",
                       "animals/mammals/pig*.png", "animals/mammals/rhino_black.png",
                       "animals/mammals/wildboar.png"],
    "other_mammals": ["animals/mammals/apes/*.png", "animals/mammals/bears/*.png",
                      "animals/mammals/cats/*.png", "animals/mammals/dogs/*.png",
                      "animals/mammals/rodents/*.png", "animals/marsupials/*.png",
                      "animals/mammals/badger.png", "animals/mammals/elephant.png",
                      "animals/mammals/ferret.png", "animals/mammals/rabbit_little.png",
                      "animals/mammals/aquatic/otter.png"],
    "sea_life": ["animals/fish/*.png", "animals/shellfish/*.png", "animals/mammals/aquatic/dolphin.png",
                 "animals/mammals/aquatic/orca.png", "animals/mammals/aquatic/sea_lion.png"],
    "fruit": ["food/fruit/*.png"],
    "vegetables": ["food/vegetables/*.png"],
    "flowers": ["plants/flowers/*.png"],
    "vehicles": ["vehicles/*.png", "vehicles/*/*.png", "vehicles/*/*/*.png", "military/vehicles/*.png"],
    "tools": ["household/tools/*.png", "household/arttools/scissors_*.png",
              "household/dishes/utensils/nutcracker.png"],
}
# Mirrored duplicates, wheels (not vehicles), a decal overlay and clip-art-like drawings.
OBJECT_EXCLUDE = ["*_mirror.png", "*/cartoon/*", "vehicles/7spoke256.png", "vehicles/wheel_tractor.png",
                  "vehicles/emergency/sedan_police.png"]


def build_fashion() -> dict[str, np.ndarray]:
    """600 train / 200 test images per class, drawn with fixed seeds from the full Debian files."""
    return fashion_subset_from_idx(FASHION_DIR)


def object_files() -> dict[str, list[str]]:
    groups = {}
    for group, patterns in OBJECT_GROUPS.items():
        found = {str(p.relative_to(STAMPS)) for pat in patterns for p in STAMPS.glob(pat)}
        groups[group] = sorted(f for f in found if not any(fnmatch(f, ex) for ex in OBJECT_EXCLUDE))
    return groups


def cutout(path: Path, size: int = OBJECT_SIZE) -> np.ndarray:
    """RGBA cut-out cropped to its opaque pixels and resized to fit size x size (aspect kept, centred)."""
    im = Image.open(path).convert("RGBA")
    im = im.crop(im.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox())
    scale = size / max(im.size)
    new = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    im = im.convert("RGBa").resize(new, Image.Resampling.LANCZOS).convert("RGBA")  # premultiplied: no dark fringes
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas.paste(im, ((size - new[0]) // 2, (size - new[1]) // 2))
    arr = np.asarray(canvas).copy()
    arr[arr[..., 3] == 0, :3] = 0  # clean transparent pixels: smaller file, no hidden colours
    return arr


def build_objects() -> dict[str, np.ndarray]:
    groups = object_files()
    images, group_ids, files, split = [], [], [], []
    rng = np.random.default_rng(SPLIT_SEED)
    for gi, (group, names) in enumerate(groups.items()):
        n_test = int(round(TEST_FRACTION * len(names)))
        test = set(rng.permutation(len(names))[:n_test].tolist())
        for i, name in enumerate(names):
            images.append(cutout(STAMPS / name))
            group_ids.append(gi)
            files.append(name)
            split.append(1 if i in test else 0)
    return {"images": np.stack(images), "group": np.array(group_ids, dtype=np.int64),
            "groups": np.array(list(groups)), "object_id": np.arange(len(files), dtype=np.int64),
            "file": np.array(files), "split": np.array(split, dtype=np.int64)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the registry instead of writing")
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: data/)")
    args = parser.parse_args(argv)
    ok = True
    for filename, build in (("fashion_mnist_subset.npz", build_fashion), ("objects.npz", build_objects)):
        data = npz_bytes(build())
        digest, expected = hashlib.sha256(data).hexdigest(), FILES[filename]["sha256"]
        print(f"{filename}: {len(data) / 1e6:.2f} MB sha256 {digest}"
              f" ({'matches registry' if digest == expected else 'DIFFERS from registry ' + expected})")
        ok &= digest == expected
        if not args.check:
            tmp = args.out / (filename + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(args.out / filename)
    if not args.check:
        for group, names in object_files().items():
            print(f"  {group}: {len(names)} objects")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    raise SystemExit(main())
