"""Vectorised spatial joins for the overlap analysis.

- :func:`bbox_pairs`: index pairs of bounding boxes that come within a
  distance, by a grid join (a counting sort by cell, look cells up in a
  dense table, compare boxes: compiled loops of
  :mod:`gisapp.analysis.kernels`) — no Python loop over pairs, no shapely calls.
- :class:`WardIndex`: the ward holding the largest part of each geometry
  among the wards in force on its date.  A grid (cells about four times the
  geometries' size, up to 2048 a side) classifies cells lying wholly inside
  one ward per period of validity, by a compiled even-odd fill, so most
  geometries are settled by a table look-up; those near a boundary (~3 %
  of a city's parcels) are cut against the wards by a compiled loop when
  they are convex quadrilaterals, and the rest, or where that loop is in
  doubt, meet a prepared ``contains`` and, failing that, intersection areas.

Everything here is pure: inputs are numpy arrays, nothing is cached
between calls.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import shapely

#: Missing date (int days since 1970; the int64 value of NaT).
NAT = np.iinfo(np.int64).min
#: "No end" for validity periods.
FAR_FUTURE = np.iinfo(np.int64).max
#: An intersection smaller than this (m²) is a touching edge, not an overlap.
AREA_EPSILON = 1e-6
#: Most cells per axis of the ward classification grid.
_WARD_GRID_MAX = 2048
#: Fewer geometries than this go straight to the exact ward assignment.
_WARD_GRID_MIN_ITEMS = 5000
#: The grid join's scan is shared among threads from this many query boxes.
_SCAN_SPLIT_MIN = 50_000
_WORKERS = max(1, min(os.cpu_count() or 1, 4))


# -- validity ----------------------------------------------------------------------

#: Rings of up to this many vertices are checked by :func:`is_valid` in numpy.
_SIMPLE_RING_MAX = 8
#: Orientation values (m²) closer to 0 than this are not trusted to numpy: GEOS decides.
_ORIENT_EPSILON = 1e-6


def is_valid(geoms: np.ndarray) -> np.ndarray:
    """``shapely.is_valid`` of polygonal geometries, the same answers, most of them without GEOS.

    A polygon of one ring of 4 to :data:`_SIMPLE_RING_MAX` vertices (what a
    parcel or a sidewalk strip is) is valid when its ring is simple: no corner
    is flat or doubled back and no two edges that do not share a corner meet.
    Numpy decides that where every orientation involved is clearly not zero
    (|value| above :data:`_ORIENT_EPSILON` m², far beyond rounding); every
    other geometry — holes, several parts, more vertices, a doubtful
    orientation, a bad coordinate — goes to GEOS.  ~2× faster on parcels.
    MultiPolygons (what the stores give) all go to GEOS: taking their
    coordinates out costs as much as GEOS' own check, and unlike that, holds
    the GIL.
    """
    geoms = np.asarray(geoms, dtype=object)
    out = np.zeros(len(geoms), dtype=bool)
    if not len(geoms):
        return out
    polygon = np.flatnonzero(shapely.get_type_id(geoms) == 3)
    count = np.zeros(len(geoms), dtype=np.int64)
    count[polygon] = shapely.get_num_coordinates(geoms[polygon])
    settled = np.zeros(len(geoms), dtype=bool)
    # a polygonal geometry of k + 1 <= 2 * 4 - 1 coordinates has one part and one ring (a ring needs 4)
    for k in range(4, _SIMPLE_RING_MAX + 1):
        rows = np.flatnonzero(count == k + 1)
        if not len(rows):
            continue
        ok = _simple_rings(shapely.get_coordinates(geoms[rows]).reshape(len(rows), k + 1, 2))
        settled[rows[ok]] = True
    out[settled] = True
    rest = np.flatnonzero(~settled)
    if len(rest):
        out[rest] = shapely.is_valid(geoms[rest])
    return out


def _simple_rings(xy: np.ndarray) -> np.ndarray:
    """For ``(m, k + 1, 2)`` closed rings: True where the ring is surely simple (see :func:`is_valid`)."""
    k = xy.shape[1] - 1
    # finite, closed, and within 1e8 (Earth in metres: the rounding below stays far under the epsilon)
    sure = (np.abs(xy) < 1e8).all(axis=(1, 2)) & (xy[:, 0] == xy[:, k]).all(axis=1)
    # columns of x and y relative to the first vertex (small numbers, small rounding), and the edges
    x = [np.ascontiguousarray(xy[:, i, 0] - xy[:, 0, 0]) for i in range(k)]
    y = [np.ascontiguousarray(xy[:, i, 1] - xy[:, 0, 1]) for i in range(k)]
    ex = [x[(i + 1) % k] - x[i] for i in range(k)]
    ey = [y[(i + 1) % k] - y[i] for i in range(k)]
    eps = _ORIENT_EPSILON
    for i in range(k):  # no flat, doubled or spiked corner
        sure &= np.abs(ex[i - 1] * ey[i] - ey[i - 1] * ex[i]) > eps
    for i in range(k):  # edges without a shared corner do not meet
        for j in range(i + 2, k):
            if i == 0 and j == k - 1:
                continue
            o1 = ex[i] * (y[j] - y[i]) - ey[i] * (x[j] - x[i])
            o2 = o1 + ex[i] * ey[j] - ey[i] * ex[j]  # the orientation of p[j + 1] = p[j] + e[j]
            o3 = ex[j] * (y[i] - y[j]) - ey[j] * (x[i] - x[j])
            o4 = o3 + ex[j] * ey[i] - ey[j] * ex[i]
            sure &= ((o1 > eps) & (o2 > eps)) | ((o1 < -eps) & (o2 < -eps)) \
                | ((o3 > eps) & (o4 > eps)) | ((o3 < -eps) & (o4 < -eps))
    return sure


# -- box pairs ---------------------------------------------------------------------


def bbox_pairs(a: np.ndarray, b: np.ndarray, tol: float = 0.0, *, strict: bool = False,
               same: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)`` whose boxes ``a[i]`` and ``b[j]`` come within ``tol``.

    Parameters
    ----------
    a, b:
        ``(n, 4)`` arrays of ``minx, miny, maxx, maxy``.
    tol:
        ``b`` is grown by ``tol`` on every side, so the pairs within ``tol``
        in the max-norm are found (a superset of those within ``tol``).
    strict:
        The boxes must overlap with positive area (touching is not enough).
    same:
        ``a`` and ``b`` are the same boxes (``tol`` must be 0); every
        unordered pair is returned once, as ``i < j``.

    Returns
    -------
    (i, j):
        int64 arrays; each qualifying pair exactly once, in no set order.

    Notes
    -----
    A grid with cells at least as large as (nearly) every box: each ``a``
    box is filed under the cell of its lower-left corner (a counting sort), cell
    counts and starts go into a dense table, and each ``b`` box looks up
    the 2×2 (3×3 when it spans two cells) cells where a partner's corner
    can lie.  Candidates are then compared box against box.  The few boxes
    bigger than a cell go through an STRtree instead.
    """
    empty = (np.empty(0, np.int64), np.empty(0, np.int64))
    if len(a) == 0 or len(b) == 0:
        return empty
    if same and tol:
        raise ValueError("same=True needs tol=0")
    ax0, ay0, ax1, ay1 = (np.ascontiguousarray(a[:, k], dtype=float) for k in range(4))
    if same:
        bx0, by0, bx1, by1 = ax0, ay0, ax1, ay1
    else:
        bx0, by0, bx1, by1 = (np.ascontiguousarray(b[:, k], dtype=float) + grow
                              for k, grow in enumerate((-tol, -tol, tol, tol)))
    boxes = _Boxes(ax0, ay0, ax1, ay1, bx0, by0, bx1, by1, strict)
    ox, oy = min(ax0.min(), bx0.min()), min(ay0.min(), by0.min())
    span = max(max(ax1.max(), bx1.max()) - ox, max(ay1.max(), by1.max()) - oy, 1e-9)
    ea = np.maximum(ax1 - ax0, ay1 - ay0)
    eb = ea if same else np.maximum(bx1 - bx0, by1 - by0)
    size = _cell_size(ea if same else np.concatenate([ea, eb]), span, len(a) + (0 if same else len(b)))
    small_a = ea <= size
    small_b = small_a if same else eb <= size
    i, j = _grid_pairs(boxes, np.flatnonzero(small_a), np.flatnonzero(small_b), size, ox, oy, span, same)
    big_a, big_b = np.flatnonzero(~small_a), np.flatnonzero(~small_b)
    if len(big_a) or len(big_b):
        bi, bj = _big_pairs(boxes, big_a, big_b, small_a, same)
        i, j = np.concatenate([i, bi]), np.concatenate([j, bj])
    return i, j


