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
