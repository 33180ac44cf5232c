"""The PostGIS store's bulk paths: a whole layer read packed by the server, findings replaced where they changed."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pytest
import shapely

from gisapp import geo, schema
from gisapp.store import postgis
from gisapp.store.base import Store, StoreError
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


def test_the_packed_read_gives_utf8_texts_whatever_the_connections_encoding(pg_url):
    """A connection set to the Vietnamese Windows code page (libpq's ``client_encoding=WIN1258``): the packed
    texts still come as UTF-8 with their lengths (the bytes and the lengths are of the same UTF-8 text)."""
    PostGISStore(pg_url, must_exist=False).write({"wards": _wards()})
    store = PostGISStore(pg_url + ("&" if "?" in pg_url else "?") + "client_encoding=WIN1258")
    with store.connection() as con:
        assert con.execute("SHOW client_encoding").fetchone()[0] == "WIN1258"
    table = store.read_arrow("wards")
    # (the stores keep an empty text as missing)
    assert table.column("name").to_pylist() == ["Phường Hòa Thọ Tây", 'tên "có" dấu,\nhai dòng', None, None, "Ω"]
    assert table.column("ward_code").to_pylist() == ["W0", None, "W2", "W3", "W4"]


@pytest.mark.parametrize("longest", [8, 17, 32, 33, 60])
def test_keys_sort_by_their_bytes_as_arrow_sorts_them(longest):
    """The whole-layer read's key order (:func:`postgis._byte_order`): prefixes, equal keys, bytes past ASCII,
    lengths on and past a word's end, keys longer than its 32 bytes (Arrow's sort): Arrow's order exactly."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(longest)
    alphabet = list("AZaz09-_ ") + ["đ", "Ω", "ư", "\x7f", "\x01"]
    keys = ["".join(rng.choice(alphabet, rng.integers(0, longest + 1))) for _ in range(3000)]
    keys = [k.encode()[:longest].decode(errors="ignore") for k in keys]
    keys += ["XD-1", "XD-10", "XD-1", "XD-", "", "XD-100000000000000", "XD-1000000000000000"]
    array = pa.array(keys, pa.string()).slice(1)  # an offset, as a column's chunk may have
    got = postgis._byte_order(array)
    assert got.tolist() == pc.sort_indices(array).to_numpy().tolist()
    assert [array[int(i)].as_py().encode() for i in got] == sorted(k.encode() for k in keys[1:])


def test_a_whole_empty_layer_reads_as_none(pg):
    pg.write({"wards": _wards().iloc[:0]})
    assert pg.read_arrow("wards") is None
    assert Store.read_arrow(pg, "wards") is None


# -- findings replaced where they changed -----------------------------------------------------------------

def _findings(n: int = 40) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(5)
    x, y = X + rng.uniform(0, 2000, n), Y + rng.uniform(0, 2000, n)
    return gpd.GeoDataFrame({
        "finding_id": [f"F-{i:04d}" for i in range(n)],
        "kind": rng.choice(["CLASH", "OPPORTUNITY", "MERGE_CANDIDATE"], n),
        "a_id": [f"VH-{i}" for i in range(n)],
        "b_id": [f"XD-{i}" if i % 4 else None for i in range(n)],
        "ward_code": rng.choice(["W0", "W1"], n),
        "overlap_area_m2": np.where(np.arange(n) % 3 == 0, np.nan, rng.uniform(0, 50, n)),
        "distance_m": rng.uniform(0, 5, n),
        "overlap_start": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 300, n), "D"),
        "overlap_end": pd.Timestamp("2026-01-01"),
        "overlap_days": [None if i % 5 == 0 else int(i) for i in range(n)],
        "detail": [f"chi tiết {i}" for i in range(n)],
    }, geometry=list(shapely.box(x, y, x + 3, y + 2)), crs=schema.STORE_CRS)


def _rows(store):
    """Each finding's physical row version (``xmin``, ``ctid``) and its hash, by id."""
    with store.connection() as con:
        return {r[0]: r[1:] for r in con.execute("SELECT finding_id, xmin::text, ctid::text, row_hash FROM findings")}


def _entries(store, after):
    return sorted((c.key, c.kind, c.bbox) for c in store.changes(after).changes)


