"""Layer definitions: fields, types, labels, and validation of a frame.

A layer is a declared schema.  ``validate`` checks a GeoDataFrame against it
and returns every problem at once, each naming the row, the field, the
value and what is wrong; it never raises on bad data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from gisapp import domain

STORE_CRS = "EPSG:5899"
WEB_CRS = "EPSG:4326"


@dataclass(frozen=True)
class Field:
    """A column of a layer."""

    name: str
    type: str  # text | int | float | date
    vi: str
    en: str
    required: bool = False
    codes: str | None = None  # key into domain.CODE_SETS
    personal: bool = False  # personal data: shown to signed-in staff only
    computed: bool = False  # derived by the app, not taken from input

    def label(self, lang: str = "vi") -> str:
        """The field's label in ``lang``."""
        return self.en if lang == "en" else self.vi


@dataclass(frozen=True)
class Layer:
    """A layer: its fields, key, geometry and the field its dates filter on."""

    name: str
    vi: str
    en: str
    key: str
    fields: tuple[Field, ...]
    geometry: str = "MultiPolygon"
    date_field: str | None = None
    end_date_field: str | None = None
    #: A period other than date_field–end_date_field for the ``day`` filter: its start is the first of these
    #: fields that is set, its end ``works_months`` calendar months later, minus a day (dossiers' works).
    works_start_fields: tuple[str, ...] = ()
    works_months: int = 0
    text_fields: tuple[str, ...] = ()
    personal_text_fields: tuple[str, ...] = ()  # searched for signed-in staff only

    @property
    def field_names(self) -> list[str]:
        """Names of all fields, in order."""
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        """The field called ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def fields_of_type(self, kind: str) -> list[str]:
        """Names of the fields of type ``kind``."""
        return [f.name for f in self.fields if f.type == kind]

    def label(self, lang: str = "vi") -> str:
        """The layer's label in ``lang``."""
        return self.en if lang == "en" else self.vi


def _f(name, type_, vi, en, **kw) -> Field:
    return Field(name, type_, vi, en, **kw)


WARDS = Layer(
    "wards", "Ranh giới phường", "Ward boundaries", key="ward_key",
    fields=(
        _f("ward_key", "text", "Khóa", "Key", required=True, computed=True),
        _f("ward_code", "text", "Mã phường", "Ward code", required=True),
        _f("name", "text", "Tên phường", "Ward name", required=True),
        _f("district", "text", "Quận/huyện", "District"),
        _f("valid_from", "date", "Hiệu lực từ", "Valid from", required=True),
        _f("valid_to", "date", "Hiệu lực đến", "Valid to"),
        _f("successor_code", "text", "Mã phường kế thừa", "Successor ward code"),
        _f("approximate", "int", "Ranh giới gần đúng", "Approximate boundary"),
        _f("source", "text", "Nguồn", "Source"),
    ),
    date_field="valid_from", end_date_field="valid_to",
    text_fields=("ward_code", "name"),
)

CONSTRUCTION_PERMITS = Layer(
    "construction_permits", "Hồ sơ cấp phép xây dựng", "Construction permit dossiers",
    key="dossier_code",
    fields=(
        _f("dossier_code", "text", "Mã hồ sơ", "Dossier code", required=True),
        _f("permit_no", "text", "Số giấy phép", "Permit number"),
        _f("ward_code", "text", "Mã phường", "Ward code", required=True),
        _f("status", "text", "Trạng thái", "Status", required=True, codes="status"),
        _f("procedure", "text", "Thủ tục", "Procedure", required=True, codes="procedure"),
        _f("work_category", "text", "Loại công trình", "Work category", required=True, codes="work_category"),
        _f("channel", "text", "Hình thức nộp", "Channel", required=True, codes="channel"),
        _f("received_on", "date", "Ngày tiếp nhận", "Received on", required=True),
        _f("due_on", "date", "Ngày hẹn trả", "Due on", computed=True),
        _f("completed_on", "date", "Ngày có kết quả", "Completed on"),
        _f("issued_on", "date", "Ngày cấp phép", "Issued on"),
        _f("owner_name", "text", "Chủ đầu tư", "Owner", personal=True),
        _f("owner_id_no", "text", "Số CCCD/CMND", "Owner ID number", personal=True),
        _f("site_address", "text", "Địa chỉ công trình", "Site address"),
        _f("street", "text", "Đường", "Street"),
        _f("map_sheet_no", "text", "Tờ bản đồ số", "Map sheet no."),
        _f("parcel_no", "text", "Thửa đất số", "Parcel no."),
        _f("plot_area_m2", "float", "Diện tích thửa (m²)", "Plot area (m²)"),
        _f("footprint_m2", "float", "Diện tích xây dựng (m²)", "Footprint (m²)"),
        _f("floor_area_m2", "float", "Tổng diện tích sàn (m²)", "Gross floor area (m²)"),
        _f("floors", "int", "Số tầng", "Floors"),
        _f("height_m", "float", "Chiều cao (m)", "Height (m)"),
    ),
    date_field="received_on",
    works_start_fields=("issued_on", "received_on"), works_months=domain.WORKS_MONTHS,
    text_fields=("dossier_code", "permit_no", "site_address", "street"),
    personal_text_fields=("owner_name", "owner_id_no"),
)

