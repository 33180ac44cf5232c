"""The map viewer in a real browser: Debian's Chromium driven by Playwright, against a live server.

The app serves a temporary sample store on 127.0.0.1 at a random port.
Every request the page makes is recorded and must stay on that origin;
console errors fail the test.  Screenshots land in the test's tmp dir and
one copy of each in /tmp/gisapp-shots/ for a human to look at.
"""

import shutil
from pathlib import Path

import pytest

from gisapp.filters import Filter
from gisapp.store.gpkg import GeoPackageStore
from gisapp.web.app import create_app
from tests.browser_util import XSS_ADDRESS, XSS_OWNER, live_server, open_page, wait_until

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/gisapp-shots")
PERMITS = "construction_permits"


@pytest.fixture(scope="module")
def store(demo_frames, tmp_path_factory):
    """A store of the demo data, with one dossier's owner and address replaced by markup."""
    frames, meta = demo_frames
    s = GeoPackageStore(tmp_path_factory.mktemp("browser") / "demo.gpkg", must_exist=False)
    s.write(frames, meta=meta)
    hostile = s.read(PERMITS, limit=1)
    hostile["owner_name"] = XSS_OWNER
    hostile["site_address"] = XSS_ADDRESS
    s.write({PERMITS: hostile}, mode="upsert")
    return s


@pytest.fixture(scope="module")
def n(store):
    return store.count(PERMITS)


@pytest.fixture(scope="module")
def hostile_code(store):
    return store.read(PERMITS, limit=1)["dossier_code"].iloc[0]


@pytest.fixture(scope="module")
def linked_code(store):
    """A dossier with a linked sidewalk permit, and that permit's number."""
    side = store.read("sidewalk_permits")
    row = side[side["construction_dossier_code"].notna()].iloc[0]
    return row["construction_dossier_code"], row["permit_no"]


@pytest.fixture(scope="module")
def server(store):
    # personal data shown (as on the intranet today), so the hostile owner name reaches the popup and page
    with live_server(create_app({"STORE": store.url, "BASEMAP": "none", "SHOW_PERSONAL_DATA": True})) as base:
        yield base


@pytest.fixture
def page(chromium, server):
    rec = open_page(chromium, server)
    yield rec
    rec.page.context.close()


def shoot(rec, tmp_path, name):
    path = tmp_path / name
    rec.page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / name)
    return path


def wait_drawn(rec, expected: int | None = None, layer: str = "permits", timeout: int = 20000):
    """Wait until the map is idle (and ``layer`` has ``expected`` features drawn); return the drawn count."""
    cond = f"window.gisapp && gisapp.idle() && gisapp.state.mode[{layer!r}] !== undefined"
    if expected is not None:
        cond += f" && gisapp.state.drawn[{layer!r}] === {int(expected)}"
    wait_until(rec.page, cond, timeout=timeout)
    return rec.page.evaluate(f"gisapp.state.drawn[{layer!r}]")


def drawn_codes(rec) -> set[str]:
    return set(rec.page.evaluate("""() => {
        const out = [];
        gisapp.groups.permits.eachLayer(
            g => g.eachLayer && g.eachLayer(l => out.push(l.feature.properties.dossier_code)));
        return out;
    }"""))


def count_text(rec) -> int:
    return int(rec.page.get_by_test_id("permit-count").inner_text())


def click_parcel(rec, code: str):
    """Centre the map on ``code``'s parcel at street zoom and click it."""
    rec.page.evaluate("""(code) => {
        gisapp.groups.permits.eachLayer(g => g.eachLayer(l => {
            if (l.feature.properties.dossier_code === code) {
                gisapp.map.setView(l.getBounds().getCenter(), 19, {animate: false});
            }
        }));
    }""", code)
    wait_drawn(rec)
    point = rec.page.evaluate("""(code) => {
        let p = null;
        gisapp.groups.permits.eachLayer(g => g.eachLayer(l => {
            if (l.feature.properties.dossier_code === code) {
                const c = gisapp.map.latLngToContainerPoint(l.getBounds().getCenter());
                const box = gisapp.map.getContainer().getBoundingClientRect();
                p = [box.left + c.x, box.top + c.y];
            }
        }));
        return p;
    }""", code)
    assert point, f"{code} is not drawn"
    rec.page.mouse.click(*point)


def test_map_loads_offline_with_no_console_errors(page, server, n, tmp_path):
    page.page.goto(server + "/")
    assert wait_drawn(page, n) == n == 2534
    wait_drawn(page, layer="sidewalk")
    assert count_text(page) == n
    assert page.page.get_by_test_id("legend").is_visible()
    assert page.page.locator(".ward-label").count() >= 6
    shoot(page, tmp_path, "map.png")
    assert page.errors == []
    assert page.outside() == []
    assert any(u.endswith("/data/count") or "/data/construction_permits.geojson" in u for u in page.requests)


