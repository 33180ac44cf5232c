"""The PostGIS store's bulk paths: a whole layer read packed by the server, findings replaced where they changed."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gisapp import schema
from gisapp.store import postgis
from gisapp.store.base import Store
from gisapp.store.postgis import PostGISStore

X, Y = 547600.0, 1770400.0


@pytest.fixture
def pg(pg_url):
    """An empty PostGIS store in a fresh database."""
    return PostGISStore(pg_url, must_exist=False)


def _wards(n: int = 5) -> gpd.GeoDataFrame:
    """Wards with every field type, missing values in each (a ward without geometry too)."""
    geoms = [shapely.box(X + 500 * i, Y, X + 500 * i + 400, Y + 400) for i in range(n)]
    geoms[2] = None
    return gpd.GeoDataFrame({
        "ward_key": [f"W{i}-2020" for i in range(n)],
        "ward_code": [f"W{i}" if i != 1 else None for i in range(n)],
        "name": ["Phường Hòa Thọ Tây", 'tên "có" dấu,\nhai dòng', None, "", "Ω"][:n],
        "valid_from": ["2020-01-01", None, "1900-02-28", "2099-12-31", "2020-06-30"][:n],
        "approximate": [1, None, 0, -5, 2_000_000_000][:n],
    }, geometry=geoms, crs=schema.STORE_CRS)


def _permits(n: int, seed: int = 3) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    x, y = X + rng.uniform(0, 3000, n), Y + rng.uniform(0, 3000, n)
    geoms = list(shapely.box(x, y, x + rng.uniform(2, 9, n), y + 3))
    geoms[3] = shapely.MultiPolygon([shapely.box(X, Y, X + 2, Y + 2), shapely.box(X + 5, Y, X + 7, Y + 2)])
    geoms[4] = shapely.Polygon(shapely.box(X, Y, X + 20, Y + 20).exterior.coords,
                               [shapely.box(X + 5, Y + 5, X + 8, Y + 8).exterior.coords])
    return gpd.GeoDataFrame({
        "permit_no": [f"VH-{i:05d}" for i in rng.permutation(n)],
        "ward_code": rng.choice(["W0", "W1", None], n),
        "status": "ISSUED", "purpose": "MATERIALS",
        "start_on": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 900, n), "D"),
        "end_on": [None if i % 7 == 0 else "2027-03-01" for i in range(n)],
        "sidewalk_width_m": np.where(np.arange(n) % 5 == 0, np.nan, rng.uniform(1, 6, n)),
        "used_width_m": rng.uniform(0.5, 2, n),
        "address": [f"{i} Lê Duẩn" if i % 3 else None for i in range(n)],
    }, geometry=geoms, crs=schema.STORE_CRS)


@pytest.mark.parametrize("pages", [1, 3, postgis.PACKED_PAGES])
def test_a_whole_layer_packed_by_the_server_reads_as_the_cursor_does(pg, monkeypatch, pages):
    """Every field type with missing values (text, int, float, date, geometry), multi-part and holed geometries,
    over one or many page ranges: the same table as :meth:`Store.read_arrow` makes from the cursor's rows."""
    monkeypatch.setattr(postgis, "PACKED_PAGES", pages)
    pg.write({"wards": _wards(), "sidewalk_permits": _permits(600)})
    for layer in ("wards", "sidewalk_permits"):
        for fields in (None, ["ward_code"]):
            got, want = pg.read_arrow(layer, fields=fields), Store.read_arrow(pg, layer, fields=fields)
            assert got.schema == want.schema and got.schema.field("geometry").metadata
            assert got.equals(want), (layer, fields)
    table = pg.read_arrow("wards")
    assert table.column("approximate").to_pylist() == [1, None, 0, -5, 2_000_000_000]
    assert table.column("geometry").null_count == 1


def test_a_whole_empty_layer_reads_as_none(pg):
    pg.write({"wards": _wards().iloc[:0]})
    assert pg.read_arrow("wards") is None
    assert Store.read_arrow(pg, "wards") is None
