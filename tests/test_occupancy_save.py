"""Filing an occupancy as a NEW sidewalk-use permit application: the request, the store, the findings, races.

The findings written with a saved (or changed) application must be those a
full analysis run gives afterwards, on both backends; two officers saving
overlapping occupancies at the same moment are both saved and the clash
between them is in the findings.
"""

from __future__ import annotations

import re
import threading

import orjson
import pandas as pd
import pytest
import shapely

from gisapp import geo
from gisapp.accounts import Accounts
from gisapp.analysis.incremental import stored_params
from gisapp.analysis.run import analyze_store
from gisapp.schema import STORE_CRS, WEB_CRS
from gisapp.store import open_store
from gisapp.web import occupancy
from gisapp.web.app import create_app
from tests.helpers import PASSWORD, assert_error, occupancy_inputs, signed_in
from tests.stores import BACKENDS, analyzed_store

COLUMNS = ["kind", "a_id", "b_id", "ward_code", "overlap_area_m2", "distance_m", "overlap_start", "overlap_end",
           "overlap_days", "detail"]


def _busy(store, k: int = 0):
    """The ``k``-th demo permit being used, and a 2 m disc on its centre on its own days."""
    permits = store.read("sidewalk_permits")
    permits = permits[permits["status"].isin(["PROCESSING", "RETURNED"])].reset_index(drop=True)
    row = permits.iloc[k]
    disc = shapely.buffer(shapely.centroid(row.geometry), 1.0)
    return row, disc, occupancy_inputs(disc, str(row.start_on.date()), str(row.end_on.date()))


def _config(store) -> dict:
    return create_app({"STORE": store.url, "TESTING": True}).config


def assert_findings_current(store) -> None:
    """The stored findings are exactly those of a full analysis run now."""
    stored = store.read("findings").sort_values("finding_id").reset_index(drop=True)
    full = analyze_store(store, stored_params(store))[0].findings.sort_values("finding_id").reset_index(drop=True)
    assert list(stored["finding_id"]) == list(full["finding_id"])
    for col in COLUMNS:
        a, b = stored[col], full[col]
        same = (a == b) | (a.isna() & b.isna())
        assert same.all(), (col, pd.concat([stored[~same][["finding_id", col]], b[~same]], axis=1).head())
    # the same shapes (a ring may start at another vertex: the written permit's own rings vs the stored ones)
    same = shapely.equals_exact(shapely.normalize(stored.geometry.values), shapely.normalize(full.geometry.values),
                                tolerance=1e-3)
    assert same.all(), list(stored["finding_id"][~same])


# -- the request --------------------------------------------------------------------------------------------------

def _token(client) -> str:
    page = client.get("/").get_data(as_text=True)
    found = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert found, "the map page carries no CSRF token for the tool"
    return found.group(1)


def test_officer_files_an_occupancy(demo_frames, tmp_path, request):
    frames, meta = demo_frames
    store = analyzed_store("gpkg", tmp_path, request, frames, meta)
    accounts = Accounts(tmp_path / "acc.sqlite")
    accounts.add("olga", PASSWORD, "officer")
    accounts.add("vera", PASSWORD, "viewer")
    app = create_app({"STORE": store.url, "TESTING": True, "ACCOUNTS": str(tmp_path / "acc.sqlite")})
    row, _, inputs = _busy(store)
    body = {"inputs": inputs, "applicant_name": "Trần Thị Test", "address": "12 Test"}
    version = store.version()

    anonymous = app.test_client()
    assert_error(anonymous.post("/occupancy", json=body), 400)  # no CSRF token
    assert_error(anonymous.post("/occupancy", json=body, headers={"X-CSRFToken": _token(anonymous)}), 401)
    viewer = signed_in(app, "vera")
    assert_error(viewer.post("/occupancy", json=body, headers={"X-CSRFToken": _token(viewer)}), 403)
    officer = signed_in(app, "olga")
    token = _token(officer)
    assert_error(officer.post("/occupancy", json=body), 400)  # the token is required
    assert_error(officer.post("/occupancy", data=b"{oops", content_type="application/json",
                              headers={"X-CSRFToken": token}), 400)
    bad = assert_error(officer.post("/occupancy", json={"inputs": {**inputs, "purpose": "PICNIC"}},
                                    headers={"X-CSRFToken": token}), 400)
    assert bad["description"].startswith("purpose: ")
    big = b'{"inputs": {"note": "' + b"x" * (1 << 20) + b'"}}'
    too_big = assert_error(officer.post("/occupancy", data=big, content_type="application/json",
                                        headers={"X-CSRFToken": token}), 413)
    assert too_big["description"].startswith("body: larger than 1024 KB")
    assert store.version() == version  # nothing written by a refused request

    saved = officer.post("/occupancy", json=body, headers={"X-CSRFToken": token})
    assert saved.status_code == 201, saved.get_data(as_text=True)
    doc = saved.get_json()
    number = doc["permit_no"]
    assert re.fullmatch(r"VH-\d{4}-N[2-9A-HJ-NP-Z]{6}", number)
    assert doc["findings"]["clashes"] == [row.permit_no] or row.permit_no in doc["findings"]["clashes"]
    assert store.version() != version  # tiles and caches see a new data version

    # in the store, the API, the exports and the map data right away
    item = officer.get(f"/api/collections/sidewalk_permits/items/{number}?f=json")
    props = orjson.loads(item.get_data())["properties"]
    assert props["status"] == "NEW" and props["applicant_name"] == "Trần Thị Test"
    assert props["start_on"] == inputs["start"] and props["purpose"] == "MATERIALS"
    assert number in officer.get("/export/sidewalk_permits.csv").get_data(as_text=True)
    assert number in officer.get("/data/sidewalk_permits.geojson").get_data(as_text=True)
    assert officer.get(f"/permits/{number}").status_code == 200
    # its findings are current without a full run, and in the audit log with their author
    assert_findings_current(store)
    [entry] = [e for e in accounts.audit_log() if e.action == "occupancy_filed"]
    assert entry.username == "olga" and number in entry.detail and row.permit_no in entry.detail

    # changed later: checked again, findings recomputed
    far = shapely.buffer(shapely.centroid(_busy(store, 40)[0].geometry), 1.0)
    moved = officer.post(f"/occupancy/{number}", json={"inputs": occupancy_inputs(far, "2022-05-02", "2022-05-09")},
                         headers={"X-CSRFToken": token})
    assert moved.status_code == 200, moved.get_data(as_text=True)
    assert row.permit_no not in moved.get_json()["findings"]["clashes"]
    assert store.get("sidewalk_permits", number)["start_on"].iloc[0].date().isoformat() == "2022-05-02"
    assert_findings_current(store)
    assert [e.action for e in accounts.audit_log()][0] == "occupancy_changed"
    # only NEW applications are changed here
    assert_error(officer.post(f"/occupancy/{row.permit_no}", json={"inputs": inputs},
                              headers={"X-CSRFToken": token}), 409)
    assert_error(officer.post("/occupancy/VH-1999-NOPE", json={"inputs": inputs},
                              headers={"X-CSRFToken": token}), 404)


