"""Layers import downward only: every import of every module under src/semifer, read with `ast` (absolute and
relative, at module level or inside functions), is checked against which packages each package must not use,
and no module imports, even from inside a function, a module that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import semifer

ROOT = Path(semifer.__file__).parent
TOP = ("api", "cli", "demo")
TRAINING = (*TOP, "engine", "pretrain")
# package -> the packages (or top-level modules) of semifer that no module in it may import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "weights": (*TRAINING, "inference", "methods", "models", "data", "runtime", "report"),
    "runtime": (*TRAINING, "inference", "methods", "models", "data", "report"),
    "report": (*TRAINING, "inference", "methods", "models", "data"),
    "data": (*TRAINING, "inference", "methods", "models"),
    "models": (*TRAINING, "inference", "methods"),
    "methods": (*TRAINING, "inference"),
    "inference": TRAINING,
    "labeling": (*TRAINING, "methods", "models", "inference"),
    "engine": TOP,
    "pretrain": (*TOP, "engine"),
}


def module_name(path: Path, root: Path = ROOT) -> str:
    """`semifer.models.factory` for src/semifer/models/factory.py, `semifer.models` for its __init__.py."""
    parts = ("semifer", *path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, in order; `from .. import x` names `x` in the
    parent package."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            if node.module:
                source = ".".join([*base, node.module]) if node.level else node.module
                found += [(node.lineno, submodule(source, alias.name, root)) for alias in node.names]
            else:
                found += [(node.lineno, ".".join([*base, alias.name])) for alias in node.names]
    return sorted(found)


def submodule(source: str, name: str, root: Path) -> str:
    """`source.name` when that is a module of its own (`from ..engine import trainer`), else `source`."""
    parts = f"{source}.{name}".split(".")[1:]
    path = root.joinpath(*parts)
    return f"{source}.{name}" if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file() else source


def semifer_part(module: str) -> str | None:
    """The top-level package or module of semifer that `module` lies in (`engine` for semifer.engine.run)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "semifer" else None


def violations(package: str, root: Path = ROOT) -> list[str]:
    """'FILE:LINE imports MODULE' for each import in `package` of a package that FORBIDDEN rules out."""
    forbidden = set(FORBIDDEN[package])
    return [
        f"{path.relative_to(root.parent)}:{line} imports {module}"
        for path in sorted((root / package).rglob("*.py"))
        for line, module in imported_modules(path, root)
        if semifer_part(module) in forbidden
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_downward_only(package):
    found = violations(package)
    assert not found, f"{package}/ must not import {', '.join(FORBIDDEN[package])}:\n" + "\n".join(found)


def test_the_check_finds_every_kind_of_import(tmp_path):
    root = tmp_path / "semifer"
    (root / "models").mkdir(parents=True)
    source = root / "models" / "factory.py"
    source.write_text(
        "import semifer.data.views\n"
        "from ..engine import trainer\n"
        "from . import backbones\n"
        "from .. import engine, errors\n"
        "def late():\n"
        "    import semifer.engine.run\n"
        "    from ..engine.run import train\n"
    )
    assert imported_modules(source, root) == [
        (1, "semifer.data.views"),
        (2, "semifer.engine"),
        (3, "semifer.models.backbones"),
        (4, "semifer.engine"),
        (4, "semifer.errors"),
        (6, "semifer.engine.run"),
        (7, "semifer.engine.run"),
    ]
    assert violations("models", root) == [
        "semifer/models/factory.py:2 imports semifer.engine",
        "semifer/models/factory.py:4 imports semifer.engine",
        "semifer/models/factory.py:6 imports semifer.engine.run",
        "semifer/models/factory.py:7 imports semifer.engine.run",
    ]


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """semifer module -> the semifer modules it imports (anywhere in its file)."""
    return {
        name: {m for _, m in imported_modules(path) if m in MODULES and m != name} for name, path in MODULES.items()
    }


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
    graph = import_graph()
    assert "semifer.methods.base" in graph["semifer.methods.confidence_ssl"]  # from .base import ...
    assert "semifer.api" in graph["semifer"]  # from . import api, inside a function
    assert "semifer.errors" in graph["semifer.config"]  # from .errors import ...
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_import_of_semifer_names_a_module_that_exists():
    """Imports inside functions run only when called: a module moved or renamed is caught here, not in use."""
    missing = [
        f"{path.relative_to(ROOT.parent)}:{line} imports {module}"
        for name, path in MODULES.items()
        for line, module in imported_modules(path)
        if module.startswith("semifer") and module not in MODULES
    ]
    assert not missing, "\n".join(missing)
