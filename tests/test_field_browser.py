"""Field work in a real Chromium on a phone: the layout at 390 × 844 with touch, "Locate me" and "here, today"
with emulated geolocation at a planted spot on a known day, and an inspection recorded through the form with a
real JPEG.  Screenshots go to the test's tmp dir and /tmp/gisapp-shots/ for a human to look at."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from PIL import Image

from gisapp import geo
from gisapp.accounts import Accounts
from gisapp.schema import STORE_CRS
from gisapp.store.gpkg import GeoPackageStore
from gisapp.web.app import create_app
from tests.browser_util import live_server, wait_until
from tests.helpers import PASSWORD, phone_jpeg

pytestmark = pytest.mark.browser

SHOTS = Path("/tmp/gisapp-shots")
PHONE = {"width": 390, "height": 844}
#: The planted spot (EPSG:5899): on a sidewalk permit's polygon, 2 m in front of a dossier's parcel.
SPOT = (548700.0, 1771300.0)
DAY = "2022-03-15"


def _planted() -> dict[str, gpd.GeoDataFrame]:
    x, y = SPOT
    works = gpd.GeoDataFrame([{
        "dossier_code": "XD-PLANTED-1", "permit_no": "GP-PLANTED-1", "ward_code": "20312", "status": "RETURNED",
        "procedure": "NEW_BUILD", "work_category": "HOUSE", "channel": "ONLINE", "received_on": "2022-01-10",
        "issued_on": "2022-02-01", "site_address": "1 Đường Thử", "street": "Đường Thử",
        "geometry": shapely.box(x - 3, y + 2, x + 3, y + 20)}], geometry="geometry", crs=STORE_CRS)
    side = gpd.GeoDataFrame([{
        "permit_no": "VH-PLANTED-1", "ward_code": "20312", "purpose": "MATERIALS", "status": "RETURNED",
        "channel": "ONLINE", "address": "1 Đường Thử", "street": "Đường Thử", "start_on": "2022-03-01",
        "end_on": "2022-03-31", "sidewalk_width_m": 4.0, "used_width_m": 2.0, "used_area_m2": 12.0,
        "geometry": shapely.box(x - 3, y - 1, x + 3, y + 1)}], geometry="geometry", crs=STORE_CRS)
    return {"construction_permits": works, "sidewalk_permits": side}


@pytest.fixture(scope="module")
def server(demo_frames, tmp_path_factory):
    frames, meta = demo_frames
    home = tmp_path_factory.mktemp("field")
    store = GeoPackageStore(home / "demo.gpkg", must_exist=False)
    store.write(frames, meta=meta)
    store.write(_planted(), mode="upsert")
    accounts = Accounts(home / "acc.sqlite")
    accounts.add("insp1", PASSWORD, "inspector")
    app = create_app({"STORE": store.url, "BASEMAP": "none", "ACCOUNTS": str(home / "acc.sqlite")})
    with live_server(app) as base:
        yield base, store


def _phone(chromium, base, **extra):
    context = chromium.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                   locale="vi-VN", **extra)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return page, errors


def _shoot(page, tmp_path, name):
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    SHOTS.mkdir(exist_ok=True)
    shutil.copy(path, SHOTS / path.name)


def _no_sideways_scroll(page):
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), \
        page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def _sign_in(page, base):
    page.goto(base + "/login")
    page.fill("input[name=username]", "insp1")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_load_state()


def _lonlat():
    point = geo.transform([shapely.Point(*SPOT)])[0]
    return point.x, point.y


def test_the_map_fills_a_phone_screen_with_the_filters_in_a_drawer(chromium, server, tmp_path):
    base, _ = server
    page, errors = _phone(chromium, base)
    page.goto(base + "/")
    wait_until(page, "window.gisapp && window.gisapp.idle()")
    share = page.evaluate("""() => {
        const r = document.querySelector('.map-pane').getBoundingClientRect();
        const w = Math.max(0, Math.min(r.right, innerWidth) - Math.max(r.left, 0));
        const h = Math.max(0, Math.min(r.bottom, innerHeight) - Math.max(r.top, 0));
        return w * h / (innerWidth * innerHeight);
    }""")
    assert share >= 0.6, share
    _no_sideways_scroll(page)
    assert not page.locator("#filter-form").is_visible() or \
        page.evaluate("document.getElementById('sidebar').getBoundingClientRect().right <= 0")
    _shoot(page, tmp_path, "phone-map")
    page.tap("[data-testid=drawer-toggle]")
    wait_until(page, "document.getElementById('sidebar').getBoundingClientRect().left >= 0")
    _shoot(page, tmp_path, "phone-map-drawer")
    small = page.evaluate("""() => [...document.querySelectorAll(
            '#sidebar button, #sidebar a.btn, #sidebar select, #sidebar input, .drawer-toggle, .locate-me')]
        .filter(e => e.offsetParent !== null)
        .map(e => [e.getAttribute('data-testid') || e.name || e.className,
                   (e.closest('label') || e).getBoundingClientRect().height])
        .filter(([_, h]) => h < 44)""")
    assert small == []
    page.tap("[data-testid=drawer-close]")
    _no_sideways_scroll(page)
    assert errors == []


@pytest.mark.parametrize("path", ["/wards", "/permits/XD-PLANTED-1", "/permits/VH-PLANTED-1", "/login"])
def test_other_pages_do_not_scroll_sideways_on_a_phone(chromium, server, tmp_path, path):
    base, _ = server
    page, errors = _phone(chromium, base)
    page.goto(base + path)
    page.wait_for_load_state("networkidle")
    _no_sideways_scroll(page)
    _shoot(page, tmp_path, "phone" + path.replace("/", "-"))
    assert errors == []


def test_locate_me_lists_what_is_permitted_at_the_planted_spot_on_that_day(chromium, server, tmp_path):
    base, _ = server
    lon, lat = _lonlat()
    page, errors = _phone(chromium, base, geolocation={"longitude": lon, "latitude": lat}, permissions=["geolocation"])
    page.goto(base + f"/?day={DAY}")
    wait_until(page, "window.gisapp && window.gisapp.idle()")
    page.tap("[data-testid=locate-me]")
    wait_until(page, "document.querySelector('[data-testid=here]')")
    works = page.locator("[data-testid=here-construction] li").all_inner_texts()
    side = page.locator("[data-testid=here-sidewalk] li").all_inner_texts()
    assert any("XD-PLANTED-1" in w and "2023-01-31" in w for w in works), works
    assert any("VH-PLANTED-1" in s and "2022-03-31" in s for s in side), side
    _shoot(page, tmp_path, "phone-here-today")
    # the day after the sidewalk permit ended, only the works are there
    page.goto(base + "/?day=2022-04-01")
    wait_until(page, "window.gisapp && window.gisapp.idle()")
    page.tap("[data-testid=locate-me]")
    wait_until(page, "document.querySelector('[data-testid=here]')")
    assert page.locator("[data-testid=here-sidewalk]").count() == 0
    assert "XD-PLANTED-1" in page.locator("[data-testid=here-construction]").inner_text()
    assert errors == []


def test_a_refused_position_says_so(chromium, server):
    base, _ = server
    page, _ = _phone(chromium, base)  # no geolocation permission
    page.goto(base + "/")
    wait_until(page, "window.gisapp && window.gisapp.idle()")
    page.tap("[data-testid=locate-me]")
    wait_until(page, "document.querySelector('[data-testid=field-message]') && "
                     "!document.querySelector('[data-testid=field-message]').hidden")
    assert "vị trí" in page.locator("[data-testid=field-message]").inner_text()


def test_an_inspection_recorded_on_a_phone_with_a_real_jpeg(chromium, server, tmp_path):
    base, store = server
    lon, lat = _lonlat()
    page, errors = _phone(chromium, base, geolocation={"longitude": lon, "latitude": lat},
                          permissions=["geolocation"])
    _sign_in(page, base)
    page.goto(base + "/inspections/new?target=XD-PLANTED-1")
    _no_sideways_scroll(page)
    page.tap("[data-testid=use-position]")
    wait_until(page, "document.querySelector('input[name=lat]').value !== ''")
    page.select_option("select[name=outcome]", "FAILED")
    page.fill("textarea[name=notes]", "Vật liệu lấn quá vạch cho phép")
    photo = tmp_path / "site.jpg"
    photo.write_bytes(phone_jpeg(3000, 4000))
    page.set_input_files("input[name=photos]", str(photo))
    _shoot(page, tmp_path, "phone-inspection-form")
    page.click("[data-testid=save-inspection]")
    page.wait_for_url("**/inspections/KT-*")
    _no_sideways_scroll(page)
    _shoot(page, tmp_path, "phone-inspection")
    [record] = store.inspections(target_key="XD-PLANTED-1")
    assert record.outcome == "FAILED" and record.inspector == "insp1"
    assert record.position.distance(shapely.Point(*SPOT)) < 0.05
    img = Image.open(io.BytesIO(store.inspection_photo(record.photos[0].token)))
    assert img.size == (1200, 1600)
    assert set(img.getexif()) <= {0x0132, 0x8769, 0x8825}
    page.goto(base + "/permits/XD-PLANTED-1")
    assert page.locator(f"[data-testid=inspection-{record.inspection_id}]").count() == 1
    _no_sideways_scroll(page)
    _shoot(page, tmp_path, "phone-permit-timeline")
    assert errors == []


def test_an_unpermitted_occupancy_drawn_on_a_phone_becomes_a_finding(chromium, server, tmp_path):
    base, store = server
    lon, lat = _lonlat()
    page, errors = _phone(chromium, base, geolocation={"longitude": lon + 0.0003, "latitude": lat},
                          permissions=["geolocation"])
    _sign_in(page, base)
    page.goto(base + "/inspections/new")
    page.tap("[data-testid=use-position]")
    wait_until(page, "document.querySelector('input[name=lat]').value !== ''")
    box = page.locator("[data-testid=draw-map]")
    box.scroll_into_view_if_needed()
    b = box.bounding_box()
    for dx, dy in ((0.3, 0.3), (0.7, 0.3), (0.7, 0.6), (0.3, 0.6)):
        page.mouse.click(b["x"] + b["width"] * dx, b["y"] + b["height"] * dy)
    wait_until(page, "document.getElementById('draw-map').dataset.corners === '4'")
    photo = tmp_path / "sand.jpg"
    photo.write_bytes(phone_jpeg(1200, 900))
    page.set_input_files("input[name=photos]", str(photo))
    _no_sideways_scroll(page)
    _shoot(page, tmp_path, "phone-unpermitted-form")
    page.click("[data-testid=save-inspection]")
    page.wait_for_url("**/inspections/KT-*")
    iid = page.locator("[data-testid=inspection-id]").inner_text()
    [record] = store.inspections(inspection_id=iid)
    assert record.unpermitted and 1 < record.occupancy.area < 2000
    finding = store.get("findings", f"UP-{iid}")
    assert finding["kind"].iloc[0] == "UNPERMITTED"
    assert "data-testid=\"occupancy-area\"" in page.content()
    assert errors == []