def _same_as(store, frame):
    got = store.read("findings").reset_index(drop=True)
    want = schema.coerce(schema.get_layer("findings"), frame).sort_values("finding_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.DataFrame(got.drop(columns="geometry")),
                                  pd.DataFrame(want.drop(columns="geometry")))
    assert shapely.equals_exact(got.geometry.values, geo.to_multipolygons(want.geometry.values), 0).all()
    # the layer's recorded extent (from the coordinates the hashes read): its geometries' own
    assert {i.name: i for i in store.info()}["findings"].extent == tuple(shapely.total_bounds(want.geometry.values))


def test_replacing_the_findings_with_the_same_ones_rewrites_no_row(pg):
    frame = _findings()
    pg.write({"findings": frame}, mode="replace")
    before, last, version = _rows(pg), pg.changes().last, pg.version()
    assert all(h is not None for _, _, h in before.values())
    pg.write({"findings": frame.sample(frac=1, random_state=1)}, mode="replace", meta={"findings": {"n": 1}})
    assert _rows(pg) == before  # not one row written again
    assert _entries(pg, last) == [] and pg.version() != version and pg.meta()["findings"] == {"n": 1}
    assert pg.info()[[i.name for i in pg.info()].index("findings")].count == len(frame)
    _same_as(pg, frame)


def test_replacing_the_findings_writes_and_logs_only_what_changed(pg):
    frame = _findings()
    pg.write({"findings": frame}, mode="replace")
    before, last = _rows(pg), pg.changes().last
    new = frame.copy()
    new.loc[1, "detail"] = "đã sửa"                                   # a value
    new.loc[2, "overlap_days"] = None                                # a value made missing
    moved = shapely.affinity.translate(new.geometry.iloc[3], 0.001)   # a geometry moved by a millimetre
    new.loc[3, "geometry"] = moved
    new.loc[4, "b_id"] = ""                                          # missing stays missing (blank is missing)
    new = new.drop(index=[5])                                        # a finding gone
    added = _findings(42).iloc[[41]]                                 # a new one
    new = pd.concat([new, added], ignore_index=True)
    pg.write({"findings": gpd.GeoDataFrame(new, geometry="geometry", crs=schema.STORE_CRS)}, mode="replace")
    after = _rows(pg)
    rewritten = {k for k in after if after[k] != before.get(k)}
    assert rewritten == {"F-0001", "F-0002", "F-0003", "F-0041"}
    assert set(before) - set(after) == {"F-0005"}
    entries = _entries(pg, last)
    assert [(k, kind) for k, kind, _ in entries] == [("F-0001", "update"), ("F-0002", "update"), ("F-0003", "update"),
                                                     ("F-0005", "delete"), ("F-0041", "insert")]
    box = dict((k, b) for k, _, b in entries)
    old3, new3 = frame.geometry.iloc[3].bounds, moved.bounds
    assert box["F-0003"] == pytest.approx((old3[0], old3[1], new3[2], new3[3]))
    assert box["F-0005"] == pytest.approx(frame.geometry.iloc[5].bounds)
    _same_as(pg, new)


def test_findings_without_a_hash_are_written_again_once(pg):
    """Rows stored before migration 13 (no hash) are replaced by the next full write and get their hash."""
    frame = _findings()
    pg.write({"findings": frame}, mode="replace")
    with pg.connection() as con:
        con.execute("UPDATE findings SET row_hash = NULL WHERE finding_id IN ('F-0007', 'F-0008')")
    before = _rows(pg)
    pg.write({"findings": frame}, mode="replace")
    after = _rows(pg)
    assert {k for k in after if after[k] != before[k]} == {"F-0007", "F-0008"}
    assert after["F-0007"][2] is not None
    _same_as(pg, frame)


def test_the_stored_hashes_come_sorted_from_their_index_with_the_rows_without_one(pg):
    frame = _findings()
    pg.write({"findings": frame}, mode="replace")
    with pg.connection() as con:
        assert con.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'findings' "
                           "AND indexname = 'ix_findings_row_hash'").fetchone()[0] == 1
        con.execute("UPDATE findings SET row_hash = NULL WHERE finding_id IN ('F-0007', 'F-0008')")
        stored, unknown = postgis._stored_hashes(con, "findings")
    lay = schema.get_layer("findings")
    hashes = postgis.row_hashes(lay, schema.coerce(lay, frame)).tolist()
    assert unknown == 2
    assert stored.tolist() == sorted(hashes[:7] + hashes[9:])


