"""Defects found by outside clients (QGIS, OWSLib, GDAL): datetime and bbox parsing, unknown parameters on
tiles and exports, the OpenAPI document, paging links, rounded findings and the sidewalk permit page.

Where an issue and a standard differ the standard wins: RFC 3339 for ``datetime``, OGC API – Features
Part 1 for ``bbox`` (4 or 6 numbers; west > east crosses the antimeridian) and the paging links.
Every test runs on both stores: the demo data, analysed by the store's own analysis (SQL on PostGIS).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from urllib.parse import parse_qs, quote, urlsplit

import orjson
import pytest
from click.testing import CliRunner

from gisapp.cli import cli
from gisapp.filters import Filter, parse_datetime
from gisapp.web.app import create_app
from tests.stores import BACKENDS, new_store

ITEMS = "/api/collections/construction_permits/items"
D = dt.date.fromisoformat


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, demo_frames, tmp_path_factory):
    """The demo in a store of each backend, with the findings of that store's own analysis."""
    s = new_store(request.param, tmp_path_factory.mktemp("defects"), request)
    frames, meta = demo_frames
    s.write(frames, meta=meta)
    result = CliRunner().invoke(cli, ["--store", _url(s), "analyze"])
    assert result.exit_code == 0, result.output
    return s


def _url(store) -> str:
    return store.url


@pytest.fixture
def app(store):
    return create_app({"STORE": _url(store), "TESTING": True, "BASEMAP": "none"})


@pytest.fixture
def client(app):
    return app.test_client()


def assert_error(r, status: int = 400) -> dict:
    """The one error shape: ``code``, ``description``, ``status`` and nothing else."""
    assert r.status_code == status, r.data[:300]
    assert r.content_type.startswith("application/json")
    body = orjson.loads(r.data)
    assert set(body) == {"code", "description", "status"} and body["status"] == status
    return body


def matched(client, query: str, collection: str = "construction_permits") -> int:
    r = client.get(f"/api/collections/{collection}/items?{query}&limit=1")
    assert r.status_code == 200, (query, r.data[:300])
    return orjson.loads(r.data)["numberMatched"]


# -- datetime (RFC 3339) ---------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "2022-03-01T25:00:00Z", "2022-03-01T99:99:99Z", "2022-03-01T10:00:00+25:00", "2022-03-01T24:00:00Z",
    "2022-03-01T10:60:00Z", "2022-03-01T10:00:61Z", "2022-03-01T10:00:00+07:60", "2022-03-01T10:00:00-99:00",
    "2022-03-01T25:00:00Z/..", "../2022-03-01T10:61Z", "2022-03-01T25", "2022-03-01T10:00:00.Z",
    "9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+08:00",  # beyond the calendar once in UTC+7
])
def test_impossible_times_are_refused(client, value):
    body = assert_error(client.get(f"{ITEMS}?datetime={quote(value)}"))
    assert body["description"].startswith("datetime: ")


@pytest.mark.parametrize("value", [
    "2022-03-01t10:00:00z", "2022-03-01t10:00:00Z", "2022-03-01T10:00:00z", "2022-03-01t10:00:00+07:00",
    "2022-03-01T16:59:59Z", "2022-03-01T16:59:59.999Z", "2022-03-01T23:59:59+07:00", "2022-03-01T00:00:00+07:00",
])
def test_rfc3339_lower_case_t_and_z_are_the_same_instant(client, value):
    assert matched(client, f"datetime={quote(value)}") == matched(client, "datetime=2022-03-01") > 0


def test_a_date_time_selects_the_day_it_is_in_the_district(client, store):
    """2022-03-01T23:30-05:00 is 2 March 11:30 in Đà Nẵng (UTC+7): dossiers received on 2 March."""
    first, second = (store.count("construction_permits", Filter(date_from=D(d), date_to=D(d)))
                     for d in ("2022-03-01", "2022-03-02"))
    assert first != second and second > 0
    assert matched(client, "datetime=" + quote("2022-03-01T23:30:00-05:00")) == second
    assert matched(client, "datetime=" + quote("2022-03-01T17:00:00Z")) == second
    assert matched(client, "datetime=2022-03-01T16:59:59Z") == first
    assert matched(client, "datetime=" + quote("2022-03-02T06:59:59+14:00")) == first  # 1 March 23:59:59 here
    interval = quote("2022-03-01T17:00:00Z/2022-03-02T16:59:59Z")
    assert matched(client, f"datetime={interval}") == second
    assert matched(client, "datetime=2022-03-02") == second  # a date stays the day it names


