"""Sample inputs of the import tests: two wards, their lots, a one-stop system's export rows (Vietnamese headers and
labels) written as CSV or XLSX, and the count check every import report must pass."""

from __future__ import annotations

import datetime as dt
import unicodedata

import geopandas as gpd
import openpyxl
import shapely
from pyproj import Transformer

from gisapp import domain

CAL = domain.Calendar()
TO_WGS84 = Transformer.from_crs("EPSG:5899", "EPSG:4326", always_xy=True)
TO_VN2000 = Transformer.from_crs("EPSG:4326", "EPSG:5899", always_xy=True)

# Two wards of 2022 side by side and the merged ward that replaced them on 1 Jul 2025.
# The geometry is made up around DESIGN.md's test point; the 2025 code is made up too.
HOA_PHAT = shapely.box(547000, 1770000, 548000, 1771000)
HOA_AN = shapely.box(548000, 1770000, 549000, 1771000)
WARDS = gpd.GeoDataFrame([
    {"ward_key": "20305-2008-04-01", "ward_code": "20305", "name": "Hòa Phát", "valid_from": "2008-04-01",
     "valid_to": "2025-06-30", "geometry": HOA_PHAT},
    {"ward_key": "20306-2008-04-01", "ward_code": "20306", "name": "Hòa An", "valid_from": "2008-04-01",
     "valid_to": "2025-06-30", "geometry": HOA_AN},
    {"ward_key": "99001-2025-07-01", "ward_code": "99001", "name": "An Khê", "valid_from": "2025-07-01",
     "geometry": shapely.union(HOA_PHAT, HOA_AN)},
], geometry="geometry", crs="EPSG:5899")


def lot(ward: shapely.Polygon, i: int, j: int = 0) -> shapely.Polygon:
    """A 10 × 20 m lot inside ``ward``, the i-th along x, j-th along y."""
    x0, y0 = ward.bounds[0] + 100 + 15 * i, ward.bounds[1] + 100 + 30 * j
    return shapely.box(x0, y0, x0 + 10, y0 + 20)


def parcels_frame() -> gpd.GeoDataFrame:
    """Sheet 12, parcels 1-5, in each of the two 2022 wards (same numbers: the ward tells them apart)."""
    rows = []
    for ward, name in ((HOA_PHAT, "Phường Hòa Phát"), (HOA_AN, "Phường Hòa An")):
        for i in range(1, 6):
            rows.append({"Phuong": name, "map_sheet_": "12", "parcel_no": f"{i:02d}", "geometry": lot(ward, i)})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:5899")



HEADERS = ["STT", "Mã hồ sơ", "Số giấy phép", "Chủ đầu tư", "Địa chỉ công trình", "Phường", "Tờ bản đồ số",
           "Thửa đất số", "Ngày tiếp nhận", "Ngày hẹn trả", "Ngày trả kết quả", "Trạng thái", "Hình thức nộp",
           "Thủ tục", "Loại công trình", "Số tầng", "Diện tích xây dựng (m²)"]


def dossier(i: int, **changes) -> dict:
    """One row of a one-stop export, with Vietnamese headers and labels."""
    row = dict(zip(HEADERS, [
        i, f"000.00.18.H17-2201{i:02d}-0001", f"{100 + i}/GPXD", f"Nguyễn Văn {i}", f"{i} Cách Mạng Tháng Tám",
        "Hòa Phát" if i % 2 else "Phường Hòa An", "12", str(1 + i % 5), f"{3 + i:02d}/01/2022", "", "",
        "Đang xử lý" if i % 3 else "đã trả kết quả", "Trực tuyến" if i % 2 else "TRUC TIEP", "Cấp mới",
        "Nhà ở riêng lẻ", "3", "80,5",
    ]))
    row.update(changes)
    return row


def write_xlsx(path, rows, *, title=True, sheet="Danh sách", real_dates=()):
    """An XLSX export: a title line, the header, the rows; columns in ``real_dates`` as date cells."""
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    if title:
        ws.append(["DANH SÁCH HỒ SƠ CẤP GIẤY PHÉP XÂY DỰNG"])
    ws.append(HEADERS)
    for row in rows:
        values = []
        for h in HEADERS:
            v = row[h]
            if h in real_dates and isinstance(v, str) and v:
                v = dt.datetime.strptime(v, "%d/%m/%Y")
            values.append(v)
        ws.append(values)
        for c, h in enumerate(HEADERS, start=1):
            if h in real_dates and isinstance(values[c - 1], dt.datetime):
                ws.cell(row=ws.max_row, column=c).number_format = "DD/MM/YYYY"
    book.save(path)
    return path


def write_csv(path, rows, encoding="utf-8-sig", headers=HEADERS, transform=lambda s: s):
    """A CSV in ``encoding``; ``transform`` rewrites the text before encoding."""
    lines = [",".join(_quote(h) for h in headers)]
    lines += [",".join(_quote(str(r.get(h, ""))) for h in headers) for r in rows]
    text = transform("\r\n".join(lines) + "\r\n")
    path.write_bytes(text.encode(encoding) if encoding != "cp1258" else to_cp1258(text))
    return path


def _quote(text: str) -> str:
    return f'"{text}"' if ("," in text or '"' in text) else text


TONE_MARKS = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}


def to_cp1258(text: str) -> bytes:
    """Windows-1258 as Vietnamese Windows software writes it: base letters plus combining tone marks."""
    out = bytearray()
    for ch in unicodedata.normalize("NFC", text):
        parts = unicodedata.normalize("NFD", ch)
        base = unicodedata.normalize("NFC", "".join(c for c in parts if c not in TONE_MARKS))
        tones = "".join(c for c in parts if c in TONE_MARKS)
        out += (base + tones).encode("cp1258")
    return bytes(out)


def read_count(report):
    assert report.accepted + report.rejected == report.read
    assert sum(report.rejected_by_reason.values()) == report.rejected
    assert len(report.frame) == report.accepted and len(report.rejects) == report.rejected
    return report


# -- values and columns -----------------------------------------------------
