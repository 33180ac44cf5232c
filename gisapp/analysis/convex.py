"""Numpy geometry of convex quadrilaterals: most parcels and sidewalk strips, without GEOS.

A parcel or a sidewalk strip is nearly always a rectangle: one ring of 4
corners.  For those (:func:`quads`: polygonal, one part, one ring of 5
coordinates, strictly convex), the analysis needs no GEOS call for what it
asks most often, and numpy or compiled loops (:mod:`gisapp.analysis.kernels`)
answer many of them at once without holding the GIL:

- validity: a strictly convex quadrilateral is a valid polygon;
- bounds: the min and max of the corners (exactly ``shapely.bounds``);
- :func:`distances`: polygon to polygon distance, the same value as GEOS
  (``DistanceOp``: for polygons that do not meet, the least distance from a
  corner of one to a side of the other, by GEOS' own point-to-segment
  formula, sides taken in the ring's order);
- :func:`separation`: whether two of them meet, by the separating axis test.

Every answer comes with ``sure``: False where numpy cannot decide beyond
doubt (the polygons nearly touch, a distance sits on a rounding or
threshold edge); the caller asks GEOS for those, so the results are the
exact GEOS path's.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import shapely

__all__ = ["EPSILON", "bounds", "corner_distance", "distances", "intersections", "polygons", "quads", "separation",
           "split_pairs", "wkb_quads"]

#: Separations (m) and turns (m²) closer to zero than this are left to GEOS: far above rounding at
#: city coordinates (~1e-10 m), far below anything drawn.
EPSILON = 1e-7
#: Below this many pairs the pair functions run in one call.  Above, one chunk per thread: few, long numpy
#: calls, because each call gives up the interpreter lock and must wait for it back (up to the switch interval,
#: 5 ms, while another thread holds it), so thousands of short calls beside a busy thread crawl.
_PARALLEL_MIN = 50_000
_WORKERS = max(1, min(os.cpu_count() or 1, 4))
#: Geometries whose coordinates are read per call (~20 ms of holding the interpreter lock).
_COORD_ROWS = 50_000


def quads(geoms: np.ndarray, types: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Which geometries are strictly convex quadrilaterals, and their corners.

    Returns ``(mask, xy)``: ``xy`` is ``(n, 4, 2)``, the ring's first four
    coordinates in the ring's order for the rows of ``mask`` (NaN elsewhere).
    A row qualifies when it is a Polygon, or a MultiPolygon of one part, of
    exactly 5 coordinates (so one ring: a ring has at least 4, a hole needs
    another 4), closed, finite, within 1e8 m, and every corner turns the same
    way by more than :data:`EPSILON` m² (so it is simple, hence valid).
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    mask = np.zeros(n, dtype=bool)
    xy = np.full((n, 4, 2), np.nan)
    if not n:
        return mask, xy
    types = shapely.get_type_id(geoms) if types is None else types
    rows = np.flatnonzero((types == 3) | (types == 6))
    rows = rows[shapely.get_num_coordinates(geoms[rows]) == 5]
    multi = types[rows] == 6
    single = np.ones(len(rows), dtype=bool)
    single[multi] = shapely.get_num_geometries(geoms[rows[multi]]) == 1
    rows = rows[single]
    if not len(rows):
        return mask, xy
    # in slices: one call holds the interpreter lock throughout (~0.45 µs a geometry), and the other threads'
    # numpy and GEOS calls (which release it) would wait for it to return
    ring = np.empty((len(rows), 5, 2))
    for lo in range(0, len(rows), _COORD_ROWS):
        part = rows[lo:lo + _COORD_ROWS]
        ring[lo:lo + len(part)] = shapely.get_coordinates(geoms[part]).reshape(len(part), 5, 2)
    ok = _convex_rings(ring)
    mask[rows[ok]] = True
    xy[rows[ok]] = ring[ok, :4]
    return mask, xy


def _convex_rings(ring: np.ndarray) -> np.ndarray:
    """Which ``(k, 5, 2)`` rings are closed, finite, within 1e8 m and strictly convex (the checks of :func:`quads`).

    ``ring`` may also be ``(k, 10)`` (x0, y0, … x4, y4 per row), contiguous or rows of a wider array.
    """
    from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

    return kernels.quad_rings(ring.reshape(len(ring), 5, 2))


#: The WKB head of a little-endian 2D Polygon of one ring of 5 coordinates, and of a MultiPolygon of one such
#: Polygon (then 80 bytes of coordinates): the shapes :func:`wkb_quads` reads itself.
_WKB_HEADS = (bytes.fromhex("01" "03000000" "01000000" "05000000"),
              bytes.fromhex("01" "06000000" "01000000" "01" "03000000" "01000000" "05000000"))
def wkb_quads(wkb: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`quads` of an Arrow array of WKB (binary or large binary), read from its bytes where it can.

    Returns ``(decided, mask, xy)``: ``decided`` marks the rows read here
    (little-endian 2D Polygons of one ring of 5 coordinates and
    MultiPolygons of one such Polygon: 93 and 102 bytes); ``mask`` and
    ``xy`` are :func:`quads`' answer for those rows (the same checks on the
    same coordinates).  The other rows (missing, empty, other shapes, other
    byte orders, Z or M, extended WKB) are not decided: the caller asks
    :func:`quads` of their shapely objects.
    """
    chunks = wkb.chunks if isinstance(wkb, pa.ChunkedArray) else [wkb]
    n = sum(len(c) for c in chunks)
    decided, mask = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    xy = np.empty((n, 4, 2))  # (every row written by the kernel: NaN where no quad)
    at = 0
    for chunk in chunks:
        _read_chunk(chunk, decided[at:at + len(chunk)], mask[at:at + len(chunk)], xy[at:at + len(chunk)])
        at += len(chunk)
    return decided, mask, xy


