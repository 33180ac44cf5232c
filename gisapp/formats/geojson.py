"""RFC 7946 GeoJSON from store data, fast and streamable.

WGS84 longitude/latitude, exterior rings counter-clockwise (holes
clockwise), coordinates rounded to 7 decimals, no ``crs`` member, a stable
``id`` per feature (the layer's key), dates as ISO strings.

The text is built column by column with Arrow compute kernels rather than
feature by feature: every property column becomes an array of JSON value
texts, polygon coordinates are transformed in one PROJ call and joined
level by level (point, ring, polygon, multipolygon), and one element-wise
join makes the features.  Input is either a (Geo)DataFrame or an Arrow table
whose ``geometry`` column holds WKB (what :meth:`GeoPackageStore.iter_arrow`
yields).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from gisapp import geo
from gisapp.formats.wkb import Polygons, binary_array, read_polygons
from gisapp.schema import STORE_CRS, WEB_CRS, Layer

PRECISION = 7


# -- geometries ---------------------------------------------------------------

def web_geometries(geoms) -> np.ndarray:
    """EPSG:5899 geometries → WGS84, rings oriented per RFC 7946, rounded to 7 decimals."""
    t = geo.transformer(STORE_CRS, WEB_CRS)
    out = shapely.orient_polygons(np.asarray(geoms, dtype=object), exterior_cw=False)
    return shapely.transform(out, lambda xy: np.round(np.column_stack(t.transform(xy[:, 0], xy[:, 1])), PRECISION))


def geometry_json(geoms) -> list[str]:
    """GeoJSON geometry texts of EPSG:5899 geometries (``null`` where missing)."""
    return geometry_texts(geoms).to_pylist()


def geometry_texts(geoms) -> pa.StringArray:
    """GeoJSON geometry texts of EPSG:5899 geometries as an Arrow array (``null`` text where missing or empty).

    ``geoms`` is an array of shapely geometries or an Arrow array of WKB.
    (Multi)Polygons are read by :func:`gisapp.formats.wkb.read_polygons` and
    written by :func:`polygon_texts`; other geometries, and polygons with a
    ring of fewer than four points, by shapely.
    """
    if isinstance(geoms, (pa.Array, pa.ChunkedArray)):
        wkb = binary_array(geoms)
    else:
        wkb = pa.array(shapely.to_wkb(np.asarray(geoms, dtype=object), byte_order=1), type=pa.binary())
    polys = read_polygons(wkb)
    sizes = np.diff(polys.ring_offsets)
    odd = polys.other.copy()
    if len(sizes) and sizes.min() < 4:
        odd[polys.ring_features()[sizes < 4]] = True
    if not odd.any():
        return polygon_texts(polys)
    idx = np.flatnonzero(odd)
    texts = polygon_texts(polys.take(np.flatnonzero(~odd))).to_numpy(zero_copy_only=False)
    out = np.empty(len(polys), dtype=object)
    out[~odd] = texts
    shapes = web_geometries(shapely.from_wkb(wkb.take(pa.array(idx)).to_numpy(zero_copy_only=False)))
    out[idx] = np.where(shapely.is_empty(shapes), "null", shapely.to_geojson(shapes))
    return pa.array(out, type=pa.string())


def polygon_texts(polys: Polygons, *, compiled: bool = True) -> pa.StringArray:
    """GeoJSON of (Multi)Polygons: one PROJ call, vectorised orientation, the texts written by a compiled loop
    (:func:`gisapp.formats.kernels.geojson_polygons`, from :data:`COMPILED_MIN` features: importing numba is not
    worth it for fewer) or joined by Arrow (``null`` without rings): the same bytes.

    Every ring must have four points or more.
    """
    ring_off, poly_off, feat_off = polys.ring_offsets, polys.polygon_offsets, polys.feature_offsets
    n = len(polys)
    if not len(polys.xy):
        return pa.array(["null"] * n, pa.string())
    x, y = _web_xy(polys.xy, ring_off)
    # Signed area per ring (shoelace, relative to each ring's first vertex to keep precision).
    starts, ends = ring_off[:-1], ring_off[1:]
    ring_of = np.repeat(np.arange(len(starts)), ends - starts)
    with np.errstate(invalid="ignore", over="ignore"):  # coordinates beyond the projection: inf, as before
        dx, dy = x - x[starts][ring_of], y - y[starts][ring_of]
        cross = np.append(dx[:-1] * dy[1:] - dx[1:] * dy[:-1], 0.0)
    cross[ends - 1] = 0.0  # the step from a ring's last vertex to the next ring's first
    area2 = np.add.reduceat(cross, starts)
    reverse = np.where(polys.exterior(), area2 < 0, area2 > 0)  # exteriors counter-clockwise, holes clockwise
    if compiled and n >= COMPILED_MIN:
        return _compiled_texts(polys, x, y, reverse)
    if reverse.any():
        k = np.arange(len(x))
        idx = np.where(reverse[ring_of], starts[ring_of] + ends[ring_of] - 1 - k, k)
        x, y = x[idx], y[idx]
    # Each level's texts as (prefix, inner texts, suffix), the brackets joined in only where needed: one
    # element-wise join per level is the cost of a level, and most levels hold one item (one ring, one part).
    level = ("[", _join(_points(x, y), ring_off), "]")  # rings
    polygons = level = _nest(level, poly_off)
    level = _nest(level, feat_off)
    texts = _text(_MULTI_HEAD, level, "}")
    single = ~polys.multi
    if single.any():  # a Polygon: its first (only) polygon
        if not (np.diff(feat_off) == 1).all():
            first = np.minimum(feat_off[:-1], len(polygons[1]) - 1)
            polygons = ("", pc.take(_text("", polygons, ""), pa.array(first)), "")
        texts = pc.if_else(pa.array(single), _text(_POLYGON_HEAD, polygons, "}"), texts)
    rings_per_feature = np.diff(poly_off[feat_off])
    if (rings_per_feature == 0).any():
        texts = pc.if_else(pa.array(rings_per_feature > 0), texts, "null")
    return texts


#: Fewer features than this are written by Arrow's joins (:func:`polygon_texts`).
COMPILED_MIN = 2000
_MULTI_HEAD = '{"type":"MultiPolygon","coordinates":'
_POLYGON_HEAD = '{"type":"Polygon","coordinates":'


def _compiled_texts(polys: Polygons, x: np.ndarray, y: np.ndarray, reverse: np.ndarray) -> pa.StringArray:
    """:func:`polygon_texts` of ``polys`` written by :func:`gisapp.formats.kernels.geojson_polygons` from their
    WGS84 coordinates ``x``, ``y`` and the rings to ``reverse``; the features it leaves (a coordinate beyond
    what it writes: infinite, huge, below 10⁻⁶) are made by Arrow's joins."""
    from gisapp.formats import kernels

    offsets, data, bad = kernels.geojson_polygons(
        x, y, polys.ring_offsets, polys.polygon_offsets, polys.feature_offsets, polys.multi, reverse,
        np.frombuffer(_MULTI_HEAD.encode(), np.uint8), np.frombuffer(_POLYGON_HEAD.encode(), np.uint8))
    n = len(polys)
    if offsets[-1] < 2**31:
        texts = pa.StringArray.from_buffers(n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data))
    else:  # (more than a string array holds: Arrow says so, as its joins would)
        texts = pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data)).cast(pa.string())
    if not bad.any():
        return texts
    odd = np.flatnonzero(bad)
    index = np.arange(n)
    index[odd] = n + np.arange(len(odd))
    return pa.concat_arrays([texts, polygon_texts(polys.take(odd), compiled=False)]).take(pa.array(index))


