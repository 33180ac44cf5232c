"""A GeoPackage write of large layers through child processes (issue 15 item 3: loading 1M features).

A layer of at least :data:`gisapp.store.gpkg.CHILD_ROWS` features is written by GDAL in a child process into a
GeoPackage of its own, its indexes built there, then moved into the store (SQLite copies the table, its
indexes and its R-tree).  The store must come out as a write in this process makes it: the same rows, fids,
R-tree, indexes, GeoPackage metadata and triggers; a failed child changes nothing and leaves no file.  The demo's
layers, with the threshold lowered so that they all go through a child.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3

import pyogrio
import pytest
import shapely

from gisapp.filters import Filter
from gisapp.schema import LAYERS
from gisapp.store import gpkg as gpkg_store
from gisapp.store.gpkg import GeoPackageStore

#: Tables whose rows hold times of the write (compared without them).
_TIMED = {"status_changes": "changed_at", "gpkg_contents": "last_change", "gisapp_changes": "changed_at"}


def dump(path) -> dict:
    """Every table's rows (in rowid order, times of the write left out) and the schema's objects."""
    out = {}
    with contextlib.closing(sqlite3.connect(path)) as con:
        out["schema"] = sorted(con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                                           "WHERE name NOT LIKE 'sqlite_%'").fetchall())
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                   "AND name NOT LIKE 'sqlite_%' AND name != 'gisapp_change_log'").fetchall():
            cols = [r[1] for r in con.execute(f'PRAGMA table_info("{name}")')
                    if r[1] not in (_TIMED.get(name), "changed_on")]
            rows = con.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{name}" '
                               "ORDER BY rowid").fetchall()
            out[name] = sorted(rows, key=repr) if name.startswith("gpkg_") else rows  # GeoPackage metadata: a set
    return out


@pytest.fixture
def frames(demo_frames):
    frames, meta = demo_frames
    return frames, meta


def written(path, frames, meta, monkeypatch, child_rows: int) -> GeoPackageStore:
    monkeypatch.setattr(gpkg_store, "CHILD_ROWS", child_rows)
    store = GeoPackageStore(path, must_exist=False)
    store.write(frames, meta=meta)
    return store


@pytest.mark.parametrize(("child_rows", "stream_rows"), [
    (1, 100_000), (1000, 100_000),  # every layer in a child; or small ones written meanwhile
    (1, 37)])  # each layer sent to its child in many batches (the last one shorter)
def test_a_new_store_written_through_children_equals_one_written_here(tmp_path, frames, monkeypatch, child_rows,
                                                                       stream_rows):
    assert len(frames[0]["sidewalk_permits"]) < 1000 < len(frames[0]["construction_permits"])
    here = written(tmp_path / "here.gpkg", *frames, monkeypatch, 10**9)
    monkeypatch.setattr(gpkg_store, "STREAM_ROWS", stream_rows)
    there = written(tmp_path / "there.gpkg", *frames, monkeypatch, child_rows)
    a, b = dump(here.path), dump(there.path)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".") or "tmp" in p.name) == \
        ["here.gpkg", "there.gpkg"]  # no child's file left
    for name in frames[0]:
        assert pyogrio.read_info(there.path, layer=name)["features"] == len(frames[0][name])


@pytest.mark.parametrize("splice", [True, False])
def test_a_layer_moved_in_page_by_page_equals_one_copied_row_by_row(tmp_path, frames, monkeypatch, splice):
    """A new store's layers written by children into files of their own are put into the store as pages
    (:func:`gisapp.store.gpkg._splice_layer`), and so is its history, built in a file of its own meanwhile; where
    that cannot be done SQLite copies their rows.  Some rows and index keys here are longer than a page (overflow
    pages, and index keys that overflow the interior pages' cells too): the store is the one written in this
    process, and SQLite finds it sound."""
    frames, meta = frames
    first = "construction_permits"  # written into the store's copy by its child, which adds its history rows there
    frames = {first: frames[first], **{n: f for n, f in frames.items() if n != first}}
    frame = frames["sidewalk_permits"].copy()
    long = frame.index[::3]
    frame.loc[long, "permit_no"] = [f"{v}-{'x' * (1500 + 397 * k)}" for k, v in enumerate(frame.loc[long, "permit_no"])]
    frame.loc[long, "address"] = [f"{'số ' * 3000}{k}" for k in range(len(long))]
    frames["sidewalk_permits"] = frame
    here = written(tmp_path / "here.gpkg", frames, meta, monkeypatch, 10**9)
    spliced = []
    splice_layer = gpkg_store._splice_layer
    monkeypatch.setattr(gpkg_store, "_splice_layer", lambda *a: spliced.append(a[2].name) or splice_layer(*a))
    history = []  # the history built beside the move (both permit layers went through children)
    move_history = gpkg_store._move_history
    monkeypatch.setattr(gpkg_store, "_move_history", lambda *a: history.append(a[2]) or move_history(*a))
    if not splice:
        monkeypatch.setattr(gpkg_store, "_spliceable", lambda *a: False)
    there = written(tmp_path / "there.gpkg", frames, meta, monkeypatch, 1)
    assert spliced == (list(frames)[1:] + ["status_changes"] if splice else [])  # (the first: in the copy itself)
    assert len(history) == 1 and history[0].name == "status_changes"
    a, b = dump(here.path), dump(there.path)
    for name in a:
        assert a[name] == b[name], name
    with contextlib.closing(sqlite3.connect(there.path)) as con:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("SELECT count(*) FROM dbstat WHERE name = 'ix_sidewalk_permits_permit_no' "
                           "AND pagetype = 'overflow'").fetchone()[0] > 0
        for name in frames:  # the R-trees: each node where its parent says, each feature where its node says
            assert con.execute(f"SELECT rtreecheck('rtree_{name}_geom')").fetchone() == ("ok",)
    for key in frame["permit_no"].iloc[:4]:  # found by the key's index
        assert there.get("sidewalk_permits", key)["permit_no"].tolist() == [key]


@pytest.mark.parametrize("kernel", ["copies", "refuses", "copies nothing"])
def test_pages_are_copied_where_the_file_system_cannot_copy_them_itself(tmp_path, monkeypatch, kernel):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(bytes(range(256)) * 200_000)  # 51 MB: more than one read
    dst.write_bytes(b"x" * 10)
    if kernel == "refuses":
        def refuse(*args):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        monkeypatch.setattr(os, "copy_file_range", refuse)
    elif kernel == "copies nothing":
        monkeypatch.setattr(os, "copy_file_range", lambda *args: 0)
    with open(src, "rb") as a, open(dst, "r+b") as b:
        gpkg_store._copy_range(a.fileno(), b.fileno(), 7, 50_000_000, 3)
    assert dst.read_bytes() == b"xxx" + src.read_bytes()[7:50_000_007]


def test_a_replace_in_place_through_children_equals_one_written_here(tmp_path, frames, monkeypatch):
    stores = []
    for name, rows in (("here", 10**9), ("there", 1)):
        store = written(tmp_path / f"{name}.gpkg", *frames, monkeypatch, 10**9)
        moved = {n: f.iloc[::-1].iloc[: len(f) - 1] for n, f in frames[0].items() if n != "wards"}
        monkeypatch.setattr(gpkg_store, "CHILD_ROWS", rows)
        store.write(moved, mode="replace")
        stores.append(store)
    a, b = dump(stores[0].path), dump(stores[1].path)
    for name in a:
        assert a[name] == b[name], name


def test_a_store_written_through_children_reads_searches_and_takes_upserts(tmp_path, frames, monkeypatch):
    store = written(tmp_path / "there.gpkg", *frames, monkeypatch, 1)
    layer = "sidewalk_permits"
    frame = store.read(layer)
    first = frame.iloc[[0]].copy()
    bounds = first.geometry.values[0].bounds
    box = Filter(bbox=_wgs84_box(bounds))
    assert first["permit_no"].iloc[0] in set(store.read(layer, box)["permit_no"])
    # an upsert in place: the triggers keep the R-tree and GDAL's count
    first["geometry"] = shapely.affinity.translate(first.geometry.values[0], 5000, 5000)
    store.write({layer: first}, mode="upsert")
    assert first["permit_no"].iloc[0] not in set(store.read(layer, box)["permit_no"])
    assert pyogrio.read_info(store.path, layer=layer)["features"] == len(frame)
    with contextlib.closing(sqlite3.connect(store.path)) as con:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    for name in frames[0]:
        for sql in gpkg_store._index_statements(LAYERS[name]):
            assert sql.split('"')[1] in names


def test_a_failed_child_changes_nothing_and_leaves_no_file(tmp_path, frames, monkeypatch):
    store = written(tmp_path / "store.gpkg", *frames, monkeypatch, 10**9)
    before = dump(store.path)
    monkeypatch.setattr(gpkg_store, "CHILD_ROWS", 1)
    monkeypatch.setattr(gpkg_store, "_CHILD_CODE", "import sys; sys.exit('the disk is full')")
    # a replace (in the file itself) and an upsert of more than IN_PLACE_ROWS (into a copy of the file)
    for mode, layer in (("replace", "sidewalk_permits"), ("upsert", "sidewalks")):
        assert mode == "replace" or len(frames[0][layer]) > gpkg_store.IN_PLACE_ROWS
        with pytest.raises(OSError, match="the disk is full"):
            store.write({layer: frames[0][layer].iloc[:-1]}, mode=mode)
        assert dump(store.path) == before
        assert sorted(p.name for p in tmp_path.iterdir() if "tmp" in p.name) == []


def test_a_write_that_fails_while_its_rows_stream_to_a_child_changes_nothing(tmp_path, frames, monkeypatch):
    """Deriving the rows fails after the child got some of them: the child must not end the layer with what it
    got (it is stopped), the store stays as it was and no file is left; a new store is not created."""
    store = written(tmp_path / "store.gpkg", *frames, monkeypatch, 10**9)
    before = dump(store.path)
    monkeypatch.setattr(gpkg_store, "CHILD_ROWS", 1)
    monkeypatch.setattr(gpkg_store, "STREAM_ROWS", 50)
    made = []
    arrow_table = gpkg_store._arrow_table

    def failing(layer, frame):
        if len(frame):  # (not the empty layers a new store gets meanwhile)
            made.append(len(frame))
            if len(made) == 4:
                raise MemoryError("no room for the next rows")
        return arrow_table(layer, frame)

    monkeypatch.setattr(gpkg_store, "_arrow_table", failing)
    for path, mode in ((store.path, "replace"), (tmp_path / "new.gpkg", "replace")):
        made.clear()
        with pytest.raises(MemoryError):
            GeoPackageStore(path, must_exist=False).write(
                {"construction_permits": frames[0]["construction_permits"]}, mode=mode)
        assert len(made) == 4
    assert dump(store.path) == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".") or "tmp" in p.name) == \
        ["store.gpkg"]


def _wgs84_box(bounds) -> tuple[float, float, float, float]:
    from gisapp import geo
    from gisapp.schema import STORE_CRS, WEB_CRS

    t = geo.transformer(STORE_CRS, WEB_CRS)
    x1, y1 = t.transform(bounds[0], bounds[1])
    x2, y2 = t.transform(bounds[2], bounds[3])
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


@pytest.mark.parametrize("page_size", [1024, 4096, 65536])
def test_pages_put_in_never_take_sqlite_s_lock_byte_page(page_size):
    """The pages of a layer put in after a file's last page skip the page holding the byte at 1 GiB, which SQLite
    never uses (a 450k-permit load whose second layer crossed it was unreadable: "database disk image is
    malformed"); before and after it they follow each other."""
    lock = 2**30 // page_size + 1
    assert gpkg_store._pages_after(10, 3, page_size).tolist() == [11, 12, 13]
    assert gpkg_store._pages_after(lock - 3, 4, page_size).tolist() == [lock - 2, lock - 1, lock + 1, lock + 2]
    assert gpkg_store._pages_after(lock - 1, 2, page_size).tolist() == [lock + 1, lock + 2]
    assert gpkg_store._pages_after(lock, 2, page_size).tolist() == [lock + 1, lock + 2]
    assert gpkg_store._pages_after(lock + 5, 2, page_size).tolist() == [lock + 6, lock + 7]
    assert gpkg_store._pages_after(lock - 3, 0, page_size).tolist() == []
