"""Vector tiles: the grid, the encoder (read back by independent decoders), both stores, the views, GDAL.

Decoders: the ``mapbox-vector-tile`` package and GDAL's MVT driver (``ogrinfo``);
neither shares code with :mod:`gisapp.tiles.mvt`.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
import subprocess

import mapbox_vector_tile
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import shape

from gisapp import geo
from gisapp.analysis import overlaps as analysis
from gisapp.filters import Filter
from gisapp.schema import LAYERS, STORE_CRS
from gisapp.tiles import mvt as tiles
from gisapp.tiles import source as tile_source
from gisapp.web.app import create_app
from tests.browser_util import live_server
from tests.helpers import decode
from tests.stores import BACKENDS, new_store

TILE_LAYERS = list(tiles.TILE_FIELDS)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    """The XYZ tile holding a WGS84 point."""
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def to_tile_units(geoms3857, z, x, y) -> np.ndarray:
    minx, _, maxx, maxy = tiles.tile_bounds(z, x, y)
    s = tiles.EXTENT / (maxx - minx)
    return shapely.transform(np.asarray(geoms3857, dtype=object),
                             lambda c: np.column_stack([(c[:, 0] - minx) * s, (maxy - c[:, 1]) * s]))


def expected_keys(store, layer: str, flt: Filter | None, z, x, y) -> tuple[set, set]:
    """Keys of the filtered features that meet the buffered tile: (all of them, those a tile may drop).

    A feature may be left out only when what falls in the buffered tile is a
    sliver of less than one square tile unit (it collapses when rounded).
    """
    frame = store.read(layer, flt)
    units = to_tile_units(geo.transform(frame.geometry.values, STORE_CRS, tiles.MERCATOR_CRS), z, x, y)
    box = shapely.box(-tiles.BUFFER, -tiles.BUFFER, tiles.EXTENT + tiles.BUFFER, tiles.EXTENT + tiles.BUFFER)
    meets = shapely.intersects(units, box)
    sliver = shapely.area(shapely.intersection(units, box)) < 1.0
    keys = frame[LAYERS[layer].key].to_numpy()
    return set(keys[meets]), set(keys[meets & sliver])


# -- data and stores -------------------------------------------------------------------

@pytest.fixture(scope="module")
def frames(demo_frames):
    """The demo layers with the findings of the overlap analysis."""
    base, meta = demo_frames
    params = analysis.AnalysisParams(as_of=dt.date.fromisoformat(meta["as_of"]))
    result = analysis.find_overlaps(base["construction_permits"], base["sidewalk_permits"], base["wards"], params)
    assert len(result.findings) > 10
    return {**base, "findings": result.findings}, meta


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, frames, tmp_path_factory):
    s = new_store(request.param, tmp_path_factory.mktemp("tiles"), request)
    s.write(frames[0], meta=frames[1])
    return s


@pytest.fixture(scope="module")
def busiest(frames):
    """Per layer: the tiles at z14, z16 and z17 holding most feature centres."""
    out = {}
    for layer in TILE_LAYERS:
        pts = geo.transform(shapely.centroid(frames[0][layer].geometry.values), STORE_CRS, "EPSG:4326")
        lon, lat = shapely.get_x(pts), shapely.get_y(pts)
        picks = []
        for z in (14, 16, 17):
            addresses = [tile_of(a, b, z) for a, b in zip(lon, lat)]
            values, counts = np.unique(np.array(addresses), axis=0, return_counts=True)
            picks.append(tuple(int(v) for v in values[np.argmax(counts)]))
        out[layer] = picks
    return out


# -- the grid ----------------------------------------------------------------------------

def test_tile_bounds_cover_the_world_and_nest():
    h = tiles.HALF_WORLD
    assert tiles.tile_bounds(0, 0, 0) == pytest.approx((-h, -h, h, h))
    assert tiles.tile_bounds(1, 0, 0) == pytest.approx((-h, 0, 0, h))  # XYZ: y = 0 is the north
    assert tiles.tile_bounds(1, 1, 1) == pytest.approx((0, -h, h, 0))
    a = tiles.tile_bounds(15, 26234, 14906)
    kids = [tiles.tile_bounds(16, 2 * 26234 + i, 2 * 14906 + j) for i in (0, 1) for j in (0, 1)]
    assert min(k[0] for k in kids) == pytest.approx(a[0]) and max(k[3] for k in kids) == pytest.approx(a[3])
    assert tiles.tile_bounds(2, 1, 1, buffer=tiles.EXTENT)[0] == pytest.approx(-h)


@pytest.mark.parametrize("z", [0, 14, 17])
def test_the_tile_at_a_point_holds_it(z):
    for lon, lat in [(108.2, 16.02), (-179.99, 85.0), (179.99, -85.0), (0.0, 0.0), (108.21, 89.9)]:
        x, y = tiles.tile_at(lon, lat, z)
        minlon, minlat, maxlon, maxlat = tiles.lonlat_bounds(z, x, y)
        clamped = min(lat, 85.0511287798)  # the grid ends there
        assert minlon <= lon < maxlon and minlat <= clamped <= maxlat
        assert (x, y) == tile_of(lon, clamped, z)[1:]


def test_lonlat_bounds_agree_with_proj():
    lon1, lat1, lon2, lat2 = tiles.lonlat_bounds(16, 52469, 29813)
    x1, y1, x2, y2 = tiles.tile_bounds(16, 52469, 29813)
    t = geo.transformer("EPSG:4326", tiles.MERCATOR_CRS)
    assert t.transform(lon1, lat1) == pytest.approx((x1, y1), abs=1e-6)
    assert t.transform(lon2, lat2) == pytest.approx((x2, y2), abs=1e-6)


@pytest.mark.parametrize(("z", "x", "y", "param", "message"), [
    ("a", 0, 0, "z", "not a whole number"),
    (23, 0, 0, "z", "zoom 0 to 22"),
    (-1, 0, 0, "z", "not a whole number"),
    (3, 8, 0, "x", "0 to 7"),
    (3, 0, 8, "y", "0 to 7"),
    (16, "1.5", 0, "x", "not a whole number"),
    (16, 0, "٣", "y", "not a whole number"),
])
def test_bad_tile_addresses_name_the_parameter(z, x, y, param, message):
    with pytest.raises(tiles.TileError, match=re.escape(message)) as err:
        tiles.check_tile(z, x, y)
    assert err.value.param == param and str(err.value).startswith(f"{param}: ")


def test_minimum_zoom_is_checked_when_asked():
    assert tiles.check_tile("13", "1", "2") == (13, 1, 2)
    with pytest.raises(tiles.TileError, match="below the minimum zoom 14"):
        tiles.check_tile(13, 1, 2, min_zoom=tiles.MIN_ZOOM)


def test_interpolated_projection_is_within_a_thousandth_of_a_unit_of_proj():
    rng = np.random.default_rng(5)
    for z, x, y in [(14, 13116, 7452), (17, 104937, 59626), (20, 839500, 477010)]:
        box = tiles.store_box(z, x, y)
        xy = np.column_stack([rng.uniform(box[0], box[2], 2000), rng.uniform(box[1], box[3], 2000)])
        mx, my = geo.transformer(STORE_CRS, tiles.MERCATOR_CRS).transform(xy[:, 0], xy[:, 1])
        exact = shapely.get_coordinates(to_tile_units(shapely.points(np.column_stack([mx, my])), z, x, y))
        assert np.abs(tiles.projector(z, x, y)(xy) - exact).max() < 1e-3


@pytest.mark.parametrize("z", [13, 14, 17, 20])
def test_affine_map_per_tile_is_close_to_proj(z):
    x, y = 104937 >> (17 - z) if z <= 17 else 104937 << (z - 17), 59626 >> (17 - z) if z <= 17 else 59626 << (z - 17)
    (a, b, d, e, xoff, yoff), error = tiles.mercator_affine(z, x, y)
    assert error < 0.25 * 2 ** (14 - z) + 1e-3
    box = tiles.store_box(z, x, y)
    rng = np.random.default_rng(z)
    px, py = rng.uniform(box[0], box[2], 500), rng.uniform(box[1], box[3], 500)
    mx, my = geo.transformer(STORE_CRS, tiles.MERCATOR_CRS).transform(px, py)
    unit = (tiles.tile_bounds(z, x, y)[2] - tiles.tile_bounds(z, x, y)[0]) / tiles.EXTENT
    assert np.hypot(a * px + b * py + xoff - mx, d * px + e * py + yoff - my).max() / unit <= error * 1.5


# -- the encoder, read back by mapbox-vector-tile -----------------------------------------------

def test_encoder_output_decodes_to_the_same_polygons():
    bounds = (0.0, 0.0, 4096.0, 4096.0)  # tile units = map units, y up in the map
    donut = shapely.box(100, 100, 400, 400).difference(shapely.box(200, 200, 300, 300))
    two = shapely.MultiPolygon([shapely.box(1000, 1000, 1100, 1200), shapely.box(1200, 1000, 1300, 1200)])
    edge = shapely.box(4000, 2000, 4500, 2100)  # crosses the right edge: clipped at 4096 + 64
    far = shapely.box(9000, 9000, 9100, 9100)  # outside the buffer: left out
    tiny = shapely.box(3000, 3000, 3000.2, 3000.2)  # rounds to a point: left out
    cw = shapely.Polygon([(500, 500), (500, 600), (600, 600), (600, 500)])  # either winding is accepted
    geoms = np.array([donut, two, edge, far, tiny, cw, None], dtype=object)
    columns = {"key": ["donut", "two", "edge", "far", "tiny", "cw", "none"],
               "name": ["Hòa Xuân", None, "Cẩm Lệ", "x", "y", "z", "w"],
               "on": [dt.date(2022, 1, 3), None, None, None, None, None, None]}
    body = tiles.encode_polygons("test", geoms, columns, bounds)
    layer = mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})["test"]
    got = {f["properties"]["key"]: f for f in layer["features"]}
    assert set(got) == {"donut", "two", "edge", "cw"}
    assert got["donut"]["properties"] == {"key": "donut", "name": "Hòa Xuân", "on": "2022-01-03"}
    assert got["two"]["properties"] == {"key": "two"}  # nulls are left out

    def flip(g):
        return shapely.transform(g, lambda c: np.column_stack([c[:, 0], 4096 - c[:, 1]]))

    for key, source in [("donut", donut), ("two", two), ("cw", cw),
                        ("edge", shapely.box(4000, 2000, 4096 + 64, 2100))]:
        decoded = flip(shape(got[key]["geometry"]))
        assert decoded.equals(source), (key, decoded)
    assert got["two"]["geometry"]["type"] == "MultiPolygon"


def test_rings_are_wound_as_the_specification_says():
    donut = shapely.box(100, 100, 400, 400).difference(shapely.box(200, 200, 300, 300))
    for g in (donut, donut.reverse()):
        body = tiles.encode_polygons("t", [g], {"k": ["a"]}, (0, 0, 4096, 4096))
        layer = mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})["t"]
        exterior, hole = layer["features"][0]["geometry"]["coordinates"]
        # surveyor's formula in tile coordinates (y down): exteriors positive, holes negative

        def area(ring):
            return sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(ring, ring[1:] + ring[:1]))

        assert area(exterior) > 0 > area(hole)


def test_encoder_handles_many_values_and_large_coordinates():
    rng = np.random.default_rng(2)
    n = 3000
    x, y = rng.uniform(-60, 4150, n), rng.uniform(-60, 4150, n)
    geoms = shapely.box(x, y, x + rng.uniform(2, 40, n), y + rng.uniform(2, 40, n))
    keys = [f"k{i}" for i in range(n)]
    body = tiles.encode_polygons("t", geoms, {"key": keys, "group": [str(i % 300) for i in range(n)]},
                                 (0, 0, 4096, 4096))
    got = decode_plain(body, "t")
    clip = shapely.box(-64, -64, 4160, 4160)
    inside = shapely.area(shapely.intersection(geoms, clip)) >= 1.0
    assert set(got) == {k for k, keep in zip(keys, inside) if keep}
    for i in range(0, n, 97):
        if keys[i] in got:
            source = shapely.intersection(geoms[i], clip)
            flipped = shapely.transform(got[keys[i]], lambda c: np.column_stack([c[:, 0], 4096 - c[:, 1]]))
            assert shapely.hausdorff_distance(flipped, source) <= 1.0


def decode_plain(body: bytes, name: str) -> dict:
    layer = mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})[name]
    return {f["properties"]["key"]: shape(f["geometry"]) for f in layer["features"]}


def test_varints_are_protobufs():
    def reference(v: int) -> bytes:
        out = bytearray()
        while True:
            out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
            v >>= 7
            if not v:
                return bytes(out)

    values = [0, 1, 127, 128, 300, 16383, 16384, 2**21, 2**28 + 5, 2**35, 2**63 + 7]
    data, sizes = tiles._varints(np.array(values, dtype=np.uint64))
    assert bytes(data) == b"".join(reference(v) for v in values)
    assert list(sizes) == [len(reference(v)) for v in values]
    assert bytes(tiles._varints(np.array([5, 0, 127]))[0]) == bytes([5, 0, 127])


def test_nothing_to_encode_is_an_empty_tile():
    assert tiles.encode_polygons("t", [], {"k": []}, (0, 0, 1, 1)) == b""
    assert tiles.encode_polygons("t", [shapely.box(50, 50, 60, 60)], {"k": ["a"]}, (0, 0, 1, 1)) == b""
    assert tiles.render("t", [None], {"k": [None]}, 16, 0, 0) == b""


def test_wkb_reader_reads_what_shapely_writes():
    parts = [shapely.box(0, 0, 1, 1).difference(shapely.box(0.2, 0.2, 0.4, 0.4)),
             shapely.MultiPolygon([shapely.box(5, 5, 6, 6), shapely.box(7, 7, 8, 8).difference(
                 shapely.box(7.1, 7.1, 7.2, 7.2).union(shapely.box(7.5, 7.5, 7.6, 7.6)))]),
             shapely.box(2, 2, 3, 3)]
    for blobs in ([shapely.to_wkb(g) for g in parts],
                  [shapely.to_wkb(g, byte_order=0) for g in parts],  # big-endian: the slow path
                  [shapely.to_wkb(shapely.force_3d(g)) for g in parts]):
        rings = tiles.wkb_rings(blobs + [None])
        assert list(rings.feat[rings.ext]) == [0, 1, 1, 2]
        back = rings.geometries(4)
        assert all(shapely.equals(back[:3], parts)) and back[3].is_empty


# -- both stores ------------------------------------------------------------------------

@pytest.mark.parametrize("layer", TILE_LAYERS)
def test_tile_holds_the_features_that_meet_it(store, busiest, layer):
    for z, x, y in busiest[layer]:
        got = decode(tile_source.tile(store, layer, z, x, y), layer)
        meets, slivers = expected_keys(store, layer, None, z, x, y)
        assert len(got) > 0
        assert set(got) <= meets and meets - set(got) <= slivers, (z, x, y)


@pytest.mark.parametrize(("layer", "flt"), [
    ("construction_permits", Filter(statuses=("RETURNED", "PROCESSING"))),
    ("construction_permits", Filter(channels=("ONLINE",), date_from=dt.date(2022, 3, 1), date_to=dt.date(2022, 5, 31))),
    ("construction_permits", Filter(q="Cách Mạng")),
    ("sidewalk_permits", Filter(purposes=("MATERIALS",))),
    ("findings", Filter(kinds=("CLASH", "OPPORTUNITY"))),
])
def test_filters_apply_to_tiles(store, busiest, layer, flt):
    z, x, y = busiest[layer][1]
    got = decode(tile_source.tile(store, layer, z, x, y, flt), layer)
    meets, slivers = expected_keys(store, layer, flt, z, x, y)
    everything, _ = expected_keys(store, layer, None, z, x, y)
    assert set(got) <= meets and meets - set(got) <= slivers
    assert meets < everything  # the filter did remove something here


def test_bbox_filter_narrows_a_tile(store, busiest):
    z, x, y = busiest["construction_permits"][0]
    lon1, lat1, lon2, lat2 = tiles.lonlat_bounds(z, x, y)
    flt = Filter(bbox=(lon1, lat1, (lon1 + lon2) / 2, (lat1 + lat2) / 2))
    got = decode(tile_source.tile(store, "construction_permits", z, x, y, flt), "construction_permits")
    whole = decode(tile_source.tile(store, "construction_permits", z, x, y), "construction_permits")
    expected = set(store.read("construction_permits", flt)["dossier_code"])
    assert 0 < len(got) < len(whole) and set(got) <= expected
    assert tile_source.tile(store, "construction_permits", z, x, y, Filter(bbox=(0.0, 0.0, 1.0, 1.0))) == b""


@pytest.mark.parametrize("layer", TILE_LAYERS)
def test_tile_properties_are_the_public_ones_with_the_stores_values(store, busiest, layer):
    z, x, y = busiest[layer][2]
    got = decode(tile_source.tile(store, layer, z, x, y), layer)
    lay = LAYERS[layer]
    personal = {f.name for f in lay.fields if f.personal}
    frame = store.read(layer).set_index(lay.key, drop=False)
    for key, feature in got.items():
        props = feature["properties"]
        assert not personal & set(props) and set(props) <= set(tiles.TILE_FIELDS[layer])
        row = frame.loc[key]
        for name in tiles.TILE_FIELDS[layer]:
            value = row[name]
            if pd.isna(value):
                assert name not in props
            else:
                assert props[name] == (value.date().isoformat() if hasattr(value, "date") else str(value))


@pytest.mark.parametrize("flt", [None, Filter(statuses=("RETURNED",))])
def test_the_interfaces_default_tile_agrees_with_the_backends(store, busiest, flt):
    """``Store.tile`` (read_arrow + the Python encoder), for backends without their own."""

    for z, x, y in busiest["construction_permits"]:
        a = decode(tile_source.tile_from_arrow(store, "construction_permits", z, x, y, flt), "construction_permits")
        b = decode(tile_source.tile(store, "construction_permits", z, x, y, flt), "construction_permits")
        assert set(a) == set(b) and a
        for key in a:
            assert a[key]["properties"] == b[key]["properties"]
            assert shapely.hausdorff_distance(a[key]["geometry"], b[key]["geometry"]) <= math.sqrt(2) + 1e-9


def test_store_tile_checks_layer_and_address(store):
    with pytest.raises(tiles.TileError, match="layer"):
        tile_source.tile(store, "wards", 16, 0, 0)
    with pytest.raises(tiles.TileError, match="y = 4 is out of range"):
        tile_source.tile(store, "construction_permits", 2, 0, 4)
    assert tile_source.tile(store, "construction_permits", 16, 0, 0) == b""  # the other side of the world


@pytest.mark.postgis
@pytest.mark.parametrize("layer", TILE_LAYERS)
def test_backends_give_the_same_features_within_one_unit(frames, busiest, tmp_path, request, layer):
    gpkg, pg = (new_store(b, tmp_path / b, request) for b in ("gpkg", "postgis"))
    for s in (gpkg, pg):
        s.write({layer: frames[0][layer]})
    z, x, y = busiest[layer][0]
    low = (12, x // 4, y // 4)  # too large for the affine map: PostGIS uses ST_Transform
    assert tiles.mercator_affine(*low)[1] > tile_source.AFFINE_MAX_ERROR >= tiles.mercator_affine(z, x, y)[1]
    for z, x, y in [low, *busiest[layer]]:
        a = decode(tile_source.tile(gpkg, layer, z, x, y), layer)
        b = decode(tile_source.tile(pg, layer, z, x, y), layer)
        if z < 14:  # PostGIS drops polygons that collapse to a line when simplified to the tile's resolution
            for key in set(a) ^ set(b):
                assert (a.get(key) or b.get(key))["geometry"].area <= 8, key
        else:
            assert set(a) == set(b)
        assert a
        for key in set(a) & set(b):
            assert a[key]["properties"] == b[key]["properties"]
            # each coordinate within one unit (rounding of nearly equal values), so at most √2 apart;
            # PostGIS also drops vertices closer than a unit to the line of their neighbours
            distance = shapely.hausdorff_distance(a[key]["geometry"], b[key]["geometry"])
            assert distance <= math.sqrt(2) + 1e-9, (key, z, x, y)


@pytest.mark.postgis
def test_postgis_transforms_with_the_datum_shift(tmp_path, request):
    """ST_Transform(5899 → 3857) must use EPSG:6960 as PROJ does (without it: ~225 m off)."""
    pg = new_store("postgis", tmp_path, request)
    with pg.connection(check_schema=False) as con:
        x, y = con.execute("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_SetSRID(ST_MakePoint("
                           "547963.562, 1770737.758), 5899), 3857) AS p) s").fetchone()
    assert (x, y) == pytest.approx(geo.transformer(STORE_CRS, tiles.MERCATOR_CRS).transform(547963.562, 1770737.758),
                                   abs=0.01)


# -- the views ------------------------------------------------------------------------------

@pytest.fixture
def client(store):
    return create_app({"STORE": store.url, "TESTING": True}).test_client()


def test_tile_endpoint_serves_mvt_and_204_when_empty(client, store, busiest):
    z, x, y = busiest["construction_permits"][1]
    r = client.get(f"/tiles/construction_permits/{z}/{x}/{y}.mvt?status=RETURNED")
    assert r.status_code == 200 and r.mimetype == tiles.MEDIA_TYPE
    built = tile_source.tile(store, "construction_permits", z, x, y, Filter(statuses=("RETURNED",)))
    assert decode(r.data, "construction_permits") == decode(built, "construction_permits")  # the same features
    assert {f["properties"]["status"] for f in decode(r.data, "construction_permits").values()} == {"RETURNED"}
    empty = client.get("/tiles/construction_permits/16/0/0.mvt")
    assert empty.status_code == 204 and empty.data == b""


def test_tiles_never_carry_personal_fields_even_for_staff(store, busiest):
    app = create_app({"STORE": store.url, "TESTING": True, "SHOW_PERSONAL_DATA": True})
    for layer in TILE_LAYERS:
        z, x, y = busiest[layer][1]
        r = app.test_client().get(f"/tiles/{layer}/{z}/{x}/{y}.mvt")
        assert r.status_code == 200 and r.data
        body = r.data
        personal = {f.name for f in LAYERS[layer].fields if f.personal}
        for feature in decode(body, layer).values():
            assert not personal & set(feature["properties"])


@pytest.mark.parametrize(("path", "status", "param"), [
    ("/tiles/construction_permits/13/6558/3726.mvt", 400, "z"),
    ("/tiles/construction_permits/23/0/0.mvt", 400, "z"),
    ("/tiles/construction_permits/x/0/0.mvt", 400, "z"),
    ("/tiles/construction_permits/16/65536/0.mvt", 400, "x"),
    ("/tiles/construction_permits/16/0/-1.mvt", 400, "y"),
    ("/tiles/construction_permits/16/0/0.mvt?status=NOPE", 400, "status"),
    ("/tiles/construction_permits/16/0/0.mvt?from=2022-13-01", 400, "from"),
    ("/tiles/construction_permits/16/0/0.mvt?ward=99999", 400, "ward"),
    ("/tiles/construction_permits/16/0/0.mvt?bbox=1,2,3", 400, "bbox"),
    ("/tiles/construction_permits.json?channel=FAX", 400, "channel"),
    ("/tiles/wards/16/0/0.mvt", 404, None),
    ("/tiles/owners.json", 404, None),
])
def test_bad_requests_are_json_errors_naming_the_parameter(client, path, status, param):
    r = client.get(path)
    assert r.status_code == status and r.is_json, r.data
    body = r.get_json()
    assert set(body) == {"code", "description", "status"} and body["status"] == status
    if param:
        assert body["description"].startswith(f"{param}: ")


def test_tilejson_describes_the_tiles(client, store):
    r = client.get("/tiles/sidewalk_permits.json?purpose=materials&ward=20314")
    assert r.status_code == 200 and r.is_json
    doc = r.get_json()
    assert doc["tilejson"] == "3.0.0" and doc["scheme"] == "xyz"
    assert doc["minzoom"] == tiles.MIN_ZOOM and doc["maxzoom"] == tiles.TILEJSON_MAX_ZOOM
    [template] = doc["tiles"]
    assert template == ("http://localhost/tiles/sidewalk_permits/{z}/{x}/{y}.mvt?ward=20314&purpose=MATERIALS")
    lon1, lat1, lon2, lat2 = doc["bounds"]
    assert 108.1 < lon1 < lon2 < 108.3 and 15.9 < lat1 < lat2 < 16.1
    assert lon1 <= doc["center"][0] <= lon2 and lat1 <= doc["center"][1] <= lat2
    [vector_layer] = doc["vector_layers"]
    assert vector_layer["id"] == "sidewalk_permits" and set(vector_layer["fields"]) == set(
        tiles.TILE_FIELDS["sidewalk_permits"])
    extent = next(i.extent for i in store.info() if i.name == "sidewalk_permits")
    corner = geo.transformer(STORE_CRS, "EPSG:4326").transform(extent[0], extent[1])
    assert lon1 <= corner[0] + 1e-6 and lat1 <= corner[1] + 1e-6


def test_gpkg_tiles_revalidate_with_an_etag(tmp_path, demo_store, busiest):
    client = create_app({"STORE": demo_store.url, "TESTING": True}).test_client()
    z, x, y = busiest["construction_permits"][2]
    url = f"/tiles/construction_permits/{z}/{x}/{y}.mvt"
    first = client.get(url)
    assert first.status_code == 200 and first.headers["ETag"] and "no-cache" in first.headers["Cache-Control"]
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    other = client.get(url + "?status=RETURNED")
    assert other.headers["ETag"] != first.headers["ETag"]
    demo_store.write({"construction_permits": demo_store.read("construction_permits").iloc[:10]})
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code in (200, 204)


# -- GDAL as an outside client ---------------------------------------------------------------

@pytest.mark.gdal
def test_ogrinfo_reads_a_served_tile(demo_store, busiest):
    if shutil.which("ogrinfo") is None:
        reason = "GDAL's ogrinfo not installed (Debian package gdal-bin)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    z, x, y = busiest["construction_permits"][1]
    expected = decode(tile_source.tile(demo_store, "construction_permits", z, x, y), "construction_permits")
    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "OFF"}
    with live_server(create_app({"STORE": demo_store.url})) as base:
        # CLIP=NO: GDAL would otherwise drop the features that lie only in the tile's buffer
        done = subprocess.run(["ogrinfo", "-ro", "-al", "-oo", "CLIP=NO",
                               f"MVT:/vsicurl/{base}/tiles/construction_permits/{z}/{x}/{y}.mvt"],
                              capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"^Layer name: construction_permits$", out, re.MULTILINE)
    assert int(re.search(r"^Feature Count: (\d+)", out, re.MULTILINE).group(1)) == len(expected) > 0
    assert sorted(re.findall(r"^  dossier_code \(String\) = (\S+)$", out, re.MULTILINE)) == sorted(expected)
    assert "owner_name" not in out
    # GDAL georeferences the tile from z/x/y in the URL: its extent lies in the buffered tile (EPSG:3857)
    x1, y1, x2, y2 = (float(v) for v in re.search(
        r"^Extent: \(([-\d.]+), ([-\d.]+)\) - \(([-\d.]+), ([-\d.]+)\)", out, re.MULTILINE).groups())
    b = tiles.tile_bounds(z, x, y, tiles.BUFFER)
    assert b[0] - 1 <= x1 < x2 <= b[2] + 1 and b[1] - 1 <= y1 < y2 <= b[3] + 1


def test_tile_cache_keeps_recent_tiles_within_its_size():
    from gisapp.tiles.mvt import TileCache

    cache = TileCache(5000)  # each entry below costs 900 + 1 + ENTRY_OVERHEAD (200) = 1,101 bytes
    cache.put("a", b"x" * 900)
    cache.put("b", b"y" * 900)
    assert cache.get("a") == b"x" * 900  # a is now the most recent
    cache.put("c", b"z" * 900)
    cache.put("d", b"w" * 900)
    cache.put("e", b"v" * 900)  # 5,505 bytes > 5,000: the least recently used (b) goes
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 4
    cache.put("big", b"!" * 1100)  # over a quarter of the cache: not kept
    assert cache.get("big") is None
    none = TileCache(0)
    none.put("a", b"")
    assert none.get("a") is None and len(none) == 0
    empties = TileCache(10 * (TileCache.ENTRY_OVERHEAD + 2))  # empty tiles count too: at most ten of them
    for k in range(100):
        empties.put(f"{k:02d}", b"")
    assert len(empties) == 10 and empties.get("99") == b"" and empties.get("00") is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_cached_tiles_never_outlive_a_write(backend, tmp_path, request, frames, busiest):
    s = new_store(backend, tmp_path, request)
    s.write(frames[0], meta=frames[1])
    version = s.version()
    assert version
    client = create_app({"STORE": s._url if backend == "postgis" else s.url, "TESTING": True}).test_client()
    z, x, y = busiest["construction_permits"][1]
    url = f"/tiles/construction_permits/{z}/{x}/{y}.mvt"
    before = client.get(url)
    assert before.status_code == 200 and client.get(url).data == before.data
    assert client.get(url + "?q=&ward=").data == before.data  # empty filter parameters: the same entry
    assert len(client.application.extensions["gisapp.tile_cache"]) == 1
    assert set(decode(before.data, "construction_permits")) == set(
        decode(tile_source.tile(s, "construction_permits", z, x, y), "construction_permits"))
    kept = s.read("construction_permits")
    s.write({"construction_permits": kept[kept["status"] != "RETURNED"]}, meta=frames[1])
    assert s.version() != version
    after = client.get(url)
    assert after.headers["ETag"] != before.headers["ETag"]
    assert set(decode(after.data, "construction_permits")) == set(
        decode(tile_source.tile(s, "construction_permits", z, x, y), "construction_permits"))
    assert set(decode(after.data, "construction_permits")) < set(decode(before.data, "construction_permits"))
