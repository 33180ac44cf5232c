"""Filtered tiles as subsets of the unfiltered tile (gisapp.tiles.subset): equal to the store's filtered tile.

Every filter kind, on both stores: the features of ``subset_tile`` (the
unfiltered tile taken apart, selected, re-encoded) are the features of
``tile`` with the filter (built by the store as before), each with the same
properties, geometry and id.  Decoded by ``mapbox-vector-tile``, which shares
no code with the encoder or the subset.
"""

from __future__ import annotations

import datetime as dt

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from gisapp import geo
from gisapp.analysis import overlaps as analysis
from gisapp.filters import Filter
from gisapp.schema import LAYERS, STORE_CRS
from gisapp.tiles import index, subset
from gisapp.tiles import mvt as tiles
from gisapp.tiles import source as tile_source
from gisapp.web.app import create_app
from tests.stores import BACKENDS, new_store

D = dt.date.fromisoformat


@pytest.fixture(scope="module")
def frames(demo_frames):
    base, meta = demo_frames
    params = analysis.AnalysisParams(as_of=D(meta["as_of"]))
    result = analysis.find_overlaps(base["construction_permits"], base["sidewalk_permits"], base["wards"], params)
    return {**base, "findings": result.findings}, meta


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, frames, tmp_path_factory):
    s = new_store(request.param, tmp_path_factory.mktemp("subset"), request)
    s.write(frames[0], meta=frames[1])
    return s


@pytest.fixture(scope="module")
def busy(frames):
    """Per layer: the z14 and z16 tiles holding most feature centres."""
    out = {}
    for layer in tiles.TILE_FIELDS:
        pts = geo.transform(shapely.centroid(frames[0][layer].geometry.values), STORE_CRS, "EPSG:4326")
        lon, lat = shapely.get_x(pts), shapely.get_y(pts)
        picks = []
        for z in (14, 16):
            addresses = np.array([(z, *tiles.tile_at(a, b, z)) for a, b in zip(lon, lat)])
            values, counts = np.unique(addresses, axis=0, return_counts=True)
            picks.append(tuple(int(v) for v in values[np.argmax(counts)]))
        out[layer] = picks
    return out


def features(body: bytes, layer: str) -> dict:
    """Key → (id, type, properties, geometry in tile units) of a tile's one layer."""
    if not body:
        return {}
    decoded = mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})
    assert list(decoded) == [layer] and decoded[layer]["extent"] == tiles.EXTENT
    key = LAYERS[layer].key
    out = {}
    for f in decoded[layer]["features"]:
        out[f["properties"][key]] = (f.get("id"), f["type"], f["properties"], shape(f["geometry"]))
    assert len(out) == len(decoded[layer]["features"])
    return out


def assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        assert a[key][:3] == b[key][:3], key
        assert shapely.equals_exact(a[key][3], b[key][3], 0), key


FILTERS = {
    "construction_permits": [
        Filter(statuses=("RETURNED", "PROCESSING")),
        Filter(wards=("20306", "20311")),
        Filter(procedures=("NEW_BUILD",), channels=("ONLINE",)),
        Filter(date_from=D("2022-03-01"), date_to=D("2022-05-31")),
        Filter(date_from=D("2022-06-01")),
        Filter(day=D("2022-04-15")),
        Filter(day=D("2021-12-01")),
        Filter(as_of=D("2022-04-01")),
        Filter(as_of=D("2022-04-01"), statuses=("PROCESSING", "RECEIVED")),  # status as of: the history
        Filter(as_of=D("2022-05-01"), day=D("2022-03-01")),
        Filter(q="Phước Tường"),  # a text search: the store says which keys match
        Filter(q="phuoc tuong 1", statuses=("RETURNED",)),
        Filter(q="Hòa An", day=D("2022-04-15")),
        Filter(wards=("20305",), statuses=("RETURNED",), day=D("2022-05-02")),
        Filter(q="nguyen", q_personal=True),  # staff: the owner names are searched too
        Filter(q="van 1", q_personal=True, as_of=D("2022-05-01"), statuses=("RETURNED", "RESULT_READY")),
    ],
    "sidewalk_permits": [
        Filter(purposes=("MATERIALS",)),
        Filter(day=D("2022-05-01")),
        Filter(date_from=D("2022-04-01"), date_to=D("2022-04-30")),
        Filter(as_of=D("2022-05-01")),
        Filter(statuses=("RETURNED",), channels=("ONLINE",)),
        Filter(q="Lỗ Giáng 3"),
        Filter(q="lo giang 4"),
    ],
    "findings": [
        Filter(kinds=("CLASH", "OPPORTUNITY")),
        Filter(day=D("2022-05-01")),
        Filter(wards=("20314",), date_from=D("2022-05-01")),
        Filter(q="VH-2022-03"),
    ],
}
CASES = [(layer, flt) for layer, flts in FILTERS.items() for flt in flts]


