"""Reading the files an office imports: vector layers, CSV and XLSX tables, mapping files.

Each reader returns a :class:`Source`: the rows as read (original column
names, original values, text normalised to NFC), the row number of each
row in the file, and for vector files the geometries with their CRS.
Row numbers are what a person sees when opening the file: for tables the
spreadsheet row (the header row is row 1 when it is the first line, so the
first data row is usually 2); for vector files the 1-based position of the
feature.  Entirely blank table rows are skipped and not counted.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import tomllib
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
from pyproj import CRS

from gisapp import i18n
from gisapp.importing_values import clean_strings, key

VECTOR_SUFFIXES = (".shp", ".gpkg", ".geojson", ".json", ".zip", ".fgb", ".gml", ".kml", ".tab", ".mif")
TABLE_SUFFIXES = (".csv", ".txt", ".xlsx", ".xlsm")
_GDAL_FIELD = re.compile(r"Field\d+")
#: How many leading rows of a table are searched for the header row.
HEADER_SEARCH_ROWS = 30


class ImportFailure(Exception):
    """The import cannot go on (unreadable file, no CRS, bad mapping…); the message is for the user.

    ``key`` names the message in :data:`gisapp.i18n.STRINGS` and ``values``
    fill it in.  ``str(err)`` is the English text of the command line;
    :meth:`text` gives it in a language, for the command line or for the
    upload page (which names its form fields where the command names its
    options).  Values are plain text and numbers, so a failure crosses a
    process boundary as JSON (:meth:`as_dict`).
    """

    def __init__(self, key: str, **values):
        self.key = key
        self.values = values
        super().__init__(self.text())

    def text(self, lang: str = "en", channel: str = "cli") -> str:
        """The message in ``lang`` for ``channel`` (``"cli"`` or ``"web"``)."""
        return i18n.text(self.key, lang, **option_names(channel, lang), **self.values)

    def as_dict(self) -> dict:
        """``{"key", "values"}``: what :meth:`from_dict` takes back."""
        return {"key": self.key, "values": self.values}

    @classmethod
    def from_dict(cls, data: dict) -> ImportFailure:
        """The failure :meth:`as_dict` described."""
        return cls(data["key"], **data["values"])


def option_names(channel: str, lang: str) -> dict[str, str]:
    """How messages name an import's options: ``gisapp import``'s flags, or the upload form's fields."""
    if channel == "cli":
        return {"opt_crs": "--crs", "opt_parcels": "--parcels FILE", "opt_sheet": "--sheet",
                "opt_rename": "name it in a --mapping file"}

    def field_(label_key: str) -> str:
        return i18n.text("import_form_field", lang, label=i18n.text(label_key, lang))

    return {"opt_crs": field_("ui_crs_if_the_file_has_none"),
            "opt_parcels": field_("ui_parcels_for_a_table_of_dossiers"),
            "opt_sheet": field_("ui_sheet_xlsx"), "opt_rename": i18n.text("import_rename_columns", lang)}


@dataclass(frozen=True)
class Source:
    """The rows of one input file, as read."""

    path: Path
    kind: str  # "vector" or "table"
    frame: pd.DataFrame  # original columns and values, RangeIndex
    rows: np.ndarray  # source row number of each row
    geometry: np.ndarray | None = None  # shapely geometries (vector files)
    crs: CRS | None = None
    detail: str = ""  # sheet, layer or encoding, for the summary
    warnings: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        """Number of data rows read."""
        return len(self.frame)


def read_source(path, *, sheet: str | None = None, header_keys=frozenset(),
                prefer_layer: str | None = None) -> Source:
    """Read ``path`` by its suffix: a vector file, a CSV or an XLSX workbook.

    ``sheet`` picks the XLSX sheet (or the layer of a multi-layer vector
    file); ``header_keys`` (folded header names, see
    :func:`gisapp.importing_values.key`) help find the header row of a
    table that has title lines above it.
    """
    path = Path(path)
    if not path.exists():
        raise ImportFailure("import_no_file", name=path.name)
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            return read_csv(path, header_keys=header_keys)
        if suffix in (".xlsx", ".xlsm"):
            return read_xlsx(path, sheet=sheet, header_keys=header_keys)
        if suffix == ".xls":
            raise ImportFailure("import_old_xls", name=path.name)
        return read_vector(path, layer=sheet, prefer_layer=prefer_layer)
    except ImportFailure:
        raise
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as err:
        raise ImportFailure("import_unreadable_vector", name=path.name, detail=_gdal_detail(err)) from None
    except (OSError, ValueError, KeyError, csv.Error) as err:
        raise ImportFailure("import_unreadable", name=path.name, detail=_gdal_detail(err)) from None


