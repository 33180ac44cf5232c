"""A GeoPackage replace of a large layer written as the rows it changes (issue 15 item 3: a full ``gisapp analyze``
that finds what is stored writes little).

The layer is compared with the stored one by key, field by field and geometry by geometry: changed rows are
deleted and written again, removed ones deleted, new ones inserted, the rest left as they are (same ``fid``);
the change log names only those; the R-tree and GDAL's feature count follow; a failure changes nothing; and
the stored findings stay equal to a full analysis.  Small data (the Cẩm Lệ demo), with the size above which a
replace counts as large (:data:`gisapp.store.base.REPLACE_DETAIL_MAX`) lowered so that its findings are.
"""

from __future__ import annotations

import contextlib
import sqlite3

import pandas as pd
import pyogrio
import pytest
import shapely
from shapely import affinity

from gisapp.analysis.incremental import stored_params
from gisapp.analysis.run import analyze_store
from gisapp.store import StoreError, base
from gisapp.store import gpkg as gpkg_store
from tests.helpers import FINDING_COLUMNS, assert_findings_current, fail_writes_after_logging
from tests.stores import analyzed_store

F = "findings"


@pytest.fixture
def store(tmp_path, request, demo_frames, monkeypatch):
    s = analyzed_store("gpkg", tmp_path, request, *demo_frames)
    monkeypatch.setattr(base, "REPLACE_DETAIL_MAX", 20)
    assert len(s.read(F)) > 100
    return s


def fids(store) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(store.path)) as con:
        return dict(con.execute(f"SELECT finding_id, fid FROM {F}").fetchall())


def logged(store, after: int) -> list[tuple]:
    return sorted((c.layer, c.key, c.kind) for c in store.changes(after, 10_000).changes)


def assert_stored(store, want: pd.DataFrame) -> None:
    have = store.read(F).sort_values("finding_id").reset_index(drop=True)
    want = want.sort_values("finding_id").reset_index(drop=True)
    assert list(have["finding_id"]) == list(want["finding_id"])
    for col in FINDING_COLUMNS:
        same = (have[col] == want[col]) | (have[col].isna() & want[col].isna())
        assert same.all(), col
    assert shapely.equals_exact(have.geometry.values, want.geometry.values).all()
    assert pyogrio.read_info(store.path, layer=F)["features"] == len(want)  # GDAL's count, kept by triggers


def test_a_replace_rewrites_the_changed_rows_only(store):
    before, after = store.read(F), store.changes(0, 0).last
    old_fids = fids(store)
    new = before.copy()
    keys = list(new["finding_id"])
    changed, moved, removed = keys[0], keys[1], keys[2]
    new.loc[0, "overlap_days"] = (new.loc[0, "overlap_days"] or 0) + 1
    old_place = new.geometry.iloc[1]
    new.loc[1, "geometry"] = affinity.translate(old_place, 5000, 0)
    added = new.iloc[[3]].copy()
    added["finding_id"] = "F-NEW-0001"
    new = pd.concat([new.drop(index=2), added], ignore_index=True)
    store.write({F: new}, mode="replace", meta={"findings": {"note": "patched"}})

    assert_stored(store, new)
    assert store.meta()["findings"] == {"note": "patched"}
    now = fids(store)
    untouched = set(keys) - {changed, moved, removed}
    assert all(now[k] == old_fids[k] for k in untouched)  # not written again
    assert now[changed] != old_fids[changed] and now[moved] != old_fids[moved] and removed not in now
    assert logged(store, after) == sorted([(F, changed, "update"), (F, moved, "update"), (F, removed, "delete"),
                                           (F, "F-NEW-0001", "insert")])
    box = next(c.bbox for c in store.changes(after, 100).changes if c.key == moved)  # its old and new place
    assert box[0] <= old_place.bounds[0] and box[2] >= old_place.bounds[2] + 5000
    # the R-tree follows: found at its new place, no longer at its old one
    x1, y1, x2, y2 = old_place.bounds
    assert moved in {r[0] for r in store.rows_in_box(F, (x1 + 5000, y1, x2 + 5000, y2), fields=["finding_id"])}
    assert moved not in {r[0] for r in store.rows_in_box(F, (x1, y1, x2, y2), fields=["finding_id"])}


def test_a_replace_with_what_is_stored_writes_no_row_and_logs_nothing(store):
    before, after, old_fids, version = store.read(F), store.changes(0, 0).last, fids(store), store.version()
    store.write({F: before.sample(frac=1, random_state=1)}, mode="replace", meta={"findings": {"run": 2}})
    assert fids(store) == old_fids and logged(store, after) == []
    assert store.meta()["findings"] == {"run": 2} and store.version() != version
    assert_stored(store, before)


