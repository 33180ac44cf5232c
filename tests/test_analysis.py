"""The overlap analysis: hand-made shapes with known answers, bad input, ids, summary, CLI, demo."""

from __future__ import annotations

import atexit
import datetime as dt
import gc
import itertools
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.affinity
from click.testing import CliRunner

from gisapp import schema
from gisapp.analysis import overlaps as analysis
from gisapp.analysis.overlaps import KINDS, TOTAL, AnalysisParams, find_overlaps, finding_ids, summarize
from gisapp.analysis.spatial import NAT, WardIndex, bbox_pairs
from gisapp.cli import cli
from gisapp.cli.analyze import parse_summary
from gisapp.demo import build as demo
from gisapp.store.gpkg import GeoPackageStore

X0, Y0 = 547_000.0, 1_770_000.0  # near Cẩm Lệ, EPSG:5899 metres: realistic float magnitudes


def box(x0, y0, x1, y1):
    """A box at offsets (metres) from (X0, Y0)."""
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def dossiers(*rows) -> gpd.GeoDataFrame:
    """Construction dossiers: (code, geometry, received[, issued[, ward]])."""
    records = []
    for code, geom, received, *rest in rows:
        issued = rest[0] if rest else None
        ward = rest[1] if len(rest) > 1 else "W1"
        records.append({"dossier_code": code, "ward_code": ward, "received_on": received, "issued_on": issued,
                        "geometry": geom})
    return gpd.GeoDataFrame(pd.DataFrame(records, columns=["dossier_code", "ward_code", "received_on",
                                                           "issued_on", "geometry"]),
                            geometry="geometry", crs="EPSG:5899")


def permits(*rows) -> gpd.GeoDataFrame:
    """Sidewalk permits: (number, geometry, start, end[, link[, sidewalk width, used width]])."""
    records = []
    for number, geom, start, end, *rest in rows:
        link = rest[0] if rest else None
        width, used = rest[1:3] if len(rest) > 2 else (4.0, 1.0)
        records.append({"permit_no": number, "ward_code": "W1", "start_on": start, "end_on": end,
                        "sidewalk_width_m": width, "used_width_m": used, "construction_dossier_code": link,
                        "geometry": geom})
    columns = ["permit_no", "ward_code", "start_on", "end_on", "sidewalk_width_m", "used_width_m",
               "construction_dossier_code", "geometry"]
    return gpd.GeoDataFrame(pd.DataFrame(records, columns=columns), geometry="geometry", crs="EPSG:5899")


def ward_layer(*rows) -> gpd.GeoDataFrame:
    """Wards: (code, geometry, valid_from[, valid_to]); key = code-valid_from."""
    records = [{"ward_key": f"{code}-{start}", "ward_code": code, "name": f"Phường {code}",
                "valid_from": start, "valid_to": rest[0] if rest else None, "geometry": geom}
               for code, geom, start, *rest in rows]
    columns = ["ward_key", "ward_code", "name", "valid_from", "valid_to", "geometry"]
    return gpd.GeoDataFrame(pd.DataFrame(records, columns=columns), geometry="geometry", crs="EPSG:5899")


ONE_WARD = ward_layer(("W1", box(-1000, -1000, 1000, 1000), "2000-01-01"))
NO_DOSSIERS = dossiers()
NO_PERMITS = permits()


def run(construction=NO_DOSSIERS, sidewalk=NO_PERMITS, wards=ONE_WARD, **params):
    """find_overlaps with the given parameters."""
    return find_overlaps(construction, sidewalk, wards, AnalysisParams(**params))


def of_kind(result, kind) -> pd.DataFrame:
    """The findings of one kind, without geometry, indexed by (a_id, b_id) (a missing b_id as '')."""
    f = result.findings.assign(b_id=result.findings["b_id"].fillna(""))
    return f[f["kind"] == kind].set_index(["a_id", "b_id"]).drop(columns="geometry")


def pairs(result, kind) -> set:
    """The (a_id, b_id) pairs of one kind."""
    return set(of_kind(result, kind).index)


# -- clashes and opportunities ------------------------------------------------------------


def test_touching_edges_and_corners_are_not_clashes():
    sw = permits(("P1", box(0, 0, 10, 2), "2024-03-01", "2024-03-31"),
                 ("P2", box(10, 0, 20, 2), "2024-03-01", "2024-03-31"),    # shares an edge with P1
                 ("P3", box(20, 2, 25, 4), "2024-03-01", "2024-03-31"),    # touches P2 at a corner
                 ("P4", box(24.99, 0, 30, 2), "2024-03-01", "2024-03-31"))  # overlaps P3? no: P2 by 0
    result = run(sidewalk=sw)
    assert pairs(result, "CLASH") == set()
    assert pairs(result, "OPPORTUNITY") == set()
    sw2 = permits(("P1", box(0, 0, 10, 2), "2024-03-01", "2024-03-31"),
                  ("P2", box(9.99, 0, 20, 2), "2024-03-01", "2024-03-31"))  # 1 cm overlap
    clash = of_kind(run(sidewalk=sw2), "CLASH")
    assert list(clash.index) == [("P1", "P2")]
    assert clash["overlap_area_m2"].iloc[0] == pytest.approx(0.02, abs=1e-6)


def test_same_day_end_and_start_overlap_by_one_day():
    sw = permits(("P1", box(0, 0, 10, 2), "2024-03-01", "2024-03-10"),
                 ("P2", box(5, 0, 15, 2), "2024-03-10", "2024-03-20"),
                 ("P3", box(0, 1, 3, 3), "2024-03-11", "2024-03-11"))  # the day after P1 ends
    result = run(sidewalk=sw)
    clash = of_kind(result, "CLASH")
    assert list(clash.index) == [("P1", "P2")]
    row = clash.iloc[0]
    assert row["overlap_start"] == row["overlap_end"] == pd.Timestamp("2024-03-10")
    assert row["overlap_days"] == 1
    assert row["overlap_area_m2"] == pytest.approx(10.0)
    assert row["detail"] == "Chồng lấn 10,0 m² trong 1 ngày"
    opp = of_kind(result, "OPPORTUNITY")
    assert list(opp.index) == [("P1", "P3")]
    assert opp.iloc[0]["overlap_days"] == 0
    assert (opp.iloc[0]["overlap_start"], opp.iloc[0]["overlap_end"]) == (pd.Timestamp("2024-03-01"),
                                                                           pd.Timestamp("2024-03-11"))
    assert "cách nhau 1 ngày" in opp.iloc[0]["detail"]


@pytest.mark.parametrize("gap_days, second_start, expected", [
    (90, "2024-04-30", {("P1", "P2")}),  # 90 days after 2024-01-31
    (90, "2024-05-01", set()),           # 91 days
    (0, "2024-02-01", set()),            # adjacent days, no gap allowed
    (1, "2024-02-01", {("P1", "P2")}),
])
def test_opportunity_gap(gap_days, second_start, expected):
    sw = permits(("P1", box(0, 0, 10, 2), "2024-01-01", "2024-01-31"),
                 ("P2", box(5, 0, 15, 2), second_start, "2024-12-31"))
    result = run(sidewalk=sw, gap_days=gap_days)
    assert pairs(result, "OPPORTUNITY") == expected
    assert pairs(result, "CLASH") == set()


