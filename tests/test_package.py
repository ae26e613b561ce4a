"""The package's shape: one import line for the common verbs, a light top level, notebooks that
import only public names from it."""
import ast
import importlib
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import course_utils

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = (sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
             + sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb"))
             + sorted((ROOT / "exercises" / "source").glob("*.ipynb")))


def test_every_exported_name_resolves_to_its_module():
    for name in course_utils.__all__:
        value = getattr(course_utils, name)
        module = importlib.import_module(f"course_utils.{course_utils._HOME[name]}")
        assert getattr(module, name) is value, name


def test_an_unknown_name_says_where_to_look():
    with pytest.raises(AttributeError, match="course_utils.__all__"):
        course_utils.no_such_verb  # noqa: B018


def test_importing_the_package_does_not_import_torch():
    # The grader's CLI imports course_utils on machines where torch is slow to import.
    code = "import sys, course_utils, course_utils.grading.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _course_imports(path: Path):
    """(module, names) of every ``from course_utils... import`` in a notebook's code cells."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("course_utils"):
                yield node.module, [alias.name for alias in node.names]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_imports_public_verbs_from_the_package(path):
    for module, names in _course_imports(path):
        assert module == "course_utils", f"{path.name} imports from {module}; use `from course_utils import ...`"
        private = [n for n in names if n.startswith("_") or n not in course_utils.__all__]
        assert not private, f"{path.name} imports names that are not public verbs: {private}"