def test_datetime_parser():
    assert parse_datetime("2022-03-01T23:30:00-05:00") == (D("2022-03-02"), D("2022-03-02"))
    assert parse_datetime("2022-03-01t23:30:00-05:00/..") == (D("2022-03-02"), None)
    assert parse_datetime("2022-12-31T23:59:60Z") == (D("2023-01-01"), D("2023-01-01"))  # a leap second
    assert parse_datetime("2022-03-01T23:30") == (D("2022-03-01"), D("2022-03-01"))  # no offset: local
    assert parse_datetime("2022-03-01") == (D("2022-03-01"), D("2022-03-01"))


# -- bbox (OGC API – Features Part 1) --------------------------------------------------------------

@pytest.mark.parametrize("collection", ["construction_permits", "sidewalk_permits", "findings", "wards"])
def test_a_box_across_the_antimeridian_is_accepted(client, collection):
    r = client.get(f"/api/collections/{collection}/items?bbox=170,10,-170,20")
    assert r.status_code == 200, r.data[:300]
    fc = orjson.loads(r.data)
    assert fc["numberMatched"] == fc["numberReturned"] == 0 and fc["features"] == []


def test_a_box_across_the_antimeridian_is_the_union_of_its_two_halves(client, store):
    """West 108.2 > east 108.18: everything in the latitudes except the strip 108.18–108.2."""
    east = store.read("construction_permits", Filter(bbox=(108.2, 15.95, 180.0, 16.05)))["dossier_code"]
    west = store.read("construction_permits", Filter(bbox=(-180.0, 15.95, 108.18, 16.05)))["dossier_code"]
    expected = sorted(set(east) | set(west))
    assert 0 < len(expected) < store.count("construction_permits") and len(expected) < len(east) + len(west) + 1
    r = client.get(f"{ITEMS}?bbox=108.2,15.95,108.18,16.05&limit=10000")
    fc = orjson.loads(r.data)
    assert fc["numberMatched"] == len(expected)
    assert [f["id"] for f in fc["features"]] == expected


def test_a_bbox_with_heights_ignores_them(client):
    plain = matched(client, "bbox=108.18,15.99,108.22,16.02")
    assert 0 < plain == matched(client, "bbox=108.18,15.99,-10,108.22,16.02,250.5")
    assert matched(client, "bbox=170,10,0,-170,20,100") == 0


@pytest.mark.parametrize("value, mentions", [
    ("108.18,15.99,108.22", "four or six"),
    ("108.18,15.99,0,108.22,16.02", "four or six"),
    ("108.18,15.99,a,108.22,16.02,1", "not a number"),
    ("108.18,16.02,108.22,15.99", "south"),
    ("108.18,15.99,0,108.22,16.02,inf", "finite"),
    ("200,15,201,16", "-180..180"),
])
def test_bad_bboxes_are_still_refused(client, value, mentions):
    body = assert_error(client.get(f"{ITEMS}?bbox={value}"))
    assert body["description"].startswith("bbox: ") and mentions in body["description"]


def test_the_maps_bbox_keeps_its_order_rule(client):
    """The map's, the tiles' and the exports' ``bbox`` is not OGC's: an inverted one is still a 400."""
    assert_error(client.get("/export/construction_permits.geojson?bbox=108.3,15.9,108.1,16.1"))


# -- unknown parameters on tiles, TileJSON and exports ------------------------------------------------

@pytest.mark.parametrize("path", [
    "/tiles/construction_permits/14/13116/7453.mvt?ward_code=20314",
    "/tiles/construction_permits/14/13116/7453.mvt?ward=20314&stauts=RETURNED",
    "/tiles/findings/16/52469/29813.mvt?datetime=2022-03-01",
    "/tiles/construction_permits.json?ward_code=20314",
    "/export/construction_permits.geojson?ward_code=20314",
    "/export/sidewalk_permits.csv?limit=10",
    "/export/findings.gpkg?srs=4326",
])
def test_unknown_parameters_are_refused_not_ignored(client, path):
    body = assert_error(client.get(path))
    unknown = min(set(parse_qs(urlsplit(path).query)) - {"ward"})
    assert body["description"].startswith(f"{unknown}: unknown parameter")
    assert body["code"] == "InvalidParameterValue"


def test_the_known_parameters_still_work(client, store):
    r = client.get("/tiles/construction_permits/14/13116/7453.mvt?ward=20314&status=RETURNED")
    assert r.status_code in (200, 204)
    r = client.get("/tiles/construction_permits.json?ward=20314&q=kiet")
    assert r.status_code == 200 and "ward=20314" in r.get_json()["tiles"][0]
    r = client.get("/export/construction_permits.gpkg?ward=20314&crs=4326&from=2022-02-01")
    assert r.status_code == 200


# -- the OpenAPI document, lang and the paging links ------------------------------------------------------