def test_one_permit_overlapping_three_others_gives_three_clashes():
    hub = box(0, 0, 12, 3)
    sw = permits(("HUB", hub, "2024-05-01", "2024-05-03"),
                 ("A", box(-2, 1, 2, 5), "2024-04-01", "2024-05-01"),
                 ("B", box(5, -1, 7, 1), "2024-05-03", "2024-06-01"),
                 ("C", box(10, 2, 14, 6), "2024-05-02", "2024-05-02"),
                 ("D", box(30, 0, 40, 3), "2024-05-01", "2024-05-03"))  # far away
    result = run(sidewalk=sw)
    assert pairs(result, "CLASH") == {("A", "HUB"), ("B", "HUB"), ("C", "HUB")}
    clash = of_kind(result, "CLASH")
    assert clash.loc[("A", "HUB"), "overlap_area_m2"] == pytest.approx(2 * 2)
    assert clash.loc[("B", "HUB"), "overlap_area_m2"] == pytest.approx(2 * 1)
    assert clash.loc[("C", "HUB"), "overlap_days"] == 1


def test_multipolygons_clash_part_by_part():
    two_parts = shapely.MultiPolygon([box(0, 0, 4, 2), box(10, 0, 14, 2)])
    sw = permits(("M", two_parts, "2024-01-01", "2024-01-31"),
                 ("L", box(3, 0, 5, 2), "2024-01-10", "2024-01-20"),      # meets the left part
                 ("S", box(2, 1, 12, 3), "2024-01-15", "2024-02-15"),     # meets both parts
                 ("G", box(5, 0, 9, 2), "2024-01-01", "2024-01-31"))      # in the gap: nothing
    result = run(sidewalk=sw)
    assert pairs(result, "CLASH") == {("L", "M"), ("M", "S"), ("L", "S"), ("G", "S")}  # not G-M: the gap
    ms = result.findings.set_index(["a_id", "b_id"]).loc[("M", "S")]
    assert ms["geometry"].geom_type == "MultiPolygon" and len(ms["geometry"].geoms) == 2
    assert ms["overlap_area_m2"] == pytest.approx(2 * 1 + 2 * 1)


# -- merge candidates and linked permits --------------------------------------------------


@pytest.mark.parametrize("gap, expected", [(0.0, True), (4.99, True), (5.0, True), (5.01, False)])
def test_distance_d_is_within_and_d_plus_1cm_is_not(gap, expected):
    parcel = box(0, 0, 10, 20)
    cons = dossiers(("XD1", parcel, "2024-01-01", "2024-01-15"))
    sw = permits(("P1", box(0, -gap - 2, 10, -gap), "2024-02-01", "2024-02-10"))
    result = run(cons, sw)
    found = of_kind(result, "MERGE_CANDIDATE")
    assert (("XD1", "P1") in found.index) is expected
    if expected:
        assert found.loc[("XD1", "P1"), "distance_m"] == pytest.approx(gap, abs=1e-9)


def test_distance_is_a_parameter_and_diagonal_distance_is_euclidean():
    cons = dossiers(("XD1", box(0, 0, 10, 20), "2024-01-01"))
    # corner to corner: 3 m east and 4 m south → 5 m apart
    sw = permits(("P1", box(13, -6, 15, -4), "2024-02-01", "2024-02-10"))
    assert pairs(run(cons, sw), "MERGE_CANDIDATE") == {("XD1", "P1")}
    assert pairs(run(cons, sw, distance_m=4.99), "MERGE_CANDIDATE") == set()
    # 4.5 m in each axis: within the box test, 6.36 m apart: not a candidate
    sw2 = permits(("P2", box(14.5, -6.5, 16, -4.5), "2024-02-01", "2024-02-10"))
    assert pairs(run(cons, sw2), "MERGE_CANDIDATE") == set()


def test_works_period_from_issue_or_receipt_inclusive():
    parcel = box(0, 0, 10, 20)
    cons = dossiers(("ISSUED", parcel, "2023-12-01", "2024-01-15"),
                    ("PENDING", box(100, 0, 110, 20), "2024-01-15"))
    sw = permits(("BEFORE", box(0, -2, 5, -1), "2024-01-01", "2024-01-14"),       # ends the day before the issue
                 ("LAST", box(5, -2, 10, -1), "2025-01-14", "2025-02-01"),        # starts on the last works day
                 ("AFTER", box(0, -4, 5, -3), "2025-01-15", "2025-02-01"),        # the day after
                 ("P-LAST", box(100, -2, 110, -1), "2025-01-14", "2025-01-14"),
                 ("P-AFTER", box(100, -4, 110, -3), "2025-01-15", "2025-01-20"))
    result = run(cons, sw)
    found = of_kind(result, "MERGE_CANDIDATE")
    assert set(found.index) == {("ISSUED", "LAST"), ("PENDING", "P-LAST")}
    assert found.loc[("ISSUED", "LAST"), "overlap_days"] == 1
    assert pairs(run(cons, sw, works_months=13), "MERGE_CANDIDATE") >= {("ISSUED", "AFTER"), ("PENDING", "P-AFTER")}


def test_linked_permits_are_linked_not_candidates():
    cons = dossiers(("XD1", box(0, 0, 10, 20), "2024-01-01"), ("XD2", box(12, 0, 22, 20), "2024-01-01"))
    sw = permits(("P1", box(8, -2, 14, -1), "2024-02-01", "2024-02-10", "XD1"))  # near both, linked to XD1
    result = run(cons, sw)
    assert pairs(result, "LINKED") == {("XD1", "P1")}
    assert pairs(result, "MERGE_CANDIDATE") == {("XD2", "P1")}
    linked = result.findings[result.findings["kind"] == "LINKED"].iloc[0]
    assert linked["geometry"].equals(shapely.MultiPolygon([box(8, -2, 14, -1)]))
    assert linked["distance_m"] == pytest.approx(1.0)


def test_a_permit_is_linked_to_the_dossier_its_code_names_exactly():
    # a code repeated (the later dossier skipped as a duplicate), near-misses of the text, a blank link
    cons = dossiers(("XD1", box(0, 0, 10, 20), "2024-01-01"), ("XD1", box(12, 0, 22, 20), "2024-01-01"),
                    ("xd2", box(30, 0, 40, 20), "2024-01-01"))
    sw = permits(("P1", box(8, -2, 14, -1), "2024-02-01", "2024-02-10", "XD1"),
                 ("P2", box(30, -2, 34, -1), "2024-02-01", "2024-02-10", "XD2"),
                 ("P3", box(36, -2, 40, -1), "2024-02-01", "2024-02-10", "xd2 "),
                 ("P4", box(0, -2, 4, -1), "2024-02-01", "2024-02-10", ""),
                 ("P5", box(31, -4, 33, -3), "2024-02-01", "2024-02-10", "xd2"))
    result = run(cons, sw)
    assert pairs(result, "LINKED") == {("XD1", "P1"), ("xd2", "P5")}
    assert pairs(result, "MERGE_CANDIDATE") == {("XD1", "P4"), ("xd2", "P2"), ("xd2", "P3")}


