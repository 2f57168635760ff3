"""kino's modules import each other without cycles (issue 17): the graph of imports (module level
and lazy ones inside functions alike) has no strongly connected component of more than one module,
models/ never imports train/, and every module imports in a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import kino

ROOT = Path(kino.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """kino modules that `path` imports anywhere (module level or inside functions: a lazy import is
    still a dependency, and two modules that import each other lazily are still a cycle); imports
    under `if TYPE_CHECKING:` are annotations only and do not count."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found: set[str] = set()
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for b in node.body for n in ast.walk(b)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m in MODULES}


GRAPH = {name: imports(path) - {name} for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
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
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            connect(v)
    return out


def test_the_import_graph_has_no_cycles():
    assert len(MODULES) > 50  # the walk found the package
    assert cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
    graph = {"kino.a": {"kino.b"}, "kino.b": {"kino.c"}, "kino.c": {"kino.a"}, "kino.d": {"kino.a"}}
    saved = dict(MODULES)
    try:
        for name in graph:
            MODULES.setdefault(name, ROOT / "cli.py")
        assert cycles(graph) == [["kino.a", "kino.b", "kino.c"]]
    finally:
        MODULES.clear()
        MODULES.update(saved)


def test_models_never_import_training():
    reach, todo = set(), [m for m in GRAPH if m.startswith("kino.models")]
    while todo:
        m = todo.pop()
        if m not in reach:
            reach.add(m)
            todo.extend(GRAPH[m])
    assert not [m for m in reach if m.startswith("kino.train")]


def test_every_module_imports_in_a_fresh_interpreter():
    # every module, in name order, in one fresh process: a cycle that only breaks at run time, or a
    # module whose import fails (a missing dependency), fails here
    names = sorted(n for n in MODULES if not n.endswith("__main__"))
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    done = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
