"""Incremental tiles (issue 15 item 2) on both stores: the change log's boxes, only the touched tiles
re-rendered, a tile fetched right after a write shows it, randomised edits and two writers end equal to a
full render, and a renderer stopped midway leaves nothing wrong."""

from __future__ import annotations

import sqlite3
import threading

import numpy as np
import pandas as pd
import pytest
import shapely

from gisapp.store.base import Change
from gisapp.store.gpkg import GeoPackageStore
from gisapp.tiles import mvt as tiles
from gisapp.tiles import source as tile_source
from gisapp.tiles.disk import TileDir, boxes_tiles, mercator_boxes, render, snapshot
from gisapp.web.app import create_app
from tests.browser_util import sample_frames
from tests.helpers import decode, fail_writes_after_logging
from tests.stores import BACKENDS, new_store

PERMITS = "construction_permits"
ZOOMS = (14, 15, 16)


@pytest.fixture(scope="module")
def frames():
    return sample_frames(60)


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path, frames):
    s = new_store(request.param, tmp_path, request)
    s.write(frames[0], meta=frames[1])
    return s


def _files(folder) -> dict[tuple, tuple]:
    """(layer, z, x, y) → (inode, mtime) of every tile file under ``folder``."""
    out = {}
    for pattern in ("*.mvt", "*.empty"):
        for f in folder.rglob(pattern):
            st = f.stat()
            out[(f.parts[-4], int(f.parts[-3]), int(f.parts[-2]), int(f.stem))] = (st.st_ino, st.st_mtime_ns)
    return out


def _content(body: bytes, layer: str) -> dict:
    return {key: (f["geometry"].wkb, f["properties"]) for key, f in decode(body, layer).items()}


def _served(tile_dir: TileDir, store, layer, z, x, y) -> bytes:
    """What a request gets: the current folder's tile when it holds the data, else the tile built now."""
    body = tile_dir.get(None, layer, z, x, y) if tile_dir.current(store, store.version(), layer, z, x, y) else None
    return tile_source.tile(store, layer, z, x, y) if body is None else body


def _assert_equal_to_a_full_render(store, tile_dir: TileDir, tmp_path) -> None:
    """Every tile the incremental folder or a fresh full render holds is served as the full render has it."""
    fresh = TileDir(tmp_path / "fresh", store.url + "#fresh")
    render(store, fresh, ZOOMS, full=True)
    assert tile_dir.status(store.version()) is not None, "the folder is not of the store's version"
    for key in sorted(set(_files(tile_dir.base)) | set(_files(fresh.base))):
        layer, z, x, y = key
        want = fresh.get(None, *key)
        want = tile_source.tile(store, layer, z, x, y) if want is None else want
        assert _content(_served(tile_dir, store, *key), layer) == _content(want, layer), key


def _moved(frames, key: str, dx: float, dy: float, **values):
    frame = frames[0][PERMITS]
    row = frame[frame["dossier_code"] == key].copy()
    row["geometry"] = shapely.affinity.translate(row.geometry.iloc[0], dx, dy)
    for name, value in values.items():
        row[name] = value
    return row


def test_each_change_carries_the_box_of_the_old_and_new_geometry(store, frames):
    after = store.changes(0, 0).last
    key = frames[0][PERMITS]["dossier_code"].iloc[5]
    old = frames[0][PERMITS].set_index("dossier_code").geometry[key].bounds
    store.write({PERMITS: _moved(frames, key, 500.0, -300.0)}, mode="upsert")
    new_key = "XD-NEW-1"
    store.write({PERMITS: _moved(frames, key, 900.0, 0.0, dossier_code=new_key)}, mode="upsert")
    store.write({}, mode="upsert", delete={PERMITS: [key]})
    update, insert, delete = store.changes(after, 10).changes
    assert (update.kind, insert.kind, delete.kind) == ("update", "insert", "delete")
    box = update.bbox
    assert box is not None
    assert box[0] == pytest.approx(old[0], abs=0.01) and box[1] == pytest.approx(old[1] - 300, abs=0.01)
    assert box[2] == pytest.approx(old[2] + 500, abs=0.01) and box[3] == pytest.approx(old[3], abs=0.01)
    assert insert.bbox == pytest.approx((old[0] + 900, old[1], old[2] + 900, old[3]), abs=0.01)
    assert delete.bbox == pytest.approx((old[0] + 500, old[1] - 300, old[2] + 500, old[3] - 300), abs=0.01)
    assert all(c.bbox is not None for c in store.changes(0, 1000).changes)  # the first load too