def test_a_clash_names_the_smaller_permit_number_first_by_code_point():
    # 'Đ' (U+0110) sorts after 'Z' and 'z' as text, and so does its UTF-8 (0xC4 0x90)
    sw = permits(("Đ-1", box(0, 0, 10, 2), "2024-03-01", "2024-03-31"),
                 ("Z-1", box(5, 0, 15, 2), "2024-03-10", "2024-04-30"),
                 ("z-1", box(8, 0, 12, 2), "2024-05-20", "2024-05-30"),
                 ("Đa-1", box(9, 0, 11, 2), "2024-03-05", "2024-03-06"))
    result = run(sidewalk=sw)
    assert pairs(result, "CLASH") == {("Z-1", "Đ-1"), ("Đ-1", "Đa-1")}
    assert pairs(result, "OPPORTUNITY") == {("Z-1", "z-1"), ("Z-1", "Đa-1"), ("z-1", "Đ-1"), ("z-1", "Đa-1")}


def test_skipped_rows_keep_their_declared_ward_as_the_column_gives_it():
    sw = permits(("P1", box(0, 0, 10, 2), "2024-03-01", None), ("P2", box(0, 4, 10, 6), "2024-03-01", None))
    cons = dossiers(("XD1", box(0, 0, 10, 20), None, None, " W 2 "), ("XD2", box(0, 0, 10, 20), None, None, None))
    got = run(cons, sw).skipped.set_index("id")["ward_code"]
    assert got.to_dict() == {"P1": "W1", "P2": "W1", "XD1": " W 2 ", "XD2": None}  # text as given
    # a column that is not all text: every value made text and stripped, as the whole column would be
    cons["ward_code"] = pd.Series([" W 2 ", 7], dtype=object)
    got = run(cons, sw).skipped.set_index("id")["ward_code"]
    assert got.to_dict() == {"P1": "W1", "P2": "W1", "XD1": "W 2", "XD2": "7"}
    assert list(analysis._text(cons["ward_code"], np.array([0]))) == ["W 2"]
    assert list(analysis._text(pd.Series([" a ", "b", 3], dtype=object), np.array([0, 1]))) == ["a", "b"]
    assert list(analysis._text(pd.Series([" a ", "b", None], dtype=object), np.array([0, 2]))) == [" a ", None]


def test_multipolygon_parcel_uses_its_nearest_part():
    parcel = shapely.MultiPolygon([box(0, 0, 10, 10), box(50, 0, 60, 10)])
    cons = dossiers(("XD1", parcel, "2024-01-01"))
    sw = permits(("P1", box(50, -5, 60, -3), "2024-02-01", "2024-02-10"))
    found = of_kind(run(cons, sw), "MERGE_CANDIDATE")
    assert found.loc[("XD1", "P1"), "distance_m"] == pytest.approx(3.0)


def test_as_of_skips_later_dossiers_and_ignores_later_issue_dates():
    cons = dossiers(("EARLY", box(0, 0, 10, 20), "2024-01-01", "2024-09-01"),
                    ("LATE", box(100, 0, 110, 20), "2024-08-01"))
    sw = permits(("P1", box(0, -2, 10, -1), "2024-06-01", "2024-06-05"),
                 ("P2", box(100, -2, 110, -1), "2024-08-05", "2024-08-06"))
    plain = run(cons, sw)
    assert pairs(plain, "MERGE_CANDIDATE") == {("LATE", "P2")}  # EARLY's works start on 2024-09-01
    dated = run(cons, sw, as_of=dt.date(2024, 7, 1))
    assert pairs(dated, "MERGE_CANDIDATE") == {("EARLY", "P1")}  # not issued yet: works from receipt
    assert dated.skipped[["layer", "id"]].values.tolist() == [["construction_permits", "LATE"]]
    assert "after the as-of date 2024-07-01" in dated.skipped["reason"].iloc[0]


# -- clearance -------------------------------------------------------------------------------


@pytest.mark.parametrize("width, used, expected", [
    (3.0, 1.5, False),  # exactly 1.5 m left
    (2.8, 1.3, False),  # 1.4999999999999998 in floating point: still 1.5 m
    (3.0, 1.6, True),
    (1.0, 1.2, True),   # used more than the sidewalk
])
def test_clearance(width, used, expected):
    sw = permits(("P1", box(0, 0, 10, 2), "2024-01-01", "2024-01-10", None, width, used))
    found = of_kind(run(sidewalk=sw), "CLEARANCE")
    assert (("P1", "") in found.index) is expected
    if expected:
        row = found.iloc[0]
        assert row["overlap_days"] == 10 and row["ward_code"] == "W1"
        assert "dưới mức tối thiểu 1,50 m" in row["detail"]


# -- wards -------------------------------------------------------------------------------------

WEST_EAST = ward_layer(("W", box(-1000, -1000, 0, 1000), "2000-01-01"),
                       ("E", box(0, -1000, 1000, 1000), "2000-01-01"))


def test_finding_on_a_ward_boundary_goes_to_the_larger_part():
    sw = permits(("P1", box(-4, 0, 6, 2), "2024-01-01", "2024-01-10"),
                 ("P2", box(-3, 1, 1, 3), "2024-01-05", "2024-01-20"),     # P1∩P2: 3 m² west, 1 m² east
                 ("P3", box(-1, -3, 6, 0.5), "2024-01-05", "2024-01-20"))  # P1∩P3: 0.5 west, 3 east
    result = run(sidewalk=sw, wards=WEST_EAST)
    clash = of_kind(result, "CLASH")
    assert set(clash.index) == {("P1", "P2"), ("P1", "P3")}
    assert clash.loc[("P1", "P2"), "ward_code"] == "W"
    assert clash.loc[("P1", "P3"), "ward_code"] == "E"


def test_parcel_on_a_ward_boundary():
    cons = dossiers(("MOSTLY-E", box(-2, 0, 8, 10), "2024-01-01", None, "W"),
                    ("MOSTLY-E-OK", box(-2, 20, 8, 30), "2024-01-01", None, "E"),
                    ("HALF", box(-5, 40, 5, 50), "2024-01-01", None, "W"))  # a tie goes to the smaller key: E
    result = run(cons, wards=WEST_EAST)
    mismatch = of_kind(result, "WARD_MISMATCH")
    assert set(mismatch.index) == {("MOSTLY-E", "E-2000-01-01"), ("HALF", "E-2000-01-01")}
    assert mismatch.loc[("MOSTLY-E", "E-2000-01-01"), "overlap_area_m2"] == pytest.approx(80.0)
    assert mismatch.loc[("MOSTLY-E", "E-2000-01-01"), "ward_code"] == "E"


# Cẩm Lệ-like reorganisation: two 2022 wards merged on 1 Jul 2025 into one that keeps the first code.
WARDS_2022_2025 = ward_layer(
    ("20305", box(-1000, -1000, 0, 1000), "2020-01-01", "2025-06-30"),
    ("20306", box(0, -1000, 1000, 1000), "2020-01-01", "2025-06-30"),
    ("20305", box(-1000, -1000, 1000, 1000), "2025-07-01"),
)


