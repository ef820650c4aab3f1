"""The project's packages import each other without circles: every import between this project's modules (at the
top of a file or inside a function) is an edge, and the test lists each cycle it finds."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: package name -> its folder (nodes/ installs as collage_nodes)
PACKAGES = {"collage_core": "collage_core", "collage_engine": "collage_engine", "collage_nodes": "nodes",
            "collage_app": "collage_app"}
def modules() -> dict[str, Path]:
    found = {}
    for package, folder in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if any(p in ("web", "__pycache__") or p.startswith(".") for p in parts):
                continue
            found[".".join([package, *parts])] = path
    return found


def _resolve(name: str, package: str, level: int) -> str:
    if not level:
        return name
    base = package.split(".")[: len(package.split(".")) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``module`` imports anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module or "", package, node.level)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import collage_core.x.y` with y a name: its module
                name = name.rpartition(".")[0]
            if name and name != module:
                out.add(name)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports(m, p, set(mods)) for m, p in mods.items()}


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    lines = [" <-> ".join(c) + "\n    " + "; ".join(f"{a} -> {', '.join(sorted(graph[a] & set(c)))}" for a in c)
             for c in found]
    assert not found, "import cycles:\n" + "\n".join(lines)


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "collage_core.checkpoint_format" in graph["collage_core.encoder"]  # imported inside load_encoder


def test_no_package_file_over_800_lines_and_no_function_over_100():
    """The house rules of issue 26 (tests and benchmarks apart)."""
    long_files, long_functions = [], []
    for folder in PACKAGES.values():
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if text.count("\n") > 800:
                long_files.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > 100:
                        long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n} lines")
    assert not long_files and not long_functions, "\n".join(long_files + long_functions)


def test_node_pack_imports_no_application_and_no_ray():
    graph = import_graph()
    for m, deps in graph.items():
        if m.startswith(("collage_nodes", "collage_engine", "collage_core")):
            assert not any(d.startswith("collage_app") for d in deps), f"{m} imports {deps}"
    for path in (ROOT / "nodes").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            assert not any(n == "ray" or n.startswith("ray.") for n in names), f"{path} imports Ray"


if __name__ == "__main__":
    g = import_graph()
    for c in cycles(g):
        print(" <-> ".join(c))
        for a in c:
            print("   ", a, "->", ", ".join(sorted(g[a] & set(c))))