@dataclass(frozen=True)
class _Boxes:
    """Box coordinates as contiguous columns (``b`` already grown by the tolerance)."""

    ax0: np.ndarray
    ay0: np.ndarray
    ax1: np.ndarray
    ay1: np.ndarray
    bx0: np.ndarray
    by0: np.ndarray
    bx1: np.ndarray
    by1: np.ndarray
    strict: bool

    def keep(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The candidate pairs whose boxes really meet (x first, then y on the survivors)."""
        if self.strict:
            hit = (self.ax0[i] < self.bx1[j]) & (self.bx0[j] < self.ax1[i])
            i, j = i[hit], j[hit]
            hit = (self.ay0[i] < self.by1[j]) & (self.by0[j] < self.ay1[i])
        else:
            hit = (self.ax0[i] <= self.bx1[j]) & (self.bx0[j] <= self.ax1[i])
            i, j = i[hit], j[hit]
            hit = (self.ay0[i] <= self.by1[j]) & (self.by0[j] <= self.ay1[i])
        return i[hit], j[hit]


def _cell_size(extent: np.ndarray, span: float, n: int) -> float:
    """Grid cell size: the largest box extent short of outliers, and big enough to keep the table small."""
    top, q = _top_quantile(extent, 0.99)
    # (the largest value up to 4 q is among the top ones, which hold the lower of the values q lies between)
    regular = float((top if q >= 0 else extent)[(top if q >= 0 else extent) <= 4 * q].max(initial=0.0))
    cells_per_axis = max(np.sqrt(8.0 * n), 256.0)
    return max(regular, span / cells_per_axis, 1e-9)


#: :func:`_top_quantile` reads every this many values for its first guess.
_SAMPLE_STEP = 64


def _top_quantile(values: np.ndarray, q: float) -> tuple[np.ndarray, float]:
    """``(top, np.quantile(values, q))`` for a high ``q``, ``top`` the values from about the ``q - 0.02`` quantile
    up (at least every value not below the quantile, or all of them).

    The two values numpy interpolates between are picked from ``top``, the values from a sample's lower
    quantile up (a few % of a large array), not from a partition of the whole array (~10 ms a million); numpy
    then interpolates between them as between the two values of ``[lower, upper]`` at the same weight, so the
    result is its own, to the bit.
    """
    n = len(values)
    if n < 16 * _SAMPLE_STEP or np.isnan(values).any():
        return values, float(np.quantile(values, q))
    virtual = (n - 1) * q  # (numpy's "linear" method)
    k = int(np.floor(virtual))
    guess = float(np.quantile(values[::_SAMPLE_STEP], max(q - 0.02, 0.0)))
    top = values[values >= guess]
    below = n - len(top)
    if below > k or k + 1 >= n:  # (the sample misled: every value)
        return values, float(np.quantile(values, q))
    pair = np.partition(top, [k - below, k + 1 - below])[[k - below, k + 1 - below]]
    return top, float(np.quantile(pair, virtual - k))


def _grid_pairs(boxes: _Boxes, rows_a: np.ndarray, rows_b: np.ndarray, size: float, ox: float, oy: float,
                span: float, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pairs among the small boxes via the dense cell table (see :func:`bbox_pairs`).

    The ``a`` boxes are sorted by the cell of their lower-left corner, with
    the cells numbered column by column, so the cells of one column that a
    ``b`` box can reach (its row range, one row below) are one run of the
    sorted boxes: each box looks up two or three runs (columns), not nine
    cells.  Coordinates are gathered into the sorted order once, so the box
    comparisons read memory in order.
    """
    if len(rows_a) == 0 or len(rows_b) == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    height = int(span // size) + 3  # cells per axis, with a margin for the -1/+1 offsets
    from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

    # the table of cells (~16 per box): int32 positions where they fit, half the memory to clear and read
    index = np.int32 if max(len(rows_a), len(rows_b)) < 2**31 - 1 else np.int64

    def filed(rows: np.ndarray, x0, y0, x1, y1):
        """``(rows by cell, their cells, first of each cell, their four coordinates gathered in that order)``."""
        table = np.zeros(height * height + 3, dtype=index)
        every = len(rows) == len(x0)  # (rows: positions in order, so every box: 0 … n - 1)
        order, keys, first = kernels.cell_sort(x0 if every else x0[rows], y0 if every else y0[rows], ox, oy, size,
                                               height, table)
        rows = order if every else rows[order]
        return rows, keys, first, [v[rows] for v in (x0, y0, x1, y1)]

    a_side = (rows_a, boxes.ax0, boxes.ay0, boxes.ax1, boxes.ay1)
    b_side = (rows_b, boxes.bx0, boxes.by0, boxes.bx1, boxes.by1)
    if same:
        owner, keys, first, sa = filed(*a_side)
        qrows, qkeys, sb = owner, keys, sa
    elif min(len(rows_a), len(rows_b)) < _SCAN_SPLIT_MIN or _WORKERS < 2:
        owner, keys, first, sa = filed(*a_side)
        qrows, qkeys, _, sb = filed(*b_side)  # queries in cell order too, so their runs come in order
    else:  # both sides at once (the sort and the gathers release the interpreter lock)
        with ThreadPoolExecutor(2) as pool:
            b_job = pool.submit(filed, *b_side)
            owner, keys, first, sa = filed(*a_side)
            qrows, qkeys, _, sb = b_job.result()

    def scan(q0: int, q1: int):
        """The pairs of the queries ``q0 … q1 - 1``, and where each column offset's end."""
        # (mypy takes a star-unpacked tuple of unknown length for too many arguments of numba's dispatcher)
        return kernels.grid_scan(first, height, ox, oy, size, qkeys, *sa, *sb, owner, qrows,  # type: ignore[call-arg]
                                 boxes.strict, same, q0, q1)

    n = len(qrows)
    if n < _SCAN_SPLIT_MIN or _WORKERS < 2:
        return scan(0, n)[:2]
    # the queries in one share per thread (the kernel runs without the interpreter lock); the pairs in the one
    # thread's order: by column offset, then query
    cuts = [n * k // _WORKERS for k in range(_WORKERS + 1)]
    with ThreadPoolExecutor(_WORKERS) as pool:
        parts = list(pool.map(scan, cuts[:-1], cuts[1:]))
    pieces_i, pieces_j = [], []
    for column in range(len(parts[0][2])):
        for i, j, ends in parts:
            lo = ends[column - 1] if column else 0
            pieces_i.append(i[lo:ends[column]])
            pieces_j.append(j[lo:ends[column]])
    return np.concatenate(pieces_i), np.concatenate(pieces_j)


def _big_pairs(boxes: _Boxes, big_a: np.ndarray, big_b: np.ndarray, small_a: np.ndarray,
               same: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pairs involving the few boxes bigger than a grid cell, through STRtrees."""
    def tree_of(x0, y0, x1, y1, rows):
        """An STRtree of the boxes ``rows``."""
        return shapely.STRtree(shapely.box(x0[rows], y0[rows], x1[rows], y1[rows]))

    def query(tree, x0, y0, x1, y1, rows):
        """(query position, tree position) of the boxes ``rows`` meeting boxes of ``tree``."""
        return tree.query(shapely.box(x0[rows], y0[rows], x1[rows], y1[rows]))

    all_b = np.arange(len(boxes.bx0))
    if same:
        q, t = query(tree_of(boxes.bx0, boxes.by0, boxes.bx1, boxes.by1, all_b),
                     boxes.ax0, boxes.ay0, boxes.ax1, boxes.ay1, big_a)
        q = big_a[q]
        keep = (q != t) & (small_a[t] | (q < t))
        i, j = np.minimum(q[keep], t[keep]), np.maximum(q[keep], t[keep])
        return boxes.keep(i, j)
    parts_i, parts_j = [], []
    if len(big_a):
        q, t = query(tree_of(boxes.bx0, boxes.by0, boxes.bx1, boxes.by1, all_b),
                     boxes.ax0, boxes.ay0, boxes.ax1, boxes.ay1, big_a)
        parts_i.append(big_a[q])
        parts_j.append(t)
    rows_a = np.flatnonzero(small_a)
    if len(big_b) and len(rows_a):
        q, t = query(tree_of(boxes.ax0, boxes.ay0, boxes.ax1, boxes.ay1, rows_a),
                     boxes.bx0, boxes.by0, boxes.bx1, boxes.by1, big_b)
        parts_i.append(rows_a[t])
        parts_j.append(big_b[q])
    if not parts_i:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return boxes.keep(np.concatenate(parts_i).astype(np.int64), np.concatenate(parts_j).astype(np.int64))


# -- wards by date -------------------------------------------------------------------

#: Intersections the exact ward path splits over threads from this many.
_AREAS_SPLIT_MIN = 2000


def _intersection_areas(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``shapely.area(shapely.intersection(a, b))``, split over threads when long (GEOS' overlay releases the GIL,
    and reads the wards' geometries only: their prepared indexes are not used)."""
    def areas(lo: int, hi: int) -> np.ndarray:
        """The areas of the pairs ``lo … hi - 1``."""
        return shapely.area(shapely.intersection(a[lo:hi], b[lo:hi]))

    m = len(a)
    if m < _AREAS_SPLIT_MIN or _WORKERS < 2:
        return areas(0, m)
    cuts = [m * k // _WORKERS for k in range(_WORKERS + 1)]
    with ThreadPoolExecutor(_WORKERS) as pool:
        return np.concatenate(list(pool.map(areas, cuts[:-1], cuts[1:])))



#: Ward boundaries closer than this (m) to a quad may touch it: whether the ward holds all of it is GEOS' call.
_CLIP_NEAR = 1e-7
#: Parts (m²) closer than this to each other, to a whole quad, to :data:`AREA_EPSILON` or to a rounding step are
#: GEOS' call (widened for far or large quads, :func:`gisapp.analysis.kernels.ward_quads`): far above the cut's
#: rounding and GEOS' (parcels at city coordinates: up to ~2e-9 m² apart).
_CLIP_AREA = 1e-7


#: Margin (in cells) around each piece of a ward boundary when marking the cells it may cross: far above
#: rounding, far below a cell.
_EDGE_MARGIN = 1e-3


def _segments(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The boundary segments of ``geoms``: ``(row, seg)``, ``seg`` ``(k, 4)`` rows of ``x0, y0, x1, y1``, in row
    order (every ring of every part)."""
    lines, owner = shapely.get_parts(shapely.boundary(geoms), return_index=True)
    coords, line = shapely.get_coordinates(lines, return_index=True)
    step = np.flatnonzero(line[1:] == line[:-1])  # consecutive points of one line
    return owner[line[step]], np.column_stack([coords[step], coords[step + 1]])


def _edge_cells(ward: np.ndarray, seg: np.ndarray, ox: float, oy: float, size: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, cell column, cell row) of every grid cell the boundary segments ``seg`` of ``ward`` may cross.

    Each boundary segment is cut into pieces under half a cell long on each
    axis; each piece marks the cells its box, grown by :data:`_EDGE_MARGIN`
    cells, meets (at most 2 × 2).  A superset of the cells the boundary
    crosses (boxes grown by a hair included), with repeats: a cell marked
    in excess only sends its geometries to the exact path.
    """
    u0, v0 = (seg[:, 0] - ox) / size, (seg[:, 1] - oy) / size
    du, dv = (seg[:, 2] - ox) / size - u0, (seg[:, 3] - oy) / size - v0
    pieces = np.maximum(np.ceil(2.0 * np.maximum(np.abs(du), np.abs(dv))), 1.0).astype(np.int64)
    one = np.repeat(np.arange(len(seg)), pieces)
    k = (np.arange(len(one)) - np.repeat(np.cumsum(pieces) - pieces, pieces)).astype(float)
    t0, t1 = k / pieces[one], (k + 1.0) / pieces[one]
    ua, ub = u0[one] + du[one] * t0, u0[one] + du[one] * t1
    va, vb = v0[one] + dv[one] * t0, v0[one] + dv[one] * t1
    lo_u = np.floor(np.minimum(ua, ub) - _EDGE_MARGIN).astype(np.int64)
    hi_u = np.floor(np.maximum(ua, ub) + _EDGE_MARGIN).astype(np.int64)
    lo_v = np.floor(np.minimum(va, vb) - _EDGE_MARGIN).astype(np.int64)
    hi_v = np.floor(np.maximum(va, vb) + _EDGE_MARGIN).astype(np.int64)
    ward = ward[one]
    rows, gx, gy = [], [], []
    for a in (0, 1):
        for b in (0, 1):
            hit = (lo_u + a <= hi_u) & (lo_v + b <= hi_v)
            rows.append(ward[hit])
            gx.append(lo_u[hit] + a)
            gy.append(lo_v[hit] + b)
    return np.concatenate(rows), np.concatenate(gx), np.concatenate(gy)


@dataclass(frozen=True)
class WardIndex:
    """Wards with validity periods, ready to assign geometries to them by date.

    ``geoms`` must be prepared (``shapely.prepare``) copies, used by one
    thread at a time (the index locks around them); rows are in
    tie-break order (ties of overlap go to the lower row).  Periods are int
    days since 1970, ``end`` inclusive (``FAR_FUTURE`` when open).
    """

    geoms: np.ndarray
    start: np.ndarray
    end: np.ndarray
    epochs: np.ndarray  # sorted dates where the set of wards in force changes
    #: classified grids, by (cell size, cells per axis): the same grid serves every call of a run
    _grids: dict = field(default_factory=dict, compare=False, repr=False)
    #: the wards' rings as :func:`gisapp.analysis.kernels.ward_quads` reads them, once made
    _rings: list = field(default_factory=list, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @classmethod
    def build(cls, geoms: np.ndarray, start: np.ndarray, end: np.ndarray) -> WardIndex:
        """An index of the wards ``geoms`` valid from ``start`` to ``end`` (inclusive)."""
        end = np.where(end == NAT, FAR_FUTURE, end)
        bounds = np.concatenate([start, end[end != FAR_FUTURE] + 1])
        return cls(geoms, np.asarray(start), end, np.unique(bounds))

    def __len__(self) -> int:
        """Number of wards."""
        return len(self.geoms)

    def epoch_of(self, dates: np.ndarray) -> np.ndarray:
        """Period number of each date (0: before every ward, or missing)."""
        return np.searchsorted(self.epochs, dates, side="right")

    def in_force(self) -> np.ndarray:
        """``(n_epochs, n_wards)`` booleans: which wards are in force in each period."""
        first_day = np.concatenate([[NAT], self.epochs])
        out = (self.start[None, :] <= first_day[:, None]) & (first_day[:, None] <= self.end[None, :])
        out[0] = False
        return out

    def any_in_force(self, dates: np.ndarray) -> np.ndarray:
        """True where at least one ward is in force on the date."""
        return np.any(self.in_force(), axis=1)[self.epoch_of(dates)]

    def assign(self, geoms, dates: np.ndarray, bounds: np.ndarray | None = None,
               corners: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
               decimals: int | None = None):
        """Row of the ward holding the largest part of each geometry on its date, and that part's area.

        ``geoms``: an object array of geometries, or anything indexed like one
        (:class:`gisapp.analysis.geoms.Geometries`: only those the grid and
        the corners leave unsettled are made).  ``corners``: if given, gives
        for positions of ``geoms`` which are convex quadrilaterals and their
        corners (:func:`gisapp.analysis.convex.quads`' ``mask, xy``): the
        quads the grid leaves are cut against the wards by a compiled loop
        (:func:`gisapp.analysis.kernels.ward_quads`), and only those it is
        not sure of go to GEOS.  Their parts are GEOS' to ~1e-9 m² (not to the
        bit); ``decimals``: the parts will be rounded to these decimals, so
        those within a hair of a rounding step go to GEOS too.

        Returns ``(index, part)``: index ``-1`` where no ward in force
        overlaps the geometry with positive area (or the date is missing);
        ``part`` is NaN where the geometry lies wholly in its ward (the part
        is then the whole geometry, whose area is not computed here).
        Ties go to the lower ward row.
        """
        n = len(geoms)
        idx = np.full(n, -1, dtype=np.int64)
        area = np.full(n, np.nan)
        if n == 0 or len(self) == 0:
            return idx, area
        bounds = shapely.bounds(geoms).reshape(-1, 4) if bounds is None else bounds
        epoch = self.epoch_of(dates)
        in_force = self.in_force()
        settled = np.zeros(n, dtype=bool)
        if n >= _WARD_GRID_MIN_ITEMS:
            settled = self._by_grid(bounds, epoch, in_force, idx)
        rest = np.flatnonzero(~settled & (epoch > 0))
        if corners is not None and len(rest):
            rest = self._by_corners(rest, corners, bounds, epoch, in_force, decimals, idx, area)
        if len(rest):
            idx[rest], area[rest] = self._exactly(geoms[rest], bounds[rest], epoch[rest], in_force)
        return idx, area

    def _by_grid(self, bounds: np.ndarray, epoch: np.ndarray, in_force: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Settle geometries whose box lies in grid cells wholly inside one ward; fills ``idx``.

        Returns the mask of settled geometries.
        """
        wb = shapely.bounds(self.geoms).reshape(-1, 4)
        ox, oy = wb[:, 0].min(), wb[:, 1].min()
        width = max(wb[:, 2].max() - ox, wb[:, 3].max() - oy, 1e-9)
        sample = bounds[::8]  # (the size only sets how many geometries the grid settles, not their answers)
        extent = np.maximum(sample[:, 2] - sample[:, 0], sample[:, 3] - sample[:, 1])
        # cells about four times most geometries' size, about as many as geometries: boxes near a boundary are
        # left to the compiled cut (:meth:`_by_corners`, ~0.5 µs a quad), which costs less than classifying and
        # reading a finer grid
        most = min(_WARD_GRID_MAX, max(16, int(np.sqrt(len(bounds)))))
        least = 4.0 * float(np.quantile(extent, 0.9))
        size = max(least, width / most, 1e-9)
        with self._lock:  # one classification per grid, whichever thread asks first
            # a grid classified before serves (the finest of them) if most geometries fit in 2 × 2 of its cells
            # and it is not much coarser than this call's own (coarse cells leave more near a boundary unsettled;
            # a classification costs little)
            fits = [key for key in self._grids if size <= key[0] <= 1.25 * size]
            if fits:
                size = min(fits)[0]
            cells = int(np.ceil(width / size)) + 1
            cell_ward = self._grids.get((size, cells))
            if cell_ward is None:
                cell_ward = self._grids[(size, cells)] = self._classify_cells(wb, ox, oy, size, cells, in_force)
        from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

        return kernels.ward_cells(np.ascontiguousarray(bounds, dtype=float), epoch, cell_ward, float(ox), float(oy),
                                  float(size), cells, idx)

    def _classify_cells(self, wb, ox, oy, size, cells, in_force) -> np.ndarray:
        """``(n_epochs, cells²)``: the ward in force wholly containing each cell, or -1.

        A cell is a ward's when no piece of the ward's boundary may cross it
        (:func:`_edge_cells`, in numpy) and the ward holds its centre (its
        boundary's crossings of the centre's row, even-odd, by a compiled
        loop: :func:`gisapp.analysis.kernels.ward_raster`).  Ward rows fit
        in int32 (ward numbers as a look-up reads them).
        """
        from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

        ward, seg = _segments(self.geoms)
        ward_of, ex, ey = _edge_cells(ward, seg, ox, oy, size)
        inside = (ex >= 0) & (ex < cells) & (ey >= 0) & (ey < cells)
        edge_key = np.sort(ward_of[inside] * (cells * cells) + ex[inside] * cells + ey[inside])  # (repeats do no harm)
        bounds = np.arange(len(self) + 1) * (cells * cells)
        edge_first = np.searchsorted(edge_key, bounds)
        edge = edge_key - np.repeat(bounds[:-1], np.diff(edge_first))
        out = np.full((len(in_force), cells * cells), -1, dtype=np.int32 if len(self) < 2**31 - 1 else np.int64)
        return kernels.ward_raster(np.ascontiguousarray(seg), np.searchsorted(ward, np.arange(len(self) + 1)), edge,
                                   edge_first, np.ascontiguousarray(wb, dtype=float), float(ox), float(oy),
                                   float(size), cells, np.ascontiguousarray(in_force), out)

    def _by_corners(self, rows, corners, bounds, epoch, in_force, decimals, idx, area) -> np.ndarray:
        """Settle the convex quads among ``rows`` from their corners (see :meth:`assign`); fills ``idx`` and
        ``area``.  Returns the rows left to the exact path (in order)."""
        from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

        quad, xy = corners(rows)
        q = rows[quad]
        if not len(q):
            return rows
        k, i = self._candidates(bounds[q], epoch[q], in_force)
        first = np.searchsorted(i, np.arange(len(q) + 1))
        coords, ring_first, ward_rings, factor = self._ring_arrays()
        q_idx, q_area = np.empty(len(q), dtype=np.int64), np.empty(len(q))
        sure = kernels.ward_quads(first, k, np.ascontiguousarray(xy[quad], dtype=float), coords, ring_first,
                                  ward_rings, factor, _CLIP_NEAR, _CLIP_AREA, AREA_EPSILON,
                                  0.0 if decimals is None else float(10**decimals), q_idx, q_area)
        idx[q[sure]], area[q[sure]] = q_idx[sure], q_area[sure]
        return np.sort(np.concatenate([rows[~quad], q[~sure]]))

    def _ring_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The wards' rings for :func:`gisapp.analysis.kernels.ward_quads` (made once): ``(coords, ring_first,
        ward_rings, factor)``, ``factor`` +1 for a shell drawn anticlockwise or a hole drawn clockwise, else -1."""
        with self._lock:
            if not self._rings:
                parts, part_ward = shapely.get_parts(self.geoms, return_index=True)
                rings, ring_part = shapely.get_rings(parts, return_index=True)  # (each part's shell first)
                coords, ring_of = shapely.get_coordinates(rings, return_index=True)
                shell = np.r_[True, ring_part[1:] != ring_part[:-1]] if len(rings) else np.zeros(0, dtype=bool)
                self._rings.extend([coords, np.searchsorted(ring_of, np.arange(len(rings) + 1)),
                                    np.searchsorted(part_ward[ring_part], np.arange(len(self) + 1)),
                                    np.where(shell == shapely.is_ccw(rings), 1.0, -1.0)])
            return self._rings[0], self._rings[1], self._rings[2], self._rings[3]

    def _candidates(self, bounds, epoch, in_force) -> tuple[np.ndarray, np.ndarray]:
        """``(k, i)``: the wards in force on geometry ``i``'s date whose box meets its box, by ``i`` then ward
        (:func:`gisapp.analysis.kernels.ward_candidates`)."""
        from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

        return kernels.ward_candidates(np.ascontiguousarray(bounds, dtype=float), epoch, np.ascontiguousarray(in_force),
                                       np.ascontiguousarray(shapely.bounds(self.geoms).reshape(-1, 4)))

    def _exactly(self, geoms, bounds, epoch, in_force):
        """The exact path: box candidates, prepared ``contains``, then intersection areas."""
        n = len(geoms)
        idx = np.full(n, -1, dtype=np.int64)
        area = np.full(n, np.nan)
        k, i = self._candidates(bounds, epoch, in_force)
        with self._lock:  # GEOS builds a prepared geometry's indexes on first use: one thread at a time
            inside = shapely.contains(self.geoms[k], geoms[i])
        order = np.lexsort((k[inside], i[inside]))
        ki, ix = k[inside][order], i[inside][order]
        first = np.r_[True, ix[1:] != ix[:-1]] if len(ix) else np.zeros(0, dtype=bool)
        idx[ix[first]] = ki[first]
        rest = idx[i] < 0
        k, i = k[rest], i[rest]
        if len(i):
            part = _intersection_areas(self.geoms[k], geoms[i])
            order = np.lexsort((k, -part, i))
            k, i, part = k[order], i[order], part[order]
            first = np.r_[True, i[1:] != i[:-1]] & (part > AREA_EPSILON)
            idx[i[first]] = k[first]
            area[i[first]] = part[first]
        return idx, area
