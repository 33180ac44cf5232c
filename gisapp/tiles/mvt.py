"""Vector tiles: Mapbox Vector Tiles (MVT 2.1) in the WebMercatorQuad grid (EPSG:3857, XYZ).

Pure functions, no Flask: the tile grid (:func:`check_tile`, :func:`tile_bounds`,
:func:`lonlat_bounds`), which fields a tile carries (:data:`TILE_FIELDS`, never a
personal one), and an encoder (:func:`encode_polygons`, :func:`render`) used by
every store without a native one (the GeoPackage store; PostGIS uses
``ST_AsMVT``, see :meth:`gisapp.store.postgis.PostGISStore.tile`).

Why an encoder of our own: a z14 tile at 1,000,000 parcels per layer holds
~10,000 parcels, and the 50 ms goal of issue 7 leaves a few milliseconds of
CPU per tile.  The ``mapbox-vector-tile`` package (2.2, pure Python, one
protobuf object per feature, pyclipper per polygon) encodes 10,000 small
polygons in ~440 ms on this machine.  This encoder is vectorised with numpy
over every coordinate of the tile at once — quantisation, repeated-point
removal, ring winding, zig-zag/delta command integers, varints and the
protobuf framing — and does the same in a few milliseconds.  Its output is
checked against two independent decoders in the tests: ``mapbox-vector-tile``
and GDAL's MVT driver (``ogrinfo``).

Encoding, per the MVT 2.1 specification: extent :data:`EXTENT` (4096) with a
:data:`BUFFER` of 64 units around the tile; geometries are clipped to the
buffered tile, rounded to integers, consecutive repeated points dropped,
rings of fewer than three points or of zero area dropped (with the polygon
when it is the exterior), exterior rings made positive (clockwise with y
down) and interior rings negative.  Every property is written as a string
(dates as ``YYYY-MM-DD``), null values are left out, as ``ST_AsMVT`` does.
Features have no MVT id: keys are text, so the layer's key is a property.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from gisapp import geo
from gisapp.config import TILE_MAX_ZOOM, TILE_MIN_ZOOM
from gisapp.filters import FilterError
from gisapp.formats.wkb import Polygons, polygons_of, read_polygons
from gisapp.schema import LAYERS, STORE_CRS

MERCATOR_CRS = "EPSG:3857"
#: Half the width of the WebMercatorQuad square, metres (π · 6378137).
HALF_WORLD = math.pi * 6378137.0
EXTENT = 4096
BUFFER = 64
#: Zoom levels a tile may be asked for.
MAX_ZOOM = 22
#: Below this zoom a tile of a large layer holds too many features; the map shows per-ward counts instead.
MIN_ZOOM = TILE_MIN_ZOOM
#: The deepest level TileJSON announces; clients over-zoom beyond it (a tile unit is ~4 cm at z18).
TILEJSON_MAX_ZOOM = TILE_MAX_ZOOM
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"

#: What a tile carries per layer: the key, the codes filters use, the main dates. Never personal fields.
TILE_FIELDS = {
    "construction_permits": ["dossier_code", "ward_code", "status", "procedure", "channel",
                             "received_on", "due_on", "completed_on", "issued_on"],
    "sidewalk_permits": ["permit_no", "ward_code", "status", "purpose", "channel", "start_on", "end_on"],
    "findings": ["finding_id", "ward_code", "kind", "a_id", "b_id", "overlap_start", "overlap_end"],
}
if any(LAYERS[name].field(f).personal for name, fs in TILE_FIELDS.items() for f in fs):  # pragma: no cover
    raise RuntimeError("a personal field is listed in gisapp.tiles.mvt.TILE_FIELDS; tiles are public")


class TileError(FilterError):
    """A tile address or layer that cannot be served; ``param`` names it (a 400 in the app)."""


# -- the grid -------------------------------------------------------------------------

def tile_layer(layer: str) -> str:
    """``layer`` when it has tiles, else :class:`TileError`."""
    if layer not in TILE_FIELDS:
        raise TileError("layer", f"no vector tiles for layer {layer!r}; layers with tiles: {', '.join(TILE_FIELDS)}")
    return layer


def check_tile(z, x, y, *, min_zoom: int = 0) -> tuple[int, int, int]:
    """``(z, x, y)`` as integers: ``z`` from ``min_zoom`` to :data:`MAX_ZOOM`, ``x`` and ``y`` from 0 to 2^z − 1."""
    values = {}
    for name, value in (("z", z), ("x", x), ("y", y)):
        text = str(value)
        if not text.isascii() or not text.isdigit():
            raise TileError(name, f"{text!r} is not a whole number")
        values[name] = int(text)
    z, x, y = values["z"], values["x"], values["y"]
    if z > MAX_ZOOM:
        raise TileError("z", f"zoom {z} is out of range: tiles exist for zoom 0 to {MAX_ZOOM}")
    if z < min_zoom:
        raise TileError("z", f"zoom {z} is below the minimum zoom {min_zoom} of vector tiles; "
                             "at lower zooms the map shows per-ward counts")
    n = 1 << z
    for name, value in (("x", x), ("y", y)):
        if value >= n:
            raise TileError(name, f"{name} = {value} is out of range at zoom {z} (0 to {n - 1})")
    return z, x, y


def tile_bounds(z: int, x: int, y: int, buffer: float = 0) -> tuple[float, float, float, float]:
    """The EPSG:3857 bounds ``(minx, miny, maxx, maxy)`` of tile ``z/x/y`` (XYZ: y = 0 at the top).

    ``buffer`` widens them on every side by that many tile units (of :data:`EXTENT`).
    """
    size = 2 * HALF_WORLD / (1 << z)
    pad = size * buffer / EXTENT
    minx = -HALF_WORLD + x * size
    maxy = HALF_WORLD - y * size
    return (minx - pad, maxy - size - pad, minx + size + pad, maxy + pad)


def lonlat_bounds(z: int, x: int, y: int, buffer: float = 0) -> tuple[float, float, float, float]:
    """The WGS84 bounds ``(minlon, minlat, maxlon, maxlat)`` of the (buffered) tile.

    A Web Mercator rectangle is a longitude/latitude rectangle, so these are exact.
    """
    minx, miny, maxx, maxy = tile_bounds(z, x, y, buffer)

    def lon(v: float) -> float:
        return max(-180.0, min(180.0, math.degrees(v / 6378137.0)))

    def lat(v: float) -> float:
        return max(-90.0, min(90.0, math.degrees(2 * math.atan(math.exp(v / 6378137.0)) - math.pi / 2)))

    return (lon(minx), lat(miny), lon(maxx), lat(maxy))


def tile_at(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The ``(x, y)`` of the tile at zoom ``z`` holding a WGS84 point (clamped to the grid)."""
    n = 1 << z
    lat = max(-85.0511287798066, min(85.0511287798066, lat))
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