def _web_xy(xy: np.ndarray, ring_off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 longitudes and latitudes of EPSG:5899 ring coordinates, in one PROJ call.

    A ring's closing point, when its bits equal its first point's, is not transformed again but copied
    (PROJ gives a point the same result every time): a fifth of the work on the stores' quadrilaterals.
    """
    t = geo.transformer(STORE_CRS, WEB_CRS)
    first, last = ring_off[:-1], ring_off[1:] - 1
    xy = np.ascontiguousarray(xy, dtype=np.float64)
    bits = xy.view(np.int64)
    same = (last > first) & (bits[first] == bits[last]).all(axis=1)
    closed, opening = last[same], first[same]
    if not len(closed):
        x, y = t.transform(xy[:, 0], xy[:, 1])
        return np.asarray(x), np.asarray(y)
    keep = np.ones(len(xy), dtype=bool)
    keep[closed] = False
    part = xy[keep]
    px, py = t.transform(part[:, 0], part[:, 1])
    x, y = np.empty(len(xy)), np.empty(len(xy))
    x[keep], y[keep] = px, py
    x[closed], y[closed] = x[opening], y[opening]
    return x, y


def _nest(level: tuple, offsets: np.ndarray) -> tuple:
    """The next level's texts: lists of ``level``'s items (``offsets`` index them), as (prefix, inner, suffix)."""
    before, inner, after = level
    if len(offsets) - 1 == len(inner) and (np.diff(offsets) == 1).all():  # one item each: only brackets
        return "[" + before, inner, after + "]"
    return "[", _join(_text("", level, ""), offsets), "]"


def _text(before: str, level: tuple, after: str) -> pa.StringArray:
    """``level``'s texts, between ``before`` and ``after``."""
    return pc.binary_join_element_wise(before + level[0], level[1], level[2] + after, "")


def _points(x: np.ndarray, y: np.ndarray) -> pa.StringArray:
    xs = pc.cast(pa.array(np.round(x, PRECISION)), pa.string())
    ys = pc.cast(pa.array(np.round(y, PRECISION)), pa.string())
    return pc.binary_join_element_wise("[", xs, ",", ys, "]", "")


def _join(values: pa.Array, offsets) -> pa.Array:
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values), ",")