def _first_line(err: Exception) -> str:
    """The first line of an exception's message."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


_FOLDERS = re.compile(r"(?<![\w.])/(?:[^\s'\"/]+/)+")
_GDAL_ADVICE = re.compile(r";?\s*It might help to specify the correct driver.*$")


def _gdal_detail(err: Exception) -> str:
    """The first line of a reader's error, without folders (no server paths in messages) or GDAL's advice."""
    return _GDAL_ADVICE.sub("", _FOLDERS.sub("", _first_line(err))).strip() or type(err).__name__


# -- vector files ----------------------------------------------------------


def read_vector(path: Path, *, layer: str | None = None, prefer_layer: str | None = None) -> Source:
    """A Shapefile, GeoPackage, GeoJSON (or other OGR format) read with its own CRS.

    In a file with several layers, ``layer`` picks one; otherwise a layer
    named ``prefer_layer`` is used, else the first, with a warning.
    """
    warnings = []
    layers = [name for name, _ in pyogrio.list_layers(path)]
    chosen = None
    if layer is not None:
        match = [n for n in layers if n == layer or key(n) == key(layer)]
        if not match:
            raise ImportFailure("import_no_layer", name=path.name, layer=layer, layers=", ".join(layers))
        chosen = match[0]
    elif len(layers) > 1:
        chosen = prefer_layer if prefer_layer in layers else layers[0]
        warnings.append(f"{path.name} has {len(layers)} layers; read {chosen!r} "
                        "(give another layer's name as the sheet to read it)")
    frame = pyogrio.read_dataframe(path, layer=chosen, use_arrow=True)
    geometry = None
    crs = None
    if hasattr(frame, "geometry") and frame.geometry.name in frame.columns:
        geometry = np.asarray(frame.geometry.values, dtype=object)
        crs = frame.crs
        frame = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    frame = _nfc_frame(frame.reset_index(drop=True))
    detail = f"layer {chosen!r}" if chosen else ""
    rows = np.arange(1, len(frame) + 1)
    return Source(path, "vector" if geometry is not None else "table", frame, rows, geometry, crs, detail,
                  tuple(warnings))


def _nfc_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text value (and column name) normalised to NFC."""
    out = {}
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_string_dtype(col) or col.dtype == object:
            kind = pd.api.types.infer_dtype(col, skipna=True)
            if kind == "string":
                col = pd.Series(clean_strings(col, strip=False), index=col.index, dtype=object)
            elif kind.startswith("mixed"):
                col = col.map(lambda v: unicodedata.normalize("NFC", v) if isinstance(v, str) else v)
        out[unicodedata.normalize("NFC", str(name))] = col
    return pd.DataFrame(out, index=frame.index)


# -- tables ----------------------------------------------------------------