@lru_cache(maxsize=4096)
def store_box(z: int, x: int, y: int, buffer: float = BUFFER) -> tuple[float, float, float, float]:
    """An EPSG:5899 box around the buffered tile: what a store selects by index before clipping.

    The tile's edges are densified before the transformation so the box
    covers the slightly curved, rotated image of the tile.
    """
    minx, miny, maxx, maxy = tile_bounds(z, x, y, buffer)
    box = shapely.segmentize(shapely.box(minx, miny, maxx, maxy), (maxx - minx) / 8)
    x1, y1, x2, y2 = shapely.bounds(geo.transform([box], MERCATOR_CRS, STORE_CRS)[0])
    return float(x1), float(y1), float(x2), float(y2)


def intersect_bbox(a, b):
    """The intersection of two lon/lat boxes (``b`` may be ``None``), or ``None`` when they are disjoint."""
    if b is None:
        return tuple(a)
    out = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return out if out[0] <= out[2] and out[1] <= out[3] else None


# -- encoding ---------------------------------------------------------------------------

def render(layer: str, wkb, columns: dict, z: int, x: int, y: int, *, gpkg: bool = False) -> bytes:
    """The MVT of one layer of tile ``z/x/y``: ``wkb`` geometries in EPSG:5899, ``columns`` field → values.

    ``wkb`` are WKB blobs (GeoPackage geometry blobs when ``gpkg``).  They are
    read into coordinate arrays by :func:`wkb_rings` and projected into tile
    units by :func:`projector` (EPSG:5899 → EPSG:3857 by EPSG code), then
    encoded by :func:`encode_rings`.
    """
    rings = wkb_rings(wkb, gpkg=gpkg)
    rings.xy = projector(z, x, y)(rings.xy)
    return encode_rings(layer, rings, columns)


