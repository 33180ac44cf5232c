"""The hidden columns a write derives from each row, column by column: the accent-folded search texts, the
WKB and the WGS84 GeoJSON of the geometry.

No Python object per value: texts stay Arrow strings and are folded on their UTF-8 bytes by a compiled loop
(:func:`fold_arrow`); polygons become MultiPolygon WKB by splicing a header into shapely's WKB
(:func:`multipolygon_wkb`) and their GeoJSON is written from that WKB (:func:`gisapp.formats.geojson.geometry_texts`).
The work is cut into blocks of rows run on a small pool of threads (numpy, Arrow and PROJ release the
interpreter lock for most of it), so a load uses both cores when they are free.  Every function gives
exactly the text or bytes of its value-by-value definition (``fold``, ``shapely.to_wkb`` of
:func:`gisapp.geo.to_multipolygons`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import resource
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from gisapp.filters import fold
from gisapp.formats.wkb import Polygons, read_polygons

#: Rows per block of work (bounds the per-byte arrays of a block to some tens of MB).
BLOCK = 65_536
#: Threads the blocks run on (the machine's cores, at most 4).
THREADS = max(1, min(4, os.cpu_count() or 1))
#: Code points with an entry in the fold table (Latin, Vietnamese, Greek, Cyrillic, punctuation: built in ~20 ms);
#: text with others is folded by ``fold`` itself.
FOLD_CODES = 0x3000

#: Fewer texts than this are folded by ``fold`` itself (the table is not worth building for a saved feature).
FOLD_VECTOR_MIN = 2000

_fold_table: np.ndarray | None = None
#: Cores another process of this work uses meanwhile (:func:`reserve_cores`): left to it.
_reserved: contextvars.ContextVar[int] = contextvars.ContextVar("gisapp_derive_reserved", default=0)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child: the parent's threads are not there, so a pool of its own is made when needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def threads() -> int:
    """:data:`THREADS` less the cores :func:`reserve_cores` leaves to others (at least one), or one in a process
    whose address space is limited (an import's child): each thread's stack and malloc arena take ~72 MB of it,
    which an import that fitted before would miss."""
    if resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY:
        return 1
    return max(1, THREADS - _reserved.get())


@contextlib.contextmanager
def reserve_cores(cores: int) -> Iterator[None]:
    """In this block (this thread or task), derive on :data:`THREADS` less ``cores`` threads: a child process
    working beside it (a layer's writer, :class:`gisapp.store.gpkg._LayerFiles`) keeps a core of its own instead
    of sharing one with a thread that derives rows it does not wait for yet."""
    token = _reserved.set(_reserved.get() + max(0, cores))
    try:
        yield
    finally:
        _reserved.reset(token)


def blocks(n: int, size: int | None = None) -> list[tuple[int, int]]:
    """``(start, stop)`` of the blocks that cover ``n`` rows: at most ``size`` rows each (default
    :data:`BLOCK`), and as many blocks as threads at least (one empty block for none)."""
    size = max(1, min(BLOCK if size is None else size, -(-n // threads())))
    return [(s, min(s + size, n)) for s in range(0, n, size)] or [(0, 0)]


def run_blocks(func: Callable[[int, int], object], n: int, size: int | None = None) -> list:
    """``func(start, stop)`` of each block of ``n`` rows, on the pool's threads when there are several, in order."""
    spans = blocks(n, size)
    if len(spans) == 1 or threads() == 1:
        return [func(s, e) for s, e in spans]
    global _pool
    with _pool_lock:  # two first callers at once: one pool
        if _pool is None:
            _pool = ThreadPoolExecutor(THREADS, thread_name_prefix="gisapp-derive")
        pool = _pool
    return list(pool.map(lambda span: func(*span), spans))


def concat(arrays: Sequence[pa.Array], type_: pa.DataType) -> pa.Array:
    """The arrays one after another as one array of ``type_``."""
    return pa.concat_arrays([a.cast(type_) if a.type != type_ else a for a in arrays]) if arrays \
        else pa.array([], type_)


# -- text -----------------------------------------------------------------------------------------

def arrow_strings(values) -> pa.StringArray:
    """A column of texts (a pandas Series of text, Arrow-backed or of Python strings; an Arrow array) as one
    Arrow string array, missing values null; without a Python object per value when Arrow holds it."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if isinstance(values, pa.Array):
        return values if values.type == pa.string() else values.cast(pa.string())
    series = pd.Series(values)
    try:
        arr = pa.array(series, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        arr = pa.array(series.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    return arrow_strings(arr) if isinstance(arr, pa.ChunkedArray) else arr


def fold_codes() -> np.ndarray:
    """For each code point below :data:`FOLD_CODES`, the single code point :func:`~gisapp.filters.fold` makes of
    it, 0 where it makes none or several, or depends on its neighbours (Greek sigma), or the point is NUL."""
    global _fold_table
    if _fold_table is None:
        table = np.zeros(FOLD_CODES, dtype=np.int32)
        for code in range(1, FOLD_CODES):
            if 0xD800 <= code < 0xE000:
                continue
            out = fold(chr(code))
            if len(out) == 1 and out not in "\u03a3\u03c3\u03c2" and chr(code) not in "\u03a3\u03c3\u03c2":
                table[code] = ord(out)
        _fold_table = table
    return _fold_table


def _utf8(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes (uint8, from the first value's) and the value offsets into them (int64) of a string array."""
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset:arr.offset + n + 1].astype(np.int64)
    data = arr.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    return raw[offsets[0]:offsets[-1]], offsets - offsets[0]


def _fold_block(arr: pa.StringArray) -> pa.StringArray:
    """:func:`fold_arrow` of one block (no nulls).

    On the UTF-8 bytes, by a compiled loop (:func:`gisapp.formats.kernels.fold_utf8`): ASCII bytes through a
    128-entry table; each other character decoded, mapped through :func:`fold_codes` and written back (never
    wider than it was: a character that would widen goes to ``fold``); the values it leaves are folded by
    ``fold`` itself.
    """
    from gisapp.formats import kernels

    n = len(arr)
    data, offsets = _utf8(arr)
    if not len(data):
        return pa.array([""] * n, pa.string())
    table = fold_codes()
    ascii_table = np.arange(256, dtype=np.uint8)
    ascii_table[:128] = table[:128]  # NUL stays NUL (0): what ``fold`` makes of it
    new_offsets, out, odd_values = kernels.fold_utf8(data, offsets, table, ascii_table)
    folded = pa.StringArray.from_buffers(n, pa.py_buffer(new_offsets.astype(np.int32)), pa.py_buffer(out))
    odd = np.flatnonzero(odd_values)
    if not len(odd):
        return folded
    by_hand = pa.array([fold(v) for v in arr.take(pa.array(odd)).to_pylist()], pa.string())
    index = np.arange(n)
    index[odd] = n + np.arange(len(odd))
    return pa.concat_arrays([folded, by_hand]).take(pa.array(index))


def fold_arrow(texts) -> pa.StringArray:
    """:func:`~gisapp.filters.fold` of each text (an Arrow string array or a column :func:`arrow_strings` takes;
    missing → ``""``), as an Arrow string array, in blocks on the pool's threads.

    Each text's code points go through a table of what ``fold`` makes of each single character, on the
    UTF-8 bytes in numpy; the rare texts with a character it maps to none or several (a lone combining
    mark, ``İ``), or that needs its neighbours (σ/ς), or NUL, or beyond the table, are folded by ``fold``
    itself.  The same text as ``fold``.
    """
    arr = pc.fill_null(arrow_strings(texts), "")
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) < FOLD_VECTOR_MIN:
        return pa.array([fold(v) for v in arr.to_pylist()], pa.string())
    return concat(run_blocks(lambda s, e: _fold_block(arr.slice(s, e - s)), len(arr)), pa.string())


