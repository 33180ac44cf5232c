"""The ``day`` filter (what is active on one day) on every surface and both stores, its tiles, and the map's
day slider driven in Chromium."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd
import pytest

from gisapp import domain
from gisapp.analysis import overlaps
from gisapp.filters import Filter, parse_filter
from gisapp.store.gpkg import GeoPackageStore
from gisapp.web.app import create_app
from tests.browser_util import live_server, open_page, wait_until
from tests.helpers import decode
from tests.stores import BACKENDS, new_store

DAY = dt.date(2022, 4, 14)


# -- pure ---------------------------------------------------------------------------------

def test_works_start_bound_agrees_with_the_analysis_works_period():
    """A start is active on a day exactly when the analysis's works period (numpy) holds that day."""
    starts = np.arange(np.datetime64("2020-01-01"), np.datetime64("2024-12-31")).astype("datetime64[D]")
    ends = overlaps._add_months(starts.astype(np.int64), domain.WORKS_MONTHS) - 1
    for day in ("2021-02-28", "2021-03-01", "2022-01-31", "2024-02-29", "2024-03-01", "2023-12-31"):
        d = dt.date.fromisoformat(day)
        n = np.datetime64(day, "D").astype(np.int64)
        active = (starts.astype(np.int64) <= n) & (ends >= n)
        bound = np.datetime64(domain.works_start_bound(d), "D")
        assert np.array_equal(active, (starts >= bound) & (starts <= np.datetime64(day, "D"))), day


def test_add_months_clamps_to_the_months_end():
    assert domain.add_months(dt.date(2022, 1, 31), 1) == dt.date(2022, 2, 28)
    assert domain.add_months(dt.date(2024, 2, 29), 12) == dt.date(2025, 2, 28)
    assert domain.add_months(dt.date(2022, 12, 15), 1) == dt.date(2023, 1, 15)
    assert domain.add_months(dt.date(2022, 3, 31), -1) == dt.date(2022, 2, 28)


@pytest.mark.parametrize("months", [1, 6, 12, 18])
def test_works_end_is_the_analysis_works_period_end(months):
    """One works period for the analysis (numpy), the check of an occupancy and "here, today" (domain)."""
    starts = np.arange(np.datetime64("2020-01-01"), np.datetime64("2024-12-31")).astype("datetime64[D]")
    ends = overlaps._add_months(starts.astype(np.int64), months) - 1
    got = [np.datetime64(domain.works_end(s, months), "D") for s in starts.astype(dt.date)]
    assert np.array_equal(np.array(got).astype(np.int64), ends)
    assert domain.works_end(dt.date(2023, 1, 31), 1) == dt.date(2023, 2, 27)


@pytest.mark.parametrize("surface", ["page", "map", "export", "tiles", "api"])
def test_every_surface_reads_the_day(surface):
    flt, warnings = parse_filter({"day": "2022-04-14"}, surface)
    assert flt.day == DAY and not warnings
    assert flt.to_params()["day"] == "2022-04-14"


def test_a_bad_day_is_a_400_or_a_warning():
    from gisapp.errors import FilterError

    with pytest.raises(FilterError, match="day: '2022-13-01' is not a date"):
        parse_filter({"day": "2022-13-01"}, "tiles")
    flt, warnings = parse_filter({"day": "14/04/2022"}, "page")
    assert flt.day is None and warnings == ["day: '14/04/2022' is not a date (YYYY-MM-DD)"]


# -- both stores --------------------------------------------------------------------------

def active(frame: pd.DataFrame, layer: str, day: dt.date) -> set[str]:
    """The reference: keys of the rows active on ``day``, computed in pandas."""
    d = pd.Timestamp(day)
    if layer == "construction_permits":
        start = frame["issued_on"].fillna(frame["received_on"])
        ends = pd.Series([pd.Timestamp(domain.add_months(s.date(), domain.WORKS_MONTHS)) - pd.Timedelta(days=1)
                          for s in start], index=frame.index)
        hit = (start <= d) & (ends >= d)
        return set(frame.loc[hit, "dossier_code"])
    start, end, key = {"sidewalk_permits": ("start_on", "end_on", "permit_no"),
                       "findings": ("overlap_start", "overlap_end", "finding_id")}[layer]
    hit = (frame[start] <= d) & ((frame[end] >= d) | frame[end].isna())
    return set(frame.loc[hit, key])


