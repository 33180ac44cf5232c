"""Importing an office's files: real Shapefile, GeoPackage, GeoJSON, XLSX and CSV files
written by the tests, every row accepted or rejected with its reason, re-imports that
change nothing, atomic writes and coordinates checked against pyproj and DESIGN.md."""

import csv
import datetime as dt
import json
import os
import unicodedata

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

import gisapp.store.gpkg as gpkg_module
from gisapp import domain, schema
from gisapp.accounts import Accounts
from gisapp.cli import cli
from gisapp.importing.prepare import (
    BAD_DATE,
    BAD_NUMBER,
    DUPLICATE,
    END_BEFORE_START,
    GEOMETRY_EMPTY,
    INVALID_GEOMETRY,
    MISSING,
    NO_PARCEL,
    NOT_POLYGON,
    OUTSIDE_WARDS,
    REASONS,
    UNKNOWN_CODE,
    ImportFailure,
    check_geometries,
    prepare_import,
    rejects_path,
    run_import,
)
from gisapp.importing.read import read_source, read_xlsx
from gisapp.importing.values import (
    WardRecords,
    field_aliases,
    key,
    known_header_keys,
    match_columns,
    parse_codes,
    parse_dates,
    parse_numbers,
    resolve_wards,
)
from gisapp.store.gpkg import GeoPackageStore
from tests.import_samples import (
    CAL,
    HEADERS,
    HOA_AN,
    HOA_PHAT,
    TO_VN2000,
    TO_WGS84,
    WARDS,
    dossier,
    lot,
    parcels_frame,
    read_count,
    write_csv,
    write_xlsx,
)


@pytest.fixture
def store(tmp_path):
    s = GeoPackageStore(tmp_path / "store.gpkg", must_exist=False)
    s.write({"wards": WARDS})
    return s


@pytest.fixture
def parcels_shp(tmp_path):
    path = tmp_path / "parcels" / "thua_dat.shp"
    path.parent.mkdir()
    pyogrio.write_dataframe(parcels_frame(), path, encoding="UTF-8")
    return path




def test_headers_match_without_case_accents_or_punctuation():
    aliases = field_aliases(schema.CONSTRUCTION_PERMITS)
    found = match_columns(["STT", "MÃ HỒ SƠ", "ngay tiep nhan", "map_sheet_", "Thửa đất số", "Tinh trang",
                           "Loại thủ tục", "Diện tích thửa (m²)"], aliases)
    assert found.columns == {"dossier_code": "MÃ HỒ SƠ", "received_on": "ngay tiep nhan",
                             "map_sheet_no": "map_sheet_", "parcel_no": "Thửa đất số", "status": "Tinh trang",
                             "procedure": "Loại thủ tục", "plot_area_m2": "Diện tích thửa (m²)"}
    assert found.unused == ("STT",)


@pytest.mark.parametrize("layer", schema.LAYERS.values(), ids=lambda lay: lay.name)
def test_no_header_means_two_fields(layer):
    seen = {}
    for name, pairs in field_aliases(layer).items():
        for _, k in pairs:
            assert seen.setdefault(k, name) == name, f"{k!r} names both {seen[k]} and {name}"


def test_every_shapefile_truncation_is_recognised():
    for layer in (schema.WARDS, schema.CONSTRUCTION_PERMITS, schema.SIDEWALK_PERMITS):
        names = [f.name[:10] for f in layer.fields]
        assert match_columns(names, field_aliases(layer)).columns == {f.name: f.name[:10] for f in layer.fields}


def test_code_sets_have_no_ambiguous_labels():
    for name, codes in domain.CODE_SETS.items():
        for code, entry in codes.items():
            parsed, bad = parse_codes(pd.Series([code, entry.vi, entry.en, entry.vi.upper(), key(entry.vi)]), name)
            assert not bad.any() and set(parsed) == {code}, (name, code)


def test_dates_in_every_office_shape():
    values = pd.Series(["2022-01-15", "15/01/2022", "5/1/2022", "15-01-2022", "15.01.2022 08:30",
                        dt.datetime(2022, 1, 15, 9, 0), dt.date(2022, 1, 15), 44576, None, "", "31/02/2022",
                        "tháng 1"], dtype=object)
    parsed, bad = parse_dates(values)
    assert [d.date().isoformat() if not pd.isna(d) else None for d in parsed] == [
        "2022-01-15", "2022-01-15", "2022-01-05", "2022-01-15", "2022-01-15", "2022-01-15", "2022-01-15",
        "2022-01-15", None, None, None, None]
    assert bad.tolist() == [False] * 10 + [True, True]


