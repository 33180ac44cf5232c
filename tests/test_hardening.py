"""Hardening found by an independent attack, on both stores (GeoPackage and PostGIS).

- Control characters (C0, DEL, C1) in any query value, query name or path
  parameter are refused with 400 in the one error shape; imported text loses them.
- Every response to signed-in staff that may carry personal data says
  ``Cache-Control: private, no-store``.
- Absolute links come from ``GISAPP_BASE_URL`` when set; a ``Host`` that is
  not trusted is refused.
- A Content-Security-Policy whose ``script-src`` allows the app's own files and
  the per-request nonce of its inline scripts only (checked in Chromium too).
- Keys containing ``/`` reach the dossier page and its popup data.
"""

from __future__ import annotations

import math
import re
from urllib.parse import quote

import numpy as np
import pytest

from gisapp import geo, schema
from gisapp.accounts import Accounts
from gisapp.config import ConfigError, load_config
from gisapp.web.app import create_app
from tests.browser_util import sample_frames
from tests.stores import BACKENDS, new_store

PASSWORD = "correct horse battery"
SLASH_CODE = "XD/2022/000005"
PERMITS = "construction_permits"


@pytest.fixture(scope="module")
def frames():
    """The sample layers, one dossier's code holding slashes."""
    frames, meta = sample_frames(120)
    frames[PERMITS].loc[5, "dossier_code"] = SLASH_CODE
    return frames, meta


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, frames, tmp_path_factory):
    s = new_store(request.param, tmp_path_factory.mktemp("hardening"), request)
    s.write(frames[0], meta=frames[1])
    return s


def store_url(store) -> str:
    """The URL an app opens ``store`` with."""
    return store.url


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("hardening-home")
    Accounts(path / "acc.sqlite").add("viewer1", PASSWORD, "viewer")
    return path


def make_app(store, home, **config):
    return create_app({"STORE": store_url(store), "ACCOUNTS": str(home / "acc.sqlite"),
                       "UPLOADS": str(home / "up"), "TESTING": True, **config})


@pytest.fixture(scope="module")
def app(store, home):
    return make_app(store, home)


def signed_in(app):
    """A test client signed in as a viewer (who sees personal data)."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/login", data={"username": "viewer1", "password": PASSWORD, "csrf_token": csrf})
    assert r.status_code == 302
    return client


def tile_path(store, layer: str = PERMITS, z: int = 16) -> str:
    """The tile at zoom ``z`` holding the layer's first feature."""
    first = store.read(layer, limit=1)
    shape = geo.transform(first.geometry.values, schema.STORE_CRS, schema.WEB_CRS)[0]
    lon, lat = shape.representative_point().coords[0]
    n = 1 << z
    x, y = int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return f"/tiles/{layer}/{z}/{x}/{y}.mvt"


# -- control characters ---------------------------------------------------------------------

#: (URL with ``{c}`` where the control character goes, the parameter the error names, JSON or HTML).
CONTROL_URLS = [
    ("/data/count?q={c}", "q", "json"),
    ("/data/count?q=a{c}b", "q", "json"),
    ("/data/count?status={c}", "status", "json"),
    ("/data/count?x{c}=1", "x", "json"),
    ("/data/construction_permits.geojson?q={c}", "q", "json"),
    ("/data/construction_permits/XD{c}.json", "code", "json"),
    ("/export/construction_permits.csv?q={c}", "q", "json"),
    ("/export/construction_permits.geojson?q={c}", "q", "json"),
    ("/export/construction_permits.gpkg?q={c}", "q", "json"),
    ("/api/collections/construction_permits/items?q={c}", "q", "json"),
    ("/api/collections/construction_permits/items/XD{c}", "feature_id", "json"),
    ("{tile}?q={c}", "q", "json"),
    ("/tiles/construction_permits.json?q={c}", "q", "json"),
    ("/?q={c}", "q", "html"),
    ("/?lang={c}", "lang", "html"),
    ("/wards?q={c}", "q", "html"),
    ("/permits/XD{c}", "code", "html"),
    ("/api/collections/construction_permits/items/XD{c}?f=html", "feature_id", "html"),
]
#: NUL, tab, line feed, escape, DEL, and C1's NEL and APC, percent-encoded as UTF-8.
CONTROLS = ["%00", "%09", "%0A", "%1B", "%7F", "%C2%85", "%C2%9F"]


