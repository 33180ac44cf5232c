"""Reading the files an office imports: vector layers, CSV and XLSX tables, mapping files.

Each reader returns a :class:`Source`: the rows as read (original column
names, original values, text normalised to NFC), the row number of each
row in the file, and for vector files the geometries with their CRS.
Row numbers are what a person sees when opening the file: for tables the
spreadsheet row (the header row is row 1 when it is the first line, so the
first data row is usually 2); for vector files the 1-based position of the
feature.  Entirely blank table rows are skipped and not counted.

An office's file is read only by the reader of its format, after its content
was found to be that format (:func:`read_source`): GDAL probes drivers by
content, so a GeoJSON, GeoPackage or Shapefile that is really an OGR VRT
(XML naming another data source: the accounts file, ``CSV:/etc/passwd``, a
``/vsicurl/`` URL) would otherwise be read as one.  Zips are unpacked by
Python into a private folder, one dataset each; GDAL never opens them.
While a file is read, GDAL's settings keep it off the network and away from
other files (:func:`gdal_locked_down`).  ``gisapp import --allow-any-driver``
lifts all this for a shell user's own files.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import itertools
import json
import os
import re
import sqlite3
import tempfile
import tomllib
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pyogrio
from pyproj import CRS

from gisapp import i18n
from gisapp.importing.values import clean_strings, key

#: The GDAL driver that reads each format an office's file may be in (CSV is read by Python).
DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".shp": "ESRI Shapefile",
           ".xlsx": "XLSX", ".xlsm": "XLSX"}
TABLE_SUFFIXES = (".csv", ".txt", ".xlsx", ".xlsm")
#: What a zip may hold: exactly one of these (a Shapefile with its parts).
ZIP_DATASETS = (".shp", ".geojson", ".json", ".gpkg", ".csv", ".xlsx")
#: The parts of a Shapefile taken from a zip; the first three are required.
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
#: A Shapefile's ``.shp`` and ``.shx`` start with the file code 9994 (big-endian).
SHAPEFILE_CODE = (9994).to_bytes(4, "big")
#: The application ids of a GeoPackage (bytes 68–71 of the SQLite header): 1.2+, and the older 1.0 and 1.1.
GEOPACKAGE_IDS = (b"GPKG", b"GP10", b"GP11")
#: SQL in a GeoPackage's schema that could read other files or the network through GDAL or SQLite.
_OUTSIDE_CALLS = re.compile(r"\b(?:ogr|gdal)_\w+\s*\(|\bload_extension\s*\(|\bvirtualogr\b", re.IGNORECASE)
_VIRTUAL_TABLE = re.compile(r"\s*CREATE\s+VIRTUAL\s+TABLE\s.*?\bUSING\s+(\w+)", re.IGNORECASE | re.DOTALL)
#: The head of a schema entry, ``CREATE … name``: a table may be called ``ogr_x`` without calling anything.
_SCHEMA_HEAD = re.compile(r"\s*CREATE\s+(?:TEMP\w*\s+)?(?:VIRTUAL\s+|UNIQUE\s+)?(?:TABLE|VIEW|TRIGGER|INDEX)\s+"
                          r"(?:IF\s+NOT\s+EXISTS\s+)?(?:\"[^\"]*\"|'[^']*'|`[^`]*`|\[[^\]]*\]|\S+)", re.IGNORECASE)
#: GDAL's settings while an office's file is read (see :func:`gdal_locked_down`).
GDAL_LOCKDOWN = {
    # /vsicurl/, /vsis3/… may open only this name, which is nothing
    "CPL_VSIL_CURL_ALLOWED_FILENAME": "/vsicurl/http://gisapp.invalid/nothing",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".gisapp-nothing",
    # any other HTTP request of GDAL's goes to a closed local port, once, and gives up at once
    "GDAL_HTTP_PROXY": "127.0.0.1:9",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_NETRC": "NO",
    "PROJ_NETWORK": "OFF",
    # SQLite and GeoPackage: no SQL function or virtual table that opens another data source
    "OGR_SQLITE_ALLOW_EXTERNAL_ACCESS": "NO",
    "ALLOW_OGR_SQL_FUNCTIONS_FROM_TRIGGER_AND_VIEW": "NO",
    "OGR_SQLITE_DIALECT_ALLOW_CREATE_VIRTUAL_TABLE": "NO",
}
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
                "opt_rename": "name it in a --mapping file", "opt_any_driver": " (--allow-any-driver lets GDAL try)"}

    def field_(label_key: str) -> str:
        return i18n.text("import_form_field", lang, label=i18n.text(label_key, lang))

    return {"opt_crs": field_("ui_crs_if_the_file_has_none"),
            "opt_parcels": field_("ui_parcels_for_a_table_of_dossiers"),
            "opt_sheet": field_("ui_sheet_xlsx"), "opt_rename": i18n.text("import_rename_columns", lang),
            "opt_any_driver": ""}


@dataclass(frozen=True)
class ReadLimits:
    """How much one uploaded file may unpack to and hold; ``None``: no limit (the command line's files)."""

    unpacked_mb: int | None = None  # a zip's dataset, or an XLSX workbook, unpacked
    features: int | None = None  # features of a vector file, data rows of a table

    @property
    def unpacked_bytes(self) -> int | None:
        """:attr:`unpacked_mb` in bytes."""
        return None if self.unpacked_mb is None else self.unpacked_mb << 20

    def check_rows(self, count: int, name: str, margin: int = 0) -> None:
        """Refuse ``count`` rows (of which ``margin`` may be headers and titles) beyond :attr:`features`."""
        if self.features is not None and count > self.features + margin:
            raise ImportFailure("import_too_many_features", name=name, limit=self.features)

    def read_at_most(self, margin: int = 0) -> int | None:
        """How many rows a reader reads at most: one more than allowed, so that too many are seen."""
        return None if self.features is None else self.features + margin + 1


NO_LIMITS = ReadLimits()


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


def read_source(path, *, sheet: str | None = None, header_keys=frozenset(), prefer_layer: str | None = None,
                allow_any_driver: bool = False, limits: ReadLimits = NO_LIMITS) -> Source:
    """Read ``path`` by its suffix: a GeoJSON, GeoPackage, Shapefile (or a zip of one), a CSV or an XLSX workbook.

    ``sheet`` picks the XLSX sheet (or the layer of a multi-layer vector
    file); ``header_keys`` (folded header names, see
    :func:`gisapp.importing.values.key`) help find the header row of a
    table that has title lines above it.  The file's content must be its
    format (see the module's docstring); ``allow_any_driver`` lets GDAL read
    any file the way it likes (a shell user's choice, never an upload's).
    ``limits`` refuse, as early as it can be known, a file that unpacks to
    or holds too much.
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFailure("import_no_file", name=path.name)
    try:
        if allow_any_driver:
            return _read_by_suffix(path, sheet, header_keys, prefer_layer, any_driver=True)
        with contextlib.ExitStack() as stack:
            stack.enter_context(gdal_locked_down())
            if path.suffix.lower() == ".zip":
                folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gisapp-")))
                path = unpack_zip(path, folder, limits.unpacked_bytes)
            source = _read_by_suffix(path, sheet, header_keys, prefer_layer, limits=limits)
        limits.check_rows(len(source), source.path.name)
        return source
    except ImportFailure:
        raise
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as err:
        raise ImportFailure("import_unreadable_vector", name=path.name, detail=_gdal_detail(err)) from None
    except (OSError, ValueError, KeyError, IndexError, csv.Error) as err:
        raise ImportFailure("import_unreadable", name=path.name, detail=_gdal_detail(err)) from None


def _read_by_suffix(path: Path, sheet, header_keys, prefer_layer, any_driver: bool = False,
                    limits: ReadLimits = NO_LIMITS) -> Source:
    """:func:`read_source` of a file (not a zip, unless ``any_driver``), with the checks of its format."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return read_csv(path, header_keys=header_keys, limits=limits)
    if suffix == ".xls":
        raise ImportFailure("import_old_xls", name=path.name)
    if any_driver:
        if suffix in (".xlsx", ".xlsm"):
            return read_xlsx(path, sheet=sheet, header_keys=header_keys)
        return read_vector(path, layer=sheet, prefer_layer=prefer_layer)
    driver = DRIVERS.get(suffix)
    if driver is None:
        raise ImportFailure("import_format_refused", name=path.name, suffix=suffix or "(no suffix)")
    _CHECKS[driver](path, limits)
    if driver == "XLSX":
        return read_xlsx(path, sheet=sheet, header_keys=header_keys, limits=limits)
    return read_vector(path, layer=sheet, prefer_layer=prefer_layer, driver=driver, limits=limits)


def _first_line(err: Exception) -> str:
    """The first line of an exception's message."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


_FOLDERS = re.compile(r"(?<![\w.])/(?:[^\s'\"/]+/)+")
_GDAL_ADVICE = re.compile(r";?\s*It might help to specify the correct driver.*$")


def _gdal_detail(err: Exception) -> str:
    """The first line of a reader's error, without folders (no server paths in messages) or GDAL's advice."""
    return _GDAL_ADVICE.sub("", _FOLDERS.sub("", _first_line(err))).strip() or type(err).__name__


# -- what a file is --------------------------------------------------------


@contextlib.contextmanager
def gdal_locked_down():
    """GDAL kept off the network and away from other data sources while an office's file is read.

    Sets :data:`GDAL_LOCKDOWN` (over any environment variable of the same
    name) and restores the previous settings after.  GDAL's settings are
    the process's: do not read files in other threads meanwhile (the upload
    page reads in a child process, :mod:`gisapp.importing.child`).
    """
    before = {name: pyogrio.get_gdal_config_option(name) for name in GDAL_LOCKDOWN}
    pyogrio.set_gdal_config_options(GDAL_LOCKDOWN)
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(before)


def _gdal_name(path: Path, driver: str | None) -> str:
    """What GDAL opens for ``path``: its absolute path, prefixed with ``driver`` where GDAL takes a prefix."""
    if driver is None:
        return str(path)
    name = os.path.abspath(path)
    if name.startswith("/vsi") or not os.path.isfile(name):
        raise ImportFailure("import_no_file", name=path.name)
    return f"{driver}:{name}" if driver in ("GPKG", "GeoJSON") else name


def _head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of ``path`` (fewer when it is shorter)."""
    with open(path, "rb") as fh:
        return fh.read(size)