def test_numbers_with_decimal_commas_and_units():
    parsed, bad = parse_numbers(pd.Series(["80,5", "1.200,5", "120 m²", "3", 4, "ba", None], dtype=object))
    assert parsed.tolist()[:5] == [80.5, 1200.5, 120.0, 3.0, 4.0]
    assert bad.tolist() == [False] * 5 + [True, False]


def test_wards_by_code_or_name_at_the_rows_date():
    index = WardRecords.from_frame(schema.coerce(schema.WARDS, WARDS))
    values = pd.Series(["20305", 20306, "Hòa Phát", "PHƯỜNG HÒA AN", "P. Hoa Phat", "An Khê", "Hải Châu", None],
                       dtype=object)
    dates = np.array(["2022-01-01"] * 5 + ["2025-08-01"] * 3, dtype="datetime64[ms]")
    refs = resolve_wards(values, index, dates)
    assert refs.codes.tolist() == ["20305", "20306", "20305", "20306", "20305", "99001", None, None]
    assert refs.unresolved.tolist() == [False] * 6 + [True, False]


def test_geometry_repair_is_limited_to_one_percent():
    inverted_hole = shapely.Polygon([(0, 0), (10, 0), (10, 10), (5, 10), (7, 7), (3, 7), (5, 10), (0, 10)])
    bowtie = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    check = check_geometries(np.array([shapely.box(0, 0, 1, 1), inverted_hole, bowtie, None,
                                       shapely.Point(1, 1)], dtype=object))
    assert check.repaired.tolist() == [False, True, False, False, False]
    assert check.beyond_repair.tolist() == [False, False, True, False, False]
    assert check.empty.tolist() == [False, False, False, True, False]
    assert check.not_polygon.tolist() == [False, False, False, False, True]
    assert check.geoms[1].is_valid and abs(check.geoms[1].area - inverted_hole.area) < 1e-9


# -- files -------------------------------------------------------------------


def test_shapefile_in_vn2000_with_truncated_names(tmp_path, store):
    rows = []
    for i in range(4):
        rows.append({"dossier_co": f"XD-{i}", "permit_no": f"{i}/GPXD", "ward_code": "20305",
                     "status": "Đang xử lý", "procedure": "Cấp mới", "work_categ": "Nhà ở riêng lẻ",
                     "channel": "Trực tuyến", "received_o": "2022-03-01", "completed_": None,
                     "map_sheet_": "12", "parcel_no": str(i), "floor_area": 120.5, "floors": 3,
                     "geometry": lot(HOA_PHAT, i)})
    path = tmp_path / "gpxd.shp"
    pyogrio.write_dataframe(gpd.GeoDataFrame(rows, crs="EPSG:5899"), path, encoding="UTF-8")
    assert path.with_suffix(".prj").exists()
    report = read_count(run_import(store, "construction_permits", path, calendar=CAL))
    assert (report.read, report.accepted) == (4, 4)
    assert {"dossier_code": "dossier_co", "work_category": "work_categ", "received_on": "received_o",
            "map_sheet_no": "map_sheet_", "floor_area_m2": "floor_area"}.items() <= report.columns.items()
    stored = store.read("construction_permits")
    assert stored["dossier_code"].tolist() == ["XD-0", "XD-1", "XD-2", "XD-3"]
    assert stored["status"].unique().tolist() == ["PROCESSING"] and stored["floors"].tolist() == [3] * 4
    # 2022-03-01 + 15 working days
    assert stored["due_on"].iloc[0] == pd.Timestamp("2022-03-22")
    assert shapely.equals(stored.geometry.iloc[1], lot(HOA_PHAT, 1))