@pytest.mark.parametrize("received, declared, expected", [
    ("2025-06-30", "20306", None),                      # 2022 set: the east parcel is in 20306
    ("2025-06-30", "20305", ("20306", "20306-2020-01-01")),
    ("2025-07-01", "20305", None),                      # 2025 set: 20306 is gone, all is 20305
    ("2025-07-01", "20306", ("20305", "20305-2025-07-01")),
])
def test_ward_mismatch_depends_on_the_received_date(received, declared, expected):
    cons = dossiers(("XD1", box(100, 0, 110, 20), received, None, declared))
    mismatch = of_kind(run(cons, wards=WARDS_2022_2025), "WARD_MISMATCH")
    if expected is None:
        assert mismatch.empty
    else:
        code, key = expected
        assert list(mismatch.index) == [("XD1", key)]
        assert mismatch.iloc[0]["ward_code"] == code
        assert mismatch.iloc[0]["overlap_start"] == pd.Timestamp(received)
        assert f"Khai phường {declared}" in mismatch.iloc[0]["detail"]


def test_findings_take_the_ward_in_force_on_their_start():
    sw = permits(("OLD", box(100, 0, 110, 2), "2025-06-01", "2025-07-31", None, 2.0, 1.0),
                 ("NEW", box(100, 10, 110, 12), "2025-07-01", "2025-07-31", None, 2.0, 1.0))
    clearance = of_kind(run(sidewalk=sw, wards=WARDS_2022_2025), "CLEARANCE")
    assert clearance.loc[("OLD", ""), "ward_code"] == "20306"
    assert clearance.loc[("NEW", ""), "ward_code"] == "20305"


def test_no_ward_in_force_is_not_a_mismatch_but_outside_all_wards_is():
    cons = dossiers(("BEFORE", box(0, 0, 10, 10), "2019-12-31", None, "20305"),
                    ("OUTSIDE", box(5000, 0, 5010, 10), "2024-01-01", None, "20305"))
    mismatch = of_kind(run(cons, wards=WARDS_2022_2025), "WARD_MISMATCH")
    assert list(mismatch.index) == [("OUTSIDE", "")]
    assert mismatch.iloc[0]["ward_code"] is None
    assert "nằm ngoài các phường" in mismatch.iloc[0]["detail"]


# -- bad input ---------------------------------------------------------------------------------


def test_bad_input_is_skipped_with_reasons_never_a_crash():
    bowtie = shapely.Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10), (X0, Y0)])
    cons = dossiers(("OK", box(0, 0, 10, 20), "2024-01-01"),
                    ("BOWTIE", bowtie, "2024-01-01"),
                    ("NO-DATE", box(50, 0, 60, 20), None),
                    ("EMPTY", shapely.Polygon(), "2024-01-01"),
                    (None, box(70, 0, 80, 20), "2024-01-01"))
    sw = permits(("GOOD", box(0, -3, 10, -1), "2024-02-01", "2024-02-10"),
                 ("NONE-GEOM", None, "2024-02-01", "2024-02-10"),
                 ("POINT", shapely.Point(X0, Y0 - 2), "2024-02-01", "2024-02-10"),
                 ("BACKWARDS", box(0, -3, 10, -1), "2024-02-10", "2024-02-01"),
                 ("NO-END", box(0, -3, 10, -1), "2024-02-01", None),
                 ("GOOD", box(0, -3, 10, -1), "2024-02-01", "2024-02-10"),  # duplicate number
                 ("NO-WIDTH", box(2, -3, 4, -1), "2024-02-01", "2024-02-10", None, None, 1.0),
                 ("TWO", None, "2024-02-10", "2024-02-01"))
    result = run(cons, sw)
    reasons = {(row.layer, row.id): row.reason for row in result.skipped.itertuples()}
    assert reasons[("construction_permits", "BOWTIE")].startswith("invalid geometry: Self-intersection")
    assert reasons[("construction_permits", "NO-DATE")] == "missing received_on"
    assert reasons[("construction_permits", "EMPTY")] == "geometry is empty or missing"
    assert reasons[("construction_permits", None)] == "missing dossier_code"
    assert reasons[("sidewalk_permits", "NONE-GEOM")] == "geometry is empty or missing"
    assert reasons[("sidewalk_permits", "POINT")] == "geometry is not a polygon (Point)"
    assert reasons[("sidewalk_permits", "BACKWARDS")] == "end_on before start_on"
    assert reasons[("sidewalk_permits", "NO-END")] == "missing end_on"
    assert reasons[("sidewalk_permits", "GOOD")] == "duplicate permit_no"
    assert reasons[("sidewalk_permits", "NO-WIDTH")].startswith("clearance not checked")
    assert reasons[("sidewalk_permits", "TWO")] == "geometry is empty or missing; end_on before start_on"
    assert len(result.skipped) == len(reasons) == 11
    # the good features are analysed; NO-WIDTH still counts in space and time
    assert pairs(result, "MERGE_CANDIDATE") == {("OK", "GOOD"), ("OK", "NO-WIDTH")}
    assert pairs(result, "CLASH") == {("GOOD", "NO-WIDTH")}
    assert result.summary.set_index("ward_code").loc[TOTAL, "skipped"] == 11


def test_bad_wards_are_skipped_too():
    wards = ward_layer(("W1", box(-1000, -1000, 1000, 1000), "2000-01-01"),
                       ("W2", box(-10, -10, 10, 10), None),
                       ("W3", box(-10, -10, 10, 10), "2024-01-01", "2023-01-01"))
    cons = dossiers(("XD1", box(0, 0, 5, 5), "2024-06-01", None, "W1"))
    result = run(cons, wards=wards)
    assert sorted(result.skipped["reason"]) == ["missing valid_from", "valid_to before valid_from"]
    assert of_kind(result, "WARD_MISMATCH").empty


def test_empty_layers():
    empty_wards = ward_layer()
    result = find_overlaps(dossiers(), permits(), empty_wards)
    assert result.findings.empty and list(result.findings.columns) == [*schema.FINDINGS.field_names, "geometry"]
    assert result.summary["ward_code"].tolist() == [TOTAL]
    assert result.summary.iloc[0][list(KINDS)].sum() == 0


def test_no_wards_means_no_ward_codes_but_findings_still():
    sw = permits(("P1", box(0, 0, 10, 2), "2024-03-01", "2024-03-10"),
                 ("P2", box(5, 0, 15, 2), "2024-03-05", "2024-03-20"))
    result = find_overlaps(dossiers(), sw, ward_layer())
    assert pairs(result, "CLASH") == {("P1", "P2")}
    assert result.findings["ward_code"].isna().all()
    assert result.summary["ward_code"].tolist() == [None, TOTAL]


