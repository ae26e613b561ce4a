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
from course_utils.tooling.notebooks import lessons, solutions

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = (lessons(ROOT) + solutions(ROOT)
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


def _course_imports_of(path: Path, package: Path) -> set[str]:
    """The course_utils modules one file imports (at the top or inside a function)."""
    me = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
    here = me.split(".") if path.name == "__init__.py" else me.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(here[:len(here) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.startswith("course_utils")}


def import_cycles(package: Path) -> list[list[str]]:
    """Cycles in the graph of which course_utils module imports which (the package root excluded:
    its lazy exports import everything on purpose)."""
    modules = {".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in package.rglob("*.py")}
    graph = {m: {d for d in _course_imports_of(p, package) if d in modules and d not in (m, "course_utils")}
             for m, p in modules.items() if m != "course_utils"}
    cycles, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_the_package_has_no_import_cycle():
    assert import_cycles(ROOT / "course_utils") == []


def test_the_cycle_check_finds_a_cycle(tmp_path):
    package = tmp_path / "course_utils"
    (package / "tooling").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tooling" / "__init__.py").write_text("")
    (package / "tooling" / "runner.py").write_text("from course_utils.tooling import site\n")
    (package / "tooling" / "site.py").write_text("def f():\n    from course_utils.tooling.runner import main\n")
    assert import_cycles(package) == [["course_utils.tooling.runner", "course_utils.tooling.site",
                                       "course_utils.tooling.runner"]]