@pytest.mark.parametrize("url,param,kind", CONTROL_URLS)
def test_control_characters_in_any_parameter_are_refused(app, store, url, param, kind):
    client = app.test_client()
    for c in CONTROLS:
        r = client.get(url.format(c=c, tile=tile_path(store)))
        assert r.status_code == 400, (url, c, r.status_code, r.data[:300])
        if kind == "json":
            body = r.get_json()
            assert set(body) == {"code", "description", "status"}
            assert body["code"] == "InvalidParameterValue" and body["status"] == 400
            # a path parameter is named; when the character keeps the route from matching, the path is
            named = (f"{param}: ", "path: ") if param in ("code", "feature_id") else f"{param}: "
            assert body["description"].startswith(named) and "U+00" in body["description"], body
        else:
            assert r.mimetype == "text/html"
            assert 'class="error-description"' in r.get_data(as_text=True)


def test_search_text_without_control_characters_still_works(app, store):
    client = app.test_client()
    everything = client.get("/data/count").get_json()["count"]
    assert client.get("/data/count?q=" + quote("Ông Ích Đường")).get_json()["count"] < everything
    assert client.get("/data/count?q=" + quote("\u00a0ông ích")).status_code == 200  # a no-break space is text
    assert client.get("/?q=" + quote("Nguyễn")).status_code == 200


def test_imported_text_loses_its_control_characters():
    from gisapp.importing.values import clean_strings, drop_controls, to_text

    assert drop_controls("a\x00b\tc\r\nd\x7fe\x85f\x9fg\x1bh") == "ab c de fgh"
    assert drop_controls("Ông Ích\u00a0Đường") == "Ông Ích\u00a0Đường"
    values = ["  Lê\x00Lợi ", "tab\there", None, "ok", "x\x85y"]
    assert clean_strings(values).tolist() == ["LêLợi", "tab here", None, "ok", "x y"]
    assert clean_strings(["ô\x07", "b"]).tolist() == ["ô", "b"]  # no NUL: the joined fast path
    assert to_text(np.array(["x\x01", 12, None], dtype=object)).tolist() == ["x", "12", None]  # mixed values


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_import_with_control_characters_stores_clean_text(backend, tmp_path, request):
    from gisapp.importing.prepare import run_import
    from tests.import_samples import CAL, WARDS, dossier, parcels_frame, read_count, write_csv

    s = new_store(backend, tmp_path, request)
    s.write({"wards": WARDS})
    parcels = tmp_path / "parcels.gpkg"
    parcels_frame().to_file(parcels, layer="parcels", driver="GPKG")
    rows = [dossier(1, **{"Chủ đầu tư": "Nguyễn\x00Văn\tA", "Địa chỉ công trình": "1 Lê\x7f Lợi\x85"}),
            dossier(2, **{"Mã hồ sơ": "XD-\x01002"})]
    path = write_csv(tmp_path / "ho_so.csv", rows)
    report = read_count(run_import(s, PERMITS, path, parcels=parcels, calendar=CAL))
    assert report.accepted == 2, report.rejects.to_dict("records")
    stored = s.read(PERMITS).set_index("dossier_code")
    assert stored.loc[dossier(1)["Mã hồ sơ"], "owner_name"] == "NguyễnVăn A"
    assert stored.loc[dossier(1)["Mã hồ sơ"], "site_address"] == "1 Lê Lợi"
    assert "XD-002" in stored.index


# -- caching of personal data ---------------------------------------------------------------