def test_a_large_change_loads_the_findings_whole(pg, monkeypatch):
    monkeypatch.setattr(postgis, "CHANGED_MIN", 0)
    frame = _findings()
    pg.write({"findings": frame}, mode="replace")
    with pg.connection() as con:
        oid = con.execute("SELECT 'findings'::regclass::oid").fetchone()[0]
    new = frame.assign(detail="mới")  # every row
    pg.write({"findings": new}, mode="replace")
    with pg.connection() as con:
        assert con.execute("SELECT 'findings'::regclass::oid").fetchone()[0] != oid  # a new table swapped in
    _same_as(pg, new)
    pg.write({"findings": new}, mode="replace")  # the loaded rows carry their hashes
    with pg.connection() as con:
        assert con.execute("SELECT count(*) FROM findings WHERE row_hash IS NULL").fetchone()[0] == 0


def test_row_hashes_tell_every_field_and_coordinate_apart():
    lay = schema.get_layer("findings")
    frame = schema.coerce(lay, _findings(8))
    base = postgis.row_hashes(lay, frame)
    assert len(set(base.tolist())) == 8 and (base == postgis.row_hashes(lay, frame.copy())).all()
    changes = {"finding_id": "F-x", "kind": "CLEARANCE", "a_id": None, "b_id": "XD-1x", "ward_code": "W9",
               "overlap_area_m2": 0.0, "distance_m": -0.0, "overlap_start": pd.Timestamp("2020-01-01"),
               "overlap_end": pd.NaT, "overlap_days": 999, "detail": None}
    for column, value in changes.items():
        other = frame.copy()
        other[column] = other[column].astype(object)
        other.loc[1, column] = value
        other = schema.coerce(lay, other)
        got = postgis.row_hashes(lay, other)
        assert got[1] != base[1] and (np.delete(got, 1) == np.delete(base, 1)).all(), column
    # texts moved between neighbouring fields hash apart (lengths are hashed beside the joined text)
    a, b = frame.copy(), frame.copy()
    a.loc[0, ["a_id", "b_id"]] = ["AB", "C"]
    b.loc[0, ["a_id", "b_id"]] = ["A", "BC"]
    assert postgis.row_hashes(lay, a)[0] != postgis.row_hashes(lay, b)[0]
    moved = frame.copy()
    moved.loc[2, "geometry"] = shapely.affinity.translate(frame.geometry.iloc[2], 1e-6)
    assert postgis.row_hashes(lay, moved)[2] != base[2]
    nothing = frame.copy()
    nothing.loc[2, "geometry"] = None
    assert postgis.row_hashes(lay, nothing)[2] != base[2]


def test_row_hashes_are_the_same_in_every_process():
    """Stored hashes are compared with those of a later process: no per-process seed (``PYTHONHASHSEED``)."""
    import os
    import subprocess
    import sys

    code = ("import geopandas as gpd, shapely; from gisapp import schema; from gisapp.store import postgis; "
            "lay = schema.get_layer('findings'); "
            "f = gpd.GeoDataFrame({'finding_id': ['F-1', 'F-2'], 'kind': ['CLASH', None], 'a_id': ['a', 'b'], "
            "'overlap_area_m2': [1.5, None], 'overlap_start': ['2025-01-02', None], 'overlap_days': [3, None]}, "
            "geometry=[shapely.box(0, 0, 1, 1), None], crs=schema.STORE_CRS); "
            "print(postgis.row_hashes(lay, schema.coerce(lay, f)).tolist())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1 and len(eval(outs.pop())) == 2  # noqa: S307 - our own output


def test_a_finding_given_twice_is_refused_and_nothing_changes(pg):
    """The same row twice (same hash) is not merged into one: the write fails as the whole load does."""
    from gisapp.store.base import StoreError

    frame = _findings()
    pg.write({"findings": frame}, mode="replace")
    before = _rows(pg)
    twice = gpd.GeoDataFrame(pd.concat([frame, frame.iloc[[3]]], ignore_index=True), geometry="geometry",
                             crs=schema.STORE_CRS)
    with pytest.raises(StoreError, match="nothing was changed"):
        pg.write({"findings": twice}, mode="replace")
    assert _rows(pg) == before


def test_findings_read_back_replace_the_written_ones_without_a_write(pg):
    """The analysis gives Polygons, the store keeps MultiPolygons: either way round, the same findings hash alike."""
    frame = _findings()
    assert (frame.geometry.geom_type == "Polygon").all()
    pg.write({"findings": frame}, mode="replace")
    before = _rows(pg)
    back = pg.read("findings")
    assert (back.geometry.geom_type == "MultiPolygon").all()
    pg.write({"findings": back}, mode="replace")
    pg.write({"findings": frame}, mode="replace")
    assert _rows(pg) == before


def _history_and_index(store: PostGISStore) -> tuple[list, list]:
    with psycopg.connect(store.url, autocommit=True) as con:
        rows = con.execute("SELECT seq, layer, key, status, changed_on, note, next_on FROM status_changes "
                           "ORDER BY seq").fetchall()
        index = con.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'status_changes' "
                            "ORDER BY indexname").fetchall()
    return rows, index