@lru_cache(maxsize=1024)
def projector(z: int, x: int, y: int, *, src: str = STORE_CRS, extent: int = EXTENT, cells: int = 16):
    """A function mapping ``src`` coordinates (an (N, 2) array) to tile units of ``z/x/y`` (y down).

    PROJ transforms (by EPSG code, :func:`gisapp.geo.transformer`; for EPSG:5899
    that includes the EPSG:6960 datum shift) a ``cells`` × ``cells`` grid of
    control points spanning the buffered tile; every coordinate is then
    interpolated bilinearly in that grid.  Transforming each coordinate with
    PROJ costs ~0.5 µs (25 ms for a z14 tile of 10,000 parcels); the
    interpolation ~30× less, and over a tile the transformation is so
    smooth that it is within 0.001 tile unit of PROJ (checked in the tests).
    Coordinates outside the grid are extrapolated from its border cells.
    """
    x1, y1, x2, y2 = store_box(z, x, y, 2 * BUFFER)
    gx, gy = np.linspace(x1, x2, cells + 1), np.linspace(y1, y2, cells + 1)
    grid_x, grid_y = np.meshgrid(gx, gy)
    mx, my = geo.transformer(src, MERCATOR_CRS).transform(grid_x.ravel(), grid_y.ravel())
    minx, _, maxx, maxy = tile_bounds(z, x, y)
    scale = extent / (maxx - minx)
    tx = ((np.asarray(mx) - minx) * scale).reshape(cells + 1, cells + 1)
    ty = ((maxy - np.asarray(my)) * scale).reshape(cells + 1, cells + 1)
    step_x, step_y = (x2 - x1) / cells, (y2 - y1) / cells

    def project(xy: np.ndarray) -> np.ndarray:
        fx, fy = (xy[:, 0] - x1) / step_x, (xy[:, 1] - y1) / step_y
        i = np.clip(np.floor(fx).astype(np.int64), 0, cells - 1)
        j = np.clip(np.floor(fy).astype(np.int64), 0, cells - 1)
        u, v = fx - i, fy - j
        out = np.empty_like(xy)
        for k, t in enumerate((tx, ty)):
            out[:, k] = ((1 - u) * (1 - v) * t[j, i] + u * (1 - v) * t[j, i + 1]
                         + (1 - u) * v * t[j + 1, i] + u * v * t[j + 1, i + 1])
        return out

    return project


@lru_cache(maxsize=4096)
def mercator_affine(z: int, x: int, y: int, *, src: str = STORE_CRS, cells: int = 8):
    """The affine map ``src`` → EPSG:3857 closest to PROJ over the buffered tile, and its largest error.

    Returns ``((a, b, d, e, xoff, yoff), error)`` with ``X = a·x + b·y + xoff``,
    ``Y = d·x + e·y + yoff`` (PostGIS ``ST_Affine``'s order), fitted by least
    squares to a grid of control points that PROJ transforms by EPSG code, and
    the largest distance from PROJ at those points in tile units (~0.12 at
    z14, halving with each zoom level).
    """
    x1, y1, x2, y2 = store_box(z, x, y, 2 * BUFFER)
    gx, gy = (a.ravel() for a in np.meshgrid(np.linspace(x1, x2, cells + 1), np.linspace(y1, y2, cells + 1)))
    mx, my = (np.asarray(v) for v in geo.transformer(src, MERCATOR_CRS).transform(gx, gy))
    design = np.column_stack([gx - x1, gy - y1, np.ones_like(gx)])
    (a, b, c), (d, e, f) = (np.linalg.lstsq(design, v, rcond=None)[0] for v in (mx, my))
    minx, _, maxx, _ = tile_bounds(z, x, y)
    error = float(np.hypot(design @ (a, b, c) - mx, design @ (d, e, f) - my).max() * EXTENT / (maxx - minx))
    return (float(a), float(b), float(d), float(e), float(c - a * x1 - b * y1), float(f - d * x1 - e * y1)), error