def test_other_crs_is_reprojected():
    sw = permits(("P1", box(0, 0, 10, 2), "2024-03-01", "2024-03-10"),
                 ("P2", box(5, 0, 15, 2), "2024-03-05", "2024-03-20")).to_crs("EPSG:4326")
    clash = of_kind(run(sidewalk=sw), "CLASH")
    assert clash["overlap_area_m2"].iloc[0] == pytest.approx(10.0, rel=1e-6)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="distance_m"):
        AnalysisParams(distance_m=-1)
    with pytest.raises(ValueError, match="gap_days"):
        AnalysisParams(gap_days=1.5)


@pytest.mark.parametrize("columns", [
    [np.array([3, 1, 3, 2, 1]), np.array([10, 20, 10, 10, 20])],                 # small range: marker table
    [np.array([0, 10**9, 0, 5]), np.array([1, 1, 1, 2])],                       # wide range: sorting
    [np.array([0, 2**40, 0]), np.array([0, 2**40, 0]), np.array([7, 7, 7])],    # wider than int64 keys
])
def test_distinct_rows(columns):
    uniq, back = analysis._distinct(columns)
    rows = np.column_stack(uniq)
    assert (rows[back] == np.column_stack(columns)).all()
    assert len(rows) == len({tuple(r) for r in np.column_stack(columns).tolist()})


# -- the findings frame, ids and the summary --------------------------------------------------


def mixed_case():
    """One of every kind, in two wards."""
    cons = dossiers(("XD1", box(-20, 0, -10, 20), "2024-01-01", None, "W"),
                    ("XD2", box(10, 0, 20, 20), "2024-01-01", None, "E"),
                    ("XD3", box(30, 0, 40, 20), "2024-01-01", None, "W"))  # mismatch: lies in E
    sw = permits(("P1", box(-20, -3, -10, -1), "2024-02-01", "2024-02-20", "XD1"),
                 ("P2", box(12, -3, 18, -1), "2024-02-01", "2024-02-20"),
                 ("P3", box(15, -2.5, 25, -1.5), "2024-02-10", "2024-03-01"),
                 ("P4", box(15, -2.5, 25, -1.5), "2024-05-01", "2024-05-10", None, 2.0, 1.0))
    return cons, sw


def test_every_kind_and_the_layer_schema():
    cons, sw = mixed_case()
    result = run(cons, sw, wards=WEST_EAST)
    f = result.findings
    assert set(f["kind"]) == set(KINDS)
    assert list(f.columns) == [*schema.FINDINGS.field_names, "geometry"]
    assert f.crs == schema.STORE_CRS
    assert (f.geometry.geom_type == "MultiPolygon").all() and f.geometry.is_valid.all()
    assert schema.validate(schema.FINDINGS, f) == []
    coerced = schema.coerce(schema.FINDINGS, f)  # already typed as the store types the layer
    for name in schema.FINDINGS.field_names:
        assert coerced[name].dtype == f[name].dtype, name
        assert (coerced[name].isna() == f[name].isna()).all(), name
        assert (coerced[name][f[name].notna()] == f[name][f[name].notna()]).all(), name
    assert f["finding_id"].is_unique
    assert f["finding_id"].str.fullmatch(r"(MC|LK|CL|OP|CR|WM)-[0-9a-f]{16}").all()
    assert f["detail"].str.len().gt(10).all()
    assert list(f["kind"].drop_duplicates()) == list(KINDS)  # grouped by kind


def test_finding_ids_are_stable_and_independent_of_row_order():
    cons, sw = mixed_case()
    first = run(cons, sw, wards=WEST_EAST).findings
    same = run(cons, sw, wards=WEST_EAST).findings
    pd.testing.assert_frame_equal(first, same)  # same input, same rows in the same order
    again = run(cons.iloc[::-1], sw.sample(frac=1, random_state=3), wards=WEST_EAST.iloc[::-1]).findings

    def by_id(frame):
        return frame.drop(columns="geometry").sort_values("finding_id", ignore_index=True)

    pd.testing.assert_frame_equal(by_id(first), by_id(again))
    assert finding_ids(["CLASH"], ["A"], ["B"])[0] == finding_ids(["CLASH"], ["B"], ["A"])[0]
    assert finding_ids(["CLASH"], ["A"], ["B"])[0] != finding_ids(["OPPORTUNITY"], ["A"], ["B"])[0]
    # pinned: a change of the hash would change every stored id
    assert finding_ids(["CLASH", "CLEARANCE"], ["VH-1", "VH-2"], ["VH-3", None]).tolist() == PINNED_IDS
    ids = finding_ids(first["kind"], first["a_id"], first["b_id"])
    assert ids.tolist() == first["finding_id"].tolist()


PINNED_IDS = ["CL-dd8d1ae29f9bcec0", "CR-45bdeebf2528d667"]


def test_summary_counts():
    cons, sw = mixed_case()
    result = run(cons, sw, wards=WEST_EAST)
    s = result.summary.set_index("ward_code")
    assert list(s.index) == ["E", "W", TOTAL]
    assert s.loc["W", list(KINDS)].tolist() == [0, 1, 0, 0, 0, 0]
    assert s.loc["E", list(KINDS)].tolist() == [3, 0, 1, 2, 1, 1]
    assert s.loc["E", "dossiers"] == 1 and s.loc["W", "dossiers"] == 2  # by declared ward
    assert s.loc["W", "dossiers_needing_sidewalk"] == 1 and s.loc["E", "dossiers_needing_sidewalk"] == 1
    assert s.loc[TOTAL, "share_needing_sidewalk"] == pytest.approx(2 / 3)
    assert s.loc[TOTAL, "findings"] == len(result.findings)
    assert (s.loc[TOTAL, list(KINDS)] == s.drop(TOTAL)[list(KINDS)].sum()).all()
    # the same from the findings and dossiers alone (what the dashboard has)
    pd.testing.assert_frame_equal(summarize(result.findings, cons, result.skipped), result.summary)


# -- vectorised joins against brute force -----------------------------------------------------


def random_boxes(rng, n, size, extent, big=0):
    """``n`` random boxes of about ``size`` metres, ``big`` of them much larger."""
    x, y = rng.uniform(0, extent, n), rng.uniform(0, extent, n)
    w, h = rng.uniform(0, size, n), rng.uniform(0, size, n)
    if big:
        w[:big] *= 40
        h[:big] *= 40
    return np.column_stack([x, y, x + w, y + h])


def brute_pairs(a, b, tol, strict, same):
    """Every qualifying pair by comparing all boxes."""
    bb = b + np.array([-tol, -tol, tol, tol])
    if strict:
        hit = ((a[:, None, 0] < bb[None, :, 2]) & (bb[None, :, 0] < a[:, None, 2])
               & (a[:, None, 1] < bb[None, :, 3]) & (bb[None, :, 1] < a[:, None, 3]))
    else:
        hit = ((a[:, None, 0] <= bb[None, :, 2]) & (bb[None, :, 0] <= a[:, None, 2])
               & (a[:, None, 1] <= bb[None, :, 3]) & (bb[None, :, 1] <= a[:, None, 3]))
    i, j = np.nonzero(hit)
    if same:
        keep = i < j
        i, j = i[keep], j[keep]
    return set(zip(i.tolist(), j.tolist()))