def joined_texts(frame: pd.DataFrame, names: Sequence[str]) -> pa.StringArray:
    """The columns ``names`` of ``frame`` (those it has) joined by a space, missing as ``""``; a column of
    ``""`` when it has none of them."""
    parts = [pc.fill_null(arrow_strings(_texts(frame[name])), "") for name in names if name in frame]
    if not parts:
        return pa.array([""] * len(frame), pa.string())
    joined = pc.binary_join_element_wise(*parts, " ")
    return joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined


def _texts(col: pd.Series):
    """A column as texts, as ``fillna("").astype(str)`` makes them (Arrow text as it is)."""
    if isinstance(col.dtype, pd.StringDtype) or pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
        return col
    return col.astype(object).where(col.notna(), "").astype(str)


def search_texts(layer, frame: pd.DataFrame, personal: bool = False) -> pa.StringArray:
    """The folded text ``q`` matches against (the layer's text fields, or its personal ones, joined by a space)
    as an Arrow string array: :func:`gisapp.store.base.search_text` without a Python object per value."""
    names = layer.personal_text_fields if personal else layer.text_fields
    return fold_arrow(joined_texts(frame, names))


# -- geometry -------------------------------------------------------------------------------------

#: A little-endian 2-D Polygon's WKB starts with these bytes; a MultiPolygon of one polygon adds this header.
_POLYGON_HEAD = b"\x01\x03\x00\x00\x00"
_MULTI_HEAD = b"\x01\x06\x00\x00\x00\x01\x00\x00\x00"


