"""The map page, the ward dashboard, the permit page and the /data endpoints, through the test client."""

import re

import orjson
import pytest
import shapely

from gisapp import geo
from gisapp.analysis import counts
from gisapp.domain import Calendar
from gisapp.filters import Filter
from gisapp.store.gpkg import GeoPackageStore
from gisapp.web import maps
from gisapp.web.app import create_app
from gisapp.web.assets import external_urls
from tests.browser_util import XSS_OWNER, sample_frames

N = 240


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("pages") / "sample.gpkg"
    frames, meta = sample_frames(N)
    GeoPackageStore(path, must_exist=False).write(frames, meta=meta)
    return str(path)


@pytest.fixture(scope="module")
def store(store_path):
    return GeoPackageStore(store_path)


@pytest.fixture
def app(store_path):
    # Pages as signed-in staff see them (personal data shown); tests/test_privacy.py walks them anonymously.
    return create_app({"STORE": store_path, "TESTING": True, "BASEMAP": "none", "SHOW_PERSONAL_DATA": True})


@pytest.fixture
def client(app):
    return app.test_client()


def html(response) -> str:
    return response.get_data(as_text=True)


def count_on_page(response) -> int:
    return int(re.search(r'data-testid="permit-count">(\d+)<', html(response)).group(1))


# -- every route ------------------------------------------------------------------------

@pytest.mark.parametrize("url, mimetype", [
    ("/", "text/html"),
    ("/?lang=en", "text/html"),
    ("/wards", "text/html"),
    ("/permits/XD-2022-000003", "text/html"),
    ("/data/construction_permits.geojson", "application/geo+json"),
    ("/data/sidewalk_permits.geojson?bbox=108.1,15.9,108.3,16.1&zoom=16", "application/geo+json"),
    ("/data/findings.geojson?ward=20260", "application/geo+json"),
    ("/data/wards.geojson?set=2022", "application/geo+json"),
    ("/data/wards.geojson?set=2025", "application/geo+json"),
    ("/data/count?ward=20305", "application/json"),
    ("/data/construction_permits/XD-2022-000003.json", "application/json"),
])
def test_every_route_answers(client, url, mimetype):
    r = client.get(url)
    assert r.status_code == 200, r.data[:300]
    assert r.mimetype == mimetype


def test_map_page_counts_and_links_the_filter(client, store):
    r = client.get("/?ward=20305,20306&status=RETURNED&from=2022-02-01&to=2022-05-31")
    flt = Filter(wards=("20305", "20306"), statuses=("RETURNED",), date_from=maps.dt.date(2022, 2, 1),
                 date_to=maps.dt.date(2022, 5, 31))
    assert count_on_page(r) == store.count("construction_permits", flt) > 0
    page = html(r)
    assert 'href="/export/construction_permits.geojson?ward=20305%2C20306&amp;status=RETURNED&amp;from=2022-02-01' \
           '&amp;to=2022-05-31"' in page
    assert '<option value="20305" selected>' in page and '<option value="RETURNED" selected>' in page
    assert 'value="2022-02-01"' in page and 'data-testid="filter-warnings"' not in page


def test_repeatable_and_comma_separated_parameters_are_the_same_filter(client):
    a = count_on_page(client.get("/?ward=20305&ward=20306&status=RETURNED&status=PROCESSING"))
    b = count_on_page(client.get("/?ward=20305,20306&status=RETURNED,PROCESSING"))
    assert a == b > 0


def test_map_page_is_small_and_holds_no_feature_data(client, store):
    r = client.get("/")
    page = html(r)
    assert len(r.data) < 300_000
    assert "XD-2022-" not in page and "VH-2022-" not in page and XSS_OWNER not in page
    assert '"coordinates"' not in page and "FeatureCollection" not in page
    assert count_on_page(r) == N


def test_pages_load_nothing_from_outside(client):
    for url in ("/", "/wards", "/permits/XD-2022-000003", "/permits/NOPE"):
        page = html(client.get(url))
        outside = [u for u in external_urls(page) if not re.match(r"https?://127\.0\.0\.1[:/]", u)]
        assert outside == [], url