@pytest.mark.parametrize(("layer", "flt"), CASES, ids=[f"{lay}-{i}" for i, (lay, _) in enumerate(CASES)])
def test_a_subset_tile_equals_the_stores_filtered_tile(store, busy, layer, flt):
    for z, x, y in busy[layer]:
        whole = tile_source.tile(store, layer, z, x, y)
        feats = subset.take_apart(whole, layer)
        got = tile_source.subset_tile(store, layer, z, x, y, flt, feats)
        assert got is not None  # never the old way for these filters
        expected = features(tile_source.tile(store, layer, z, x, y, flt), layer)
        assert_same(features(got, layer), expected)


def test_the_in_memory_clauses_are_the_stores(store, busy):
    """Without the store's help (no search, no status as of): wards, codes, dates, day, as of in memory."""
    z, x, y = busy["construction_permits"][0]
    feats = subset.take_apart(tile_source.tile(store, "construction_permits", z, x, y), "construction_permits")
    strict = 0
    for flt in FILTERS["construction_permits"]:
        mask = subset.match("construction_permits", feats, flt)
        assert mask is not None and mask.dtype == bool and len(mask) == len(feats)
        assert subset.needs_store("construction_permits", flt) == bool(
            flt.q or (flt.as_of and flt.statuses))
        strict += 0 < mask.sum() < len(feats)
    assert strict >= 6  # the filters do select here: the comparisons above are not of whole or empty tiles


def test_a_bbox_filter_is_left_to_the_store(store, busy):
    z, x, y = busy["construction_permits"][0]
    feats = subset.take_apart(tile_source.tile(store, "construction_permits", z, x, y), "construction_permits")
    lon1, lat1, lon2, lat2 = tiles.lonlat_bounds(z, x, y)
    flt = Filter(bbox=(lon1, lat1, (lon1 + lon2) / 2, (lat1 + lat2) / 2))
    assert tile_source.subset_tile(store, "construction_permits", z, x, y, flt, feats) is None


def test_served_filtered_tiles_equal_the_stores(store, busy):
    """Through the view (its cache of taken-apart tiles): the same features as the store's filtered tile."""
    client = create_app({"STORE": store.url, "TESTING": True}).test_client()
    z, x, y = busy["construction_permits"][0]
    for query, flt in [("status=RETURNED", Filter(statuses=("RETURNED",))),
                       ("day=2022-04-15", Filter(day=D("2022-04-15"))),
                       ("q=Ph%C6%B0%E1%BB%9Bc+T%C6%B0%E1%BB%9Dng", Filter(q="Phước Tường")),
                       ("ward=20306", Filter(wards=("20306",)))]:
        for _ in range(2):  # built, then from the process's cache
            r = client.get(f"/tiles/construction_permits/{z}/{x}/{y}.mvt?{query}")
            assert r.status_code in (200, 204)
            expected = features(tile_source.tile(store, "construction_permits", z, x, y, flt), "construction_permits")
            assert_same(features(r.data, "construction_permits"), expected)