@pytest.mark.parametrize("max_items", [10000, 500])
def test_openapi_declares_the_limit_maximum_and_the_languages(store, max_items):
    client = create_app({"STORE": _url(store), "TESTING": True, "MAX_ITEMS": max_items}).test_client()
    doc = orjson.loads(client.get("/api/openapi?f=json").data)
    params = doc["components"]["parameters"]
    assert params["limit"]["schema"]["maximum"] == max_items and params["limit"]["schema"]["minimum"] == 1
    assert params["lang"]["schema"]["enum"] == ["vi", "en"]
    r = client.get(f"{ITEMS}?limit={max_items + 1}")
    assert orjson.loads(r.data)["numberReturned"] == min(max_items, store.count("construction_permits"))


@pytest.mark.parametrize("url", ["/api?lang=xx", "/api/collections?lang=fr", f"{ITEMS}?lang=EN",
                                 "/api/openapi?lang=de"])
def test_lang_other_than_vi_or_en_is_refused(client, url):
    body = assert_error(client.get(url))
    assert body["description"].startswith("lang: ")
    r = client.get(url + "&f=html")  # an HTML page's error is the HTML error page
    assert r.status_code == 400 and r.mimetype == "text/html" and "lang" in r.get_data(as_text=True)


def test_lang_vi_and_en_work(client):
    assert '<html lang="en"' in client.get("/api?f=html&lang=en").get_data(as_text=True)
    assert client.get(f"{ITEMS}?lang=vi&limit=1").status_code == 200


def _rel(fc, rel):
    return [link["href"] for link in fc["links"] if link["rel"] == rel]


def test_a_page_past_the_end_links_back_to_the_last_page(client, store):
    total = store.count("construction_permits")
    fc = orjson.loads(client.get(f"{ITEMS}?limit=100&offset=100000").data)
    assert fc["numberReturned"] == 0 and not _rel(fc, "next")
    [prev] = _rel(fc, "prev")
    assert parse_qs(urlsplit(prev).query)["offset"] == [str(total - 100)]
    back = orjson.loads(client.get(prev.replace("http://localhost", "")).data)
    assert back["numberReturned"] == 100 and not _rel(back, "next")
    html = client.get(f"{ITEMS}?limit=100&offset=100000&f=html").get_data(as_text=True)
    assert f"offset={total - 100}" in html and "offset=99900" not in html


def test_prev_links_inside_the_data_and_of_an_empty_result(client):
    fc = orjson.loads(client.get(f"{ITEMS}?limit=300&offset=500").data)
    assert parse_qs(urlsplit(_rel(fc, "prev")[0]).query)["offset"] == ["200"]
    fc = orjson.loads(client.get(f"{ITEMS}?limit=300&offset=100").data)
    assert parse_qs(urlsplit(_rel(fc, "prev")[0]).query)["offset"] == ["0"]
    fc = orjson.loads(client.get(f"{ITEMS}?limit=10&offset=50&bbox=170,10,-170,20").data)
    assert fc["numberMatched"] == 0
    assert parse_qs(urlsplit(_rel(fc, "prev")[0]).query)["offset"] == ["0"]
    assert not _rel(orjson.loads(client.get(f"{ITEMS}?limit=10").data), "prev")


# -- findings: areas to cm², distances to mm, the same in every output ---------------------------------------

def _decimals(values) -> int:
    """The most decimals any of the (finite) values needs in its shortest repr."""
    out = 0
    for v in values:
        if v is None or math.isnan(v):
            continue
        text = repr(float(v))
        assert "e" not in text, text
        out = max(out, len(text.split(".")[1].rstrip("0")) if "." in text else 0)
    return out


def test_findings_are_rounded_where_the_analysis_computes_them(store):
    """Each backend's own analysis (geopandas; SQL on PostGIS) stores areas with at most 4 decimals of m²
    (cm²) and distances with at most 3 decimals of m (mm): no float noise like 3.864000000154709 or 4.41e-11."""
    findings = store.read("findings")
    assert findings["overlap_area_m2"].notna().sum() > 10 and findings["distance_m"].notna().sum() > 10
    assert _decimals(findings["overlap_area_m2"]) <= 4
    assert _decimals(findings["distance_m"]) <= 3
    clash = findings[(findings["a_id"] == "VH-2022-0029") & (findings["b_id"] == "VH-2022-0111")]
    assert clash["overlap_area_m2"].tolist() == [3.864]  # the example
    assert (findings.loc[findings["kind"] == "CLASH", "distance_m"] == 0).all()


def test_rounded_findings_in_the_api_and_the_exports(client):
    body = client.get("/api/collections/findings/items?limit=10000").get_data(as_text=True)
    fc = orjson.loads(body)
    assert fc["numberMatched"] > 100
    for name, decimals in (("overlap_area_m2", 4), ("distance_m", 3)):
        assert _decimals(f["properties"][name] for f in fc["features"]) <= decimals
    assert not re.search(r'"(overlap_area_m2|distance_m)":-?\d+(\.\d+)?e', body)
    csv = client.get("/export/findings.csv").get_data(as_text=True)
    assert "3.864," in csv and "000000" not in csv and "e-1" not in csv


