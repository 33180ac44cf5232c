"""Stores: one interface (:class:`Store`), a backend per kind of URL."""

from __future__ import annotations

from gisapp.store.base import LayerInfo, Page, Store, StoreError

__all__ = ["LayerInfo", "Page", "Store", "StoreError", "open_store"]


def open_store(url: str, *, must_exist: bool = True) -> Store:
    """The store at ``url``: a ``postgresql://`` URL or a GeoPackage path.

    ``must_exist=False`` allows a GeoPackage path that does not exist yet,
    for commands that create the store (``seed``, ``import``).
    """
    if not url:
        raise StoreError("no store configured; set GISAPP_STORE or pass --store")
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        try:
            from gisapp.store.postgis import PostGISStore
        except ImportError as err:  # pragma: no cover - depends on the install
            raise StoreError(f"the PostGIS store needs extra packages: {err}") from None
        return PostGISStore(url, must_exist=must_exist)
    from gisapp.store.gpkg import GeoPackageStore

    if not str(url).endswith(".gpkg"):
        raise StoreError(f"store {url!r} is neither a .gpkg file nor a postgresql:// URL")
    return GeoPackageStore(url, must_exist=must_exist)
