"""Recognising columns and parsing values of imported files.

Pure functions over pandas Series: which source column feeds which layer
field (by field name, its 10-character Shapefile truncation, the schema's
labels, the Vietnamese headers of one-stop exports, or a user mapping),
and the parsing of text, numbers, dates, coded values and ward references.
Headers and labels are matched case- and diacritics-insensitively through
:func:`key`.  Parsers return the parsed values and a mask of the values
that were present but could not be parsed; they never raise on bad data.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gisapp import domain
from gisapp.filters import fold
from gisapp.schema import Layer

#: Shapefile (dBASE) field names are cut to this many characters.
SHAPEFILE_NAME_LENGTH = 10

#: Extra headers seen in one-stop exports and cadastral files, per field.
#: The field name, its truncation and the schema's ``vi``/``en`` labels are
#: recognised without being listed here.
_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "wards": {
        "ward_code": ("Mã phường/xã", "Mã đơn vị hành chính", "Mã ĐVHC", "Mã xã", "ma_xa", "maXa",
                      "ma_phuong", "code", "gso_code"),
        "name": ("Tên", "Tên đơn vị hành chính", "Phường", "Tên xã", "ten_xa", "ten_phuong", "ward", "ward_name"),
        "district": ("Quận", "Huyện", "Quận/Huyện", "ten_huyen", "ten_quan"),
        "valid_from": ("Ngày hiệu lực", "Hiệu lực", "Từ ngày"),
        "valid_to": ("Hết hiệu lực", "Đến ngày"),
        "successor_code": ("Mã phường mới", "successor"),
        "approximate": ("Gần đúng",),
        "source": ("Nguồn dữ liệu",),
    },
    "construction_permits": {
        "dossier_code": ("Số hồ sơ", "Mã HS", "Số HS", "Mã số hồ sơ"),
        "permit_no": ("Số GPXD", "Số GP", "Số giấy phép xây dựng"),
        "ward_code": ("Phường", "Phường/xã", "Xã/phường", "Tên phường", "Đơn vị hành chính", "ward"),
        "status": ("Tình trạng", "Trạng thái hồ sơ", "Tình trạng hồ sơ", "Trạng thái xử lý"),
        "procedure": ("Loại thủ tục", "Tên thủ tục", "Thủ tục hành chính", "Loại hồ sơ"),
        "work_category": ("Loại nhà", "Loại công trình xây dựng", "Phân loại công trình"),
        "channel": ("Hình thức tiếp nhận", "Kênh nộp", "Hình thức nộp hồ sơ", "Nguồn tiếp nhận"),
        "received_on": ("Ngày nhận", "Ngày nộp", "Ngày nhận hồ sơ", "Ngày tiếp nhận hồ sơ"),
        "due_on": ("Ngày hẹn trả kết quả", "Hạn xử lý", "Hạn trả kết quả"),
        "completed_on": ("Ngày trả kết quả", "Ngày hoàn thành", "Ngày trả", "Ngày có kết quả xử lý"),
        "issued_on": ("Ngày cấp", "Ngày cấp GP", "Ngày cấp giấy phép", "Ngày ký"),
        "owner_name": ("Tên chủ đầu tư", "Chủ hộ", "Người nộp", "Người nộp hồ sơ", "Họ và tên", "Họ tên",
                       "Tên tổ chức/cá nhân"),
        "owner_id_no": ("CCCD", "CMND", "Số CCCD", "Số CMND", "CMND/CCCD", "Số định danh"),
        "site_address": ("Địa chỉ xây dựng", "Địa điểm xây dựng", "Địa chỉ", "Vị trí xây dựng"),
        "street": ("Tên đường", "Đường phố"),
        "map_sheet_no": ("Tờ bản đồ", "Tờ BĐ", "Số tờ", "Số tờ bản đồ", "Tờ", "so_to", "to_bd",
                         "SoHieuToBanDo", "SHBANDO"),
        "parcel_no": ("Thửa đất", "Thửa số", "Số thửa", "Thửa", "so_thua", "SoThuTuThua", "SHTHUA"),
        "plot_area_m2": ("Diện tích thửa", "Diện tích thửa đất", "Diện tích đất", "Diện tích lô đất", "Diện tích"),
        "footprint_m2": ("Diện tích xây dựng", "Diện tích XD", "Diện tích xây dựng tầng 1", "Mật độ xây dựng (m²)"),
        "floor_area_m2": ("Tổng diện tích sàn", "Diện tích sàn", "Tổng diện tích sàn xây dựng"),
        "floors": ("Tầng cao", "Số tầng cao"),
        "height_m": ("Chiều cao", "Chiều cao công trình"),
    },
    "sidewalk_permits": {
        "permit_no": ("Số GP", "Số giấy phép sử dụng vỉa hè"),
        "ward_code": ("Phường", "Phường/xã", "Tên phường", "ward"),
        "purpose": ("Mục đích", "Mục đích sử dụng vỉa hè"),
        "status": ("Tình trạng", "Trạng thái hồ sơ"),
        "channel": ("Hình thức tiếp nhận", "Hình thức nộp hồ sơ"),
        "applicant_name": ("Tên tổ chức/cá nhân", "Người được cấp phép", "Chủ hộ", "Họ tên", "Họ và tên"),
        "address": ("Địa điểm", "Vị trí"),
        "street": ("Tên đường", "Đường phố"),
        "start_on": ("Ngày bắt đầu", "Thời gian từ", "Sử dụng từ ngày"),
        "end_on": ("Ngày kết thúc", "Thời gian đến", "Sử dụng đến ngày"),
        "sidewalk_width_m": ("Chiều rộng vỉa hè", "Bề rộng hè"),
        "used_width_m": ("Chiều rộng sử dụng", "Bề rộng chiếm dụng"),
        "used_area_m2": ("Diện tích",),
        "construction_dossier_code": ("Mã hồ sơ", "Mã hồ sơ cấp phép xây dựng", "Hồ sơ xây dựng"),
    },
}

#: The three columns a parcels file needs (ward optional).
PARCEL_FIELDS = ("ward_code", "map_sheet_no", "parcel_no")
_PARCEL_ALIASES = {
    "ward_code": ("Mã phường", "Mã xã", "ma_xa", "maXa", "MaDVHC", "Phuong", "TenPhuong", "Xã/phường"),
}

#: Extra labels of coded values seen in exports, by code set.
_CODE_SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "status": {
        "PROCESSING": ("Đang giải quyết", "Đang thụ lý", "Đang xử lý hồ sơ"),
        "SUPPLEMENT_REQUESTED": ("Chờ bổ sung", "Bổ sung hồ sơ", "Yêu cầu bổ sung"),
        "RETURNED": ("Đã trả", "Đã trả kết quả cho công dân"),
        "REFUSED": ("Từ chối", "Không cấp phép"),
        "WITHDRAWN": ("Rút", "Công dân rút hồ sơ"),
        "RECEIVED": ("Tiếp nhận", "Mới tiếp nhận"),
    },
    "channel": {
        "ONLINE": ("Qua mạng", "Nộp trực tuyến", "Dịch vụ công trực tuyến", "DVC trực tuyến", "Cổng dịch vụ công"),
        "IN_PERSON": ("Nộp trực tiếp", "Tại bộ phận một cửa", "Một cửa"),
        "POST": ("Bưu điện", "Dịch vụ bưu chính công ích", "Qua bưu chính"),
    },
    "work_category": {
        "HOUSE": ("Nhà ở", "Nhà riêng lẻ", "Nhà ở riêng lẻ đô thị"),
        "OTHER": ("Khác", "Công trình"),
    },
    "procedure": {
        "NEW_BUILD": ("Xây dựng mới", "Cấp phép xây dựng mới", "Cấp giấy phép xây dựng mới"),
        "RENOVATION": ("Sửa chữa", "Cải tạo", "Sửa chữa cải tạo"),
    },
    "purpose": {
        "MATERIALS": ("Tập kết vật liệu", "Vật liệu xây dựng"),
        "BUSINESS": ("Kinh doanh", "Buôn bán"),
        "PARKING": ("Để xe", "Giữ xe", "Trông giữ xe đạp, xe máy"),
        "WEDDING_FUNERAL": ("Việc cưới", "Việc tang", "Đám cưới", "Đám tang", "Hiếu hỷ"),
        "EVENT": ("Sự kiện", "Lễ hội"),
    },
}

#: Words in a full procedure name (as one-stop systems print it) → code; first hit wins.
_PROCEDURE_WORDS = (
    ("giahan", "EXTENSION"), ("caplai", "REISSUE"), ("dieuchinh", "ADJUSTMENT"),
    ("didoi", "RELOCATION"), ("suachua", "RENOVATION"), ("caitao", "RENOVATION"),
    ("cothoihan", "TERM"), ("capmoi", "NEW_BUILD"), ("xaydungmoi", "NEW_BUILD"),
)

_NON_ALNUM = re.compile(r"[^0-9a-z]+")
_WARD_PREFIX = re.compile(r"^\s*(phuong|xa|thi tran|p\s*\.|p\s)\s*")


def key(text) -> str:
    """A header or label folded for matching: no case, accents, spaces or punctuation.

    ``"Tờ bản đồ số"`` and ``"to_ban_do_so"`` share the key ``"tobandoso"``;
    ``"Diện tích (m²)"`` becomes ``"dientichm2"``.
    """
    if text is None:
        return ""
    return _NON_ALNUM.sub("", fold(unicodedata.normalize("NFKC", str(text))))


# -- columns ---------------------------------------------------------------


@dataclass(frozen=True)
class ColumnMatch:
    """Which source column feeds each field, and what was left over."""

    columns: dict[str, str]  # field name -> source column
    unused: tuple[str, ...]
    warnings: tuple[str, ...]


def field_aliases(layer: Layer) -> dict[str, list[tuple[int, str]]]:
    """Every recognised header key of ``layer``'s fields, as ``(rank, key)`` pairs.

    Lower ranks win when several columns fit one field: the field name (0),
    its Shapefile truncation (1), the ``vi`` label (2), other headers (3),
    the ``en`` label (4).
    """
    extra = _ALIASES.get(layer.name, {})
    out: dict[str, list[tuple[int, str]]] = {}
    for f in layer.fields:
        candidates = [(0, f.name), (1, f.name[:SHAPEFILE_NAME_LENGTH]), (2, f.vi)]
        candidates += [(3, a) for a in extra.get(f.name, ())]
        candidates.append((4, f.en))
        seen: dict[str, int] = {}
        for rank, text in candidates:
            k = key(text)
            if k and k not in seen:
                seen[k] = rank
        out[f.name] = [(rank, k) for k, rank in seen.items()]
    return out


def parcel_aliases(construction: Layer) -> dict[str, list[tuple[int, str]]]:
    """Header keys of a parcels file's ward, map sheet and parcel number columns."""
    base = field_aliases(construction)
    out = {}
    for name in PARCEL_FIELDS:
        pairs = list(base[name]) + [(3, key(a)) for a in _PARCEL_ALIASES.get(name, ())]
        out[name] = list(dict((k, (r, k)) for r, k in reversed(pairs)).values())
    return out


