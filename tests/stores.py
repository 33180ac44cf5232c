"""Empty stores of each backend for the store test suite.

The PostGIS backend is a fresh database per test on a private server
started once per test session (``tests/pg_server.py``).
"""

import atexit
import shutil
import tempfile
from pathlib import Path

from gisapp.store.gpkg import GeoPackageStore

BACKENDS = ["gpkg", "postgis"]


def new_store(backend: str, tmp_path, request=None, *, template: str | None = None):
    """An empty store of ``backend`` that lives as long as the test (PostGIS: a copy of database ``template``
    when one is given)."""
    if backend == "gpkg":
        return GeoPackageStore(tmp_path / "store.gpkg", must_exist=False)
    if backend == "postgis":
        from gisapp.store.postgis import PostGISStore, close_pool
        from tests import pg_server

        name, url = _database(template)
        if request is not None:
            request.addfinalizer(lambda: (close_pool(url), pg_server.server().drop_database(name)))
        return PostGISStore(url, must_exist=False)
    raise ValueError(backend)


def _database(template: str | None = None) -> tuple[str, str]:
    """A new database on the test server (a copy of ``template`` when given): its name and URL."""
    from tests import pg_server

    server = pg_server.server()
    name = server.create_database(template=template)
    return name, server.url(name)


def analyzed_store(backend: str, tmp_path, request, frames: dict, meta: dict):
    """A store of ``backend`` holding ``frames`` and the findings of a full analysis (its parameters in the meta).

    The first such store of a test process for the same ``frames`` and ``meta`` (the session's demo) is written
    and analysed in a folder or database of its own, kept as a template; every store is a copy of it (the
    GeoPackage file copied, the database made with ``CREATE DATABASE … TEMPLATE``): the same rows, without a
    write and an analysis of the whole demo for each test.
    """
    key = (backend, id(frames), id(meta))
    if key not in _TEMPLATES:
        _TEMPLATES[key] = (frames, meta, _analyzed_template(backend, frames, meta))  # frames kept: their id stays
    template = _TEMPLATES[key][2]
    if backend == "gpkg":
        shutil.copyfile(template, tmp_path / "store.gpkg")
        return GeoPackageStore(tmp_path / "store.gpkg")
    return new_store(backend, tmp_path, request, template=template)


#: (backend, id(frames), id(meta)) → (frames, meta, the template: a GeoPackage path or a database name).
_TEMPLATES: dict[tuple, tuple] = {}


def _analyzed_template(backend: str, frames: dict, meta: dict):
    """Write ``frames`` and their full analysis into a new store kept until the process ends; its file or
    database name."""
    from gisapp.analysis.incremental import stored_params
    from gisapp.analysis.run import analyze_store

    if backend == "gpkg":
        folder = Path(tempfile.mkdtemp(prefix="gisapp-analyzed-"))
        atexit.register(shutil.rmtree, folder, True)
        store = GeoPackageStore(folder / "store.gpkg", must_exist=False)
    else:
        from gisapp.store.postgis import PostGISStore

        name, url = _database()  # the database stays until the server stops
        store = PostGISStore(url, must_exist=False)
    store.write(frames, meta=meta)
    result, _ = analyze_store(store, stored_params(store))
    store.write({"findings": result.findings}, mode="replace", meta={"findings": result.params.as_meta()})
    if backend == "gpkg":
        return store.path
    from gisapp.store.postgis import close_pool

    close_pool(url)  # a template database must have no sessions
    return name