def test_a_parcel_lands_within_5_cm_from_a_wgs84_geopackage(tmp_path, store):
    lon, lat = 108.20, 16.01
    e, n = TO_VN2000.transform(lon, lat)
    assert abs(e - 547963.562) < 0.01 and abs(n - 1770737.758) < 0.01  # DESIGN.md's test point
    corners = [(547960.0, 1770730.0), (547975.0, 1770730.0), (547975.0, 1770750.0), (547960.0, 1770750.0)]
    wgs84 = [tuple(round(v, 8) for v in TO_WGS84.transform(x, y)) for x, y in corners]
    frame = gpd.GeoDataFrame([{
        "dossier_code": "XD-WGS84", "ward_code": "20305", "status": "RECEIVED", "procedure": "NEW_BUILD",
        "work_category": "HOUSE", "channel": "ONLINE", "received_on": dt.date(2022, 5, 4),
        "geometry": shapely.Polygon(wgs84)}], crs="EPSG:4326")
    path = tmp_path / "dossiers.gpkg"
    pyogrio.write_dataframe(frame, path, layer="ho_so")
    report = read_count(run_import(store, "construction_permits", path, calendar=CAL))
    assert report.accepted == 1 and "EPSG:4326" in report.detail
    stored = store.get("construction_permits", "XD-WGS84").geometry.iloc[0]
    got = shapely.get_coordinates(stored)[:-1]
    for x, y in corners:
        assert np.hypot(got[:, 0] - x, got[:, 1] - y).min() < 0.05


def test_geojson_of_sidewalk_permits(tmp_path, store):
    rows = [{"permit_no": f"VH-{i}", "purpose": ["Tập kết vật liệu xây dựng", "kinh doanh"][i % 2],
             "status": "Đã trả kết quả", "start_on": "2022-04-01", "end_on": "15/04/2022",
             "sidewalk_width_m": "4", "used_width_m": "1,5", "used_area_m2": 999,
             "geometry": shapely.box(547100 + 10 * i, 1770100, 547105 + 10 * i, 1770101.5)} for i in range(3)]
    path = tmp_path / "via_he.geojson"
    gpd.GeoDataFrame(rows, crs="EPSG:5899").to_crs("EPSG:4326").to_file(path, driver="GeoJSON")
    report = read_count(run_import(store, "sidewalk_permits", path, calendar=CAL))
    assert report.accepted == 3
    stored = store.read("sidewalk_permits")
    assert stored["ward_code"].tolist() == ["20305"] * 3  # derived from the geometry
    assert stored["purpose"].tolist() == ["MATERIALS", "BUSINESS", "MATERIALS"]
    assert stored["used_width_m"].tolist() == [1.5] * 3
    assert stored["used_area_m2"].tolist() == pytest.approx([7.5] * 3, abs=0.01)  # from the geometry
    assert stored["end_on"].iloc[0] == pd.Timestamp("2022-04-15")


def test_xlsx_with_vietnamese_headers_joined_to_parcels(tmp_path, store, parcels_shp):
    rows = [dossier(i) for i in range(1, 9)]
    path = write_xlsx(tmp_path / "ho_so.xlsx", rows, real_dates=("Ngày tiếp nhận",))
    rows2 = [dossier(i) for i in range(9, 11)]
    book = openpyxl.load_workbook(path)
    book.create_sheet("Tháng 2").append(HEADERS)
    for r in rows2:
        book["Tháng 2"].append([r[h] for h in HEADERS])
    book.save(path)
    report = read_count(run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL))
    assert (report.read, report.accepted, report.rejected) == (8, 8, 0), report.rejects
    typed = schema.coerce(schema.CONSTRUCTION_PERMITS, report.frame)  # typed as the store types its reads
    pd.testing.assert_frame_equal(pd.DataFrame(typed), pd.DataFrame(report.frame))
    assert "sheet 'Danh sách', header on row 2" in report.detail
    stored = store.read("construction_permits").set_index("dossier_code")
    first = stored.loc["000.00.18.H17-220101-0001"]
    assert first["ward_code"] == "20305" and first["received_on"] == pd.Timestamp("2022-01-04")
    assert first["channel"] == "ONLINE" and first["status"] == "PROCESSING" and first["footprint_m2"] == 80.5
    assert first["owner_name"] == "Nguyễn Văn 1" and first["map_sheet_no"] == "12" and first["parcel_no"] == "2"
    assert shapely.equals(first.geometry, lot(HOA_PHAT, 2))
    second = stored.loc["000.00.18.H17-220102-0001"]
    assert second["ward_code"] == "20306" and shapely.equals(second.geometry, lot(HOA_AN, 3))
    assert stored.loc["000.00.18.H17-220103-0001", "status"] == "RETURNED"
    sheet2 = read_count(run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL,
                                   sheet="thang 2", dry_run=True))
    assert sheet2.accepted == 2 and "Tháng 2" in sheet2.detail