def test_a_geopackage_log_from_before_the_boxes_still_opens_and_gets_them(tmp_path, frames):
    store = GeoPackageStore(tmp_path / "old.gpkg", must_exist=False)
    store.write(frames[0], meta=frames[1])
    with sqlite3.connect(store.path) as con:  # as gisapp before the boxes wrote it
        for column in ("minx", "miny", "maxx", "maxy"):
            con.execute(f"ALTER TABLE gisapp_changes DROP COLUMN {column}")
    first = store.changes(0, 1)
    assert first.changes and first.changes[0].bbox is None  # read: anywhere
    key = frames[0][PERMITS]["dossier_code"].iloc[0]
    store.write({PERMITS: _moved(frames, key, 10.0, 0.0)}, mode="upsert")
    last = store.changes(first.last, 10).changes
    assert [c.kind for c in last] == ["update"] and last[0].bbox is not None
    assert isinstance(last[0], Change)


def test_one_saved_feature_rewrites_only_its_tiles_and_a_request_sees_it_before(store, frames, tmp_path):
    tile_dir = TileDir(tmp_path / "tiles", store.url)
    render(store, tile_dir, ZOOMS)
    before = _files(tile_dir.base)
    key = frames[0][PERMITS]["dossier_code"].iloc[7]
    old_geom = frames[0][PERMITS].set_index("dossier_code").geometry[key]
    moved = _moved(frames, key, 700.0, 450.0, status="REFUSED")
    new_geom = moved.geometry.iloc[0]
    store.write({PERMITS: moved}, mode="upsert")

    # before the renderer ran: a request gets the new data, on the tile of the new place and of the old one
    client = create_app({"STORE": store.url, "TESTING": True, "TILE_DIR": str(tmp_path / "tiles"),
                         "TILE_CACHE_MB": 0, "TILE_WARM": "14-16"}).test_client()
    lon, lat = _lonlat(new_geom.centroid)
    x, y = tiles.tile_at(lon, lat, 16)
    got = decode(client.get(f"/tiles/{PERMITS}/16/{x}/{y}.mvt").data, PERMITS)
    assert got[key]["properties"]["status"] == "REFUSED"
    lon, lat = _lonlat(old_geom.centroid)
    x, y = tiles.tile_at(lon, lat, 16)
    assert key not in decode(client.get(f"/tiles/{PERMITS}/16/{x}/{y}.mvt").data, PERMITS)

    report = render(store, tile_dir, ZOOMS)
    assert report["incremental"]
    after = _files(tile_dir.base)
    rewritten = {k for k in after if before.get(k) != after[k]}
    assert len(rewritten) == report["tiles"] > 0
    near = mercator_boxes(np.array([shapely.union(old_geom, new_geom).bounds]))  # the entry's box: old ∪ new
    assert rewritten <= {(PERMITS, z, x, y) for z in ZOOMS for x, y in boxes_tiles(near, z)}
    assert len(rewritten) < len(after) / 2
    assert not (set(before) - set(after))  # nothing else went
    _assert_equal_to_a_full_render(store, tile_dir, tmp_path)


def _lonlat(point) -> tuple[float, float]:
    from gisapp import geo
    from gisapp.schema import STORE_CRS, WEB_CRS

    p = geo.transform([point], STORE_CRS, WEB_CRS)[0]
    return p.x, p.y


def test_randomised_edits_and_two_writers_end_equal_to_a_full_render(store, frames, tmp_path):
    tile_dir = TileDir(tmp_path / "tiles", store.url)
    render(store, tile_dir, ZOOMS)
    rng = np.random.default_rng(15)
    keys = list(frames[0][PERMITS]["dossier_code"])
    for round_ in range(3):
        for step in range(4):
            op, key = rng.choice(["insert", "move", "status", "delete"]), str(rng.choice(keys))
            dx, dy = (float(v) for v in rng.uniform(-1500, 1500, 2))
            if op == "delete":
                store.write({}, mode="upsert", delete={PERMITS: [key]})
            elif op == "insert":
                store.write({PERMITS: _moved(frames, key, dx, dy, dossier_code=f"XD-R-{round_}-{step}")}, mode="upsert")
            elif op == "move":
                store.write({PERMITS: _moved(frames, key, dx, dy)}, mode="upsert")
            else:
                store.write({PERMITS: _moved(frames, key, 0.0, 0.0, status="WITHDRAWN")}, mode="upsert")
        if round_ == 1:  # two writers at once
            errors: list[BaseException] = []

            def writer(n: int, errors: list = errors) -> None:
                try:
                    for i in range(3):
                        store.write({PERMITS: _moved(frames, keys[n * 10 + i], 300.0 * (n + 1), 200.0 * i,
                                                     dossier_code=f"XD-W{n}-{i}")}, mode="upsert")
                except BaseException as err:  # pragma: no cover - reported below
                    errors.append(err)

            threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors
        assert render(store, tile_dir, ZOOMS)["incremental"]
    _assert_equal_to_a_full_render(store, tile_dir, tmp_path)