def is_wkb(values) -> bool:
    """Whether a geometry column holds WKB (an Arrow binary array or a pandas column of one, what
    :func:`gisapp.analysis.run.read_layer` and :attr:`gisapp.analysis.overlaps.AnalysisResult.rows` give) rather
    than shapely objects."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type)
    dtype = getattr(values, "dtype", None)
    return isinstance(dtype, pd.ArrowDtype) and (pa.types.is_binary(dtype.pyarrow_dtype)
                                                 or pa.types.is_large_binary(dtype.pyarrow_dtype))


def wkb_array(values) -> pa.BinaryArray:
    """A WKB column (:func:`is_wkb`) as one Arrow binary array."""
    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pa.array(values)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values if values.type == pa.binary() else values.cast(pa.binary())


def geometry_objects(values) -> np.ndarray:
    """A geometry column as an object array of shapely geometries (``None`` where missing), made from WKB
    (:func:`is_wkb`) or as given."""
    if is_wkb(values):
        return shapely.from_wkb(wkb_array(values).to_numpy(zero_copy_only=False))
    return np.asarray(values, dtype=object)


def geometry_bounds(values) -> np.ndarray:
    """``(n, 4)`` boxes (minx, miny, maxx, maxy) of a geometry column, shapely objects or WKB (:func:`is_wkb`,
    read by :func:`gisapp.formats.wkb.read_polygons` without an object per geometry): ``shapely.bounds``'
    values, NaN where missing or empty."""
    if not is_wkb(values):
        return shapely.bounds(np.asarray(values, dtype=object)).reshape(-1, 4)
    polygons = read_polygons(wkb_array(values))
    if polygons.other.any():  # not polygonal: the bounds of all of its parts, as shapely gives them
        return shapely.bounds(geometry_objects(values)).reshape(-1, 4)
    return polygons.bounds()


def multipolygon_wkb(geoms) -> pa.BinaryArray:
    """Little-endian WKB of shapely geometries with each Polygon as the MultiPolygon of it (null where missing):
    the bytes of ``shapely.to_wkb(gisapp.geo.to_multipolygons(geoms), byte_order=1)``, without making a
    MultiPolygon object per Polygon (a 2-D Polygon with rings gets the MultiPolygon header spliced in;
    empty and 3-D polygons go through shapely).  ``geoms`` may be WKB (:func:`is_wkb`): :func:`wkb_multipolygons`.
    """
    from gisapp import geo

    if is_wkb(geoms):
        return wkb_multipolygons(wkb_array(geoms))
    geoms = np.asarray(geoms, dtype=object)

    def block(s: int, e: int) -> pa.Array:
        ragged = _ragged_multipolygon_wkb(geoms[s:e])
        if ragged is not None:
            return ragged
        wkb = pa.array(shapely.to_wkb(geoms[s:e], byte_order=1), type=pa.binary(), from_pandas=True)
        if not len(wkb):
            return wkb
        polygon = pc.fill_null(pc.equal(pc.binary_slice(wkb, 0, 5), pa.scalar(_POLYGON_HEAD, pa.binary())), False)
        empty = pc.fill_null(pc.equal(pc.binary_slice(wkb, 5, 9), pa.scalar(b"\x00" * 4, pa.binary())), False)
        splice = pc.and_(polygon, pc.invert(empty))
        spliced = pc.binary_join_element_wise(pa.scalar(_MULTI_HEAD, pa.binary()), wkb, pa.scalar(b"", pa.binary()))
        out = pc.if_else(splice, spliced, wkb)
        types = shapely.get_type_id(geoms[s:e])
        other = np.flatnonzero((types == 3) & ~np.asarray(splice.to_numpy(zero_copy_only=False), dtype=bool))
        if len(other):  # empty or not 2-D little-endian: as shapely writes the MultiPolygon
            values = out.to_numpy(zero_copy_only=False).astype(object)
            values[other] = shapely.to_wkb(geo.to_multipolygons(geoms[s:e][other]), byte_order=1)
            out = pa.array(values, type=pa.binary(), from_pandas=True)
        return out

    return concat(run_blocks(block, len(geoms)), pa.binary())


def _ragged_multipolygon_wkb(geoms: np.ndarray) -> pa.BinaryArray | None:
    """:func:`multipolygon_wkb` of 2-D Polygons without holes (:func:`plain_polygons`), made by Arrow from their
    points instead of shapely's writer and a splice (:func:`_plain_multipolygon_wkb`); ``None`` for any other
    geometries."""
    polygons = plain_polygons(geoms)
    return None if polygons is None else _plain_multipolygon_wkb(polygons)


def plain_polygons(geoms) -> Polygons | None:
    """The :class:`~gisapp.formats.wkb.Polygons` of shapely geometries that are all 2-D Polygons without holes,
    none missing or empty, each ring of four points or more (every parcel and strip): their points
    (``shapely.get_coordinates``) and counts, one ring and one polygon per feature, ``multi`` false; ``None``
    for any other geometries (and for none at all)."""
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms) or not (shapely.get_type_id(geoms) == 3).all() or shapely.is_empty(geoms).any() \
            or shapely.has_z(geoms).any() or shapely.get_num_interior_rings(geoms).any():
        return None
    counts = shapely.get_num_coordinates(geoms)
    if counts.min() < 4:
        return None
    n = len(geoms)
    ring_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=ring_offsets[1:])
    one = np.arange(n + 1, dtype=np.int64)
    return Polygons(np.ascontiguousarray(shapely.get_coordinates(geoms), "<f8"), ring_offsets, one, one.copy(),
                    np.zeros(n, bool), np.zeros(n, bool), np.empty(0, np.int64))


def _plain_multipolygon_wkb(polygons: Polygons) -> pa.BinaryArray | None:
    """The MultiPolygon WKB of :func:`plain_polygons`' polygons made by Arrow: per polygon the MultiPolygon's
    and the Polygon's headers, its ring's point count and the points' bytes as they lie in the array (the bytes
    GEOS writes); ``None`` when the points' bytes do not fit one Arrow binary array."""
    coords, offsets = polygons.xy, polygons.ring_offsets
    if coords.size * 8 >= 2**31:
        return None
    counts = np.diff(offsets)
    points = pa.BinaryArray.from_buffers(pa.binary(), len(counts),
                                         [None, pa.py_buffer((offsets * 16).astype(np.int32)), pa.py_buffer(coords)])
    head = np.empty(len(counts), dtype=[("multi", "V9"), ("order", "u1"), ("type", "<u4"), ("rings", "<u4"),
                                        ("points", "<u4")])
    head["multi"], head["order"], head["type"], head["rings"], head["points"] = _MULTI_HEAD, 1, 3, 1, counts
    heads = pa.FixedSizeBinaryArray.from_buffers(pa.binary(head.itemsize), len(counts),
                                                 [None, pa.py_buffer(head.tobytes())]).cast(pa.binary())
    return pc.binary_join_element_wise(heads, points, _NO_BYTES)