def check_geojson(path: Path, limits: ReadLimits = NO_LIMITS) -> None:
    """Refuse a ``.geojson``/``.json`` that does not start with ``{`` (after a BOM and white space)."""
    head = _head(path, 4096).removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")
    if not head.startswith(b"{"):
        raise ImportFailure("import_not_geojson", name=path.name)


def check_geopackage(path: Path, limits: ReadLimits = NO_LIMITS) -> None:
    """Refuse anything but an SQLite file with a GeoPackage application id, or one whose schema reaches out.

    The schema is read with Python's ``sqlite3`` (read-only, nothing of it
    run): virtual tables other than R-trees (e.g. GDAL's ``VirtualOGR``,
    which reads any data source) and views or triggers calling GDAL's SQL
    functions (``ogr_datasource_load_layers``…) or ``load_extension`` are
    refused, whatever GDAL's settings.
    """
    head = _head(path, 100)
    if not head.startswith(b"SQLite format 3\x00") or head[68:72] not in GEOPACKAGE_IDS:
        raise ImportFailure("import_not_gpkg", name=path.name)
    try:
        with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro&immutable=1", uri=True)) as con:
            schema = con.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL").fetchall()
    except sqlite3.Error:
        raise ImportFailure("import_not_gpkg", name=path.name) from None
    for name, sql in schema:
        virtual = _VIRTUAL_TABLE.match(sql)
        if (virtual and virtual.group(1).lower() != "rtree") or _OUTSIDE_CALLS.search(_SCHEMA_HEAD.sub("", sql, 1)):
            raise ImportFailure("import_gpkg_refused", name=path.name, what=name)


