"""``as_of=YYYY-MM-DD`` everywhere: its parser, the article's figures at 2022-06-30, pages, API, exports."""

import datetime as dt
import io
import re

import orjson
import pandas as pd
import pytest

from gisapp import history
from gisapp.analysis import counts, stats
from gisapp.demo import build as demo
from gisapp.domain import Calendar
from gisapp.errors import FilterError
from gisapp.filters import Filter, parse_as_of, parse_filter
from gisapp.web.app import create_app
from tests.helpers import assert_error

D = dt.date.fromisoformat
TODAY = D("2026-12-03")


@pytest.mark.parametrize("text, message", [
    ("2022-6-30", "is not a date (YYYY-MM-DD)"),
    ("30/06/2022", "is not a date (YYYY-MM-DD)"),
    ("2022-02-30", "is not a date (YYYY-MM-DD)"),
    ("2022-06-30T00:00", "is not a date (YYYY-MM-DD)"),
    ("1989-12-31", "is before 1990-01-01"),
    ("2027-12-04", "more than a year after today (2026-12-03)"),
])
def test_bad_as_of(text, message):
    with pytest.raises(FilterError, match=re.escape(message)):
        parse_as_of(text, today=TODAY)


def test_as_of_bounds():
    assert parse_as_of("1990-01-01", today=TODAY) == D("1990-01-01")
    assert parse_as_of("2027-12-03", today=TODAY) == D("2027-12-03")


@pytest.mark.parametrize("surface", ["map", "export", "tiles", "api"])
def test_every_strict_surface_takes_as_of_and_refuses_a_bad_one(surface):
    flt, _ = parse_filter({"as_of": "2022-06-30"}, surface)
    assert flt.as_of == D("2022-06-30") and flt.to_params()["as_of"] == "2022-06-30"
    with pytest.raises(FilterError, match="as_of"):
        parse_filter({"as_of": "1900-01-01"}, surface)


def test_pages_warn_and_drop_a_bad_as_of():
    flt, warnings = parse_filter({"as_of": "yesterday"}, "page")
    assert flt.as_of is None and warnings == ["as_of: 'yesterday' is not a date (YYYY-MM-DD)"]


# -- the article's figures -------------------------------------------------------------

def test_the_article_at_2022_06_30(demo_store):
    """2,534 dossiers received in H1 2022, 54.5 % online, none late (seeds/000_…txt)."""
    board = stats.dashboard(demo_store, Filter(as_of=D("2022-06-30")), Calendar())
    assert board.total.received == demo.ARTICLE_DOSSIERS == 2534
    assert round(100 * board.total.online_share, 1) == 54.5
    assert board.total.late == 0 and board.total.overdue == 0
    assert board.without_history == 0 and board.as_of == D("2022-06-30")
    # statuses are those of 30 June: some dossiers closed in early July were still open then
    now = stats.dashboard(demo_store, Filter(), Calendar())
    assert board.total.open > now.total.open
    assert board.total.received == now.total.received


def test_the_article_over_the_arrays_kept_in_memory(demo_store):
    """The same figures once the dashboard counts over the arrays (a process's first count is the store's)."""
    arrays = counts.columns(demo_store)
    assert counts.current(demo_store) is arrays
    board = stats.dashboard(demo_store, Filter(as_of=D("2022-06-30")), Calendar())
    assert board.total.received == 2534 and round(100 * board.total.online_share, 1) == 54.5
    assert board.total.late == 0 and board.total.overdue == 0 and board.without_history == 0
    h1, _ = stats.compare(demo_store, Filter(), ["2022-H1", "2022-H2"], Calendar(), today=TODAY).boards
    assert h1.total.received == 2534 and h1.total.late == 0


def test_as_of_earlier_leaves_out_later_dossiers(demo_store):
    frames = demo_store.read("construction_permits")
    day = D("2022-03-31")
    board = stats.dashboard(demo_store, Filter(as_of=day), Calendar())
    assert board.total.received == int((frames["received_on"] <= pd.Timestamp(day)).sum())
    # the status counts are the history's statuses of that day
    past = history.status_at(demo_store.status_history("construction_permits"), day)
    received = set(frames.loc[frames["received_on"] <= pd.Timestamp(day), "dossier_code"])
    expected = past[past["key"].isin(received)]["status"].value_counts().to_dict()
    assert {s: board.total.status(s) for s in expected} == expected
    assert board.total.late == 0


