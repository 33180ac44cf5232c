"""The benchmarks (``python -m benchmarks``; see ``benchmarks/__main__.py``) and what they share."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gisapp.store import Store

#: Where every benchmark writes its JSON results.
OUT_DIR = Path(__file__).resolve().parent / "out"


def save_results(name: str, results: dict) -> Path:
    """Write ``results`` as ``benchmarks/out/<name>_<time>.json``, say where, and return the path."""
    OUT_DIR.mkdir(exist_ok=True)
    out = OUT_DIR / f"{name}_{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out.relative_to(OUT_DIR.parent.parent)}")
    return out


def bench_store(backend: str, gpkg_path: Path, server, database: str) -> tuple[str, Store]:
    """A new, empty store for one run: a GeoPackage at ``gpkg_path`` (``backend`` ``gpkg``) or a new database
    named after ``database`` on the private PostGIS ``server``; ``(url, store)``."""
    from gisapp.store.gpkg import GeoPackageStore
    from gisapp.store.postgis import PostGISStore

    if backend == "gpkg":
        return str(gpkg_path), GeoPackageStore(gpkg_path, must_exist=False)
    assert server is not None
    url = server.url(server.create_database(database))
    return url, PostGISStore(url, must_exist=False)


@contextlib.contextmanager
def store_copy(source: str, folder: Path, name: str) -> Iterator[str]:
    """A copy of the existing, loaded store ``source`` for one run that writes to it; yields the copy's address.

    A GeoPackage path: the file copied into ``folder`` (removed afterwards).  A PostGIS URL: a new database
    ``CREATE DATABASE … TEMPLATE <source's>`` on the same server, through its ``postgres`` database (the
    source must have no session open: this never connects to it), dropped afterwards.  So a 1,000,000-feature
    store loaded once serves every run, and no run changes it.
    """
    if "://" not in source:
        dst = Path(folder) / f"{name}.gpkg"
        shutil.copyfile(source, dst)
        try:
            yield str(dst)
        finally:
            dst.unlink(missing_ok=True)
        return
    import psycopg
    from psycopg import sql

    from gisapp.store.postgis import close_pool

    server, _, template = source.partition("?")[0].rpartition("/")
    copy = f"{template}_{name}_{os.getpid()}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as con:
        con.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(copy), sql.Identifier(template)))
    url = f"{server}/{copy}"
    try:
        yield url
    finally:
        close_pool(url)
        with psycopg.connect(f"{server}/postgres", autocommit=True) as con:
            con.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(copy)))