# -- properties ---------------------------------------------------------------

def json_values(arr) -> pa.StringArray:
    """The JSON text of every value of an Arrow array (``null`` for missing values).

    Strings are quoted (escaped only where needed), dates become ISO text,
    floats keep a decimal point, NaN and infinities become ``null``.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    typ = arr.type
    if pa.types.is_dictionary(typ):
        arr, typ = arr.dictionary_decode(), typ.value_type
    if pa.types.is_null(typ):
        return pa.array(["null"] * len(arr), pa.string())
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        arr = arr.cast(pa.string())
        out = pc.binary_join_element_wise('"', arr, '"', "")
        idx = _to_escape(arr)
        if len(idx):
            escaped = [orjson.dumps(v).decode() for v in pc.take(arr, pa.array(idx)).to_pylist()]
            values = out.to_numpy(zero_copy_only=False).astype(object)
            values[idx] = escaped
            out = pa.array(values, pa.string())
    elif pa.types.is_integer(typ):
        out = pc.cast(arr, pa.string())
    elif pa.types.is_floating(typ):
        arr = arr.cast(pa.float64())
        arr = pc.if_else(pc.is_finite(arr), arr, pa.scalar(None, pa.float64()))
        text = pc.cast(arr, pa.string())
        plain = pc.invert(pc.fill_null(pc.match_substring_regex(text, "[.eE]"), True))
        out = pc.if_else(plain, pc.binary_join_element_wise(text, ".0", ""), text)
    elif pa.types.is_boolean(typ):
        out = pc.cast(arr, pa.string())
    elif pa.types.is_date(typ):
        out = pc.binary_join_element_wise('"', pc.cast(arr.cast(pa.date32()), pa.string()), '"', "")
    elif pa.types.is_timestamp(typ):
        text = pc.strftime(arr, format="%Y-%m-%dT%H:%M:%S")
        out = pc.binary_join_element_wise('"', text, '"', "")
    else:
        out = pa.array([orjson.dumps(v, default=str).decode() for v in arr.to_pylist()], pa.string())
    return pc.fill_null(out, "null")


def arrow_column(col: pd.Series) -> pa.Array:
    """An Arrow array of a pandas column as the store types it (dates → date32)."""
    if pd.api.types.is_datetime64_any_dtype(col):
        values = col.to_numpy(dtype="datetime64[ms]")
        arr = pa.array(values, type=pa.timestamp("ms"), from_pandas=True)
        midnight = np.isnat(values) | (values == values.astype("datetime64[D]"))
        return arr.cast(pa.date32()) if midnight.all() else arr
    try:
        return pa.array(col, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else orjson.dumps(v, default=str).decode() for v in col],
                        pa.string())


def property_columns(frame: pd.DataFrame, fields: Iterable[str]) -> dict[str, list]:
    """Columns as JSON-ready lists: dates → ISO text, NaN/NaT → None, numpy → Python."""
    out = {}
    for name in fields:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            values = col.dt.strftime("%Y-%m-%d").astype(object)
            out[name] = values.where(col.notna(), None).tolist()
        else:
            out[name] = col.astype(object).where(col.notna(), None).tolist()
    return out


# -- features -----------------------------------------------------------------

def feature_texts(ids, geometries: pa.Array, properties: dict[str, pa.Array]) -> pa.StringArray:
    """One GeoJSON Feature text per row from JSON value texts of each part.

    ``ids`` and every entry of ``properties`` are Arrow arrays of values
    (encoded here); ``geometries`` holds geometry JSON texts.
    """
    parts: list = ['{"type":"Feature","id":', json_values(ids), ',"geometry":', geometries, ',"properties":{']
    for i, (name, values) in enumerate(properties.items()):
        parts.append(("," if i else "") + orjson.dumps(name).decode() + ":")
        parts.append(json_values(values))
    parts.append("}}")
    if not isinstance(parts[1], pa.Array) or len(parts[1]) == 0:
        return pa.array([], pa.string())
    return pc.binary_join_element_wise(*parts, "")


def _batch_parts(batch, layer: Layer, fields: list[str] | None, extra: dict | None):
    """(ids, geometry texts, property arrays) of a DataFrame or an Arrow table."""
    names = list(fields) if fields is not None else layer.field_names
    if isinstance(batch, (pa.Table, pa.RecordBatch)):
        geoms = batch.column("geometry")
        props = {n: batch.column(n) for n in names}
        ids = batch.column(layer.key)
    else:
        geoms = np.asarray(batch.geometry.values, dtype=object)
        props = {n: arrow_column(batch[n]) for n in names}
        ids = arrow_column(batch[layer.key])
    for name, values in (extra or {}).items():
        props[name] = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else arrow_column(pd.Series(values))
    ids = pc.cast(ids, pa.string())
    return ids, _texts_of(geoms), props


def _texts_of(geoms) -> pa.StringArray:
    """GeoJSON geometry texts: text as it comes (the stores' stored GeoJSON), else made by :func:`geometry_texts`."""
    if isinstance(geoms, (pa.Array, pa.ChunkedArray)) and (pa.types.is_string(geoms.type)
                                                          or pa.types.is_large_string(geoms.type)):
        geoms = geoms.combine_chunks() if isinstance(geoms, pa.ChunkedArray) else geoms
        return geoms.cast(pa.string())
    return geometry_texts(geoms)


def batch_json(batch, layer: Layer, fields: list[str] | None = None, extra: dict | None = None) -> bytes:
    """The Features of one batch as comma-separated JSON (no brackets)."""
    if not len(batch):
        return b""
    texts = feature_texts(*_batch_parts(batch, layer, fields, extra))
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(texts)], pa.int32()), texts), ",")
    return joined[0].as_buffer().to_pybytes()