class Rings:
    """Polygon rings as flat arrays: what the encoder works on.

    ``xy`` (N, 2) coordinates, rings one after the other (closed: the first
    point repeated last); per ring its number of points ``n``, whether it is
    an exterior ``ext`` (a polygon's first ring) and its feature ``feat``.
    The rings of a feature are contiguous, a polygon's holes follow its exterior.
    """

    def __init__(self, xy, n, ext, feat):
        self.xy, self.n, self.ext, self.feat = xy, np.asarray(n, np.int64), np.asarray(ext, bool), \
            np.asarray(feat, np.int64)

    def subset(self, ring_mask) -> Rings:
        """The rings where ``ring_mask`` is true."""
        return Rings(self.xy[np.repeat(ring_mask, self.n)], self.n[ring_mask], self.ext[ring_mask],
                     self.feat[ring_mask])

    @staticmethod
    def concat(parts) -> Rings:
        return Rings(np.concatenate([p.xy for p in parts]), np.concatenate([p.n for p in parts]),
                     np.concatenate([p.ext for p in parts]), np.concatenate([p.feat for p in parts]))

    def geometries(self, n_features: int) -> np.ndarray:
        """Shapely MultiPolygons, one per feature (empty where a feature has no rings)."""
        ring_off = np.concatenate([[0], np.cumsum(self.n)])
        poly_of_ring = np.cumsum(self.ext) - 1
        n_polys = int(self.ext.sum())
        poly_off = np.concatenate([[0], np.cumsum(np.bincount(poly_of_ring, minlength=n_polys))])
        per_feat = np.bincount(self.feat[self.ext], minlength=n_features)
        geom_off = np.concatenate([[0], np.cumsum(per_feat)])
        return shapely.from_ragged_array(shapely.GeometryType.MULTIPOLYGON, self.xy, (ring_off, poly_off, geom_off))


def rings_of(geoms) -> Rings:
    """The polygon rings of shapely ``geoms`` (non-polygonal parts and missing geometries left out)."""
    return polygon_rings(polygons_of(geoms))


def wkb_rings(blobs, *, gpkg: bool = False) -> Rings:
    """The polygon rings of WKB (or GeoPackage geometry) blobs, read by :func:`gisapp.formats.wkb.read_polygons`."""
    return polygon_rings(read_polygons(blobs, gpkg=gpkg))


def polygon_rings(polys: Polygons) -> Rings:
    """The rings of :class:`gisapp.formats.wkb.Polygons`, one feature per entry."""
    return Rings(polys.xy, np.diff(polys.ring_offsets), polys.exterior(), polys.ring_features())


def encode_polygons(name: str, geoms, columns: dict, bounds, *, extent: int = EXTENT,
                    buffer: int = BUFFER) -> bytes:
    """A one-layer MVT of polygonal shapely ``geoms`` (in the CRS of ``bounds``) with string properties.

    Parameters
    ----------
    name : str
        The MVT layer name.
    geoms : array of shapely geometries
        Polygons or MultiPolygons (anything else, and missing ones, are left out).
    columns : dict
        Property name → one value per geometry (``None``/NaN: no property).
        Values are written as strings; dates as ISO dates.
    bounds : tuple
        ``(minx, miny, maxx, maxy)`` of the tile in the geometries' CRS.

    Returns
    -------
    bytes
        The tile; ``b""`` when no feature is left (an empty tile).
    """
    rings = rings_of(geoms)
    minx, miny, maxx, maxy = bounds
    rings.xy = np.column_stack([(rings.xy[:, 0] - minx) * extent / (maxx - minx),
                                (maxy - rings.xy[:, 1]) * extent / (maxy - miny)])
    return encode_rings(name, rings, columns, extent=extent, buffer=buffer)


