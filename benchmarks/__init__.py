"""The benchmarks (``python -m benchmarks``; see ``benchmarks/__main__.py``) and what they share."""

from __future__ import annotations

import datetime as dt
import json
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