def features(frame, layer: Layer, fields: list[str] | None = None,
             extra: dict[str, list] | None = None) -> Iterator[bytes]:
    """One GeoJSON Feature (bytes) per row, ``id`` = the layer key."""
    if not len(frame):
        return
    for text in feature_texts(*_batch_parts(frame, layer, fields, extra)):
        yield text.as_buffer().to_pybytes()


def _collection_head(members: dict | None) -> bytes:
    """A FeatureCollection's text up to its features: its type and ``members`` (``numberMatched``, ``links`` …)."""
    head = b'{"type":"FeatureCollection"'
    for key, value in (members or {}).items():
        head += b"," + orjson.dumps(key) + b":" + orjson.dumps(value)
    return head


def collection_chunks(batches: Iterable, layer: Layer, fields: list[str] | None = None,
                      members: dict | None = None) -> Iterator[bytes]:
    """A FeatureCollection as a stream of byte chunks, one chunk per batch.

    ``batches`` are DataFrames or Arrow tables (WKB ``geometry`` column).
    ``members`` are extra top-level members (``numberMatched``, ``links`` …),
    written before ``features``.
    """
    head = _collection_head(members)
    yield head + b',"features":['
    first = True
    for batch in batches:
        body = batch_json(batch, layer, fields)
        if not body:
            continue
        yield body if first else b"," + body
        first = False
    yield b"]}"


