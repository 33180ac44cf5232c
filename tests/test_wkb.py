"""The one WKB reader (gisapp.formats.wkb) and its two consumers: the tile encoder and the GeoJSON writer."""

from __future__ import annotations

import sqlite3

import geopandas as gpd
import numpy as np
import orjson
import pyarrow as pa
import pyogrio
import pytest
import shapely

from gisapp import geo, schema
from gisapp.formats import geojson
from gisapp.formats.wkb import polygons_of, read_polygons
from gisapp.tiles import mvt

X, Y = 547963.0, 1770737.0  # Cẩm Lệ, EPSG:5899


def box(x, y, w=20.0, h=30.0):
    return shapely.box(X + x, Y + y, X + x + w, Y + y + h)


def hole(x, y):
    return box(x + 5, y + 5, 4, 4)


#: What stores hold and what they might: (name, geometry, the blob's kind).
SHAPES = [
    ("polygon with a hole", box(0, 0).difference(hole(0, 0)), "le"),
    ("multipolygon with holes", shapely.MultiPolygon([box(40, 0).difference(hole(40, 0)),
                                                      box(70, 0).difference(hole(70, 0).union(hole(70, 12)))]), "le"),
    ("clockwise polygon", shapely.Polygon(list(box(100, 0).exterior.coords)[::-1]), "le"),
    ("empty multipolygon", shapely.MultiPolygon(), "le"),
    ("missing", None, "le"),
    ("big-endian multipolygon with a hole", shapely.MultiPolygon([box(130, 0).difference(hole(130, 0))]), "be"),
    ("3-D polygon with a hole", shapely.force_3d(box(160, 0).difference(hole(160, 0)), 12.5), "le"),
    ("single-ring multipolygon", shapely.MultiPolygon([box(190, 0)]), "le"),
]


def blob(geom, kind: str) -> bytes | None:
    return None if geom is None else shapely.to_wkb(geom, byte_order=0 if kind == "be" else 1)


def plain_blob(geom) -> bytes | None:
    """The same geometry as little-endian 2-D WKB: what the fast path reads."""
    return None if geom is None else shapely.to_wkb(shapely.force_2d(geom), byte_order=1)


@pytest.fixture
def blobs():
    return [blob(g, kind) for _, g, kind in SHAPES]


def test_reader_reads_what_shapely_reads(blobs):
    polys = read_polygons(blobs)
    want = polygons_of(shapely.from_wkb(blobs))
    for name in ("xy", "ring_offsets", "polygon_offsets", "feature_offsets", "multi", "other"):
        assert np.array_equal(getattr(polys, name), getattr(want, name)), name
    assert list(polys.fallback) == [5, 6]  # big-endian and 3-D: through shapely, in their place
    assert len(polys) == len(SHAPES)
    assert list(np.diff(polys.feature_offsets)) == [1, 2, 1, 0, 0, 1, 1, 1]
    assert polys.multi.tolist() == [False, True, False, True, False, True, False, True]
    assert np.array_equal(read_polygons([plain_blob(g) for _, g, _ in SHAPES]).xy, polys.xy)
    assert read_polygons([plain_blob(g) for _, g, _ in SHAPES]).fallback.tolist() == []


def test_both_consumers_read_the_same_coordinates(blobs):
    polys = read_polygons(blobs)
    rings = mvt.wkb_rings(blobs)  # what the tile encoder encodes
    assert np.array_equal(rings.xy, polys.xy) and list(rings.n) == list(np.diff(polys.ring_offsets))
    assert list(rings.feat) == list(polys.ring_features()) and list(rings.ext) == list(polys.exterior())
    texts = geojson.geometry_json(pa.array(blobs, pa.binary()))  # what API pages and exports serve
    lon, lat = geo.transformer(schema.STORE_CRS, schema.WEB_CRS).transform(polys.xy[:, 0], polys.xy[:, 1])
    web = np.round(np.column_stack([lon, lat]), geojson.PRECISION)
    point_feature = np.repeat(polys.ring_features(), np.diff(polys.ring_offsets))
    for i, ((name, geom, _), text) in enumerate(zip(SHAPES, texts, strict=True)):
        if geom is None or geom.is_empty:
            assert text == "null", name
            continue
        coords = orjson.loads(text)["coordinates"]
        flat = np.array([pt for ring in _rings_of(coords) for pt in ring])
        assert sorted(map(tuple, flat)) == sorted(map(tuple, web[point_feature == i])), name


