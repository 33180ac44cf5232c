"""Exports of a filtered view: GeoJSON, CSV, GeoPackage, over HTTP and from the CLI."""

from __future__ import annotations

import csv
import io
import re

import numpy as np
import orjson
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from gisapp import geo, privacy, schema
from gisapp.cli import cli
from gisapp.filters import Filter
from gisapp.formats import exports as exporting
from gisapp.web.app import create_app
from tests.helpers import assert_error, check_rfc7946


@pytest.fixture
def app(demo_store):
    return create_app({"STORE": demo_store.url, "TESTING": True, "BASEMAP": "none"})


@pytest.fixture
def client(app):
    return app.test_client()


def download(client, url):
    r = client.get(url)
    assert r.status_code == 200, r.get_data(as_text=True)[:300]
    assert r.is_streamed
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    name = re.search(r'filename="([^"]+)"', disposition).group(1)
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", name)
    return r, name, r.get_data()


def ward_of(store):
    return store.read("construction_permits", limit=1)["ward_code"].iloc[0]


def test_geojson_export_of_a_filtered_view(client, demo_store):
    ward = ward_of(demo_store)
    r, name, body = download(client, f"/export/construction_permits.geojson?ward={ward}&status=PROCESSING")
    assert r.content_type == "application/geo+json"
    assert name.startswith(f"construction_permits_{ward}_") and name.endswith(".geojson")
    fc = orjson.loads(body)
    expected = demo_store.read("construction_permits", Filter(wards=(ward,), statuses=("PROCESSING",)))
    assert [f["id"] for f in fc["features"]] == expected["dossier_code"].tolist() and len(expected) > 0
    assert "crs" not in fc
    check_rfc7946(fc["features"])
    props = fc["features"][0]["properties"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", props["received_on"])
    assert "Phường" not in body.decode("utf-8") or True  # valid UTF-8 throughout


def test_every_layer_exports_in_every_format(client, demo_store):
    for layer in schema.LAYERS:
        for fmt in exporting.FORMATS:
            r, name, body = download(client, f"/export/{layer}.{fmt}")
            assert name.startswith(layer) and name.endswith(fmt)
            assert len(body) > 0


@pytest.mark.parametrize("fmt", exporting.FORMATS)
def test_empty_exports_are_valid(client, fmt, tmp_path):
    _, _, body = download(client, f"/export/construction_permits.{fmt}?q=no-such-text-anywhere")
    if fmt == "geojson":
        assert orjson.loads(body) == {"type": "FeatureCollection", "features": []}
    elif fmt == "csv":
        assert body.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
        assert len(rows) == 1 and rows[0][-3:] == ["wkt", "lon", "lat"]
    else:
        path = tmp_path / "empty.gpkg"
        path.write_bytes(body)
        info = pyogrio.read_info(path)
        assert info["features"] == 0 and info["geometry_type"] == "MultiPolygon"


def test_csv_has_bom_wkt_lon_lat_and_iso_dates(client, demo_store):
    _, name, body = download(client, "/export/construction_permits.csv?status=PROCESSING")
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    frame = demo_store.read("construction_permits", Filter(statuses=("PROCESSING",)))
    assert len(rows) == len(frame) > 0
    row = rows[0]
    assert row["wkt"].startswith("MULTIPOLYGON")
    assert 108.1 < float(row["lon"]) < 108.3 and 15.9 < float(row["lat"]) < 16.1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", row["received_on"])
    geom = shapely.from_wkt(row["wkt"])
    assert geom.contains(shapely.Point(float(row["lon"]), float(row["lat"]))) or geom.area < 1e-8
    assert any(any(ord(ch) > 127 for ch in r["site_address"] or "") for r in rows)  # Vietnamese kept


def test_csv_defuses_formulas():
    arr = exporting._defuse(__import__("pyarrow").array(["=HYPERLINK(1)", "Hòa Xuân", None, "@x"]))
    assert arr.to_pylist() == ["'=HYPERLINK(1)", "Hòa Xuân", None, "'@x"]


@pytest.mark.parametrize("crs,epsg", [("", 5899), ("4326", 4326), ("5899", 5899)])
def test_geopackage_crs(client, demo_store, tmp_path, crs, epsg):
    _, name, body = download(client, f"/export/construction_permits.gpkg?crs={crs}&status=PROCESSING")
    path = tmp_path / name
    path.write_bytes(body)
    frame = pyogrio.read_dataframe(path)
    assert frame.crs.to_epsg() == epsg
    stored = demo_store.read("construction_permits", Filter(statuses=("PROCESSING",)))
    assert frame["dossier_code"].tolist() == stored["dossier_code"].tolist()
    geoms = frame.geometry.values if epsg == 5899 else geo.transform(frame.geometry.values, "EPSG:4326", "EPSG:5899")
    assert np.max(shapely.hausdorff_distance(np.asarray(geoms), stored.geometry.values)) < 0.01


def test_personal_fields_hidden_when_the_rule_says_so(client, app):
    app.config["SHOW_PERSONAL_DATA"] = False
    _, _, body = download(client, "/export/construction_permits.csv")
    header = next(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert "owner_name" not in header and "owner_id_no" not in header
    assert privacy.visible_fields("construction_permits", False) == header[:-3]
    assert "owner_name" in privacy.visible_fields("construction_permits", True)


@pytest.mark.parametrize("url,status", [
    ("/export/construction_permits.geojson?status=DONE", 400),
    ("/export/construction_permits.geojson?bbox=1,2,3", 400),
    ("/export/construction_permits.geojson?from=2022-02-30", 400),
    ("/export/construction_permits.geojson?ward=99999", 400),
    ("/export/construction_permits.gpkg?crs=3857", 400),
    ("/export/construction_permits.csv?crs=4326", 400),
    ("/export/nope.geojson", 404),
    ("/export/construction_permits.shp", 404),
])
def test_bad_export_requests(client, url, status):
    assert_error(client.get(url), status)


def test_filename_is_descriptive_and_safe():
    import datetime as dt

    flt = Filter(wards=("20260", "20305"), date_from=dt.date(2022, 1, 1), date_to=dt.date(2022, 6, 30))
    name = exporting.filename("construction_permits", flt, "geojson", dt.date(2022, 7, 8))
    assert name == "construction_permits_20260-20305_2022-01-01_2022-06-30_2022-07-08.geojson"
    assert exporting.filename("wards", None, "gpkg", dt.date(2022, 7, 8)) == "wards_2022-07-08.gpkg"


@pytest.mark.parametrize("ext", ["geojson", "csv", "gpkg"])
def test_cli_export(demo_store, tmp_path, ext):
    out = tmp_path / f"permits.{ext}"
    ward = ward_of(demo_store)
    result = CliRunner().invoke(cli, ["--store", demo_store.url, "export", "construction_permits",
                                      "--ward", ward, "--status", "PROCESSING", "-o", str(out)])
    assert result.exit_code == 0, result.output
    expected = demo_store.count("construction_permits", Filter(wards=(ward,), statuses=("PROCESSING",)))
    assert pyogrio.read_info(out if ext != "csv" else f"CSV:{out}")["features"] == expected
    assert f"{expected} features" in result.output


def test_cli_export_rejects_bad_values(demo_store, tmp_path):
    result = CliRunner().invoke(cli, ["--store", demo_store.url, "export", "construction_permits",
                                      "--status", "DONE", "-o", str(tmp_path / "x.geojson")])
    assert result.exit_code == 2 and "status" in result.output
    result = CliRunner().invoke(cli, ["--store", demo_store.url, "export", "construction_permits",
                                      "-o", str(tmp_path / "x.shp")])
    assert result.exit_code == 2 and "format" in result.output


def test_serializer_handles_holes_orientation_missing_values_and_escapes():
    import geopandas as gpd
    import pandas as pd

    from gisapp.formats import geojson
    x, y = 547963.0, 1770737.0
    shell = [(x, y), (x + 40, y), (x + 40, y + 40), (x, y + 40)]
    geoms = [
        shapely.Polygon(shell[::-1], [[(x + 10, y + 10), (x + 20, y + 10), (x + 20, y + 20), (x + 10, y + 20)]]),
        shapely.Polygon(shell[::-1]),  # clockwise exterior
        shapely.MultiPolygon([shapely.box(x, y, x + 5, y + 5), shapely.box(x + 10, y, x + 15, y + 5)]),
        None,
    ]
    frame = gpd.GeoDataFrame({
        "dossier_code": ["A", "B", "C", "D"],
        "site_address": ['say "hi"\\', "Hòa Xuân", None, "line\nbreak"],
        "plot_area_m2": [1.5, float("nan"), 12.0, None],
        "floors": pd.array([1, None, 3, 4], dtype="Int64"),
        "received_on": pd.to_datetime(["2022-01-03", None, "2022-02-01", "2022-03-01"]),
    }, geometry=geoms, crs=schema.STORE_CRS)
    fields = ["site_address", "plot_area_m2", "floors", "received_on"]
    for rows in (frame, frame.iloc[:2]):  # mixed types, and Polygons only
        feats = orjson.loads(geojson.dumps_collection(rows, schema.CONSTRUCTION_PERMITS, fields))["features"]
        check_rfc7946([f for f in feats if f["geometry"]])
        reference = shapely.to_geojson(geojson.web_geometries(rows.geometry.values))
        for feat, ref in zip(feats, reference):
            assert feat["geometry"] == (None if ref is None else orjson.loads(ref))
    feats = orjson.loads(geojson.dumps_collection(frame, schema.CONSTRUCTION_PERMITS, fields))["features"]
    assert [f["properties"]["site_address"] for f in feats] == ['say "hi"\\', "Hòa Xuân", None, "line\nbreak"]
    assert [f["properties"]["plot_area_m2"] for f in feats] == [1.5, None, 12.0, None]
    assert [f["properties"]["floors"] for f in feats] == [1, None, 3, 4]
    assert [f["properties"]["received_on"] for f in feats] == ["2022-01-03", None, "2022-02-01", "2022-03-01"]
    assert feats[0]["geometry"]["type"] == "Polygon" and len(feats[0]["geometry"]["coordinates"]) == 2
    assert feats[2]["geometry"]["type"] == "MultiPolygon" and feats[3]["geometry"] is None


# -- GeoJSON served as stored ---------------------------------------------------------

def _export(store, layer, flt, fields) -> bytes:
    """The GeoJSON export of ``layer`` as one text."""
    return b"".join(exporting.geojson_chunks(store, layer, flt, fields))


@pytest.mark.parametrize("backend", ["gpkg", "postgis"])
def test_geojson_export_serves_the_stored_geometry_text(backend, tmp_path, request):
    """Like API pages, the export writes each row's stored GeoJSON text, not one computed again."""
    from tests.helpers import permits
    from tests.stores import new_store

    store = new_store(backend, tmp_path, request)
    store.write({"construction_permits": permits(12)}, meta={"as_of": "2022-07-08"})
    page = store.page("construction_permits", fields=["status"], limit=100)
    stored = {r[0]: r[-1] for r in page.rows}
    marker = stored["XD-0002"].replace('"MultiPolygon"', '"MultiPolygon" ')  # same shape, other bytes
    _set_stored_geojson(store, "XD-0002", marker)
    body = _export(store, "construction_permits", None, ["dossier_code", "status"])
    assert b'"geometry":' + marker.encode() + b',"properties"' in body
    for key, text in stored.items():
        if key != "XD-0002":
            assert b'"id":"' + key.encode() + b'","geometry":' + text.encode() + b',"properties"' in body


def _set_stored_geojson(store, key: str, text: str | None) -> None:
    import sqlite3

    from gisapp.store.base import GEOJSON_COLUMN
    from gisapp.store.gpkg import GeoPackageStore

    if isinstance(store, GeoPackageStore):
        with sqlite3.connect(store.path) as con:
            for name in ("ST_IsEmpty", "ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY"):  # named by GDAL's R-tree triggers
                con.create_function(name, 1, lambda geom: None)  # (which do not run: the geometry is unchanged)
            con.execute(f"UPDATE construction_permits SET {GEOJSON_COLUMN} = ? WHERE dossier_code = ?", [text, key])
    else:
        with store.connection() as con:
            con.execute(f"UPDATE construction_permits SET {GEOJSON_COLUMN} = %s WHERE dossier_code = %s", [text, key])


def test_export_geojson_equals_the_api_features(client, demo_store):
    """The same filter gives the same features, byte for byte in the geometry, from the export and the API."""
    ward = ward_of(demo_store)
    _, _, body = download(client, f"/export/construction_permits.geojson?ward={ward}&status=PROCESSING")
    r = client.get(f"/api/collections/construction_permits/items?ward_code={ward}&status=PROCESSING&limit=10000")
    assert r.status_code == 200
    exported, served = orjson.loads(body)["features"], orjson.loads(r.get_data())["features"]
    assert [f["id"] for f in exported] == [f["id"] for f in served] and len(served) > 3
    for a, b in zip(exported, served, strict=True):
        assert a["geometry"] == b["geometry"]
        assert a["properties"] == {k: v for k, v in b["properties"].items() if k in a["properties"]}
    geometries = re.findall(rb'"geometry":(\{.*?\}),"properties"', r.get_data())
    assert len(geometries) == len(served) and all(g in body for g in geometries)


def test_geopackage_written_without_stored_geojson_is_filled_on_opening(tmp_path):
    """A store file from before the GeoJSON column: opened once, it gets the column, as a fresh write has it."""
    import sqlite3

    from gisapp.store.base import GEOJSON_COLUMN
    from gisapp.store.gpkg import GeoPackageStore
    from tests.helpers import permits

    fresh_path, old_path = tmp_path / "fresh.gpkg", tmp_path / "old.gpkg"
    frames = {"construction_permits": permits(30)}
    GeoPackageStore(fresh_path, must_exist=False).write(frames, meta={"as_of": "2022-07-08"})
    GeoPackageStore(old_path, must_exist=False).write(frames, meta={"as_of": "2022-07-08"})
    with sqlite3.connect(old_path) as con:
        for layer in schema.LAYERS:
            con.execute(f'ALTER TABLE "{layer}" DROP COLUMN {GEOJSON_COLUMN}')
    fields = privacy.visible_fields(schema.CONSTRUCTION_PERMITS, False)
    flt = Filter(statuses=("PROCESSING", "RETURNED"))
    fresh, old = GeoPackageStore(fresh_path), GeoPackageStore(old_path)  # opening fills the column
    with sqlite3.connect(old_path) as con:
        columns = {r[1]: r[3] for r in con.execute("PRAGMA table_info(construction_permits)")}
    assert columns[GEOJSON_COLUMN] == 1  # NOT NULL
    for store in (fresh, old):
        assert store.meta() == {"as_of": "2022-07-08"} and store.count("construction_permits") == 30
    assert _export(old, "construction_permits", flt, fields) == _export(fresh, "construction_permits", flt, fields)
    assert old.page("construction_permits", flt, fields=fields, limit=100) == \
        fresh.page("construction_permits", flt, fields=fields, limit=100)
    signature = old.version()
    GeoPackageStore(old_path)  # once: the next opening finds nothing to do
    assert old.version() == signature


def test_geopackage_that_cannot_be_brought_up_to_date_says_so(tmp_path):
    import sqlite3

    from gisapp.store import StoreError
    from gisapp.store.base import GEOJSON_COLUMN
    from gisapp.store.gpkg import GeoPackageStore
    from tests.helpers import permits

    path = tmp_path / "old.gpkg"
    GeoPackageStore(path, must_exist=False).write({"construction_permits": permits(3)})
    with sqlite3.connect(path) as con:
        con.execute(f"ALTER TABLE construction_permits DROP COLUMN {GEOJSON_COLUMN}")
    (tmp_path / ".old.gpkg.lock").unlink()
    (tmp_path / ".old.gpkg.lock").mkdir()  # the writers' lock cannot be taken (as in a read-only folder)
    with pytest.raises(StoreError, match=r"old.gpkg was written by an older gisapp \(layers construction_permits "
                                         r"lack the stored GeoJSON\) and could not be brought up to date: .*"
                                         r"open it once with write access"):
        GeoPackageStore(path)
