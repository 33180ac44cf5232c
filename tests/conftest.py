"""Shared fixtures: the Cẩm Lệ demo data, built once per session."""

from __future__ import annotations

import shutil

import pytest

from gisapp.demo import build as demo
from gisapp.domain import Calendar
from gisapp.store.gpkg import GeoPackageStore


@pytest.fixture(scope="session")
def demo_frames():
    """``(frames, meta)`` of the demo build (shared: do not modify the frames)."""
    return demo.build(Calendar())


@pytest.fixture(scope="session")
def _demo_store_file(demo_frames, tmp_path_factory):
    """A GeoPackage seeded once with the demo, copied by ``demo_store``."""
    path = tmp_path_factory.mktemp("demo") / "demo.gpkg"
    frames, meta = demo_frames
    GeoPackageStore(path, must_exist=False).write(frames, meta=meta)
    return path


@pytest.fixture
def demo_store(_demo_store_file, tmp_path):
    """A GeoPackage store with the demo data, private to the test (free to write to)."""
    path = tmp_path / "demo.gpkg"
    shutil.copyfile(_demo_store_file, path)
    return GeoPackageStore(path)


@pytest.fixture(autouse=True)
def _private_settings(tmp_path_factory, monkeypatch):
    """Accounts, uploads, tiles and the default store of every test live in a temporary folder, never in layers/."""
    home = tmp_path_factory.mktemp("settings")
    monkeypatch.setenv("GISAPP_ACCOUNTS", str(home / "accounts.sqlite"))
    monkeypatch.setenv("GISAPP_UPLOADS", str(home / "uploads"))
    monkeypatch.setenv("GISAPP_TILE_DIR", str(home / "tiles"))
    monkeypatch.setenv("GISAPP_STORE", str(home / "store.gpkg"))