# -- the sidewalk permit page -----------------------------------------------------------------------------

PASSWORD = "correct horse battery"


@pytest.fixture
def staff_app(store, tmp_path):
    """The app with a real staff account (personal fields are for signed-in staff only)."""
    from gisapp.accounts import Accounts

    Accounts(tmp_path / "acc.sqlite").add("lan", PASSWORD, "viewer")
    return create_app({"STORE": _url(store), "TESTING": True, "BASEMAP": "none",
                       "ACCOUNTS": str(tmp_path / "acc.sqlite")})


def signed_in(app):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/login", data={"username": "lan", "password": PASSWORD, "csrf_token": csrf}).status_code == 302
    return client


def _links(page: str) -> set[str]:
    return set(re.findall(r'href="/permits/([^"#?]+)"', page))


def test_a_sidewalk_permit_has_a_page(staff_app, store):
    """The issue's finding names VH-2022-0029: its page shows its fields, ward, dates and that finding."""
    record = store.get("sidewalk_permits", "VH-2022-0029").iloc[0]
    r = staff_app.test_client().get("/permits/VH-2022-0029")
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    assert 'data-testid="permit-no">VH-2022-0029<' in page
    assert "Hòa Xuân" in page and ">20314" in page  # the ward, by code and name
    assert record["start_on"].strftime("%d/%m/%Y") in page and record["end_on"].strftime("%d/%m/%Y") in page
    assert "Trông giữ xe" in page  # coded values as labels (purpose PARKING)
    findings = re.search(r'data-testid="findings">(.*?)</table>', page, re.DOTALL).group(1)
    assert "CL-09b16f2b340a3281" in findings and "3,86" in findings
    assert _links(findings) == {"VH-2022-0111"}  # the other permit; not itself
    assert staff_app.test_client().get("/permits/VH-2022-0111").status_code == 200
    assert "Sidewalk-use permit" in staff_app.test_client().get("/permits/VH-2022-0029?lang=en").get_data(as_text=True)


def test_the_applicant_is_shown_to_signed_in_staff_only(staff_app, store):
    name = store.get("sidewalk_permits", "VH-2022-0029")["applicant_name"].iloc[0]
    assert name
    anonymous = staff_app.test_client().get("/permits/VH-2022-0029").get_data(as_text=True)
    assert name not in anonymous and 'data-field="applicant_name"' not in anonymous
    staff = signed_in(staff_app).get("/permits/VH-2022-0029").get_data(as_text=True)
    assert name in staff and 'data-field="applicant_name"' in staff


def test_dossier_pages_link_the_sidewalk_permits_of_their_findings(client, store):
    findings = store.read("findings")
    linked = findings[findings["kind"] == "LINKED"].iloc[0]
    page = client.get(f"/permits/{linked['a_id']}").get_data(as_text=True)
    table = re.search(r'data-testid="findings">(.*?)</table>', page, re.DOTALL).group(1)
    assert linked["b_id"] in _links(table) and linked["a_id"] not in _links(table)
    assert linked["b_id"] in _links(re.search(r'data-testid="linked-sidewalk">(.*?)</table>', page, re.DOTALL).group(1))
    sidewalk = client.get(f"/permits/{linked['b_id']}").get_data(as_text=True)
    assert linked["a_id"] in _links(sidewalk)  # back to the dossier: its construction_dossier_code and the finding
    mismatch = findings[findings["kind"] == "WARD_MISMATCH"].iloc[0]
    page = client.get(f"/permits/{mismatch['a_id']}").get_data(as_text=True)
    table = re.search(r'data-testid="findings">(.*?)</table>', page, re.DOTALL).group(1)
    assert mismatch["b_id"] in table and mismatch["b_id"] not in _links(table)  # a ward's key has no page


def test_the_permits_findings_name_have_pages(client, store):
    """Both ids of the first finding of each kind (a ward mismatch's b_id is a ward's key)."""
    findings = store.read("findings").groupby("kind").head(1)
    assert len(findings) == 6
    ids = set(findings["a_id"]) | set(findings.loc[findings["kind"] != "WARD_MISMATCH", "b_id"].dropna())
    assert any(i.startswith("VH-") for i in ids) and any(i.startswith("XD-") for i in ids)
    for code in sorted(ids):
        assert client.get(f"/permits/{code}").status_code == 200, code
    r = client.get("/permits/VH-0000-NOPE")
    assert r.status_code == 404 and "VH-0000-NOPE" in r.get_data(as_text=True)