@pytest.mark.parametrize("tiles, expected", [
    ("osm", "https://tile.openstreetmap.org/{z}/{x}/{y}.png"),
    ("https://tiles.danang.example/{z}/{x}/{y}.png", "https://tiles.danang.example/{z}/{x}/{y}.png"),
    ("https://gis.danang.example/wms?layers=nen", "L.tileLayer.wms"),
])
def test_basemap_setting(store_path, tiles, expected):
    page = html(create_app({"STORE": store_path, "BASEMAP": tiles}).test_client().get("/"))
    assert expected in page
    assert "basemap-tiles" in page


def test_map_page_has_controls_legend_and_labels(client):
    page = html(client.get("/"))
    for piece in ("L.control.scale", "L.control.fullscreen", "L.Control.Measure", "L.control.layers",
                  "GisappMap.init", "/static/map.js", "Ranh giới phường 2022 (gần đúng)",
                  "Ranh giới phường từ 01/7/2025", "Đang xử lý", "Hồ sơ đang xử lý quá hạn", "OpenStreetMap"):
        assert piece in page, piece
    english = html(client.get("/?lang=en"))
    assert "Ward boundaries 2022 (approximate)" in english and "Processing" in english


def test_language_persists_in_a_cookie(client):
    r = client.get("/wards?lang=en")
    assert "lang=en" in r.headers["Set-Cookie"]
    again = html(client.get("/wards"))
    assert "Construction permit dossiers per ward" in again and '<html lang="en">' in again
    back = html(client.get("/wards?lang=vi"))
    assert "Thống kê hồ sơ cấp phép xây dựng theo phường" in back


# -- bad input: pages warn, /data answers 400 ----------------------------------------------

BAD = [
    ("ward=99999", "ward", "unknown ward code '99999'"),
    ("ward=abc", "ward", "unknown ward code 'abc'"),
    ("status=DONE", "status", "unknown status code 'DONE'"),
    ("procedure=BUILD", "procedure", "unknown procedure code 'BUILD'"),
    ("channel=FAX", "channel", "unknown channel code 'FAX'"),
    ("from=01/02/2022", "from", "'01/02/2022' is not a date"),
    ("to=2022-02-30", "to", "'2022-02-30' is not a date"),
    ("from=2022-05-01&to=2022-02-01", "from", "'from' is after 'to'"),
    ("q=" + "x" * 201, "q", "longer than 200 characters"),
]
#: The same warnings as the Vietnamese page words them.
BAD_VI = {
    "ward=99999": "không có phường mã '99999'",
    "ward=abc": "không có phường mã 'abc'",
    "status=DONE": "mã 'DONE' không có trong danh mục",
    "procedure=BUILD": "mã 'BUILD' không có trong danh mục",
    "channel=FAX": "mã 'FAX' không có trong danh mục",
    "from=01/02/2022": "'01/02/2022' không phải là ngày",
    "to=2022-02-30": "'2022-02-30' không phải là ngày",
    "from=2022-05-01&to=2022-02-01": "ngày bắt đầu sau ngày kết thúc",
    "q=" + "x" * 201: "dài hơn 200 ký tự",
}


@pytest.mark.parametrize("query, param, message", BAD)
@pytest.mark.parametrize("path", ["/", "/wards"])
@pytest.mark.parametrize("lang", ["vi", "en"])
def test_pages_render_with_a_warning_naming_the_ignored_filter(client, path, lang, query, param, message):
    r = client.get(f"{path}?{query}&lang={lang}")
    assert r.status_code == 200
    warning = re.search(r'data-testid="filter-warnings">(.*?)</div>', html(r), re.S).group(1)
    assert f"<code>{param}</code>" in warning
    expected = message if lang == "en" else BAD_VI[query]
    assert expected.replace("'", "&#39;") in warning


def test_page_keeps_the_good_values_of_a_partly_bad_filter(client, store):
    r = client.get("/?ward=20305,99999&status=RETURNED,NOPE")
    assert count_on_page(r) == store.count("construction_permits", Filter(wards=("20305",), statuses=("RETURNED",)))
    assert html(r).count("<li><code>") == 2