def known_header_keys(aliases: dict[str, list[tuple[int, str]]]) -> frozenset[str]:
    """The set of header keys that ``aliases`` recognises (to find a header row)."""
    return frozenset(k for pairs in aliases.values() for _, k in pairs)


def match_columns(columns, aliases: dict[str, list[tuple[int, str]]],
                  mapping: dict[str, str] | None = None) -> ColumnMatch:
    """Assign source ``columns`` to fields.

    ``mapping`` ({source column: field}, from a mapping file) wins over
    everything; its source names match exactly or by :func:`key`, and a
    field of ``""`` ignores the column.  Otherwise each column goes to the
    field with an alias equal to its key; when several columns fit one
    field the best-ranked (then leftmost) one is used and the others are
    reported.
    """
    columns = [str(c) for c in columns]
    by_key: dict[str, str] = {}
    for c in columns:
        by_key.setdefault(key(c), c)
    chosen: dict[str, tuple[int, int, str]] = {}  # field -> (rank, position, column)
    ignored: set[str] = set()
    warnings: list[str] = []
    for source, target in (mapping or {}).items():
        column = source if source in columns else by_key.get(key(source))
        if column is None:
            if target in aliases:
                warnings.append(f"mapping: column {source!r} is not in the file")
            continue
        if not target:
            ignored.add(column)
        elif target in aliases:
            chosen[target] = (-1, columns.index(column), column)
    taken = {c for _, _, c in chosen.values()} | ignored
    lookup: dict[str, tuple[int, str]] = {}
    for name, pairs in aliases.items():
        for rank, k in pairs:
            if k not in lookup or rank < lookup[k][0]:
                lookup[k] = (rank, name)
    for position, column in enumerate(columns):
        hit = None if column in taken else lookup.get(key(column))
        if hit is None:
            continue
        rank, name = hit
        current = chosen.get(name)
        if current is None or (rank, position) < current[:2]:
            if current is not None:
                warnings.append(f"column {current[2]!r} not used: {column!r} also gives {name}")
            chosen[name] = (rank, position, column)
        else:
            warnings.append(f"column {column!r} not used: {current[2]!r} already gives {name}")
    used = {c for _, _, c in chosen.values()}
    unused = tuple(c for c in columns if c not in used)
    return ColumnMatch({name: c for name, (_, _, c) in chosen.items()}, unused, tuple(warnings))


