"""Findings kept current by every write (issue 15, item 1): incremental == a full analysis, on both backends.

Random edit sequences (insert, move, change dates, change the declared
ward, delete; dossiers and sidewalk permits, several in one write) through
:func:`gisapp.analysis.incremental.write_with_findings`, the stored findings
compared with a full analysis run every few steps; an upsert (and a
replace) import through the real ``gisapp import`` command; two writers at
once. Small data: the Cẩm Lệ demo (2,534 dossiers, 400 sidewalk permits).
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner
from shapely import affinity

from gisapp import schema
from gisapp.analysis import incremental
from gisapp.cli import cli
from gisapp.schema import STORE_CRS, WEB_CRS
from gisapp.store import open_store
from tests.helpers import assert_findings_current
from tests.stores import BACKENDS, analyzed_store

C, S = "construction_permits", "sidewalk_permits"
KEYS = {C: "dossier_code", S: "permit_no"}


def _moved(geom, target, rng) -> object:
    """``geom`` translated so that its centre lies a few metres from ``target``'s centre."""
    c, t = shapely.centroid(geom), shapely.centroid(target)
    angle = rng.uniform(0, 2 * np.pi)
    reach = rng.uniform(0.0, 6.0)
    return affinity.translate(geom, t.x - c.x + reach * np.cos(angle), t.y - c.y + reach * np.sin(angle))


def _days(value, shift: int):
    return pd.Timestamp(value) + pd.Timedelta(days=int(shift)) if pd.notna(value) else value


def _edit(store, rng, step: int, done: set[str]) -> tuple[dict, dict]:
    """One random change of one feature: (``frames`` rows to upsert, ``delete`` keys), by layer."""
    layer = C if rng.random() < 0.4 else S
    rows = store.read(layer)
    permits = store.read(S)
    row = rows.iloc[int(rng.integers(len(rows)))].copy()
    key = row[KEYS[layer]]
    if key in done:
        return {}, {}
    done.add(key)
    op = rng.choice(["move", "dates", "insert", "delete"] + (["ward"] if layer == C else ["link"]))
    target = permits.geometry.values[int(rng.integers(len(permits)))]
    if op == "delete":
        return {}, {layer: [key]}
    if op == "insert":
        row[KEYS[layer]] = f"{'VH-2099-T' if layer == S else 'XD-2099-T'}{step:03d}{int(rng.integers(1000)):03d}"
        row["geometry"] = _moved(row.geometry, target, rng)
    elif op == "move":
        row["geometry"] = _moved(row.geometry, target, rng)
    elif op == "dates":
        shift = int(rng.integers(-90, 91))
        for name in (("received_on", "issued_on") if layer == C else ("start_on", "end_on")):
            row[name] = _days(row[name], shift)
        if layer == S and rng.random() < 0.5:
            row["end_on"] = _days(row["end_on"], int(rng.integers(0, 40)))
    elif op == "ward":
        row["ward_code"] = str(rng.choice(["20260", "20305", "20306", "20311", "20312", "20314"]))
    elif op == "link":
        near = store.read(C)
        row["construction_dossier_code"] = near["dossier_code"].iloc[int(rng.integers(len(near)))]
        row["geometry"] = _moved(row.geometry, near.geometry.iloc[0], rng) if rng.random() < 0.3 else row.geometry
    frame = gpd_frame(layer, [row])
    return {layer: frame}, {}


def gpd_frame(layer: str, rows: list) -> object:
    import geopandas as gpd

    lay = schema.get_layer(layer)
    frame = pd.DataFrame(rows)[[*lay.field_names, "geometry"]].reset_index(drop=True)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=STORE_CRS)