def walk(app, store) -> list[tuple[str, str]]:
    """(endpoint, URL) of every GET route, with real values for its variables."""
    first = {name: store.read(name, limit=1) for name in schema.LAYERS}
    out = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or "<token>" in rule.rule or "<inspection_id>" in rule.rule:
            continue  # uploads, inspections: reached only through their flows (test_upload, test_inspections)
        if rule.rule == "/data/here":
            out.append((rule.endpoint, "/data/here?lon=108.2&lat=16.01"))
            continue
        if rule.endpoint == "static":
            out.append((rule.endpoint, "/static/map.js"))
            continue
        layers = list(schema.LAYERS) if ("<layer>" in rule.rule or "<collection_id>" in rule.rule) else [None]
        for name in layers:
            if rule.rule.startswith("/tiles/") and name not in ("construction_permits", "sidewalk_permits", "findings"):
                continue
            if rule.rule.startswith("/data/<layer>") and name == "wards":
                continue
            path = rule.rule.replace("<layer>", name or "").replace("<collection_id>", name or "")
            if "<z>" in path:
                path = tile_path(store, name)
            if "<path:feature_id>" in path:
                path = path.replace("<path:feature_id>", quote(str(first[name][schema.LAYERS[name].key].iloc[0])))
            path = re.sub(r"<(?:path:)?code>", quote(SLASH_CODE, safe=""), path)
            for p in ([path.replace("<fmt>", f) for f in ("geojson", "csv", "gpkg")] if "<fmt>" in path else [path]):
                out.append((rule.endpoint, p))
    out += [("api.item", f"/api/collections/{PERMITS}/items/{quote(SLASH_CODE, safe='')}?f=html"),
            ("api.items", f"/api/collections/{PERMITS}/items?f=html")]
    return out


def test_signed_in_responses_are_never_stored(app, store):
    """Every response to signed-in staff but static files and vector tiles says ``private, no-store``.

    Tiles carry no personal field whoever asks (tests/test_tiles.py) and keep their
    ETag revalidation; static files are the same for everyone.
    """
    client = signed_in(app)
    walked = walk(app, store)
    assert len(walked) > 30
    for endpoint, url in walked:
        r = client.get(url)
        body = r.data  # read to the end: streamed responses close their request
        assert r.status_code in (200, 204, 302, 403), (url, r.status_code, body[:200])
        cache = r.headers.get("Cache-Control", "")
        if endpoint == "static":
            assert "no-store" not in cache, url
        elif endpoint == "tiles.tile":
            assert cache == "private, no-cache" and (r.status_code == 204 or r.headers.get("ETag")), url
        else:
            assert cache == "private, no-store", (url, cache)
    assert "Nguyễn Văn" in client.get(f"/permits/{quote(SLASH_CODE, safe='')}").get_data(as_text=True)


def test_anonymous_responses_keep_their_caching(app):
    client = app.test_client()
    assert client.get(f"/export/{PERMITS}.csv").headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/").headers.get("Cache-Control", "")


# -- keys with '/' --------------------------------------------------------------------------

@pytest.mark.parametrize("encode", [True, False])
def test_a_dossier_code_with_slashes_reaches_its_page_and_popup(app, encode):
    code = quote(SLASH_CODE, safe="") if encode else SLASH_CODE
    client = app.test_client()
    page = client.get(f"/permits/{code}")
    assert page.status_code == 200, page.data[:300]
    assert f'data-testid="dossier-code">{SLASH_CODE}<' in page.get_data(as_text=True)
    popup = client.get(f"/data/construction_permits/{code}.json")
    assert popup.status_code == 200 and popup.get_json()["dossier_code"] == SLASH_CODE
    item = client.get(f"/api/collections/{PERMITS}/items/{code}")
    assert item.status_code == 200 and item.get_json()["id"] == SLASH_CODE
    assert client.get(f"/permits/{code}x").status_code == 404
    assert client.get(f"/data/construction_permits/{code}x.json").get_json()["code"] == "NotFound"


