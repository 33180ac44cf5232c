"""The findings as the analysis hands them to the stores (``AnalysisResult.rows``: Arrow texts, MultiPolygon WKB made
from the permits' own WKB) against the same findings as objects (``AnalysisResult.findings``): the same values, and
stored alike, column by column (hidden ones, row hashes, geometry bytes), with the same extent and change log, in a
real GeoPackage and a real PostGIS database."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

from gisapp import geo, inspections, schema
from gisapp.analysis.overlaps import AnalysisParams, empty_findings, find_overlaps
from gisapp.analysis.run import analyze_store
from gisapp.formats import derive
from gisapp.inspections import Inspection
from gisapp.store import base
from gisapp.store.postgis import PostGISStore
from tests.stores import BACKENDS, new_store

F = "findings"
X0, Y0 = 547_000.0, 1_770_000.0  # EPSG:5899 metres near Cẩm Lệ


def box(x0, y0, x1, y1):
    """A box at offsets (m) from (X0, Y0)."""
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def layer(columns: str, *rows) -> gpd.GeoDataFrame:
    """A layer of ``rows`` (values of the space-separated ``columns``, then the geometry)."""
    names = columns.split()
    return gpd.GeoDataFrame(pd.DataFrame([r[:-1] for r in rows], columns=names).astype(object),
                            geometry=[r[-1] for r in rows], crs="EPSG:5899")


def as_wkb(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    """``frame`` as :func:`gisapp.analysis.run.read_layer` gives it with ``wkb=True`` (an Arrow WKB column)."""
    wkb = pa.array(shapely.to_wkb(frame.geometry.values), pa.binary())
    return pd.DataFrame({**{c: frame[c] for c in frame.columns if c != "geometry"},
                         "geometry": pd.arrays.ArrowExtensionArray(wkb)})


HOLED = box(-10, -10, -1, 10).difference(box(-8, -5, -3, 5))  # a permit with a hole, beside the parcel
TWO_PARTS = shapely.MultiPolygon([box(21, 12, 24, 15), box(21, 16, 24, 19)])  # a permit of two polygons
FEB = ("2024-02-01", "2024-03-01")
WARDS = layer("ward_key ward_code name valid_from valid_to",
              ("W1-1", "W1", "Một", "2000-01-01", None, box(-1000, -1000, 1000, 1000)),
              ("W2-1", "W2", "Hai", "2000-01-01", None, box(1000, -1000, 2000, 1000)))


def layers():
    """A dossier with permits of every shape beside it (plain, two polygons, holed) and clashing permits (one
    clash cut by a hole), a dossier declared in the wrong ward with a holed parcel, two wards."""
    cons = layer("dossier_code ward_code received_on issued_on",
                 ("XD-1", "W1", "2024-01-01", "2024-01-10", box(0, 0, 20, 20)),
                 ("XD-2", "W2", "2024-01-01", None, box(100, 100, 120, 120).difference(box(105, 105, 110, 110))))
    side = layer("permit_no ward_code start_on end_on sidewalk_width_m used_width_m construction_dossier_code",
                 ("VH-1", "W1", *FEB, 2.0, 1.0, None, box(21, 0, 24, 10)),
                 ("VH-2", "W1", *FEB, 4.0, 1.0, "XD-1", TWO_PARTS),
                 ("VH-3", "W1", *FEB, 2.0, 1.0, None, HOLED),
                 ("VH-4", "W1", "2024-02-10", "2024-02-20", 4.0, 1.0, None, box(22, 5, 26, 12)),
                 ("VH-5", "W1", "2024-02-15", "2024-04-01", 4.0, 1.0, None, box(-9, -9, -2, 0)),
                 ("VH-6", "W1", "2024-05-15", "2024-06-01", 4.0, 1.0, None, box(-9, 1, -2, 9)))
    return cons, side, WARDS


def test_the_rows_are_the_findings_with_the_bytes_the_stores_write():
    cons, side, wards = layers()
    objects = find_overlaps(cons, side, wards)
    wkb = find_overlaps(as_wkb(cons), as_wkb(side), wards)  # the permits' MultiPolygons from their WKB
    found = objects.findings
    assert set(found["kind"]) == {"MERGE_CANDIDATE", "LINKED", "CLASH", "OPPORTUNITY", "CLEARANCE", "WARD_MISMATCH"}
    parts = shapely.get_parts(found.geometry.values)
    assert (shapely.get_num_interior_rings(parts) > 0).any() and (shapely.get_num_geometries(found.geometry) == 2).any()
    for result in (objects, wkb):
        rows = result.rows
        assert list(rows.columns) == [*schema.FINDINGS.field_names, "geometry"]
        assert all(rows[f.name].dtype == schema.TEXT_DTYPE for f in schema.FINDINGS.fields if f.type == "text")
        # the stored bytes of the objects (what the stores wrote of them before), and the objects themselves
        stored = shapely.to_wkb(geo.polygonal_parts(found.geometry.values), byte_order=1).tolist()
        assert derive.wkb_array(rows["geometry"].array).to_pylist() == stored
        assert derive.multipolygon_wkb(rows["geometry"].array).to_pylist() == stored
        pd.testing.assert_frame_equal(pd.DataFrame(result.findings), pd.DataFrame(found))
        assert (shapely.get_type_id(result.findings.geometry.values) == 6).all()
    pd.testing.assert_frame_equal(wkb.rows, objects.rows)
    assert found.dtypes.to_dict() == empty_findings().dtypes.to_dict()
    assert found["b_id"].map(type).isin([str, type(None)]).all() and found["b_id"].isna().any()


def test_no_findings_are_empty_rows():
    cons, side, wards = layers()
    result = find_overlaps(cons.iloc[:0], side.iloc[:0], wards)
    assert result.rows.empty and list(result.rows.columns) == [*schema.FINDINGS.field_names, "geometry"]
    assert result.findings.empty and result.findings.dtypes.to_dict() == empty_findings().dtypes.to_dict()


def stored(store) -> dict:
    """Every stored value of the findings layer by finding id (hidden columns, geometry bytes, row hashes), its
    R-tree or extent and count, and the change log without its times."""
    if isinstance(store, PostGISStore):
        with store.connection() as con:
            cols = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE "
                                              "table_name = 'findings' ORDER BY ordinal_position")]
            rows = con.execute(f"SELECT {', '.join('ST_AsEWKB(geom)' if c == 'geom' else c for c in cols)} "
                               "FROM findings ORDER BY finding_id").fetchall()
            order = con.execute("SELECT finding_id FROM findings ORDER BY ctid").fetchall()
            extent = con.execute("SELECT count, minx, miny, maxx, maxy FROM gisapp_layers "
                                 "WHERE name = 'findings'").fetchall()
            log = con.execute("SELECT layer, key, kind, status, minx, miny, maxx, maxy FROM gisapp_changes "
                              "ORDER BY seq").fetchall()
        assert "row_hash" in cols
        return {"columns": cols, "rows": rows, "order": order, "extent": extent, "log": log}
    with contextlib.closing(sqlite3.connect(store.path)) as con:
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{F}")')]
        rows = con.execute(f'SELECT * FROM "{F}" ORDER BY finding_id').fetchall()
        rtree = con.execute(f'SELECT f.finding_id, r.minx, r.miny, r.maxx, r.maxy FROM "{F}" f '
                            f"JOIN rtree_{F}_geom r ON r.id = f.fid ORDER BY f.finding_id").fetchall()
        extent = con.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = ?",
                             [F]).fetchall()
        log = con.execute("SELECT layer, key, kind, status, minx, miny, maxx, maxy FROM gisapp_changes "
                          "ORDER BY seq").fetchall()
    return {"columns": cols, "rows": rows, "rtree": rtree, "extent": extent, "log": log}


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_are_stored_as_the_findings_were(backend, tmp_path, request, monkeypatch):
    """A whole layer, then a replace changing a few rows (logged one by one), then an upsert, then no findings:
    the rows and the objects leave the same store."""
    monkeypatch.setattr(base, "REPLACE_DETAIL_MAX", 3)  # a few changed findings: a patch, logged with boxes
    cons, side, wards = layers()
    first = find_overlaps(as_wkb(cons), as_wkb(side), wards, AnalysisParams(gap_days=30))
    later = find_overlaps(as_wkb(cons), as_wkb(side), wards)
    assert len(later.rows) == len(first.rows) + 1
    one = later.rows[later.rows["kind"] == "OPPORTUNITY"].reset_index(drop=True)
    stores = {how: new_store(backend, tmp_path / how, request) for how in ("objects", "rows")}
    for how, store in stores.items():
        (tmp_path / how).mkdir()
        for result in (first, later):
            store.write({F: result.findings if how == "objects" else result.rows}, mode="replace")
        store.write({F: (later.findings[later.findings["kind"] == "OPPORTUNITY"].reset_index(drop=True)
                         if how == "objects" else one)}, mode="upsert")
    assert stored(stores["rows"]) == stored(stores["objects"])
    assert len(stored(stores["rows"])["rows"]) == len(later.rows)
    for how, store in stores.items():
        store.write({F: empty_findings() if how == "objects" else first.rows.iloc[:0]}, mode="replace")
    assert stored(stores["rows"]) == stored(stores["objects"]) and not stored(stores["rows"])["rows"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_analysis_stores_unpermitted_findings_as_before(backend, tmp_path, request):
    """An inspection's UNPERMITTED finding (a Polygon) joins the rows: the objects as ``with_unpermitted`` gave
    them before (the Polygon as it is), the rows stored as they are."""
    cons, side, wards = layers()
    stores = {how: new_store(backend, tmp_path / how, request) for how in ("objects", "rows")}
    occupancy = box(30, 30, 34, 33)
    seen = Inspection("KT-1", None, None, "insp1", dt.datetime(2024, 3, 1, 9, 0), "OCCUPANCY_CHECK", "FAILED", "",
                      shapely.Point(547_032.0, 1_770_031.0), occupancy, "W1", ())
    for how, store in stores.items():
        (tmp_path / how).mkdir()
        store.write({"construction_permits": cons, "sidewalk_permits": side, "wards": wards})
        store.add_inspection(seen, [], findings=inspections.unpermitted_findings([seen]))
    results = {how: analyze_store(store, AnalysisParams())[0] for how, store in stores.items()}
    for how, store in stores.items():
        result = results[how]
        store.write({F: result.findings if how == "objects" else result.rows}, mode="replace")
    result = results["rows"]
    computed = find_overlaps(cons, side, wards)
    assert list(result.rows["kind"]) == [*computed.rows["kind"], "UNPERMITTED"]
    mine = result.findings.iloc[-1]
    assert mine["finding_id"] == "UP-KT-1" and mine.geometry.geom_type == "Polygon" and mine.geometry.equals(occupancy)
    pd.testing.assert_frame_equal(result.findings.iloc[:-1], computed.findings)
    assert stored(stores["rows"]) == stored(stores["objects"])


def test_wkb_multipolygons_are_the_objects_multipolygon_wkb():
    geoms = np.array([box(0, 0, 1, 1), TWO_PARTS, HOLED, None, shapely.Polygon(), shapely.MultiPolygon(),
                      shapely.Polygon([(0, 0, 1), (1, 0, 1), (1, 1, 2), (0, 0, 1)])], dtype=object)
    for order in (0, 1):  # big-endian WKB goes through shapely
        wkb = pa.array(shapely.to_wkb(geoms, byte_order=order), pa.binary(), from_pandas=True)
        assert derive.multipolygon_wkb(wkb).to_pylist() == derive.multipolygon_wkb(geoms).to_pylist()
        assert np.array_equal(derive.geometry_bounds(wkb), shapely.bounds(geoms), equal_nan=True)
    frame = gpd.GeoDataFrame({"x": range(len(geoms))}, geometry=geoms, crs="EPSG:5899")
    assert not derive.is_wkb(frame.geometry.values) and derive.is_wkb(pd.arrays.ArrowExtensionArray(wkb))
