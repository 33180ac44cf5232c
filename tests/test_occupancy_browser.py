"""The officers' "check a sidewalk occupancy" tool in real Chromium: draw, see the verdict, file, see the permit."""

from __future__ import annotations

import json

import shapely

from gisapp import geo
from gisapp.accounts import Accounts
from gisapp.schema import STORE_CRS, WEB_CRS
from gisapp.web.app import create_app
from tests.browser_util import live_server, open_page, wait_until
from tests.helpers import PASSWORD
from tests.stores import analyzed_store


def _sign_in(page, base: str, name: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")


def test_draw_check_file_and_see_the_new_permit(chromium, demo_frames, tmp_path, request):
    frames, meta = demo_frames
    store = analyzed_store("gpkg", tmp_path, request, frames, meta)
    permits = store.read("sidewalk_permits")
    target = permits[permits["status"].isin(["PROCESSING", "RETURNED"])].iloc[0]
    centre = geo.transform([shapely.centroid(target.geometry)], STORE_CRS, WEB_CRS)[0]
    accounts = Accounts(tmp_path / "acc.sqlite")
    accounts.add("olga", PASSWORD, "officer")
    accounts.add("vera", PASSWORD, "viewer")
    app = create_app({"STORE": store.url, "BASEMAP": "none", "ACCOUNTS": str(tmp_path / "acc.sqlite")})
    with live_server(app) as base:
        # a viewer gets no tool
        viewer = open_page(chromium, base)
        _sign_in(viewer.page, base, "vera")
        viewer.page.goto(f"{base}/")
        wait_until(viewer.page, "window.gisapp && window.gisapp.idle()")
        assert viewer.page.locator("[data-testid=occupancy-tool]").count() == 0
        assert viewer.page.locator(".leaflet-draw").count() == 0

        rec = open_page(chromium, base)
        page = rec.page
        _sign_in(page, base, "olga")
        page.goto(f"{base}/#19/{centre.y:.7f}/{centre.x:.7f}")
        wait_until(page, "document.querySelector('.leaflet-container').getAttribute('data-occupancy') === 'ready'")
        wait_until(page, "window.gisapp && window.gisapp.idle()")
        page.evaluate(f"window.gisapp.map.setView([{centre.y}, {centre.x}], 19, {{animate: false}}) && true")
        page.fill("[data-testid=occ-start]", str(target.start_on.date()))
        page.fill("[data-testid=occ-end]", str(target.end_on.date()))
        page.select_option("[data-testid=occ-purpose]", "MATERIALS")
        # draw a rectangle with the mouse, with Leaflet.draw's rectangle tool, around the permit's centre
        page.click(".leaflet-draw-draw-rectangle")
        box = page.locator(".leaflet-container").bounding_box()
        point = page.evaluate(f"window.gisapp.map.latLngToContainerPoint([{centre.y}, {centre.x}])")
        x, y = box["x"] + point["x"], box["y"] + point["y"]
        page.mouse.move(x - 5, y - 5)
        page.mouse.down()
        page.mouse.move(x, y, steps=3)
        page.mouse.move(x + 5, y + 5, steps=3)
        page.mouse.up()
        state = wait_until(page, "(s => s && s.startsWith('checked:') && s)"
                                 "(document.querySelector('.leaflet-container').getAttribute('data-occupancy'))")
        verdict = page.get_attribute("[data-testid=occ-verdict]", "data-verdict")
        assert state == f"checked:{verdict}" and verdict in ("REFER", "REFUSE")
        assert target.permit_no in page.inner_text("[data-testid=occ-clashes]")
        wait_until(page, "document.querySelector('.leaflet-container').getAttribute('data-clashes') === '1'")
        assert page.inner_text("[data-testid=occ-passage]").endswith(")")  # the width and its day
        assert "₫" in page.inner_text("[data-testid=occ-fee]")
        assert page.inner_text("[data-testid=occ-due]")

        # file it
        page.fill("[data-testid=occ-applicant]", "Lê Văn Thử")
        page.click("[data-testid=occ-save]")
        saved = wait_until(page, "(s => s && s.startsWith('saved:') && s)"
                                 "(document.querySelector('.leaflet-container').getAttribute('data-occupancy'))")
        number = saved.split(":", 1)[1]
        assert page.inner_text("[data-testid=occ-permit-link]") == number
        # the new permit is on the map (the sidewalk layer fetched again), and in the store with status NEW
        wait_until(page, """(() => { let found = false;
            window.gisapp.groups.sidewalk.eachLayer(g => g.eachLayer && g.eachLayer(f => {
                if (f.feature && f.feature.properties.permit_no === NUMBER) { found = true; } }));
            return found; })()""".replace("NUMBER", json.dumps(number)))
        stored = store.get("sidewalk_permits", number)
        assert stored["status"].iloc[0] == "NEW" and stored["applicant_name"].iloc[0] == "Lê Văn Thử"
        assert rec.errors == [] and rec.outside() == []
