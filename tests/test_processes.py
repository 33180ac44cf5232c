"""OGC API – Processes (Part 1 Core, sync execution): the process list, description, execution, bad input.

Checked through Flask's client, through a client we did not write (OWSLib's
``owslib.ogcapi.processes``) against a real server, and on both backends.
"""

from __future__ import annotations

import shapely

from gisapp.accounts import Accounts
from gisapp.api import processes
from gisapp.web.app import create_app
from tests.browser_util import live_server
from tests.helpers import PASSWORD, assert_error, occupancy_inputs, signed_in
from tests.stores import BACKENDS, new_store

EXECUTE = "/api/processes/occupancy-check/execution"
CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"


def _app(store, tmp_path):
    accounts = Accounts(tmp_path / "acc.sqlite")
    accounts.add("olga", PASSWORD, "officer")
    return create_app({"STORE": store.url, "TESTING": True, "ACCOUNTS": str(tmp_path / "acc.sqlite")})


def _busy_permit(store):
    """A demo sidewalk permit and a 2 m disc on its centre, on its own days (a clash with it)."""
    permits = store.read("sidewalk_permits")
    permits = permits[permits["applicant_name"].notna() & permits["status"].isin(["PROCESSING", "RETURNED"])]
    row = permits.iloc[0]
    disc = shapely.buffer(shapely.centroid(row.geometry), 1.0)
    return row, occupancy_inputs(disc, str(row.start_on.date()), str(row.end_on.date()))


# -- documents ------------------------------------------------------------------------------------------------

def test_process_list_and_description(demo_store, tmp_path):
    client = _app(demo_store, tmp_path).test_client()
    listing = client.get("/api/processes").get_json()
    [summary] = listing["processes"]
    assert summary["id"] == "occupancy-check" and summary["version"]
    assert summary["jobControlOptions"] == ["sync-execute"] and summary["outputTransmission"] == ["value"]
    rels = {link["rel"]: link["href"] for link in summary["links"]}
    assert rels["self"].endswith("/api/processes/occupancy-check")
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/execute"].endswith(EXECUTE)
    assert any(link["rel"] == "self" for link in listing["links"])
    doc = client.get("/api/processes/occupancy-check").get_json()
    assert set(doc["inputs"]) == {"geometry", "start", "end", "purpose", "construction_dossier_code"}
    assert doc["inputs"]["construction_dossier_code"]["minOccurs"] == 0
    assert all(doc["inputs"][k]["minOccurs"] == 1 for k in ("geometry", "start", "end", "purpose"))
    assert "MATERIALS" in doc["inputs"]["purpose"]["schema"]["enum"]
    assert doc["outputs"]["report"]["schema"]["properties"]["verdict"]["enum"] == ["OK", "REFER", "REFUSE"]
    assert assert_error(client.get("/api/processes/nothing"), 404)["code"] == "NoSuchProcess"
    assert_error(client.post("/api/processes/nothing/execution", json={"inputs": {}}), 404)
    assert assert_error(client.get("/api/jobs/123"), 404)["code"] == "NoSuchJob"
    assert client.get("/api/processes?f=html").status_code == 400  # JSON only (the error page, as asked)
    assert_error(client.get("/api/processes?foo=1"), 400)


def test_landing_conformance_and_openapi_list_the_processes(demo_store, tmp_path):
    client = _app(demo_store, tmp_path).test_client()
    landing = client.get("/api?f=json").get_json()
    [link] = [x for x in landing["links"] if x["rel"] == processes.REL_PROCESSES]
    assert link["href"].endswith("/api/processes")
    conforms = client.get("/api/conformance?f=json").get_json()["conformsTo"]
    for name in ("core", "ogc-process-description", "json", "oas30"):
        assert CONF + name in conforms
    paths = client.get("/api/openapi?f=json").get_json()["paths"]
    assert "post" in paths["/processes/occupancy-check/execution"]
    assert {"/processes", "/processes/occupancy-check"} <= set(paths)


# -- execution ------------------------------------------------------------------------------------------------

def test_execute_raw_and_document(demo_store, tmp_path):
    client = _app(demo_store, tmp_path).test_client()
    row, inputs = _busy_permit(demo_store)
    raw = client.post(EXECUTE, json={"inputs": inputs})
    assert raw.status_code == 200 and raw.content_type == "application/json"
    report = raw.get_json()
    assert report["verdict"] in ("REFER", "REFUSE")
    assert row.permit_no in [c["permit_no"] for c in report["clashes"]]
    clash = next(c for c in report["clashes"] if c["permit_no"] == row.permit_no)
    assert clash["overlap_days"] == (row.end_on - row.start_on).days + 1
    disc = shapely.buffer(shapely.centroid(row.geometry), 1.0)
    assert abs(clash["overlap_area_m2"] - shapely.area(shapely.intersection(disc, row.geometry))) < 0.01
    doc = client.post(EXECUTE, json={"inputs": inputs, "response": "document", "outputs": {"report": {}}})
    assert doc.get_json() == {"report": report}
    qualified = {**inputs, "geometry": {"value": inputs["geometry"], "mediaType": "application/geo+json"}}
    assert client.post(EXECUTE, json={"inputs": qualified}).get_json() == report
    # Prefer: respond-async is answered synchronously (sync-execute only)
    assert client.post(EXECUTE, json={"inputs": inputs}, headers={"Prefer": "respond-async"}).status_code == 200


def test_anonymous_sees_no_personal_data_staff_do(demo_store, tmp_path):
    app = _app(demo_store, tmp_path)
    row, inputs = _busy_permit(demo_store)
    anonymous = app.test_client().post(EXECUTE, json={"inputs": inputs})
    assert row.applicant_name not in anonymous.get_data(as_text=True)
    assert "applicant_name" not in anonymous.get_data(as_text=True)
    staff = signed_in(app, "olga").post(EXECUTE, json={"inputs": inputs})
    assert row.applicant_name in staff.get_data(as_text=True)