def decode_text(data: bytes, name: str = "file") -> tuple[str, str]:
    """Decode a CSV: UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1258; NFC.

    Returns the text and the encoding used.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ("utf-16",)
    else:
        candidates = ("utf-8-sig", "cp1258")
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return unicodedata.normalize("NFC", text), encoding
    raise ImportFailure("import_bad_encoding", name=name)


def _delimiter(text: str) -> str:
    """The likeliest field delimiter of a CSV text: comma, semicolon, tab or bar."""
    sample = [line for line in text[:20000].splitlines() if line.strip()][:10]
    counts = {d: sum(line.count(d) for line in sample) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_csv(path: Path, *, header_keys=frozenset()) -> Source:
    """A CSV file: encoding detected, delimiter sniffed, header row found."""
    text, encoding = decode_text(path.read_bytes(), path.name)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)))
    return _table(path, _cells(rows), np.arange(1, len(rows) + 1), header_keys, f"encoding {encoding}")


def read_xlsx(path: Path, *, sheet: str | None = None, header_keys=frozenset(), engine: str = "gdal") -> Source:
    """One sheet of an XLSX workbook: ``sheet`` is a name (case- and accent-blind) or a 1-based number.

    The cells are read by GDAL's XLSX driver (``engine="gdal"``, through
    pyogrio, every cell as text: about ten times faster than openpyxl on a
    100,000-row export); openpyxl in read-only mode (``engine="openpyxl"``)
    is the fallback for workbooks GDAL does not open.  Both give the same
    rows and row numbers; date cells arrive as dates (openpyxl) or as
    ``YYYY/MM/DD`` text (GDAL), which :func:`gisapp.importing_values.parse_dates`
    reads alike.
    """
    if engine == "gdal":
        try:
            names = xlsx_sheet_names(path)
        except (zipfile.BadZipFile, KeyError, ET.ParseError):
            engine = "openpyxl"
    if engine == "openpyxl":
        return _read_xlsx_openpyxl(path, sheet, header_keys)
    chosen = _pick_sheet(path, names, sheet)
    try:
        frame = pyogrio.read_dataframe(path, layer=chosen, use_arrow=True, fid_as_index=True,
                                       HEADERS="DISABLE", FIELD_TYPES="STRING")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError):
        return _read_xlsx_openpyxl(path, chosen, header_keys)  # e.g. an empty sheet GDAL does not list
    numbers = frame.index.to_numpy(dtype=int)  # the FID of a row is its spreadsheet row number
    cells = pd.DataFrame(frame.to_numpy(dtype=object))
    names = [str(c) for c in frame.columns]
    if any(not _GDAL_FIELD.fullmatch(n) for n in names):
        # GDAL took the first row as field names (it ignores HEADERS=DISABLE on all but the
        # first sheet): put that row back so the header is found like in any other table
        header = pd.DataFrame([[None if _GDAL_FIELD.fullmatch(n) else n for n in names]])
        cells = pd.concat([header, cells], ignore_index=True)
        numbers = np.concatenate([[int(numbers.min()) - 1 if len(numbers) else 1], numbers])
    return _table(path, cells, numbers, header_keys, f"sheet {chosen!r}")


def xlsx_sheet_names(path: Path) -> list[str]:
    """The sheet names of an XLSX workbook, in order, from its ``workbook.xml`` (cheap)."""
    with zipfile.ZipFile(path) as zf:
        target = "xl/workbook.xml"
        rels = ET.fromstring(zf.read("_rels/.rels"))
        for rel in rels:
            if rel.get("Type", "").endswith("/officeDocument"):
                target = rel.get("Target", target).lstrip("/")
        book = ET.fromstring(zf.read(target))
    return [el.get("name") for el in book.iter() if el.tag.endswith("}sheet") or el.tag == "sheet"]


def _pick_sheet(path: Path, names: list[str], sheet: str | None) -> str:
    """The sheet called ``sheet`` (exactly, by number, or by key), the first when ``None``."""
    if not names:
        raise ImportFailure("import_no_sheets", name=path.name)
    if sheet is None:
        return names[0]
    if sheet in names:
        return sheet
    if str(sheet).isdigit() and 1 <= int(sheet) <= len(names):
        return names[int(sheet) - 1]
    match = [n for n in names if key(n) == key(sheet)]
    if not match:
        raise ImportFailure("import_no_sheet", name=path.name, sheet=str(sheet), sheets=", ".join(names))
    return match[0]


def _read_xlsx_openpyxl(path: Path, sheet: str | None, header_keys) -> Source:
    """:func:`read_xlsx` with openpyxl in read-only mode (cached values of formulas)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises many kinds on a broken file
        raise ImportFailure("import_bad_xlsx", name=path.name, detail=_gdal_detail(err)) from None
    try:
        chosen = _pick_sheet(path, book.sheetnames, sheet)
        ws = book[chosen]
        ws.reset_dimensions()  # some exporters write a wrong sheet size; read every cell
        rows = list(ws.iter_rows(values_only=True))
    finally:
        book.close()
    return _table(path, _cells(rows), np.arange(1, len(rows) + 1), header_keys, f"sheet {chosen!r}")


def _cells(rows: list) -> pd.DataFrame:
    """Rows of cell values (of any lengths) as an object DataFrame padded with ``None``."""
    width = max((len(r) for r in rows), default=0)
    padded = [r if len(r) == width else (*r, *([None] * (width - len(r)))) for r in rows]
    return pd.DataFrame(padded, columns=range(width), dtype=object) if padded else pd.DataFrame()