@pytest.fixture(scope="module")
def frames(demo_frames):
    base, meta = demo_frames
    params = overlaps.AnalysisParams(as_of=dt.date.fromisoformat(meta["as_of"]))
    result = overlaps.find_overlaps(base["construction_permits"], base["sidewalk_permits"], base["wards"], params)
    return {**base, "findings": result.findings}, meta


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, frames, tmp_path_factory):
    s = new_store(request.param, tmp_path_factory.mktemp("day"), request)
    s.write(frames[0], meta=frames[1])
    return s


@pytest.mark.parametrize("layer", ["construction_permits", "sidewalk_permits", "findings"])
def test_the_store_selects_what_is_active_on_the_day(store, frames, layer):
    key = {"construction_permits": "dossier_code", "sidewalk_permits": "permit_no", "findings": "finding_id"}[layer]
    everything = frames[0][layer]
    for day in (DAY, dt.date(2022, 1, 10), dt.date(2022, 6, 30)):
        expected = active(everything, layer, day)
        got = store.read(layer, Filter(day=day))
        assert set(got[key]) == expected, (layer, day)
        assert store.count(layer, Filter(day=day)) == len(expected)
        assert 0 < len(expected) < len(everything) or layer == "findings"


def test_day_combines_with_other_filters(store, frames):
    flt = Filter(day=DAY, purposes=("MATERIALS",))
    side = frames[0]["sidewalk_permits"]
    expected = active(side[side["purpose"] == "MATERIALS"], "sidewalk_permits", DAY)
    assert set(store.read("sidewalk_permits", flt)["permit_no"]) == expected


# -- web: tiles, data, pages --------------------------------------------------------------

@pytest.fixture
def app(demo_store, tmp_path):
    return create_app({"STORE": demo_store.url, "BASEMAP": "none", "TILE_DIR": str(tmp_path / "tiles"),
                       "TILE_WARM": (14, 15, 16, 17)})


def busiest_tile(store, layer: str, z: int) -> tuple[int, int, int]:
    from gisapp import geo

    frame = store.read(layer)
    pts = geo.transform(frame.geometry.centroid.values)
    addresses = [_tile_of(p.x, p.y, z) for p in pts]
    values, counts = np.unique(np.array(addresses), axis=0, return_counts=True)
    return tuple(int(v) for v in values[np.argmax(counts)])


def _tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    import math

    n = 1 << z
    return z, int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)


def test_day_filtered_tiles_are_built_on_request_and_never_written_to_the_shared_folder(app, demo_store, tmp_path):
    client = app.test_client()
    z, x, y = busiest_tile(demo_store, "sidewalk_permits", 15)
    url = f"/tiles/sidewalk_permits/{z}/{x}/{y}.mvt"
    everything = decode(client.get(url).data, "sidewalk_permits")
    written = sorted(p.relative_to(tmp_path) for p in (tmp_path / "tiles").rglob("*.mvt"))
    assert written  # the unfiltered tile went to the shared folder
    side = demo_store.read("sidewalk_permits")
    day = next(d for d in pd.date_range("2022-01-01", "2022-12-31").date
               if 0 < len(active(side, "sidewalk_permits", d) & set(everything)) < len(everything))
    response = client.get(f"{url}?day={day}")
    assert response.status_code == 200
    got = decode(response.data, "sidewalk_permits")
    assert set(got) == active(side, "sidewalk_permits", day) & set(everything)
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "tiles").rglob("*.mvt")) == written
    assert client.get(f"{url}?day={day}").get_etag() != client.get(url).get_etag()
    bad = client.get(f"{url}?day=2022-02-30")
    assert bad.status_code == 400 and "day" in bad.get_json()["description"]


def test_tilejson_carries_the_day(app):
    body = app.test_client().get("/tiles/sidewalk_permits.json?day=2022-04-14").get_json()
    assert body["tiles"][0].endswith("/tiles/sidewalk_permits/{z}/{x}/{y}.mvt?day=2022-04-14")


