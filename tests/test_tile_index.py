"""The filtered tiles' search texts and status histories kept per process (gisapp.tiles.index), both stores.

A search or a status as of a day on a taken-apart tile is answered from the columns kept in memory: equal to
the store's filtered tile, and still equal after writes (an edit of the searched text, a status change that
adds history, an insert, a delete), each seen at once (the columns are brought up to the store's version at
each use).  Decoded by ``mapbox-vector-tile`` (shares no code with the encoder or the subset).
"""

from __future__ import annotations

import datetime as dt
import time

import mapbox_vector_tile
import numpy as np
import pyarrow as pa
import pytest
import shapely

from gisapp import geo
from gisapp.demo.timeline import demo_history
from gisapp.filters import Filter
from gisapp.schema import LAYERS, STORE_CRS
from gisapp.store.base import PERSONAL_SEARCH_COLUMN, SEARCH_COLUMN, TEXTS_SCHEMA
from gisapp.tiles import index, subset
from gisapp.tiles import mvt as tiles
from gisapp.tiles import source as tile_source
from tests.stores import BACKENDS, new_store

D = dt.date.fromisoformat
LAYER = "construction_permits"


@pytest.fixture
def store(request, demo_frames, tmp_path):
    frames, meta = demo_frames
    s = new_store(request.param, tmp_path, request)
    s.write(frames, meta=meta, history=demo_history(frames))
    index.forget_all()
    yield s
    index.forget_all()


def busiest(frame, z: int = 14) -> tuple[int, int, int]:
    pts = geo.transform(shapely.centroid(frame.geometry.values), STORE_CRS, "EPSG:4326")
    addresses = np.array([(z, *tiles.tile_at(a, b, z)) for a, b in zip(shapely.get_x(pts), shapely.get_y(pts))])
    values, counts = np.unique(addresses, axis=0, return_counts=True)
    return tuple(int(v) for v in values[np.argmax(counts)])


def keys_of(body: bytes, layer: str = LAYER) -> dict:
    """Key → properties of a tile's features."""
    if not body:
        return {}
    decoded = mapbox_vector_tile.decode(body)[layer]["features"]
    return {f["properties"][LAYERS[layer].key]: f["properties"] for f in decoded}


def check(store, layer: str, tile, flt: Filter) -> dict:
    """The subset tile of ``flt`` (from the index, no per-tile store query) equals the store's; its features."""
    feats = subset.take_apart(tile_source.tile(store, layer, *tile), layer)
    got = tile_source.subset_tile(store, layer, *tile, flt, feats)
    assert got is not None
    assert not feats.extras  # answered from the kept columns, not by asking the store for this tile
    expected = keys_of(tile_source.tile(store, layer, *tile, flt), layer)
    assert keys_of(got, layer) == expected
    return expected


FILTERS = [Filter(q="Phước Tường"), Filter(q="phuoc tuong 1", statuses=("RETURNED",)),
           Filter(q="nguyen", q_personal=True), Filter(as_of=D("2022-04-01"), statuses=("PROCESSING", "RECEIVED")),
           Filter(as_of=D("2022-02-01"), statuses=("RECEIVED",)),
           Filter(q="van 1", q_personal=True, as_of=D("2022-05-01"), statuses=("RETURNED", "RESULT_READY"))]


@pytest.mark.parametrize("store", BACKENDS, indirect=True)
def test_searches_and_days_from_the_kept_columns_equal_the_stores(store, demo_frames):
    tile = busiest(demo_frames[0][LAYER])
    selected = 0
    for flt in FILTERS:
        n = len(check(store, LAYER, tile, flt))
        whole = len(keys_of(tile_source.tile(store, LAYER, *tile)))
        selected += 0 < n < whole
    assert selected >= 4  # the filters do select: not whole or empty tiles
    side = busiest(demo_frames[0]["sidewalk_permits"])
    for flt in (Filter(q="Lỗ Giáng 3"), Filter(as_of=D("2022-05-01"), statuses=("RETURNED",)),
                Filter(q="lo giang", q_personal=True)):
        check(store, "sidewalk_permits", side, flt)