# -- values ----------------------------------------------------------------


def _present(series: pd.Series) -> np.ndarray:
    """True where a value is present (not null, not blank text)."""
    s = series.astype(object)
    if pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty"):
        return pd.notna(clean_strings(s))
    blank = s.isna().to_numpy() | s.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy()
    return ~blank


def to_text(series: pd.Series) -> pd.Series:
    """Values as stripped NFC text (object dtype), blanks as None.

    Whole numbers print without a decimal part (``12.0`` → ``"12"``), dates
    as ISO dates, so that spreadsheet cells typed as numbers still match.
    """
    return _per_unique(series, _to_text) if _worth_uniques(series) else _to_text(series)


def _to_text(series: pd.Series) -> pd.Series:
    """:func:`to_text` on all values."""
    s = pd.Series(series, copy=False)
    if pd.api.types.is_datetime64_any_dtype(s):
        return _nones(s.dt.strftime("%Y-%m-%d"))
    if pd.api.types.is_bool_dtype(s):
        s = s.astype(object)
    if pd.api.types.is_numeric_dtype(s):
        values = s.astype("float64")
        whole = values.notna() & (values % 1 == 0)
        out = values.map(lambda v: None if pd.isna(v) else repr(v)).astype(object)
        out[whole] = values[whole].astype("int64").astype(str)
        return _nones(out)
    kind = pd.api.types.infer_dtype(s, skipna=True)
    if kind in ("string", "empty"):
        return pd.Series(clean_strings(s), index=s.index, dtype=object)
    return _nones(s.map(_one_text))


