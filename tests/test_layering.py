"""The package's layers import downward only: no module imports, even from inside a function, a module that
imports it back, and methods meet the engine only through the interfaces in `methods/base.py`."""

from __future__ import annotations

import ast
from pathlib import Path

import semifer

ROOT = Path(semifer.__file__).parent
PACKAGE = "semifer"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imported(name: str, path: Path) -> set[str]:
    """The semifer modules `name` imports anywhere in its file: `import a.b`, `from a import b` (b a module,
    else a), and relative forms (`from . import x`, `from ..a import b`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                child = f"{source}.{alias.name}"
                found.add(child if child in MODULES else source)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, white/grey/black)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_every_kind_of_import():
    assert "semifer.methods.base" in GRAPH["semifer.methods.confidence_ssl"]  # from .base import ...
    assert "semifer.api" in GRAPH["semifer"]  # from . import api, inside a function
    assert "semifer.errors" in GRAPH["semifer.config"]  # from .errors import ...
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_methods_do_not_import_the_engine():
    crossing = sorted(
        f"{name} -> {target}"
        for name, targets in GRAPH.items()
        if name.startswith(f"{PACKAGE}.methods")
        for target in targets
        if target.startswith(f"{PACKAGE}.engine")
    )
    assert not crossing, "methods import the engine: " + ", ".join(crossing)
