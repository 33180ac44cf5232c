"""PostGIS items pages: the bbox clause (inner rectangle without the GEOS test) matches
exactly what ``ST_Intersects`` with the box's image matches, and rows are stored in
spatial (Hilbert) order.  Fresh databases on the private server of ``tests/pg_server.py``.
"""

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gisapp import geo, schema
from gisapp.filters import Filter
from gisapp.formats import geojson
from gisapp.store import postgis
from gisapp.store.gpkg import GeoPackageStore
from gisapp.store.postgis import PostGISStore

pytestmark = pytest.mark.postgis

#: Street-view boxes (WGS84) around Cẩm Lệ, Đà Nẵng, as the map asks for them.
VIEW = (108.1990, 16.0050, 108.2095, 16.0130)
SMALL = (108.2030, 16.0080, 108.2040, 16.0088)


def _image(bbox):
    return geo.bbox_polygon(bbox)


def test_inner_box_is_inside_the_image_by_more_than_float32_rounding():
    for bbox in (VIEW, SMALL, (108.0, 15.9, 108.4, 16.2), (-180.0, -90.0, 180.0, 90.0)):
        polygon = _image(bbox)
        rect = postgis._inner_box(bbox, polygon)
        assert rect is not None, bbox
        x1, y1, x2, y2 = rect
        assert x1 < x2 and y1 < y2
        # PostGIS rounds boxes outwards to float32: the rectangle grown by a few float32 steps is still inside
        step = float(np.spacing(np.float32(max(map(abs, polygon.bounds)))))
        grown = shapely.box(x1 - 4 * step, y1 - 4 * step, x2 + 4 * step, y2 + 4 * step)
        assert polygon.contains(grown), bbox
        # and it covers most of a street view (what saves the GEOS tests)
        if bbox in (VIEW, SMALL):
            assert shapely.box(*rect).area > 0.95 * polygon.area


def test_no_inner_box_for_tiny_or_empty_boxes():
    point = (108.2035, 16.0085, 108.2035, 16.0085)
    assert postgis._inner_box(point, _image(point)) is None
    tiny = (108.2035, 16.0085, 108.20350001, 16.00850001)  # ~1 mm: less than the margin
    assert postgis._inner_box(tiny, _image(tiny)) is None
    outside = (0.0, 0.0, 1.0, 1.0)  # nowhere near EPSG:5899's area: an empty image
    assert _image(outside).is_empty and postgis._inner_box(outside, _image(outside)) is None
    where, params = PostGISStore.__new__(PostGISStore).where(schema.CONSTRUCTION_PERMITS, Filter(bbox=point))
    assert where == " WHERE ST_Intersects(geom, %s::geometry)" and len(params) == 1


def _edge_lots(bbox, rng) -> gpd.GeoDataFrame:
    """Small lots on, just inside and just outside the image of ``bbox`` and of its inner rectangle."""
    polygon = _image(bbox)
    rect = postgis._inner_box(bbox, polygon)
    geoms = []
    ring = polygon.exterior
    for t in np.linspace(0, 1, 160, endpoint=False):
        p = ring.interpolate(t, normalized=True)
        for d in (-0.3, -0.02, -0.001, 0.0, 0.001, 0.02, 0.3):  # outwards < 0 < inwards, by shifting to the centre
            c = polygon.centroid
            v = np.array([c.x - p.x, c.y - p.y])
            v /= np.hypot(*v)
            x, y = p.x + d * v[0], p.y + d * v[1]
            s = 0.005 + rng.random() * 0.05
            geoms.append(shapely.box(x - s, y - s, x + s, y + s) if d else shapely.box(x, y, x + s, y + s))
    x1, y1, x2, y2 = rect
    for x, y in [(x1, y1), (x2, y2), (x1, y2), (x2, y1), ((x1 + x2) / 2, y1), (x1, (y1 + y2) / 2)]:
        for dx in (-0.2, -0.01, 0.0, 0.01, 0.2):
            geoms.append(shapely.box(x + dx - 0.1, y + dx - 0.1, x + dx + 0.1, y + dx + 0.1))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    geoms.append(shapely.box(cx, cy, cx + 8, cy + 15))  # well inside
    bx1, by1, bx2, _ = polygon.bounds
    geoms.append(shapely.LineString([(cx, cy), (bx2 + 50, cy)]).buffer(0.05))  # from inside to outside
    geoms.append(shapely.box(bx1 - 30, by1 - 30, bx1 - 20, by1 - 20))  # outside, its box too
    n = len(geoms)
    return gpd.GeoDataFrame({"dossier_code": [f"XD-{i:05d}" for i in range(n)], "status": ["RECEIVED"] * n},
                            geometry=geoms, crs=schema.STORE_CRS)


