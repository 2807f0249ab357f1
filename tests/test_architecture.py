"""Facts about the package's structure that any reader can check: imports flow one way.

Every ``import`` in ``src/ictal`` is read from the source (module level, ``TYPE_CHECKING`` blocks and imports
inside functions alike), so a lazy import cannot hide a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "ictal"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def ictal_imports(path: Path) -> set[str]:
    """The ``ictal`` modules ``path`` imports (a ``from ictal.x import y`` counts ``ictal.x.y`` when it is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("ictal")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ictal"):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name in MODULES}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: ictal_imports(path) - {name} for name, path in MODULES.items()}


def test_no_import_cycle() -> None:
    # Tarjan-free check: a depth-first search that meets a module already on its path found a cycle.
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    # A package's __init__ importing nothing, and modules only importing their package's parents, is no cycle.
    real = [c for c in cycles if not all(m.startswith(c[0]) or c[0].startswith(m) for m in c)]
    assert real == [], "import cycles: " + "; ".join(" -> ".join(c) for c in real)


@pytest.mark.parametrize("package", ["ictal.infer", "ictal.report", "ictal.scoring", "ictal.post", "ictal.models"])
def test_inference_and_scoring_never_import_training(package: str) -> None:
    offenders = {
        f"{name} imports {dep}"
        for name, deps in GRAPH.items()
        if name.startswith(package)
        for dep in deps
        if dep.startswith("ictal.train")
    }
    assert not offenders, sorted(offenders)


def test_scoring_does_not_post_process_except_through_post() -> None:
    # scoring/ scores; the one detection it runs for a threshold sweep is ictal.post's own.
    for name, deps in GRAPH.items():
        if name.startswith("ictal.scoring"):
            assert not {d for d in deps if d.startswith(("ictal.infer", "ictal.models", "ictal.train"))}, name


def test_every_package_says_what_it_holds() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc, f"{init.relative_to(SRC)} has no docstring"
