"""The import graph of ``src/gradcode`` is layered: arrows point down only, and no circles.

Every ``import`` of a gradcode module is read with :mod:`ast` -- at the top of a
file, inside a function, or under ``if TYPE_CHECKING`` alike -- so a function-level
import cannot hide a circle.  Layers, lowest first (a module may import its own
layer and the ones below it, never one above):

0. ``codes`` (pure NumPy schemes) and ``plugins`` (the registry helper);
1. ``stragglers``, ``datasets``, ``models``, ``pergrad`` (one-backward partition gradients),
   ``stability`` (heavy ball with stale gradients, pure NumPy);
2. ``sim``, ``comm``, ``task`` (over ``task_data`` and ``task_model``), ``clock`` (trace
   replays), then ``advisor`` (the scheme advisor's pure core);
3. ``runtime``;
4. ``fitting``, ``fitting_checks``, ``advising`` and the package's front door ``gradcode/__init__``;
5. the grid/report/reproduce floor, itself ordered: ``report.tables`` (a leaf shared
   by all three), then ``grid``, ``report``, ``reproduce``;
6. ``cli`` and its sub-apps (``cli_experiment``, ``cli_trace``, ``cli_advise``).

A new top-level module must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Module-name prefix (after ``gradcode.``) -> layer; the longest matching prefix wins.
LAYERS = {
    "codes": 0,
    "plugins": 0,
    "stragglers": 1,
    "datasets": 1,
    "models": 1,
    "pergrad": 1,
    "stability": 1,
    "data": 1,
    "sim": 2,
    "comm": 2,
    "task": 2,
    "task_data": 1.5,
    "task_model": 1.5,
    "clock": 2,
    "advisor": 2.5,
    "runtime": 3,
    "fitting": 4,
    "fitting_checks": 4,
    "advising": 4,
    "": 4,  # gradcode/__init__.py: the public API (fit, datasets, models)
    "report.tables": 5.0,
    "grid": 5.1,
    "report": 5.2,
    "reproduce": 5.3,
    "cli": 6,
    "cli_experiment": 6,
    "cli_trace": 6,
    "cli_advise": 6,
    "cli_codes": 6,
    "cli_common": 6,
}

#: Known violations, each (importer, imported): none today.  An entry that no longer
#: occurs fails :func:`test_allow_list_is_current`, so the list can only shrink.
ALLOWED: set[tuple[str, str]] = set()

#: A compatibility alias: nothing inside the package may import it.
ALIASES = ("gradcode.data",)


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted((SRC / "gradcode").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, known: dict) -> str | None:
    """The module ``name`` refers to: itself, or the closest known package above it."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, path: Path, known: dict) -> set[str]:
    """Every gradcode module ``name`` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        for t in targets:
            if t == "gradcode" or t.startswith("gradcode."):
                target = _resolve(t, known)
                if target is not None and target != name:
                    out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def layer(module: str) -> float:
    rel = module.removeprefix("gradcode").removeprefix(".")
    while True:
        if rel in LAYERS:
            return LAYERS[rel]
        if not rel:
            raise KeyError(module)
        rel = rel.rpartition(".")[0]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_reader_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "gradcode" / "grid"
    pkg.mkdir(parents=True)
    (tmp_path / "gradcode" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from . import b\n    from ..sim import x\n")
    (pkg / "b.py").write_text("")
    (tmp_path / "gradcode" / "sim.py").write_text("")
    known = {"gradcode": 0, "gradcode.grid": 0, "gradcode.grid.b": 0, "gradcode.sim": 0}
    assert imports_of("gradcode.grid.a", pkg / "a.py", known) == {
        "gradcode.grid.b",
        "gradcode.sim",
    }
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)  # KeyError: give the new module a layer in LAYERS


def test_no_import_points_up():
    up = [
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})"
        for a, targets in graph().items()
        for b in sorted(targets)
        if layer(b) > layer(a) and (a, b) not in ALLOWED
    ]
    assert not up, "imports pointing up:\n" + "\n".join(up)


def test_no_import_circle():
    edges = {a: {b for b in bs if (a, b) not in ALLOWED} for a, bs in graph().items()}
    assert cycles(edges) == []


def test_nothing_imports_a_compatibility_alias():
    users = [
        (a, b) for a, bs in graph().items() for b in bs if b in ALIASES and (a, b) not in ALLOWED
    ]
    assert users == []


@pytest.mark.parametrize("edge", sorted(ALLOWED), ids=" -> ".join)
def test_allow_list_is_current(edge):
    importer, imported = edge
    assert imported in graph().get(importer, set()), f"{edge} is fixed: delete it from ALLOWED"
