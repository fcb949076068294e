"""The package's modules import one another without a circle.

Every ``import adamae_rl...`` and ``from adamae_rl... import ...`` in the package counts, the ones
inside functions too (a deferred import hides a circle from the interpreter, not from a reader),
except those under ``if TYPE_CHECKING:``. A circle means two modules that cannot be understood,
tested or moved one without the other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import adamae_rl

PACKAGE_DIR = Path(adamae_rl.__file__).parent


def package_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package by its ``__init__``)."""
    modules = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _walk_runtime(tree: ast.AST):
    """Every node of ``tree`` except what sits under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(child for child in ast.iter_child_nodes(node) if not _is_type_checking_block(child))


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from pkg import name`` counts as ``pkg.name``
    where that is a module, else as ``pkg``)."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str | None] = set()
        for node in _walk_runtime(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names if alias.name.startswith("adamae_rl"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}" if base else package
                if base.split(".")[0] == "adamae_rl":
                    targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else known(base) for a in node.names)
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as ``[a, b, ..., a]``, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (circle := visit(target)):
                return circle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (circle := visit(start)):
            return circle
    return None


def test_find_circle_finds_a_circle_and_clears_a_tree():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_graph_sees_deferred_and_relative_imports(tmp_path):
    pkg = tmp_path / "adamae_rl"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .leaf import x\n")
    (pkg / "sub" / "leaf.py").write_text("def f():\n    from adamae_rl.top import y\n")
    (pkg / "top.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from adamae_rl.sub import leaf\n")
    modules = {
        "adamae_rl": pkg / "__init__.py", "adamae_rl.sub": pkg / "sub" / "__init__.py",
        "adamae_rl.sub.leaf": pkg / "sub" / "leaf.py", "adamae_rl.top": pkg / "top.py",
    }
    graph = import_graph(modules)
    assert graph["adamae_rl.sub"] == {"adamae_rl.sub.leaf"}
    assert graph["adamae_rl.sub.leaf"] == {"adamae_rl.top"}
    assert graph["adamae_rl.top"] == set()  # a TYPE_CHECKING import is no circle


def test_package_has_no_import_circle():
    circle = find_circle(import_graph(package_modules()))
    assert circle is None, "import circle: " + " -> ".join(circle)
