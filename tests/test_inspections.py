"""Inspection records on both stores, through the web form: photos resized and stripped, bad input refused
with nothing stored, photos private, unpermitted occupancies as findings, the BLDS export."""

from __future__ import annotations

import datetime as dt
import io
import socket
import threading

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from PIL import Image

from gisapp import geo, inspections, photos
from gisapp.accounts import Accounts
from gisapp.inspections import Inspection, PhotoRef
from gisapp.schema import STORE_CRS
from gisapp.store import StoreError
from gisapp.web.app import create_app
from tests.helpers import PASSWORD, assert_error, permits, phone_jpeg, signed_in, staff_accounts, token_of
from tests.stores import BACKENDS, new_store

NOW = dt.datetime(2026, 1, 2, 3, 0, tzinfo=dt.UTC)
#: A spot on the demo's first sidewalk permit's street (Hòa Xuân), WGS84.
LON, LAT = 108.2, 16.01


def _inspection(iid="KT-1", target=("construction_permits", "XD-0001"), occupancy=None, outcome="PASSED",
                at=NOW, photo_refs=()):
    return Inspection(iid, target[0] if target else None, target[1] if target else None, "insp1", at,
                      "SITE_CHECK", outcome, "ghi chú", shapely.Point(547960.0, 1770710.0), occupancy, "20260",
                      tuple(photo_refs))


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    s = new_store(request.param, tmp_path, request)
    s.write({"construction_permits": permits(3)}, meta={"as_of": "2022-07-08"})
    return s


# -- the stores ---------------------------------------------------------------------------------------------

def test_an_inspection_and_its_photos_round_trip(store):
    photo = photos.process(io.BytesIO(phone_jpeg(800, 600)))
    record = _inspection(photo_refs=[PhotoRef(photo.token, photo.width, photo.height)])
    store.add_inspection(record, [photo])
    [back] = store.inspections(target_layer="construction_permits", target_key="XD-0001")
    assert back == record
    assert store.inspections(inspection_id="KT-1") == [back] and store.inspections(target_key="XD-0002") == []
    assert store.inspection_photo(photo.token) == photo.data
    assert store.inspection_photo("no-such-token") is None


def test_an_unpermitted_occupancy_and_its_finding_are_one_write(store):
    occupancy = shapely.box(547950.0, 1770700.0, 547954.0, 1770703.0)
    record = _inspection("KT-2", target=None, occupancy=occupancy)
    store.add_inspection(record, [], findings=inspections.unpermitted_findings([record]))
    found = store.read("findings")
    assert list(found["finding_id"]) == ["UP-KT-2"] and found["kind"].iloc[0] == "UNPERMITTED"
    assert found["overlap_area_m2"].iloc[0] == 12.0 and pd.isna(found["overlap_end"].iloc[0])
    assert store.inspections()[0].occupancy.equals(occupancy)


def test_a_failed_write_stores_neither_inspection_nor_photos(store):
    photo = photos.process(io.BytesIO(phone_jpeg(300, 200)))
    store.add_inspection(_inspection("KT-3"), [photo])
    with pytest.raises(StoreError):  # the same id again: the database refuses the second row
        store.add_inspection(_inspection("KT-3"), [photos.process(io.BytesIO(phone_jpeg(300, 200)))])
    assert len(store.inspections()) == 1
    assert store.inspection_photo(photo.token) is not None


# -- photos ---------------------------------------------------------------------------------------------------

def test_a_phone_photo_is_resized_and_keeps_only_time_and_position():
    stored = photos.process(io.BytesIO(phone_jpeg(4000, 3000)))
    img = Image.open(io.BytesIO(stored.data))
    assert img.format == "JPEG" and max(img.size) == 1600 and img.size == (1600, 1200)
    exif = img.getexif()
    assert set(exif) <= {0x0132, 0x8769, 0x8825}
    assert exif[0x0132] == "2026:01:02 10:00:00" and 0x010F not in exif and 0x013B not in exif
    assert dict(exif.get_ifd(0x8769)) == {0x9003: "2026:01:02 10:00:00"}  # no serial number
    assert exif.get_ifd(0x8825)[2] == (16.0, 1.0, 30.0)


