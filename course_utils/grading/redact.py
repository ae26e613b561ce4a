"""What a graded kernel may not see: the objects the hidden checks grade on.

The hidden checks of ex01, ex02 and ex06 score a submission on renders of the *test* objects. A
kernel that could load them could also train on them and inflate its grade undetected. Inside the
sandbox, ``data/objects.npz`` is replaced (a read-only bind) by a copy without the test objects;
the check process, outside the sandbox, keeps the full file.

The student library knows nothing of this: the grader wraps it. An IPython startup file in the
submission's private HOME (run by the kernel before the first cell) installs an import hook that,
once ``course_utils.datafiles`` is imported, registers the copy's sha256 in its registry, and once
``course_utils.datasets`` is, makes loading the ``test`` split say why it is empty. Nothing is
imported before the notebook asks for it, so a kernel that never uses the course pays nothing.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from course_utils import datafiles

STARTUP = ".ipython/profile_default/startup/00-course-grade-redaction.py"  # relative to HOME
MESSAGE = ("the test objects are not available here: a graded notebook runs without them "
           "(the grader scores on them). Use 'train' and 'val'.")

_HOOK = '''"""Written by course-grade: in this sandbox data/objects.npz is a copy without the test
objects (the grader scores on them); this teaches the course's data registry about the copy."""
import sys as _sys


class _CourseGradeRedaction:
    SHA256 = {sha!r}
    MESSAGE = {message!r}

    def find_spec(self, name, path=None, target=None):
        patch = {{"course_utils.datafiles": self.datafiles, "course_utils.datasets": self.datasets}}.get(name)
        if patch is None:
            return None
        for finder in _sys.meta_path:
            spec = None if finder is self else getattr(finder, "find_spec", lambda *a: None)(name, path, target)
            if spec is not None and spec.loader is not None:
                run = spec.loader.exec_module
                def exec_module(module, run=run, patch=patch):
                    run(module)
                    patch(module)
                spec.loader.exec_module = exec_module
                return spec
        return None

    def datafiles(self, module):
        module.FILES["objects.npz"] = dict(module.FILES["objects.npz"], sha256=self.SHA256)

    def datasets(self, module):
        split_of, message = module.object_split, self.MESSAGE

        def object_split(arrays, split, *args, **kwargs):
            if split == "test":
                raise module.datafiles.DataError(message)
            return split_of(arrays, split, *args, **kwargs)
        module.object_split = object_split


_sys.meta_path.insert(0, _CourseGradeRedaction())
del _CourseGradeRedaction
'''


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


def startup_code(sha256: str) -> str:
    """The IPython startup file that wraps the data registry for the redacted copy."""
    return _HOOK.format(sha=sha256, message=MESSAGE)


def binds_and_home(folder: Path) -> tuple[tuple, tuple]:
    """The (source, target) read-only binds of a sandboxed kernel, and the (path under HOME,
    text) files its HOME starts with."""
    path, sha = redacted_objects(folder)
    target = (datafiles.data_dir() / "objects.npz").resolve()
    return ((str(path), str(target)),), ((STARTUP, startup_code(sha)),)
