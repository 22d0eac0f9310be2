"""No import cycles among hs_sync's modules, counting imports inside functions and
under TYPE_CHECKING too: a cycle hidden behind a function-level import is still one
layer reaching back into another."""

from __future__ import annotations

import ast
from pathlib import Path

import hs_sync

PACKAGE = Path(hs_sync.__file__).parent

# Cycles still to be taken apart; none may be added.
KNOWN: set[tuple[str, ...]] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the hs_sync modules it imports anywhere in its text.

    An import of a package the module lives in is left out: Python has loaded that
    package before the module runs, so it cannot take part in a load-order cycle.
    """

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names if a.name.startswith("hs_sync")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                if base.startswith("hs_sync"):
                    for a in node.names:
                        full = f"{base}.{a.name}"
                        targets.add(full if full in modules else known(base))
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = {t for t in targets if t and t != name and t not in ancestors}
    return graph


def _cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[tuple[str, ...]] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                found.add(tuple(sorted(component)))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    cycles = _cycles(_graph(_modules()))
    new = cycles - KNOWN
    assert not new, "import cycles: " + "; ".join(" <-> ".join(c) for c in sorted(new))


def test_the_graph_sees_imports_inside_functions():
    graph = _graph(_modules())
    assert "hs_sync.run" in graph["hs_sync"]  # the package binds sync on first use
    assert "hs_sync.media.run" in graph["hs_sync.media"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {("a", "b", "c")}
