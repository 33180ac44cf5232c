"""Exports of a filtered view as GeoJSON, CSV or GeoPackage, streamed in batches.

Pure: no Flask.  Every format reads the store batch by batch
(:meth:`gisapp.store.Store.iter_arrow`: :class:`ArrowSource`), so
memory stays flat however many features match, and an empty match is a
valid empty file (a FeatureCollection without features, a CSV header, a
GeoPackage layer without rows).

- GeoJSON: RFC 7946 (:mod:`gisapp.formats.geojson`).
- CSV: UTF-8 with a byte-order mark (Excel then reads Vietnamese letters
  right), ISO dates, the geometry as WKT in WGS84 and its centroid's
  ``lon``/``lat``; text that a spreadsheet would run as a formula is
  prefixed with ``'``.
- GeoPackage: EPSG:5899 (the cadastral system) unless ``crs=4326``.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyogrio
import shapely

from gisapp import geo
from gisapp.filters import Filter, FilterError
from gisapp.formats import geojson
from gisapp.formulas import defuse as _defuse
from gisapp.privacy import visible_fields
from gisapp.progress import Progress, counted
from gisapp.schema import STORE_CRS, Layer, get_layer

FORMATS = ("geojson", "csv", "gpkg")
MEDIA_TYPES = {
    "geojson": "application/geo+json",
    "csv": "text/csv; charset=utf-8",
    "gpkg": "application/geopackage+sqlite3",
}
#: Values of the ``crs`` parameter of GeoPackage exports.
CRS_NAMES = {"5899": "EPSG:5899", "epsg:5899": "EPSG:5899", "4326": "EPSG:4326", "epsg:4326": "EPSG:4326"}
BATCH_SIZE = 5000
BOM = "\ufeff".encode()
_ARROW_TYPES = {"text": pa.string(), "int": pa.int32(), "float": pa.float64(), "date": pa.date32()}


class ArrowSource(Protocol):
    """What an export reads: a store (:class:`gisapp.store.Store`, which this room cannot import)."""

    def iter_arrow(self, layer: str, flt: Filter | None = None, *, fields: list[str] | None = None,
                   batch_size: int = 5000, limit: int | None = None, offset: int = 0,
                   geometry: str = "wkb") -> Iterator[pa.Table]:
        """Matching features as Arrow tables in key order (:meth:`gisapp.store.Store.iter_arrow`)."""


class CountingSource:
    """An :class:`ArrowSource` that tells ``progress`` how many of ``total`` rows it has handed out (``export``)."""

    def __init__(self, source: ArrowSource, progress: Progress, total: int | None):
        self.source, self.progress, self.total = source, progress, total

    def iter_arrow(self, layer: str, flt: Filter | None = None, *, fields: list[str] | None = None,
                   batch_size: int = 5000, limit: int | None = None, offset: int = 0,
                   geometry: str = "wkb") -> Iterator[pa.Table]:
        tables = self.source.iter_arrow(layer, flt, fields=fields, batch_size=batch_size, limit=limit,
                                        offset=offset, geometry=geometry)
        return counted(tables, self.progress, "export", self.total, "rows", size=lambda t: t.num_rows)


def parse_format(text: str) -> str:
    """``geojson``, ``csv`` or ``gpkg`` (also from a file name's extension), else :class:`FilterError`."""
    fmt = (text or "").rsplit(".", 1)[-1].lower()
    fmt = {"json": "geojson"}.get(fmt, fmt)
    if fmt not in FORMATS:
        raise FilterError("format", f"{text!r} is not an export format; use one of {', '.join(FORMATS)}")
    return fmt


def parse_crs(text: str | None) -> str:
    """The GeoPackage export CRS: EPSG:5899 by default, EPSG:4326 on request."""
    if text is None or text == "":
        return STORE_CRS
    crs = CRS_NAMES.get(str(text).strip().lower())
    if crs is None:
        raise FilterError("crs", f"{text!r} is not offered; use 5899 (VN-2000 / TM-3 107-45) or 4326 (WGS84)")
    return crs


def batches(store: ArrowSource, layer: str, flt: Filter | None, fields: list[str],
            batch_size: int = BATCH_SIZE) -> Iterator[pa.Table]:
    """Matching features in key order, as Arrow tables."""
    return store.iter_arrow(layer, flt, fields=fields, batch_size=batch_size)


def _props_and_wkb(batch, fields: list[str]) -> tuple[dict[str, pa.Array], pa.Array]:
    """Typed property arrays and WKB geometries (EPSG:5899) of an Arrow batch."""
    props = {n: _combine(batch.column(n)) for n in fields}
    return props, _combine(batch.column("geometry")).cast(pa.binary())


def _combine(col):
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


# -- GeoJSON ------------------------------------------------------------------

def geojson_chunks(store: ArrowSource, layer: str, flt: Filter | None, fields: list[str]) -> Iterator[bytes]:
    """An RFC 7946 FeatureCollection, one chunk per batch, with each row's stored GeoJSON geometry (as API pages)."""
    tables = store.iter_arrow(layer, flt, fields=fields, batch_size=BATCH_SIZE, geometry="geojson")
    return geojson.collection_chunks(tables, get_layer(layer), fields)


# -- CSV ----------------------------------------------------------------------

def csv_chunks(store: ArrowSource, layer: str, flt: Filter | None, fields: list[str]) -> Iterator[bytes]:
    """CSV with a BOM and a header; ``wkt``, ``lon`` and ``lat`` after the layer's fields."""
    lay = get_layer(layer)
    yield BOM
    header = True
    for batch in batches(store, layer, flt, fields):
        yield _csv_text(lay, *_props_and_wkb(batch, fields), header=header)
        header = False
    if header:
        empty = {n: pa.array([], _ARROW_TYPES[lay.field(n).type]) for n in fields}
        yield _csv_text(lay, empty, pa.array([], pa.binary()), header=True)


def _csv_text(lay: Layer, props: dict[str, pa.Array], wkb: pa.Array, *, header: bool) -> bytes:
    geoms = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))
    web = geojson.web_geometries(geoms)
    wkt = shapely.to_wkt(web, rounding_precision=geojson.PRECISION, trim=True)
    centroids = geo.transform(shapely.centroid(geoms)) if len(geoms) else geoms
    lon = np.round(shapely.get_x(centroids), geojson.PRECISION) if len(geoms) else np.array([], float)
    lat = np.round(shapely.get_y(centroids), geojson.PRECISION) if len(geoms) else np.array([], float)
    columns = {name: _defuse(arr) for name, arr in props.items()}
    columns["wkt"] = pa.array(wkt, pa.string(), from_pandas=True)
    columns["lon"] = pa.array(lon, pa.float64(), from_pandas=True)
    columns["lat"] = pa.array(lat, pa.float64(), from_pandas=True)
    out = io.BytesIO()
    pacsv.write_csv(pa.table(columns), out, pacsv.WriteOptions(include_header=header))
    return out.getvalue()