def test_a_first_load_moves_its_history_in_after_the_layers_and_builds_its_index_once(pg_url, monkeypatch):
    """A first load (empty history) COPYs the history rows into a temporary table, moved into the history after
    the layers with its key index dropped and built again: the same rows, seq order and index as a history kept
    row by row (the way of later loads)."""
    frames = {"sidewalk_permits": _permits(60), "wards": _wards()}
    monkeypatch.setattr(postgis, "_HISTORY_BULK_ROWS", 10)
    store = PostGISStore(pg_url, must_exist=False)
    moved = []
    real = postgis._move_history

    def spy(con, rows, later=()):
        moved.append(rows)
        return real(con, rows, later)

    monkeypatch.setattr(postgis, "_move_history", spy)
    store.write(frames, mode="replace")
    assert moved == [60]
    rows, index = _history_and_index(store)
    typed = schema.coerce(schema.LAYERS["sidewalk_permits"], frames["sidewalk_permits"])
    assert [(r[1], r[2], r[3]) for r in rows] == [("sidewalk_permits", k, s) for k, s in
                                                  zip(typed["permit_no"], typed["status"])]
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)
    # the same as the history kept row by row: a load into a history that has rows already
    monkeypatch.setattr(postgis, "_history_empty", lambda con: False)
    store.write({"sidewalk_permits": _permits(60).iloc[:0]}, mode="replace")  # no old statuses
    with psycopg.connect(store.url, autocommit=True) as con:
        con.execute("DELETE FROM status_changes")
    store.write(frames, mode="replace")
    again, index_again = _history_and_index(store)
    assert moved == [60]  # kept row by row
    assert [r[1:] for r in again] == [r[1:] for r in rows] and index_again == index
    assert any("ix_status_changes_key" in d and "INCLUDE (status)" in d for (d,) in index)


@pytest.mark.parametrize("staged", [False, True])
def test_a_replace_sends_every_layers_history_before_the_first_layers_rows(pg, monkeypatch, staged):
    """A replace sends the history rows of every layer it writes (in the layers' order: their ``seq``) before
    the first layer's rows, so that the server has work while the client makes those rows; the layers loaded
    beside the write's transaction (``staged``: the schema is current) or in it (the write that makes it)."""
    from gisapp.demo import build as demo

    frames = demo.generate(50, 50, seed=1)
    if staged:
        pg.upgrade()
    events = []
    history, copy = postgis._write_history, postgis._copy_into

    def history_spy(con, typed, *a, **kw):
        events.extend(("history", name) for name in typed)
        return history(con, typed, *a, **kw)

    def copy_spy(con, table, layer, *a, **kw):
        events.append(("rows", layer.name))
        return copy(con, table, layer, *a, **kw)

    monkeypatch.setattr(postgis, "_write_history", history_spy)
    monkeypatch.setattr(postgis, "_copy_into", copy_spy)
    pg.write(frames, mode="replace")
    kinds = [kind for kind, _ in events]
    assert kinds == sorted(kinds) and "rows" in kinds  # ("history" < "rows")
    assert [name for kind, name in events if kind == "history" and name.endswith("permits")] == \
        ["construction_permits", "sidewalk_permits"]
    rows, _ = _history_and_index(pg)
    assert [r[1] for r in rows[-100:]] == ["construction_permits"] * 50 + ["sidewalk_permits"] * 50
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def test_history_rows_are_numbered_in_one_block_as_the_column_default_would_number_them(pg_url):
    """Each write's history rows get the next numbers of the history's sequence, in the order written, drawn as
    one block (not one ``nextval`` per row): a first load (staged), a later write (into the history) and a row
    added by the column's default after them all continue one count without a gap or a repeat."""
    store = PostGISStore(pg_url, must_exist=False)
    first = _permits(40)
    store.write({"sidewalk_permits": first, "wards": _wards()}, mode="replace")
    changed = first.iloc[:15].assign(status="CANCELLED")
    store.write({"sidewalk_permits": changed}, mode="upsert")
    store.write({"sidewalk_permits": changed.iloc[:1].assign(status="EXPIRED")}, mode="upsert")
    rows, _ = _history_and_index(store)
    typed = schema.coerce(schema.LAYERS["sidewalk_permits"], first)
    assert [(r[0], r[2], r[3]) for r in rows] == (
        [(i + 1, k, "ISSUED") for i, k in enumerate(typed["permit_no"])]
        + [(41 + i, k, "CANCELLED") for i, k in enumerate(typed["permit_no"][:15])]
        + [(56, typed["permit_no"].iloc[0], "EXPIRED")])
    with psycopg.connect(store.url, autocommit=True) as con:
        added = con.execute("INSERT INTO status_changes (layer, key, status, changed_on) "
                            "VALUES ('sidewalk_permits', 'x', 'ISSUED', current_date) RETURNING seq").fetchone()[0]
    assert added == 57