def rows_collection(rows: list[tuple], fields: list[str], members: dict | None = None) -> bytes:
    """A FeatureCollection of ``(key, *fields, geometry)`` rows (:class:`gisapp.store.Page` rows).

    For pages of the API (up to thousands of rows) this beats the column-wise
    path: the geometry texts are the stored ones, which orjson writes into
    the features as fragments.  Values are written as :func:`json_values`
    writes them (floats keep their shortest round-trip text, dates ISO, NaN
    ``null``).
    """
    head = _collection_head(members)
    if not rows:
        return head + b',"features":[]}'
    n = len(fields)
    features = [{"type": "Feature", "id": str(r[0]), "geometry": orjson.Fragment(r[-1]),
                 "properties": dict(zip(fields, r[1:n + 1]))} for r in rows]
    return head + b',"features":' + orjson.dumps(features, option=orjson.OPT_SERIALIZE_NUMPY) + b"}"


# -- stored properties (items pages) -------------------------------------------

def page_values(arr) -> pa.StringArray:
    """The JSON text of every value of an Arrow array exactly as orjson writes the Python value a store reads
    back (what :func:`rows_collection` writes): as :func:`json_values`, but floats with orjson's digits (its
    shortest round-trip text: ``1e20``, not Arrow's ``1e+20``), NaN, infinities and missing values ``null``."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_floating(arr.type):
        return json_values(arr)
    if not len(arr):
        return pa.array([], pa.string())
    values = pc.fill_null(arr.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    # orjson writes a numpy float64 as the Python float (its digits, NaN and infinities null); a number's text
    # never holds a comma: the texts are the bytes between the commas
    text = np.frombuffer(orjson.dumps(np.ascontiguousarray(values), option=orjson.OPT_SERIALIZE_NUMPY), np.uint8)
    text = text[1:-1]
    commas = np.flatnonzero(text == 44)
    offsets = np.empty(len(values) + 1, np.int32)
    offsets[0], offsets[-1] = 0, len(text) - len(commas)
    offsets[1:-1] = commas - np.arange(len(commas))  # (each value's end, less the commas before it)
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(text[text != 44]))


def properties_texts(layer: Layer, arrays) -> tuple[pa.StringArray, pa.StringArray | None]:
    """Each row's stored properties text (:func:`gisapp.store.base.stored_properties`): the public fields' JSON
    object, byte for byte what :func:`rows_collection` writes for those values as a store reads them back, and
    the members of the personal fields (``"owner_name":…,"owner_id_no":…``, ``None`` when the layer has none
    or they do not follow one another: :func:`personal_run`), for :func:`with_personal` to splice in.

    ``arrays`` maps every field of ``layer`` to its values as stored (Arrow: text, date32, int32, float64).

    One element-wise join per text: a text or date column without missing values or characters to escape
    (most of them) goes in as it is, its quotes part of the keys' literals around it (:func:`_quoted_as_is`),
    not through a join of its own as :func:`page_values` would."""
    public = [f.name for f in layer.fields if not f.personal]
    n = len(arrays[layer.fields[0].name])
    if not n:
        empty = pa.array([], pa.string())
        return empty, (empty if personal_run(layer) else None)
    texts = _members_join(public, arrays, "{", "}")
    run = personal_run(layer)
    personal = _members_join(run[0], arrays, "", "") if run else None
    return texts, personal


def _members_join(names: list[str], arrays, before: str, after: str) -> pa.StringArray:
    """``before``, the members ``"name":value`` of the fields ``names`` (values as :func:`page_values` writes
    them) joined by commas, then ``after``, for every row: one element-wise join."""
    parts: list = []
    literal = before
    for i, name in enumerate(names):
        literal += ("," if i else "") + orjson.dumps(name).decode() + ":"
        raw = _quoted_as_is(arrays[name])
        if raw is None:
            parts += [literal, page_values(arrays[name])]
            literal = ""
        else:
            parts += [literal + '"', raw]
            literal = '"'
    return pc.binary_join_element_wise(*parts, literal + after, "")


#: Bytes a JSON string cannot hold as they are: control characters, quote, backslash.
_ESCAPED_BYTES = np.zeros(256, dtype=bool)
_ESCAPED_BYTES[:0x20] = _ESCAPED_BYTES[ord('"')] = _ESCAPED_BYTES[ord("\\")] = True


def _to_escape(text: pa.StringArray) -> np.ndarray:
    """The positions of the values of ``text`` that hold a character JSON escapes (:data:`_ESCAPED_BYTES`: those
    are single bytes in UTF-8, never inside another character's bytes), by a scan of the bytes."""
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset:text.offset + len(text) + 1]
    data = text.buffers()[2]
    if data is None or offsets[-1] == offsets[0]:
        return np.empty(0, np.int64)
    at = np.flatnonzero(_ESCAPED_BYTES[np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]]]) + offsets[0]
    return np.unique(np.searchsorted(offsets, at, side="right") - 1)


