"""The package's rooms: no module imports one of its own importers, and each room imports only the rooms below it.

The room map is the README's "Rooms" section; ``ROOMS`` below is the same
map as data.  Imports are read from the source with :mod:`ast` (function-level
imports included), so a lazy import cannot hide a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gisapp"

#: room → the rooms its modules may import (besides their own room).  ``core`` is every top-level module.
ROOMS = {
    "core": set(),
    "formats": {"core"},
    "store": {"core", "formats"},
    "analysis": {"core", "formats", "store"},
    "tiles": {"core", "formats", "store"},
    "importing": {"core", "formats", "store", "analysis"},
    "demo": {"core", "formats", "store"},
    "api": {"core", "formats", "store", "tiles"},
    "reports": {"core", "formats", "store", "analysis"},
    "web": {"core", "formats", "store", "analysis", "tiles", "importing", "demo", "api", "reports"},
    "cli": {"core", "formats", "store", "analysis", "tiles", "importing", "demo", "api", "reports", "web"},
}


def module_name(path: Path) -> str:
    """``gisapp.x.y`` for ``gisapp/x/y.py`` (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The gisapp modules that ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # gisapp.x.y.attr → gisapp.x.y
                name = name.rpartition(".")[0]
            if name.startswith("gisapp"):
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    """Module → the gisapp modules it imports (not counting a package importing its own parents)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    out = {}
    for name, path in files.items():
        deps = imports_of(path, set(files)) - {name}
        out[name] = {d for d in deps if not name.startswith(d + ".")}
    return out


def room_of(module: str) -> str:
    """``core`` for a top-level module, else the subpackage's name."""
    parts = module.split(".")
    if module == "gisapp.__main__":  # ``python -m gisapp``: the command line
        return "cli"
    if len(parts) == 2 and not (PACKAGE / parts[1]).is_dir():
        return "core"
    return parts[1] if len(parts) > 1 else "core"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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


def test_no_import_circles():
    assert cycles(graph()) == []


def test_each_room_imports_only_the_rooms_below_it():
    bad = []
    for module, deps in sorted(graph().items()):
        room = room_of(module)
        allowed = ROOMS[room] | {room}
        bad += [f"{module} ({room}) imports {d} ({room_of(d)})" for d in sorted(deps) if room_of(d) not in allowed]
    assert bad == []


def test_every_room_is_in_the_map():
    rooms = {room_of(m) for m in graph()}
    assert rooms <= set(ROOMS)


def test_the_circle_finder_finds_a_circle():
    """The check itself can fail: a two-module circle and a three-module one are reported."""
    edges = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(cycles(edges)) == [["a", "b"], ["c", "d", "e"]]


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_the_readme_room_map_names_every_room(room):
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Rooms", 1)[1].split("\n## ", 1)[0]
    assert (f"`gisapp/{room}/`" if room != "core" else "core") in section


def test_no_test_module_imports_another():
    """Shared test code lives in conftest.py (fixtures) and helper modules, never in a test module."""
    tests = PACKAGE.parent / "tests"
    bad = []
    for path in sorted(tests.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.name} imports {n}" for n in names if n.startswith(("tests.test_", "test_"))]
    assert bad == []


#: The modules of compiled loops: the only ones that import numba.
KERNELS = {"gisapp.analysis.kernels", "gisapp.formats.kernels"}


def test_numba_is_imported_only_by_the_kernels_and_only_where_the_analysis_runs():
    """The kernels (``gisapp.analysis.kernels``, ``gisapp.formats.kernels``) alone import numba (~0.3 s), and no
    other module imports them at its top: the command line's help and the web server start without it."""
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = set(tree.body)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            if any(n == "numba" or n.startswith("numba.") for n in names) and path.name != "kernels.py":
                bad.append(f"{path.relative_to(PACKAGE)} imports numba")
            if node in top and path.name != "kernels.py" and KERNELS & set(names):
                bad.append(f"{path.relative_to(PACKAGE)} imports the kernels at its top")
    assert bad == []
    # and importing what `gisapp --help` and the web app import does not import numba
    code = ("import sys, gisapp.cli, gisapp.web.app, gisapp.analysis.overlaps, gisapp.analysis.run; "
            "print('numba' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=PACKAGE.parent)
    assert done.stdout.strip() == "False"