def encode_rings(name: str, rings: Rings, columns: dict, *, extent: int = EXTENT, buffer: int = BUFFER) -> bytes:
    """A one-layer MVT of ``rings`` already in tile units (float, y down); ``b""`` when nothing is left.

    Features crossing the buffered tile are clipped to it (GEOS
    ``clip_by_rect``); the rest is numpy over all coordinates at once.
    """
    n_features = len(next(iter(columns.values()))) if columns else int(rings.feat.max(initial=-1)) + 1
    rings = _clip(rings, (-buffer, -buffer, extent + buffer, extent + buffer), n_features)
    if not len(rings.n):
        return b""
    px, py = np.rint(rings.xy[:, 0]).astype(np.int64), np.rint(rings.xy[:, 1]).astype(np.int64)
    n_rings = len(rings.n)
    ring = np.repeat(np.arange(n_rings), rings.n)

    # consecutive repeats go, then each ring's last point (the closing point, or one equal to it)
    keep = np.ones(len(px), bool)
    keep[1:] = (px[1:] != px[:-1]) | (py[1:] != py[:-1]) | (ring[1:] != ring[:-1])
    kept = np.flatnonzero(keep)
    last = np.ones(len(kept), bool)
    last[:-1] = ring[kept[1:]] != ring[kept[:-1]]
    kept = kept[~last]
    px, py, ring = px[kept], py[kept], ring[kept]

    # ring sizes and signed areas (surveyor's formula in tile units, y down: exteriors positive)
    count = np.bincount(ring, minlength=n_rings)
    start = np.cumsum(count) - count
    ends = start + count - 1
    pos = np.arange(len(px))
    nxt = pos + 1
    nxt[ends[count > 0]] = start[count > 0]
    area2 = np.bincount(ring, weights=(px * py[nxt] - px[nxt] * py).astype(np.float64), minlength=n_rings)
    ring_ok = (count >= 3) & (area2 != 0)
    poly_of_ring = np.cumsum(rings.ext) - 1
    poly_ok = ring_ok[rings.ext]  # a polygon whose exterior went goes with its holes
    ring_ok &= poly_ok[poly_of_ring]
    flip = ring_ok & np.where(rings.ext, area2 < 0, area2 > 0)
    if flip.any():
        order = np.where(flip[ring], start[ring] + ends[ring] - pos, pos)
        px, py = px[order], py[order]
    sel = ring_ok[ring]
    px, py, ring = px[sel], py[sel], ring[sel]
    if not len(px):
        return b""

    # the features left, in order, and their command integers
    rings_left = np.flatnonzero(ring_ok)
    k = count[rings_left]
    ring_feat = rings.feat[rings_left]
    new_feat = np.ones(len(rings_left), bool)
    new_feat[1:] = ring_feat[1:] != ring_feat[:-1]
    feats = ring_feat[new_feat]
    feat_rank = np.cumsum(new_feat) - 1
    point_rank = np.repeat(feat_rank, k)
    first = np.ones(len(px), bool)
    first[1:] = point_rank[1:] != point_rank[:-1]
    dx, dy = np.diff(px, prepend=0), np.diff(py, prepend=0)
    dx[first], dy[first] = px[first], py[first]  # each feature's cursor starts at (0, 0)
    ring_len = 2 * k + 3
    ring_start = np.cumsum(ring_len) - ring_len
    ints = np.empty(int(ring_len.sum()), np.uint64)
    ints[ring_start] = 9  # MoveTo(1)
    ints[ring_start + 3] = (2 | ((k - 1) << 3)).astype(np.uint64)  # LineTo(k - 1)
    ints[ring_start + ring_len - 1] = 15  # ClosePath(1)
    j = np.arange(len(px)) - np.repeat(np.cumsum(k) - k, k)  # index of each point in its ring
    at = np.repeat(ring_start, k) + 1 + 2 * j + (j > 0)
    ints[at], ints[at + 1] = _zigzag(dx), _zigzag(dy)
    geom_bytes, geom_nb = _varints(ints)
    ring_bytes = np.bincount(np.repeat(np.arange(len(rings_left)), ring_len), weights=geom_nb,
                             minlength=len(rings_left))
    geom_len = np.bincount(feat_rank, weights=ring_bytes, minlength=len(feats)).astype(np.int64)

    # features: tags, type POLYGON, geometry
    keys, values_msg, tag_bytes, tag_len = _tags(columns, feats)
    n = len(feats)
    one = np.ones(n, np.int64)
    has_tags = (tag_len > 0).astype(np.int64)
    tlen_b, tlen_nb = _varints(tag_len[tag_len > 0])
    tlen_count = np.zeros(n, np.int64)
    tlen_count[tag_len > 0] = tlen_nb
    body, body_len = _interleave([
        (np.full(int(has_tags.sum()), 0x12, np.uint8), has_tags), (tlen_b, tlen_count), (tag_bytes, tag_len),
        (np.tile(np.array([0x18, 0x03, 0x22], np.uint8), n), np.full(n, 3, np.int64)),
        _varints(geom_len), (geom_bytes, geom_len)])
    features, _ = _interleave([(np.full(n, 0x12, np.uint8), one), _varints(body_len), (body, body_len)])
    layer = b"".join([_field_bytes(1, name.encode()), features.tobytes(), keys, values_msg,
                      bytes([0x28]) + _varints(np.array([extent]))[0].tobytes(), bytes([0x78, 0x02])])
    return _field_bytes(3, layer)


