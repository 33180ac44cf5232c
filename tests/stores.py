"""Empty stores of each backend for the store test suite.

The PostGIS backend adds itself here (a real server on 127.0.0.1).
"""

from gisapp.store.gpkg import GeoPackageStore

BACKENDS = ["gpkg"]


def new_store(backend: str, tmp_path, request=None):
    """An empty store of ``backend`` that lives as long as the test."""
    if backend == "gpkg":
        return GeoPackageStore(tmp_path / "store.gpkg", must_exist=False)
    raise ValueError(backend)
