"""The dashboard and permit-page numbers, without Flask: hand-made frames and a tmp store."""

import datetime as dt

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from gisapp import domain, schema
from gisapp.analysis import stats
from gisapp.filters import Filter
from gisapp.store.gpkg import GeoPackageStore
from tests.browser_util import sample_frames
from tests.stores import BACKENDS, new_store

D = dt.date.fromisoformat
CAL = domain.Calendar()
AS_OF = D("2022-07-08")


def dossiers(rows):
    """A typed frame of dossiers from (ward, status, channel, received, due, completed) tuples."""
    frame = pd.DataFrame(rows, columns=["ward_code", "status", "channel", "received_on", "due_on", "completed_on"])
    frame["procedure"] = "NEW_BUILD"
    frame["work_category"] = "HOUSE"
    for col in ("received_on", "due_on", "completed_on"):
        frame[col] = pd.to_datetime(frame[col]).astype("datetime64[ms]")
    return frame


ROWS = [
    ("A", "RETURNED", "ONLINE", "2022-01-03", "2022-01-24", "2022-01-20"),   # early
    ("A", "RETURNED", "IN_PERSON", "2022-01-03", "2022-01-24", "2022-01-24"),  # on time
    ("A", "REFUSED", "ONLINE", "2022-02-01", "2022-02-22", "2022-03-01"),    # late
    ("A", "PROCESSING", "ONLINE", "2022-06-01", "2022-06-22", None),         # overdue on 8 Jul
    ("B", "PROCESSING", "POST", "2022-06-30", "2022-07-21", None),           # in time
    ("B", "RECEIVED", "ONLINE", "2022-07-01", None, None),                   # due computed: in time
]


def test_ward_counts():
    counts = stats.ward_counts(dossiers(ROWS), AS_OF, CAL)
    a, b = counts.loc["A"], counts.loc["B"]
    assert (a.received, a.online, a.open, a.overdue, a.closed_timed, a.on_time, a.late, a.resolved) == (
        4, 3, 1, 1, 3, 2, 1, 3)
    assert (b.received, b.online, b.open, b.overdue, b.closed_timed, b.resolved) == (2, 1, 2, 0, 0, 0)
    assert a["status_RETURNED"] == 2 and a["status_REFUSED"] == 1 and b["status_RECEIVED"] == 1
    assert counts.dtypes.unique().tolist() == ["int64"]


def test_counts_of_batches_add_up():
    frame = dossiers(ROWS)
    whole = stats.ward_counts(frame, AS_OF, CAL)
    parts = None
    for chunk in (frame.iloc[:2], frame.iloc[2:5], frame.iloc[5:], frame.iloc[:0]):
        parts = stats.add_counts(parts, stats.ward_counts(chunk, AS_OF, CAL))
    pd.testing.assert_frame_equal(parts.sort_index(), whole.sort_index())


def test_missing_due_date_is_computed_on_the_calendar():
    frame = dossiers(ROWS)
    due = stats.due_dates(frame, CAL)
    # received Fri 1 Jul 2022, 15 working days → Fri 22 Jul
    assert due.iloc[5] == pd.Timestamp("2022-07-22")
    assert due.iloc[0] == pd.Timestamp("2022-01-24")


def test_monthly_counts():
    out = stats.monthly_counts(dossiers(ROWS))
    assert out.loc[("A", "2022-01")].tolist() == [2, 2]
    assert out.loc[("A", "2022-02")].tolist() == [1, 0]
    assert out.loc[("A", "2022-03")].tolist() == [0, 1]  # the refusal completed in March
    assert out.loc[("B", "2022-07")].tolist() == [1, 0]
    assert out["resolved"].sum() == 3  # open dossiers are not resolved


def test_month_range_fills_gaps():
    assert stats.month_range(["2022-03", "2022-01", "2022-03"]) == ["2022-01", "2022-02", "2022-03"]
    assert stats.month_range([]) == []


def test_shares_and_rows():
    counts = stats.ward_counts(dossiers(ROWS), AS_OF, CAL)
    rows, total = stats.build_rows(counts, [("B", "Bee"), ("C", "Sea")], {"B": 2}, {"C": 1})
    assert [r.code for r in rows] == ["B", "C", "A"]  # listed wards first, then wards only the data has
    assert rows[1].received == 0 and rows[1].online_share is None and rows[1].findings == 1
    assert rows[2].name == "A" and rows[2].on_time_share == pytest.approx(2 / 3)
    assert total.received == 6 and total.sidewalk == 2 and total.findings == 1
    assert total.online_share == pytest.approx(4 / 6)
    assert total.status("PROCESSING") == 2


@pytest.mark.parametrize("values, expected", [
    ({}, ({}, [])),
    ({"a": 5, "b": 5}, ({"a": "#3", "b": "#3"}, [(5, 5, "#3")])),
    ({"a": 0, "b": 3, "c": 6}, ({"a": "#1", "b": "#2", "c": "#3"}, [(0, 1, "#1"), (2, 3, "#2"), (4, 6, "#3")])),
])
def test_classify(values, expected):
    assert stats.classify(values, ("#1", "#2", "#3")) == expected


def test_classify_puts_every_value_in_its_legend_class():
    values = {str(v): v for v in (3, 17, 18, 40, 41, 99, 100, 250)}
    colors, legend = stats.classify(values)
    for key, v in values.items():
        assert [c for lo, hi, c in legend if lo <= v <= hi] == [colors[key]]