@pytest.mark.parametrize("store", BACKENDS, indirect=True)
def test_the_kept_columns_see_each_write_at_once(store, demo_frames):
    """An edit of the searched text, a status change (history added by the store), an insert and a delete:
    the next filtered tile has each, equal to the store's."""
    frame = demo_frames[0][LAYER]
    tile = busiest(frame)
    search, day = Filter(q="zzqx"), Filter(as_of=D("2030-01-01"), statuses=("REFUSED",))
    assert check(store, LAYER, tile, search) == {}
    before = check(store, LAYER, tile, day)
    first = index.index(store, LAYER)
    in_tile = sorted(keys_of(tile_source.tile(store, LAYER, *tile)))
    a, b, c = in_tile[:3]
    rows = store.read_keys(LAYER, [a, b])
    rows["site_address"] = rows["site_address"].fillna("") + " zzqx"
    rows.loc[rows[LAYERS[LAYER].key] == b, "status"] = "REFUSED"
    store.write({LAYER: rows}, mode="upsert")
    assert set(check(store, LAYER, tile, search)) == {a, b}
    assert set(check(store, LAYER, tile, day)) == set(before) | {b}
    new = store.read_keys(LAYER, [c])
    new[LAYERS[LAYER].key] = "ZZ-NEW-1"
    new["site_address"] = "zzqx mới"
    store.write({LAYER: new}, mode="upsert")
    assert set(check(store, LAYER, tile, search)) == {a, b, "ZZ-NEW-1"}
    store.write({}, mode="upsert", delete={LAYER: [a]})
    assert set(check(store, LAYER, tile, search)) == {b, "ZZ-NEW-1"}
    kept = index.index(store, LAYER)
    assert kept is not first and len(kept) > len(first)  # brought up to date, not read whole again
    assert kept.history is not None and first.history is not None and kept.history.seq > first.history.seq


@pytest.mark.parametrize("store", BACKENDS[:1], indirect=True)
def test_many_writes_sort_the_keys_again(store, demo_frames, monkeypatch):
    """Past :data:`index.RESORT` appended positions every key is sorted again; the newest position wins."""
    monkeypatch.setattr(index, "RESORT", 2)
    frame = demo_frames[0][LAYER]
    tile = busiest(frame)
    flt = Filter(q="yyqw")
    assert check(store, LAYER, tile, flt) == {}
    in_tile = sorted(keys_of(tile_source.tile(store, LAYER, *tile)))
    for n, key in enumerate(in_tile[:4]):
        row = store.read_keys(LAYER, [key])
        row["site_address"] = "yyqw"
        store.write({LAYER: row}, mode="upsert")
        assert set(check(store, LAYER, tile, flt)) == set(in_tile[:n + 1])
    row = store.read_keys(LAYER, [in_tile[0]])
    row["site_address"] = "other"
    store.write({LAYER: row}, mode="upsert")  # read again once more: its newest text counts
    assert set(check(store, LAYER, tile, flt)) == set(in_tile[1:4])
    assert index.index(store, LAYER).history is None  # no day asked yet: only the texts were read
    check(store, LAYER, tile, Filter(as_of=D("2022-04-01"), statuses=("PROCESSING", "RECEIVED")))
    assert index.index(store, LAYER).history is not None