@pytest.mark.parametrize("seed, tol, strict, same, big", [
    (1, 0.0, False, False, 0), (2, 5.0, False, False, 0), (3, 0.0, True, True, 0),
    (4, 0.0, False, True, 0), (5, 2.0, False, False, 5), (6, 0.0, True, True, 5),
])
def test_bbox_pairs_match_brute_force(seed, tol, strict, same, big):
    rng = np.random.default_rng(seed)
    a = random_boxes(rng, 700, 12, 300, big)
    b = a if same else random_boxes(rng, 500, 8, 300, big)
    # some boxes touching exactly (edge to edge)
    other = a if same else b
    other[-20:, 0] = a[20:40, 2] + tol
    other[-20:, 2] = other[-20:, 0] + 3
    other[-20:, 1] = a[20:40, 1]
    other[-20:, 3] = other[-20:, 1] + 3
    i, j = bbox_pairs(a, b, tol, strict=strict, same=same)
    got = list(zip(i.tolist(), j.tolist()))
    assert len(got) == len(set(got))
    assert set(got) == brute_pairs(a, b, tol, strict, same)


def random_shapes(rng, n, extent, scale):
    """Polygons of assorted kinds: rotated rectangles, triangles, discs, L-shapes and two-part multipolygons."""
    out = []
    for k in range(n):
        x, y = X0 + rng.uniform(0, extent), Y0 + rng.uniform(0, extent)
        s = scale * rng.uniform(0.3, 1.0)
        kind = k % 5
        if kind == 0:
            g = shapely.affinity.rotate(shapely.box(x, y, x + s, y + s / 3), rng.uniform(0, 180))
        elif kind == 1:
            g = shapely.Polygon([(x, y), (x + s, y + s * 0.2), (x + s * 0.3, y + s)])
        elif kind == 2:
            g = shapely.Point(x, y).buffer(s / 2, quad_segs=6)
        elif kind == 3:
            g = shapely.union(shapely.box(x, y, x + s, y + s / 4), shapely.box(x, y, x + s / 4, y + s))
        else:
            g = shapely.MultiPolygon([shapely.box(x, y, x + s / 3, y + s / 3),
                                      shapely.box(x + s, y, x + s * 1.3, y + s / 3)])
        out.append(g)
    return out


def test_random_polygons_match_a_brute_force_reference():
    rng = np.random.default_rng(7)
    n_cons, n_side, extent = 120, 220, 150.0
    start = pd.Timestamp("2024-01-01")
    cons = gpd.GeoDataFrame({
        "dossier_code": [f"XD{k:03d}" for k in range(n_cons)], "ward_code": "W1",
        "received_on": start + pd.to_timedelta(rng.integers(0, 400, n_cons), "D"),
        "issued_on": pd.NaT}, geometry=random_shapes(rng, n_cons, extent, 14.0), crs="EPSG:5899")
    s0 = start + pd.to_timedelta(rng.integers(0, 500, n_side), "D")
    sw = gpd.GeoDataFrame({
        "permit_no": [f"VH{k:03d}" for k in range(n_side)], "ward_code": "W1", "start_on": s0,
        "end_on": s0 + pd.to_timedelta(rng.integers(0, 60, n_side), "D"), "sidewalk_width_m": 4.0,
        "used_width_m": 1.0, "construction_dossier_code": None},
        geometry=random_shapes(rng, n_side, extent, 8.0), crs="EPSG:5899")
    d, gap = 3.0, 30
    result = run(cons, sw, distance_m=d, gap_days=gap)

    merges, clashes, opps = set(), set(), set()
    ws = cons["received_on"].to_numpy().astype("datetime64[D]")
    we = np.array([(pd.Timestamp(t) + pd.DateOffset(months=12) - pd.Timedelta(days=1)).to_datetime64()
                   for t in ws]).astype("datetime64[D]")
    ss, se = sw["start_on"].to_numpy().astype("datetime64[D]"), sw["end_on"].to_numpy().astype("datetime64[D]")
    for i, gi in enumerate(cons.geometry):
        for j, gj in enumerate(sw.geometry):
            if ws[i] <= se[j] and ss[j] <= we[i] and gi.distance(gj) <= d + 1e-6:
                merges.add((cons["dossier_code"][i], sw["permit_no"][j]))
    for i, j in itertools.combinations(range(n_side), 2):
        gi, gj = sw.geometry[i], sw.geometry[j]
        if gi.intersection(gj).area > 1e-6:
            g = (max(ss[i], ss[j]) - min(se[i], se[j])).astype(int)
            pair = tuple(sorted((sw["permit_no"][i], sw["permit_no"][j])))
            if g <= 0:
                clashes.add(pair)
            elif g <= gap:
                opps.add(pair)
    assert len(merges) > 20 and len(clashes) > 5 and len(opps) > 5  # the case is not trivial
    assert pairs(result, "MERGE_CANDIDATE") == merges
    assert pairs(result, "CLASH") == clashes
    assert pairs(result, "OPPORTUNITY") == opps


def test_ward_index_grid_matches_exact_largest_overlap():
    rng = np.random.default_rng(11)
    frame = shapely.box(X0, Y0, X0 + 3000, Y0 + 3000)
    cells = []
    for k in (12, 5):  # an old, finer ward set and a new, coarser one
        seeds = shapely.multipoints(np.column_stack([X0 + rng.uniform(0, 3000, k), Y0 + rng.uniform(0, 3000, k)]))
        cells.append([shapely.intersection(c, frame) for c in shapely.get_parts(shapely.voronoi_polygons(seeds))])
    geoms = np.array(cells[0] + cells[1], dtype=object)
    shapely.prepare(geoms)
    start = np.array([0] * len(cells[0]) + [1000] * len(cells[1]), dtype=np.int64)
    end = np.array([999] * len(cells[0]) + [NAT] * len(cells[1]), dtype=np.int64)
    index = WardIndex.build(geoms, start, end)
    n = 8000
    x, y = X0 + rng.uniform(-50, 3050, n), Y0 + rng.uniform(-50, 3050, n)
    parcels = np.array([shapely.affinity.rotate(shapely.box(a, b, a + 12, b + 20), r)
                        for a, b, r in zip(x, y, rng.uniform(0, 90, n))], dtype=object)
    dates = rng.integers(-100, 2000, n)
    dates[:50] = NAT
    idx, part = index.assign(parcels, dates)
    area = np.where(np.isnan(part), shapely.area(parcels), part)
    in_force = (start[None, :] <= dates[:, None]) & (dates[:, None] <= np.where(end == NAT, 10**9, end)[None, :])
    overlap = shapely.area(shapely.intersection(parcels[:, None], geoms[None, :]))
    overlap = np.where(in_force, overlap, 0.0)
    best = np.where(overlap.max(axis=1) > 1e-6, overlap.argmax(axis=1), -1)
    assert (idx == best).all()
    assert np.allclose(area[idx >= 0], overlap.max(axis=1)[idx >= 0])
    assert (idx == -1).sum() > 50  # dates before every ward, missing dates, parcels outside