def test_gdal_and_openpyxl_read_a_workbook_alike(tmp_path, store, parcels_shp):
    path = write_xlsx(tmp_path / "ho_so.xlsx", [dossier(i) for i in range(1, 6)], real_dates=("Ngày tiếp nhận",))
    book = openpyxl.load_workbook(path)
    second = book.create_sheet("Tháng 2")  # GDAL takes a second sheet's first row as field names
    second.append(HEADERS)
    second.append([])
    for i in (6, 7):
        second.append([dossier(i)[h] for h in HEADERS])
    book.save(path)
    keys = known_header_keys(field_aliases(schema.CONSTRUCTION_PERMITS))
    wards = store.read("wards")
    for sheet, rows in ((None, [3, 4, 5, 6, 7]), ("Tháng 2", [3, 4])):
        gdal = read_xlsx(path, sheet=sheet, header_keys=keys)
        slow = read_xlsx(path, sheet=sheet, header_keys=keys, engine="openpyxl")
        assert gdal.rows.tolist() == slow.rows.tolist() == rows
        assert list(gdal.frame.columns) == list(slow.frame.columns) == HEADERS
        assert gdal.detail == slow.detail
        parcels = read_source(parcels_shp)
        a, b = (prepare_import("construction_permits", src, calendar=CAL, parcels=parcels, wards=wards)
                for src in (gdal, slow))
        assert a.accepted == len(rows) and a.rejected == 0
        pd.testing.assert_frame_equal(pd.DataFrame(a.frame), pd.DataFrame(b.frame))


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "cp1258"])
def test_csv_encodings(tmp_path, store, parcels_shp, encoding):
    rows = [dossier(i) for i in range(1, 6)]
    path = write_csv(tmp_path / f"ho_so_{encoding}.csv", rows, encoding=encoding)
    if encoding == "cp1258":
        raw = path.read_bytes()
        assert "Ho\u0300a Pha\u0301t".encode("cp1258") in raw  # decomposed tone marks, as Windows writes
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    report = read_count(run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL))
    assert report.accepted == 5, report.rejects.to_dict("records")
    assert report.columns["ward_code"] == "Phường" and report.columns["received_on"] == "Ngày tiếp nhận"
    stored = store.read("construction_permits")
    assert sorted(stored["ward_code"]) == ["20305", "20305", "20305", "20306", "20306"]
    assert set(stored["owner_name"]) == {f"Nguyễn Văn {i}" for i in range(1, 6)}
    assert all(unicodedata.is_normalized("NFC", v) for v in stored["site_address"])


@pytest.mark.parametrize("kind", ["json", "toml"])
def test_mapping_file(tmp_path, store, parcels_shp, kind):
    headers = ["Ma so", "Tinh trang HS", "Ngay nhan", "Kenh", "Loai TT", "Loai CT", "P", "To", "Thua", "Ghi chu"]
    rows = [dict(zip(headers, [f"HS-{i}", "Đang xử lý", "05/01/2022", "Trực tuyến", "Cấp mới", "Nhà ở riêng lẻ",
                               "20305", "12", str(i), "x"])) for i in range(1, 4)]
    path = write_csv(tmp_path / "odd.csv", rows, headers=headers)
    mapping = {"Ma so": "dossier_code", "Tinh trang HS": "status", "Ngay nhan": "received_on", "Kenh": "channel",
               "Loai TT": "procedure", "Loai CT": "work_category", "P": "ward_code", "To": "map_sheet_no",
               "Thua": "parcel_no", "Ghi chu": ""}
    if kind == "json":
        mfile = tmp_path / "mapping.json"
        mfile.write_text(json.dumps(mapping, ensure_ascii=False), encoding="utf-8")
    else:
        mfile = tmp_path / "mapping.toml"
        mfile.write_text("[columns]\n" + "".join(f'"{k}" = "{v}"\n' for k, v in mapping.items()), encoding="utf-8")
    without = run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL, dry_run=True)
    assert without.accepted == 0 and any("no column for required" in w for w in without.warnings)
    report = read_count(run_import(store, "construction_permits", path, parcels=parcels_shp, mapping=mfile,
                                   calendar=CAL))
    assert report.accepted == 3 and report.columns["status"] == "Tinh trang HS"
    with pytest.raises(ImportFailure, match="'stat' not a field"):
        run_import(store, "construction_permits", path, parcels=parcels_shp, mapping={"Tinh trang HS": "stat"},
                   calendar=CAL)