def _read_chunk(chunk: pa.Array, decided: np.ndarray, mask: np.ndarray, xy: np.ndarray) -> None:
    """:func:`wkb_quads` of one Arrow array, into the slices ``decided``, ``mask``, ``xy`` (a compiled loop over
    the values' bytes: :func:`gisapp.analysis.kernels.wkb_quads`)."""
    from gisapp.analysis import kernels

    m = len(chunk)
    if not m or chunk.null_count == m:
        xy[:] = np.nan
        return
    _, offsets_buf, data_buf = chunk.buffers()
    kind = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=kind)[chunk.offset:chunk.offset + m + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, dtype=np.uint8)
    valid = ~chunk.is_null().to_numpy(zero_copy_only=False) if chunk.null_count else np.ones(m, dtype=bool)
    kernels.wkb_quads(offsets, data, valid, _HEADS, _HEAD_LENGTHS, decided, mask, xy)


#: :data:`_WKB_HEADS` as the kernel reads them: one row of bytes each (zero-padded), and their lengths.
_HEAD_LENGTHS = np.array([len(h) for h in _WKB_HEADS], dtype=np.int64)
_HEADS = np.array([list(h.ljust(max(_HEAD_LENGTHS), b"\0")) for h in _WKB_HEADS], dtype=np.uint8)


def bounds(xy: np.ndarray) -> np.ndarray:
    """``(n, 4)`` bounds (``minx, miny, maxx, maxy``) of ``(n, 4, 2)`` corners: ``shapely.bounds`` of the quads."""
    from gisapp.analysis import kernels

    return kernels.quad_bounds(xy)


