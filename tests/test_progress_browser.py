"""Progress in the browser (issue 20), in real Chromium: an upload's stages until its report, and the map's
loading bar and error banner."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from gisapp.accounts import Accounts
from gisapp.web.app import create_app
from tests.browser_util import live_server, open_page, wait_until
from tests.helpers import PASSWORD

PERMITS = "**/data/construction_permits.geojson*"


@pytest.fixture(scope="module")
def site(_demo_store_file, tmp_path_factory):
    home = tmp_path_factory.mktemp("progress-site")
    Accounts(home / "acc.sqlite").add("officer1", PASSWORD, "officer")
    store = home / "store.gpkg"  # its own copy: the upload test imports into it
    shutil.copyfile(_demo_store_file, store)
    app = create_app({"STORE": str(store), "BASEMAP": "none", "ACCOUNTS": str(home / "acc.sqlite"),
                      "UPLOADS": str(home / "uploads")})
    with live_server(app) as base:
        yield base


@pytest.fixture
def page(chromium, site):
    rec = open_page(chromium, site)
    yield rec
    rec.page.context.close()


def _sign_in(page, base: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", "officer1")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")


def _stage(page) -> str:
    return page.evaluate("(document.querySelector('[data-testid=upload-stage]') || {}).textContent || ''")


def test_an_upload_shows_bytes_sent_then_the_checks_stages_then_its_report_without_a_reload(
        page, site, _demo_store_file, tmp_path, monkeypatch):
    monkeypatch.setenv("GISAPP_TEST_SLOW_PROGRESS", "0.3")  # test-only: the check's child sleeps per report
    from gisapp.store.gpkg import GeoPackageStore
    rows = GeoPackageStore(_demo_store_file).read("sidewalk_permits", limit=400).copy()
    rows["permit_no"] = [f"BR-{i}" for i in range(len(rows))]
    for col in ("start_on", "end_on"):
        rows[col] = rows[col].dt.strftime("%Y-%m-%d")
    source = tmp_path / "permits.geojson"
    rows.to_crs(4326).to_file(source, driver="GeoJSON")
    size = source.stat().st_size

    p = page.page
    _sign_in(p, site)
    p.goto(site + "/upload")
    cdp = p.context.new_cdp_session(p)  # a slow line, so that the file's own progress can be seen
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20, "downloadThroughput": -1,
                                                  "uploadThroughput": size})  # about a second for the file
    p.select_option("select[name=layer]", "sidewalk_permits")
    p.set_input_files("input[name=file]", str(source))
    p.evaluate("window.__sameDocument = true")
    p.click("form[data-upload-form] button[type=submit]")
    texts, until = [], time.monotonic() + 120
    while time.monotonic() < until:
        text = _stage(p)
        if text and (not texts or texts[-1] != text):
            texts.append(text)
        if p.evaluate("!!document.querySelector('[data-testid=accepted]')"):
            break
        time.sleep(0.03)
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": -1})
    assert p.evaluate("window.__sameDocument === true"), "the page was reloaded"
    assert p.get_by_test_id("accepted").inner_text() == "400"
    sending = [t for t in texts if t.startswith("Đang gửi tệp")]
    assert any("MB" in t for t in sending), texts
    assert any(t.startswith("Đang đọc tệp") for t in texts), texts
    checking = [t for t in texts if t.startswith("Đang kiểm tra các dòng")]
    assert len(checking) >= 2, texts  # "bước 1 / 6", "bước 2 / 6"…: the stage moved
    assert texts.index(sending[0]) < texts.index(checking[0])
    assert p.url.startswith(site + "/upload/") and p.url != site + "/upload"
    assert page.errors == []
    # a second tab (or a refresh) of that address shows the same report
    other = p.context.new_page()
    other.goto(p.url)
    assert other.get_by_test_id("accepted").inner_text() == "400"
    # confirmed: the import's stages, then its result, still without a reload
    p.click("[data-testid=confirm]")
    texts = []
    while time.monotonic() < until:
        text = _stage(p)
        if text and (not texts or texts[-1] != text):
            texts.append(text)
        if p.evaluate("document.querySelector('h1').textContent.indexOf('Đã nhập dữ liệu') >= 0"):
            break
        time.sleep(0.03)
    assert any(t.startswith("Đang ghi vào kho dữ liệu") for t in texts), texts
    assert p.evaluate("window.__sameDocument === true")
    assert p.get_by_test_id("accepted").inner_text() == "400"
    other.reload()
    assert "Đã nhập dữ liệu" in other.locator("h1").inner_text()


def test_a_failed_check_shows_its_reason_without_a_reload(page, site, tmp_path):
    bad = tmp_path / "broken.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [')
    p = page.page
    _sign_in(p, site)
    p.goto(site + "/upload")
    p.set_input_files("input[name=file]", str(bad))
    p.evaluate("window.__sameDocument = true")
    p.click("form[data-upload-form] button[type=submit]")
    text = wait_until(p, "(function () { var n = document.querySelector('[data-testid=upload-failure]');"
                         " return n && !n.hidden && n.textContent; })()")
    assert "broken.geojson" in text
    assert p.evaluate("window.__sameDocument === true")


def test_the_map_shows_a_bar_while_layers_load(page, site):
    p = page.page
    held: list = []
    p.route(PERMITS, lambda route: held.append(route))
    p.goto(site + "/")
    wait_until(p, "(function () { var b = document.querySelector('[data-testid=map-loading]');"
                  " return b && !b.hidden; })()")
    assert p.evaluate("document.querySelector('.gisapp-map').getAttribute('data-loading')") == "yes"
    while held:
        held.pop().continue_()
    p.unroute(PERMITS)
    wait_until(p, "document.querySelector('[data-testid=map-loading]').hidden")
    assert p.evaluate("document.querySelector('.gisapp-map').getAttribute('data-loading')") == "no"
    assert p.get_by_test_id("map-error").is_hidden()


@pytest.mark.parametrize("lang, words", [("vi", "Không tải được dữ liệu"), ("en", "Could not load data")])
def test_the_map_says_so_when_a_layer_request_fails(page, site, lang, words):
    p = page.page
    body = json.dumps({"code": "ServerError", "description": "the store is down", "status": 500})
    p.route(PERMITS, lambda route: route.fulfill(status=500, content_type="application/json", body=body))
    p.goto(site + f"/?lang={lang}")
    text = wait_until(p, "(function () { var e = document.querySelector('[data-testid=map-error]');"
                         " return e && !e.hidden && e.textContent; })()")
    assert words in text and "the store is down" in text
    wait_until(p, "document.querySelector('[data-testid=map-loading]').hidden")


def test_the_map_says_so_when_basemap_tiles_fail(chromium, _demo_store_file):
    app = create_app({"STORE": str(_demo_store_file), "BASEMAP": "http://127.0.0.1:9/{z}/{x}/{y}.png"})
    with live_server(app) as base:
        rec = open_page(chromium, base)
        p = rec.page
        p.route("http://127.0.0.1:9/**", lambda route: route.fulfill(status=500, body="down"))
        p.goto(base + "/")
        text = wait_until(p, "(function () { var e = document.querySelector('[data-testid=map-error]');"
                             " return e && !e.hidden && e.textContent; })()")
        assert "Không tải được ô bản đồ" in text
        rec.page.context.close()