def geometry_columns(geoms, multi: bool, polygons: Polygons | None = None) -> tuple[pa.BinaryArray, pa.StringArray]:
    """The stored geometry as little-endian WKB (:func:`geometry_wkb`) and its stored GeoJSON
    (:func:`geojson_of_wkb` of that WKB), in blocks on the pool's threads.

    On a MultiPolygon layer (``multi``) whose geometries are :func:`plain_polygons` (read here in their order,
    or given as ``polygons``: those of ``geoms``, one feature each), both are made from the points: the WKB by
    :func:`_plain_multipolygon_wkb`, the GeoJSON by :func:`gisapp.formats.geojson.polygon_texts` without
    reading that WKB back (the same bytes).  Any other geometries go the WKB's way."""
    from gisapp.formats.geojson import polygon_texts

    if polygons is None and multi and not is_wkb(geoms):
        polygons = plain_polygons(geoms)
    if polygons is None or not multi:
        wkb = geometry_wkb(geoms, multi)
        return wkb, geojson_of_wkb(wkb)
    stored = dataclasses.replace(polygons, multi=np.ones(len(polygons), bool))

    def block(s: int, e: int) -> tuple[pa.Array | None, pa.Array]:
        part = stored.take(np.arange(s, e))
        return _plain_multipolygon_wkb(part), polygon_texts(part)

    done = run_blocks(block, len(stored))
    if any(wkb is None for wkb, _ in done):
        wkb = geometry_wkb(geoms, multi)
    else:
        wkb = concat([wkb for wkb, _ in done], pa.binary())
    return wkb, concat([texts for _, texts in done], pa.string())