def test_map_data_count_and_api_follow_the_day(app, demo_store):
    client = app.test_client()
    side = demo_store.read("sidewalk_permits")
    expected = active(side, "sidewalk_permits", DAY)
    fc = json.loads(client.get(f"/data/sidewalk_permits.geojson?day={DAY}").data)
    assert {f["properties"]["permit_no"] for f in fc["features"]} == expected
    count = client.get(f"/data/count?day={DAY}").get_json()
    assert count["count"] == demo_store.count("construction_permits", Filter(day=DAY))
    assert count["sidewalk_permits"] == len(expected)
    assert count["findings"] == demo_store.count("findings", Filter(day=DAY))
    assert "sidewalk_permits" not in client.get("/data/count").get_json()
    api = client.get(f"/api/collections/sidewalk_permits/items?day={DAY}&limit=10000").get_json()
    assert {f["properties"]["permit_no"] for f in api["features"]} == expected
    export = client.get(f"/export/sidewalk_permits.geojson?day={DAY}")
    assert {f["properties"]["permit_no"] for f in json.loads(export.data)["features"]} == expected
    assert f"day-{DAY}" in export.headers["Content-Disposition"]


def test_the_map_page_has_a_slider_over_the_datas_days(app, demo_store):
    client = app.test_client()
    html = client.get(f"/?day={DAY}").get_data(as_text=True)
    assert 'data-testid="day-slider"' in html and f'value="{DAY}"' in html
    assert "&lt;script" not in html  # folium's head script is a script, not text atop the page
    first = min(demo_store.date_range("construction_permits")[0], demo_store.date_range("sidewalk_permits")[0])
    assert f'data-min="{first}"' in html
    warned = client.get("/?day=someday").get_data(as_text=True)
    assert "someday" in warned and 'data-testid="filter-warnings"' in warned


# -- Chromium ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(demo_frames, tmp_path_factory):
    frames, meta = demo_frames
    s = GeoPackageStore(tmp_path_factory.mktemp("day-browser") / "demo.gpkg", must_exist=False)
    s.write(frames, meta=meta)
    with live_server(create_app({"STORE": s.url, "BASEMAP": "none"})) as base:
        yield base, s


def count_of(rec) -> int:
    return int(rec.page.inner_text('[data-testid="permit-count"]').replace(".", "").replace(",", ""))


def day_in_url(rec) -> str | None:
    return parse_qs(urlsplit(rec.page.url).query).get("day", [None])[0]


@pytest.mark.parametrize("viewport", [(1400, 860), (390, 780)])
def test_moving_the_slider_changes_the_count_the_url_and_the_requests(chromium, server, viewport):
    base, store = server
    rec = open_page(chromium, base, viewport=viewport)
    page = rec.page
    page.goto(base + "/?lang=en")
    wait_until(page, "window.gisapp && window.gisapp.idle()")
    total = count_of(rec)
    toggle = page.locator('[data-testid="drawer-toggle"]')
    if toggle.count() and toggle.is_visible():  # a phone: the filters and the slider are in the drawer
        toggle.click()
        wait_until(page, "document.body.classList.contains('drawer-open')")
    slider = page.locator('[data-testid="day-range"]')
    slider.scroll_into_view_if_needed()
    assert slider.is_visible() and page.locator('[data-testid="day-play"]').is_visible()
    start = page.get_attribute('[data-testid="day-slider"]', "data-min")
    seen = {}
    for offset in (30, 100):
        slider.evaluate(f"(el) => {{ el.value = '{offset}'; el.dispatchEvent(new Event('input')); }}")
        day = (dt.date.fromisoformat(start) + dt.timedelta(days=offset)).isoformat()
        wait_until(page, f"location.search.indexOf('day={day}') >= 0 && window.gisapp.idle()")
        wait_until(page, "document.querySelector('[data-testid=\"day-summary\"]').textContent !== ''")
        expected = store.count("construction_permits", Filter(day=dt.date.fromisoformat(day)))
        wait_until(page, f"document.querySelector('[data-testid=\"permit-count\"]').textContent === '{expected}'")
        assert count_of(rec) == expected < total
        side = store.count("sidewalk_permits", Filter(day=dt.date.fromisoformat(day)))
        assert page.inner_text('[data-testid="day-summary"]').startswith(f"{side} sidewalk permits in use")
        assert page.input_value('[data-testid="filter-day"]') == day
        data = [u for u in rec.requests if "/data/" in u and f"day={day}" in u]
        assert any("/data/construction_permits.geojson" in u or "/data/count" in u for u in data)
        assert any("/data/sidewalk_permits.geojson" in u for u in data), rec.requests[-6:]
        seen[day] = expected
    assert len(set(seen.values())) == 2  # two days, two counts
    # the step buttons move by the chosen step; "All days" clears the day
    page.select_option('[data-testid="day-step"]', "7")
    day = day_in_url(rec)
    page.click('[data-testid="day-forward"]')
    later = (dt.date.fromisoformat(day) + dt.timedelta(days=7)).isoformat()
    wait_until(page, f"location.search.indexOf('day={later}') >= 0 && window.gisapp.idle()")
    page.click('[data-testid="day-clear"]')
    wait_until(page, "location.search.indexOf('day=') < 0 && window.gisapp.idle()")
    wait_until(page, f"document.querySelector('[data-testid=\"permit-count\"]').textContent === '{total}'")
    assert not rec.errors and not rec.outside()


