"""Data flows one way: formats -> archive -> analyze -> commands (docs/architecture.md).

Every module of damo_pipe is parsed (ast, imports inside functions included) into a
module graph; the tests check the layer rules on it and that it has no cycle. A failure
names the offending import (module, line, imported module).
"""
import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "damo_pipe"


def _module_name(path, root):
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(root=PACKAGE_DIR):
    """{dotted name: path} of every Python module of the package at ``root``."""
    return {_module_name(p, root): p for p in sorted(root.rglob("*.py"))
            if "__pycache__" not in p.parts}


def _resolve(target, known):
    """The module an import of ``target`` runs last: itself, or its closest known parent
    (``from pkg import name`` of a non-module name)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def _imports(name, path, known):
    """[(line, imported damo_pipe module)] of a module, wherever the import statement is."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                if not is_pkg:
                    base = base[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod + "." + a.name for a in node.names]   # a submodule, or a name of mod
        else:
            continue
        for t in targets:
            if t.split(".")[0] != "damo_pipe":
                continue
            r = _resolve(t, known)
            if r is not None and r != name:
                out.append((node.lineno, r))
    return out


def _graph(root=PACKAGE_DIR):
    mods = _modules(root)
    return mods, {name: _imports(name, path, mods) for name, path in mods.items()}


def _within(mod, pkg):
    return mod == pkg or mod.startswith(pkg + ".")


def _violations(graph, sources, forbidden):
    bad = []
    for name, edges in sorted(graph.items()):
        if not any(_within(name, s) for s in sources):
            continue
        for line, target in edges:
            if any(_within(target, f) for f in forbidden):
                bad.append("%s:%d imports %s" % (name, line, target))
    return bad


def test_archive_and_formats_import_nothing_from_analyze_or_collect():
    _, graph = _graph()
    bad = _violations(graph, ["damo_pipe.archive", "damo_pipe.formats"],
                      ["damo_pipe.analyze", "damo_pipe.collect", "damo_pipe.convert"])
    assert not bad, "layer violations:\n  " + "\n  ".join(bad)


def test_sources_imports_no_higher_layer():
    _, graph = _graph()
    bad = _violations(graph, ["damo_pipe.sources", "damo_pipe.archive"],
                      ["damo_pipe.analyze", "damo_pipe.collect", "damo_pipe.convert"])
    bad += _violations(graph, ["damo_pipe.archive"], ["damo_pipe.sources"])
    assert not bad, "layer violations:\n  " + "\n  ".join(bad)


def test_h5py_only_in_archive():
    """HDF5 is the archive's business: no other module opens files with h5py."""
    bad = []
    for name, path in _modules().items():
        if _within(name, "damo_pipe.archive"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                if n.split(".")[0] in ("h5py", "hdf5plugin"):
                    bad.append("%s:%d imports %s" % (name, node.lineno, n))
    assert not bad, "h5py outside damo_pipe.archive:\n  " + "\n  ".join(bad)


def test_formats_import_nothing_from_archive():
    _, graph = _graph()
    bad = _violations(graph, ["damo_pipe.formats"], ["damo_pipe.archive", "damo_pipe.sources"])
    assert not bad, "layer violations:\n  " + "\n  ".join(bad)


def _cycle_edges(graph):
    """Edges inside strongly connected components (Tarjan), a package's __init__
    importing its own submodules left out."""
    edges = {n: sorted({t for _, t in es if not t.startswith(n + ".") and t in graph})
             for n, es in graph.items()}
    index, low, stack, on_stack, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        # iterative Tarjan: the graph is small but recursion depth is not guaranteed
        work = [(v, iter(edges[v]))]
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(edges[w])))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.add(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        comps.append(comp)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    out = []
    for comp in comps:
        for n in sorted(comp):
            for line, t in sorted(set(graph[n])):
                if t in comp and t in edges[n]:
                    out.append("%s:%d imports %s" % (n, line, t))
    return comps, out


def test_no_import_cycles():
    _, graph = _graph()
    comps, edges = _cycle_edges(graph)
    assert not comps, ("import cycles (%d); edges inside them:\n  " % len(comps)
                       + "\n  ".join(edges))


def _unit(m):
    """The top-level unit of module ``m``: damo_pipe.X, or damo_pipe.X.commands (the
    commands are the layer above every library, docs/architecture.md)."""
    parts = m.split(".")
    return ".".join(parts[:3] if parts[2:3] == ["commands"] else parts[:2])


def _top_level_graph(graph):
    """The graph between damo_pipe's top-level packages and modules (damo_pipe.formats,
    damo_pipe.archive, damo_pipe.sources ...; see _unit)."""
    top = _unit
    out = {}
    for n, es in graph.items():
        out.setdefault(top(n), []).extend((0, top(t)) for _, t in es if top(t) != top(n))
    return out


def test_no_import_cycles_between_top_level_packages():
    _, graph = _graph()
    top = _top_level_graph(graph)
    comps, _ = _cycle_edges(top)
    detail = []
    for comp in comps:
        for n, es in sorted(graph.items()):
            for line, t in sorted(set(es)):
                a, b = _unit(n), _unit(t)
                if a != b and a in comp and b in comp:
                    detail.append("%s:%d imports %s" % (n, line, t))
    assert not comps, ("cycles between top-level packages %s; imports inside them:\n  "
                       % [sorted(c) for c in comps] + "\n  ".join(detail))


# ---------------------------------------------------------------- the checker itself
def test_checker_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "damo_pipe"
    (pkg / "formats").mkdir(parents=True)
    (pkg / "archive").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "archive" / "__init__.py").write_text("from damo_pipe.archive import reader\n")
    (pkg / "archive" / "reader.py").write_text("from .. import formats\n")
    (pkg / "formats" / "__init__.py").write_text(
        "def f():\n    from damo_pipe.archive.reader import X\n")
    _, graph = _graph(pkg)
    assert graph["damo_pipe.formats"] == [(2, "damo_pipe.archive.reader")]
    assert graph["damo_pipe.archive.reader"] == [(1, "damo_pipe.formats")]
    assert _violations(graph, ["damo_pipe.formats"], ["damo_pipe.archive"]) == [
        "damo_pipe.formats:2 imports damo_pipe.archive.reader"]
    comps, edges = _cycle_edges(graph)
    assert comps == [{"damo_pipe.formats", "damo_pipe.archive.reader"}]
    assert edges == ["damo_pipe.archive.reader:1 imports damo_pipe.formats",
                     "damo_pipe.formats:2 imports damo_pipe.archive.reader"]


@pytest.mark.parametrize("name", ["damo_pipe.formats", "damo_pipe.archive", "damo_pipe.sources",
                                  "damo_pipe.convert"])
def test_checker_knows_the_modules(name):
    assert name in _modules()
