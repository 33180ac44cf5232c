"""The analysis of a whole store: its layers read column by column, then analysed here."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from gisapp.analysis.overlaps import AnalysisParams, AnalysisResult, empty_findings, find_overlaps, findings_rows
from gisapp.inspections import unpermitted_findings
from gisapp.kept import free_in_background
from gisapp.progress import SILENT, Progress
from gisapp.schema import STORE_CRS
from gisapp.store import Store
from gisapp.store.base import empty_frame, store_layer

LAYERS = ("construction_permits", "sidewalk_permits", "wards", "sidewalks")
#: Layers read at once by :func:`analyze_store`: the two large ones, and the two small ones one after the other
#: beside them (a small layer read after a large one finished would add its whole read to the wait).
READ_THREADS = 3
#: The fields of each layer :func:`gisapp.analysis.overlaps.find_overlaps` reads (the rest are not read).
ANALYSED_FIELDS = {
    "construction_permits": ["dossier_code", "ward_code", "received_on", "issued_on"],
    "sidewalk_permits": ["permit_no", "ward_code", "start_on", "end_on", "sidewalk_width_m", "used_width_m",
                         "construction_dossier_code"],
    "wards": ["ward_key", "ward_code", "name", "valid_from", "valid_to"],
    "sidewalks": ["width_m"],
}
#: The layers :func:`analyze_store` hands the analysis as WKB: a million parcels and permits each, nearly all
#: convex quadrilaterals the analysis reads from the WKB itself, making shapely objects only of the few GEOS must
#: see (:class:`gisapp.analysis.geoms.Geometries`); the wards and sidewalks are read as objects.
AS_WKB = ("construction_permits", "sidewalk_permits")


def analyze_store(store: Store, params: AnalysisParams, progress: Progress = SILENT, *,
                  then_replace: bool = False) -> tuple[AnalysisResult, float]:
    """Every finding of ``store``, and the seconds spent reading its layers.

    Both backends read the analysed columns of the layers (:func:`read_layer`:
    GDAL from a GeoPackage, each column packed by the server from PostGIS) and analyse them
    with :func:`gisapp.analysis.overlaps.find_overlaps`, so both give the same
    findings by construction.  (An SQL twin that computed the same findings in
    PostGIS took 11 s against 6 s for reading and analysing at 100,000 permits
    per layer on the shared 2-core machine; it was removed.)
    ``progress`` hears ``("read", rows read, rows in all, "rows")`` layer by
    layer, then ``("analyse",)``.  The ``UNPERMITTED`` findings come from the store's inspections
    (:func:`with_unpermitted`), so a new analysis keeps them.  With ``then_replace`` (the caller replaces
    the stored findings next) the store may read the stored findings while the layers are analysed
    (:meth:`Store.prefetch_replace`).
    """
    started = time.perf_counter()
    layers, done = {}, 0
    # the layers at once: each read is a database's work (a PostgreSQL backend, GDAL) then Arrow's (and
    # shapely's, for the small layers read as objects), which release the GIL, so the reads keep both cores busy
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        reading = {pool.submit(read_layer, store, name, wkb=name in AS_WKB): name for name in LAYERS}
        # counted while they are read (the progress's total only; four counts take ~0.1 s on PostGIS at 1M)
        total = sum(store.count(name) for name in LAYERS)
        progress("read", 0, total, "rows")
        for future in as_completed(reading):
            layers[reading[future]] = future.result()
            done += len(layers[reading[future]])
            progress("read", done, total, "rows")
    read_s = time.perf_counter() - started
    if then_replace:
        store.prefetch_replace("findings")
    progress("analyse")
    result = find_overlaps(layers["construction_permits"], layers["sidewalk_permits"], layers["wards"], params,
                           sidewalks=layers["sidewalks"])
    free_in_background(layers.values())  # ~2M geometries: freed beside the findings' write, not before it
    del layers
    return with_unpermitted(result, store), read_s


def read_layer(store: Store, name: str, *, wkb: bool = False) -> gpd.GeoDataFrame | pd.DataFrame:
    """The columns of layer ``name`` the analysis reads (:data:`ANALYSED_FIELDS`), in key order.

    Through :meth:`Store.read_arrow` (GDAL reads a GeoPackage; a PostGIS table
    comes as packed columns: no Python object per value but the texts), columns as
    :meth:`Store.read` types them: text as objects (``None`` when missing),
    dates as datetime64, numbers as float.  The geometries as shapely objects
    (a GeoDataFrame), or with ``wkb`` as their WKB (EPSG:5899), an Arrow binary
    ``geometry`` column of a plain frame, and the texts left in Arrow (a
    ``pd.ArrowDtype`` column, null when missing), which
    :func:`gisapp.analysis.overlaps.find_overlaps` reads without making an
    object of every geometry or text.
    """
    fields = ANALYSED_FIELDS[name]
    table = store.read_arrow(name, fields=fields)
    if table is None:
        return empty_frame(store_layer(name))[[*fields, "geometry"]]
    data = {}
    for field in fields:
        column = table.column(field)
        if pa.types.is_date32(column.type):
            data[field] = column.cast(pa.timestamp("ms")).to_numpy()
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            data[field] = pd.Series(pd.arrays.ArrowExtensionArray(column)) if wkb \
                else pd.Series(text_objects(column), dtype=object)  # (with wkb: no Python string per value)
        else:
            data[field] = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    if wkb:
        return pd.DataFrame({**data, "geometry": pd.arrays.ArrowExtensionArray(table.column("geometry"))})
    geometry = shapely.from_wkb(column_wkb(table.column("geometry")))
    return gpd.GeoDataFrame(data, geometry=geometry, crs=STORE_CRS)


#: A text column whose first :data:`SAMPLE_ROWS` values hold at most :data:`FEW_TEXTS` distinct ones (a ward code, a
#: kind) is made into Python strings through its dictionary: one string per distinct value, shared by its rows.
SAMPLE_ROWS, FEW_TEXTS = 4096, 256


def text_objects(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow text column as an object array of ``str`` (``None`` where missing), the values of
    ``column.to_numpy(zero_copy_only=False)``.

    A column of few distinct values (a ward code: six in a million rows) goes through its dictionary, so that
    each distinct text becomes one Python string, not one per row (~4× faster).
    """
    if len(column) > SAMPLE_ROWS and pc.count_distinct(column.slice(0, SAMPLE_ROWS)).as_py() <= FEW_TEXTS:
        encoded = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
        dictionary = encoded.dictionary
        texts = np.append(dictionary.to_numpy(zero_copy_only=False), [None])  # the last: a missing value
        return texts[encoded.indices.fill_null(len(dictionary)).to_numpy(zero_copy_only=False)]
    return column.to_numpy(zero_copy_only=False)


def column_wkb(column: pa.ChunkedArray) -> np.ndarray:
    """An Arrow column of WKB as an object array of bytes (``None`` where missing)."""
    return column.to_numpy(zero_copy_only=False)


def with_unpermitted(result: AnalysisResult, store: Store) -> AnalysisResult:
    """``result`` with the ``UNPERMITTED`` findings of the store's inspections added (the summary counts the
    computed kinds only)."""
    extra = unpermitted_findings(store.inspections())
    if not len(extra):
        return result
    typed = extra.astype(empty_findings().dtypes.to_dict(), errors="ignore")
    return dataclasses.replace(result, rows=pd.concat([result.rows, findings_rows(typed)], ignore_index=True))