def _merge(parts: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    frames: dict = {}
    delete: dict = {}
    for f, d in parts:
        for name, frame in f.items():
            frames[name] = pd.concat([frames[name], frame], ignore_index=True) if name in frames else frame
        for name, keys in d.items():
            delete.setdefault(name, []).extend(keys)
    return frames, delete


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_edit_sequences_keep_the_findings_equal_to_a_full_analysis(backend, demo_frames, tmp_path, request):
    frames, meta = demo_frames
    store = analyzed_store(backend, tmp_path, request, frames, meta)
    rng = np.random.default_rng(15 if backend == "gpkg" else 16)
    written = 0
    for step in range(12):
        done: set[str] = set()
        parts = [_edit(store, rng, step, done) for _ in range(int(rng.integers(1, 4)))]
        data, delete = _merge(parts)
        if not data and not delete:
            continue
        change = incremental.write_with_findings(store, data, delete=delete)
        assert change is not None and not change.full
        written += len(change.findings)
        if step % 3 == 2:
            assert_findings_current(store)
    assert_findings_current(store)
    assert written > 0  # the edits were not all far from everything


def test_a_moved_permit_changes_the_clearance_of_its_neighbours(demo_frames, tmp_path, request):
    """The free passage beside a permit counts its neighbours: moving one next to another re-judges that one."""
    frames, meta = demo_frames
    store = analyzed_store("gpkg", tmp_path, request, frames, meta)
    permits = store.read(S)
    walks = store.read("sidewalks")
    on = shapely.STRtree(walks.geometry.values).query(permits.geometry.values, predicate="intersects")[0]
    a, b = permits.iloc[on[0]], permits.iloc[on[-1]]
    moved = a.copy()
    moved["geometry"] = affinity.translate(
        a.geometry, *(np.array(shapely.centroid(b.geometry).coords[0]) - shapely.centroid(a.geometry).coords[0]
                      + [0.6, 0.0]))
    moved["start_on"], moved["end_on"] = b["start_on"], b["end_on"]
    change = incremental.write_with_findings(store, {S: gpd_frame(S, [moved])})
    assert b["permit_no"] in change.permits  # judged again, beside the permit now next to it
    assert_findings_current(store)


def _import_file(store, path) -> None:
    """Five stored sidewalk permits changed (two moved, one re-dated) and two new ones, as WGS84 GeoJSON."""
    permits = store.read(S).iloc[:5].copy().reset_index(drop=True)
    target = store.read(S).geometry.values[40:45]
    permits.loc[0, "geometry"] = affinity.translate(target[0], 0.8, 0.3)
    permits.loc[1, "geometry"] = affinity.translate(target[1], -0.5, 0.5)
    permits.loc[2, "start_on"] = permits.loc[2, "start_on"] + pd.Timedelta(days=45)
    permits.loc[2, "end_on"] = permits.loc[2, "end_on"] + pd.Timedelta(days=60)
    extra = permits.iloc[:2].copy()
    extra["permit_no"] = ["VH-2099-0001", "VH-2099-0002"]
    extra["geometry"] = [affinity.translate(target[2], 0.4, 0.4), affinity.translate(target[3], 1, 0)]
    out = pd.concat([permits, extra], ignore_index=True)
    for name in ("start_on", "end_on"):
        out[name] = out[name].dt.strftime("%Y-%m-%d")
    import geopandas as gpd

    gpd.GeoDataFrame(out, geometry="geometry", crs=STORE_CRS).to_crs(WEB_CRS).to_file(path, driver="GeoJSON")


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_import_through_the_command_keeps_the_findings_current(backend, demo_frames, tmp_path, request):
    frames, meta = demo_frames
    store = analyzed_store(backend, tmp_path, request, frames, meta)
    url = store.url
    path = tmp_path / "permits.geojson"
    _import_file(store, path)
    before = store.count(S)
    result = CliRunner().invoke(cli, ["--store", url, "import", S, str(path), "--mode", "upsert"])
    assert result.exit_code == 0, result.output
    assert store.count(S) == before + 2
    assert_findings_current(store)
    if backend == "gpkg":  # a replace import runs the full analysis in the same write
        result = CliRunner().invoke(cli, ["--store", url, "import", S, str(path), "--mode", "replace"])
        assert result.exit_code == 0, result.output
        assert store.count(S) == 7
        assert_findings_current(store)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_writers_at_once_end_equal_to_a_full_analysis(backend, demo_frames, tmp_path, request):
    frames, meta = demo_frames
    store = analyzed_store(backend, tmp_path, request, frames, meta)
    permits = store.read(S)
    dossiers = store.read(C)
    spot = permits.geometry.values[10]
    # writer 0: a new permit on another's place and a dossier moved beside it; writer 1: a permit over both
    first = permits.iloc[3].copy()
    first["permit_no"], first["geometry"] = "VH-2099-A001", affinity.translate(spot, 0.7, 0.0)
    dossier = dossiers.iloc[7].copy()
    dossier["geometry"] = affinity.translate(
        dossier.geometry, *(np.array(shapely.centroid(spot).coords[0]) - shapely.centroid(dossier.geometry).coords[0]
                            + [12.0, 0.0]))
    second = permits.iloc[4].copy()
    second["permit_no"], second["geometry"] = "VH-2099-B001", affinity.translate(spot, -0.4, 0.3)
    second["start_on"], second["end_on"] = first["start_on"], first["end_on"]
    jobs = [({S: gpd_frame(S, [first]), C: gpd_frame(C, [dossier])}, {S: [permits["permit_no"].iloc[11]]}),
            ({S: gpd_frame(S, [second])}, {})]
    barrier = threading.Barrier(2)
    errors: list = []

    def writer(k: int) -> None:
        own = open_store(store.url)
        barrier.wait()
        try:
            incremental.write_with_findings(own, jobs[k][0], delete=jobs[k][1])
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(store.read_keys(S, ["VH-2099-A001", "VH-2099-B001"])) == 2
    findings = store.read("findings")
    pair = findings[(findings["kind"] == "CLASH") & findings["a_id"].isin(["VH-2099-A001", "VH-2099-B001"])
                    & findings["b_id"].isin(["VH-2099-A001", "VH-2099-B001"])]
    assert len(pair) == 1  # the one written second saw the first
    assert_findings_current(store)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_keys_and_read_boxes(backend, demo_frames, tmp_path, request):
    frames, meta = demo_frames
    store = analyzed_store(backend, tmp_path, request, frames, meta)
    permits = store.read(S)
    keys = list(permits["permit_no"].iloc[[5, 1, 9]]) + ["VH-NOPE"]
    got = store.read_keys(S, keys)
    assert sorted(got["permit_no"]) == sorted(keys[:3]) and list(got.columns) == list(permits.columns)
    assert len(store.read_keys(S, [])) == 0
    bounds = shapely.bounds(permits.geometry.values[[3, 200]])
    boxes = np.vstack([bounds, bounds[:1]])  # a box twice: its features once
    got = store.read_boxes(S, boxes)
    expect = shapely.STRtree(permits.geometry.values).query(shapely.box(*bounds.T), predicate="intersects")[1]
    assert set(got["permit_no"]) >= set(permits["permit_no"].iloc[np.unique(expect)])
    assert got["permit_no"].is_unique and list(got.columns) == list(permits.columns)
    assert len(store.read_boxes(S, np.empty((0, 4)))) == 0


def test_unpermitted_findings_alone_do_not_make_a_store_analysed(tmp_path, demo_frames):
    """An inspection's UNPERMITTED finding is no analysis: a first save there writes no partial set of findings."""
    from gisapp.analysis.incremental import analysed_params
    from gisapp.analysis.overlaps import empty_findings
    from gisapp.store.gpkg import GeoPackageStore

    frames, _ = demo_frames
    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write({"wards": frames["wards"]})
    assert analysed_params(store) is None
    finding = empty_findings().reindex([0])
    finding = finding.assign(finding_id="U-1", kind="UNPERMITTED", a_id="INS-1", ward_code="20311",
                             geometry=[shapely.box(548000, 1770000, 548002, 1770002)])
    store.write({"findings": finding}, mode="upsert")
    assert store.count("findings") == 1 and analysed_params(store) is None
    store.write({"findings": finding.assign(finding_id="C-1", kind="CLASH")}, mode="upsert")
    assert analysed_params(store) is not None