SIDEWALK_PERMITS = Layer(
    "sidewalk_permits", "Giấy phép sử dụng tạm thời vỉa hè", "Sidewalk-use permits",
    key="permit_no",
    fields=(
        _f("permit_no", "text", "Số giấy phép", "Permit number", required=True),
        _f("ward_code", "text", "Mã phường", "Ward code", required=True),
        _f("purpose", "text", "Mục đích sử dụng", "Purpose", required=True, codes="purpose"),
        _f("status", "text", "Trạng thái", "Status", required=True, codes="status"),
        _f("channel", "text", "Hình thức nộp", "Channel", codes="channel"),
        _f("applicant_name", "text", "Người đề nghị", "Applicant", personal=True),
        _f("address", "text", "Địa chỉ", "Address"),
        _f("street", "text", "Đường", "Street"),
        _f("start_on", "date", "Từ ngày", "Start", required=True),
        _f("end_on", "date", "Đến ngày", "End", required=True),
        _f("sidewalk_width_m", "float", "Bề rộng vỉa hè (m)", "Sidewalk width (m)", required=True),
        _f("used_width_m", "float", "Bề rộng sử dụng (m)", "Used width (m)", required=True),
        _f("used_area_m2", "float", "Diện tích sử dụng (m²)", "Used area (m²)", computed=True),
        _f("construction_dossier_code", "text", "Mã hồ sơ xây dựng", "Construction dossier"),
    ),
    date_field="start_on", end_date_field="end_on",
    text_fields=("permit_no", "address", "street", "construction_dossier_code"),
    personal_text_fields=("applicant_name",),
)

FINDINGS = Layer(
    "findings", "Phát hiện chồng lấn", "Overlap findings", key="finding_id",
    fields=(
        _f("finding_id", "text", "Mã phát hiện", "Finding id", required=True),
        _f("kind", "text", "Loại", "Kind", required=True, codes="kind"),
        _f("a_id", "text", "Đối tượng A", "Object A", required=True),
        _f("b_id", "text", "Đối tượng B", "Object B"),
        _f("ward_code", "text", "Mã phường", "Ward code"),
        _f("overlap_area_m2", "float", "Diện tích chồng lấn (m²)", "Overlap area (m²)"),
        _f("distance_m", "float", "Khoảng cách (m)", "Distance (m)"),
        _f("overlap_start", "date", "Chồng lấn từ", "Overlap start"),
        _f("overlap_end", "date", "Chồng lấn đến", "Overlap end"),
        _f("overlap_days", "int", "Số ngày chồng lấn", "Overlap days"),
        _f("detail", "text", "Chi tiết", "Detail"),
    ),
    date_field="overlap_start", end_date_field="overlap_end",
    text_fields=("finding_id", "a_id", "b_id"),
)

SIDEWALKS = Layer(
    "sidewalks", "Vỉa hè", "Sidewalks", key="sidewalk_id",
    fields=(
        _f("sidewalk_id", "text", "Mã vỉa hè", "Sidewalk id", required=True),
        _f("ward_code", "text", "Mã phường", "Ward code", required=True),
        _f("street", "text", "Đường", "Street"),
        _f("width_m", "float", "Bề rộng vỉa hè (m)", "Width (m)"),
        _f("street_class", "text", "Loại đường", "Street class", codes="street_class"),
    ),
    text_fields=("sidewalk_id", "street"),
)

LAYERS: dict[str, Layer] = {
    layer.name: layer for layer in (WARDS, CONSTRUCTION_PERMITS, SIDEWALK_PERMITS, FINDINGS, SIDEWALKS)
}