def _rings_of(coords):
    """The rings of GeoJSON (Multi)Polygon coordinates."""
    return [r for p in coords for r in p] if isinstance(coords[0][0][0], list) else list(coords)


def test_fallback_blobs_give_the_bytes_of_the_fast_path(blobs):
    """A big-endian or 3-D blob gives the tile and the GeoJSON of the same polygon in little-endian 2-D WKB."""
    plain = [plain_blob(g) for _, g, _ in SHAPES]
    assert geojson.geometry_json(pa.array(blobs, pa.binary())) == geojson.geometry_json(pa.array(plain, pa.binary()))
    for name, geom, kind in SHAPES:  # and alone, whatever its neighbours
        if geom is not None:
            assert geojson.geometry_json(pa.array([blob(geom, kind)], pa.binary())) == \
                geojson.geometry_json(pa.array([plain_blob(geom)], pa.binary())), name
    lon, lat = geo.transform([box(60, 10)], schema.STORE_CRS, schema.WEB_CRS)[0].centroid.coords[0]
    for z in (15, 16, 17):
        x, y = mvt.tile_at(lon, lat, z)
        keys = {"key": [name for name, _, _ in SHAPES]}
        tile = mvt.render("permits", blobs, keys, z, x, y)
        assert tile and tile == mvt.render("permits", plain, keys, z, x, y), z


def test_other_geometries_go_to_shapely():
    point, line = shapely.Point(X, Y), shapely.LineString([(X, Y), (X + 5, Y + 5)])
    collection = shapely.GeometryCollection([box(0, 0), point])
    blobs = [shapely.to_wkb(g) for g in (point, line, collection, box(0, 0))]
    polys = read_polygons(blobs)
    assert polys.other.tolist() == [True, True, True, False]
    assert list(np.diff(polys.feature_offsets)) == [0, 0, 1, 1]  # a collection's polygons are read
    texts = geojson.geometry_json(pa.array(blobs, pa.binary()))
    assert [orjson.loads(t)["type"] for t in texts] == ["Point", "LineString", "GeometryCollection", "Polygon"]
    assert texts[:3] == [shapely.to_geojson(g) for g in geojson.web_geometries([point, line, collection])]


def test_geopackage_blobs_as_gdal_writes_them(tmp_path, blobs):
    """Blobs with GeoPackage headers (envelopes, the empty flag) read as their WKB does."""
    geoms = shapely.from_wkb(blobs)
    path = tmp_path / "mixed.gpkg"
    frame = gpd.GeoDataFrame({"name": [name for name, _, _ in SHAPES]}, geometry=geoms, crs=schema.STORE_CRS)
    pyogrio.write_dataframe(frame, path, layer="mixed", driver="GPKG", geometry_type="Unknown",
                             promote_to_multi=False)
    with sqlite3.connect(path) as con:
        stored = [r[0] for r in con.execute("SELECT geom FROM mixed ORDER BY fid")]
    assert stored[3] is not None and stored[3][3] & 0x10  # the empty multipolygon: flagged empty
    polys = read_polygons(stored, gpkg=True)
    want = read_polygons([plain_blob(g) for g in geoms])
    for name in ("xy", "ring_offsets", "polygon_offsets", "feature_offsets"):
        assert np.array_equal(getattr(polys, name), getattr(want, name)), name
    assert polys.multi.tolist() == [*want.multi[:3], False, *want.multi[4:]]  # flagged empty: as missing
    assert polys.fallback.tolist() == [6]  # the 3-D one (GDAL writes the big-endian one little-endian)


@pytest.mark.parametrize("cut", [1, 5, 9, 13, 30, -8, -1])
def test_truncated_wkb_is_shapely_error_not_a_crash(cut):
    good = shapely.to_wkb(SHAPES[1][1])
    with pytest.raises(shapely.errors.GEOSException):
        read_polygons([good, good[:cut], good])


def test_no_blobs_and_only_missing_ones():
    assert len(read_polygons([])) == 0
    polys = read_polygons([None, None])
    assert len(polys) == 2 and len(polys.xy) == 0 and list(polys.feature_offsets) == [0, 0, 0]
    assert geojson.geometry_json(pa.array([None, None], pa.binary())) == ["null", "null"]