def test_without_history_the_current_status_with_a_notice(tmp_path):
    from gisapp.store.gpkg import GeoPackageStore
    from tests.helpers import permits

    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write({"construction_permits": permits()}, meta={"as_of": "2022-07-08"},
                history=history.frame(["construction_permits"], ["XD-0000"], ["RECEIVED"], ["2022-01-03"]))
    board = stats.dashboard(store, Filter(as_of=D("2022-01-10")), Calendar())
    assert board.total.received == 8 and board.without_history == 7


def test_periods():
    assert stats.parse_period("2022-H1") == (D("2022-01-01"), D("2022-06-30"))
    assert stats.parse_period("2022-h2") == (D("2022-07-01"), D("2022-12-31"))
    assert stats.parse_period("2022-Q1") == (D("2022-01-01"), D("2022-03-31"))
    assert stats.parse_period("2022") == (D("2022-01-01"), D("2022-12-31"))
    assert stats.parse_period("2022-02-01/2022-02-28") == (D("2022-02-01"), D("2022-02-28"))
    for bad in ("2022-H3", "H1", "2022-03-01/2022-02-01", "2022-03-01"):
        with pytest.raises(ValueError):
            stats.parse_period(bad)


def test_compare_two_half_years(demo_store):
    cmp = stats.compare(demo_store, Filter(), ["2022-H1", "2022-H2"], Calendar(), today=TODAY)
    h1, h2 = cmp.boards
    assert h1.total.received == 2534 and h1.as_of == D("2022-06-30") and h1.total.late == 0
    assert h2.total.received == 0 and h2.as_of == D("2022-07-08")  # the data ends on its as-of date
    assert cmp.rows[-1][0] == "" and cmp.rows[-1][2][0].received == 2534


# -- pages -------------------------------------------------------------------------------

@pytest.fixture
def client(demo_store):
    app = create_app({"STORE": str(demo_store.path), "TESTING": True, "BASEMAP": "none"})
    return app.test_client()


def test_wards_page_as_of(client):
    html = client.get("/wards?as_of=2022-06-30&lang=en").get_data(as_text=True)
    assert 'data-testid="total-received">2534<' in html and 'data-testid="total-late">0<' in html
    assert 'data-testid="as-of-notice"' in html and "without-history" not in html
    assert 'data-testid="total-online-share">54.5 %<' in html


def test_wards_page_warns_of_a_bad_as_of_and_a_bad_period(client):
    html = client.get("/wards?as_of=1989-01-01&compare=2022-H9&lang=en").get_data(as_text=True)
    assert 'data-testid="filter-warnings"' in html
    assert "is before 1990-01-01" in html and "is not a period" in html
    assert 'data-testid="as-of-notice"' not in html


def test_wards_page_compares_periods(client):
    html = client.get("/wards?compare=2022-H1,2022-H2&lang=en").get_data(as_text=True)
    assert 'data-testid="compare-table"' in html
    assert 'data-testid="compare-received-1-total">2534<' in html
    assert 'data-testid="compare-received-2-total">0<' in html


def test_permit_page_as_of(client, demo_store):
    frames = demo_store.read("construction_permits")
    row = frames[(frames["status"] == "RETURNED") & (frames["completed_on"] > pd.Timestamp("2022-06-01"))].iloc[0]
    code = row["dossier_code"]
    day = (row["received_on"] + pd.Timedelta(days=1)).date()
    html = client.get(f"/permits/{code}?as_of={day.isoformat()}&lang=en").get_data(as_text=True)
    assert 'data-testid="status-history"' in html
    then = html.split('data-testid="status-then">')[1][:200]
    assert "Result returned" not in then and "Status on" in then
    before = (row["received_on"] - pd.Timedelta(days=1)).date().isoformat()
    html = client.get(f"/permits/{code}?as_of={before}&lang=en").get_data(as_text=True)
    assert "not yet received" in html


# -- API and exports -----------------------------------------------------------------------

def test_api_items_as_of(client, demo_store):
    r = client.get("/api/collections/construction_permits/items?as_of=2022-06-30&limit=10000")
    assert r.status_code == 200
    body = orjson.loads(r.data)
    assert body["numberMatched"] == 2534
    statuses = {f["id"]: f["properties"]["status"] for f in body["features"]}
    past = demo_store.statuses_as_of("construction_permits", D("2022-06-30"))
    assert statuses == dict(zip(past["key"], past["status"]))
    r = client.get("/api/collections/construction_permits/items?as_of=2022-03-31&limit=1")
    frames = demo_store.read("construction_permits")
    assert orjson.loads(r.data)["numberMatched"] == int((frames["received_on"] <= "2022-03-31").sum())