def test_a_renderer_stopped_midway_leaves_its_position_and_the_next_run_repairs(store, frames, tmp_path):
    tile_dir = TileDir(tmp_path / "tiles", store.url)
    render(store, tile_dir, ZOOMS)
    position = tile_dir.state()
    for n, key in enumerate(frames[0][PERMITS]["dossier_code"].iloc[:6]):
        store.write({PERMITS: _moved(frames, key, 400.0 + 100 * n, -600.0)}, mode="upsert")

    class Killed(BaseException):
        pass

    def kill_after_three(stage, done, total, unit):
        if done == 3:
            raise Killed

    with pytest.raises(Killed):
        render(store, tile_dir, ZOOMS, progress=kill_after_three)
    assert tile_dir.state() == position  # not moved on: the tiles it touched are still dirty
    for key in _files(tile_dir.base):  # and requests meanwhile get every tile right
        want = tile_source.tile(store, key[0], *key[1:])
        assert _content(_served(tile_dir, store, *key), key[0]) == _content(want, key[0]), key
    assert render(store, tile_dir, ZOOMS)["incremental"]
    assert tile_dir.state()["seq"] == snapshot(store)[1]
    _assert_equal_to_a_full_render(store, tile_dir, tmp_path)


def test_a_write_that_fails_halfway_marks_no_tile(store, frames, tmp_path, monkeypatch):
    from gisapp.store import StoreError

    tile_dir = TileDir(tmp_path / "tiles", store.url)
    render(store, tile_dir, ZOOMS)
    before = _files(tile_dir.base)

    fail_writes_after_logging(store, monkeypatch)
    key = frames[0][PERMITS]["dossier_code"].iloc[3]
    with pytest.raises((OSError, StoreError)):
        store.write({PERMITS: _moved(frames, key, 800.0, 800.0)}, mode="upsert")
    monkeypatch.undo()
    report = render(store, tile_dir, ZOOMS)
    assert report["incremental"] and report["tiles"] == 0 and _files(tile_dir.base) == before
    _assert_equal_to_a_full_render(store, tile_dir, tmp_path)


def test_a_folder_of_another_tile_format_is_never_current_and_is_rendered_whole(tmp_path, frames, monkeypatch):
    """Tiles rendered by an earlier encoder (or other fields, extent, buffer) are not served after an upgrade."""
    from gisapp.tiles import disk

    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write(frames[0], meta=frames[1])
    tile_dir = TileDir(tmp_path / "tiles", store.url)
    render(store, tile_dir, ZOOMS)
    version = store.version()
    key = next(k for k in _files(tile_dir.base) if k[0] == PERMITS)
    assert tile_dir.ready(version, ZOOMS) and tile_dir.current(store, version, *key)
    monkeypatch.setattr(disk, "ENCODER", disk.ENCODER + 1)
    assert not tile_dir.ready(version, ZOOMS) and not tile_dir.current(store, version, *key)
    report = render(store, tile_dir, ZOOMS)
    assert not report["incremental"] and tile_dir.current(store, version, *key)


def test_a_feature_that_gets_or_loses_its_geometry_is_logged_with_the_box_it_has(store, frames):
    """A dossier first stored without a parcel, then given one, then without again: each write lands, and the
    change log boxes the geometry the feature has on either side."""
    after = store.changes(0, 0).last
    key = frames[0][PERMITS]["dossier_code"].iloc[3]
    moved = _moved(frames, key, 0.0, 0.0)
    box = moved.geometry.iloc[0].bounds
    store.write({PERMITS: moved.assign(geometry=None)}, mode="upsert")
    store.write({PERMITS: moved}, mode="upsert")
    store.write({PERMITS: moved.assign(geometry=None)}, mode="upsert")
    lost, got, lost_again = store.changes(after, 10).changes
    assert lost.bbox == pytest.approx(box, abs=0.01)
    assert got.bbox == pytest.approx(box, abs=0.01)
    assert lost_again.bbox == pytest.approx(box, abs=0.01)


