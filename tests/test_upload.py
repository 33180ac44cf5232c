"""The upload page: dry-run report, rejected rows, confirm, audit log, limits, roles."""

import html
import io
import re

import pytest

from gisapp.accounts import Accounts
from gisapp.web.app import create_app
from tests.helpers import PASSWORD, signed_in, staff_accounts, token_of

# every upload is checked in a child process (a second or more each)
pytestmark = pytest.mark.slow


@pytest.fixture
def app(demo_store, tmp_path):
    staff_accounts(tmp_path / "acc.sqlite", (("viewer1", "viewer"), ("officer1", "officer")))
    return create_app({"STORE": demo_store.url, "ACCOUNTS": str(tmp_path / "acc.sqlite"),
                       "UPLOADS": str(tmp_path / "uploads"), "TESTING": True, "MAX_UPLOAD_MB": 1})


@pytest.fixture
def permits_geojson(demo_store, tmp_path):
    """Three new sidewalk permits as GeoJSON in WGS84; the third ends before it starts."""
    rows = demo_store.read("sidewalk_permits", limit=3).copy()
    rows["permit_no"] = ["UP-1", "UP-2", "UP-3"]
    rows.loc[2, "end_on"] = rows.loc[2, "start_on"] - __import__("pandas").Timedelta(days=3)
    for col in ("start_on", "end_on"):
        rows[col] = rows[col].dt.strftime("%Y-%m-%d")
    path = tmp_path / "permits.geojson"
    rows.to_crs(4326).to_file(path, driver="GeoJSON")
    return path.read_bytes()


def upload(client, content, name="permits.geojson", layer="sidewalk_permits", **extra):
    page = client.get("/upload").get_data(as_text=True)
    data = {"layer": layer, "mode": "upsert", "csrf_token": token_of(page),
            "file": (io.BytesIO(content), name), **extra}
    return client.post("/upload", data=data, content_type="multipart/form-data")


def test_check_then_confirm(app, demo_store, permits_geojson):
    client = signed_in(app, "officer1")
    before = demo_store.count("sidewalk_permits")
    r = upload(client, permits_geojson)
    page = r.get_data(as_text=True)
    assert r.status_code == 200
    assert re.search(r'data-testid="read">3<', page) and re.search(r'data-testid="accepted">2<', page)
    assert re.search(r'data-testid="rejected">1<', page) and "end before start" in page
    assert demo_store.count("sidewalk_permits") == before  # a dry run changes nothing
    rejects_url = re.search(r'data-testid="rejects-link" href="([^"]+)"', page).group(1)
    csv = client.get(rejects_url)
    assert csv.status_code == 200 and csv.data.startswith(b"\xef\xbb\xbf")
    assert "UP-3" in csv.get_data(as_text=True) and "end before start" in csv.get_data(as_text=True)
    confirm = re.search(r'action="([^"]+/confirm)"', page).group(1)
    r = client.post(confirm, data={"csrf_token": token_of(page)})
    assert r.status_code == 200 and "Đã nhập dữ liệu" in r.get_data(as_text=True)
    assert demo_store.count("sidewalk_permits") == before + 2
    entry = Accounts(app.config["ACCOUNTS"]).audit_log()[0]
    assert (entry.username, entry.action, entry.layer, entry.rows) == ("officer1", "import", "sidewalk_permits", 2)
    # The token is spent: confirming again does nothing.
    assert client.post(confirm, data={"csrf_token": token_of(page)}).status_code == 400


@pytest.mark.parametrize("who, status", [(None, 302), ("viewer1", 403), ("officer1", 200)])
def test_upload_needs_the_officer_role(app, who, status):
    client = signed_in(app, who) if who else app.test_client()
    assert client.get("/upload").status_code == status


def test_upload_past_the_size_limit_says_so(app):
    client = signed_in(app, "officer1")
    r = upload(client, b"x" * (2 * 1024 * 1024), name="big.csv")
    assert r.status_code == 413
    assert "the limit is 1 MB" in r.get_data(as_text=True)


@pytest.mark.parametrize(
    "name, layer, message",
    [("evil.exe", "sidewalk_permits", "'evil.exe': chỉ nhận các tệp .csv"),
     ("permits.geojson", "findings", "không có lớp 'findings'")],
)
def test_bad_uploads_are_refused_with_a_message(app, permits_geojson, name, layer, message):
    client = signed_in(app, "officer1")
    r = upload(client, permits_geojson, name=name, layer=layer)
    assert r.status_code == 400 and message in html.unescape(r.get_data(as_text=True))


def test_upload_without_csrf_token_is_refused(app, permits_geojson):
    client = signed_in(app, "officer1")
    r = client.post("/upload", data={"layer": "sidewalk_permits", "file": (io.BytesIO(permits_geojson), "p.geojson")},
                    content_type="multipart/form-data")
    assert r.status_code == 400


def test_file_names_are_sanitised():
    from gisapp.web.uploads import safe_name

    assert safe_name("../../etc/passwd.csv") == "passwd.csv"
    assert safe_name("C:\\Users\\x\\Hồ sơ tháng 6.XLSX") == "H_s_th_ng_6.xlsx"
    assert safe_name("") == "upload"


@pytest.mark.parametrize("name", ["pending.json", "rejects.geojson"])
def test_uploads_named_like_the_bookkeeping_files_import_their_own_rows(app, demo_store, permits_geojson, name):
    client = signed_in(app, "officer1")
    before = demo_store.count("sidewalk_permits")
    page = upload(client, permits_geojson, name=name).get_data(as_text=True)
    assert re.search(r'data-testid="accepted">2<', page), page[-2000:]
    confirm = re.search(r'action="([^"]+/confirm)"', page).group(1)
    assert client.post(confirm, data={"csrf_token": token_of(page)}).status_code == 200
    assert demo_store.count("sidewalk_permits") == before + 2


def test_an_upload_folder_that_is_a_link_is_refused(demo_store, tmp_path, permits_geojson):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "old").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(elsewhere, target_is_directory=True)
    accounts = Accounts(tmp_path / "acc.sqlite")
    accounts.add("officer1", PASSWORD, "officer")
    app = create_app({"STORE": demo_store.url, "ACCOUNTS": str(tmp_path / "acc.sqlite"), "UPLOADS": str(link),
                      "TESTING": True})
    r = upload(signed_in(app, "officer1"), permits_geojson)
    assert r.status_code == 400 and "GISAPP_UPLOADS" in html.unescape(r.get_data(as_text=True))
    assert [p.name for p in elsewhere.iterdir()] == ["old"]