def clean_strings(values, strip: bool = True) -> np.ndarray:
    """Text values NFC-normalised without control characters (and stripped, blanks → None),
    without a Python loop per value.

    ``values`` holds only strings and nulls; returns an object array.  The
    strings are joined by NUL (a starter no mark composes with, so each is
    normalised on its own), normalised and stripped in one pass, and split.
    """
    series = pd.Series(values, copy=False).astype(object)
    present = series.notna().to_numpy()
    out = np.full(len(series), None, dtype=object)
    strings = series[present].tolist()
    if not strings:
        return out
    if _CONTROL.search("".join(strings)):  # rare: clean those values first
        strings = [drop_controls(v) for v in strings]
    joined = "\x00".join(strings)
    if joined.count("\x00") != len(strings) - 1:  # a value holds NUL itself: one at a time
        parts = [unicodedata.normalize("NFC", v) for v in strings]
        parts = [v.strip() for v in parts] if strip else parts
    else:
        joined = unicodedata.normalize("NFC", joined)
        if strip:
            joined = _SPACES_AROUND_NUL.sub("\x00", joined).strip()
        parts = joined.split("\x00")
    out[present] = parts
    if strip:
        out[present & (out == "")] = None
    return out


_SPACES_AROUND_NUL = re.compile(r"\s*\x00\s*")
#: Control characters (C0, DEL, C1); those that separate text (tab, line breaks …) and the others.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_SPACES = re.compile("[\t\n\x0b\x0c\r\x1c-\x1f\x85]+")


