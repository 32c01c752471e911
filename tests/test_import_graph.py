"""The import graph of autonn_nas has no cycle: modules are nodes, every import / from-import statement found
with ast (absolute and relative, at module level, inside functions and under TYPE_CHECKING) is an edge.
A cycle is how layers stop being layers (search/runner <-> search/final was one), so this reads the source
instead of importing it: a lazy import inside a function hides a cycle from Python but not from this test."""
from __future__ import annotations

import ast
from pathlib import Path

import autonn_nas

PACKAGE_DIR = Path(autonn_nas.__file__).parent


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = ["autonn_nas", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The autonn_nas modules `node` imports (a `from package import name` counts name if it is a module)."""
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
    found = set()
    for name in candidates:
        while name and name not in known:  # `autonn_nas.x.y.attr` -> the module autonn_nas.x.y
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _module_names()
    graph = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _imported(module, path.name == "__init__.py", node, set(modules))
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_graph_sees_relative_lazy_and_type_checking_imports():
    graph = import_graph()
    assert "autonn_nas.search.final" in graph["autonn_nas.search.runner"]  # `from autonn_nas.search import final`
    assert "autonn_nas.train.hyp" in graph["autonn_nas.search.settings"]  # inside a method
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_in_the_package():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# The layers, lowest first: a module may import its own layer and the ones below, never one above
# (service -> search / export -> train -> data -> models -> utils; the CLI's commands sit on top).
LAYERS = {"utils": 0, "models": 1, "data": 2, "train": 3, "search": 4, "export": 4, "service": 5,
          "commands": 6, "cli": 6, "__main__": 6}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_module_imports_a_higher_layer():
    graph = import_graph()
    unknown = sorted({_layer(m) for m in graph} - set(LAYERS) - {"__init__"})
    assert not unknown, f"modules outside the known layers {unknown}: add them to LAYERS"
    upward = [f"{m} -> {e}" for m, edges in sorted(graph.items()) for e in sorted(edges)
              if _layer(m) in LAYERS and _layer(e) in LAYERS and LAYERS[_layer(e)] > LAYERS[_layer(m)]]
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)