# -- the findings: incremental == full, on both backends -------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_findings_of_saved_and_changed_applications_equal_a_full_run(backend, demo_frames, tmp_path, request):
    frames, meta = demo_frames
    store = analyzed_store(backend, tmp_path, request, frames, meta)
    config = _config(store)
    assert_findings_current(store)
    _, _, first = _busy(store, 0)
    a = occupancy.save(store, {"inputs": first}, config)
    assert a.clashes and a.findings_written >= 1
    assert_findings_current(store)
    row, disc, _ = _busy(store, 3)
    near_dossier = occupancy_inputs(shapely.buffer(shapely.centroid(row.geometry), 1.5),
                                    str(row.start_on.date()), str(row.end_on.date()), "BUSINESS")
    b = occupancy.save(store, {"inputs": near_dossier}, config)
    assert_findings_current(store)
    # moved elsewhere and to other days: the old clashes go, new ones come
    other = _busy(store, 25)[2]
    occupancy.save(store, {"inputs": other}, config, permit_no=a.permit_no)
    assert_findings_current(store)
    occupancy.save(store, {"inputs": {**near_dossier, "start": "2022-01-03", "end": "2022-01-04"}}, config,
                   permit_no=b.permit_no)
    assert_findings_current(store)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_officers_saving_overlapping_occupancies_at_once(backend, demo_frames, tmp_path, request):
    frames, meta = demo_frames
    store = analyzed_store(backend, tmp_path, request, frames, meta)
    config = _config(store)
    # a free stretch of sidewalk: a disc on a sidewalk with no permit on those days
    sidewalk = store.read("sidewalks").geometry.values[7]
    spot = shapely.point_on_surface(sidewalk)
    inputs = [occupancy_inputs(shapely.buffer(spot, 0.8), "2030-03-01", "2030-03-20"),
              occupancy_inputs(shapely.buffer(shapely.Point(spot.x + 0.5, spot.y), 0.8), "2030-03-10", "2030-03-30")]
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def officer(k: int) -> None:
        own = open_store(store.url)  # each request opens its own store
        barrier.wait()
        results[k] = occupancy.save(own, {"inputs": inputs[k]}, config)

    threads = [threading.Thread(target=officer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(r, occupancy.Saved) for r in results), results
    numbers = {r.permit_no for r in results}
    assert len(numbers) == 2
    for number in numbers:
        assert len(store.get("sidewalk_permits", number)) == 1
    findings = store.read("findings")
    clashes = findings[(findings["kind"] == "CLASH") & findings["a_id"].isin(numbers) & findings["b_id"].isin(numbers)]
    assert len(clashes) == 1 and int(clashes["overlap_days"].iloc[0]) == 11
    # the one saved second saw the first: its check and its findings name it
    later = [r for r in results if r.clashes]
    assert later and set(later[0].clashes) & numbers
    assert_findings_current(store)


def test_frontage_starts_an_occupancy_in_front_of_a_parcel(demo_store, tmp_path):
    accounts = Accounts(tmp_path / "acc.sqlite")
    accounts.add("olga", PASSWORD, "officer")
    app = create_app({"STORE": demo_store.url, "TESTING": True, "ACCOUNTS": str(tmp_path / "acc.sqlite")})
    code = demo_store.read("construction_permits")["dossier_code"].iloc[0]
    assert_error(app.test_client().get(f"/occupancy/frontage/{code}"), 401)
    officer = signed_in(app, "olga")
    answer = officer.get(f"/occupancy/frontage/{code}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    geom = geo.transform([shapely.geometry.shape(answer.get_json()["geometry"])], WEB_CRS, STORE_CRS)[0]
    parcel = demo_store.get("construction_permits", code).geometry.iloc[0]
    assert shapely.distance(geom, parcel) < 0.01 and shapely.area(shapely.intersection(geom, parcel)) < 0.01
    sidewalks = shapely.union_all(demo_store.read("sidewalks").geometry.values)
    assert shapely.area(shapely.difference(geom, sidewalks)) < 0.01
    assert_error(officer.get("/occupancy/frontage/NO-SUCH"), 404)