@pytest.mark.parametrize(("data", "message"), [
    (b"not an image at all", "not an image"),
    (b"", "empty"),
])
def test_what_is_not_a_photo_is_refused(data, message):
    with pytest.raises(photos.PhotoError, match=message):
        photos.process(io.BytesIO(data), "x.jpg")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [10000, 20000])  # 100 MP: refused by photos' own check; 400 MP: by Pillow's
def test_a_decompression_bomb_is_refused(side):
    bomb = io.BytesIO()
    Image.new("1", (side, side)).save(bomb, "PNG")  # a few kB that decode to 100 or 400 megapixels
    assert bomb.tell() < 200_000
    with pytest.raises(photos.PhotoError, match="decompression bomb|too many pixels"):
        photos.process(bomb, "bomb.png")


def test_a_photo_over_20_mb_is_refused():
    big = io.BytesIO(phone_jpeg(300, 200) + b"\0" * (photos.MAX_BYTES + 1))
    with pytest.raises(photos.PhotoError, match="larger than 20 MB"):
        photos.process(big, "big.jpg")


# -- the web form ---------------------------------------------------------------------------------------------

@pytest.fixture
def app(demo_store, tmp_path):
    staff_accounts(tmp_path / "acc.sqlite", (("viewer1", "viewer"), ("insp1", "inspector"), ("officer1", "officer")))
    return create_app({"STORE": demo_store.url, "ACCOUNTS": str(tmp_path / "acc.sqlite"), "TESTING": True})


def _post(client, data: dict, files=(), follow=False, page="/inspections/new"):
    csrf = token_of(client.get(page).get_data(as_text=True))
    payload = {"csrf_token": csrf, "inspection_type": "SITE_CHECK", "outcome": "PASSED", "lon": str(LON),
               "lat": str(LAT), **data}
    payload["photos"] = [(io.BytesIO(b), name) for name, b in files]
    return client.post("/inspections", data=payload, content_type="multipart/form-data",
                       follow_redirects=follow)


def _dossier(demo_store) -> str:
    return demo_store.read("construction_permits", limit=1)["dossier_code"].iloc[0]


def test_an_inspector_records_an_inspection_with_photos_shown_on_the_permit_page(app, demo_store):
    client = signed_in(app, "insp1")
    code = _dossier(demo_store)
    r = _post(client, {"target": code, "notes": "cát đổ trên vỉa hè"},
              files=[("a.jpg", phone_jpeg(2000, 1500)), ("b.jpg", phone_jpeg(1000, 3000))])
    assert r.status_code == 303, r.get_data(as_text=True)
    [record] = demo_store.inspections(target_layer="construction_permits", target_key=code)
    assert record.inspector == "insp1" and len(record.photos) == 2
    assert [(p.width, p.height) for p in record.photos] == [(1600, 1200), (533, 1600)]
    page = client.get(f"/permits/{code}").get_data(as_text=True)
    assert record.inspection_id in page and "cát đổ trên vỉa hè" in page
    photo = client.get(f"/inspections/photos/{record.photos[0].token}.jpg")
    assert photo.status_code == 200 and photo.mimetype == "image/jpeg"
    assert Image.open(io.BytesIO(photo.get_data())).size == (1600, 1200)
    # a viewer sees it, an anonymous user gets 404 for the photo, the layer and the inspection alike
    viewer = signed_in(app, "viewer1")
    assert viewer.get(f"/inspections/photos/{record.photos[0].token}.jpg").status_code == 200
    assert record.inspection_id in viewer.get(f"/permits/{code}").get_data(as_text=True)
    anonymous = app.test_client()
    for url in (f"/inspections/photos/{record.photos[0].token}.jpg", "/inspections.geojson",
                f"/inspections/{record.inspection_id}", "/export/blds/inspections.csv"):
        assert anonymous.get(url).status_code == 404, url
    assert record.inspection_id not in anonymous.get(f"/permits/{code}").get_data(as_text=True)