def test_take_apart_keeps_ids_and_any_value_type():
    """A tile with MVT ids and number/boolean values (as other encoders write them) survives the subset."""
    body = mapbox_vector_tile.encode([{"name": "findings", "features": [
        {"id": 7 + i, "geometry": shapely.box(10 * i, 10, 10 * i + 8, 18).wkt,
         "properties": {"finding_id": f"F{i}", "kind": "CLASH" if i % 2 else "OPPORTUNITY", "n": i, "x": 0.5 + i,
                        "ok": bool(i % 3)}} for i in range(40)]}])
    feats = subset.take_apart(body, "findings")
    assert len(feats) == 40 and feats.select(np.ones(40, bool)) == body
    assert feats.column("kind").to_pylist()[:2] == ["OPPORTUNITY", "CLASH"]
    mask = np.arange(40) % 3 == 1
    part = mapbox_vector_tile.decode(feats.select(mask))["findings"]["features"]
    whole = mapbox_vector_tile.decode(body)["findings"]["features"]
    assert part == [f for f, m in zip(whole, mask) if m]
    assert feats.select(np.zeros(40, bool)) == b""
    assert len(subset.take_apart(b"", "findings")) == 0
    with pytest.raises(subset.TileFormatError):
        subset.take_apart(body, "construction_permits")


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads under 16 KiB)."""
    n = len(payload)
    return bytes([(number << 3) | 2, *([n] if n < 128 else [0x80 | (n & 0x7F), n >> 7])]) + payload


def test_a_key_listed_twice_is_one_column():
    """PostGIS's ST_AsMVT run in parallel joins partial layers: their keys are listed again, indices differ."""
    square = bytes([9, 2, 2, 26, 8, 0, 0, 8, 7, 0, 15])  # MoveTo(1,1) LineTo (4,0) (0,4) (-4,0) ClosePath
    feature = [_field(2, bytes([0x12, 4, *tags, 0x18, 3]) + _field(4, square)) for tags in
               ([0, 0, 1, 1], [2, 2, 3, 3], [2, 0, 3, 1])]
    layer = bytes([0x78, 2]) + _field(1, b"findings") + b"".join(feature) + b"".join(
        _field(3, k) for k in (b"finding_id", b"kind", b"finding_id", b"kind")) + b"".join(
        _field(4, _field(1, v)) for v in (b"F1", b"CLASH", b"F2", b"OPPORTUNITY")) + bytes([0x28, 0x80, 0x20])
    body = _field(3, layer)
    feats = subset.take_apart(body, "findings")
    assert feats.keys == ["finding_id", "kind"]
    assert feats.column("finding_id").to_pylist() == ["F1", "F2", "F1"]  # the third: the second keys' values
    assert feats.column("kind").to_pylist() == ["CLASH", "OPPORTUNITY", "CLASH"]
    whole = mapbox_vector_tile.decode(body)["findings"]["features"]
    for mask in ([False, True, False], [True, False, True]):  # re-encoded, copied as written
        part = mapbox_vector_tile.decode(feats.select(np.array(mask)))["findings"]["features"]
        assert [f["properties"] for f in part] == [f["properties"] for f, m in zip(whole, mask) if m]
    assert subset.match("findings", feats, Filter(kinds=("CLASH",))).tolist() == [True, False, True]


def test_a_ward_added_by_a_write_is_known_at_once(demo_store, busy):
    """Ward codes are kept per process and data version: a write that adds a ward makes its code valid."""
    client = create_app({"STORE": demo_store.url, "TESTING": True}).test_client()
    z, x, y = busy["construction_permits"][0]
    url = f"/tiles/construction_permits/{z}/{x}/{y}.mvt?ward=99999"
    assert client.get(url).status_code == 400
    ward = demo_store.read("wards").iloc[[0]].copy()
    ward["ward_code"], ward["ward_key"] = "99999", "2022-99999"
    demo_store.write({"wards": ward}, mode="upsert")
    assert client.get(url).status_code == 204  # known now; no dossier has it


def test_the_day_slider_over_one_tile_reads_the_history_once(store, busy):
    """A status as of a day, and a search, on a tile taken apart: the store is asked once per process and
    layer (the layer's status changes and search texts, :mod:`gisapp.tiles.index`), not per tile; every day
    or word is answered in memory, equal to the store's filtered tile, and a day on which statuses differ from
    today's selects other features."""
    z, x, y = busy["construction_permits"][0]
    feats = subset.take_apart(tile_source.tile(store, "construction_permits", z, x, y), "construction_permits")
    picked = set()
    kept = []
    for day in ("2022-02-01", "2022-03-15", "2022-05-01", "2022-06-20"):
        flt = Filter(as_of=D(day), statuses=("PROCESSING", "RECEIVED"))
        got = features(tile_source.subset_tile(store, "construction_permits", z, x, y, flt, feats),
                       "construction_permits")
        assert_same(got, features(tile_source.tile(store, "construction_permits", z, x, y, flt),
                                  "construction_permits"))
        picked.add(frozenset(got))
        kept.append(index.index(store, "construction_permits"))
    assert len(picked) > 1
    for q in ("phuoc", "tuong 2"):
        flt = Filter(q=q)
        got = tile_source.subset_tile(store, "construction_permits", z, x, y, flt, feats)
        assert_same(features(got, "construction_permits"),
                    features(tile_source.tile(store, "construction_permits", z, x, y, flt), "construction_permits"))
        kept.append(index.index(store, "construction_permits"))
    assert all(k is kept[0] for k in kept)  # read once, kept while the store does not change
    assert not feats.extras  # nothing asked of the store for this tile