def test_a_failed_first_load_leaves_the_history_and_its_index(pg_url, monkeypatch):
    monkeypatch.setattr(postgis, "_HISTORY_BULK_ROWS", 10)
    store = PostGISStore(pg_url, must_exist=False)
    store.upgrade()
    before = _history_and_index(store)

    def boom(*a, **kw):
        raise RuntimeError("killed after the history's rows")

    monkeypatch.setattr(postgis, "_set_stats", boom)
    with pytest.raises(RuntimeError):
        store.write({"sidewalk_permits": _permits(60)}, mode="replace")
    assert _history_and_index(store) == before and before[1]
    assert store.count("sidewalk_permits") == 0


def _load_tables(store: PostGISStore) -> list:
    with psycopg.connect(store.url, autocommit=True) as con:
        return con.execute("SELECT relname FROM pg_class WHERE relname LIKE '%%load%%'").fetchall()


def test_a_replace_loads_and_indexes_beside_its_transaction_and_swaps_at_its_end(pg, monkeypatch):
    """Each replaced layer is COPYed into a load table committed apart and indexed on another connection while
    the next is loaded; readers see the old layers until the write's commit, which swaps them in with the old
    tables' indexes (the same definitions) and statistics."""
    pg.write({"sidewalk_permits": _permits(40), "wards": _wards()}, mode="replace")  # the schema is current now
    with psycopg.connect(pg.url, autocommit=True) as con:
        indexes = con.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
                              "('sidewalk_permits', 'wards') ORDER BY 1").fetchall()
    seen = []

    def swap(con, layer):  # in the write's transaction, before the first swap: both load tables committed
        seen.append((layer.name, PostGISStore(pg.url).count(layer.name), sorted(r[0] for r in _load_tables(pg))))

    monkeypatch.setattr(postgis, "_before_swap", swap)
    pg.write({"sidewalk_permits": _permits(60, seed=4), "wards": _wards(3)}, mode="replace")
    assert {name: count for name, count, _ in seen} == {"sidewalk_permits": 40, "wards": 5}
    assert "sidewalk_permits__load" in seen[0][2] and "wards__load" in seen[0][2]
    assert pg.count("sidewalk_permits") == 60 and pg.count("wards") == 3 and not _load_tables(pg)
    with psycopg.connect(pg.url, autocommit=True) as con:
        assert con.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN "
                           "('sidewalk_permits', 'wards') ORDER BY 1").fetchall() == indexes
        assert con.execute("SELECT reltuples FROM pg_class WHERE relname = 'sidewalk_permits'").fetchone()[0] == 60


def test_a_replace_whose_index_build_fails_changes_nothing_and_leaves_no_load_table(pg):
    pg.write({"sidewalk_permits": _permits(40), "wards": _wards()}, mode="replace")
    before = pg.read("sidewalk_permits")["permit_no"].tolist(), pg.read("wards")["ward_key"].tolist()
    twice = pd.concat([_permits(30, seed=5), _permits(30, seed=5).iloc[:2]], ignore_index=True)
    with pytest.raises(StoreError, match="nothing was changed"):
        pg.write({"sidewalk_permits": twice, "wards": _wards(3)}, mode="replace")
    assert (pg.read("sidewalk_permits")["permit_no"].tolist(), pg.read("wards")["ward_key"].tolist()) == before
    assert not _load_tables(pg)