BAD_DATA = BAD + [
    ("bbox=1,2,3", "bbox", "needs four numbers"),
    ("bbox=108.3,15.9,108.1,16.1", "bbox", "minimum is greater than maximum"),
    ("bbox=200,15,201,16", "bbox", "-180..180"),
]
BAD_ZOOM = [("zoom=abc", "zoom", "not a zoom level"), ("zoom=40", "zoom", "not a zoom level"),
            ("zoom=-1", "zoom", "not a zoom level")]


@pytest.mark.parametrize("path, query, param, message", [
    *[(p, *bad) for p in ("/data/construction_permits.geojson", "/data/sidewalk_permits.geojson",
                          "/data/findings.geojson", "/data/count") for bad in BAD_DATA],
    *[(p, *bad) for p in ("/data/construction_permits.geojson", "/data/findings.geojson") for bad in BAD_ZOOM],
])
def test_data_endpoints_answer_400_json(client, path, query, param, message):
    r = client.get(f"{path}?{query}")
    assert r.status_code == 400 and r.mimetype == "application/json"
    body = r.get_json()
    assert set(body) == {"code", "description", "status"}
    assert body["status"] == 400 and body["code"] == "InvalidParameterValue"
    assert body["description"].startswith(param + ":") and message in body["description"]


@pytest.mark.parametrize("url, status", [
    ("/data/wards.geojson?set=2030", 400),
    ("/data/parcels.geojson", 404),
    ("/data/construction_permits/NOPE.json", 404),
])
def test_other_data_errors(client, url, status):
    r = client.get(url)
    assert r.status_code == status and set(r.get_json()) == {"code", "description", "status"}


def test_unknown_dossier_is_a_404_page_in_the_app_style(client):
    r = client.get("/permits/XD-0000-NOPE")
    assert r.status_code == 404 and r.mimetype == "text/html"
    page = html(r)
    assert 'class="topbar"' in page and "/static/app.css" in page
    assert "Không tìm thấy hồ sơ XD-0000-NOPE" in page
    assert "No dossier with code" in html(client.get("/permits/XD-0000-NOPE?lang=en"))


# -- /data contents ---------------------------------------------------------------------------

def test_features_are_light_and_complete_when_under_the_cap(client):
    body = orjson.loads(client.get("/data/construction_permits.geojson?bbox=108.16,15.96,108.17,15.97&zoom=17").data)
    assert body["mode"] == "features" and body["complete"] is True
    assert body["numberMatched"] == N == len(body["features"])
    assert set(body["features"][0]["properties"]) == {"dossier_code", "status", "site_address", "timeliness"}


def test_count_equals_the_store(client, store):
    for query, flt in [("", Filter()), ("ward=20260", Filter(wards=("20260",))),
                       ("status=PROCESSING,RECEIVED&channel=ONLINE",
                        Filter(statuses=("PROCESSING", "RECEIVED"), channels=("ONLINE",))),
                       ("q=Trường Chinh", Filter(q="Trường Chinh"))]:
        assert client.get(f"/data/count?{query}").get_json()["count"] == store.count("construction_permits", flt)


def test_past_the_cap_the_map_gets_ward_counts_or_the_viewport(store):
    cal = Calendar()
    whole = orjson.loads(maps.layer_features(store, "construction_permits", Filter(bbox=(108, 15.9, 108.3, 16.1)),
                                             zoom=12, calendar=cal, cap=50))
    assert whole["mode"] == "aggregate" and whole["numberMatched"] == N
    assert sum(f["properties"]["count"] for f in whole["features"]) == N
    assert {f["geometry"]["type"] for f in whole["features"]} == {"Point"}
    # a street-level viewport with fewer than the cap: only the features in view
    lot = store.get("construction_permits", "XD-2022-000006").to_crs(4326).geometry.iloc[0]
    x, y = lot.centroid.x, lot.centroid.y
    view = (x - 0.0004, y - 0.0004, x + 0.0004, y + 0.0004)
    street = orjson.loads(maps.layer_features(store, "construction_permits", Filter(bbox=view), zoom=18,
                                              calendar=cal, cap=50))
    assert street["mode"] == "features" and street["complete"] is False
    assert len(street["features"]) == store.count("construction_permits", Filter(bbox=view)) < 50
    assert "XD-2022-000006" in {f["id"] for f in street["features"]}
    # a viewport still over the cap at detail zoom: counts of what is in view, per ward
    view = (108.15, 15.9, 108.3, 16.1)
    busy = orjson.loads(maps.layer_features(store, "construction_permits", Filter(bbox=view), zoom=16,
                                            calendar=cal, cap=10))
    assert busy["mode"] == "aggregate"
    assert sum(f["properties"]["count"] for f in busy["features"]) == store.count(
        "construction_permits", Filter(bbox=view))



