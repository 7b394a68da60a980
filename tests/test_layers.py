"""The package's layers: each imports only from the layers below it, never from a sibling,
and no module imports itself back through others.

    taskhook.cli                          the command
    taskhook.serve                        both roles in one process
    taskhook.receiver | taskhook.dispatcher   the two roles, siblings
    taskhook.web | taskhook.v2            the Tasks tab and Scale's v2 view, siblings
    taskhook.core                         settings, db, models, rules; and within it
      taskhook.core.store                 the data access: the only code that runs SQL
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import taskhook

PACKAGE = Path(taskhook.__file__).parent
LAYERS = [  # top first; modules of one entry are siblings
    ("taskhook.cli",),
    ("taskhook.serve",),
    ("taskhook.receiver", "taskhook.dispatcher"),
    ("taskhook.web", "taskhook.v2"),
    ("taskhook.core",),
]
# What the data access may use of the core: types and codecs, never the rules above it.
STORE_MAY_IMPORT = {
    "taskhook.core.delivery",
    "taskhook.core.errors",
    "taskhook.core.logs",
    "taskhook.core.principal",
}
QUERY_FILES = {"taskhook.core.store.queries"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> Iterator[str]:
    """Every taskhook module the file imports, at any depth (function-level included)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("taskhook"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("taskhook"):
            assert node.level == 0, f"{path}: relative import"
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield sub if sub in MODULES else node.module  # type: ignore[misc]


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}
GRAPH = {module_name(p): set(imports_of(p)) - {module_name(p)} for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> tuple[int, str] | None:
    for rank, siblings in enumerate(LAYERS):
        for top in siblings:
            if module == top or module.startswith(top + "."):
                return rank, top
    return None  # taskhook itself (its version): below every layer


def test_every_module_has_a_layer() -> None:
    assert {m for m in MODULES if layer_of(m) is None} == {"taskhook"}


def upward_or_sibling(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        here = layer_of(module)
        for target in targets:
            there = layer_of(target)
            if here is None or there is None:
                continue
            if there[0] < here[0] or (there[0] == here[0] and there[1] != here[1]):
                wrong.append(f"{module} -> {target}")
    return sorted(wrong)


def test_no_upward_or_sibling_import() -> None:
    assert upward_or_sibling(GRAPH) == []


def test_store_uses_only_the_core_types() -> None:
    wrong = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module.startswith("taskhook.core.store")
        for target in targets
        if not target.startswith("taskhook.core.store") and target not in STORE_MAY_IMPORT
    ]
    assert wrong == []


def test_only_the_store_reads_the_query_files() -> None:
    readers = {m for m, targets in GRAPH.items() if targets & QUERY_FILES}
    assert {m for m in readers if not m.startswith("taskhook.core.store")} == set()
    sql_files = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.sql")}
    assert sql_files == {"core/store/queries.sql"}


def cycles_of(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module. A package's
    __init__ importing its own submodules is not a cycle of layers, so the edge from a
    package to its children is left out."""
    edges = {
        m: {t for t in targets if t in graph and not t.startswith(m + ".")}
        for m, targets in graph.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle() -> None:
    assert cycles_of(GRAPH) == []


def test_the_checks_catch_what_they_forbid() -> None:
    """Each check fails on a graph with the import it forbids (none is vacuous)."""
    assert "taskhook.core.store" in GRAPH["taskhook.core.tasks"]  # the graph is read
    bad = {
        "taskhook.core.tasks": {"taskhook.receiver.app"},  # upward
        "taskhook.receiver.app": {"taskhook.dispatcher.loop"},  # sibling
        "taskhook.web.routes": {"taskhook.core.store"},  # downward: allowed
    }
    assert upward_or_sibling(bad) == [
        "taskhook.core.tasks -> taskhook.receiver.app",
        "taskhook.receiver.app -> taskhook.dispatcher.loop",
    ]
    loop = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles_of(loop) == [["a", "b", "c"]]