def test_filtering_by_ward_through_the_ui(page, server, store, n):
    page.page.goto(server + "/")
    wait_drawn(page, n)
    before = drawn_codes(page)
    page.page.get_by_test_id("filter-ward").select_option(["20305"])
    page.page.get_by_test_id("apply").click()
    expected = store.count(PERMITS, Filter(wards=("20305",)))
    wait_until(page.page, f"document.querySelector('[data-testid=permit-count]').textContent.trim() === "
                          f"'{expected}'")
    assert wait_drawn(page, expected) == expected < n
    codes = drawn_codes(page)
    assert codes < before
    assert codes == set(store.read(PERMITS, Filter(wards=("20305",)))["dossier_code"])
    assert "ward=20305" in page.page.url
    assert "ward=20305" in page.page.get_by_test_id("export").get_attribute("href")
    assert page.errors == [] and page.outside() == []


def test_permalink_reproduces_the_filter(page, server, store):
    flt = Filter(wards=("20306", "20311"), statuses=("RETURNED", "PROCESSING"))
    page.page.goto(server + "/?ward=20306,20311&status=RETURNED&status=PROCESSING")
    expected = store.count(PERMITS, flt)
    assert wait_drawn(page, expected) == expected
    assert count_text(page) == expected
    assert page.page.get_by_test_id("filter-ward").evaluate(
        "s => Array.from(s.selectedOptions).map(o => o.value)") == ["20306", "20311"]
    assert drawn_codes(page) == set(store.read(PERMITS, flt)["dossier_code"])
    # filter through the UI, then open the resulting URL in a new page: same view
    page.page.get_by_test_id("filter-channel").select_option(["ONLINE"])
    page.page.get_by_test_id("apply").click()
    online = store.count(PERMITS, flt.with_(channels=("ONLINE",)))
    wait_drawn(page, online)
    url = page.page.url
    again = open_page(page.page.context.browser, server)
    again.page.goto(url)
    assert wait_drawn(again, online) == online and count_text(again) == online
    again.page.context.close()


def test_popup_opens_on_click(page, server, n, linked_code):
    code, sidewalk_no = linked_code
    page.page.goto(server + "/")
    wait_drawn(page, n)
    click_parcel(page, code)
    popup = page.page.locator(".leaflet-popup-content [data-testid=permit-popup]")
    popup.wait_for(timeout=10000)
    wait_until(page.page, "document.querySelector('.popup-fields') !== null")
    text = popup.inner_text()
    assert code in text
    for label in ("Thủ tục", "Ngày tiếp nhận", "Ngày hẹn trả", "Tiến độ", "Số tầng", "Diện tích thửa (m²)",
                  "Giấy phép vỉa hè liên kết", sidewalk_no):
        assert label in text, label
    assert popup.locator("a.popup-link").get_attribute("href") == f"/permits/{code}"
    assert page.errors == []


def test_hostile_owner_and_address_show_as_text(page, server, n, hostile_code, tmp_path):
    page.page.goto(server + "/")
    wait_drawn(page, n)
    click_parcel(page, hostile_code)
    wait_until(page.page, "document.querySelector('.popup-fields') !== null")
    popup = page.page.locator(".leaflet-popup-content")
    assert XSS_OWNER in popup.inner_text() and XSS_ADDRESS in popup.inner_text()
    assert popup.locator("img").count() == 0
    page.page.goto(server + f"/permits/{hostile_code}")
    page.page.wait_for_load_state("networkidle")
    assert XSS_OWNER in page.page.get_by_test_id("permit-fields").inner_text()
    assert page.page.locator("main img").count() == 0
    shoot(page, tmp_path, "permit.png")
    assert page.dialogs == [] and page.errors == []


def test_dashboard_totals_match_the_store(page, server, store, n, tmp_path):
    page.page.goto(server + "/wards")
    wait_until(page.page, "document.querySelector('[data-choropleth]') !== null")
    assert int(page.page.get_by_test_id("total-received").inner_text()) == store.count(PERMITS) == n == 2534
    assert page.page.get_by_test_id("total-late").inner_text() == "0"
    for code in ("20260", "20305", "20314"):
        cell = page.page.get_by_test_id(f"received-{code}").inner_text()
        assert int(cell) == store.count(PERMITS, Filter(wards=(code,)))
    assert page.page.locator("[data-choropleth]").get_attribute("data-choropleth") == "6"
    assert page.page.locator("svg.chart").count() == 7
    shoot(page, tmp_path, "dashboard.png")
    page.page.get_by_role("link", name="20305 — Hòa Phát").click()
    page.page.wait_for_url("**/?ward=20305")
    assert count_text(page) == store.count(PERMITS, Filter(wards=("20305",)))
    assert page.errors == [] and page.outside() == []


def test_english_switch_persists(page, server):
    page.page.goto(server + "/")
    page.page.get_by_test_id("lang-switch").click()
    page.page.wait_for_load_state()
    assert page.page.get_by_role("button", name="Apply").is_visible()
    page.page.goto(server + "/wards")
    assert page.page.get_by_role("heading", name="Construction permit dossiers per ward").is_visible()