def drop_controls(text: str) -> str:
    """``text`` without control characters: a run of tabs or line breaks becomes one space, the others go.

    No field of a layer is multi-line; the web refuses control characters in
    parameters, and PostgreSQL cannot store NUL.
    """
    return _CONTROL.sub("", _CONTROL_SPACES.sub(" ", text))


def _worth_uniques(series) -> bool:
    """Whether parsing the distinct values only pays: a long text (object) column."""
    s = pd.Series(series, copy=False)
    return len(s) > 1000 and (s.dtype == object or pd.api.types.is_string_dtype(s))


def _per_unique(series, parse):
    """``parse`` applied to the distinct values of ``series`` only, spread back to every row.

    ``parse`` returns a Series, or a Series and a boolean mask; nulls stay
    null (and unmasked).  A 100,000-row export has a few hundred distinct
    dates, statuses or sheet numbers, so this saves most of the work.
    """
    s = pd.Series(series, copy=False).reset_index(drop=True)
    codes, uniques = pd.factorize(s.astype(object), use_na_sentinel=True)
    result = parse(pd.Series(uniques, dtype=object))
    values, mask = result if isinstance(result, tuple) else (result, None)
    values = values.reset_index(drop=True)
    padded = pd.concat([values, pd.Series([None], dtype=values.dtype)], ignore_index=True)
    take = np.where(codes < 0, len(uniques), codes)
    out = padded.take(take).reset_index(drop=True)
    if out.dtype == object:
        out = _nones(out)
    if mask is None:
        return out
    return out, np.append(np.asarray(mask, dtype=bool), False)[take]


def _nones(series: pd.Series) -> pd.Series:
    """An object Series with every missing value as ``None``."""
    values = series.to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    return pd.Series(values, index=series.index, dtype=object)


def _one_text(value):
    """One value as text (see :func:`to_text`)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return value.strftime("%Y-%m-%d") if value == value.replace(hour=0, minute=0, second=0, microsecond=0) \
            else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    text = drop_controls(unicodedata.normalize("NFC", str(value))).strip()
    return text or None


def parse_numbers(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Numbers (float64) and the mask of present values that are not numbers.

    Text may use a decimal comma (``"120,5"``) and a unit after the number
    (``"120 m²"``, ``"5 tầng"``).  A lone separator, comma or dot, is read
    as the decimal mark; with both, the last one is (``"1.200,5"`` and
    ``"1,200.5"`` are both 1200.5).
    """
    return _per_unique(series, _parse_numbers) if _worth_uniques(series) else _parse_numbers(series)


def _parse_numbers(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """:func:`parse_numbers` on all values."""
    s = pd.Series(series, copy=False)
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.astype("float64"), np.zeros(len(s), dtype=bool)
    text = to_text(s)
    present = text.notna().to_numpy()
    t = text.fillna("").astype(str).str.replace(r"[\s\u00a0]+", "", regex=True)
    t = t.str.replace(r"(?i)(m2|m²|m|tầng|tang)$", "", regex=True)
    both = t.str.contains(",", regex=False) & t.str.contains(".", regex=False)
    comma_last = t.str.rfind(",") > t.str.rfind(".")
    t = t.mask(both & comma_last, t.str.replace(".", "", regex=False).str.replace(",", ".", regex=False))
    t = t.mask(both & ~comma_last, t.str.replace(",", "", regex=False))
    t = t.mask(~both, t.str.replace(",", ".", regex=False))
    numbers = pd.to_numeric(t.where(present, None), errors="coerce").astype("float64")
    bad = present & numbers.isna().to_numpy()
    return numbers, bad


_EXCEL_EPOCH = np.datetime64("1899-12-30", "D")
_ISO = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})")
_DMY = r"^\s*(\d{1,2})\s*[/.\-]\s*(\d{1,2})\s*[/.\-]\s*(\d{4})(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?\s*$"
_YMD = r"^\s*(\d{4})\s*[/.\-]\s*(\d{1,2})\s*[/.\-]\s*(\d{1,2})(?:[T\s]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?\s*$"