def test_wards_import_into_a_new_store(tmp_path):
    path = tmp_path / "wards.gpkg"
    frame = WARDS.drop(columns="ward_key").rename(columns={"ward_code": "Mã phường", "name": "Tên phường"})
    pyogrio.write_dataframe(frame, path)
    store = GeoPackageStore(tmp_path / "new" / "office.gpkg", must_exist=False)
    report = read_count(run_import(store, "wards", path, calendar=CAL))
    assert report.accepted == 3 and report.written
    stored = store.read("wards")
    assert stored["ward_key"].tolist() == ["20305-2008-04-01", "20306-2008-04-01", "99001-2025-07-01"]
    assert store.count("construction_permits") == 0


# -- bad rows: one per reason ------------------------------------------------


def bad_vector(tmp_path, geometry, **changes):
    """A GeoJSON of two sidewalk permits: a good one and one with ``geometry`` and ``changes``."""
    good = {"permit_no": "VH-1", "purpose": "MATERIALS", "status": "RECEIVED", "start_on": "2022-04-01",
            "end_on": "2022-04-10", "sidewalk_width_m": 4.0, "used_width_m": 1.5,
            "geometry": shapely.box(547100, 1770100, 547110, 1770101.5)}
    bad = {**good, "permit_no": "VH-2", "geometry": geometry, **changes}
    path = tmp_path / "bad.geojson"
    gpd.GeoDataFrame([good, bad], geometry="geometry", crs="EPSG:5899").to_file(path, driver="GeoJSON")
    return path


OUTSIDE = shapely.box(555000, 1775000, 555010, 1775002)
BOWTIE = shapely.Polygon([(547100, 1770100), (547110, 1770110), (547110, 1770100), (547100, 1770110)])

BAD_ROWS = [
    # (reason, table changes to one dossier | None, vector (geometry, changes) | None)
    (MISSING, {"Trạng thái": ""}, None),
    (MISSING, None, (shapely.box(547100, 1770200, 547110, 1770201), {"used_width_m": None})),
    (UNKNOWN_CODE, {"Trạng thái": "Đang chờ ký"}, None),
    (UNKNOWN_CODE, {"Hình thức nộp": "Fax"}, None),
    (UNKNOWN_CODE, None, (shapely.box(547100, 1770200, 547110, 1770201), {"purpose": "Đỗ máy bay"})),
    (BAD_DATE, {"Ngày tiếp nhận": "31/02/2022"}, None),
    (BAD_DATE, {"Ngày trả kết quả": "sắp có"}, None),
    (BAD_NUMBER, {"Số tầng": "ba"}, None),
    (BAD_NUMBER, {"Số tầng": "2,5"}, None),
    (END_BEFORE_START, {"Ngày trả kết quả": "01/01/2022"}, None),
    (END_BEFORE_START, None, (shapely.box(547100, 1770200, 547110, 1770201), {"end_on": "2022-03-01"})),
    (DUPLICATE, {"Mã hồ sơ": "000.00.18.H17-220101-0001"}, None),
    (NO_PARCEL, {"Thửa đất số": "99"}, None),
    (NO_PARCEL, {"Tờ bản đồ số": ""}, None),
    (NO_PARCEL, {"Phường": "", "Thửa đất số": "3"}, None),  # sheet 12 parcel 3 is in both wards
    (GEOMETRY_EMPTY, None, (None, {})),
    (NOT_POLYGON, None, (shapely.LineString([(547100, 1770200), (547110, 1770200)]), {})),
    (NOT_POLYGON, None, (shapely.Point(547100, 1770200), {})),
    (INVALID_GEOMETRY, None, (BOWTIE, {})),
    (OUTSIDE_WARDS, None, (OUTSIDE, {})),
]


@pytest.mark.parametrize("reason, table, vector", BAD_ROWS,
                         ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(BAD_ROWS)])
def test_each_bad_row_is_rejected_with_its_reason(tmp_path, store, parcels_shp, reason, table, vector):
    if table is not None:
        rows = [dossier(1), dossier(2, **table)]
        path = write_csv(tmp_path / "ho_so.csv", rows)
        report = read_count(run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL))
        expected_rows = [3]
        if reason == DUPLICATE:
            expected_rows = [2, 3]  # every copy: which one is right is for the office to say
    else:
        geometry, changes = vector
        path = bad_vector(tmp_path, geometry, **changes)
        report = read_count(run_import(store, "sidewalk_permits", path, calendar=CAL))
        expected_rows = [2]
    assert report.read == 2
    assert report.rejects["row"].tolist() == expected_rows
    assert set(report.rejects["reason"]) == {reason}
    assert report.rejected_by_reason == {reason: len(expected_rows)}
    assert report.rejects["detail"].str.len().min() > 0
    assert reason in REASONS


