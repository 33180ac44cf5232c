"""Empty stores of each backend for the store test suite.

The PostGIS backend is a fresh database per test on a private server
started once per test session (``tests/pg_server.py``).
"""

from gisapp.store.gpkg import GeoPackageStore

BACKENDS = ["gpkg", "postgis"]


def new_store(backend: str, tmp_path, request=None):
    """An empty store of ``backend`` that lives as long as the test."""
    if backend == "gpkg":
        return GeoPackageStore(tmp_path / "store.gpkg", must_exist=False)
    if backend == "postgis":
        from gisapp.store.postgis import PostGISStore, close_pool
        from tests import pg_server

        server = pg_server.server()
        name = server.create_database()
        url = server.url(name)
        if request is not None:
            request.addfinalizer(lambda: (close_pool(url), server.drop_database(name)))
        return PostGISStore(url, must_exist=False)
    raise ValueError(backend)


def analyzed_store(backend: str, tmp_path, request, frames: dict, meta: dict):
    """A store of ``backend`` holding ``frames`` and the findings of a full analysis (its parameters in the meta)."""
    from gisapp.analysis.incremental import stored_params
    from gisapp.analysis.run import analyze_store

    store = new_store(backend, tmp_path, request)
    store.write(frames, meta=meta)
    result, _ = analyze_store(store, stored_params(store))
    store.write({"findings": result.findings}, mode="replace", meta={"findings": result.params.as_meta()})
    return store