def split_pairs(func, p: np.ndarray, q: np.ndarray, *extra):
    """``func(p, q, *extra)`` over one chunk of the pairs per thread (numpy releases the GIL); tuples joined."""
    m = len(p)
    if m < _PARALLEL_MIN or _WORKERS < 2:
        return func(p, q, *extra)
    cuts = [m * k // _WORKERS for k in range(_WORKERS + 1)]
    with ThreadPoolExecutor(_WORKERS) as pool:
        parts = list(pool.map(lambda k: func(p[cuts[k]:cuts[k + 1]], q[cuts[k]:cuts[k + 1]], *extra),
                              range(len(cuts) - 1)))
    return tuple(np.concatenate(col) for col in zip(*parts))


def _columns(p: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The corners of ``(m, 4, 2)`` quads as contiguous x and y columns (in the ring's order)."""
    return ([np.ascontiguousarray(p[:, k, 0]) for k in range(4)],
            [np.ascontiguousarray(p[:, k, 1]) for k in range(4)])


def separation(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray]:
    """Separating-axis gap (m) of convex quads ``p``, ``q`` (``(m, 4, 2)``): > 0 apart, < 0 overlapping.

    For convex polygons the sides' normals are the only axes to try: the
    gap is positive exactly when they do not meet.  Near zero
    (|gap| <= :data:`EPSILON`) the sign is not to be trusted.  Each side of
    one against the corners of the other: the least outward distance of a
    corner from the side's line; the gap is the largest of those.
    """
    from gisapp.analysis import kernels

    return (kernels.quad_separation(p, q),)


def corner_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The least distance from a corner of quad ``p`` to ``q``'s outline or of ``q``'s to ``p``'s (``(m, 4, 2)``).

    Never below the distance of the quads (a corner is a point of the
    polygon): where it is tiny, the quads are at most that far apart.
    """
    from gisapp.analysis import kernels

    return kernels.quad_distances(p, q)[1]


def distances(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of convex quads ``p`` to ``q`` (``(m, 4, 2)`` each) as GEOS gives it, and where it is sure.

    Polygons that surely overlap are 0 apart; surely apart, the least
    corner-to-side distance either way (what GEOS' facet distance comes to
    when no sides cross: per corner and side, the distance to the foot of
    the perpendicular when it falls inside the side, by GEOS' formula
    ``Distance::pointToSegment``: ``|s| * sqrt(len2)``, else to the nearer
    end, which is a corner-to-corner distance).  ``sure`` is False where
    they nearly touch.
    """
    from gisapp.analysis import kernels

    gap, near = kernels.quad_distances(p, q)
    apart = gap > EPSILON
    return np.where(apart, near, 0.0), apart | (gap < -EPSILON)


def _geos_crossing(ax, ay, bx, by, cx, cy, dx, dy):
    """The crossing point of segments ab and cd as GEOS computes it (``Intersection::intersection``).

    Coordinates conditioned by the middle of the segments' envelopes' overlap, then the homogeneous line
    equations; the same bits as GEOS (whichever segment comes first, either way round).
    """
    mx = (np.maximum(np.minimum(ax, bx), np.minimum(cx, dx)) + np.minimum(np.maximum(ax, bx), np.maximum(cx, dx))) / 2.0
    my = (np.maximum(np.minimum(ay, by), np.minimum(cy, dy)) + np.minimum(np.maximum(ay, by), np.maximum(cy, dy))) / 2.0
    p1x, p1y, p2x, p2y = ax - mx, ay - my, bx - mx, by - my
    q1x, q1y, q2x, q2y = cx - mx, cy - my, dx - mx, dy - my
    px, py, pw = p1y - p2y, p2x - p1x, p1x * p2y - p2x * p1y
    qx, qy, qw = q1y - q2y, q2x - q1x, q1x * q2y - q2x * q1y
    x = py * qw - qy * pw
    y = qx * pw - px * qw
    w = px * qy - qx * py
    with np.errstate(divide="ignore", invalid="ignore"):
        return x / w + mx, y / w + my


def intersections(p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The intersection of convex quads ``p`` and ``q`` (``(m, 4, 2)``) with the corners GEOS' overlay gives it.

    Returns ``(xy, count, area, sure)``: ``xy`` ``(m, 8, 2)``, the first
    ``count`` rows of each the intersection's corners clockwise (as GEOS
    orients a shell; NaN after), ``area`` its area (shoelace).  The corners
    are the corners of each quad strictly inside the other and the points
    where sides cross, computed as GEOS computes them (:func:`_geos_crossing`),
    so the polygon is GEOS' up to the corner its ring starts at (the same
    after ``shapely.normalize``).  ``sure`` is False where numpy cannot
    vouch for that: a corner within :data:`EPSILON` m of a line of the
    other's sides (touching, shared or collinear sides: GEOS decides those
    with exact arithmetic), a crossing outside its sides' boxes; the caller
    asks GEOS for those.
    """
    m = len(p)
    xy, count, area = np.full((m, 8, 2), np.nan), np.zeros(m, dtype=np.int64), np.zeros(m)
    sure = np.ones(m, dtype=bool)
    if not m:
        return xy, count, area, sure
    (px, py), (qx, qy) = _columns(p), _columns(q)
    dq = _corner_sides(px, py, qx, qy, sure)  # q's corners against p's sides' lines (> 0: inside)
    dp = _corner_sides(qx, qy, px, py, sure)
    rows = np.flatnonzero(sure)
    if len(rows) < m:  # the rest only for the pairs still sure
        px, py, qx, qy = ([c[rows] for c in cols] for cols in (px, py, qx, qy))
        dq = [[d[rows] for d in row] for row in dq]
        dp = [[d[rows] for d in row] for row in dp]
    ok = np.ones(len(rows), dtype=bool)
    xs, ys = [], []
    for ax, ay, d in ((px, py, dp), (qx, qy, dq)):  # the corners of each inside the other
        for j in range(4):
            inside = (d[0][j] > 0) & (d[1][j] > 0) & (d[2][j] > 0) & (d[3][j] > 0)
            xs.append(np.where(inside, ax[j], np.nan))
            ys.append(np.where(inside, ay[j], np.nan))
    for k in range(4):  # side k of p (corners k, k + 1) crossing side h of q
        k1 = (k + 1) % 4
        for h in range(4):
            h1 = (h + 1) % 4
            cross = ((dp[h][k] > 0) != (dp[h][k1] > 0)) & ((dq[k][h] > 0) != (dq[k][h1] > 0))
            x, y = _geos_crossing(px[k], py[k], px[k1], py[k1], qx[h], qy[h], qx[h1], qy[h1])
            # (GEOS takes the nearest end when the point falls outside the boxes: not ours to guess)
            within = ((x >= np.maximum(np.minimum(px[k], px[k1]), np.minimum(qx[h], qx[h1])))
                      & (x <= np.minimum(np.maximum(px[k], px[k1]), np.maximum(qx[h], qx[h1])))
                      & (y >= np.maximum(np.minimum(py[k], py[k1]), np.minimum(qy[h], qy[h1])))
                      & (y <= np.minimum(np.maximum(py[k], py[k1]), np.maximum(qy[h], qy[h1]))))
            ok &= ~cross | within
            xs.append(np.where(cross, x, np.nan))
            ys.append(np.where(cross, y, np.nan))
    x, y = np.stack(xs, axis=1), np.stack(ys, axis=1)  # (k, 24): the corners, NaN where none
    have = ~np.isnan(x)
    n = have.sum(axis=1)
    ok &= (n >= 3) & (n <= 8)
    # a convex polygon: its corners by angle around their mean, clockwise
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = np.nansum(x, axis=1) / n, np.nansum(y, axis=1) / n
        angle = np.where(have, -np.arctan2(y - my[:, None], x - mx[:, None]), np.inf)
    order = np.argsort(angle, axis=1, kind="stable")[:, :8]
    cw = np.stack([np.take_along_axis(x, order, axis=1), np.take_along_axis(y, order, axis=1)], axis=2)
    # shoelace, relative to the first corner (small numbers, small rounding); clockwise: negative
    rx, ry = cw[:, :, 0] - cw[:, :1, 0], cw[:, :, 1] - cw[:, :1, 1]
    slot = np.arange(8)[None, :]
    nx, ny = np.roll(rx, -1, axis=1), np.roll(ry, -1, axis=1)
    last = slot == (n[:, None] - 1)
    term = np.where(slot < n[:, None], rx * np.where(last, 0.0, ny) - np.where(last, 0.0, nx) * ry, 0.0)
    a = -term.sum(axis=1) / 2.0
    ok &= a > 0
    sure[rows] = ok
    xy[rows], count[rows], area[rows] = cw, n, a
    return xy, count, area, sure


def _corner_sides(ax, ay, bx, by, sure: np.ndarray) -> list[list[np.ndarray]]:
    """``d[k][j]``: signed distance (m; > 0 inside) of corner ``j`` of quad b from the line of side ``k`` of quad a.

    Columns as :func:`_columns` gives them.  Clears ``sure`` where a corner lies within :data:`EPSILON` of a line.
    """
    turn = np.zeros(len(ax[0]))
    for k in range(4):  # twice the signed area: which way a's ring turns, so which side is in
        turn += ax[k] * ay[(k + 1) % 4] - ax[(k + 1) % 4] * ay[k]
    sign = np.where(turn > 0, 1.0, -1.0)
    out = []
    for k in range(4):
        ex, ey = ax[(k + 1) % 4] - ax[k], ay[(k + 1) % 4] - ay[k]
        scale = sign / np.sqrt(ex * ex + ey * ey)
        row = []
        for j in range(4):
            d = (ex * (by[j] - ay[k]) - ey * (bx[j] - ax[k])) * scale
            sure &= np.abs(d) > EPSILON
            row.append(d)
        out.append(row)
    return out


def polygons(xy: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Polygons of the first ``count`` corners of each row of ``xy`` (``(m, k, 2)``; rings closed here)."""
    keep = np.arange(xy.shape[1])[None, :] < count[:, None]
    rings = shapely.linearrings(xy[keep], indices=np.repeat(np.arange(len(count)), count))
    return shapely.polygons(rings)