def test_monthly_svg_escapes_and_draws_a_bar_per_value():
    svg = stats.monthly_svg(["2022-01", "2022-02"], [3, 0], [1, 2], title="<b>Hòa Xuân</b>",
                            labels=("Tiếp nhận", "Đã giải quyết"))
    assert svg.startswith("<svg") and svg.count("<rect") == 4
    assert "<b>" not in svg and "&lt;b&gt;Hòa Xuân" in svg
    assert "01/22" in svg and "02/22" in svg


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("stats") / "s.gpkg"
    frames, meta = sample_frames(120)
    s = GeoPackageStore(path, must_exist=False)
    s.write(frames, meta=meta)
    return s


def test_dashboard_totals_equal_store_counts(store):
    board = stats.dashboard(store, Filter(), CAL, batch_size=50)
    assert board.total.received == store.count("construction_permits") == 120
    assert sum(r.received for r in board.rows) == 120
    assert board.total.sidewalk == store.count("sidewalk_permits")
    assert board.total.findings == store.count("findings")
    online = store.count("construction_permits", Filter(channels=("ONLINE",)))
    assert board.total.online == online
    for row in board.rows:
        assert row.received == store.count("construction_permits", Filter(wards=(row.code,)))
        assert sum(row.status(s) for s in domain.STATUSES) == row.received
    assert sum(board.monthly[""]["received"]) == 120
    assert board.months[0] == "2022-01"


def test_dashboard_with_a_filter(store):
    flt = Filter(wards=("20305",), date_from=D("2022-03-01"), date_to=D("2022-04-30"))
    board = stats.dashboard(store, flt, CAL)
    assert [r.code for r in board.rows] == ["20305"]
    assert board.total.received == store.count("construction_permits", flt)


def test_wards_in_force(store):
    assert [c for c, _ in stats.wards_in_force(store, D("2022-07-08"))] == [
        "20260", "20305", "20306", "20311", "20312", "20314"]
    assert [n for _, n in stats.wards_in_force(store, D("2025-07-01"))] == [
        "Phường Cẩm Lệ", "Phường An Khê", "Phường Hòa Xuân"]


def test_permit_detail_linked_nearby_and_findings(tmp_path):
    frames, meta = sample_frames(30)
    permit = frames["construction_permits"].iloc[[3]]
    lot = permit.geometry.iloc[0]
    x0, y0 = lot.bounds[0], lot.bounds[1]

    def sidewalk(no, geom, link=None):
        return {"permit_no": no, "ward_code": permit["ward_code"].iloc[0], "purpose": "BUSINESS", "status": "RETURNED",
                "start_on": "2022-03-01", "end_on": "2022-03-10", "sidewalk_width_m": 4.0, "used_width_m": 1.0,
                "construction_dossier_code": link, "geometry": geom}

    side = gpd.GeoDataFrame([
        sidewalk("LINKED-FAR", shapely.box(x0 + 500, y0, x0 + 505, y0 + 2), link=permit["dossier_code"].iloc[0]),
        sidewalk("NEAR-15M", shapely.box(x0 - 20, y0, x0 - 15, y0 + 2)),
        sidewalk("FAR-25M", shapely.box(x0 - 30, y0, x0 - 25, y0 + 2)),
    ], geometry="geometry", crs=schema.STORE_CRS)
    code = permit["dossier_code"].iloc[0]
    finding = gpd.GeoDataFrame([{"finding_id": "F1", "kind": "MERGE_CANDIDATE", "a_id": "NEAR-15M", "b_id": code,
                                 "geometry": lot}], geometry="geometry", crs=schema.STORE_CRS)
    frames.update(sidewalk_permits=side, findings=finding)
    s = GeoPackageStore(tmp_path / "d.gpkg", must_exist=False)
    s.write(frames, meta=meta)
    detail = stats.permit_detail(s, code, CAL)
    assert [x["permit_no"] for x in detail.linked] == ["LINKED-FAR"]
    assert [x["permit_no"] for x in detail.nearby] == ["NEAR-15M"]
    assert detail.nearby[0]["distance_m"] == pytest.approx(15.0)
    assert [x["finding_id"] for x in detail.findings] == ["F1"]
    assert detail.record["dossier_code"] == code and detail.due_on is not None
    assert 15.9 < detail.center[0] < 16.1 and 108.1 < detail.center[1] < 108.3
    assert stats.permit_detail(s, "NO-SUCH-CODE", CAL) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_dashboard_unpermitted_per_ward_from_one_grouped_query(backend, tmp_path, request):
    """Open unpermitted occupancies per ward row: the grouped count equals one count per ward, on both stores."""
    frames, meta = sample_frames(60)
    s = new_store(backend, tmp_path, request)
    s.write(frames, meta=meta)
    wards = ["20305", "20305", "20306", "20311", "20311", "20311"]
    ends = [None, "2099-01-01", "2021-01-01", None, None, "2099-12-31"]  # the 2021 one is closed
    centre = s.read("wards", Filter(wards=("20305",))).geometry.iloc[0].centroid
    rows = [{"finding_id": f"UP-{i}", "kind": "UNPERMITTED", "a_id": f"I-{i}", "ward_code": w,
             "overlap_start": "2020-06-01", "overlap_end": e, "geometry": centre.buffer(2)}
            for i, (w, e) in enumerate(zip(wards, ends))]
    extra = gpd.GeoDataFrame(rows, geometry="geometry", crs=schema.STORE_CRS)
    s.write({"findings": extra}, mode="upsert")
    board = stats.dashboard(s, Filter(), CAL)
    got = {r.code: r.unpermitted for r in board.rows}
    tomorrow = dt.datetime.now(stats.LOCAL).date() + dt.timedelta(days=1)
    open_now = Filter(kinds=("UNPERMITTED",), date_from=tomorrow)
    assert got == {code: s.count("findings", open_now.with_(wards=(code,))) for code in got}
    assert (got["20305"], got["20306"], got["20311"]) == (2, 0, 3) and board.total.unpermitted == 5