# -- links and the Host header --------------------------------------------------------------

def hrefs(doc) -> list[str]:
    """Every absolute URL in a JSON document."""
    found = []

    def visit(value):
        if isinstance(value, dict):
            for v in value.values():
                visit(v)
        elif isinstance(value, list):
            for v in value:
                visit(v)
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            found.append(value)

    visit(doc)
    return found


LINK_URLS = ["/api", "/api/conformance", "/api/collections", f"/api/collections/{PERMITS}",
             f"/api/collections/{PERMITS}/queryables", f"/api/collections/{PERMITS}/items?limit=2",
             f"/api/collections/{PERMITS}/items/XD-2022-000001", "/api/openapi?f=json",
             f"/tiles/{PERMITS}.json?status=PROCESSING"]


def test_an_untrusted_host_is_refused(app):
    client = app.test_client()
    for url in LINK_URLS + ["/", "/healthz"]:
        r = client.get(url, headers={"Host": "evil.example"})
        assert r.status_code == 400, (url, r.status_code)
        assert b"evil.example/api" not in r.data
        if url != "/":
            assert r.get_json()["code"] == "UntrustedHost"
    assert client.get("/", headers={"Host": "evil.example"}).mimetype == "text/html"
    for host in ("localhost", "127.0.0.1:5000", "localhost:8080"):
        assert client.get("/api", headers={"Host": host}).status_code == 200, host


def test_links_use_the_public_base_url(store, home):
    base = "https://gis.example.vn/gisapp"
    client = make_app(store, home, BASE_URL=base + "/").test_client()
    for url in LINK_URLS:
        r = client.get(url, headers={"Host": "localhost"})
        assert r.status_code == 200, url
        links = hrefs(r.get_json())
        assert any(h.startswith((base + "/api", base + "/tiles/")) for h in links), url
        assert not [h for h in links if "localhost" in h], url
    assert client.get("/api/openapi?f=json").get_json()["servers"] == [{"url": base + "/api"}]
    tilejson = client.get(f"/tiles/{PERMITS}.json?status=PROCESSING").get_json()
    assert tilejson["tiles"] == [base + f"/tiles/{PERMITS}/{{z}}/{{x}}/{{y}}.mvt?status=PROCESSING"]
    assert f"OAPIF:{base}/api" in client.get("/api?f=html").get_data(as_text=True)
    # the base URL's host is trusted; other hosts are not
    assert client.get("/api", headers={"Host": "gis.example.vn"}).status_code == 200
    assert client.get("/api", headers={"Host": "evil.example"}).status_code == 400


def test_trusted_hosts_setting(store, home):
    client = make_app(store, home, TRUSTED_HOSTS="gis.example.vn, .cam-le.vn").test_client()
    assert client.get("/api", headers={"Host": "gis.example.vn"}).get_json()["links"][0]["href"] \
        .startswith("http://gis.example.vn/api")
    assert client.get("/api", headers={"Host": "maps.cam-le.vn:8443"}).status_code == 200
    assert client.get("/api", headers={"Host": "localhost"}).status_code == 400
    assert client.get("/api", headers={"Host": "evil.example"}).status_code == 400
    anything = make_app(store, home, TRUSTED_HOSTS="*").test_client()
    assert anything.get("/api", headers={"Host": "intranet-pc-7"}).status_code == 200