@pytest.mark.parametrize("bbox", [VIEW, SMALL])
def test_bbox_matches_exactly_what_intersects_the_image(pg_url, bbox):
    lots = _edge_lots(bbox, np.random.default_rng(5))
    store = PostGISStore(pg_url, must_exist=False)
    store.write({"construction_permits": lots})
    polygon = _image(bbox)
    want = sorted(lots["dossier_code"][shapely.intersects(lots.geometry.values, polygon)])
    assert 0 < len(want) < len(lots)
    flt = Filter(bbox=bbox)
    assert "CASE WHEN geom @" in store.where(schema.CONSTRUCTION_PERMITS, flt)[0]
    assert store.count("construction_permits", flt) == len(want)
    assert store.read("construction_permits", flt)["dossier_code"].tolist() == want
    page = store.page("construction_permits", flt, fields=["status"], limit=len(want) + 5)
    assert [r[0] for r in page.rows] == want and page.matched == len(want)
    full = store.page("construction_permits", flt, fields=["status"], limit=7, offset=3)  # full page: counted
    assert [r[0] for r in full.rows] == want[3:10] and full.matched == len(want)


def test_pages_are_the_same_as_the_geopackage_stores(pg_url, tmp_path):
    lots = _edge_lots(VIEW, np.random.default_rng(9))
    lots["received_on"] = "2024-02-29"
    lots["floors"] = np.arange(len(lots)) % 5
    lots.loc[3, "geometry"] = None
    pg = PostGISStore(pg_url, must_exist=False)
    gp = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    for s in (pg, gp):
        s.write({"construction_permits": lots})
    fields = ["status", "received_on", "floors"]
    for flt, limit, offset in [(Filter(bbox=VIEW), 50, 0), (Filter(bbox=VIEW), 50, 100), (None, 2000, 0),
                               (Filter(bbox=SMALL), 10, 0)]:
        a = pg.page("construction_permits", flt, fields=fields, limit=limit, offset=offset)
        b = gp.page("construction_permits", flt, fields=fields, limit=limit, offset=offset)
        assert a.matched == b.matched
        assert geojson.rows_collection(a.rows, fields) == geojson.rows_collection(b.rows, fields)
        assert all(type(r) is tuple and isinstance(r[-1], str) for r in a.rows)  # psycopg's rows as they come


def test_spatial_order_is_the_hilbert_curve_with_missing_last():
    rng = np.random.default_rng(3)
    boxes = shapely.box(*(rng.random((4, 300)) * 1000 + [[0], [0], [1000], [1000]]))
    geoms = np.concatenate([boxes[:100], [None, shapely.Polygon()], boxes[100:]])
    order = postgis._spatial_order(geoms)
    assert sorted(order) == list(range(len(geoms)))
    assert list(order[-2:]) == [100, 101]
    present = np.delete(geoms, [100, 101])
    want = np.argsort(gpd.GeoSeries(present).hilbert_distance(), kind="stable")
    assert np.array_equal(np.delete(np.arange(len(geoms)), [100, 101])[want], order[:-2])
    # what the order is for: rows next to each other are near each other on the map
    centres = shapely.centroid(geoms[order[:-2]])
    step = shapely.distance(centres[1:], centres[:-1]).mean()
    shuffled = shapely.centroid(present)
    assert step < shapely.distance(shuffled[1:], shuffled[:-1]).mean() / 5
    assert list(postgis._spatial_order(np.array([None, None], dtype=object))) == [0, 1]
    assert list(postgis._spatial_order(np.array([shapely.box(0, 0, 1, 1)] * 3, dtype=object))) == [0, 1, 2]


def test_rows_are_stored_in_spatial_order(pg_url):
    rng = np.random.default_rng(11)
    n = 500
    x, y = 547600 + rng.random(n) * 800, 1770400 + rng.random(n) * 600
    lots = gpd.GeoDataFrame({"dossier_code": [f"XD-{i:04d}" for i in range(n)]},
                            geometry=shapely.box(x, y, x + 6, y + 12), crs=schema.STORE_CRS)
    store = PostGISStore(pg_url, must_exist=False)
    store.write({"construction_permits": lots})
    with store.connection() as con:
        stored = [r[0] for r in con.execute("SELECT dossier_code FROM construction_permits ORDER BY ctid")]
    assert stored == lots["dossier_code"].to_numpy()[postgis._spatial_order(lots.geometry.values)].tolist()
    assert store.read("construction_permits")["dossier_code"].tolist() == sorted(stored)  # reads: key order