def check_shapefile(path: Path, limits: ReadLimits = NO_LIMITS) -> None:
    """Refuse a ``.shp`` without its ``.shx`` and ``.dbf`` beside it, or whose ``.shp``/``.shx`` are not Shapefiles."""
    if _head(path, 4) != SHAPEFILE_CODE:
        raise ImportFailure("import_not_shapefile", name=path.name)
    parts = _shapefile_parts(path)
    missing = [suffix for suffix in SHAPEFILE_PARTS[1:3] if suffix not in parts]
    if missing:
        raise ImportFailure("import_shapefile_incomplete", name=path.name, missing=", ".join(missing))
    if _head(parts[".shx"], 4) != SHAPEFILE_CODE:
        raise ImportFailure("import_not_shapefile", name=parts[".shx"].name)


def _shapefile_parts(path: Path) -> dict[str, Path]:
    """The files beside ``path`` with its name and a Shapefile part's suffix (any case), by suffix."""
    stem = path.stem.casefold()
    parts: dict[str, Path] = {}
    for sibling in path.parent.iterdir():
        suffix = sibling.suffix.lower()
        if suffix in SHAPEFILE_PARTS and sibling.stem.casefold() == stem and sibling.is_file():
            parts.setdefault(suffix, sibling)
    parts[".shp"] = path
    return parts