_NO_BYTES = pa.scalar(b"", pa.binary())


def wkb_multipolygons(wkb: pa.BinaryArray) -> pa.BinaryArray:
    """:func:`multipolygon_wkb` of the geometries of ``wkb`` (``shapely.to_wkb(to_multipolygons(from_wkb(wkb)),
    byte_order=1)``), from the bytes without an object per geometry: a little-endian 2-D MultiPolygon as it is, a
    little-endian 2-D Polygon with rings behind the MultiPolygon header; any other value through shapely.

    (Bytes GEOS, PostGIS or this module wrote: one byte order throughout a value, as GEOS writes them back.)
    """
    n = len(wkb)
    if n == 0 or wkb.null_count == n:
        return wkb
    head = pc.binary_slice(wkb, 0, 5)
    multi = pc.equal(head, pa.scalar(b"\x01\x06\x00\x00\x00", pa.binary()))
    polygon = pc.and_(pc.equal(head, pa.scalar(_POLYGON_HEAD, pa.binary())),
                      pc.not_equal(pc.binary_slice(wkb, 5, 9), pa.scalar(b"\x00" * 4, pa.binary())))
    out = pc.if_else(polygon, pc.binary_join_element_wise(pa.scalar(_MULTI_HEAD, pa.binary()), wkb, _NO_BYTES), wkb)
    other = np.flatnonzero(~pc.or_(multi, polygon).fill_null(True).to_numpy(zero_copy_only=False))
    if len(other):  # (nulls are taken as they are: a missing geometry stays missing)
        from gisapp import geo

        values = out.to_numpy(zero_copy_only=False).astype(object)
        values[other] = shapely.to_wkb(geo.to_multipolygons(shapely.from_wkb(values[other])), byte_order=1)
        out = pa.array(values, type=pa.binary(), from_pandas=True)
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out


def geometry_wkb(geoms, multi: bool) -> pa.BinaryArray:
    """The stored geometry as little-endian WKB: :func:`multipolygon_wkb` for a MultiPolygon layer (``multi``),
    else shapely's."""
    if multi:
        return multipolygon_wkb(geoms)
    if is_wkb(geoms):
        return wkb_array(geoms)
    geoms = np.asarray(geoms, dtype=object)
    return concat(run_blocks(lambda s, e: pa.array(shapely.to_wkb(geoms[s:e], byte_order=1), type=pa.binary(),
                                                   from_pandas=True), len(geoms)), pa.binary())


def geojson_of_wkb(wkb: pa.Array) -> pa.StringArray:
    """The stored GeoJSON texts (:data:`gisapp.store.base.GEOJSON_COLUMN`) of little-endian WKB in EPSG:5899,
    in blocks on the pool's threads (:func:`gisapp.formats.geojson.geometry_texts` of each)."""
    from gisapp.formats.geojson import geometry_texts

    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    return concat(run_blocks(lambda s, e: geometry_texts(wkb.slice(s, e - s)), len(wkb)), pa.string())