def _clip(rings: Rings, box, n_features: int) -> Rings:
    """``rings`` with the features reaching outside ``box`` clipped to it (their order kept)."""
    if not len(rings.n):
        return rings
    point_feat = np.repeat(rings.feat, rings.n)
    x, y = rings.xy[:, 0], rings.xy[:, 1]
    out = (x < box[0]) | (x > box[2]) | (y < box[1]) | (y > box[3])
    if not out.any():
        return rings
    crossing = np.zeros(n_features, bool)
    crossing[point_feat[out]] = True
    ring_cross = crossing[rings.feat]
    kept, cross = rings.subset(~ring_cross), rings.subset(ring_cross)
    ids = np.flatnonzero(crossing)
    cross.feat = np.searchsorted(ids, cross.feat)
    clipped = rings_of(shapely.clip_by_rect(cross.geometries(len(ids)), *box))
    clipped.feat = ids[clipped.feat]
    return Rings.concat([kept, clipped])  # each feature's rings stay together, which is all the encoder needs


def _zigzag(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def _varints(values) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of unsigned ``values``: the bytes and how many bytes each value took."""
    v = np.asarray(values).astype(np.uint64)
    top = int(v.max()) if len(v) else 0
    if top < 128:
        return v.astype(np.uint8), np.ones(len(v), np.int64)
    width = (top.bit_length() + 6) // 7
    groups = (v[:, None] >> (np.arange(width, dtype=np.uint64) * np.uint64(7))) & np.uint64(0x7F)
    nb = np.ones(len(v), np.int64)
    for k in range(1, width):
        nb += v >= np.uint64(1 << (7 * k))
    used = np.arange(width) < nb[:, None]
    more = np.arange(width) < (nb - 1)[:, None]  # every byte but a value's last has the continuation bit
    return (groups.astype(np.uint8) | (more.astype(np.uint8) << 7))[used], nb


def _interleave(parts) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate per-feature chunks: ``parts`` are (bytes, length per feature); feature-major output."""
    lens = np.stack([length for _, length in parts])
    total = lens.sum(axis=0)
    out = np.empty(int(total.sum()), np.uint8)
    out_start = np.cumsum(total) - total
    before = np.cumsum(lens, axis=0) - lens
    for (data, length), offset in zip(parts, before):
        if not len(data):
            continue
        src_start = np.cumsum(length) - length
        out[np.repeat(out_start + offset - src_start, length) + np.arange(len(data))] = data
    return out, total


def _field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return bytes([(number << 3) | 2]) + _varints(np.array([len(payload)]))[0].tobytes() + payload


def _strings(values) -> pa.StringArray:
    """Property values as an Arrow string array (nulls kept); dates as ISO dates."""
    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        try:
            values = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python objects
            values = pa.array([_text(v) for v in values], pa.string())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_timestamp(values.type):
        values = values.cast(pa.date32())
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    return values


def _text(value) -> str | None:
    """One property value as text (``None`` for nulls and NaN; dates as ISO dates)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _tags(columns: dict, feats: np.ndarray) -> tuple[bytes, bytes, np.ndarray, np.ndarray]:
    """The layer's keys and values messages, and each feature's packed tags (bytes, byte counts).

    Every column's values are dictionary-encoded together: the MVT value
    table is shared by all keys, so a text in two columns is stored once.
    """
    n = len(feats)
    if not columns or not n:
        return b"", b"", np.empty(0, np.uint8), np.zeros(n, np.int64)
    take = pa.array(feats)
    encoded = pc.dictionary_encode(
        pa.concat_arrays([_strings(v).take(take) for v in columns.values()]))
    codes = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int64).reshape(len(columns), n).T
    pairs = np.empty((n, 2 * len(columns)), np.int64)
    pairs[:, 0::2] = np.arange(len(columns))
    pairs[:, 1::2] = codes
    present = np.repeat(codes >= 0, 2, axis=1)
    tag_bytes, nb = _varints(pairs[present])
    per_row = np.zeros(pairs.shape, np.int64)
    per_row[present] = nb
    keys = b"".join(_field_bytes(3, str(key).encode()) for key in columns)
    return keys, _value_messages(encoded.dictionary), tag_bytes, per_row.sum(axis=1)


def _value_messages(strings: pa.StringArray) -> bytes:
    """``Layer.values`` fields (number 4) holding ``Value{string_value}`` of each string, vectorised."""
    if not len(strings):
        return b""
    offsets = np.frombuffer(strings.buffers()[1], np.int32)[strings.offset:strings.offset + len(strings) + 1]
    data = np.frombuffer(strings.buffers()[2], np.uint8)[offsets[0]:offsets[-1]] if offsets[-1] > offsets[0] \
        else np.empty(0, np.uint8)
    slen = np.diff(offsets).astype(np.int64)
    n = len(slen)
    slen_b, slen_nb = _varints(slen)
    msg_len = 1 + slen_nb + slen
    mlen_b, mlen_nb = _varints(msg_len)
    one = np.ones(n, np.int64)
    out, _ = _interleave([(np.full(n, 0x22, np.uint8), one), (mlen_b, mlen_nb), (np.full(n, 0x0A, np.uint8), one),
                          (slen_b, slen_nb), (data, slen)])
    return out.tobytes()


class TileCache:
    """Tiles recently served, by key, within ``max_bytes`` (least recently used out first; 0: none).

    The key is the tile's validator (store version, tile, filter, who asks),
    so a write to the store makes every entry unreachable; they age out.  A
    z14 tile of a dense city costs tens of milliseconds to build and is
    asked for by everyone looking at that district: served again it costs
    nothing.  Each entry counts its key and :data:`ENTRY_OVERHEAD` besides
    its body, so empty tiles are bounded too.  An entry may also be another
    object (the taken-apart unfiltered tiles of :mod:`gisapp.tiles.subset`)
    with the size it is given.
    """

    #: Bytes an entry costs beyond its key and body (dictionary slot, objects).
    ENTRY_OVERHEAD = 200

    def __init__(self, max_bytes: int):
        self.max_bytes = max(0, int(max_bytes))
        self._tiles: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def _cost(self, key: str, body, size: int | None = None) -> int:
        return len(key) + (len(body) if size is None else int(size)) + self.ENTRY_OVERHEAD

    def get(self, key: str):
        """The tile (or object) cached under ``key``, or ``None``."""
        with self._lock:
            entry = self._tiles.get(key)
            if entry is None:
                return None
            self._tiles.move_to_end(key)
            return entry[0]

    def put(self, key: str, body, size: int | None = None) -> None:
        """Remember ``body`` under ``key`` (not when it would take over a quarter of the cache).

        ``size``: the bytes ``body`` takes when it is not a ``bytes`` (its ``len`` is used otherwise).
        """
        cost = self._cost(key, body, size)
        if cost > self.max_bytes // 4:
            return
        with self._lock:
            old = self._tiles.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._tiles[key] = (body, cost)
            self._bytes += cost
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._tiles.popitem(last=False)
                self._bytes -= dropped

    def __len__(self) -> int:
        return len(self._tiles)