def check_xlsx(path: Path, limits: ReadLimits = NO_LIMITS) -> None:
    """Refuse an ``.xlsx`` that is not a zip holding ``xl/workbook.xml`` and ``[Content_Types].xml``,
    or that unpacks (by its headers) to more than ``limits`` allow."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError):
        raise ImportFailure("import_not_xlsx", name=path.name) from None
    if not {"xl/workbook.xml", "[Content_Types].xml"} <= {m.filename for m in members}:
        raise ImportFailure("import_not_xlsx", name=path.name)
    if limits.unpacked_bytes is not None and sum(m.file_size for m in members) > limits.unpacked_bytes:
        raise ImportFailure("import_unpacks_too_big", name=path.name, limit=limits.unpacked_mb)


_CHECKS = {"GeoJSON": check_geojson, "GPKG": check_geopackage, "ESRI Shapefile": check_shapefile,
           "XLSX": check_xlsx}


def safe_name(filename: str) -> str:
    """A file name without folders or odd characters, keeping its extension (lower-case)."""
    name = Path((filename or "").replace("\\", "/")).name
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "upload"
    return f"{stem[:80]}{suffix}"


def unpack_zip(path: Path, folder: Path, max_bytes: int | None = None) -> Path:
    """Unpack the one dataset of the zip ``path`` into ``folder``; the path of its main file there.

    The zip may hold one Shapefile (its ``.shp``, ``.shx``, ``.dbf`` and
    optional ``.prj``/``.cpg``, in one folder of the zip) or one GeoJSON,
    GeoPackage, CSV or XLSX file; other files (a readme, macOS litter) are
    left packed.  Files are written under safe names of Python's choosing,
    never the zip's own paths.  More than ``max_bytes`` unpacked is refused,
    by the zip's headers first, then while unpacking (headers can lie).
    """
    name = path.name
    limit_mb = None if max_bytes is None else max_bytes >> 20
    try:
        with zipfile.ZipFile(path) as zf:
            parts = _zip_dataset(zf, name)
            if max_bytes is not None and sum(m.file_size for m in parts.values()) > max_bytes:
                raise ImportFailure("import_unpacks_too_big", name=name, limit=limit_mb)
            stem = Path(safe_name(_member_path(parts[next(iter(parts))]).name)).stem
            budget = max_bytes
            for suffix, member in parts.items():
                with zf.open(member) as src, open(folder / f"{stem}{suffix}", "xb") as dst:
                    budget = _copy_within(src, dst, budget)
                if budget is not None and budget < 0:
                    raise ImportFailure("import_unpacks_too_big", name=name, limit=limit_mb)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, EOFError, OSError,
            zlib.error) as err:
        raise ImportFailure("import_zip_bad", name=name, detail=_gdal_detail(err)) from None
    return folder / f"{stem}{next(iter(parts))}"


def _copy_within(src, dst, budget: int | None) -> int | None:
    """Copy ``src`` to ``dst`` until done or past ``budget`` bytes; the budget left (negative: past it)."""
    while chunk := src.read(1 << 20):
        if budget is not None:
            budget -= len(chunk)
            if budget < 0:
                break
        dst.write(chunk)
    return budget


def _zip_dataset(zf: zipfile.ZipFile, name: str) -> dict[str, zipfile.ZipInfo]:
    """The members of the zip's one dataset by suffix, the main one first; :class:`ImportFailure` otherwise."""
    members = [m for m in zf.infolist() if not m.is_dir() and not _litter(m)]
    datasets = [m for m in members if _member_path(m).suffix.lower() in ZIP_DATASETS]
    if not datasets:
        raise ImportFailure("import_zip_no_dataset", name=name)
    if len(datasets) > 1:
        found = ", ".join(_member_path(m).name for m in datasets[:5])
        raise ImportFailure("import_zip_many", name=name, found=found + (", …" if len(datasets) > 5 else ""))
    main = _member_path(datasets[0])
    suffix = main.suffix.lower()
    if suffix != ".shp":
        return {suffix: datasets[0]}
    parts = {".shp": datasets[0]}
    for m in members:
        p = _member_path(m)
        same = p.parent == main.parent and p.stem.casefold() == main.stem.casefold()
        if same and p.suffix.lower() in SHAPEFILE_PARTS:
            parts.setdefault(p.suffix.lower(), m)
    missing = [s for s in SHAPEFILE_PARTS[1:3] if s not in parts]
    if missing:
        raise ImportFailure("import_shapefile_incomplete", name=f"{name}: {main.name}", missing=", ".join(missing))
    return parts


