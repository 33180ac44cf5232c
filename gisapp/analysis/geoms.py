"""A layer's geometries as the analysis holds them: shapely objects, or WKB made into objects only where asked.

Reading a store gives each geometry as WKB.  Making a shapely object of
every parcel and sidewalk permit (1.5-3 s per million, holding the
interpreter lock) buys little: the analysis reads the corners of the
convex quadrilaterals nearly all of them are (:func:`convex.wkb_quads`,
by a compiled loop) and asks GEOS only about a few of them (other shapes, pairs
numpy cannot decide, overlays, the findings' own geometry).
:class:`Geometries` keeps the WKB and builds the objects of the rows
asked for, in bulk, once.  The same class wraps objects already made (a
GeoDataFrame given to :func:`gisapp.analysis.overlaps.find_overlaps`), so
the analysis has one path for both.

:class:`BoxTree` answers the ``shapely.STRtree`` queries the passage
measurement asks (:func:`gisapp.passage.occupancy_passages`) from the
geometries' boxes, without building every object for a tree.
"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import shapely

from gisapp.analysis import convex
from gisapp.analysis.keys import gather
from gisapp.analysis.spatial import bbox_pairs
from gisapp.formats import derive

__all__ = ["BoxTree", "Geometries"]

#: The most bytes of values an Arrow binary array (int32 offsets) holds.
_BINARY_MAX = 2**31 - 1
#: Geometries made from WKB per call (~20 ms of holding the interpreter lock).
MAKE_ROWS = 10_000


class _Source:
    """The WKB of a layer and the objects built from it so far (shared by every :class:`Geometries` view)."""

    def __init__(self, objects: np.ndarray | None, wkb: pa.ChunkedArray | None):
        """Objects made already (every row), or WKB to make them from (none made yet)."""
        self.wkb = wkb
        self.objects = np.asarray(objects, dtype=object) if wkb is None else np.full(len(wkb), None, dtype=object)
        self.built = np.full(len(self.objects), wkb is None)  # the rows whose object is made
        self._lock = threading.Lock()

    def get(self, rows: np.ndarray) -> np.ndarray:
        """The objects of ``rows`` (int64 positions), those not made yet made now, in one call."""
        if self.wkb is not None:
            with self._lock:  # (shapely.from_wkb holds the interpreter lock: nothing to gain from two at once)
                todo = rows[~self.built[rows]]
                if len(todo) > 1 and not (todo[1:] > todo[:-1]).all():  # (rows come sorted and distinct, mostly)
                    todo = np.unique(todo)
                if len(todo):
                    # in slices: one call holds the interpreter lock throughout, and the other threads' numpy
                    # and GEOS calls (which release it) wait for it to return
                    for lo in range(0, len(todo), MAKE_ROWS):
                        part = todo[lo:lo + MAKE_ROWS]
                        self.objects[part] = shapely.from_wkb(
                            self.wkb.take(pa.array(part)).to_numpy(zero_copy_only=False))
                    self.built[todo] = True
        return self.objects[rows]


def _one_chunk(wkb: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    """``wkb`` as a chunked array of one chunk (large binary when the values pass 2 GiB).

    Arrow's ``take`` from an array of several chunks (a GeoPackage's batches) joins the chunks first, on every
    call: ~55 ms per call at a million rows, ~5 s for the hundred calls that make a million objects.  Joined
    once (~10 ms), a call costs ~1.5 ms.
    """
    if not isinstance(wkb, pa.ChunkedArray):
        return pa.chunked_array([wkb])
    if wkb.num_chunks <= 1:
        return wkb
    if pa.types.is_binary(wkb.type) and wkb.nbytes >= _BINARY_MAX:  # int32 offsets could not hold them
        wkb = wkb.cast(pa.large_binary())
    return pa.chunked_array([wkb.combine_chunks()])


class Geometries:
    """The geometries of rows of a layer: index it as a numpy object array (objects made on first use).

    ``geoms[rows]`` (positions, a mask or a slice) is an object array of
    shapely geometries (``None`` where missing), ``geoms[k]`` one geometry;
    :meth:`take` gives a view of some rows (nothing made); :meth:`quads` the
    convex quadrilaterals and their corners (:func:`convex.quads`), from
    the WKB where it can.
    """

    def __init__(self, source: _Source, rows: np.ndarray | None = None):
        """The rows ``rows`` of ``source`` (every row when ``None``); see :meth:`of_objects`, :meth:`of_wkb`."""
        self._source = source
        self._rows = rows

    @classmethod
    def of_objects(cls, objects) -> Geometries:
        """Geometries already made (an array of shapely objects)."""
        return cls(_Source(np.asarray(objects, dtype=object), None))

    @classmethod
    def of_wkb(cls, wkb: pa.Array | pa.ChunkedArray, rows: np.ndarray | None = None,
               objects: np.ndarray | None = None) -> Geometries:
        """Geometries as WKB (Arrow binary or large binary; missing values are missing geometries), but for the
        ``rows`` whose ``objects`` are made already (their WKB is not read)."""
        source = _Source(None, _one_chunk(wkb))
        if rows is not None and len(rows):
            source.objects[rows] = objects
            source.built[rows] = True
        return cls(source)

    def __len__(self) -> int:
        """Number of rows."""
        return len(self._source.objects) if self._rows is None else len(self._rows)

    def _positions(self, key) -> np.ndarray:
        """The source rows of ``key`` (positions, a mask or a slice of this view's rows)."""
        if isinstance(key, slice):
            key = np.arange(len(self))[key]
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        key = key.astype(np.int64, copy=False)
        if len(key) and key.min() < 0:  # from the end, as numpy counts
            key = np.where(key < 0, key + len(self), key)
        return key if self._rows is None else self._rows[key]

    def __getitem__(self, key):
        """The geometries of ``key`` as an object array (one geometry for an int)."""
        if isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        return self._source.get(self._positions(key))

    def take(self, key) -> Geometries:
        """The rows ``key`` as geometries of their own (a view: nothing is made)."""
        return Geometries(self._source, self._positions(key))

    def multipolygon_wkb(self, key) -> pa.Array:
        """The rows ``key`` (a row may come again) as the MultiPolygon WKB the stores write
        (:func:`gisapp.formats.derive.multipolygon_wkb`): from their own WKB when given as WKB (no object made;
        gathered and made MultiPolygons in one compiled pass, :func:`gisapp.analysis.keys.gather`), else from the
        objects."""
        source, rows = self._source, self._positions(key)
        if source.wkb is None:  # each object written once (a permit in several findings)
            seen = np.zeros(len(source.objects), dtype=bool)
            seen[rows] = True
            used = np.flatnonzero(seen)
            position = np.zeros(len(seen), dtype=np.int64)
            position[used] = np.arange(len(used))
            return derive.multipolygon_wkb(source.objects[used]).take(pa.array(position[rows]))
        wkb, ok = gather(source.wkb, rows, multipolygons=True)
        wkb = wkb.cast(source.wkb.type)  # (binary, as Arrow's take gives it, unless the layer's passed 2 GiB)
        if ok.all():
            return wkb
        other = np.flatnonzero(~ok)  # (not a 2-D little-endian Polygon: through shapely)
        at = np.arange(len(rows))
        at[other] = len(rows) + np.arange(len(other))
        return pa.concat_arrays([wkb, derive.wkb_multipolygons(wkb.take(pa.array(other)))]).take(pa.array(at))

    def quads(self) -> tuple[np.ndarray, np.ndarray]:
        """:func:`convex.quads` of these geometries: from the WKB where it is a simple polygon, else GEOS."""
        source = self._source
        if source.wkb is None:
            return convex.quads(source.objects if self._rows is None else source.objects[self._rows])
        wkb = source.wkb if self._rows is None else source.wkb.take(pa.array(self._rows))
        decided, mask, xy = convex.wkb_quads(wkb)
        other = np.flatnonzero(~decided)
        if len(other):
            mask[other], xy[other] = convex.quads(self[other])
        return mask, xy


class BoxTree:
    """What ``shapely.STRtree(geoms).query`` answers, from the boxes of ``geoms`` (no tree of objects).

    ``geoms``: the tree's geometries (objects or :class:`Geometries`: only
    those a ``dwithin`` query must measure are made), ``bounds`` their
    ``(n, 4)`` boxes.  Pairs come sorted by query geometry, then tree row.

    The boxes are filed in a grid of cells as large as (nearly) every box,
    sorted by the cell of their lower-left corner, cells numbered column by
    column: a query box (a sidewalk, much longer than a permit) reads one
    run of sorted boxes per column of cells it spans, then compares boxes.
    The few boxes larger than a cell are compared with :func:`bbox_pairs`.
    """

    def __init__(self, geoms, bounds: np.ndarray):
        """A tree of ``geoms`` with the boxes ``bounds``."""
        self.geoms = geoms
        self.bounds = b = np.asarray(bounds, dtype=float).reshape(-1, 4)
        finite = np.isfinite(b).all(axis=1)
        extent = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        rows = np.flatnonzero(finite)
        self.size, self.ox, self.oy, self.height, width = 1.0, 0.0, 0.0, 1, 1
        if len(rows):
            self.ox, self.oy = float(b[rows, 0].min()), float(b[rows, 1].min())
            area = (float(b[rows, 2].max()) - self.ox) * (float(b[rows, 3].max()) - self.oy)
            # cells as large as all but the outliers' boxes, and no more cells than 4 per box
            self.size = max(float(np.quantile(extent[rows], 0.99)), float(np.sqrt(area / (4 * len(rows)))), 1e-9)
        small = finite & (extent <= self.size)
        self.big = np.flatnonzero(finite & ~small)
        rows = np.flatnonzero(small)
        cx, cy = self._cells(b[rows, 0], self.ox), self._cells(b[rows, 1], self.oy)
        if len(rows):
            self.height, width = int(cy.max()) + 1, int(cx.max()) + 1
        self.width = width
        key = cx * self.height + cy
        order = np.argsort(key, kind="stable")
        self.rows = rows[order]
        self.first = np.zeros(width * self.height + 1, dtype=np.int64)
        np.cumsum(np.bincount(key, minlength=width * self.height), out=self.first[1:])
        self.sorted = [np.ascontiguousarray(b[self.rows, k]) for k in range(4)]

    def _cells(self, values: np.ndarray, origin: float) -> np.ndarray:
        """The cell (column or row) of each coordinate."""
        return np.floor((values - origin) / self.size).astype(np.int64)

    def _pairs(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query row, tree row) of the query ``boxes`` and tree boxes that meet (touching counts)."""
        x0, y0, x1, y1 = (boxes[:, k] for k in range(4))
        ok = np.isfinite(boxes).all(axis=1)
        # a box meeting the query has its lower-left corner at most one cell left of and below the query's
        c0 = np.clip(np.where(ok, self._cells(x0, self.ox), 0) - 1, 0, self.width)
        c1 = np.clip(np.where(ok, self._cells(x1, self.ox), -1), -1, self.width - 1)
        r0 = np.clip(np.where(ok, self._cells(y0, self.oy), 0) - 1, 0, self.height)
        r1 = np.clip(np.where(ok, self._cells(y1, self.oy), -1), -1, self.height - 1)
        columns = np.where(r1 >= r0, np.maximum(c1 - c0 + 1, 0), 0)
        q = np.repeat(np.arange(len(boxes)), columns)
        col = c0[q] + np.arange(len(q)) - np.repeat(np.cumsum(columns) - columns, columns)
        lo, hi = self.first[col * self.height + r0[q]], self.first[col * self.height + r1[q] + 1]
        count = hi - lo
        q = np.repeat(q, count)
        pos = np.arange(len(q)) + np.repeat(lo - (np.cumsum(count) - count), count)
        sx0, sy0, sx1, sy1 = self.sorted
        hit = (sx0[pos] <= x1[q]) & (x0[q] <= sx1[pos]) & (sy0[pos] <= y1[q]) & (y0[q] <= sy1[pos])
        q, t = q[hit], self.rows[pos[hit]]
        if len(self.big):
            bq, bt = bbox_pairs(boxes[ok], self.bounds[self.big])
            q, t = np.concatenate([q, np.flatnonzero(ok)[bq]]), np.concatenate([t, self.big[bt]])
        return q, t

    def query(self, geometry, predicate: str | None = None, distance=None) -> np.ndarray:
        """``(2, k)`` (query row, tree row) pairs: boxes that meet (``predicate`` None) or ``dwithin`` ``distance``."""
        geometry = np.asarray(geometry, dtype=object)
        if predicate not in (None, "dwithin"):
            raise ValueError(f"BoxTree answers no predicate {predicate!r}")
        boxes = shapely.bounds(geometry).reshape(-1, 4)
        if predicate is None:
            q, t = self._pairs(boxes)
        else:
            reach = np.broadcast_to(np.asarray(distance, dtype=float), (len(geometry),))
            q, t = self._pairs(boxes + reach[:, None] * np.array([-1.0, -1.0, 1.0, 1.0]))
            near = shapely.dwithin(geometry[q], self.geoms[t], reach[q])
            q, t = q[near], t[near]
        # sorted as one int64 key (query row, then tree row): one sort, ~3x faster than a lexsort of the two
        size = max(len(self.bounds), 1)
        if len(geometry) * size >= 2**62:
            order = np.lexsort((t, q))
            return np.stack([q[order], t[order]])
        key = np.sort(q.astype(np.int64) * size + t)
        return np.stack([key // size, key % size])
