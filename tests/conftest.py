"""Shared fixtures: the Cẩm Lệ demo data (built once per session), a private PostGIS server, Chromium.

Helpers that are not fixtures are in ``tests/helpers.py``, ``tests/stores.py``
(both backends), ``tests/pg_server.py`` and ``tests/browser_util.py``.
"""

from __future__ import annotations

import shutil

import pytest

from gisapp.demo import build as demo
from gisapp.demo.timeline import demo_history
from gisapp.domain import Calendar
from gisapp.store.gpkg import GeoPackageStore
from tests.browser_util import chromium_fixture  # noqa: F401 - the chromium fixture
from tests.pg_server import pg_server, pg_url  # noqa: F401 - fixtures


@pytest.fixture(scope="session")
def demo_frames():
    """``(frames, meta)`` of the demo build (shared: do not modify the frames)."""
    return demo.build(Calendar())


@pytest.fixture(scope="session")
def _demo_store_file(demo_frames, tmp_path_factory):
    """A GeoPackage seeded once with the demo, copied by ``demo_store``."""
    path = tmp_path_factory.mktemp("demo") / "demo.gpkg"
    frames, meta = demo_frames
    GeoPackageStore(path, must_exist=False).write(frames, meta=meta, history=demo_history(frames))
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


#: Fixtures that need an outside tool, and the marker each implies.
TOOL_FIXTURES = {"chromium": "browser", "pg_server": "postgis", "pg_url": "postgis"}
#: Markers of tests that are slow: they start a browser, a database or a server, or run an outside tool.
SLOW_MARKERS = ("browser", "postgis", "gdal")


#: Files whose tests take longest, longest first (measured on a busy two-core machine, December 2026): they run
#: first, and the many short files fill in at the end, so that no worker starts a long file while the other has
#: nothing left.  ``--dist loadfile`` hands out whole files in this order (xdist's own reordering, by number of
#: tests, is turned off in :func:`pytest_configure`: it put the one-test files that take a minute last).
LONGEST_FIRST = ("test_wheel.py", "test_upload_security.py", "test_reports.py", "test_privacy.py",
                 "test_postgis.py", "test_incremental.py", "test_tile_disk.py", "test_lint.py", "test_hardening.py",
                 "test_store.py", "test_deploy.py", "test_api_fuzz.py", "test_import_fuzz.py", "test_browser.py",
                 "test_field_browser.py", "test_gpkg_load.py", "test_auth_security.py", "test_progress_browser.py",
                 "test_postgis_io.py", "test_progress_web.py")


def pytest_configure(config):
    """Whole files to workers in the collected order (:data:`LONGEST_FIRST`), not reordered by their sizes."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    """The longest files first; tool markers from the fixtures a test uses; ``slow`` for tests that need a tool
    or a PostGIS store.

    ``pytest -m "not slow"`` is the quick lane (see the README).
    """
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the order within a file is kept
    for item in items:
        for fixture, marker in TOOL_FIXTURES.items():
            if fixture in item.fixturenames:
                item.add_marker(marker)
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "postgis" in callspec.params.values():
            item.add_marker("postgis")
        if any(item.get_closest_marker(m) for m in SLOW_MARKERS):
            item.add_marker("slow")