def test_past_the_cap_the_browser_gets_ward_counts_then_parcels(chromium, store, tmp_path):
    with live_server(create_app({"STORE": store.url, "BASEMAP": "none", "MAP_FEATURE_CAP": 300})) as base:
        rec = open_page(chromium, base)
        rec.page.goto(base + "/")
        wait_drawn(rec)
        assert rec.page.evaluate("gisapp.state.mode.permits") == "aggregate"
        assert rec.page.evaluate("gisapp.groups.permits.getLayers().length") == 6  # one count per ward
        assert rec.page.locator(".agg-label").count() >= 6
        # zoom to street level: parcels in view only, never the whole layer
        lot = store.read(PERMITS, limit=1).to_crs(4326).geometry.iloc[0].centroid
        rec.page.evaluate("([lat, lon]) => { gisapp.map.setView([lat, lon], 18, {animate: false}); }", [lot.y, lot.x])
        wait_until(rec.page, "gisapp.idle() && gisapp.state.mode.permits === 'features'")
        drawn = rec.page.evaluate("gisapp.state.drawn.permits")
        assert 0 < drawn <= 300
        shoot(rec, tmp_path, "map-capped.png")
        assert rec.errors == [] and rec.outside() == []
        rec.page.context.close()


def test_permit_page_links_back_to_the_map_centred_on_the_dossier(page, server, store, linked_code):
    code, _ = linked_code
    page.page.goto(server + f"/permits/{code}")
    wait_until(page.page, "window.gisapp && gisapp.idle() && gisapp.state.drawn.permits > 0")
    page.page.get_by_test_id("back-to-map").click()
    assert wait_drawn(page, 1) == 1 and count_text(page) == 1
    lot = store.get(PERMITS, code).to_crs(4326).geometry.iloc[0]
    zoom, lat, lon = page.page.evaluate(
        "[gisapp.map.getZoom(), gisapp.map.getCenter().lat, gisapp.map.getCenter().lng]")
    assert zoom == 18
    assert abs(lat - lot.centroid.y) < 1e-4 and abs(lon - lot.centroid.x) < 1e-4
    assert drawn_codes(page) == {code}
    assert page.errors == []


@pytest.fixture(scope="module")
def findings_server(demo_frames, tmp_path_factory):
    """The demo with its overlap findings, served to an anonymous visitor; yields (base URL, store)."""
    from gisapp.analysis.overlaps import AnalysisParams, find_overlaps

    frames, meta = demo_frames
    findings = find_overlaps(frames["construction_permits"], frames["sidewalk_permits"], frames["wards"],
                             AnalysisParams()).findings
    s = GeoPackageStore(tmp_path_factory.mktemp("findings") / "demo.gpkg", must_exist=False)
    s.write({**frames, "findings": findings}, meta=meta)
    with live_server(create_app({"STORE": s.url, "BASEMAP": "none"})) as base:
        yield base, s


def open_finding_popup(rec, finding_id: str):
    """Open the map's popup of a finding as a click on it would (the popup belongs to the layer group)."""
    rec.page.evaluate("""(id) => {
        gisapp.groups.findings.eachLayer(g => g.eachLayer(l => {
            if (l.feature.properties.finding_id === id) {
                l.fire("click", {latlng: l.getBounds().getCenter()}, true);
            }
        }));
    }""", finding_id)
    popup = rec.page.locator(".leaflet-popup-content [data-testid=findings-popup]")
    popup.wait_for(timeout=10000)
    return popup


def test_findings_link_to_the_pages_of_the_permits_they_name(chromium, findings_server, tmp_path):
    """Dossier page → its finding's sidewalk permit (table link and map popup) → that permit's own page."""
    base, s = findings_server
    findings = s.read("findings")
    linked = findings[findings["kind"] == "LINKED"].iloc[0]
    rec = open_page(chromium, base)
    try:
        rec.page.goto(base + f"/permits/{linked['a_id']}")
        wait_until(rec.page, "window.gisapp && gisapp.idle() && gisapp.state.drawn.findings > 0")
        popup = open_finding_popup(rec, linked["finding_id"])
        hrefs = {a.get_attribute("href") for a in popup.locator("a.page-link").all()}
        assert hrefs == {f"/permits/{linked['a_id']}", f"/permits/{linked['b_id']}"}
        rec.page.keyboard.press("Escape")
        rec.page.get_by_test_id("findings").get_by_role("link", name=linked["b_id"]).click()
        rec.page.wait_for_url(f"**/permits/{linked['b_id']}")
        assert rec.page.get_by_test_id("permit-no").inner_text() == linked["b_id"]
        wait_until(rec.page, "window.gisapp && gisapp.idle() && gisapp.state.drawn.sidewalk > 0")
        assert linked["finding_id"] in rec.page.get_by_test_id("findings").inner_text()
        assert rec.page.get_by_test_id("sidewalk-fields").get_by_role("link", name=linked["a_id"]).is_visible()
        shoot(rec, tmp_path, "sidewalk-permit.png")
        assert rec.errors == [] and rec.outside() == []
    finally:
        rec.page.context.close()