@pytest.mark.parametrize("who", ["viewer1", None])
def test_viewers_and_anonymous_users_cannot_record(app, demo_store, who):
    client = signed_in(app, who) if who else app.test_client()
    r = client.get("/inspections/new")
    assert r.status_code == (403 if who else 302)
    r = client.post("/inspections", data={"inspection_type": "SITE_CHECK"})
    assert r.status_code in (400, 403, 302)
    assert demo_store.inspections() == []


@pytest.mark.parametrize(("data", "files", "reason"), [
    ({"target": "XD-NO-SUCH"}, [], "unknown permit"),
    ({"lon": "2.35", "lat": "48.85"}, [], "outside Vietnam"),
    ({"inspected_at": "2099-01-01T10:00"}, [], "in the future"),
    ({"outcome": "MAYBE"}, [], "unknown outcome"),
    ({}, [("a.jpg", b"plain text, not a photo")], "not an image"),
    ({}, [(f"{n}.jpg", b"x") for n in range(6)], "at most 5 photos"),
])
def test_bad_input_is_refused_with_the_reason_and_nothing_is_stored(app, demo_store, data, files, reason):
    client = signed_in(app, "insp1")
    valid = [("ok.jpg", phone_jpeg(400, 300))]  # a good photo before the bad one is not stored either
    r = _post(client, {"target": _dossier(demo_store), **data}, files=valid + files if files else valid)
    assert r.status_code == 400 and reason in r.get_data(as_text=True)
    assert demo_store.inspections() == []


def test_an_unpermitted_occupancy_is_a_finding_until_a_follow_up_passes(app, demo_store):
    client = signed_in(app, "insp1")
    r = _post(client, {"inspection_type": "OCCUPANCY_CHECK", "outcome": "FAILED", "width_m": "2",
                       "length_m": "3"}, files=[("sand.jpg", phone_jpeg(800, 600))])
    assert r.status_code == 303
    [seen] = demo_store.inspections()
    assert seen.unpermitted and seen.ward_code
    finding = demo_store.get("findings", f"UP-{seen.inspection_id}")
    assert finding["kind"].iloc[0] == "UNPERMITTED" and finding["overlap_area_m2"].iloc[0] == 6.0
    assert finding["ward_code"].iloc[0] == seen.ward_code and pd.isna(finding["overlap_end"].iloc[0])
    # the dashboard counts it in its ward
    board = client.get("/wards").get_data(as_text=True)
    assert f'data-testid="unpermitted-{seen.ward_code}">1<' in board
    # a full analysis keeps it
    from click.testing import CliRunner

    from gisapp.cli import cli
    result = CliRunner().invoke(cli, ["--store", demo_store.url, "analyze"])
    assert result.exit_code == 0, result.output
    assert len(demo_store.get("findings", f"UP-{seen.inspection_id}")) == 1
    # a follow-up that finds the pavement clear closes it
    r = _post(client, {"target_layer": "inspections", "target_key": seen.inspection_id,
                       "inspection_type": "FOLLOW_UP", "outcome": "PASSED"})
    assert r.status_code == 303
    closed = demo_store.get("findings", f"UP-{seen.inspection_id}")
    assert closed["overlap_end"].iloc[0].date() == dt.datetime.now(inspections.LOCAL).date()
    assert 'data-testid="total-unpermitted">0<' in client.get("/wards").get_data(as_text=True)
    layer = client.get("/inspections.geojson").get_json()
    assert {f["properties"]["inspection_id"] for f in layer["features"]} == \
        {i.inspection_id for i in demo_store.inspections()}