def _ward_counts_one_query_per_ward(store, layer, flt, total):
    """The map's per-ward counts as they were computed before ``Store.aggregate``: one count per ward."""
    day = store.as_of()
    wards = store.read("wards", Filter(date_from=day, date_to=day))
    view = geo.bbox_polygon(flt.bbox) if flt.bbox else None
    feats = []
    for code, name, geom in zip(wards["ward_code"], wards["name"], wards.geometry.values, strict=True):
        if flt.wards and code not in flt.wards:
            continue
        part = geom if view is None else shapely.intersection(geom, view)
        if part.is_empty:
            continue
        n = store.count(layer, flt.with_(wards=(code,)))
        if not n:
            continue
        pt = geo.transform([part.representative_point()])[0]
        feats.append({"type": "Feature", "id": code,
                      "geometry": {"type": "Point", "coordinates": [round(pt.x, 6), round(pt.y, 6)]},
                      "properties": {"ward_code": code, "name": name, "count": n}})
    return orjson.dumps({"type": "FeatureCollection", "mode": "aggregate", "complete": False,
                         "numberMatched": total, "features": feats})


class CountingStore(GeoPackageStore):
    """A real GeoPackage store that counts the queries made through ``count`` and ``aggregate``."""

    def __init__(self, path):
        super().__init__(path)
        self.calls = {"count": 0, "aggregate": 0}

    def count(self, layer, flt=None):
        self.calls["count"] += 1
        return super().count(layer, flt)

    def aggregate(self, layer, flt=None, *, cell_m=None):
        self.calls["aggregate"] += 1
        return super().aggregate(layer, flt, cell_m=cell_m)


@pytest.mark.parametrize("layer", ["construction_permits", "sidewalk_permits"])
@pytest.mark.parametrize("flt", [Filter(), Filter(statuses=("RETURNED",)), Filter(wards=("20260", "20306")),
                                 Filter(bbox=(108.15, 15.9, 108.3, 16.1)), Filter(bbox=(108.0, 15.0, 108.01, 15.01)),
                                 Filter(bbox=(108.15, 15.9, 108.3, 16.1), wards=("20305",), q="Trường Chinh")],
                         ids=lambda f: "&".join(f"{k}={v}" for k, v in f.to_params().items()) or "all")
def test_ward_counts_are_one_grouped_query_with_the_same_answer(store_path, layer, flt):
    store = CountingStore(store_path)
    expected = _ward_counts_one_query_per_ward(store, layer, flt, 123)
    # one grouped query; none for dossiers the arrays kept in memory can count (gisapp.analysis.counts), nor
    # for sidewalk permits their wards and periods kept can
    kept = counts.answers(flt) if layer == "construction_permits" else counts.side_answers(layer, flt)
    if kept:
        counts.columns(store) if layer == "construction_permits" else counts.periods(store, layer)
    store.calls = {"count": 0, "aggregate": 0}
    assert maps.ward_aggregates(store, layer, flt, 123) == expected
    assert store.calls == {"count": 0, "aggregate": 0 if kept else 1}

def test_ward_sets(client):
    w22 = client.get("/data/wards.geojson?set=2022").get_json()
    w25 = client.get("/data/wards.geojson?set=2025").get_json()
    assert [f["properties"]["ward_code"] for f in w22["features"]] == [
        "20260", "20305", "20306", "20311", "20312", "20314"]
    assert [f["properties"]["name"] for f in w25["features"]] == ["Phường Cẩm Lệ", "Phường An Khê", "Phường Hòa Xuân"]
    props = w22["features"][0]["properties"]
    assert 108.1 < props["label_lon"] < 108.3 and 15.9 < props["label_lat"] < 16.1