def test_repaired_polygon_is_accepted_and_counted(tmp_path, store):
    x, y = 547100, 1770200
    inverted_hole = shapely.Polygon([(x, y), (x + 10, y), (x + 10, y + 10), (x + 5, y + 10), (x + 7, y + 7),
                                     (x + 3, y + 7), (x + 5, y + 10), (x, y + 10)])
    report = read_count(run_import(store, "sidewalk_permits", bad_vector(tmp_path, inverted_hole), calendar=CAL))
    assert (report.accepted, report.repaired, report.rejected) == (2, 1, 0)
    assert store.get("sidewalk_permits", "VH-2").geometry.iloc[0].is_valid


def test_rejects_keep_the_original_columns(tmp_path, store, parcels_shp):
    rows = [dossier(1), dossier(2, **{"Trạng thái": "???"}), dossier(3, **{"Thửa đất số": "77"})]
    path = write_xlsx(tmp_path / "ho_so.xlsx", rows)
    report = read_count(run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL))
    assert list(report.rejects.columns) == HEADERS + ["row", "reason", "detail"]
    assert report.rejects["row"].tolist() == [4, 5]  # spreadsheet rows: title, header, then data
    assert report.rejects["Trạng thái"].tolist() == ["???", "đã trả kết quả"]
    assert "'???'" in report.rejects["detail"].iloc[0]


# -- wards: derived, flagged, in force at the date ----------------------------


def test_ward_derived_flagged_and_dated(tmp_path, store, parcels_shp):
    rows = [dossier(1, **{"Phường": ""}, **{"Thửa đất số": "1"}),  # only Hòa Phát... no: both wards have 1
            dossier(3, **{"Phường": "Hòa Phát"})]
    rows[0]["Thửa đất số"] = "5"
    shp_rows = []
    for i, (geom, ward) in enumerate([(lot(HOA_PHAT, 7), None), (lot(HOA_PHAT, 8), "20306"),
                                      (lot(HOA_AN, 7), None), (lot(HOA_PHAT, 9), "Ba Đình")]):
        shp_rows.append({"dossier_co": f"XD-{i}", "ward_code": ward, "status": "NEW", "procedure": "NEW_BUILD",
                         "work_categ": "HOUSE", "channel": "POST",
                         "received_o": "2025-08-01" if i == 2 else "2022-02-01", "geometry": geom})
    path = tmp_path / "w.shp"
    pyogrio.write_dataframe(gpd.GeoDataFrame(shp_rows, crs="EPSG:5899"), path, encoding="UTF-8")
    report = read_count(run_import(store, "construction_permits", path, calendar=CAL))
    assert report.accepted == 4
    wards = report.frame.set_index("dossier_code")["ward_code"].to_dict()
    assert wards == {"XD-0": "20305", "XD-1": "20306", "XD-2": "99001", "XD-3": "20305"}
    assert report.ward_mismatches[["row", "declared", "derived"]].values.tolist() == [[2, "20306", "20305"]]
    assert any("kept as declared" in w for w in report.warnings)
    assert any("'Ba Đình'" in w for w in report.warnings)


def test_store_without_wards_imports_declared_codes_and_says_so(tmp_path):
    store = GeoPackageStore(tmp_path / "bare.gpkg", must_exist=False)
    path = bad_vector(tmp_path, shapely.box(547100, 1770200, 547110, 1770201), ward_code="20305")
    report = read_count(run_import(store, "sidewalk_permits", path, calendar=CAL))
    assert (report.accepted, report.rejected) == (1, 1)
    assert report.rejected_by_reason == {MISSING: 1}  # VH-1 has no ward and none can be derived
    assert any("the store has no wards" in w for w in report.warnings)


# -- store behaviour -----------------------------------------------------------