def test_the_blds_inspections_file_reads_back_in_pandas(app, demo_store):
    client = signed_in(app, "insp1")
    code = _dossier(demo_store)
    assert _post(client, {"target": code, "outcome": "FAILED", "notes": "=HYPERLINK(1)"},
                 files=[("a.jpg", phone_jpeg(400, 300))]).status_code == 303
    r = client.get("/export/blds/inspections.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    frame = pd.read_csv(io.BytesIO(r.get_data()), encoding="utf-8-sig", dtype=str)
    assert list(frame.columns) == ["PermitNum", "InspType", "InspTypeMapped", "Result", "ResultMapped",
                                   "InspectedDate", "InspectionNotes"]
    row = frame.iloc[0]
    assert (row.PermitNum, row.Result, row.ResultMapped) == (code, "Failed", "Rejected")
    assert row.InspectionNotes == "'=HYPERLINK(1)" and dt.date.fromisoformat(row.InspectedDate)
    text = r.get_data(as_text=True)
    assert "insp1" not in text and "photos" not in text and ".jpg" not in text


def test_an_upload_cut_off_midway_leaves_no_record(app, demo_store):
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = signed_in(app, "insp1")
        csrf = token_of(client.get("/inspections/new").get_data(as_text=True))
        cookie = client.get_cookie("session").value
        boundary = "XyZ"
        head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in {
            "csrf_token": csrf, "target": _dossier(demo_store), "inspection_type": "SITE_CHECK",
            "outcome": "PASSED", "lon": LON, "lat": LAT}.items())
        head += (f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="a.jpg"\r\n'
                 "Content-Type: image/jpeg\r\n\r\n")
        photo = phone_jpeg(1200, 900)
        body = head.encode() + photo[: len(photo) // 2]  # the connection drops halfway through the photo
        port = server.server_port
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall((f"POST /inspections HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                          f"Cookie: session={cookie}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
                          f"Content-Length: {len(body) + 500_000}\r\n\r\n").encode() + body)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(30)
            answer = sock.recv(200)
        assert not answer.startswith(b"HTTP/1.1 303")
    finally:
        server.shutdown()
    assert demo_store.inspections() == []


def test_position_and_time_rules_are_pure():
    with pytest.raises(inspections.InspectionError, match="outside Vietnam"):
        inspections.parse_position("108.2", "30.0")
    point = inspections.parse_position("108.2", "16.01")
    assert abs(point.x - 547963.562) < 0.01 and abs(point.y - 1770737.758) < 0.01
    assert inspections.parse_time("2026-01-02T10:04", NOW) == dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
    with pytest.raises(inspections.InspectionError, match="future"):
        inspections.parse_time("2026-01-02T10:06", NOW)
    area = inspections.parse_occupancy(None, "2", "3", point)
    assert area.area == pytest.approx(6.0)
    assert area.crs if hasattr(area, "crs") else STORE_CRS


# -- "here, today" ------------------------------------------------------------------------------------------

def _planted_store(store):
    """A dossier whose parcel is 2 m from the spot (547960, 1770710) and a sidewalk permit covering it in March."""
    x, y = 547960.0, 1770710.0
    works = permits(1)
    works["dossier_code"], works["status"], works["issued_on"] = "XD-HERE", "RETURNED", "2022-02-01"
    works["geometry"] = [shapely.box(x - 3, y + 2, x + 3, y + 20)]
    refused = permits(2).iloc[[1]].copy()
    refused["dossier_code"], refused["status"] = "XD-REFUSED", "REFUSED"
    refused["geometry"] = [shapely.box(x - 3, y - 20, x + 3, y - 2)]
    side = gpd.GeoDataFrame([{
        "permit_no": "VH-HERE", "ward_code": "20260", "purpose": "MATERIALS", "status": "RETURNED",
        "channel": "ONLINE", "start_on": "2022-03-01", "end_on": "2022-03-31",
        "geometry": shapely.box(x - 3, y - 1, x + 3, y + 1)}], geometry="geometry", crs=STORE_CRS)
    store.write({"construction_permits": pd.concat([works, refused]), "sidewalk_permits": side})
    point = geo.transform([shapely.Point(x, y)])[0]
    return point.x, point.y


@pytest.mark.parametrize(("day", "works", "sidewalk"), [
    ("2022-03-15", ["XD-HERE"], ["VH-HERE"]),
    ("2022-04-01", ["XD-HERE"], []),  # the sidewalk permit ended on 31 March
    ("2022-01-15", [], []),  # before the permit was issued
    ("2023-02-01", [], []),  # the works' 12 months are over
])
def test_here_lists_what_is_permitted_at_the_spot_on_the_day(store, day, works, sidewalk):
    from gisapp.analysis.here import permitted_here

    lon, lat = _planted_store(store)
    found = permitted_here(store, lon, lat, dt.date.fromisoformat(day), "en")
    assert [w["dossier_code"] for w in found["construction"]] == works  # never the refused one
    assert [s["permit_no"] for s in found["sidewalk"]] == sidewalk
    if works:
        assert found["construction"][0]["end_on"] == "2023-01-31" and found["construction"][0]["distance_m"] == 2.0
    if sidewalk:
        assert found["sidewalk"][0]["status_label"] == "Result returned" and found["sidewalk"][0]["covers"]


def test_here_endpoint_answers_json_and_refuses_bad_parameters(app):
    client = app.test_client()
    r = client.get("/data/here", query_string={"lon": LON, "lat": LAT, "day": "2022-03-15"})
    assert r.status_code == 200 and set(r.get_json()) == {"lon", "lat", "day", "construction", "sidewalk"}
    for bad, param in (({"lon": "x", "lat": LAT}, "lon"), ({"lon": 2.35, "lat": 48.85}, "lon"),
                       ({"lon": LON, "lat": LAT, "day": "15/03/2022"}, "day"),
                       ({"lon": LON, "lat": LAT, "day": "1980-01-01"}, "day"),
                       ({"lon": LON, "lat": LAT, "radius": 9}, "radius")):
        body = assert_error(client.get("/data/here", query_string=bad), 400)
        assert body["description"].startswith(f"{param}:"), body


def test_the_web_flow_on_postgis_records_and_analyze_keeps_the_finding(pg_url, demo_frames, tmp_path):
    from click.testing import CliRunner

    from gisapp.cli import cli
    from gisapp.store.postgis import PostGISStore

    frames, meta = demo_frames
    pg = PostGISStore(pg_url, must_exist=False)
    pg.write(frames, meta=meta)
    Accounts(tmp_path / "acc.sqlite").add("insp1", PASSWORD, "inspector")
    app = create_app({"STORE": pg_url, "ACCOUNTS": str(tmp_path / "acc.sqlite"), "TESTING": True})
    client = signed_in(app, "insp1")
    code = frames["construction_permits"]["dossier_code"].iloc[0]
    assert _post(client, {"target": code}, files=[("a.jpg", phone_jpeg(2400, 1800))]).status_code == 303
    assert _post(client, {"inspection_type": "OCCUPANCY_CHECK", "outcome": "FAILED", "width_m": "1.5",
                          "length_m": "4"}).status_code == 303
    assert _post(client, {"target": "XD-NO-SUCH"}).status_code == 400
    [site] = pg.inspections(target_key=code)
    assert Image.open(io.BytesIO(client.get(f"/inspections/photos/{site.photos[0].token}.jpg").get_data())).size \
        == (1600, 1200)
    [occupancy] = [i for i in pg.inspections() if i.unpermitted]
    assert len(pg.inspections()) == 2
    result = CliRunner().invoke(cli, ["--store", pg_url, "analyze"])
    assert result.exit_code == 0, result.output
    kept = pg.get("findings", f"UP-{occupancy.inspection_id}")
    assert kept["overlap_area_m2"].iloc[0] == 6.0 and kept["ward_code"].iloc[0] == occupancy.ward_code


def test_the_inspection_form_has_its_own_body_limit(demo_store, tmp_path):
    Accounts(tmp_path / "acc.sqlite").add("insp1", PASSWORD, "inspector")
    settings = {"STORE": demo_store.url, "ACCOUNTS": str(tmp_path / "acc.sqlite"), "TESTING": True}
    big = phone_jpeg(300, 200) + b"\0" * (2 * 1024 * 1024)  # 2 MB
    small_uploads = create_app({**settings, "MAX_UPLOAD_MB": 1, "INSPECTION_MAX_MB": 60})
    r = _post(signed_in(small_uploads, "insp1"), {"target": _dossier(demo_store)}, files=[("a.jpg", big)])
    assert r.status_code == 303  # the upload page's 1 MB does not apply here
    small_form = create_app({**settings, "INSPECTION_MAX_MB": 1})
    r = _post(signed_in(small_form, "insp1"), {"target": _dossier(demo_store)}, files=[("a.jpg", big)])
    assert r.status_code == 413 and "GISAPP_INSPECTION_MAX_MB" in r.get_data(as_text=True)
    assert len(demo_store.inspections()) == 1