def test_play_steps_through_the_days_and_pause_stops(chromium, server):
    base, store = server
    rec = open_page(chromium, base)
    page = rec.page
    start = "2022-03-01"
    page.goto(f"{base}/?day={start}")
    wait_until(page, "window.gisapp && window.gisapp.idle()")
    page.click('[data-testid="day-play"]')
    wait_until(page, "new URLSearchParams(location.search).get('day') >= '2022-03-03'", timeout=20000)
    assert page.get_attribute('[data-testid="day-play"]', "aria-pressed") == "true"
    page.click('[data-testid="day-play"]')
    wait_until(page, "window.gisapp.idle()")
    stopped = day_in_url(rec)
    page.wait_for_timeout(1500)
    assert day_in_url(rec) == stopped > start
    assert page.get_attribute('[data-testid="day-play"]', "aria-pressed") == "false"
    expected = store.count("construction_permits", Filter(day=dt.date.fromisoformat(stopped)))
    wait_until(page, f"document.querySelector('[data-testid=\"permit-count\"]').textContent === '{expected}'")
    # a link with the day reproduces it
    page.goto(f"{base}/?day={stopped}")
    wait_until(page, "window.gisapp && window.gisapp.idle()")
    assert count_of(rec) == expected
    assert page.input_value('[data-testid="filter-day"]') == stopped
    assert not rec.errors


def test_the_export_command_takes_the_day(demo_store, tmp_path):
    from click.testing import CliRunner

    from gisapp.cli import cli as main

    out = tmp_path / "day.geojson"
    result = CliRunner().invoke(main, ["--store", demo_store.url, "export", "sidewalk_permits", "-o", str(out),
                                       "--day", DAY.isoformat()])
    assert result.exit_code == 0, result.output
    side = demo_store.read("sidewalk_permits")
    assert {f["properties"]["permit_no"] for f in json.loads(out.read_text())["features"]} == active(
        side, "sidewalk_permits", DAY)
    bad = CliRunner().invoke(main, ["--store", demo_store.url, "export", "sidewalk_permits", "-o", str(out),
                                    "--day", "someday"])
    assert bad.exit_code != 0 and "day: 'someday' is not a date" in bad.output


def test_a_day_before_as_of_keeps_what_was_active_that_day(demo_store):
    """With ``as_of`` and a slider ``day`` before it, the permits of that day count, also those ended by ``as_of``."""
    day, later = dt.date(2022, 3, 15), dt.date(2022, 6, 30)
    on_day = demo_store.count("sidewalk_permits", Filter(day=day))
    ended = demo_store.count("sidewalk_permits", Filter(day=day, date_to=later)) - demo_store.count(
        "sidewalk_permits", Filter(day=day, date_from=later))
    assert on_day > 0 and ended > 0  # some of that day's permits ended before the as-of day
    assert demo_store.count("sidewalk_permits", Filter(day=day, as_of=later)) == on_day