def test_a_write_touching_many_tiles_drops_them_and_requests_build_them_back(store, frames, tmp_path, monkeypatch):
    from gisapp.tiles import disk

    tile_dir = TileDir(tmp_path / "tiles", store.url)
    render(store, tile_dir, ZOOMS)
    before = _files(tile_dir.base)
    keys = list(frames[0][PERMITS]["dossier_code"].iloc[:5])
    moved = [_moved(frames, k, 600.0 + 50 * n, -400.0, status="REFUSED") for n, k in enumerate(keys)]
    store.write({PERMITS: pd.concat(moved)}, mode="upsert")
    monkeypatch.setattr(disk, "EAGER_TILES", 2)  # more tiles than rendered at once: dropped instead
    position = tile_dir.state()
    report = render(store, tile_dir, ZOOMS)
    assert report["incremental"] and report["tiles"] == 0 and report["dropped"] > 2
    after = _files(tile_dir.base)
    gone = set(before) - set(after)
    assert gone and all(before[k] == after[k] for k in after)  # dropped, none written
    # a request built from data older than the folder's position never lands there
    layer, z, x, y = sorted(gone)[0]
    assert not tile_dir.put_current(position, layer, z, x, y, b"old")
    assert tile_dir.get(None, layer, z, x, y) is None
    # a request builds a dropped tile and puts it back into the current folder
    version = store.version()
    for key in sorted(gone):
        body = disk.shared_tile(tile_dir, store, version, *key, lambda key=key: tile_source.tile(store, *key),
                                keep=True)
        want = tile_source.tile(store, *key)
        assert _content(body, key[0]) == _content(want, key[0])
        assert tile_dir.get(None, *key) == (want if want else None)
    _assert_equal_to_a_full_render(store, tile_dir, tmp_path)


def test_a_request_reads_a_bounded_number_of_log_boxes_then_counts_the_layer_as_touched(store, frames, tmp_path,
                                                                                       monkeypatch):
    from gisapp.tiles import disk

    tile_dir = TileDir(tmp_path / "tiles", store.url)
    render(store, tile_dir, ZOOMS)
    after = tile_dir.state()["seq"]
    for n, key in enumerate(frames[0][PERMITS]["dossier_code"].iloc[:3]):
        store.write({PERMITS: _moved(frames, key, 100.0 * (n + 1), 0.0)}, mode="upsert")
    assert PERMITS not in disk.read_dirty(store, after).whole
    assert PERMITS in disk.read_dirty(store, after, max_boxes=2).whole
    monkeypatch.setattr(disk, "REQUEST_MAX_BOXES", 2)
    far = next(iter(_files(tile_dir.base)))  # any tile: the layer counts as touched everywhere
    assert not tile_dir.current(store, store.version(), PERMITS, *far[1:])


def test_a_feature_without_geometry_before_and_after_touches_no_tile(store, frames, tmp_path):
    """A dossier without a parcel edited (a status, a date) was on no tile: its change-log entry has a box that
    meets nothing, and the renderer re-renders no tile for it (not the whole layer)."""
    key = frames[0][PERMITS]["dossier_code"].iloc[4]
    bare = _moved(frames, key, 0.0, 0.0).assign(geometry=None)
    store.write({PERMITS: bare}, mode="upsert")
    tile_dir = TileDir(tmp_path / "tiles", store.url)
    render(store, tile_dir, ZOOMS)
    before = _files(tile_dir.base)
    after = store.changes(0, 0).last
    store.write({PERMITS: bare.assign(status="REFUSED")}, mode="upsert")
    (edit,) = store.changes(after, 10).changes
    assert edit.kind == "update" and edit.nowhere and edit.bbox is not None
    stats = render(store, tile_dir, ZOOMS)
    assert _files(tile_dir.base) == before, stats  # no tile written again
    assert not Change(1, PERMITS, "k", "update", None, "", (1.0, 2.0, 3.0, 4.0)).nowhere
    assert not Change(1, PERMITS, None, "replace", None, "").nowhere
