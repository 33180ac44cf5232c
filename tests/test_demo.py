"""The Cẩm Lệ demo data: the report's figures, sound geometry, and the deliberate cases."""

from __future__ import annotations

import time
import unicodedata

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from gisapp import domain, schema
from gisapp.cli import cli
from gisapp.demo import build as demo
from gisapp.demo import wards as demo_wards
from gisapp.store.gpkg import GeoPackageStore

AS_OF = pd.Timestamp("2022-07-08")
TINY = 1e-6  # m²: below this an intersection is a shared edge, not an overlap


def overlapping_pairs(geoms) -> np.ndarray:
    """Index pairs (i < j) of geometries whose intersection has a positive area."""
    geoms = np.asarray(geoms, dtype=object)
    i, j = shapely.STRtree(geoms).query(geoms, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    area = shapely.area(shapely.intersection(geoms[i], geoms[j]))
    return np.column_stack([i, j])[area > TINY]


def wards_2022(frames) -> gpd.GeoDataFrame:
    """The 2022 ward set."""
    wards = frames["wards"]
    return wards[wards["valid_to"].notna()].reset_index(drop=True)


def ward_of(geoms, wards) -> np.ndarray:
    """Code of the ward that contains each geometry (None if none does)."""
    tree = shapely.STRtree(wards.geometry.values)
    i, w = tree.query(np.asarray(geoms, dtype=object), predicate="within")
    out = np.full(len(geoms), None, dtype=object)
    out[i] = wards["ward_code"].to_numpy()[w]
    return out


def sidewalk_pairs(sw: gpd.GeoDataFrame) -> pd.DataFrame:
    """Pairs of sidewalk permits overlapping in space, with the gap in days between their periods."""
    pairs = overlapping_pairs(sw.geometry.values)
    a, b = sw.iloc[pairs[:, 0]].reset_index(drop=True), sw.iloc[pairs[:, 1]].reset_index(drop=True)
    latest_start = np.maximum(a["start_on"], b["start_on"])
    earliest_end = np.minimum(a["end_on"], b["end_on"])
    return pd.DataFrame({"a": a["permit_no"], "b": b["permit_no"],
                         "gap_days": (latest_start - earliest_end).dt.days})


def works_overlap(permit, dossier) -> bool:
    """Whether a sidewalk permit falls in a dossier's works (from issue or receipt, a year)."""
    start = dossier["issued_on"] if pd.notna(dossier["issued_on"]) else dossier["received_on"]
    return permit["start_on"] <= start + pd.Timedelta(days=365) and permit["end_on"] >= start


# --- the report's figures --------------------------------------------------


def test_dossier_counts_match_the_report(demo_frames):
    frames, meta = demo_frames
    cp = frames["construction_permits"]
    assert meta == {"as_of": "2022-07-08", "demo": True, "source": demo.SOURCE}
    assert len(cp) == 2534
    assert cp["received_on"].between("2022-01-01", "2022-06-30").all()
    calendar = domain.Calendar()
    assert all(calendar.is_working_day(d.date()) for d in cp["received_on"].drop_duplicates())
    assert (cp["channel"] == "ONLINE").sum() == round(2534 * 0.545) == 1381
    assert abs((cp["channel"] == "ONLINE").mean() - 0.545) < 0.0005
    assert set(cp["channel"]) == {"ONLINE", "IN_PERSON", "POST"}


def test_nothing_late_at_the_as_of_date(demo_frames):
    cp = demo_frames[0]["construction_permits"]
    timeliness = domain.timeliness(cp["status"], cp["due_on"], cp["completed_on"], AS_OF)
    assert not timeliness.isin(["LATE", "OVERDUE"]).any()
    assert timeliness.notna().all()
    due = domain.due_date(cp["received_on"], cp["procedure"], cp["work_category"], domain.Calendar())
    assert (due.to_numpy() == cp["due_on"].to_numpy()).all()
    is_open = cp["status"].isin(domain.OPEN_STATUSES)
    assert is_open.sum() > 50, "late-June dossiers are still open"
    assert (cp.loc[is_open, "due_on"] > AS_OF).all()
    closed = cp[~is_open]
    assert closed["completed_on"].between(closed["received_on"], closed["due_on"]).all()
    assert (closed["completed_on"] == closed["due_on"]).sum() > 10, "some finish on the due date"
    granted = cp["status"].isin(["RETURNED", "RESULT_READY"])
    assert cp.loc[granted, "issued_on"].notna().all() and cp.loc[granted, "permit_no"].str.endswith("/GPXD").all()
    assert cp.loc[~granted, "permit_no"].isna().all()
    assert cp["permit_no"].dropna().is_unique


def test_plausible_mix_and_formats(demo_frames):
    cp = demo_frames[0]["construction_permits"]
    assert cp["procedure"].value_counts().index[:2].tolist() == ["NEW_BUILD", "RENOVATION"]
    assert set(cp["procedure"]) == set(domain.PROCEDURES)
    assert (cp["work_category"] == "HOUSE").mean() > 0.9
    assert cp["floors"].between(1, 6).all() and cp["floors"].between(2, 4).mean() > 0.6
    assert (cp["footprint_m2"] <= cp["plot_area_m2"]).all() and (cp["floor_area_m2"] >= cp["footprint_m2"]).all()
    assert cp["dossier_code"].str.fullmatch(r"XD-\d{6}-\d{4}").all() and cp["dossier_code"].is_unique
    assert cp["owner_id_no"].str.fullmatch(r"048\d{9}").all()
    assert cp["site_address"].str.fullmatch(r"\d+ [^,]+, phường .+").all()
    assert cp.duplicated(["ward_code", "map_sheet_no", "parcel_no"]).sum() == 0
    for frame in demo_frames[0].values():
        text = frame.select_dtypes(exclude=["number", "datetime", "geometry"])
        for value in text.stack():
            assert not isinstance(value, str) or unicodedata.is_normalized("NFC", value)


# --- geometry ---------------------------------------------------------------


def test_ward_sets(demo_frames):
    wards = demo_frames[0]["wards"]
    assert wards["ward_key"].is_unique
    assert (wards["ward_key"] == wards["ward_code"] + "-" + wards["valid_from"].dt.strftime("%Y-%m-%d")).all()
    old, new = wards[wards["valid_to"].notna()], wards[wards["valid_to"].isna()]
    assert sorted(old["ward_code"]) == ["20260", "20305", "20306", "20311", "20312", "20314"]
    assert sorted(new["name"]) == ["An Khê", "Cẩm Lệ", "Hòa Xuân"]
    assert (old["approximate"] == 1).all() and (new["approximate"] == 0).all()
    assert set(old["successor_code"]) == set(new["ward_code"]) == {"20260", "20305", "20314"}
    assert old["source"].str.contains("OpenStreetMap").all() and new["source"].str.contains("OpenStreetMap").all()
    for subset in (old, new):
        assert subset.is_valid.all() and len(overlapping_pairs(subset.geometry.values)) == 0
    # The three 2022 wards of today's Cẩm Lệ are exactly it; the others lie inside their 2025 ward.
    areas = dict(zip(old["name"], old.area / 1e6))
    assert areas["Khuê Trung"] == pytest.approx(2.6, abs=0.01) and areas["Hòa An"] == pytest.approx(2.7, abs=0.01)
    for code, parent in zip(new["ward_code"], new.geometry):
        children = shapely.union_all(old.geometry[old["successor_code"] == code].values)
        assert shapely.area(shapely.difference(children, parent)) < 1.0
    cam_le = new.geometry[new["ward_code"] == "20260"].iloc[0]
    assert shapely.union_all(old.geometry[old["successor_code"] == "20260"].values).area == pytest.approx(cam_le.area)


def test_split_bands_cuts_the_areas_asked_for():
    square = shapely.box(0, 0, 100, 100)
    pieces = demo_wards.split_bands(square, [2000, 3000], [0, 90])
    assert [round(p.area) for p in pieces] == [2000, 3000, 5000]
    assert pieces[0].bounds[1] == pytest.approx(80, abs=0.05)  # the northern 20 m
    assert len(overlapping_pairs(pieces)) == 0
    with pytest.raises(ValueError, match="cannot cut"):
        demo_wards.split_bands(square, [20000], [0])


def test_parcels_are_lots_inside_their_ward_and_never_overlap(demo_frames):
    frames = demo_frames[0]
    cp = frames["construction_permits"]
    geoms = cp.geometry.values
    assert shapely.is_valid(geoms).all() and set(cp.geom_type) <= {"Polygon", "MultiPolygon"}
    assert len(overlapping_pairs(geoms)) == 0
    np.testing.assert_allclose(cp["plot_area_m2"], shapely.area(geoms))
    assert cp["plot_area_m2"].between(60, 150).mean() > 0.9
    found = ward_of(geoms, wards_2022(frames))
    assert all(found != None)  # noqa: E711 - every parcel lies in one ward
    mismatched = cp[found != cp["ward_code"].to_numpy()]
    assert len(mismatched) == 5, "the deliberate WARD_MISMATCH cases"


def test_sidewalk_permits_lie_on_the_sidewalk(demo_frames):
    frames = demo_frames[0]
    sw = frames["sidewalk_permits"]
    assert 350 <= len(sw) <= 450 and sw["permit_no"].str.fullmatch(r"VH-2022-\d{4}").all()
    assert shapely.is_valid(sw.geometry.values).all()
    assert (sw["used_width_m"] <= sw["sidewalk_width_m"]).all() and (sw["used_width_m"] > 0).all()
    assert sw["sidewalk_width_m"].between(3, 6).all()
    np.testing.assert_allclose(sw["used_area_m2"], shapely.area(sw.geometry.values))
    assert (ward_of(sw.geometry.values, wards_2022(frames)) == sw["ward_code"].to_numpy()).all()
    assert sw["start_on"].dt.year.eq(2022).all() and sw["end_on"].dt.year.eq(2022).all()
    assert (sw["status"] == "RETURNED").mean() > 0.9
    parcels = frames["construction_permits"].geometry.values
    inside = shapely.STRtree(parcels).query(sw.geometry.values, predicate="intersects")
    overlap = shapely.area(shapely.intersection(sw.geometry.values[inside[0]], parcels[inside[1]]))
    assert (overlap < TINY).all(), "permits touch parcels but never cover them"


def test_sidewalk_purposes_and_links(demo_frames):
    frames = demo_frames[0]
    sw, cp = frames["sidewalk_permits"], frames["construction_permits"].set_index("dossier_code")
    purposes = sw["purpose"].value_counts()
    assert purposes.index[0] == "MATERIALS" and purposes["MATERIALS"] == round(0.45 * len(sw))
    assert set(purposes.index) == set(domain.SIDEWALK_PURPOSES)
    linked = sw[sw["construction_dossier_code"].notna()]
    assert len(linked) == round(0.6 * purposes["MATERIALS"]) and (linked["purpose"] == "MATERIALS").all()
    for _, permit in linked.iterrows():
        dossier = cp.loc[permit["construction_dossier_code"]]
        assert shapely.distance(permit.geometry, dossier.geometry) < 0.01, "fronts its dossier's parcel"
        start = dossier["issued_on"] if pd.notna(dossier["issued_on"]) else dossier["received_on"]
        assert permit["start_on"] >= start and works_overlap(permit, dossier)


def test_deliberate_sidewalk_cases(demo_frames):
    frames = demo_frames[0]
    sw, cp = frames["sidewalk_permits"], frames["construction_permits"]
    pairs = sidewalk_pairs(sw)
    clashes = pairs[pairs["gap_days"] <= 0]
    opportunities = pairs[pairs["gap_days"] > 0]
    assert len(clashes) == 15
    assert pd.concat([clashes["a"], clashes["b"]]).value_counts().iloc[0] == 3, "one permit overlaps three"
    assert len(opportunities) == 10 and (opportunities["gap_days"] <= 90).all()
    assert ((sw["sidewalk_width_m"] - sw["used_width_m"]) < 1.5).sum() == 20

    # Merge candidates: unlinked permits within 5 m of a parcel whose works they overlap.
    parcels = cp.geometry.values
    near = shapely.STRtree(parcels).query(sw.geometry.values, predicate="dwithin", distance=5.0)
    candidates = {sw["permit_no"].iat[i] for i, j in zip(*near)
                  if pd.isna(sw["construction_dossier_code"].iat[i]) and works_overlap(sw.iloc[i], cp.iloc[j])}
    assert len(candidates) == 25
    assert (sw.set_index("permit_no").loc[sorted(candidates), "purpose"] == "MATERIALS").all()
    # Nothing else comes near a construction site.
    near10 = shapely.STRtree(parcels).query(sw.geometry.values, predicate="dwithin", distance=10.0)[0]
    assert set(sw["permit_no"].iloc[np.unique(near10)]) == candidates | set(
        sw.loc[sw["construction_dossier_code"].notna(), "permit_no"])


def test_every_layer_validates(demo_frames):
    for name, frame in demo_frames[0].items():
        assert list(frame.columns) == [*schema.get_layer(name).field_names, "geometry"]
        assert frame.crs == schema.STORE_CRS
        assert schema.validate(schema.get_layer(name), frame) == [], name


# --- determinism, scale, speed ---------------------------------------------


def test_builds_are_identical(demo_frames):
    again, meta = demo.build(domain.Calendar())
    assert meta == demo_frames[1]
    for name, frame in demo_frames[0].items():
        pd.testing.assert_frame_equal(again[name].drop(columns="geometry"), frame.drop(columns="geometry"))
        assert shapely.equals_exact(again[name].geometry.values, frame.geometry.values, tolerance=0).all()


def test_another_seed_gives_other_data_with_the_same_figures():
    frames, _ = demo.build(domain.Calendar(), seed=7)
    cp = frames["construction_permits"]
    assert len(cp) == 2534 and (cp["channel"] == "ONLINE").sum() == 1381
    assert len(sidewalk_pairs(frames["sidewalk_permits"]).query("gap_days <= 0")) == 15


@pytest.mark.parametrize("scale", [0.1, 2.0])
def test_scale(scale):
    frames, _ = demo.build(domain.Calendar(), scale=scale)
    cp, sw = frames["construction_permits"], frames["sidewalk_permits"]
    assert len(cp) == round(2534 * scale) and len(sw) == round(400 * scale)
    assert (cp["channel"] == "ONLINE").sum() == round(len(cp) * 0.545)
    for name, frame in frames.items():
        assert schema.validate(schema.get_layer(name), frame) == []
    assert len(overlapping_pairs(cp.geometry.values)) == 0


def test_build_is_fast():
    started = time.perf_counter()
    demo.build(domain.Calendar())
    assert time.perf_counter() - started < 5


@pytest.mark.slow
def test_generate_for_benchmarks_grows_the_extent():
    frames = demo.generate(100_000, 2_000, seed=1)
    cp, sw = frames["construction_permits"], frames["sidewalk_permits"]
    assert len(cp) == 100_000 and len(sw) == 2_000
    real_km2 = wards_2022({"wards": demo_wards.wards_frame()}).area.sum() / 1e6
    assert frames["wards"].area.sum() / 1e6 > 1.4 * real_km2
    assert (ward_of(cp.geometry.values[::50], frames["wards"]) != None).all()  # noqa: E711
    assert cp["dossier_code"].is_unique and sw["permit_no"].is_unique
    assert len(overlapping_pairs(cp.geometry.values)) == 0
    with pytest.raises(ValueError, match="extent_km2"):
        demo.generate(200_000, extent_km2=5.0)


# --- store and command line --------------------------------------------------


def test_round_trip_through_a_geopackage(demo_frames, tmp_path):
    frames, meta = demo_frames
    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write(frames, meta=meta)
    assert store.meta() == meta
    for name, frame in frames.items():
        layer = schema.get_layer(name)
        assert store.count(name) == len(frame)
        back = store.read(name)
        expected = schema.coerce(layer, frame).sort_values(layer.key, ignore_index=True)
        pd.testing.assert_frame_equal(back.drop(columns="geometry"), expected.drop(columns="geometry"),
                                      check_dtype=False)
        assert shapely.equals(back.geometry.values, expected.geometry.values).all()


def test_demo_store_fixture(demo_store):
    assert demo_store.count("construction_permits") == 2534
    assert demo_store.as_of().isoformat() == "2022-07-08"


@pytest.mark.slow
def test_cli_seed_then_layers(tmp_path):
    path = str(tmp_path / "x.gpkg")
    result = CliRunner().invoke(cli, ["--store", path, "seed"])
    assert result.exit_code == 0, result.output
    assert "construction_permits 2534" in result.output
    result = CliRunner().invoke(cli, ["--store", path, "layers"])
    assert result.exit_code == 0, result.output
    counts = {line.split()[0]: line.split()[1] for line in result.output.splitlines()[3:]}
    assert counts == {"wards": "9", "construction_permits": "2534", "sidewalk_permits": str(
        len(demo.build(domain.Calendar())[0]["sidewalk_permits"])), "findings": "183",
        "sidewalks": str(len(demo.build(domain.Calendar())[0]["sidewalks"]))}
    assert "as of: 2022-07-08" in result.output