def test_settings_of_the_base_url_and_trusted_hosts():
    env = {"GISAPP_ENV": "production", "GISAPP_SECRET_KEY": "k" * 32}
    with pytest.raises(ConfigError, match="GISAPP_BASE_URL or GISAPP_TRUSTED_HOSTS"):
        load_config(environ=env)
    config = load_config(environ={**env, "GISAPP_BASE_URL": "https://gis.example.vn/gisapp/"})
    assert config["BASE_URL"] == "https://gis.example.vn/gisapp"
    assert config["TRUSTED_HOSTS"] == ["gis.example.vn", "localhost", "127.0.0.1"]
    config = load_config(environ={**env, "GISAPP_TRUSTED_HOSTS": "gis.example.vn,10.0.0.5"})
    assert config["BASE_URL"] is None and config["TRUSTED_HOSTS"] == ["gis.example.vn", "10.0.0.5"]
    assert load_config(environ={})["TRUSTED_HOSTS"] == ["localhost", "127.0.0.1"]
    assert load_config(environ={"GISAPP_TRUSTED_HOSTS": "*"})["TRUSTED_HOSTS"] is None
    for bad in ("gis.example.vn", "ftp://gis.example.vn", "https://gis.example.vn/x?y=1", "https://"):
        with pytest.raises(ConfigError, match="GISAPP_BASE_URL"):
            load_config(environ={"GISAPP_BASE_URL": bad})


# -- Content-Security-Policy ----------------------------------------------------------------

def policy(response) -> dict[str, list[str]]:
    """The response's Content-Security-Policy as directive → sources."""
    out = {}
    for part in response.headers["Content-Security-Policy"].split(";"):
        name, *sources = part.split()
        out[name] = sources
    return out


@pytest.mark.parametrize("url", ["/", "/wards", f"/permits/{quote(SLASH_CODE, safe='')}"])
def test_inline_scripts_carry_the_nonce_of_the_policy(app, url):
    client = app.test_client()
    nonces = set()
    for _ in range(2):
        r = client.get(url)
        assert r.status_code == 200
        csp = policy(r)
        script = csp["script-src"]
        assert "'unsafe-inline'" not in script and "'strict-dynamic'" not in script and "'self'" in script
        nonce = [s for s in script if s.startswith("'nonce-")]
        assert len(nonce) == 1
        nonces.add(nonce[0])
        assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'self'"]
        assert csp["frame-ancestors"] == ["'self'"] and csp["default-src"] == ["'self'"]
        html = r.get_data(as_text=True)
        inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
        assert inline and all(f'nonce="{nonce[0][7:-1]}"' in attrs for attrs in inline), inline
    assert len(nonces) == 2  # a fresh nonce per response


def test_json_and_error_responses_allow_no_inline_script(app):
    client = app.test_client()
    for url in ("/data/count", "/api", "/nowhere"):
        script = policy(client.get(url))["script-src"]
        assert script == ["'self'"], (url, script)


def test_leaflet_measure_compiles_no_template_in_the_browser():
    from gisapp.web import assets
    vendored = assets.VENDOR_DIR / "leaflet-measure" / "leaflet-measure.min.js"
    text = vendored.read_text(encoding="utf-8")
    assert "c.template(" not in text and text.count("(function(r){return function(d){return r.call(this,d,c)}})") == 5


def test_the_policy_admits_the_configured_basemap(store, home):
    csp = policy(make_app(store, home, BASEMAP="https://{s}.tiles.danang.gov.vn/{z}/{x}/{y}.png").test_client().get("/"))
    assert "https://*.tiles.danang.gov.vn" in csp["img-src"]
    csp = policy(make_app(store, home, BASEMAP="osm").test_client().get("/"))
    assert "https://tile.openstreetmap.org" in csp["img-src"]


# -- the policy in Chromium -----------------------------------------------------------------

VIOLATIONS = """
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation",
        e => window.cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline")));
"""


@pytest.fixture(scope="module")
def server(app):
    from tests.browser_util import live_server

    with live_server(app) as base:
        yield base


@pytest.fixture
def browser_page(server):
    """A Chromium page (the app's policy in force) recording console errors and policy violations."""
    from playwright.sync_api import sync_playwright

    from tests.browser_util import launch_chromium, open_page, require_browser

    require_browser()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        rec = open_page(browser, server)
        rec.page.add_init_script(VIOLATIONS)
        yield rec
        browser.close()