def _member_path(member: zipfile.ZipInfo) -> PurePosixPath:
    """A zip member's path, with Windows' ``\\`` read as ``/``."""
    return PurePosixPath(member.filename.replace("\\", "/"))


def _litter(member: zipfile.ZipInfo) -> bool:
    """True for what archivers add beside the data: ``__MACOSX/``, ``._x``, ``.DS_Store`` and other dot files."""
    p = _member_path(member)
    return "__MACOSX" in p.parts or p.name.startswith(".")


# -- vector files ----------------------------------------------------------


def read_vector(path: Path, *, layer: str | None = None, prefer_layer: str | None = None,
                driver: str | None = None, limits: ReadLimits = NO_LIMITS) -> Source:
    """A Shapefile, GeoPackage, GeoJSON (or other OGR format) read with its own CRS.

    In a file with several layers, ``layer`` picks one; otherwise a layer
    named ``prefer_layer`` is used, else the first, with a warning.  With a
    ``driver``, GDAL is told to use it where it takes a prefix (``GPKG:``,
    ``GeoJSON:``) and a file it opened with another is refused.  A layer
    with more features than ``limits`` allow is refused before it is read
    (by its count), or after reading one too many (a count can lie).
    """
    warnings = []
    gdal = _gdal_name(path, driver)
    layers = [name for name, _ in pyogrio.list_layers(gdal)]
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
    if driver is not None or limits.features is not None:
        info = pyogrio.read_info(gdal, layer=chosen)
        if driver is not None and info["driver"] != driver:
            raise ImportFailure("import_format_mismatch", name=path.name, driver=info["driver"], expected=driver)
        limits.check_rows(info["features"], path.name)
    frame = pyogrio.read_dataframe(gdal, layer=chosen, use_arrow=True, max_features=limits.read_at_most())
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
    candidates: tuple[str, ...]
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
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def read_csv(path: Path, *, header_keys=frozenset(), limits: ReadLimits = NO_LIMITS) -> Source:
    """A CSV file: encoding detected, delimiter sniffed, header row found.

    A file with more lines than ``limits`` allow rows (and a header) is refused before it is parsed.
    """
    data = path.read_bytes()
    limits.check_rows(data.count(b"\n"), path.name, margin=HEADER_SEARCH_ROWS + 1)
    text, encoding = decode_text(data, path.name)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)))
    return _table(path, _cells(rows), np.arange(1, len(rows) + 1), header_keys, f"encoding {encoding}")