def test_bad_input_is_a_400_naming_the_field(demo_store, tmp_path):
    client = _app(demo_store, tmp_path).test_client()
    _, good = _busy_permit(demo_store)
    lon, lat = good["geometry"]["coordinates"][0][0][:2]
    bowtie = {"type": "Polygon", "coordinates": [[[lon, lat], [lon + 0.0001, lat + 0.0001], [lon + 0.0001, lat],
                                                  [lon, lat + 0.0001], [lon, lat]]]}
    huge = {"type": "Polygon", "coordinates": [[[lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01],
                                                [lon, lat + 0.01], [lon, lat]]]}
    paris = {"type": "Polygon", "coordinates": [[[2.35, 48.85], [2.3501, 48.85], [2.3501, 48.8501], [2.35, 48.85]]]}
    cases = [
        ({**good, "end": "2000-01-01"}, "end"),
        ({**good, "purpose": "PICNIC"}, "purpose"),
        ({**good, "construction_dossier_code": "NO-SUCH-DOSSIER"}, "construction_dossier_code"),
        ({**good, "geometry": paris}, "geometry"),
        ({**good, "geometry": {"type": "Point", "coordinates": [lon, lat]}}, "geometry"),
        ({**good, "geometry": {"type": "LineString", "coordinates": [[lon, lat], [lon + 0.001, lat]]}}, "geometry"),
        ({**good, "geometry": bowtie}, "geometry"),
        ({**good, "geometry": huge}, "geometry"),
        ({**good, "start": "2022-01-01", "end": "2024-12-31"}, "end"),
        ({**good, "start": "2022-02-30"}, "start"),
        ({k: v for k, v in good.items() if k != "geometry"}, "geometry"),
        ({k: v for k, v in good.items() if k != "purpose"}, "purpose"),
        ({**good, "colour": "red"}, "colour"),
    ]
    for inputs, field in cases:
        body = assert_error(client.post(EXECUTE, json={"inputs": inputs}), 400)
        assert body["description"].startswith(f"{field}: "), (field, body)
    limits = {"huge": "500", "period": "365"}
    assert limits["huge"] in assert_error(client.post(EXECUTE, json={"inputs": cases[7][0]}), 400)["description"]
    assert limits["period"] in assert_error(client.post(EXECUTE, json={"inputs": cases[8][0]}), 400)["description"]
    # the request itself
    raw_cases = [(b"{not json", "body"), (b"", "body"), (b"[1, 2]", "body"), (b'{"outputs": {}}', "inputs"),
                 (b'{"inputs": 5}', "inputs"), (b'{"inputs": {}, "response": "zip"}', "response"),
                 (b'{"inputs": {}, "subscriber": {}}', "subscriber"),
                 (b'{"inputs": {}, "outputs": {"map": {}}}', "outputs")]
    for data, field in raw_cases:
        body = assert_error(client.post(EXECUTE, data=data, content_type="application/json"), 400)
        assert body["description"].startswith(f"{field}: "), (data, body)
    assert_error(client.post(EXECUTE, data=b"<xml/>", content_type="application/xml"), 400)
    big = b'{"inputs": {"purpose": "' + b"x" * (processes.MAX_BODY + 10) + b'"}}'
    body = assert_error(client.post(EXECUTE, data=big, content_type="application/json"), 413)
    assert body["description"].startswith("body: ")


def test_not_on_a_sidewalk_is_refer_not_a_crash(demo_store, tmp_path):
    client = _app(demo_store, tmp_path).test_client()
    lot = demo_store.read("construction_permits").geometry.values[0]
    inputs = occupancy_inputs(shapely.buffer(shapely.centroid(lot), 1.0), "2022-03-01", "2022-03-05")
    report = client.post(EXECUTE, json={"inputs": inputs}).get_json()
    assert report["verdict"] == "REFER" and "NOT_ON_SIDEWALK" in [r["code"] for r in report["reasons"]]


def test_owslib_runs_the_process(demo_store, tmp_path):
    """OWSLib's OGC API – Processes client, against a real server: list, describe, execute (document)."""
    from owslib.ogcapi.processes import Processes

    row, inputs = _busy_permit(demo_store)
    with live_server(_app(demo_store, tmp_path)) as base:
        client = Processes(f"{base}/api")
        assert [p["id"] for p in client.processes()] == ["occupancy-check"]
        description = client.process("occupancy-check")
        assert set(description["inputs"]) >= {"geometry", "start", "end", "purpose"}
        result = client.execute("occupancy-check", inputs=inputs)
        assert row.permit_no in [c["permit_no"] for c in result["report"]["clashes"]]


def test_execute_on_both_backends_agrees(demo_frames, tmp_path, request):
    frames, meta = demo_frames
    reports = {}
    for backend in BACKENDS:
        (tmp_path / backend).mkdir()
        store = new_store(backend, tmp_path / backend, request)
        store.write(frames, meta=meta)
        app = create_app({"STORE": store.url, "TESTING": True})
        _, inputs = _busy_permit(store)
        answer = app.test_client().post(EXECUTE, json={"inputs": inputs})
        assert answer.status_code == 200
        reports[backend] = answer.get_json()
    assert reports["gpkg"]["verdict"] == reports["postgis"]["verdict"]
    assert reports["gpkg"]["clashes"] == reports["postgis"]["clashes"]
    assert reports["gpkg"]["narrowest_passage_m"] == reports["postgis"]["narrowest_passage_m"]