def drawn(rec, condition: str = "gisapp.state.drawn.permits > 0"):
    from tests.browser_util import wait_until

    return wait_until(rec.page, f"window.gisapp && gisapp.idle() && {condition} && gisapp.state.drawn.permits")


@pytest.mark.browser
def test_the_map_works_under_the_policy(browser_page, server, store):
    rec = browser_page
    response = rec.page.goto(server + "/")
    assert "'nonce-" in response.headers["content-security-policy"]
    total = store.count(PERMITS)
    assert drawn(rec, f"gisapp.state.drawn.permits === {total}") == total
    # the measure control (its templates, compiled in the browser, would need eval) measures
    rec.page.locator(".leaflet-control-measure").hover()
    rec.page.locator(".leaflet-control-measure .js-start").click()
    box = rec.page.locator(".folium-map").bounding_box()
    # one point (a second one draws a line, which leaflet-measure 2.1.7 fails at on a canvas map, CSP or not)
    rec.page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    assert "°" in rec.page.locator(".leaflet-control-measure .js-results").inner_text()
    rec.page.locator(".leaflet-control-measure .js-cancel").click()
    # a filter through the form
    from gisapp.filters import Filter

    expected = store.count(PERMITS, Filter(q="Ông Ích Đường"))
    assert 0 < expected < total
    rec.page.get_by_test_id("filter-q").fill("Ông Ích Đường")
    rec.page.get_by_test_id("apply").click()
    assert drawn(rec, f"gisapp.state.drawn.permits === {expected}") == expected
    assert rec.page.get_by_test_id("permit-count").inner_text() == str(expected)
    # the dossier page's map, for a code with slashes
    rec.page.goto(server + "/permits/" + quote(SLASH_CODE, safe=""))
    assert drawn(rec) >= 1
    assert rec.page.get_by_test_id("dossier-code").inner_text() == SLASH_CODE
    rec.page.goto(server + "/wards")
    from tests.browser_util import wait_until

    wait_until(rec.page, "document.querySelector('[data-choropleth]') !== null")
    assert rec.page.evaluate("window.cspViolations") == []
    assert rec.errors == [] and rec.outside() == []


@pytest.mark.browser
def test_an_injected_inline_script_is_blocked(browser_page, server):
    rec = browser_page
    nonce = {}

    def inject(route):
        response = route.fetch()
        html = response.text()
        nonce["value"] = re.search(r'<script nonce="([^"]+)"', html).group(1)
        html = html.replace("</body>", '<script>window.injected = "inline";</script>'
                                       f'<script nonce="{nonce["value"]}">window.allowed = true;</script></body>')
        route.fulfill(response=response, body=html)

    rec.page.route(server + "/", inject)
    rec.page.goto(server + "/")
    drawn(rec)
    assert rec.page.evaluate("window.allowed") is True  # the page's own nonce works: the check below is real
    assert rec.page.evaluate("window.injected") is None
    # a script element added later without the nonce is refused too
    rec.page.evaluate("""() => { const s = document.createElement("script");
                                 s.textContent = "window.injected = 'dom'"; document.body.appendChild(s); }""")
    assert rec.page.evaluate("window.injected") is None
    violations = rec.page.evaluate("window.cspViolations")
    assert len(violations) == 2 and all(v.startswith("script-src") for v in violations), violations
    assert any("Content Security Policy" in e for e in rec.errors)


def test_every_inline_script_of_the_templates_carries_the_nonce():
    """A template's inline ``<script>`` without the response's nonce is blocked by the policy (the map stays blank)."""
    import re

    from gisapp.config import resource_dir

    bare = []
    for path in sorted(resource_dir("templates").glob("*.html")):
        for tag in re.findall(r"<script\b[^>]*>", path.read_text(encoding="utf-8")):
            if "src=" not in tag and "nonce=" not in tag:
                bare.append(f"{path.name}: {tag}")
    assert bare == []