def read_xlsx(path: Path, *, sheet: str | None = None, header_keys=frozenset(), engine: str = "gdal",
              limits: ReadLimits = NO_LIMITS) -> Source:
    """One sheet of an XLSX workbook: ``sheet`` is a name (case- and accent-blind) or a 1-based number.

    The cells are read by GDAL's XLSX driver (``engine="gdal"``, through
    pyogrio, every cell as text: about ten times faster than openpyxl on a
    100,000-row export); openpyxl in read-only mode (``engine="openpyxl"``)
    is the fallback for workbooks GDAL does not open.  Both give the same
    rows and row numbers; date cells arrive as dates (openpyxl) or as
    ``YYYY/MM/DD`` text (GDAL), which :func:`gisapp.importing.values.parse_dates`
    reads alike.  At most one row more than ``limits`` allow (with headers)
    is read.
    """
    margin = HEADER_SEARCH_ROWS + 1
    if engine == "gdal":
        try:
            names = xlsx_sheet_names(path)
        except (zipfile.BadZipFile, KeyError, ET.ParseError):
            engine = "openpyxl"
    if engine == "openpyxl":
        return _read_xlsx_openpyxl(path, sheet, header_keys, limits.read_at_most(margin))
    chosen = _pick_sheet(path, names, sheet)
    try:
        if limits.features is not None:
            limits.check_rows(pyogrio.read_info(path, layer=chosen)["features"], path.name, margin)
        frame = pyogrio.read_dataframe(path, layer=chosen, use_arrow=True, fid_as_index=True,
                                       HEADERS="DISABLE", FIELD_TYPES="STRING",
                                       max_features=limits.read_at_most(margin))
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError):
        # e.g. an empty sheet GDAL does not list
        return _read_xlsx_openpyxl(path, chosen, header_keys, limits.read_at_most(margin))
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
    return [el.get("name", "") for el in book.iter() if el.tag.endswith("}sheet") or el.tag == "sheet"]


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


def _read_xlsx_openpyxl(path: Path, sheet: str | None, header_keys, max_rows: int | None = None) -> Source:
    """:func:`read_xlsx` with openpyxl in read-only mode (cached values of formulas), at most ``max_rows`` rows."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises many kinds on a broken file
        raise ImportFailure("import_bad_xlsx", name=path.name, detail=_gdal_detail(err)) from None
    try:
        chosen = _pick_sheet(path, book.sheetnames, sheet)
        ws = book[chosen]
        ws.reset_dimensions()  # some exporters write a wrong sheet size; read every cell
        rows = list(itertools.islice(ws.iter_rows(values_only=True), max_rows))
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
    names: list[str] = []
    seen: dict[str, int] = {}
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