def _blank_cells(cells: pd.DataFrame) -> np.ndarray:
    """Boolean matrix: True where a cell is empty (null or only spaces)."""
    out = np.empty(cells.shape, dtype=bool)
    for j in range(cells.shape[1]):
        col = cells.iloc[:, j]
        if pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
            spaces = col.str.strip().eq("")
        else:
            spaces = col.map(lambda v: isinstance(v, str) and not v.strip())
        out[:, j] = col.isna().to_numpy() | spaces.to_numpy(dtype=bool, na_value=False)
    return out


def _header_row(cells: pd.DataFrame, blank: np.ndarray, header_keys) -> int | None:
    """Position of the header row: the early row naming most known columns, else the first non-blank one."""
    best, best_score, first = None, 0, None
    for i in range(min(HEADER_SEARCH_ROWS, len(cells))):
        if blank[i].all():
            continue
        if first is None:
            first = i
        score = sum(1 for v, b in zip(cells.iloc[i], blank[i]) if not b and key(v) in header_keys)
        if score > best_score:
            best, best_score = i, score
    if best is not None and best_score >= min(2, len(header_keys)):
        return best
    return first


def _column_names(header) -> list[str]:
    """Header cells as unique column names (blank cells become ``column_N``)."""
    names, seen = [], {}
    for i, value in enumerate(header, start=1):
        name = "" if _blank(value) else unicodedata.normalize("NFC", str(value)).strip()
        name = " ".join(name.split()) or f"column_{i}"
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        names.append(name)
    return names


def _blank(value) -> bool:
    """True for an empty cell."""
    return value is None or (isinstance(value, float) and np.isnan(value)) \
        or (isinstance(value, str) and not value.strip())


def _table(path: Path, cells: pd.DataFrame, numbers: np.ndarray, header_keys, detail: str) -> Source:
    """A :class:`Source` from a grid of cells and the row number of each grid row.

    The header is the row :func:`_header_row` finds; blank rows are
    dropped; columns right of the last named one are dropped (with a
    warning when they hold values).
    """
    blank = _blank_cells(cells) if cells.size else np.ones(cells.shape, dtype=bool)
    h = _header_row(cells, blank, header_keys)
    if h is None:
        return Source(path, "table", pd.DataFrame(), np.array([], dtype=int), detail=detail)
    header = list(cells.iloc[h])
    named = [j for j, v in enumerate(header) if not _blank(v)]
    width = (named[-1] + 1) if named else 0
    keep = np.zeros(len(cells), dtype=bool)
    keep[h + 1:] = True
    keep &= ~blank[:, :width].all(axis=1) if width else False
    warnings = []
    extra = int((keep & ~blank[:, width:].all(axis=1)).sum()) if cells.shape[1] > width else 0
    if extra:
        warnings.append(f"{extra} rows have values right of the last named column; those values were ignored")
    frame = cells.iloc[np.flatnonzero(keep), :width].reset_index(drop=True)
    frame.columns = _column_names(header[:width])
    frame = _nfc_frame(frame)
    if numbers[h] > 1:
        detail = f"{detail}, header on row {numbers[h]}"
    return Source(path, "table", frame, np.asarray(numbers, dtype=int)[keep], detail=detail,
                  warnings=tuple(warnings))


# -- mapping files ---------------------------------------------------------


def load_mapping(mapping) -> dict[str, str]:
    """A column mapping ``{source column: field}`` from a dict or a JSON/TOML file.

    A TOML or JSON file holds the pairs at the top level or under a
    ``columns`` table.  A field of ``""`` means "ignore this column".
    """
    if mapping is None:
        return {}
    if isinstance(mapping, dict):
        data = mapping
    else:
        path = Path(mapping)
        try:
            raw = path.read_bytes()
            if path.suffix.lower() == ".toml":
                data = tomllib.loads(raw.decode("utf-8-sig"))
            else:
                data = json.loads(raw.decode("utf-8-sig"))
        except (OSError, ValueError) as err:
            raise ImportFailure("import_bad_mapping_file", name=path.name, detail=_gdal_detail(err)) from None
    if isinstance(data, dict) and isinstance(data.get("columns"), dict):
        data = data["columns"]
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ImportFailure("import_bad_mapping")
    return {unicodedata.normalize("NFC", str(k)): v.strip() for k, v in data.items()}