@pytest.mark.parametrize("store", BACKENDS, indirect=True)
def test_a_replace_drops_the_keys_it_removed(store, demo_frames):
    frame = demo_frames[0][LAYER]
    tile = busiest(frame)
    flt = Filter(q="Phước Tường")
    check(store, LAYER, tile, flt)
    first = index.index(store, LAYER)
    store.write({LAYER: frame.iloc[: len(frame) // 2]}, mode="replace")
    check(store, LAYER, tile, flt)
    again = index.index(store, LAYER)
    gone = sorted(set(frame[LAYERS[LAYER].key]) - set(frame.iloc[: len(frame) // 2][LAYERS[LAYER].key]))
    assert again is not first and again.positions(pa.array(gone[:3])) is None  # replaced away: not found
    assert again.positions(pa.array(list(frame[LAYERS[LAYER].key][:3]))) is not None


@pytest.mark.parametrize("store", BACKENDS, indirect=True)
def test_search_texts_table(store, demo_frames):
    """Every feature's key and search text (the folded text the stores' LIKE searches), or of some keys."""
    frame = demo_frames[0][LAYER]
    whole = store.search_texts_table(LAYER, SEARCH_COLUMN)
    assert whole.schema == TEXTS_SCHEMA and whole.num_rows == len(frame)
    assert set(whole.column("key").to_pylist()) == set(frame[LAYERS[LAYER].key])
    keys = sorted(frame[LAYERS[LAYER].key])[:3]
    some = store.search_texts_table(LAYER, PERSONAL_SEARCH_COLUMN, keys=keys)
    assert sorted(some.column("key").to_pylist()) == keys
    texts = dict(zip(some.column("key").to_pylist(), some.column("text").to_pylist()))
    by_box = dict(store.box_texts(LAYER, tuple(frame.total_bounds), PERSONAL_SEARCH_COLUMN))
    assert all(texts[k] == by_box[k] and texts[k] for k in keys)
    assert store.search_texts_table(LAYER, SEARCH_COLUMN, keys=[]).num_rows == 0
    with pytest.raises(Exception, match="search text"):
        store.search_texts_table(LAYER, "status")


def test_positions_of_unknown_keys_are_none():
    keys = pa.array(["b", "a", "c", "a"])  # "a" read again at position 3
    found = index.LayerIndex(LAYER, "v", None, 0, pa.chunked_array([keys]),
                             index.Lookup.of(index._ids(keys[:3]), np.arange(3)),
                             index.Lookup.of(index._ids(keys[3:]), np.array([3])),
                             {SEARCH_COLUMN: pa.chunked_array([pa.array(["x", "y", "z", "w"])])})
    assert found.positions(pa.array(["c", "a", "b"])).tolist() == [2, 3, 0]
    assert found.positions(pa.array(["c", "d"])) is None
    assert found.positions(pa.array(["bb"])) is None and found.positions(pa.array(["b\x00"])) is None
    assert found.texts_at(SEARCH_COLUMN, np.array([2, 0])).to_pylist() == ["z", "x"]
    twice = index.Lookup.of(index._ids(pa.array(["k", "j", "k"])), np.array([0, 1, 2]))
    k = index._ids(pa.array(["k"]))
    assert twice.find(k, index._hash(k)).tolist() == [2]  # the last given wins


@pytest.mark.parametrize("store", BACKENDS[:1], indirect=True)
def test_a_tile_located_once_is_located_again_after_a_write(store, demo_frames):
    """A taken-apart tile keeps where the kept columns hold its features; a write that reads keys again moves
    them (new positions), and the same taken-apart tile then finds the new texts."""
    tile = busiest(demo_frames[0][LAYER])
    feats = subset.take_apart(tile_source.tile(store, LAYER, *tile), LAYER)
    flt = Filter(q="wwqz")
    assert tile_source.subset_tile(store, LAYER, *tile, flt, feats) == b""
    located = feats.located
    assert located is not None
    assert tile_source.subset_tile(store, LAYER, *tile, Filter(q="phuoc"), feats) is not None
    assert feats.located is located  # no write: the same positions
    key = sorted(keys_of(feats.body))[0]
    row = store.read_keys(LAYER, [key])
    row["site_address"] = "wwqz"
    store.write({LAYER: row}, mode="upsert")
    assert set(keys_of(tile_source.subset_tile(store, LAYER, *tile, flt, feats))) == {key}
    assert feats.located is not located


@pytest.mark.parametrize("store", BACKENDS, indirect=True)
def test_preload_reads_the_searched_layers_before_any_tile(store, demo_frames):
    """A server process reads the indexes (with their histories) at its start; the state says when they are
    ready, and ``behind`` after a write until the next use brings them up to date."""
    assert index.state(store) == {name: "none" for name in index.SEARCHED}
    index.preload(store)
    deadline = time.monotonic() + 60
    while set(index.state(store).values()) != {"ready"}:
        assert time.monotonic() < deadline, index.state(store)
        time.sleep(0.05)
    kept = index.index(store, LAYER, with_history=True)
    assert kept.history is not None and len(kept) == len(demo_frames[0][LAYER])
    rows = store.read_keys(LAYER, [str(demo_frames[0][LAYER][LAYERS[LAYER].key].iloc[0])])
    rows["status"] = "REFUSED"
    store.write({LAYER: rows}, mode="upsert")
    assert index.state(store)[LAYER] == "behind"
    index.index(store, LAYER, with_history=True)
    assert index.state(store)[LAYER] == "ready"