def test_ward_grid_cells_are_wholly_inside_their_ward():
    """The classified grid (boundary cells found in numpy from pieces of each segment): every cell given to a
    ward lies in it, box and all, and every cell a boundary crosses is given to no ward."""
    rng = np.random.default_rng(23)
    frame = shapely.box(X0, Y0, X0 + 3000, Y0 + 3000)
    seeds = shapely.multipoints(np.column_stack([X0 + rng.uniform(0, 3000, 9), Y0 + rng.uniform(0, 3000, 9)]))
    cells_geoms = [shapely.intersection(c, frame) for c in shapely.get_parts(shapely.voronoi_polygons(seeds))]
    geoms = np.array(cells_geoms, dtype=object)
    shapely.prepare(geoms)
    index = WardIndex.build(geoms, np.zeros(len(geoms), dtype=np.int64), np.full(len(geoms), NAT))
    wb = shapely.bounds(geoms)
    ox, oy = wb[:, 0].min(), wb[:, 1].min()
    for size in (37.0, 100.0, 333.3):  # cells of several sizes, none aligned with the wards
        cells = int(np.ceil(3000 / size)) + 1
        grid = index._classify_cells(wb, ox, oy, size, cells, index.in_force())[1]
        gx, gy = np.divmod(np.arange(cells * cells), cells)
        boxes = shapely.box(ox + gx * size, oy + gy * size, ox + (gx + 1) * size, oy + (gy + 1) * size)
        given = np.flatnonzero(grid >= 0)
        assert len(given) > cells  # the case is not trivial
        assert shapely.contains(geoms[grid[given]], boxes[given]).all()
        crossed = shapely.intersects(shapely.boundary(shapely.union_all(geoms[:, None], axis=1))[None, :],
                                     boxes[:, None]).any(axis=1)
        assert not (crossed & (grid >= 0)).any()
        whole = np.flatnonzero(~crossed)
        inside = shapely.contains(geoms[None, :], boxes[whole][:, None]).any(axis=1)
        assert (grid[whole[inside]] >= 0).mean() > 0.5  # boundary cells in excess, but few: most are settled


def test_threads_give_the_same_findings_as_one_thread(monkeypatch):
    """Long shapely calls split over threads, blocks finished in their own threads, the ward grid shared
    between them: the same findings, ids, values and geometries as everything in one thread."""
    import gisapp.analysis.overlaps as ov

    rng = np.random.default_rng(5)
    n, extent = 6000, 2500.0
    start = pd.Timestamp("2024-01-01")
    received = start + pd.to_timedelta(rng.integers(0, 700, n), "D")
    cons = gpd.GeoDataFrame({
        "dossier_code": [f"XD{k:05d}" for k in range(n)], "ward_code": rng.choice(["W1", "W2", "W3"], n),
        "received_on": received, "issued_on": pd.NaT}, geometry=random_shapes(rng, n, extent, 20.0), crs="EPSG:5899")
    s0 = start + pd.to_timedelta(rng.integers(0, 800, n), "D")
    sw = gpd.GeoDataFrame({
        "permit_no": [f"VH{k:05d}" for k in range(n)], "ward_code": "W1", "start_on": s0,
        "end_on": s0 + pd.to_timedelta(rng.integers(0, 90, n), "D"), "sidewalk_width_m": rng.uniform(2, 5, n),
        "used_width_m": rng.uniform(0.5, 3, n), "construction_dossier_code": None},
        geometry=random_shapes(rng, n, extent, 12.0), crs="EPSG:5899")
    half, far = extent / 2, extent + 20  # box() adds X0, Y0
    wards = ward_layer(("W1", box(-10, -10, half, far), "2020-01-01", "2024-12-31"),
                       ("W2", box(half, -10, far, far), "2020-01-01"),
                       ("W3", box(-10, -10, half + 300, far), "2025-01-01"))

    def analysed(workers, parallel_min):
        monkeypatch.setattr(ov, "_WORKERS", workers)
        monkeypatch.setattr(ov, "_PARALLEL_MIN", parallel_min)
        result = run(cons, sw, wards)
        frame = result.findings.sort_values("finding_id").reset_index(drop=True)
        return frame, result.summary

    one, one_summary = analysed(1, 10**9)
    many, many_summary = analysed(2, 100)
    assert len(one) > 1000 and set(one["kind"]) >= {"MERGE_CANDIDATE", "CLASH", "OPPORTUNITY", "WARD_MISMATCH"}
    assert one["ward_code"].notna().mean() > 0.9
    pd.testing.assert_frame_equal(pd.DataFrame(one.drop(columns="geometry")),
                                  pd.DataFrame(many.drop(columns="geometry")))
    assert (shapely.to_wkb(one.geometry.values) == shapely.to_wkb(many.geometry.values)).all()
    pd.testing.assert_frame_equal(one_summary, many_summary)


# -- the command line ---------------------------------------------------------------------------


def store_with(tmp_path, cons, sw, wards, meta=None) -> GeoPackageStore:
    """A GeoPackage store holding the three layers."""
    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write({"construction_permits": cons, "sidewalk_permits": sw, "wards": wards}, meta=meta)
    return store


def printed_table(output: str) -> pd.DataFrame:
    """The summary table of ``gisapp analyze``'s output."""
    return parse_summary(output.split("\n\n")[0])


def check_cli_agrees_with_store(store, output):
    """The printed counts per ward and kind equal those of the stored findings layer."""
    table = printed_table(output).set_index("ward")
    stored = store.read("findings")
    counts = stored.groupby([stored["ward_code"].fillna("—"), "kind"]).size()
    for (ward, kind), n in counts.items():
        assert table.loc[ward, kind] == n
    assert table.loc[TOTAL, list(KINDS)].sum() == len(stored) == table.loc[TOTAL, "findings"]
    for kind in KINDS:
        assert table.loc[TOTAL, kind] == (stored["kind"] == kind).sum()


def test_cli_analyze_stores_findings_and_prints_the_same_counts(tmp_path):
    cons, sw = mixed_case()
    bad = permits(("BROKEN", None, "2024-01-01", "2024-01-02"))
    store = store_with(tmp_path, cons, pd.concat([sw, bad], ignore_index=True), WEST_EAST,
                       meta={"as_of": "2024-12-31"})
    result = CliRunner().invoke(cli, ["--store", str(store.path), "analyze", "--gap-days", "120"])
    assert result.exit_code == 0, result.output
    check_cli_agrees_with_store(store, result.output)
    assert "skipped: 1 features (geometry is empty or missing ×1)" in result.output
    assert "sidewalk_permits BROKEN: geometry is empty or missing" in result.output
    meta = store.meta()["findings"]
    assert meta["gap_days"] == 120 and meta["distance_m"] == 5.0 and meta["as_of"] == "2024-12-31"
    assert meta["skipped"] == 1 and meta["run_seconds"] >= 0 and meta["run_at"]
    assert sum(meta["counts"].values()) == len(store.read("findings"))
    stored = store.read("findings")
    assert set(stored["kind"]) == set(KINDS)
    assert stored.geometry.geom_type.eq("MultiPolygon").all()
    # a second run replaces the layer, with the same ids
    again = CliRunner().invoke(cli, ["--store", str(store.path), "analyze", "--gap-days", "120"])
    assert again.exit_code == 0
    assert sorted(store.read("findings")["finding_id"]) == sorted(stored["finding_id"])