def get_layer(name: str) -> Layer:
    """The layer called ``name``; ``KeyError`` with the known names otherwise."""
    try:
        return LAYERS[name]
    except KeyError:
        raise KeyError(f"unknown layer {name!r}; known layers: {', '.join(LAYERS)}") from None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row: row number (1-based), field, value, message."""

    row: int
    field: str
    value: object
    message: str

    def __str__(self) -> str:
        value = "" if self.value is None else f" = {self.value!r}"
        return f"row {self.row}, {self.field}{value}: {self.message}"


def _row_numbers(frame: pd.DataFrame) -> np.ndarray:
    if "row" in frame.columns:
        return frame["row"].to_numpy()
    return np.arange(1, len(frame) + 1)


def validate(layer: Layer, frame) -> list[Problem]:
    """Every problem of ``frame`` against ``layer``'s schema, in one pass.

    Checks required fields, types (numbers, ISO dates), codes, the
    uniqueness of the key, end-before-start and the geometry (present,
    valid, polygonal where the layer wants polygons).  Expects typed
    columns as produced by :func:`coerce`, or raw strings.
    """
    rows = _row_numbers(frame)
    problems: list[Problem] = []

    def add(mask, name, message, values=None):
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        col = frame[name] if values is None else values
        for i in idx:
            problems.append(Problem(int(rows[i]), name, _plain(col.iloc[i]), message))

    for f in layer.fields:
        if f.name not in frame.columns:
            if f.required and not f.computed:
                problems.append(Problem(0, f.name, None, "required column is missing"))
            continue
        col = frame[f.name]
        blank = col.isna() | col.astype(str).str.strip().eq("")
        if f.required and not f.computed:
            add(blank, f.name, "required value is missing")
        present = ~blank
        if f.type in ("int", "float"):
            num = pd.to_numeric(col, errors="coerce")
            add(present & num.isna(), f.name, "not a number")
            if f.type == "int":
                add(present & num.notna() & (num % 1 != 0), f.name, "not a whole number")
            add(present & (num < 0), f.name, "must not be negative")
        elif f.type == "date":
            parsed = to_dates(col)
            add(present & parsed.isna(), f.name, "not a date (YYYY-MM-DD)")
        if f.codes:
            known = domain.CODE_SETS[f.codes]
            add(present & ~col.isin(list(known)), f.name,
                f"unknown code; expected one of {', '.join(known)}")
    if layer.key in frame.columns:
        key = frame[layer.key]
        add(key.notna() & key.duplicated(keep="first"), layer.key, "duplicate key within the data")
    if layer.end_date_field and layer.end_date_field in frame.columns and layer.date_field in frame.columns:
        start, end = to_dates(frame[layer.date_field]), to_dates(frame[layer.end_date_field])
        add(end < start, layer.end_date_field, "end date before start date")
    problems.extend(_geometry_problems(layer, frame, rows))
    problems.sort(key=lambda p: (p.row, layer.field_names.index(p.field) if p.field in layer.field_names else 99))
    return problems


def _geometry_problems(layer: Layer, frame, rows) -> list[Problem]:
    if "geometry" not in frame.columns:
        return [Problem(0, "geometry", None, "geometry column is missing")]
    geoms = np.asarray(frame.geometry.values, dtype=object)
    out = []
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    types = shapely.get_type_id(geoms)
    polygonal = np.isin(types, (3, 6))
    invalid = ~missing & ~shapely.is_valid(geoms)
    for i in np.flatnonzero(missing):
        out.append(Problem(int(rows[i]), "geometry", None, "geometry is empty or missing"))
    if layer.geometry != "Geometry":
        for i in np.flatnonzero(~missing & ~polygonal):
            out.append(Problem(int(rows[i]), "geometry", geoms[i].geom_type, "geometry is not a polygon"))
    for i in np.flatnonzero(invalid & (polygonal | (layer.geometry == "Geometry"))):
        out.append(Problem(int(rows[i]), "geometry", None, f"invalid geometry: {shapely.is_valid_reason(geoms[i])}"))
    return out


def _plain(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if hasattr(value, "geom_type"):
        return value.geom_type
    return value.item() if isinstance(value, np.generic) else value


def to_dates(values) -> pd.Series:
    """Parse a column of dates (ISO text, dates or timestamps) to datetime64; bad → NaT."""
    s = pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.normalize().astype("datetime64[ms]")
    s = s.map(lambda v: v.isoformat()[:10] if isinstance(v, (dt.date, dt.datetime)) else v)
    return pd.to_datetime(s, format="%Y-%m-%d", errors="coerce").astype("datetime64[ms]")


def coerce(layer: Layer, frame, *, arrow_text: bool = False):
    """A copy of ``frame`` with the layer's columns typed (bad values become null).

    Text → ``str`` or None, numbers → float (``Int64`` for ints), dates →
    datetime64.  Missing columns are added empty; extra columns are dropped.
    ``arrow_text``: text columns as pandas' Arrow-backed ``str`` dtype (:data:`TEXT_DTYPE`, missing as NaN)
    holding the same values (:func:`arrow_texts`), without a Python string per value: for a write, whose
    columns go to Arrow anyway.
    """
    out = frame.copy()
    for f in layer.fields:
        if f.name not in out.columns:
            out[f.name] = None
        col = out[f.name]
        if f.type == "date":
            out[f.name] = to_dates(col)
        elif f.type == "float":
            out[f.name] = pd.to_numeric(col, errors="coerce").astype("float64")
        elif f.type == "int":
            num = pd.to_numeric(col, errors="coerce")
            out[f.name] = num.where(num % 1 == 0).round().astype("Int64")
        elif arrow_text:
            out[f.name] = arrow_texts(col)
        else:
            out[f.name] = pd.Series(clean_texts(col), index=out.index, dtype=object)
    keep = layer.field_names + ["geometry"]
    return out[keep]


def clean_texts(values) -> np.ndarray:
    """Text values as :func:`coerce` keeps them: ``str(v).strip()``, missing where missing or blank (NaN, as
    pandas marks it in a column of text, or ``None`` in a column without any).

    Vectorised for columns of text (Arrow finds the few values with white space
    at an end, Python strips only those; a third of the time);
    anything else value by value.
    """
    if isinstance(values, (pd.Series, pd.Index)):
        arr = values.to_numpy(dtype=object, copy=True)
    else:
        arr = np.array(list(values), dtype=object)
    missing = pd.isna(arr)
    arr[missing] = None
    if pd.api.types.infer_dtype(arr, skipna=True) not in ("string", "empty"):
        text = pd.Series(arr, dtype=object).map(lambda v: None if v is None else (str(v).strip() or None))
        return text.astype(object).to_numpy(dtype=object)
    rows = np.flatnonzero(~missing)
    if not len(rows):
        return arr
    texts = pa.array(arr if len(rows) == len(arr) else arr[rows], type=pa.string())
    ends = pa.concat_arrays([pc.utf8_slice_codeunits(texts, 0, 1), pc.utf8_slice_codeunits(texts, -1, 2**31 - 1)])
    spaces = [c for c in pc.unique(ends).to_pylist() if c is None or c == "" or c.isspace()]
    todo = np.empty(0, dtype=np.int64)
    if spaces:
        flagged = np.asarray(pc.is_in(ends, pa.array(spaces, pa.string())).to_numpy(zero_copy_only=False))
        todo = rows[flagged[: len(rows)] | flagged[len(rows):]]
        arr[todo] = [str(v).strip() or None for v in arr[todo]]
    # as pandas infers it (the str dtype when any text is left): NaN marks a missing value then, else None
    if len(todo) == len(rows) and all(v is None for v in arr[todo]):
        return arr
    gone = np.concatenate([np.flatnonzero(missing), todo])
    arr[gone[pd.isna(arr[gone])]] = np.nan
    return arr


#: pandas' text dtype held by Arrow, missing as NaN (pandas 3's ``str``): :func:`coerce`'s text with ``arrow_text``.
TEXT_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)


def arrow_texts(values: pd.Series) -> pd.Series:
    """The values of :func:`clean_texts` as a :data:`TEXT_DTYPE` column with ``values``' index: a column of text
    stays in Arrow (Arrow finds the values with white space at an end, Python strips only those); anything
    else goes through :func:`clean_texts`."""
    series = pd.Series(values)
    if isinstance(series.dtype, pd.StringDtype) or pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        arr = pa.array(series, type=pa.large_string(), from_pandas=True)
        arr = _stripped(arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr)
    else:
        arr = pa.array(clean_texts(series), type=pa.large_string(), from_pandas=True)
    return pd.Series(pd.array(arr, dtype=TEXT_DTYPE), index=series.index)


def _stripped(texts: pa.Array) -> pa.Array:
    """``str(v).strip() or None`` of each text of an Arrow array (nulls stay null), Python only for the values
    that start or end with white space (or are empty): :func:`_edge_space_rows`."""
    rows = _edge_space_rows(texts)
    if not len(rows):
        return texts
    fixed = pa.array([v.strip() or None for v in texts.take(pa.array(rows)).to_pylist()], texts.type)
    index = np.arange(len(texts))
    index[rows] = len(texts) + np.arange(len(rows))
    return pa.concat_arrays([texts, fixed]).take(pa.array(index))


#: Whether each code point up to U+3000 (the last that is) is white space to ``str.strip``.
_SPACES = np.array([chr(c).isspace() for c in range(0x3001)], dtype=bool)
#: Whether a byte is the first (:data:`_FIRST_BYTES`) or the last (:data:`_LAST_BYTES`) of the UTF-8 bytes of some
#: white space character: a value whose first byte is not such a first byte and whose last is not such a last
#: byte neither starts nor ends with white space.
_FIRST_BYTES, _LAST_BYTES = (np.isin(np.arange(256), [chr(c).encode()[end] for c in np.flatnonzero(_SPACES)])
                             for end in (0, -1))


def _edge_space_rows(texts: pa.Array) -> np.ndarray:
    """The rows of a (large) string array that are empty or whose first or last character is white space
    (``str.isspace``), in order: each value's first and last character decoded from its UTF-8 bytes in numpy."""
    n = len(texts)
    wide = pa.types.is_large_string(texts.type)
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int64 if wide else np.int32)[texts.offset:texts.offset + n + 1]
    start, end = offsets[:-1].astype(np.int64), offsets[1:].astype(np.int64)
    valid = texts.is_valid().to_numpy(zero_copy_only=False) if texts.null_count else np.ones(n, dtype=bool)
    empty = np.flatnonzero(valid & (end == start))
    filled = np.flatnonzero(valid & (end > start))
    if not len(filled):
        return empty
    data = np.frombuffer(texts.buffers()[2], dtype=np.uint8)
    # only the values whose first or last byte may belong to white space are decoded (a few in most columns)
    filled = filled[_FIRST_BYTES[data[start[filled]]] | _LAST_BYTES[data[end[filled] - 1]]]
    last = end[filled] - 1
    for _ in range(3):  # back over continuation bytes to the last character's first byte
        last = np.where((data[last] & 0xC0) == 0x80, last - 1, last)
    spaced = np.zeros(len(filled), dtype=bool)
    for at in (start[filled], last):
        code = _code_points(data, at)
        spaced |= (code < len(_SPACES)) & _SPACES[np.minimum(code, len(_SPACES) - 1)]
    return np.sort(np.concatenate([empty, filled[spaced]]))


