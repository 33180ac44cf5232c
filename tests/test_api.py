"""OGC API – Features at /api: every endpoint, the bad-request table, paging, GeoJSON rules."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson
import pytest
import shapely

from gisapp import geo
from gisapp.api import features as ogcapi
from gisapp.filters import Filter, parse_datetime
from gisapp.schema import LAYERS
from gisapp.web.app import create_app
from tests.helpers import assert_error, check_rfc7946

ITEMS = "/api/collections/construction_permits/items"


@pytest.fixture
def app(demo_store):
    return create_app({"STORE": demo_store.url, "TESTING": True, "BASEMAP": "none"})


@pytest.fixture
def client(app):
    return app.test_client()


def get_json(client, url, status=200):
    r = client.get(url)
    assert r.status_code == status, (url, r.get_data(as_text=True)[:300])
    return r, orjson.loads(r.get_data())


# -- capabilities -------------------------------------------------------------

def test_landing_links_service_desc_conformance_and_data(client):
    for url in ("/api", "/api/"):
        r, doc = get_json(client, url)
        assert r.content_type == "application/json"
        rels = {link["rel"]: link for link in doc["links"]}
        assert rels["service-desc"]["type"] == ogcapi.OPENAPI
        assert {"self", "alternate", "conformance", "data", "service-doc"} <= set(rels)
        assert all(link["href"].startswith("http://localhost/api") for link in doc["links"])


def test_conformance_classes(client):
    _, doc = get_json(client, "/api/conformance")
    features = [c for c in doc["conformsTo"] if "/ogcapi-features-1/" in c]
    assert {c.rsplit("/", 1)[-1] for c in features} == {"core", "geojson", "html", "oas30"}
    processes = [c for c in doc["conformsTo"] if "/ogcapi-processes-1/" in c]
    assert {c.rsplit("/", 1)[-1] for c in processes} == {"core", "ogc-process-description", "json", "oas30"}


def test_collections_with_wgs84_and_temporal_extent(client, demo_store):
    _, doc = get_json(client, "/api/collections")
    by_id = {c["id"]: c for c in doc["collections"]}
    assert list(by_id) == list(LAYERS)
    permits = by_id["construction_permits"]
    assert permits["itemType"] == "feature" and ogcapi.CRS84 in permits["crs"]
    x1, y1, x2, y2 = permits["extent"]["spatial"]["bbox"][0]
    assert 108.1 < x1 < x2 < 108.3 and 15.9 < y1 < y2 < 16.1
    start, end = permits["extent"]["temporal"]["interval"][0]
    assert start.startswith("2022-01") and end.startswith("2022-06")
    assert by_id["wards"]["extent"]["temporal"]["interval"][0][1] is None  # wards still in force
    rels = {link["rel"] for link in permits["links"]}
    assert {"self", "items", "http://www.opengis.net/def/rel/ogc/1.0/queryables"} <= rels


def test_one_collection_and_queryables(client):
    _, doc = get_json(client, "/api/collections/sidewalk_permits")
    assert doc["id"] == "sidewalk_permits" and "permit period" in doc["description"]
    r, schema = get_json(client, "/api/collections/sidewalk_permits/queryables")
    assert r.content_type == ogcapi.SCHEMA_JSON
    assert {"ward_code", "status", "channel", "purpose"} <= set(schema["properties"])
    assert "procedure" not in schema["properties"]
    assert "MATERIALS" in schema["properties"]["purpose"]["enum"]


def test_openapi_declares_every_route_and_parameter(client, app):
    r, doc = get_json(client, "/api/openapi")
    assert r.content_type == ogcapi.OPENAPI
    assert doc["openapi"].startswith("3.0")
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api")}
    declared = {"/api" + re.sub(r"\{featureId\}", "<path:feature_id>", p).replace("{jobId}", "<job_id>").rstrip("/")
                for p in doc["paths"]}
    for route in routes:
        if "<process_id>" in route:
            assert route.replace("<process_id>", "occupancy-check") in declared
        elif "<collection_id>" in route:
            for name in LAYERS:
                assert route.replace("<collection_id>", name) in declared
        else:
            assert route.rstrip("/") in declared or route in ("/api/",)
    items = doc["paths"]["/collections/construction_permits/items"]["get"]
    names = {p["$ref"].rsplit("/", 1)[-1] for p in items["parameters"]}
    assert names == {"f", "lang", "bbox", "datetime", "day", "as_of", "limit", "offset", "q", "ward_code", "status",
                     "procedure", "channel"}
    limit = doc["components"]["parameters"]["limit"]
    # declared as the standard's own limit.yaml does (minimum, maximum, default); larger values are still clamped
    assert limit["schema"]["maximum"] == 10000 and "clamped" in limit["description"]


@pytest.mark.parametrize("url", ["/api?f=html", "/api/conformance?f=html", "/api/collections?f=html",
                                 "/api/collections/wards?f=html", "/api/openapi?f=html",
                                 "/api/collections/wards/queryables?f=html", f"{ITEMS}?f=html&limit=5"])
def test_html_pages(client, url):
    r = client.get(url)
    assert r.status_code == 200 and r.content_type.startswith("text/html")
    assert b"<html" in r.get_data()


def test_browser_accept_header_gets_html(client):
    r = client.get("/api/collections", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.content_type.startswith("text/html")
    r = client.get("/api/collections", headers={"Accept": "*/*"})
    assert r.content_type == "application/json"


# -- items --------------------------------------------------------------------

def test_items_page_members_and_geojson_rules(client, demo_store):
    r, fc = get_json(client, f"{ITEMS}?limit=50")
    assert r.content_type == "application/geo+json"
    assert fc["type"] == "FeatureCollection" and "crs" not in fc
    assert fc["numberMatched"] == demo_store.count("construction_permits")
    assert fc["numberReturned"] == len(fc["features"]) == 50
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fc["timeStamp"])
    rels = {link["rel"] for link in fc["links"]}
    assert {"self", "alternate", "next", "collection"} <= rels and "prev" not in rels
    check_rfc7946(fc["features"])
    frame = demo_store.read("construction_permits", limit=50)
    assert [f["id"] for f in fc["features"]] == frame["dossier_code"].tolist()


def test_item_by_id_and_unknown_id(client, demo_store):
    key = demo_store.read("construction_permits", limit=1)["dossier_code"].iloc[0]
    r, feat = get_json(client, f"{ITEMS}/{key}")
    assert r.content_type == "application/geo+json"
    assert feat["type"] == "Feature" and feat["id"] == key
    assert {link["rel"] for link in feat["links"]} >= {"self", "collection"}
    assert client.get(f"{ITEMS}/{key}?f=html").status_code == 200
    body = assert_error(client.get(f"{ITEMS}/NO-SUCH-DOSSIER"), 404)
    assert "NO-SUCH-DOSSIER" in body["description"]


def test_filters_match_the_store(client, demo_store):
    wards = sorted(set(demo_store.read("construction_permits", limit=200)["ward_code"]))
    cases = [
        ("status=PROCESSING", Filter(statuses=("PROCESSING",))),
        (f"ward_code={wards[0]},{wards[1]}", Filter(wards=tuple(wards[:2]))),
        ("channel=ONLINE&procedure=NEW_BUILD", Filter(channels=("ONLINE",), procedures=("NEW_BUILD",))),
        ("bbox=108.18,15.99,108.22,16.02", Filter(bbox=(108.18, 15.99, 108.22, 16.02))),
        ("datetime=2022-03-01", Filter(date_from=_d("2022-03-01"), date_to=_d("2022-03-01"))),
        ("datetime=../2022-03-01", Filter(date_to=_d("2022-03-01"))),
        ("datetime=2022-03-01T00:00:00Z/..", Filter(date_from=_d("2022-03-01"))),
        ("datetime=2022-02-01/2022-02-28", Filter(date_from=_d("2022-02-01"), date_to=_d("2022-02-28"))),
        ("datetime=../..", Filter()),
    ]
    for query, flt in cases:
        _, fc = get_json(client, f"{ITEMS}?{query}&limit=10000")
        expected = demo_store.count("construction_permits", flt)
        assert fc["numberMatched"] == fc["numberReturned"] == len(fc["features"]) == expected, query
        assert 0 < expected < demo_store.count("construction_permits") or query == "datetime=../.."


def test_datetime_uses_each_layers_dates(client, demo_store):
    _, fc = get_json(client, "/api/collections/sidewalk_permits/items?datetime=2022-04-15&limit=10000")
    frame = demo_store.read("sidewalk_permits")
    day = np.datetime64("2022-04-15")
    inside = (frame["start_on"] <= day) & (frame["end_on"] >= day)
    assert fc["numberMatched"] == int(inside.sum()) > 0
    _, fc = get_json(client, "/api/collections/wards/items?datetime=2022-06-30")
    assert fc["numberMatched"] == demo_store.count("wards", Filter(date_from=_d("2022-06-30"),
                                                                   date_to=_d("2022-06-30")))


def _d(text):
    import datetime as dt

    return dt.date.fromisoformat(text)


def test_walking_next_links_returns_every_feature_once(client, demo_store):
    url = f"{ITEMS}?limit=300&bbox=108.15,15.95,108.25,16.05"
    seen, pages = [], 0
    while url:
        _, fc = get_json(client, url.replace("http://localhost", ""))
        seen += [f["id"] for f in fc["features"]]
        pages += 1
        nxt = [link["href"] for link in fc["links"] if link["rel"] == "next"]
        assert fc["numberReturned"] == len(fc["features"])
        url = nxt[0] if nxt else None
        assert pages < 50
    expected = demo_store.read("construction_permits", Filter(bbox=(108.15, 15.95, 108.25, 16.05)))
    assert len(seen) == len(set(seen)) == len(expected) and seen == expected["dossier_code"].tolist()
    assert pages > 1
    _, fc = get_json(client, f"{ITEMS}?limit=300&offset=300")
    prev = next(link["href"] for link in fc["links"] if link["rel"] == "prev")
    assert parse_qs(urlsplit(prev).query)["offset"] == ["0"]


def test_limit_above_the_maximum_is_clamped(client, app):
    app.config["MAX_ITEMS"] = 500
    _, fc = get_json(client, f"{ITEMS}?limit=10001")
    assert fc["numberReturned"] == 500
    nxt = next(link["href"] for link in fc["links"] if link["rel"] == "next")
    assert parse_qs(urlsplit(nxt).query)["limit"] == ["500"]


def test_limit_10001_is_clamped_to_10000(client, demo_store):
    _, fc = get_json(client, f"{ITEMS}?limit=10001")
    assert fc["numberReturned"] == min(10000, demo_store.count("construction_permits"))


def test_empty_page_and_empty_collection(client):
    _, fc = get_json(client, f"{ITEMS}?offset=100000")
    assert fc["features"] == [] and fc["numberReturned"] == 0
    _, fc = get_json(client, "/api/collections/findings/items")
    assert fc["features"] == [] and fc["numberMatched"] == 0


def test_personal_fields_follow_the_privacy_rule(client, app, demo_store):
    app.config["SHOW_PERSONAL_DATA"] = True  # as for signed-in staff (tests/test_privacy.py signs in for real)
    _, fc = get_json(client, f"{ITEMS}?limit=1")
    assert "owner_name" in fc["features"][0]["properties"]
    app.config["SHOW_PERSONAL_DATA"] = False
    _, fc = get_json(client, f"{ITEMS}?limit=1")
    assert "owner_name" not in fc["features"][0]["properties"]
    assert "owner_id_no" not in fc["features"][0]["properties"]


def test_round_trip_area_within_a_tenth_of_a_percent(client, demo_store):
    _, fc = get_json(client, f"{ITEMS}?limit=200")
    frame = demo_store.read("construction_permits", limit=200)
    web = [shapely.geometry.shape(f["geometry"]) for f in fc["features"]]
    back = geo.transform(web, "EPSG:4326", "EPSG:5899")
    area, stored = shapely.area(back), shapely.area(frame.geometry.values)
    assert abs(area.sum() / stored.sum() - 1) < 1e-3
    # Each parcel: 7 decimals are ~1 cm, which moves a few square decimetres of a 100 m² lot.
    assert np.abs(area / stored - 1).max() < 5e-3


# -- bad requests -------------------------------------------------------------

BAD = [
    (f"{ITEMS}?bbox=108.2,16", 400, "bbox"),
    (f"{ITEMS}?bbox=a,b,c,d", 400, "bbox"),
    (f"{ITEMS}?bbox=108.2,16.1,108.3,16.0", 400, "bbox"),  # west > east crosses the antimeridian: not an error
    (f"{ITEMS}?bbox=200,16,201,17", 400, "bbox"),
    (f"{ITEMS}?limit=0", 400, "limit"),
    (f"{ITEMS}?limit=-1", 400, "limit"),
    (f"{ITEMS}?limit=abc", 400, "limit"),
    (f"{ITEMS}?limit=1.5", 400, "limit"),
    (f"{ITEMS}?offset=-3", 400, "offset"),
    (f"{ITEMS}?datetime=yesterday", 400, "datetime"),
    (f"{ITEMS}?datetime=2022-13-01", 400, "datetime"),
    (f"{ITEMS}?datetime=2022-03-01/2022-02-01", 400, "datetime"),
    (f"{ITEMS}?datetime=2022-01-01/2022-02-01/2022-03-01", 400, "datetime"),
    (f"{ITEMS}?status=DONE", 400, "status"),
    (f"{ITEMS}?ward_code=99999", 400, "ward_code"),
    (f"{ITEMS}?ward_code=abc", 400, "ward_code"),
    (f"{ITEMS}?purpose=MATERIALS", 400, "purpose"),  # not a queryable of construction permits
    (f"{ITEMS}?colour=red", 400, "colour"),
    (f"{ITEMS}?f=xml", 400, "f"),
    ("/api?f=pdf", 400, "f"),
    ("/api/collections?f=csv", 400, "f"),
    ("/api/collections/nope", 404, "nope"),
    ("/api/collections/nope/items", 404, "nope"),
    ("/api/collections/nope/queryables", 404, "nope"),
    (f"{ITEMS}/NO-SUCH-ID", 404, "NO-SUCH-ID"),
    ("/api/collections/wards/items/0", 404, "0"),
]


@pytest.mark.parametrize("url,status,mentions", BAD)
def test_bad_requests_have_one_error_shape(client, url, status, mentions):
    body = assert_error(client.get(url), status)
    assert mentions in body["description"]


def test_core_parsers():
    assert ogcapi.parse_limit(None, 10000) == 100
    assert ogcapi.parse_limit("10001", 10000) == 10000
    assert parse_datetime("2022-01-05T") == (_d("2022-01-05"), _d("2022-01-05"))  # as GDAL sends it
    assert parse_datetime("../2022-03-01") == (None, _d("2022-03-01"))
    assert parse_datetime("2022-03-01T10:00:00+07:00/") == (_d("2022-03-01"), None)


def test_review_findings_stay_fixed(client, demo_store):
    """Odd requests found in review: case of codes, huge offsets, whole-world bbox, unknown lang."""
    upper = get_json(client, f"{ITEMS}?status=PROCESSING")[1]["numberMatched"]
    assert get_json(client, f"{ITEMS}?status=processing")[1]["numberMatched"] == upper > 0
    r = client.get(f"{ITEMS}?f=html&offset=1000000000000000")
    assert r.status_code == 200
    r = client.get(f"{ITEMS}?f=json&offset=99999999999999999999")
    assert r.status_code == 400 and r.get_json()["code"] == "InvalidParameterValue"
    world = get_json(client, f"{ITEMS}?bbox=-180,-90,180,90&limit=1")[1]["numberMatched"]
    assert world == demo_store.count("construction_permits")
    assert client.get("/api?f=html&lang=xx").status_code == 400  # an unknown language is refused (OpenAPI enum)
    assert client.get("/export/construction_permits.geojson?ward=&ward=99999").status_code == 400