@pytest.mark.slow  # starts a process
def test_cli_analyze_freezes_the_collector_at_exit_and_exits_with_its_findings_stored(tmp_path, monkeypatch):
    """``analyze`` leaves Python's last cycle search at exit out (``gc.freeze`` as an exit handler, registered once
    however often the command runs); a process that ran it exits normally with every finding stored."""
    cons, sw = mixed_case()
    store = store_with(tmp_path, cons, sw, WEST_EAST, meta={"as_of": "2024-12-31"})
    handlers: list = []

    def unregister(func) -> None:
        handlers[:] = [h for h in handlers if h is not func]

    monkeypatch.setattr(atexit, "register", lambda func, *args, **kwargs: handlers.append(func) or func)
    monkeypatch.setattr(atexit, "unregister", unregister)
    for _ in range(2):
        assert CliRunner().invoke(cli, ["--store", str(store.path), "analyze"]).exit_code == 0
    assert handlers == [gc.freeze]
    monkeypatch.undo()
    expected = store.read("findings").sort_values("finding_id", ignore_index=True)
    store.write({"findings": expected.iloc[:0]}, mode="replace")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "gisapp", "--store", str(store.path), "--quiet", "analyze"],
                          capture_output=True, text=True, timeout=240, check=False, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    assert f"stored {len(expected)} findings" in done.stdout
    again = store.read("findings").sort_values("finding_id", ignore_index=True)
    pd.testing.assert_frame_equal(again.drop(columns="geometry"), expected.drop(columns="geometry"))
    assert again.geometry.geom_equals_exact(expected.geometry, 0).all()


def test_cli_as_of_option_and_bad_values(tmp_path):
    cons, sw = mixed_case()
    store = store_with(tmp_path, cons, sw, WEST_EAST)
    result = CliRunner().invoke(cli, ["--store", str(store.path), "analyze", "--as-of", "2023-12-31"])
    assert result.exit_code == 0, result.output
    assert "skipped: 3 features (received after the as-of date 2023-12-31 ×3)" in result.output
    assert store.meta()["findings"]["as_of"] == "2023-12-31"
    for args in (["--distance", "-1"], ["--as-of", "31/12/2023"], ["--gap-days", "x"]):
        bad = CliRunner().invoke(cli, ["--store", str(store.path), "analyze", *args])
        assert bad.exit_code == 2 and "Traceback" not in bad.output


# -- the demo data -------------------------------------------------------------------------------


def test_demo_produces_every_kind(demo_frames):
    frames, meta = demo_frames
    result = find_overlaps(frames["construction_permits"], frames["sidewalk_permits"], frames["wards"],
                           AnalysisParams(as_of=dt.date.fromisoformat(meta["as_of"])))
    counts = result.findings["kind"].value_counts()
    assert set(counts.index) == set(KINDS)
    assert counts["MERGE_CANDIDATE"] == demo.CASES["merge_candidates"]
    assert counts["CLASH"] == demo.CASES["clash_pairs"]
    assert counts["OPPORTUNITY"] == demo.CASES["opportunity_pairs"]
    assert counts["CLEARANCE"] == demo.CASES["clearance"]
    assert counts["WARD_MISMATCH"] == demo.WARD_MISMATCHES
    assert result.skipped.empty
    hub = result.findings[result.findings["kind"] == "CLASH"][["a_id", "b_id"]].stack().value_counts()
    assert hub.max() == demo.HUB_CLASHES


def test_demo_store_cli_counts_agree_with_the_layer(demo_store):
    result = CliRunner().invoke(cli, ["--store", str(demo_store.path), "analyze"])
    assert result.exit_code == 0, result.output
    check_cli_agrees_with_store(demo_store, result.output)
    summary = summarize(demo_store.read("findings"), demo_store.read("construction_permits"))
    table = printed_table(result.output).set_index("ward")
    for row in summary.itertuples(index=False):
        ward = row.ward_code or "—"
        assert table.loc[ward, "dossiers"] == row.dossiers
        assert table.loc[ward, "needing"] == row.dossiers_needing_sidewalk


def test_analysis_module_is_free_of_flask_and_click():
    import gisapp.analysis.spatial as spatial

    for module in (analysis, spatial):
        with open(module.__file__, encoding="utf-8") as fh:
            source = fh.read()
        assert "import flask" not in source and "from flask" not in source and "import click" not in source


def test_text_columns_become_the_same_strings_through_their_dictionary():
    """``run.text_objects``: a column of few distinct texts (through its dictionary) or of many gives the values
    ``to_numpy`` gives, ``None`` where missing, in chunks or not."""
    import pyarrow as pa

    from gisapp.analysis.run import SAMPLE_ROWS, text_objects

    rng = np.random.default_rng(3)
    few = [None if v == 6 else f"2031{v}" for v in rng.integers(0, 7, 3 * SAMPLE_ROWS)]
    many = [f"VH-{v}" if v % 5 else None for v in range(3 * SAMPLE_ROWS)]
    for values in (few, many, few[:10], ["đường", None, "phố"] * SAMPLE_ROWS):
        for column in (pa.array(values, pa.string()), pa.chunked_array([values[:7], values[7:]], pa.string())):
            got = text_objects(column)
            assert got.dtype == object and got.tolist() == values
    shared = text_objects(pa.array(few, pa.string()))
    assert len({id(v) for v in shared if v is not None}) == 6  # one string per distinct text


def test_quad_areas_round_as_geos_areas():
    """A ward mismatch's area of a quad parcel comes from its corners; rounded, it is GEOS' area, and a parcel
    whose area lies on a half step of the rounding is measured by GEOS."""
    rng = np.random.default_rng(7)
    cx, cy = rng.uniform(5e5, 6e5, 300), rng.uniform(1.7e6, 1.8e6, 300)
    parcels = [shapely.affinity.rotate(shapely.box(x, y, x + w, y + h), a, origin=(x, y))
               for x, y, w, h, a in zip(cx, cy, rng.uniform(3, 30, 300), rng.uniform(3, 30, 300),
                                        rng.uniform(0, 90, 300))]
    parcels.append(shapely.box(500_000.0, 1_700_000.0, 500_001.0, 1_700_001.00005))  # 1.00005 m²: a half step
    frame = gpd.GeoDataFrame({"dossier_code": [f"XD-{k}" for k in range(len(parcels))],
                              "received_on": pd.Timestamp("2024-01-01")}, geometry=parcels, crs="EPSG:5899")
    cons, _ = analysis._prepare_construction(frame, AnalysisParams())
    assert cons.quad.all()
    rows = np.arange(len(cons))
    areas = analysis._areas(cons, rows)
    geos = shapely.area(np.asarray(parcels, dtype=object))
    assert (np.round(areas, analysis.AREA_DECIMALS) == np.round(geos, analysis.AREA_DECIMALS)).all()
    assert areas[-1] == geos[-1]
    assert (areas[:-1] != geos[:-1]).any()  # (the others are the shoelace's own, not GEOS')