def test_a_failed_replace_under_the_writers_lock_drops_its_load_tables_and_keeps_the_lock(pg, monkeypatch):
    pg.write({"sidewalk_permits": _permits(40), "wards": _wards()}, mode="replace")

    def boom(con, layer):
        raise OSError("disk full")

    monkeypatch.setattr(postgis, "_before_swap", boom)
    with pg.write_lock():
        with pytest.raises(OSError, match="disk full"):
            pg.write({"sidewalk_permits": _permits(50, seed=6), "wards": _wards(3)}, mode="replace")
        assert not _load_tables(pg) and pg.count("sidewalk_permits") == 40
        monkeypatch.undo()
        pg.write({"wards": _wards(3)}, mode="replace")  # the lock is still this thread's
    assert pg.count("wards") == 3 and not _load_tables(pg)


def _stored(store: PostGISStore, after_seq: int, after_change: int) -> tuple:
    """Every layer's rows, the history rows after ``after_seq`` (their ``seq`` counted from the first) and the
    change-log entries after ``after_change`` (in ``seq`` order), each without the time it was written."""
    layers = {name: store.read(name).to_wkb() for name in ("wards", "construction_permits", "sidewalk_permits",
                                                           "sidewalks")}
    with store.connection() as con:
        history = con.execute("SELECT seq - (SELECT min(seq) FROM status_changes WHERE seq > %s), layer, key, "
                              "status, note FROM status_changes WHERE seq > %s ORDER BY seq",
                              [after_seq, after_seq]).fetchall()
    entries = [(c.layer, c.key, c.kind, c.status, c.bbox) for c in store.changes(after_change, limit=1000).changes]
    return layers, history, entries


def _marks(store: PostGISStore) -> tuple[int, int]:
    with store.connection() as con:
        return (con.execute("SELECT coalesce(max(seq), 0) FROM status_changes").fetchone()[0],
                con.execute("SELECT coalesce(max(seq), 0) FROM gisapp_changes").fetchone()[0])


def test_a_staged_replace_of_every_layer_stores_what_one_transaction_stores(pg, monkeypatch):
    """The staged replace (layers without a history first, the last layer's builds two at a time, each layer's
    ANALYZE beside its builds or after its expression indexes) stores the rows, history and change log a
    replace of the same layers in the write's own transaction stores, with the same indexes and the
    statistics of the expression index."""
    from gisapp.demo import build as demo

    first, second = demo.generate(120, 120, seed=1), demo.generate(150, 150, seed=2)
    pg.write(first, mode="replace")  # the schema is current now: the next replace is staged
    with psycopg.connect(pg.url, autocommit=True) as con:
        indexes = con.execute("SELECT tablename, indexname, indexdef FROM pg_indexes "
                              "WHERE schemaname = 'public' ORDER BY 2").fetchall()
    loads = []
    monkeypatch.setattr(postgis, "_before_swap", lambda con, layer: loads.append(layer.name))
    marks = _marks(pg)
    pg.write(second, mode="replace")
    staged = _stored(pg, *marks)
    assert sorted(loads) == sorted(second) and not _load_tables(pg)
    with psycopg.connect(pg.url, autocommit=True) as con:
        assert con.execute("SELECT tablename, indexname, indexdef FROM pg_indexes "
                           "WHERE schemaname = 'public' ORDER BY 2").fetchall() == indexes
        assert con.execute("SELECT count(*) FROM pg_stats WHERE tablename = 'ix_construction_permits_works_start'"
                           ).fetchone()[0] == 1
        assert con.execute("SELECT count(DISTINCT tablename) FROM pg_stats WHERE tablename IN "
                           "('wards', 'construction_permits', 'sidewalk_permits', 'sidewalks')").fetchone()[0] == 4

    pg.write(first, mode="replace")
    monkeypatch.setattr(postgis, "_Staging", lambda url: None)  # every layer in the write's transaction
    loads.clear()
    marks = _marks(pg)
    pg.write(second, mode="replace")
    assert sorted(loads) == sorted(second)
    together = _stored(pg, *marks)
    for name in staged[0]:
        pd.testing.assert_frame_equal(pd.DataFrame(staged[0][name]), pd.DataFrame(together[0][name]))
    assert staged[1] == together[1] and len(staged[1]) > 100
    assert staged[2] == together[2] and list(dict.fromkeys(e[0] for e in staged[2])) == list(second)