@pytest.mark.parametrize("value", ["2022-13-01", "1980-01-01", "2099-01-01", "soon"])
def test_api_refuses_a_bad_as_of(client, value):
    assert_error(client.get(f"/api/collections/construction_permits/items?as_of={value}"), 400)


def test_api_documents_as_of(client):
    doc = orjson.loads(client.get("/api/openapi").data)
    params = doc["components"]["parameters"]
    assert "as_of" in params and params["as_of"]["schema"]["format"] == "date"
    ops = doc["paths"]["/collections/construction_permits/items"]["get"]["parameters"]
    assert {"$ref": "#/components/parameters/as_of"} in ops


def test_sidewalk_permits_active_that_day(client, demo_store):
    side = demo_store.read("sidewalk_permits")
    day = pd.Timestamp("2022-05-15")
    active = side[(side["start_on"] <= day) & (side["end_on"] >= day)]
    body = orjson.loads(client.get("/api/collections/sidewalk_permits/items?as_of=2022-05-15&limit=10000").data)
    assert body["numberMatched"] == len(active) > 0
    # with a date range, every permit of the range (not only those active on the day)
    r = client.get("/api/collections/sidewalk_permits/items?as_of=2022-05-15&datetime=2022-01-01/2022-12-31&limit=1")
    assert orjson.loads(r.data)["numberMatched"] == int((side["start_on"] <= day).sum())


def test_export_as_of(client, demo_store):
    r = client.get("/export/construction_permits.csv?as_of=2022-06-30")
    assert r.status_code == 200
    frame = pd.read_csv(io.BytesIO(r.data), encoding="utf-8-sig", dtype=str)
    past = demo_store.statuses_as_of("construction_permits", D("2022-06-30"))
    assert len(frame) == 2534
    assert dict(zip(frame["dossier_code"], frame["status"])) == dict(zip(past["key"], past["status"]))
    assert (pd.to_datetime(frame["completed_on"]).dropna() <= "2022-06-30").all()
    assert_error(client.get("/export/construction_permits.csv?as_of=2022-02-31"), 400)


def test_map_page_and_its_data_as_of(client, demo_store):
    html = client.get("/?as_of=2022-06-30&lang=en").get_data(as_text=True)
    assert 'data-testid="as-of-notice"' in html and 'data-testid="permit-count">2534<' in html
    assert 'name="as_of" value="2022-06-30"' in html
    frames = demo_store.read("construction_permits")
    day = "2022-03-31"
    html = client.get(f"/?as_of={day}").get_data(as_text=True)
    assert f'data-testid="permit-count">{int((frames["received_on"] <= day).sum())}<' in html
    body = orjson.loads(client.get(f"/data/construction_permits.geojson?as_of={day}").data)
    if body.get("mode") == "features":
        past = demo_store.statuses_as_of("construction_permits", D(day))
        expected = dict(zip(past["key"], past["status"]))
        assert {f["properties"]["dossier_code"]: f["properties"]["status"] for f in body["features"]} == expected
    assert_error(client.get("/data/construction_permits.geojson?as_of=1900-01-01"), 400)
    assert "is before 1990-01-01" in client.get("/?as_of=1900-01-01&lang=en").get_data(as_text=True)


def test_sidewalk_page_as_of(client, demo_store):
    side = demo_store.read("sidewalk_permits")
    row = side[side["status"] == "RETURNED"].iloc[0]
    day = row["start_on"].date()
    html = client.get(f"/permits/{row['permit_no']}?as_of={day.isoformat()}&lang=en").get_data(as_text=True)
    then = html.split('data-testid="status-then">')[1][:300]
    assert "Result returned" in then and "in force that day" in then
    assert 'data-testid="status-history"' in html
    early = (row["start_on"] - pd.Timedelta(days=30)).date().isoformat()
    html = client.get(f"/permits/{row['permit_no']}?as_of={early}&lang=en").get_data(as_text=True)
    assert "not in force that day" in html.split('data-testid="status-then">')[1][:300]