def test_popup_detail(client):
    body = client.get("/data/construction_permits/XD-2022-000003.json").get_json()
    assert body["dossier_code"] == "XD-2022-000003"
    assert body["linked"] == ["VH-2022-00000"] and body["timeliness"] in ("EARLY", "ON_TIME", "LATE", "IN_TIME",
                                                                           "OVERDUE")
    assert {"status", "procedure", "received_on", "due_on", "floors", "plot_area_m2"} <= set(body["fields"])


def test_personal_fields_follow_the_privacy_setting(store_path):
    hidden = create_app({"STORE": store_path, "SHOW_PERSONAL_DATA": False}).test_client()
    assert "owner_name" not in hidden.get("/data/construction_permits/XD-2022-000000.json").get_json()["fields"]
    assert "onerror=alert(1)" not in html(hidden.get("/permits/XD-2022-000000"))


# -- dashboard and permit page ----------------------------------------------------------------

def test_dashboard_totals_equal_the_store(client, store):
    page = html(client.get("/wards"))
    total = int(re.search(r'data-testid="total-received">(\d+)<', page).group(1))
    assert total == store.count("construction_permits") == N
    cells = [int(v) for v in re.findall(r'data-testid="received-\d+">(\d+)<', page)]
    assert len(cells) == 6 and sum(cells) == N
    assert int(re.search(r'data-testid="total-sidewalk">(\d+)<', page).group(1)) == store.count("sidewalk_permits")
    assert int(re.search(r'data-testid="total-findings">(\d+)<', page).group(1)) == store.count("findings")
    assert 'href="/?ward=20305"' in page
    assert page.count("<svg") == 7  # district + six wards
    assert len(page.encode()) < 300_000 and '"coordinates"' not in page


def test_dashboard_follows_the_filter(client, store):
    page = html(client.get("/wards?ward=20306&status=RETURNED"))
    total = int(re.search(r'data-testid="total-received">(\d+)<', page).group(1))
    assert total == store.count("construction_permits", Filter(wards=("20306",), statuses=("RETURNED",)))


def test_permit_page_shows_every_field_escaped(client):
    page = html(client.get("/permits/XD-2022-000000"))
    for label in ("Mã hồ sơ", "Trạng thái", "Thủ tục", "Ngày hẹn trả", "Tiến độ", "Số tầng", "Diện tích thửa (m²)",
                  "Chủ đầu tư", "Tờ bản đồ số", "Thửa đất số"):
        assert f"<th>{label}</th>" in page, label
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'href="/?q=XD-2022-000000#18/' in page


def test_permit_page_lists_linked_sidewalk_permits(client):
    page = html(client.get("/permits/XD-2022-000003"))
    linked = re.search(r'data-testid="linked-sidewalk">(.*?)</table>', page, re.S).group(1)
    assert "VH-2022-00000" in linked and "Tập kết vật liệu xây dựng" in linked


# -- the Cẩm Lệ demo: the district report's figures ------------------------------------------

def test_demo_dashboard_reproduces_the_report(demo_store):
    client = create_app({"STORE": demo_store.url, "TESTING": True}).test_client()
    page = html(client.get("/wards?from=2022-01-01&to=2022-06-30"))
    cell = lambda name: re.search(rf'data-testid="{name}">([^<]+)<', page).group(1)  # noqa: E731
    assert int(cell("total-received")) == demo_store.count("construction_permits") == 2534
    assert cell("total-late") == "0" and cell("total-on-time-share") == "100,0 %"
    assert cell("total-online-share") == "54,5 %"
    h1 = Filter(date_from=maps.dt.date(2022, 1, 1), date_to=maps.dt.date(2022, 6, 30))
    assert int(cell("total-sidewalk")) == demo_store.count("sidewalk_permits", h1)  # permits in force in H1
    by_ward = [int(v) for v in re.findall(r'data-testid="received-\d+">(\d+)<', page)]
    assert len(by_ward) == 6 and sum(by_ward) == 2534


def test_demo_map_page(demo_store):
    client = create_app({"STORE": demo_store.url, "TESTING": True}).test_client()
    r = client.get("/")
    assert count_on_page(r) == 2534 and len(r.data) < 300_000
    body = orjson.loads(client.get("/data/construction_permits.geojson?bbox=108.1,15.9,108.3,16.1&zoom=13").data)
    assert body["mode"] == "features" and len(body["features"]) == 2534