# -- GeoPackage ---------------------------------------------------------------

def gpkg_chunks(store: ArrowSource, layer: str, flt: Filter | None, fields: list[str], crs: str = STORE_CRS,
                chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """A GeoPackage with one layer, written to a temporary file and then streamed."""
    tmpdir = tempfile.mkdtemp(prefix="gisapp-export-")
    try:
        path = Path(tmpdir) / f"{layer}.gpkg"
        write_gpkg(store, layer, flt, fields, path, crs)
        with open(path, "rb") as fh:
            while chunk := fh.read(chunk_size):
                yield chunk
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def write_gpkg(store: ArrowSource, layer: str, flt: Filter | None, fields: list[str], path,
               crs: str = STORE_CRS) -> int:
    """Write the matching features to a new GeoPackage at ``path``; returns how many."""
    lay = get_layer(layer)
    written = 0
    for batch in batches(store, layer, flt, fields, batch_size=50_000):
        props, wkb = _props_and_wkb(batch, fields)
        _write_gpkg_batch(path, lay, fields, props, wkb, crs, append=written > 0)
        written += len(wkb)
    if not written:
        empty = {n: pa.array([], _ARROW_TYPES[lay.field(n).type]) for n in fields}
        _write_gpkg_batch(path, lay, fields, empty, pa.array([], pa.binary()), crs, append=False)
    return written


def _write_gpkg_batch(path, lay: Layer, fields, props, wkb: pa.Array, crs: str, *, append: bool) -> None:
    if len(wkb):
        geoms = geo.to_multipolygons(shapely.from_wkb(wkb.to_numpy(zero_copy_only=False)))
        if crs != STORE_CRS:
            geoms = geo.transform(geoms, STORE_CRS, crs)
        wkb = pa.array(shapely.to_wkb(geoms, byte_order=1), pa.binary())
    arrays = [props[n].cast(_ARROW_TYPES[lay.field(n).type]) for n in fields] + [wkb]
    schema = pa.schema([pa.field(n, _ARROW_TYPES[lay.field(n).type]) for n in fields]
                       + [pa.field("geom", pa.binary(), metadata={b"ARROW:extension:name": b"geoarrow.wkb"})])
    pyogrio.write_arrow(
        pa.Table.from_arrays(arrays, schema=schema), path, layer=lay.name, driver="GPKG",
        geometry_name="geom", geometry_type=lay.geometry, crs=crs, append=append,
        layer_options=None if append else {"DESCRIPTION": lay.en, "FID": "fid"},
        dataset_options=None if append else {"VERSION": "1.2"},  # readable by older GDAL/QGIS too
    )


# -- one entry point ----------------------------------------------------------

def chunks(store: ArrowSource, layer: str, flt: Filter | None, fmt: str, *, crs: str | None = None,
           show_personal: bool = False) -> Iterator[bytes]:
    """The export of ``layer`` filtered by ``flt`` in ``fmt``, as byte chunks.

    Personal fields are left out unless ``show_personal``
    (:func:`gisapp.privacy.show_personal` decides that for a request).
    """
    fmt = parse_format(fmt)
    lay = get_layer(layer)
    fields = visible_fields(lay, show_personal)
    if fmt == "geojson":
        return geojson_chunks(store, layer, flt, fields)
    if fmt == "csv":
        return csv_chunks(store, layer, flt, fields)
    return gpkg_chunks(store, layer, flt, fields, parse_crs(crs))


def export(store: ArrowSource, layer: str, flt: Filter | None, fmt: str, out, crs: str | None = None, *,
           show_personal: bool = False) -> int:
    """Write the export to ``out`` (a path or a binary file object); returns the bytes written."""
    if isinstance(out, (str, Path)):
        if parse_format(fmt) == "gpkg":
            lay = get_layer(layer)
            Path(out).unlink(missing_ok=True)
            write_gpkg(store, layer, flt, visible_fields(lay, show_personal), out, parse_crs(crs))
            return Path(out).stat().st_size
        with open(out, "wb") as fh:
            return export(store, layer, flt, fmt, fh, crs, show_personal=show_personal)
    size = 0
    for chunk in chunks(store, layer, flt, fmt, crs=crs, show_personal=show_personal):
        out.write(chunk)
        size += len(chunk)
    return size


def filename(layer: str, flt: Filter | None, fmt: str, day: dt.date | None = None) -> str:
    """A descriptive, safe download name: layer, ward(s), date range, export date.

    ``construction_permits_20260_2022-01-01_2022-06-30_2022-07-08.geojson``
    """
    flt = flt or Filter()
    parts = [layer]
    if flt.wards:
        wards = "-".join(flt.wards[:3]) + (f"-and-{len(flt.wards) - 3}-more" if len(flt.wards) > 3 else "")
        parts.append(wards)
    if flt.date_from or flt.date_to:
        parts.append(f"{flt.date_from or 'start'}_{flt.date_to or 'end'}")
    if flt.day:
        parts.append(f"day-{flt.day}")
    if flt.bbox:
        parts.append("bbox")
    parts.append((day or dt.date.today()).isoformat())
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(parts)).strip("-.")[:150]
    return f"{name}.{parse_format(fmt)}"
