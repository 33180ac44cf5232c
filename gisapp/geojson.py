"""RFC 7946 GeoJSON from store frames, fast and streamable.

WGS84 longitude/latitude, exterior rings counter-clockwise (holes
clockwise), coordinates rounded to 7 decimals, no ``crs`` member, a stable
``id`` per feature (the layer's key), dates as ISO strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import orjson
import pandas as pd
import shapely

from gisapp import geo
from gisapp.schema import Layer

PRECISION = 7


def web_geometries(geoms) -> np.ndarray:
    """EPSG:5899 geometries → WGS84, rings oriented per RFC 7946, rounded to 7 decimals."""
    out = geo.transform(geoms)
    out = shapely.orient_polygons(out, exterior_cw=False)
    return shapely.transform(out, lambda xy: np.round(xy, PRECISION))


def geometry_json(geoms) -> list[str]:
    """GeoJSON geometry texts of EPSG:5899 geometries (``null`` where missing)."""
    web = web_geometries(geoms)
    texts = shapely.to_geojson(web)
    return ["null" if t is None else t for t in texts]


def property_columns(frame: pd.DataFrame, fields: Iterable[str]) -> dict[str, list]:
    """Columns as JSON-ready lists: dates → ISO text, NaN/NaT → None, numpy → Python."""
    out = {}
    for name in fields:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            values = col.dt.strftime("%Y-%m-%d").astype(object)
            out[name] = values.where(col.notna(), None).tolist()
        elif pd.api.types.is_float_dtype(col):
            out[name] = col.astype(object).where(col.notna(), None).tolist()
        else:
            out[name] = col.astype(object).where(col.notna(), None).tolist()
    return out


def features(frame: pd.DataFrame, layer: Layer, fields: list[str] | None = None,
             extra: dict[str, list] | None = None) -> Iterator[bytes]:
    """One GeoJSON Feature (bytes) per row, ``id`` = the layer key."""
    names = fields if fields is not None else layer.field_names
    props = property_columns(frame, names)
    if extra:
        props.update(extra)
    keys = list(props)
    geoms = geometry_json(frame.geometry.values)
    ids = frame[layer.key].astype(str).tolist()
    columns = [props[k] for k in keys]
    for i, (fid, geom) in enumerate(zip(ids, geoms)):
        record = {k: col[i] for k, col in zip(keys, columns)}
        yield b"".join((
            b'{"type":"Feature","id":', orjson.dumps(fid), b',"geometry":', geom.encode(),
            b',"properties":', orjson.dumps(record), b"}",
        ))


def collection_chunks(batches: Iterable[pd.DataFrame], layer: Layer, fields: list[str] | None = None,
                      members: dict | None = None) -> Iterator[bytes]:
    """A FeatureCollection as a stream of byte chunks, one chunk per batch.

    ``members`` are extra top-level members (``numberMatched``, ``links`` …),
    written before ``features``.
    """
    head = b'{"type":"FeatureCollection"'
    for key, value in (members or {}).items():
        head += b"," + orjson.dumps(key) + b":" + orjson.dumps(value)
    yield head + b',"features":['
    first = True
    for batch in batches:
        if not len(batch):
            continue
        body = b",".join(features(batch, layer, fields))
        yield body if first else b"," + body
        first = False
    yield b"]}"


def dumps_collection(frame: pd.DataFrame, layer: Layer, fields: list[str] | None = None,
                     members: dict | None = None) -> bytes:
    """A whole FeatureCollection as bytes."""
    return b"".join(collection_chunks([frame], layer, fields, members))