def parse_dates(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Dates (datetime64[ms], midnight) and the mask of present values that are not dates.

    Accepts real dates and timestamps (Excel date cells, GeoPackage dates),
    ISO text (``2022-01-15``, with or without a time), day-first text
    (``15/01/2022``, ``15-1-2022``, ``15.01.2022``; slashed dates are always
    read day first, as Vietnamese offices write them) and Excel serial day
    numbers (a date cell that lost its date format, also as 5-digit text
    between 10000 and 80000, i.e. 1927-2119).
    """
    return _per_unique(series, _parse_dates) if _worth_uniques(series) else _parse_dates(series)


def _parse_dates(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """:func:`parse_dates` on all values."""
    s = pd.Series(series, copy=False).reset_index(drop=True)
    n = len(s)
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s.dt.tz_localize(None) if getattr(s.dt, "tz", None) is not None else s
        return out.dt.normalize().astype("datetime64[ms]"), np.zeros(n, dtype=bool)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[ms]")
    obj = s.astype(object)
    if pd.api.types.infer_dtype(obj, skipna=True) in ("string", "empty"):
        # the common case (CSV, GDAL's XLSX cells): text only, classified without a Python loop
        text = to_text(obj)
        present = text.notna().to_numpy()
        serial_text = present & text.str.fullmatch(r"[1-7]\d{4}|80000").to_numpy(dtype=bool, na_value=False)
        obj = text.astype(object)
        obj[serial_text] = obj[serial_text].astype(int)
        is_text = present & ~serial_text
        is_number = serial_text
    else:
        present = _present(obj)
        is_text = obj.map(lambda v: isinstance(v, str)).to_numpy() & present
        serial_text = is_text & obj.map(lambda v: isinstance(v, str) and v.strip().isdigit()
                                        and 10000 <= int(v.strip()) <= 80000).to_numpy()
        if serial_text.any():
            obj = obj.copy()
            obj[serial_text] = obj[serial_text].map(lambda v: int(v.strip()))
        is_text &= ~serial_text
        is_number = obj.map(lambda v: isinstance(v, (int, float, np.integer, np.floating))
                            and not isinstance(v, bool)).to_numpy() & present
    is_date = present & ~is_text & ~is_number
    if is_date.any():
        stamps = pd.to_datetime(obj[is_date].map(_date_of), errors="coerce")
        out[is_date] = stamps.to_numpy().astype("datetime64[ms]")
    if is_number.any():
        serial = obj[is_number].astype("float64").to_numpy()
        with np.errstate(invalid="ignore"):  # NaN/inf serials are simply not dates
            ok = np.isfinite(serial) & (serial >= 1) & (serial < 2958466) & (serial % 1 == 0)
        days = np.where(ok, serial, 0).astype("int64")
        values = (_EXCEL_EPOCH + days.astype("timedelta64[D]")).astype("datetime64[ms]")
        out[is_number] = np.where(ok, values, np.datetime64("NaT"))
    text_mask = is_text
    if text_mask.any():
        text = obj[text_mask].astype(str).str.strip()
        parts = text.str.extract(_DMY)
        day, month, year = parts[0], parts[1], parts[2]
        ymd = text.str.extract(_YMD)
        use_ymd = ymd[0].notna()
        year = year.where(~use_ymd, ymd[0])
        month = month.where(~use_ymd, ymd[1])
        day = day.where(~use_ymd, ymd[2])
        frame = pd.DataFrame({"year": pd.to_numeric(year), "month": pd.to_numeric(month),
                              "day": pd.to_numeric(day)})
        stamps = pd.to_datetime(frame, errors="coerce")
        out[text_mask] = stamps.to_numpy().astype("datetime64[ms]")
    result = pd.Series(out, dtype="datetime64[ms]")
    bad = present & result.isna().to_numpy()
    return result, bad


def _date_of(value):
    """A date-like object as a naive timestamp at midnight (None when not date-like)."""
    if isinstance(value, (dt.datetime, pd.Timestamp)):
        return pd.Timestamp(value.year, value.month, value.day)
    if isinstance(value, dt.date):
        return pd.Timestamp(value)
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).normalize()
    return None


def code_lookup(codes_name: str) -> dict[str, str]:
    """Key of every code, label (vi and en) and synonym of a code set → the code."""
    out: dict[str, str] = {}
    for code, entry in domain.CODE_SETS[codes_name].items():
        for text in (code, entry.vi, entry.en, *_CODE_SYNONYMS.get(codes_name, {}).get(code, ())):
            out.setdefault(key(text), code)
    return out


def parse_codes(series: pd.Series, codes_name: str) -> tuple[pd.Series, np.ndarray]:
    """Codes of a coded field from codes or labels, and the mask of unknown values.

    Matching is case- and diacritics-insensitive.  Procedures also match a
    full procedure name by its telling words (``"Gia hạn giấy phép xây
    dựng"`` → ``EXTENSION``).
    """
    text = to_text(series)
    lookup = code_lookup(codes_name)
    uniques = pd.unique(text.dropna())
    resolved = {}
    for value in uniques:
        k = key(value)
        code = lookup.get(k)
        if code is None and codes_name == "procedure":
            code = next((c for word, c in _PROCEDURE_WORDS if word in k), None)
        resolved[value] = code
    codes = _nones(text.map(resolved))
    bad = text.notna().to_numpy() & codes.isna().to_numpy()
    return codes, bad


def parcel_key(series: pd.Series) -> pd.Series:
    """Map sheet or parcel numbers normalised for joining (``"05"`` = ``"5"``, case-blind)."""
    return _per_unique(series, _parcel_key) if _worth_uniques(series) else _parcel_key(series)


def _parcel_key(series: pd.Series) -> pd.Series:
    """:func:`parcel_key` on all values."""
    text = to_text(series)
    out = text.fillna("").astype(str).str.upper().str.replace(r"\s+", "", regex=True)
    out = out.str.replace(r"^0+(?=\d)", "", regex=True).astype(object)
    out[text.isna()] = None
    return _nones(out)


# -- wards -----------------------------------------------------------------


def ward_name_key(name) -> str:
    """A ward name folded for matching, without a "Phường"/"Xã"/"P." prefix."""
    if name is None:
        return ""
    folded = fold(unicodedata.normalize("NFKC", str(name))).strip()
    return _NON_ALNUM.sub("", _WARD_PREFIX.sub("", folded))


@dataclass(frozen=True)
class WardRecords:
    """The store's wards, for resolving ward references and deriving wards.

    Arrays are aligned: GSO code, folded name, validity dates (NaT = open)
    and polygon of each ward record.
    """

    codes: np.ndarray
    names: np.ndarray
    valid_from: np.ndarray
    valid_to: np.ndarray
    geoms: np.ndarray

    @classmethod
    def from_frame(cls, wards) -> WardRecords:
        """Build from a wards layer frame as the store returns it."""
        if wards is None or len(wards) == 0:
            empty = np.array([], dtype=object)
            return cls(empty, empty, np.array([], "datetime64[D]"), np.array([], "datetime64[D]"), empty)
        return cls(
            codes=wards["ward_code"].astype(object).to_numpy(),
            names=np.array([ward_name_key(v) for v in wards["name"]], dtype=object),
            valid_from=pd.to_datetime(wards["valid_from"]).to_numpy().astype("datetime64[D]"),
            valid_to=pd.to_datetime(wards["valid_to"]).to_numpy().astype("datetime64[D]"),
            geoms=np.asarray(wards.geometry.values, dtype=object),
        )

    def __len__(self) -> int:
        """Number of ward records."""
        return len(self.codes)

    def in_force(self, i: int | np.integer, dates: np.ndarray | None) -> np.ndarray:
        """Mask of ``dates`` at which ward record ``i`` is in force (dates inclusive).

        A missing date counts as "now": only wards without an end date.
        """
        if dates is None:
            return np.ones(1, dtype=bool)
        d = dates.astype("datetime64[D]")
        start, end = self.valid_from[i], self.valid_to[i]
        missing = np.isnat(d)
        ok = np.ones(len(d), dtype=bool)
        if not np.isnat(start):
            ok &= d >= start
        if not np.isnat(end):
            ok &= d <= end
            ok &= ~missing
        return ok | (missing & np.isnat(end))


@dataclass(frozen=True)
class WardRefs:
    """Resolved ward references: code and folded name where known."""

    codes: np.ndarray  # object: GSO code or None
    names: np.ndarray  # object: folded name or None
    present: np.ndarray  # bool: a value was given
    unresolved: np.ndarray  # bool: given but not matched to a known ward


def resolve_wards(series: pd.Series, index: WardRecords, dates: np.ndarray | None = None) -> WardRefs:
    """Ward references (GSO codes or names, with or without "Phường") resolved to codes.

    A code is accepted when the store knows it (or has no wards at all);
    a name resolves to the one ward of that name in force at the row's
    date (``dates``), or to the only ward ever of that name.  Unresolved
    values keep their folded name so two files can still be matched by it.
    """
    text = to_text(series)
    n = len(text)
    present = text.notna().to_numpy()
    values = text.fillna("").astype(str)
    digits = values.str.fullmatch(r"\d{3,6}(\.0+)?").to_numpy()
    codes = np.full(n, None, dtype=object)
    names = np.full(n, None, dtype=object)
    raw_codes = values.str.replace(r"\.0+$", "", regex=True).str.zfill(5).to_numpy(dtype=object)
    known_codes = set(index.codes.tolist())
    if len(index):
        ok = digits & np.isin(raw_codes, list(known_codes))
    else:
        ok = digits.copy()
    codes[ok] = raw_codes[ok]
    name_by_code: dict[str, str] = {}
    for c, nm in zip(index.codes, index.names):
        name_by_code.setdefault(c, nm)
    names[ok] = [name_by_code.get(c) for c in raw_codes[ok]]
    named = present & ~digits
    if named.any():
        pos = np.flatnonzero(named)
        named_values = values.iloc[pos]
        unique_keys = {v: ward_name_key(v) for v in pd.unique(named_values)}
        keys = named_values.map(unique_keys).to_numpy(dtype=object)
        names[pos] = keys
        codes[pos] = _codes_by_name(keys, index, None if dates is None else np.asarray(dates)[pos])
    unresolved = present & np.array([c is None for c in codes], dtype=bool)
    return WardRefs(codes, names, present, unresolved)


def _codes_by_name(keys: np.ndarray, index: WardRecords, dates: np.ndarray | None) -> np.ndarray:
    """The ward code of each folded name: the one in force at its date, else the only one."""
    out = np.full(len(keys), None, dtype=object)
    for k in pd.unique(keys):
        records = np.flatnonzero(index.names == k)
        if not len(records):
            continue
        rows = np.flatnonzero(keys == k)
        distinct = list(dict.fromkeys(index.codes[records]))
        if dates is None:
            if len(distinct) == 1:
                out[rows] = distinct[0]
            continue
        active = np.zeros((len(distinct), len(rows)), dtype=bool)
        for r in records:
            active[distinct.index(index.codes[r])] |= index.in_force(r, dates[rows])
        count = active.sum(axis=0)
        first = np.array(distinct, dtype=object)[active.argmax(axis=0)]
        fallback = distinct[0] if len(distinct) == 1 else None
        out[rows] = np.where(count == 1, first, np.where(count == 0, fallback, None))
    return out
