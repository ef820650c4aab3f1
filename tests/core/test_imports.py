"""collage_core's modules import each other without cycles, counting imports inside functions (read with ast)."""

from __future__ import annotations

import ast
from pathlib import Path

import collage_core

ROOT = Path(collage_core.__file__).resolve().parent


def _module_graph() -> dict[str, set[str]]:
    """Module name -> the collage_core modules it imports anywhere in its source (``from . import x`` counts as
    importing ``x``, not the package)."""
    files = {}
    for p in ROOT.rglob("*.py"):
        parts = ["collage_core", *p.relative_to(ROOT).with_suffix("").parts]
        is_pkg = parts[-1] == "__init__"
        files[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, (path, is_pkg) in files.items():
        here = mod.split(".") if is_pkg else mod.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else (node.module or "")
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in files:
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_graph_sees_function_level_imports():
    graph = _module_graph()
    assert "collage_core.checkpoint_format" in graph["collage_core.encoder"]  # imported inside load_encoder
    assert "collage_core.biggan_io" in graph["collage_core.checkpoints"]


def test_collage_core_has_no_import_cycles():
    cycle = _cycle(_module_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