def test_reimport_changes_nothing(tmp_path, store, parcels_shp):
    path = write_xlsx(tmp_path / "ho_so.xlsx", [dossier(i) for i in range(1, 8)], real_dates=("Ngày tiếp nhận",))
    first = run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL)
    assert first.written and first.changes == {"new": 7, "updated": 0, "unchanged": 0, "removed": 0}
    before = store.read("construction_permits")
    data = store.path.read_bytes()
    again = run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL)
    assert not again.written and again.changes == {"new": 0, "updated": 0, "unchanged": 7, "removed": 0}
    assert store.path.read_bytes() == data
    # even when forced through the store's upsert, the content stays the same
    store.write({"construction_permits": again.frame}, mode="upsert")
    pd.testing.assert_frame_equal(pd.DataFrame(store.read("construction_permits")), pd.DataFrame(before))


def test_upsert_updates_and_replace_removes(tmp_path, store, parcels_shp):
    run_import(store, "construction_permits", write_csv(tmp_path / "a.csv", [dossier(i) for i in range(1, 6)]),
               parcels=parcels_shp, calendar=CAL)
    changed = [dossier(1, **{"Trạng thái": "Từ chối cấp phép"}), dossier(9)]
    path = write_csv(tmp_path / "b.csv", changed)
    report = run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL)
    assert report.changes == {"new": 1, "updated": 1, "unchanged": 0, "removed": 0}
    assert store.count("construction_permits") == 6
    assert store.get("construction_permits", "000.00.18.H17-220101-0001")["status"].iloc[0] == "REFUSED"
    dry = run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL, mode="replace",
                     dry_run=True)
    assert dry.changes["removed"] == 4 and not dry.written and store.count("construction_permits") == 6
    run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL, mode="replace")
    assert store.count("construction_permits") == 2


@pytest.mark.parametrize("target", ["_write_meta", "_finish"])
def test_failure_mid_write_leaves_the_store_unchanged(tmp_path, store, parcels_shp, monkeypatch, target):
    run_import(store, "construction_permits", write_csv(tmp_path / "a.csv", [dossier(1)]), parcels=parcels_shp,
               calendar=CAL)
    data = store.path.read_bytes()
    before = store.read("construction_permits")

    def boom(*args, **kwargs):
        raise RuntimeError("disk unplugged")

    monkeypatch.setattr(gpkg_module, target, boom)
    monkeypatch.setattr(gpkg_module, "IN_PLACE_ROWS", 0)  # the copy's path (a small upsert is written in place)
    path = write_csv(tmp_path / "b.csv", [dossier(i) for i in range(2, 6)])
    with pytest.raises(RuntimeError, match="disk unplugged"):
        run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL)
    monkeypatch.undo()
    assert store.path.read_bytes() == data
    reopened = GeoPackageStore(store.path)
    pd.testing.assert_frame_equal(pd.DataFrame(reopened.read("construction_permits")), pd.DataFrame(before))
    assert not [p for p in store.path.parent.iterdir() if p.name.endswith(".tmp.gpkg")]


def test_failure_mid_write_in_place_leaves_the_store_unchanged(tmp_path, store, parcels_shp, monkeypatch):
    """A small upsert is written in the file itself, in one SQLite transaction: a failure rolls it all back."""
    run_import(store, "construction_permits", write_csv(tmp_path / "a.csv", [dossier(i) for i in range(1, 4)]),
               parcels=parcels_shp, calendar=CAL)
    before = store.read("construction_permits")

    def boom(*args, **kwargs):  # after the rows with these keys were deleted, before the new ones are in
        raise RuntimeError("disk unplugged")

    monkeypatch.setattr(gpkg_module, "to_gpkg", boom)
    path = write_csv(tmp_path / "b.csv", [dossier(i) for i in range(2, 6)])
    with pytest.raises(RuntimeError, match="disk unplugged"):
        run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL)
    monkeypatch.undo()
    reopened = GeoPackageStore(store.path)
    pd.testing.assert_frame_equal(pd.DataFrame(reopened.read("construction_permits")), pd.DataFrame(before))


def test_file_without_crs_is_refused_unless_crs_given(tmp_path, store):
    path = tmp_path / "no_prj.shp"
    frame = gpd.GeoDataFrame([{"permit_no": "VH-1", "purpose": "EVENT", "status": "RECEIVED",
                               "start_on": "2022-04-01", "end_on": "2022-04-02", "sidewalk_w": 3.0,
                               "used_width": 1.0, "geometry": shapely.box(547100, 1770100, 547110, 1770101)}],
                             crs="EPSG:5899")
    pyogrio.write_dataframe(frame, path, encoding="UTF-8")
    path.with_suffix(".prj").unlink()
    with pytest.raises(ImportFailure, match="has no coordinate reference system.*--crs"):
        run_import(store, "sidewalk_permits", path, calendar=CAL)
    with pytest.raises(ImportFailure, match="EPSG code"):
        run_import(store, "sidewalk_permits", path, calendar=CAL, crs="+proj=tmerc +lon_0=107.75")
    report = read_count(run_import(store, "sidewalk_permits", path, calendar=CAL, crs="EPSG:5899"))
    assert report.accepted == 1 and "from --crs" in report.detail
    assert shapely.equals(store.get("sidewalk_permits", "VH-1").geometry.iloc[0],
                          shapely.box(547100, 1770100, 547110, 1770101))


