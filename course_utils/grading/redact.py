"""What a graded kernel may not see: the objects the hidden checks grade on.

The hidden checks of ex01 and ex02 score a submission on renders of the *test* objects. A kernel
that could load them could also train on them and inflate its grade undetected. Inside the
sandbox, ``data/objects.npz`` is replaced (a read-only bind) by a copy without the test objects;
the check process, outside the sandbox, keeps the full file. The copy's sha256 reaches the
kernel through ``COURSE_DATA_SHA256`` so the data registry accepts it, and loading ``test``
says why it is empty.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from course_utils import datafiles

SHA_ENV = "COURSE_DATA_SHA256"  # JSON {file name: sha256} the registry accepts instead


def redacted_objects(folder: Path) -> tuple[Path, str]:
    """Write objects.npz without its test objects into ``folder``; returns (path, sha256)."""
    arrays = datafiles.objects_arrays()
    keep = ~arrays["split"].astype(bool)
    out = {k: (v[keep] if v.shape[:1] == keep.shape else v) for k, v in arrays.items()}
    out["redacted"] = np.array(["test"])
    data = datafiles.npz_bytes(out)
    path = Path(folder) / "objects-without-test.npz"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def binds_and_env(folder: Path) -> tuple[tuple, dict]:
    """The (source, target) read-only binds and the environment a sandboxed kernel needs."""
    path, sha = redacted_objects(folder)
    target = (datafiles.data_dir() / "objects.npz").resolve()
    return ((str(path), str(target)),), {SHA_ENV: json.dumps({"objects.npz": sha})}