def _quoted_as_is(arr) -> pa.StringArray | None:
    """The texts of a text or date column whose JSON values are those texts between quotes (no value missing,
    none with a character to escape: a scan of the column's bytes), else ``None``."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
                              or pa.types.is_date(arr.type)):
        return None
    if pa.types.is_date(arr.type):
        return pc.cast(arr.cast(pa.date32()), pa.string())
    text = arr.cast(pa.string())
    return None if len(_to_escape(text)) else text


def personal_run(layer: Layer) -> tuple[list[str], str | None] | None:
    """The personal fields of ``layer`` when they follow one another after a public field, and the field after
    them (``None``: they end the fields); ``None`` when the layer has none, or they are spread (then its
    signed-in pages are built from the columns)."""
    flags = [f.personal for f in layer.fields]
    if not any(flags):
        return None
    first = flags.index(True)
    end = first
    while end < len(flags) and flags[end]:
        end += 1
    if first == 0 or any(flags[end:]):
        return None
    return [f.name for f in layer.fields[first:end]], (layer.fields[end].name if end < len(flags) else None)


def with_personal(public: bytes, personal: bytes, after: str | None) -> bytes:
    """The properties with the personal fields: ``public`` (:func:`properties_texts`, UTF-8) with the ``personal``
    members put back in their place, before the field ``after`` (:func:`personal_run`; ``None``: at the end).

    The field's key is found as ``,"name":``: inside a JSON string every quote is escaped (``\\"``), so the
    text can hold that only as the member's own key."""
    if after is None:
        return public[:-1] + b"," + personal + b"}"
    at = public.index(b"," + orjson.dumps(after) + b":")
    return public[:at] + b"," + personal + public[at:]


def texts_collection(rows: list[tuple], members: dict | None = None) -> bytes:
    """A FeatureCollection of ``(key, properties, geometry)`` rows whose properties and geometry are JSON texts
    (UTF-8 bytes: orjson copies them as they are, where a ``str`` beyond ASCII is encoded again; a
    :class:`gisapp.store.Page` with ``texts``): the same bytes :func:`rows_collection` writes for those
    features' values."""
    head = _collection_head(members)
    if not rows:
        return head + b',"features":[]}'
    fragment = orjson.Fragment
    features = [{"type": "Feature", "id": str(k), "geometry": fragment(g), "properties": fragment(p)}
                for k, p, g in rows]
    return head + b',"features":' + orjson.dumps(features) + b"}"


def dumps_collection(frame, layer: Layer, fields: list[str] | None = None,
                     members: dict | None = None) -> bytes:
    """A whole FeatureCollection as bytes."""
    return b"".join(collection_chunks([frame], layer, fields, members))


def dumps_feature(frame, layer: Layer, fields: list[str] | None = None, members: dict | None = None) -> bytes:
    """The first row of ``frame`` as one Feature, with extra ``members`` (``links`` …) appended."""
    text = batch_json(frame.iloc[:1] if hasattr(frame, "iloc") else frame.slice(0, 1), layer, fields)
    if members:
        text = text[:-1] + b"".join(b"," + orjson.dumps(k) + b":" + orjson.dumps(v) for k, v in members.items()) + b"}"
    return text