def test_every_test_file_counts_every_row(tmp_path, store, parcels_shp):
    """accepted + rejected == read, on a file mixing good and bad rows of every kind."""
    rows = [dossier(1), dossier(20)] + [dossier(i + 2, **t) for i, (_, t, _) in enumerate(BAD_ROWS) if t]
    for path in (write_xlsx(tmp_path / "mix.xlsx", rows), write_csv(tmp_path / "mix.csv", rows, encoding="cp1258")):
        report = read_count(run_import(store, "construction_permits", path, parcels=parcels_shp, calendar=CAL,
                                       dry_run=True))
        assert report.read == len(rows) and report.accepted >= 1 and report.rejected >= 10


def test_read_source_row_numbers_skip_blank_lines(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text("Mã hồ sơ,Trạng thái\nA,Mới đăng ký\n\n,\nB,Mới đăng ký\n", encoding="utf-8")
    source = read_source(path, header_keys=frozenset({key("Mã hồ sơ"), key("Trạng thái")}))
    assert source.rows.tolist() == [2, 5] and source.frame["Mã hồ sơ"].tolist() == ["A", "B"]


# -- the command ---------------------------------------------------------------


def test_cli_import_summary_rejects_file_and_exit_codes(tmp_path, parcels_shp):
    store_path = tmp_path / "office" / "store.gpkg"
    runner = CliRunner()
    wards = tmp_path / "wards.geojson"
    WARDS.to_crs("EPSG:4326").to_file(wards, driver="GeoJSON")
    result = runner.invoke(cli, ["--store", str(store_path), "import", "wards", str(wards)])
    assert result.exit_code == 0, result.output
    assert store_path.exists() and "read 3, accepted 3 (0 repaired), rejected 0" in result.output

    rows = [dossier(1), dossier(2), dossier(3, **{"Trạng thái": "Không rõ"}), dossier(4, **{"Thửa đất số": "77"})]
    xlsx = write_xlsx(tmp_path / "ho_so.xlsx", rows)
    args = ["--store", str(store_path), "import", "construction_permits", str(xlsx), "--parcels", str(parcels_shp)]
    result = runner.invoke(cli, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run (upsert): would be 2 new" in result.output
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "read 4, accepted 2 (0 repaired), rejected 2" in out
    assert f"  {UNKNOWN_CODE}: 1" in out and f"  {NO_PARCEL}: 1" in out
    rejects = rejects_path(xlsx)
    assert rejects == tmp_path / "ho_so.rejects.csv" and f"rejected rows written to {rejects}" in out
    raw = rejects.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    table = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert [r["row"] for r in table] == ["5", "6"] and table[0]["reason"] == UNKNOWN_CODE
    assert GeoPackageStore(store_path).count("construction_permits") == 2
    audit = Accounts(os.environ["GISAPP_ACCOUNTS"]).audit_log()
    assert [(e.action, e.layer, e.rows) for e in audit] == [("import", "construction_permits", 2),
                                                            ("import", "wards", 3)]
    assert audit[0].username.startswith("cli:")

    everything_bad = write_csv(tmp_path / "bad.csv", [dossier(5, **{"Trạng thái": "?"})])
    result = runner.invoke(cli, ["--store", str(store_path), "import", "construction_permits",
                                 str(everything_bad), "--parcels", str(parcels_shp)])
    assert result.exit_code == 1 and "every row was rejected" in result.output

    result = runner.invoke(cli, ["--store", str(store_path), "import", "construction_permits", str(xlsx)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: ho_so.xlsx is a table: give the parcel")

    broken = tmp_path / "broken.gpkg"
    broken.write_bytes(b"garbage")
    result = runner.invoke(cli, ["--store", str(store_path), "import", "wards", str(broken)])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "Traceback" not in result.output
