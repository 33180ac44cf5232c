"""An honest store interface: what the app asks of a store is declared, with types, on the class it expects.

Read from the source with :mod:`ast`: every parameter called ``store`` is
annotated; whatever a function reads from a parameter annotated with a store
class exists on that class (a backend's own methods only where the function
takes that backend, after an ``isinstance``); nothing probes a store with
``hasattr``/``getattr``.  And every method of the interface and its backends
has typed parameters and a return type.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from gisapp.store import Store
from gisapp.store.gpkg import GeoPackageStore
from gisapp.store.postgis import PostGISStore

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "gisapp").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py"),
                  *(ROOT / "tests").rglob("*.py")])


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _functions(paths):
    """``(path, function node)`` of every function and method in ``paths``."""
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path, node


def _params(fn) -> list[ast.arg]:
    args = fn.args
    return [*args.posonlyargs, *args.args, *args.kwonlyargs]


def _members(cls) -> set[str]:
    """Attributes and annotated instance attributes of ``cls`` and its bases."""
    names = set(dir(cls))
    for base in inspect.getmro(cls):
        names |= set(getattr(base, "__annotations__", {}))
    return names


def _annotated_class(path: Path, annotation):
    """The class a parameter's annotation names (a plain name, looked up in its module), else ``None``."""
    if not isinstance(annotation, ast.Name):
        return None
    found = getattr(importlib.import_module(_module(path)), annotation.id, None)
    return found if inspect.isclass(found) else None


def test_every_store_parameter_is_typed():
    untyped = [f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}" for path, fn in _functions(sorted(
        (ROOT / "gisapp").rglob("*.py"))) for arg in _params(fn) if arg.arg == "store" and arg.annotation is None]
    assert untyped == []


def test_what_functions_ask_of_a_store_is_declared_on_its_type():
    undeclared = []
    for path, fn in _functions(sorted((ROOT / "gisapp").rglob("*.py"))):
        for arg in _params(fn):
            cls = _annotated_class(path, arg.annotation)
            if cls is None or not (issubclass(cls, Store) or arg.arg == "store"):
                continue
            members = _members(cls)
            for node in ast.walk(fn):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                        node.value.id == arg.arg and node.attr not in members:
                    undeclared.append(f"{path.relative_to(ROOT)}:{node.lineno} {arg.arg}.{node.attr} "
                                      f"(not on {cls.__name__})")
    assert undeclared == []


def test_nothing_probes_a_store():
    probes = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("hasattr", "getattr") and node.args and \
                    isinstance(node.args[0], ast.Name) and "store" in node.args[0].id:
                probes.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert probes == []


@pytest.mark.parametrize("cls", [Store, GeoPackageStore, PostGISStore], ids=lambda c: c.__name__)
def test_store_methods_are_typed(cls):
    untyped = []
    for name, method in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_") and name != "__init__":
            continue
        sig = inspect.signature(method)
        missing = [p.name for p in sig.parameters.values() if p.name != "self" and p.annotation is p.empty]
        if missing or (sig.return_annotation is sig.empty and name != "__init__"):
            untyped.append(f"{cls.__name__}.{name}: {', '.join(missing) or 'return'}")
    assert untyped == []