def _code_points(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The code points of the characters whose UTF-8 bytes start at ``at`` in ``data`` (valid UTF-8)."""
    top = len(data) - 1
    b0 = data[at].astype(np.int32)
    b1, b2, b3 = (data[np.minimum(at + k, top)].astype(np.int32) & 0x3F for k in (1, 2, 3))
    return np.where(b0 < 0x80, b0, np.where(b0 < 0xE0, ((b0 & 0x1F) << 6) | b1,
                                            np.where(b0 < 0xF0, ((b0 & 0x0F) << 12) | (b1 << 6) | b2,
                                                     ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3)))


def describe_markdown() -> str:
    """The layer definitions as Markdown (``layers/SCHEMA.md`` is this text)."""
    lines = ["# Layer definitions", "",
             "Generated by `gisapp schema`; a test keeps this file equal to the code in `gisapp/schema.py`.",
             f"Every layer is stored in {STORE_CRS} (VN-2000 / TM-3 107-45, metres) and served in {WEB_CRS}.", ""]
    for layer in LAYERS.values():
        lines += [f"## `{layer.name}` — {layer.vi} / {layer.en}", "",
                  f"Key: `{layer.key}`. Geometry: {layer.geometry}."
                  + (f" Dates filter on `{layer.date_field}`"
                     + (f"–`{layer.end_date_field}`" if layer.end_date_field else "") + "."
                     if layer.date_field else ""),
                  "", "| field | type | required | nhãn (vi) | label (en) | notes |", "|---|---|---|---|---|---|"]
        for f in layer.fields:
            notes = []
            if f.codes:
                notes.append("codes: " + " ".join(f"`{c}`" for c in domain.CODE_SETS[f.codes]))
            if f.personal:
                notes.append("personal data")
            if f.computed:
                notes.append("computed by the app")
            required = "yes" if f.required else ""
            lines.append(f"| `{f.name}` | {f.type} | {required} | {f.vi} | {f.en} | {'; '.join(notes)} |")
        lines.append("")
    return "\n".join(lines)