def test_a_replace_changing_many_rows_is_written_whole(store):
    before, after = store.read(F), store.changes(0, 0).last
    new = before.copy()
    new["overlap_days"] = new["overlap_days"].fillna(0) + 1  # every row
    store.write({F: new}, mode="replace")
    assert_stored(store, new)
    assert logged(store, after) == [(F, None, "replace")]


def test_a_failed_patch_changes_nothing(store, monkeypatch):
    before, after, old_fids = store.read(F), store.changes(0, 0).last, fids(store)
    new = before.iloc[1:].copy()
    fail_writes_after_logging(store, monkeypatch)
    with pytest.raises((OSError, StoreError)):
        store.write({F: new}, mode="replace")
    assert fids(store) == old_fids and store.changes(0, 0).last == after
    assert_stored(store, before)


def test_a_full_analysis_after_edits_is_patched_in_and_equals_the_stored_findings(store, monkeypatch):
    permits = store.read("sidewalk_permits")
    edited = permits.iloc[:3].copy()
    edited["end_on"] = edited["end_on"] + pd.Timedelta(days=200)
    edited.loc[edited.index[0], "geometry"] = affinity.translate(edited.geometry.iloc[0], 3, 2)
    store.write({"sidewalk_permits": edited}, mode="upsert")
    old_fids, after = fids(store), store.changes(0, 0).last
    patches = []
    real = gpkg_store._rows_into
    monkeypatch.setattr(gpkg_store, "_rows_into", lambda con, lay, gone, rows: (patches.append(lay.name),
                                                                               real(con, lay, gone, rows)))
    result, _ = analyze_store(store, stored_params(store))
    store.write({F: result.findings}, mode="replace", meta={"findings": result.params.as_meta()})
    assert patches == [F]  # written as its changed rows
    assert_findings_current(store)
    now = fids(store)
    kept = [k for k in now if now[k] == old_fids.get(k)]
    assert kept and len(kept) >= 0.8 * len(now)  # most rows untouched
    assert {c.key for c in store.changes(after, 10_000).changes} == \
        set(now).symmetric_difference(old_fids) | {k for k in now if k in old_fids and now[k] != old_fids[k]}


def _edited(findings: pd.DataFrame) -> pd.DataFrame:
    new = findings.copy()
    new.loc[0, "overlap_days"] = (new.loc[0, "overlap_days"] or 0) + 1
    return new.drop(index=2).reset_index(drop=True)


def test_a_replace_after_a_prefetch_compares_with_the_rows_read_meanwhile(store):
    before, after = store.read(F), store.changes(0, 0).last
    new = _edited(before)
    store.prefetch_replace(F)  # gisapp analyze: the stored findings read while the layers are analysed
    store.write({F: new}, mode="replace")
    assert_stored(store, new)
    assert logged(store, after) == sorted([(F, before["finding_id"][0], "update"),
                                           (F, before["finding_id"][2], "delete")])


def test_a_prefetch_of_a_file_changed_since_is_not_used(store):
    before = store.read(F)
    store.prefetch_replace(F)
    # another writer (another store object: its own lock holder) changes the findings meanwhile
    other = gpkg_store.GeoPackageStore(store.path)
    moved = before.iloc[[5]].copy()
    moved["overlap_days"] = (moved["overlap_days"].fillna(0) + 7).astype(moved["overlap_days"].dtype)
    other.write({F: moved}, mode="upsert")
    after = store.changes(0, 0).last
    new = _edited(before)  # row 5 as it was: compared with the rows read now, it changed back
    store.write({F: new}, mode="replace")
    assert_stored(store, new)
    assert logged(store, after) == sorted([(F, before["finding_id"][0], "update"),
                                           (F, before["finding_id"][2], "delete"),
                                           (F, before["finding_id"][5], "update")])


def test_gisapp_analyze_stores_the_findings_of_a_full_analysis(store):
    from click.testing import CliRunner

    from gisapp.cli import cli

    permits = store.read("sidewalk_permits")
    edited = permits.iloc[:2].copy()
    edited["end_on"] = edited["end_on"] + pd.Timedelta(days=200)
    store.write({"sidewalk_permits": edited}, mode="upsert")
    result = CliRunner().invoke(cli, ["--store", str(store.path), "analyze", "--quiet"])
    assert result.exit_code == 0, result.output
    assert_findings_current(store)
