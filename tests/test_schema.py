"""Schema validation: every bad row reported with row, field, value and reason."""

import geopandas as gpd
import pytest
import shapely

from gisapp import schema
from gisapp.schema import CONSTRUCTION_PERMITS, SIDEWALK_PERMITS, validate

LOT = shapely.box(547900, 1770700, 547906, 1770718)


def permit(**changes):
    row = {
        "dossier_code": "XD-220105-0001", "ward_code": "20260", "status": "PROCESSING",
        "procedure": "NEW_BUILD", "work_category": "HOUSE", "channel": "ONLINE",
        "received_on": "2022-01-05", "floors": 3, "plot_area_m2": 108.0, "geometry": LOT,
    }
    row.update(changes)
    return row


def frame(*rows):
    return gpd.GeoDataFrame(list(rows), geometry="geometry", crs=schema.STORE_CRS)


def test_a_good_row_has_no_problems():
    assert validate(CONSTRUCTION_PERMITS, frame(permit())) == []


BOWTIE = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"dossier_code": None}, "dossier_code", "required value is missing"),
        ({"ward_code": "  "}, "ward_code", "required value is missing"),
        ({"status": "DONE"}, "status", "unknown code"),
        ({"procedure": "BUILD"}, "procedure", "unknown code"),
        ({"channel": "EMAIL"}, "channel", "unknown code"),
        ({"received_on": "05/01/2022"}, "received_on", "not a date"),
        ({"received_on": "2022-02-30"}, "received_on", "not a date"),
        ({"floors": "three"}, "floors", "not a number"),
        ({"floors": 2.5}, "floors", "not a whole number"),
        ({"plot_area_m2": -4}, "plot_area_m2", "must not be negative"),
        ({"geometry": None}, "geometry", "empty or missing"),
        ({"geometry": shapely.Point(1, 1)}, "geometry", "not a polygon"),
        ({"geometry": BOWTIE}, "geometry", "invalid geometry: Self-intersection"),
    ],
)
def test_bad_rows_are_reported(changes, field, message):
    problems = validate(CONSTRUCTION_PERMITS, frame(permit(), permit(**{"dossier_code": "XD-2", **changes})))
    assert len(problems) == 1, problems
    p = problems[0]
    assert (p.row, p.field) == (2, field)
    assert message in p.message
    assert str(p).startswith(f"row 2, {field}")


def test_every_problem_in_one_pass():
    rows = frame(permit(status="X", floors="many"), permit(dossier_code="XD-2"), permit(channel="FAX"))
    problems = validate(CONSTRUCTION_PERMITS, rows)
    assert [(p.row, p.field) for p in problems] == [
        (1, "status"), (1, "floors"), (3, "dossier_code"), (3, "channel")]
    assert problems[2].message == "duplicate key within the data"


def test_row_numbers_come_from_the_row_column_when_present():
    rows = frame(permit(status="X"))
    rows["row"] = [42]
    assert validate(CONSTRUCTION_PERMITS, rows)[0].row == 42


def test_missing_required_column_is_reported_once():
    rows = frame(permit()).drop(columns=["channel"])
    problems = validate(CONSTRUCTION_PERMITS, rows)
    assert [(p.row, p.field, p.message) for p in problems] == [(0, "channel", "required column is missing")]


def test_sidewalk_end_before_start():
    row = {"permit_no": "VH-1", "ward_code": "20260", "purpose": "MATERIALS", "status": "RETURNED",
           "start_on": "2022-03-10", "end_on": "2022-03-09", "sidewalk_width_m": 4, "used_width_m": 1,
           "geometry": LOT}
    problems = validate(SIDEWALK_PERMITS, frame(row))
    assert [(p.field, p.message) for p in problems] == [("end_on", "end date before start date")]


def test_coerce_types_columns():
    out = schema.coerce(CONSTRUCTION_PERMITS, frame(permit(floors="4", completed_on=None)))
    assert str(out["received_on"].dtype).startswith("datetime64")
    assert out["floors"].iloc[0] == 4 and str(out["floors"].dtype) == "Int64"
    assert out["owner_name"].iloc[0] is None
    assert list(out.columns) == CONSTRUCTION_PERMITS.field_names + ["geometry"]
