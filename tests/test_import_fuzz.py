"""Hypothesis-generated rows through the import core: every row accepted or rejected, never lost."""

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import CRS

from gisapp import schema
from gisapp.domain import Calendar
from gisapp.importing.prepare import REASONS, prepare_import
from gisapp.importing.read import Source

pytestmark = pytest.mark.slow

CENTRE = (548000.0, 1770500.0)  # inside the demo's Khuê Trung / Hòa Thọ Đông area
JUNK = st.one_of(st.none(), st.just(""), st.text(max_size=12), st.integers(-5, 10**6), st.floats(allow_nan=True))


def geometry():
    x, y = CENTRE
    return st.sampled_from([
        shapely.box(x, y, x + 6, y + 2),
        shapely.box(x + 10, y, x + 15, y + 2.5),
        shapely.box(x - 10, y, x - 4, y + 1.5),
        shapely.MultiPolygon([shapely.box(x, y, x + 3, y + 2), shapely.box(x + 4, y, x + 6, y + 2)]),
        shapely.Polygon([(x, y), (x + 6, y + 2), (x + 6, y), (x, y + 2)]),  # bow-tie
        shapely.Polygon(),
        shapely.Point(x, y),
        None,
        shapely.box(100000, 100000, 100006, 100002),  # outside every ward
    ])


FIELDS = ("permit_no", "ward_code", "purpose", "status", "start_on", "end_on", "sidewalk_width_m", "used_width_m")
LOOSE = {  # valid spellings an office file may use
    "ward_code": ["20260", "20312", "Hòa Xuân", "phường khuê trung", "HOA THO DONG"],
    "purpose": ["MATERIALS", "Tập kết vật liệu xây dựng", "parking", "EVENT", "Việc cưới, việc tang"],
    "status": ["RETURNED", "Đã trả kết quả", "processing", "đang xử lý"],
    "start_on": ["2022-03-01", "01/03/2022", "2022-02-28"],
    "end_on": ["2022-03-10", "10/03/2022", "2022-03-01"],
}


def sidewalk_row():
    """A valid row in one of the spellings offices use, with up to two fields replaced by junk."""
    valid = st.fixed_dictionaries({
        **{name: st.sampled_from(values) for name, values in LOOSE.items()},
        "sidewalk_width_m": st.floats(3, 6), "used_width_m": st.floats(0.5, 3),
    })
    junk = st.dictionaries(st.sampled_from(FIELDS), JUNK, max_size=2)
    return st.tuples(valid, junk).map(lambda vj: {**vj[0], **vj[1]})


@pytest.fixture(scope="module")
def wards(demo_frames):
    return demo_frames[0]["wards"]


TRIED = {"rows": 0, "accepted": 0, "rejected": 0}


def test_every_row_is_accepted_or_rejected(wards):
    """150 generated files: every row accepted or rejected with a known reason, and both happen."""
    settings(max_examples=150, deadline=None, database=None)(
        given(rows=st.lists(st.tuples(sidewalk_row(), geometry()), min_size=1, max_size=12))(
            lambda rows: check_rows(wards, rows)))()
    assert TRIED["rows"] >= 150 and TRIED["accepted"] > 0 and TRIED["rejected"] > 0, TRIED


def check_rows(wards, rows):
    """One generated file of sidewalk permits through the import's checks."""
    frame = pd.DataFrame([{"permit_no": f"VH-{i}", **r} for i, (r, _) in enumerate(rows)]).astype(object)
    source = Source(path=__import__("pathlib").Path("fuzz.geojson"), kind="vector", frame=frame,
                    rows=np.arange(1, len(rows) + 1), geometry=np.array([g for _, g in rows], dtype=object),
                    crs=CRS.from_epsg(5899))
    report = prepare_import("sidewalk_permits", source, calendar=Calendar(), wards=wards)
    assert report.read == len(rows)
    assert report.accepted + report.rejected == report.read
    assert sum(report.rejected_by_reason.values()) == report.rejected
    assert set(report.rejects["reason"]) <= set(REASONS)
    assert sorted([*report.frame.index, *report.rejects["row"]]) == list(range(1, len(rows) + 1))
    if report.accepted:
        assert schema.validate(schema.SIDEWALK_PERMITS, schema.coerce(schema.SIDEWALK_PERMITS, report.frame)) == []
    TRIED["rows"] += report.read
    TRIED["accepted"] += report.accepted
    TRIED["rejected"] += report.rejected
