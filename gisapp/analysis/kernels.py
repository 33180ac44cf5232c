"""Compiled loops of the overlap analysis (numba): the grid join, the quadrilaterals' WKB, checks and distances.

Each kernel is a pure function of numpy arrays, compiled on first use
(``cache=True``: the machine code is kept beside this file, or where
:func:`gisapp.formats.kernels.cache_location` says when that is read-only) and run without the
interpreter lock (``nogil``), so the analysis' threads run them side by
side.  They replace numpy code that made an array per step: one pass over
the data, no temporaries.  The arithmetic is the numpy code's, operation
for operation (no fast-math, no fused multiply-add), so the values are the
same to the last bit: :mod:`gisapp.analysis.convex` documents what they
compute and why it matches GEOS.

Importing this module imports numba (~0.3 s): the modules that use it
import it where they call it, not at their own import.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gisapp.formats.kernels import cache_location

__all__ = ["cell_sort", "grid_scan", "near_pairs", "polygon_wkb", "quad_bounds", "quad_distances", "quad_rings",
           "quad_separation", "text_hashes", "ward_candidates", "ward_cells", "ward_quads", "ward_raster", "wkb_quads"]

#: Separations (m) and turns (m²) closer to zero than this are not trusted (:data:`convex.EPSILON`).
EPSILON = 1e-7
#: Coordinates beyond this (m) are not trusted (:data:`convex._FAR`).
FAR = 1e8


def _probe():  # pragma: no cover - never called (:func:`gisapp.formats.kernels.cache_location`)
    return 0


cache_location(_probe)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _u(index):
    """``index`` (>= 0) as an unsigned integer: numba then indexes without the check for negative positions
    (counted from the end), which costs a branch per access and keeps byte loops from being vectorised (~3x)."""
    return np.uint64(index)


@njit(cache=True, nogil=True, error_model="numpy")
def _grow(buf, size):
    """``buf`` copied into an array twice as large (or ``size``, if larger)."""
    out = np.empty(max(2 * len(buf), size), dtype=buf.dtype)
    out[:len(buf)] = buf
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def cell_sort(x, y, ox, oy, size, height, table):
    """The boxes' lower-left corners filed in grid cells: ``(order, keys, first)``, a stable counting sort.

    The cell of a corner is ``(floor((x - ox) / size) + 1, floor((y - oy) / size) + 1)``,
    numbered column by column (``height`` cells per column) as its key;
    ``order`` lists the boxes by key (ties in input order), ``keys`` their
    keys in that order, ``first[c]`` the position of the first box in cell
    ``c`` or later (``height² + 1`` entries).  ``table``: ``height² + 3``
    zeros (int32 or int64, as the positions fit), ``first`` is a view of it.
    """
    n = len(x)
    key = np.empty(n, dtype=np.int64)
    for r in range(n):
        cx = np.int64(np.floor((x[r] - ox) / size)) + 1
        cy = np.int64(np.floor((y[r] - oy) / size)) + 1
        key[r] = cx * height + cy
        table[_u(key[r] + 2)] += 1
    for c in range(1, len(table)):  # table[c + 2]: the boxes in cells up to c, where cell c ends
        table[c] += table[c - 1]
    order = np.empty(n, dtype=np.int64)
    keys = np.empty(n, dtype=np.int64)
    for r in range(n - 1, -1, -1):  # backwards from each cell's end: stable, and table[c + 2] ends at its start
        at = table[_u(key[r] + 2)] - 1
        table[_u(key[r] + 2)] = at
        order[_u(at)] = r
        keys[_u(at)] = key[r]
    return order, keys, table[2:]


@njit(cache=True, nogil=True, error_model="numpy")
def grid_scan(first, height, ox, oy, size, qkeys, sa0, sa1, sa2, sa3, sb0, sb1, sb2, sb3, owner, qrows, strict,
              same, q0, q1):
    """The box pairs of the grid join (:func:`gisapp.analysis.spatial._grid_pairs`), in its order.

    ``first``: position of the first sorted ``a`` box of each cell (cells
    numbered column by column, ``height`` per column, :func:`cell_sort`'s
    grid); ``qkeys``: each query's cell (from which it reaches the next row
    and column of cells, as its upper corner lies); ``sa*`` the sorted
    ``a`` boxes, ``sb*`` the queries' boxes (already grown);
    ``owner``/``qrows`` their rows.  For
    each column offset (-1, 0, +1; -1, 0 with ``same``), each query in
    turn, the sorted boxes of the reachable cells are compared (touching
    counts unless ``strict``).  Only the queries ``q0 <= q < q1`` (a
    thread's share).  Returns ``(i, j, ends)``: the pairs (``i < j`` with
    ``same``), and where each column offset's pairs end in them.
    """
    cap = max(4 * (q1 - q0), 1024)
    out_i = np.empty(cap, dtype=np.int64)
    out_j = np.empty(cap, dtype=np.int64)
    k = 0
    last = 0 if same else 1
    ends = np.zeros(last + 2, dtype=np.int64)
    for dx in range(-1, last + 1):
        for q in range(q0, q1):
            cx = qkeys[q] // height
            cy = qkeys[q] - cx * height
            bx0, by0, bx1, by1 = sb0[q], sb1[q], sb2[q], sb3[q]
            col = (cx + dx) * height
            lo = _u(first[_u(col + cy - 1)])
            if same and dx == 0:
                hi = _u(q)
            elif dx == 1 and not np.int64(np.floor((bx1 - ox) / size)) + 1 > cx:  # not reaching the next column
                continue
            else:
                top = cy + 1 if np.int64(np.floor((by1 - oy) / size)) + 1 > cy else cy  # the highest row it reaches
                hi = _u(first[_u(col + top + 1)])
            for pos in range(lo, hi):
                if strict:
                    hit = sa0[pos] < bx1 and bx0 < sa2[pos] and sa1[pos] < by1 and by0 < sa3[pos]
                else:
                    hit = sa0[pos] <= bx1 and bx0 <= sa2[pos] and sa1[pos] <= by1 and by0 <= sa3[pos]
                if hit:
                    if k == len(out_i):
                        out_i = _grow(out_i, k + 1)
                        out_j = _grow(out_j, k + 1)
                    i, j = owner[pos], qrows[q]
                    if same and i > j:
                        i, j = j, i
                    out_i[k] = i
                    out_j[k] = j
                    k += 1
        ends[dx + 1] = k
    return out_i[:k].copy(), out_j[:k].copy(), ends


@njit(cache=True, nogil=True, error_model="numpy")
def _convex_ring(v):
    """Whether the ring ``v`` (``x0, y0, … x4, y4``) is closed, finite, within :data:`FAR` and strictly convex.

    Strictly convex: every corner turns the same way by more than :data:`EPSILON` m² (so it is simple).
    """
    if v[0] != v[8] or v[1] != v[9]:
        return False
    for c in range(8):
        if not abs(v[c]) < FAR:
            return False
    left = True
    right = True
    for c in range(4):
        c1 = c + 1
        c2 = (c + 1) % 4 + 1
        ex, ey = v[2 * c1] - v[2 * c], v[2 * c1 + 1] - v[2 * c + 1]
        fx, fy = v[2 * c2] - v[2 * c1], v[2 * c2 + 1] - v[2 * c1 + 1]
        turn = ex * fy - ey * fx
        left = left and turn > EPSILON
        right = right and turn < -EPSILON
    return left or right


@njit(cache=True, nogil=True, error_model="numpy")
def quad_rings(ring):
    """Which ``(m, 5, 2)`` rings are closed, finite, within :data:`FAR` and strictly convex (:func:`convex.quads`)."""
    m = ring.shape[0]
    ok = np.zeros(m, dtype=np.bool_)
    v = np.empty(10)
    for r in range(m):
        for c in range(5):
            v[2 * c] = ring[r, c, 0]
            v[2 * c + 1] = ring[r, c, 1]
        ok[r] = _convex_ring(v)
    return ok


@njit(cache=True, nogil=True, error_model="numpy")
def wkb_quads(offsets, data, valid, heads, lengths, decided, mask, xy):
    """The convex quads of an Arrow array of WKB, read from its bytes (:func:`convex.wkb_quads`).

    Value ``r`` is ``data[offsets[r]:offsets[r + 1]]`` (``valid[r]``: not
    null).  A value is read when it is one of the shapes whose WKB head is
    ``heads[k, :lengths[k]]`` followed by 80 bytes of coordinates (5
    little-endian points): ``decided[r]`` is then set, and ``mask[r]`` and
    ``xy[r]`` (the ring's first 4 points) when the ring is a strictly
    convex quad (:func:`_convex_ring`); ``xy[r]`` is NaN for every other row
    (so ``xy`` may come uninitialised: one pass over it).
    """
    n = len(offsets) - 1
    raw = np.empty(80, dtype=np.uint8)
    v = raw.view(np.float64)
    for r in range(n):
        quad = False
        start = _u(offsets[r])
        size = np.int64(offsets[r + 1]) - np.int64(offsets[r])
        shape = -1
        for k in range(len(lengths)):
            if valid[r] and size == lengths[k] + 80:
                shape = k
        if shape >= 0:
            same = True
            for b in range(lengths[shape]):
                if data[start + _u(b)] != heads[shape, b]:
                    same = False
                    break
            if same:
                at = start + _u(lengths[shape])
                for b in range(80):
                    raw[b] = data[at + _u(b)]
                decided[r] = True
                quad = _convex_ring(v)
        if quad:
            mask[r] = True
            for c in range(4):
                xy[r, c, 0] = v[2 * c]
                xy[r, c, 1] = v[2 * c + 1]
        else:
            for c in range(4):
                xy[r, c, 0] = np.nan
                xy[r, c, 1] = np.nan


@njit(cache=True, nogil=True, error_model="numpy")
def polygon_wkb(xy, count):
    """Little-endian 2-D WKB of the Polygons of the first ``count[r]`` corners of each ``xy[r]`` (``(m, k, 2)``),
    each ring closed by its first corner: ``(offsets, data, bounds)``.

    Value ``r`` is ``data[offsets[r]:offsets[r + 1]]``, the bytes ``shapely.to_wkb(shapely.polygons(ring),
    byte_order=1)`` writes; ``bounds``: ``(m, 4)`` ``minx, miny, maxx, maxy`` of the corners (``shapely.bounds``).
    """
    m = len(count)
    offsets = np.empty(m + 1, dtype=np.int64)
    offsets[0] = 0
    for r in range(m):
        offsets[r + 1] = offsets[r] + 13 + 16 * (count[r] + 1)
    data = np.empty(offsets[m], dtype=np.uint8)
    bounds = np.empty((m, 4))
    word = np.empty(1, dtype=np.uint32)
    word_bytes = word.view(np.uint8)
    point = np.empty(2)
    point_bytes = point.view(np.uint8)
    for r in range(m):
        at = offsets[r]
        n = count[r]
        data[at] = 1  # little-endian
        for k, value in enumerate((3, 1, n + 1)):  # Polygon, one ring, its points
            word[0] = value
            for b in range(4):
                data[at + 1 + 4 * k + b] = word_bytes[b]
        at += 13
        x0, y0, x1, y1 = xy[r, 0, 0], xy[r, 0, 1], xy[r, 0, 0], xy[r, 0, 1]
        for c in range(n + 1):
            point[0], point[1] = xy[r, c % n, 0], xy[r, c % n, 1]
            x0, y0 = min(x0, point[0]), min(y0, point[1])
            x1, y1 = max(x1, point[0]), max(y1, point[1])
            for b in range(16):
                data[at + b] = point_bytes[b]
            at += 16
        bounds[r, 0], bounds[r, 1], bounds[r, 2], bounds[r, 3] = x0, y0, x1, y1
    return offsets, data, bounds


@njit(cache=True, nogil=True, error_model="numpy")
def quad_bounds(xy):
    """``(m, 4)`` bounds (``minx, miny, maxx, maxy``) of ``(m, 4, 2)`` corners (NaN rows give NaN)."""
    m = xy.shape[0]
    out = np.empty((m, 4))
    for r in range(m):
        x0, y0, x1, y1 = xy[r, 0, 0], xy[r, 0, 1], xy[r, 0, 0], xy[r, 0, 1]
        for c in range(1, 4):
            x0 = min(x0, xy[r, c, 0])
            y0 = min(y0, xy[r, c, 1])
            x1 = max(x1, xy[r, c, 0])
            y1 = max(y1, xy[r, c, 1])
        out[r, 0], out[r, 1], out[r, 2], out[r, 3] = x0, y0, x1, y1
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _against(p, q, best2, perp, corners):
    """Corners of quad ``q`` against the sides of quad ``p`` (``(4, 2)`` each): the separating gap.

    ``perp[0]`` is lowered to the least distance of a corner of ``q`` to a
    side of ``p`` where its foot falls inside the side (GEOS' formula);
    ``best2[0]``, when ``corners``, to the least squared corner-to-corner
    distance.  :func:`convex._against`, for one pair.
    """
    turn = 0.0
    for k in range(4):
        k1 = (k + 1) % 4
        turn += p[k, 0] * p[k1, 1] - p[k1, 0] * p[k, 1]
    sign = 1.0 if turn > 0 else -1.0
    gap = -np.inf
    for k in range(4):
        k1 = (k + 1) % 4
        ax, ay = p[k, 0], p[k, 1]
        ex, ey = p[k1, 0] - ax, p[k1, 1] - ay
        len2 = ex * ex + ey * ey
        root = np.sqrt(len2)
        least = np.inf
        for j in range(4):
            dx, dy = q[j, 0] - ax, q[j, 1] - ay
            if corners:
                best2[0] = min(best2[0], dx * dx + dy * dy)
            cross = dx * ey - dy * ex
            least = min(least, cross * sign)
            r = (dx * ex + dy * ey) / len2
            if r > 0.0 and r < 1.0:
                perp[0] = min(perp[0], abs(cross / len2) * root)
        gap = max(gap, least / root)
    return gap


@njit(cache=True, nogil=True, error_model="numpy")
def _pair_distance(p, q, best2, perp):
    """(separating gap, least corner distance) of quads ``p`` and ``q`` (:func:`convex.distances`)."""
    best2[0] = np.inf
    perp[0] = np.inf
    gap = max(_against(p, q, best2, perp, True), _against(q, p, best2, perp, False))
    return gap, min(np.sqrt(best2[0]), perp[0])


@njit(cache=True, nogil=True, error_model="numpy")
def quad_separation(p, q):
    """Separating-axis gap of the quads ``p[k]`` and ``q[k]`` (``(m, 4, 2)``): :func:`convex.separation`."""
    m = len(p)
    gap = np.empty(m)
    best2 = np.empty(1)
    perp = np.empty(1)
    for r in range(m):
        gap[r] = max(_against(p[r], q[r], best2, perp, False), _against(q[r], p[r], best2, perp, False))
    return gap


@njit(cache=True, nogil=True, error_model="numpy")
def quad_distances(p, q):
    """``(gap, near)`` of the quads ``p[k]`` and ``q[k]``: :func:`convex.distances`, :func:`convex.corner_distance`."""
    m = len(p)
    gap = np.empty(m)
    near = np.empty(m)
    best2 = np.empty(1)
    perp = np.empty(1)
    for r in range(m):
        gap[r], near[r] = _pair_distance(p[r], q[r], best2, perp)
    return gap, near


#: Pairs :func:`near_pairs` reads at a time: their periods, then the survivors' corners, gathered in tight loops
#: (many loads in flight, as numpy's gathers) before the arithmetic.
_BATCH = 256


@njit(cache=True, nogil=True, error_model="numpy")
def near_pairs(i, j, period_p, period_q, quad_p, quad_q, xy_p, xy_q, cut, touch, scale, lo, hi):
    """The candidate pairs ``(i[k], j[k])`` (``lo <= k < hi``) whose periods meet and that may lie within ``cut``.

    Returns ``(i, j, dist, sure)`` of those pairs, in their order: pairs
    whose periods (``(n, 2)`` inclusive start and end days of ``p`` and
    ``q``) do not meet are dropped; pairs of quads (``quad_p``/``quad_q``,
    corners ``xy_p``/``xy_q``) are measured as :func:`convex.distances`
    measures them and dropped when surely farther than ``cut``; ``sure`` is
    False where GEOS must measure (``dist`` is then NaN or numpy's guess):
    other shapes, quads nearly touching (unless a corner lies nearer than
    ``touch``: 0 apart, as :func:`gisapp.analysis.overlaps._near_pairs`
    says), a distance within a hair of half a rounding step (``scale``:
    steps per metre) or of ``cut``.  The arithmetic is that of the numpy
    code it replaces, to the bit.
    """
    m = hi - lo
    out_i = np.empty(m, dtype=np.int64)
    out_j = np.empty(m, dtype=np.int64)
    dist = np.empty(m)
    sure = np.empty(m, dtype=np.bool_)
    best2 = np.empty(1)
    perp = np.empty(1)
    kept = np.empty(_BATCH, dtype=np.int64)
    both = np.empty(_BATCH, dtype=np.bool_)
    bp = np.empty((_BATCH, 4, 2))
    bq = np.empty((_BATCH, 4, 2))
    n = 0
    for k0 in range(lo, hi, _BATCH):
        c = 0
        for k in range(k0, min(k0 + _BATCH, hi)):
            a, b = _u(i[k]), _u(j[k])
            if period_p[a, 0] <= period_q[b, 1] and period_q[b, 0] <= period_p[a, 1]:
                kept[c] = k
                c += 1
        for t in range(c):
            a, b = _u(i[kept[t]]), _u(j[kept[t]])
            both[t] = quad_p[a] and quad_q[b]
            if both[t]:
                bp[t] = xy_p[a]
                bq[t] = xy_q[b]
        for t in range(c):
            d = np.nan
            s = False
            if both[t]:
                gap, near = _pair_distance(bp[t], bq[t], best2, perp)
                apart = gap > EPSILON
                d = near if apart else 0.0
                s = apart or gap < -EPSILON or near < touch
                steps = d * scale
                s = s and abs(steps - np.floor(steps) - 0.5) > 1e-6 and abs(d - cut) > 1e-9
                if s and not d <= cut:
                    continue
            out_i[n], out_j[n], dist[n], sure[n] = i[kept[t]], j[kept[t]], d, s
            n += 1
    return out_i[:n].copy(), out_j[:n].copy(), dist[:n].copy(), sure[:n].copy()


@njit(cache=True, nogil=True, error_model="numpy")
def ward_cells(bounds, epoch, cell_ward, ox, oy, size, cells, idx):
    """The ward of each box lying in grid cells wholly inside one ward (:meth:`WardIndex._by_grid`).

    A box is settled when it spans at most 2 × 2 cells of the ``cells`` ×
    ``cells`` grid (origin ``ox, oy``, cells ``size`` wide) and all of them
    belong to the same ward in its period ``epoch`` (``cell_ward``:
    ``(periods, cells²)``, -1 for a cell no ward wholly holds).  Writes the
    ward into ``idx`` and returns the mask of settled boxes.
    """
    n = len(bounds)
    ok = np.zeros(n, dtype=np.bool_)
    for r in range(n):
        x0 = np.floor((bounds[r, 0] - ox) / size)
        y0 = np.floor((bounds[r, 1] - oy) / size)
        x1 = np.floor((bounds[r, 2] - ox) / size)
        y1 = np.floor((bounds[r, 3] - oy) / size)
        if not (x0 >= 0 and y0 >= 0 and x1 < cells and y1 < cells and x1 - x0 <= 1 and y1 - y0 <= 1):
            continue
        ix0, iy0, ix1, iy1 = np.int64(x0), np.int64(y0), np.int64(x1), np.int64(y1)
        row = cell_ward[_u(epoch[r])]
        ward = row[_u(ix0 * cells + iy0)]
        if ward >= 0 and row[_u(ix1 * cells + iy0)] == ward and row[_u(ix0 * cells + iy1)] == ward \
                and row[_u(ix1 * cells + iy1)] == ward:
            ok[r] = True
            idx[r] = ward
    return ok


@njit(cache=True, nogil=True, error_model="numpy")
def _ward_hits(order, left, reach, bounds, epoch, in_force, wb, start, k, fill):
    """:func:`ward_candidates`' scan: each box's wards counted (``start[i + 1]``), or (``fill``) filed in ``k`` from
    ``start[i]`` on."""
    for w in range(len(wb)):
        lo = np.searchsorted(left, wb[w, 0] - reach, side="left")
        hi = np.searchsorted(left, wb[w, 2], side="right")
        for t in range(lo, hi):
            r = order[t]
            if in_force[epoch[r], w] and bounds[r, 0] <= wb[w, 2] and bounds[r, 2] >= wb[w, 0] \
                    and bounds[r, 1] <= wb[w, 3] and bounds[r, 3] >= wb[w, 1]:
                if fill:
                    k[start[r]] = w
                    start[r] += 1
                else:
                    start[r + 1] += 1


@njit(cache=True, nogil=True, error_model="numpy")
def ward_candidates(bounds, epoch, in_force, wb):
    """``(k, i)``: the wards ``k`` in force in box ``i``'s period (``in_force[epoch[i], k]``) whose box ``wb[k]``
    meets box ``bounds[i]`` (touching counts; NaN boxes meet none), by box, then ward.

    The boxes sorted by their left side: a ward's candidates are one run of them (left side within the ward's
    x range, less the widest box), then compared box against box; counted per box, then filed.
    """
    n = len(bounds)
    order = np.argsort(bounds[:, 0], kind="mergesort")  # (NaN last)
    left = np.empty(n)
    reach = 0.0
    for t in range(n):
        left[t] = bounds[order[t], 0]
        reach = max(reach, bounds[t, 2] - bounds[t, 0])  # (NaN does not count: max keeps the first if not greater)
    start = np.zeros(n + 1, dtype=np.int64)
    _ward_hits(order, left, reach, bounds, epoch, in_force, wb, start, np.empty(0, dtype=np.int64), False)
    for r in range(n):
        start[r + 1] += start[r]
    k = np.empty(start[n], dtype=np.int64)
    i = np.empty(start[n], dtype=np.int64)
    for r in range(n):
        i[start[r]:start[r + 1]] = r
    _ward_hits(order, left, reach, bounds, epoch, in_force, wb, start, k, True)
    return k, i


@njit(cache=True, nogil=True, error_model="numpy")
def _quad_sides(xy, g):
    """Quad ``g``'s corners relative to its first corner (``cx, cy``), its sides' inward unit normals (``nx, ny``),
    its area and its perimeter (the corners turn one way: a strictly convex quad)."""
    cx, cy = np.empty(4), np.empty(4)
    for c in range(4):
        cx[c] = xy[g, c, 0] - xy[g, 0, 0]
        cy[c] = xy[g, c, 1] - xy[g, 0, 1]
    turn = 0.0
    for c in range(4):
        turn += cx[c] * cy[(c + 1) % 4] - cx[(c + 1) % 4] * cy[c]
    sign = 1.0 if turn > 0 else -1.0
    nx, ny = np.empty(4), np.empty(4)
    perimeter = 0.0
    for c in range(4):
        ex, ey = cx[(c + 1) % 4] - cx[c], cy[(c + 1) % 4] - cy[c]
        root = np.sqrt(ex * ex + ey * ey)
        nx[c], ny[c] = -sign * ey / root, sign * ex / root
        perimeter += root
    return cx, cy, nx, ny, abs(turn) / 2.0, perimeter


@njit(cache=True, nogil=True, error_model="numpy")
def _segment_gap(ax, ay, bx, by, cx, cy, nx, ny):
    """A lower bound (m) of the distance between the segment ``a b`` and the quad (corners ``cx, cy``, inward
    normals ``nx, ny``): the largest gap along a separating axis (the quad's sides' normals, the segment's), <= 0
    where they meet."""
    gap = -np.inf
    for c in range(4):  # the quad lies on the inner side of each of its sides: the segment's least outward reach
        out_a = -(nx[c] * (ax - cx[c]) + ny[c] * (ay - cy[c]))
        out_b = -(nx[c] * (bx - cx[c]) + ny[c] * (by - cy[c]))
        gap = max(gap, min(out_a, out_b))
    ex, ey = bx - ax, by - ay
    root = np.sqrt(ex * ex + ey * ey)
    if root > 0:  # the segment's normal: the corners all on one side of its line
        mx, my = -ey / root, ex / root
        lo, hi = np.inf, -np.inf
        for c in range(4):
            v = mx * (cx[c] - ax) + my * (cy[c] - ay)
            lo, hi = min(lo, v), max(hi, v)
        gap = max(gap, lo, -hi)
    return gap


@njit(cache=True, nogil=True, error_model="numpy")
def _ring_near(coords, v0, v1, x0, y0, cx, cy, nx, ny, near):
    """Whether a segment of the ring ``coords[v0:v1]`` (closed) may come within ``near`` of the quad (corners
    ``cx, cy`` relative to ``x0, y0``, inward normals ``nx, ny``): boxes apart by more are not looked at."""
    lox, hix = min(cx[0], cx[1], cx[2], cx[3]) - near, max(cx[0], cx[1], cx[2], cx[3]) + near
    loy, hiy = min(cy[0], cy[1], cy[2], cy[3]) - near, max(cy[0], cy[1], cy[2], cy[3]) + near
    for v in range(v0, v1 - 1):
        ax, ay = coords[v, 0] - x0, coords[v, 1] - y0
        bx, by = coords[v + 1, 0] - x0, coords[v + 1, 1] - y0
        if max(ax, bx) < lox or min(ax, bx) > hix or max(ay, by) < loy or min(ay, by) > hiy:
            continue
        if _segment_gap(ax, ay, bx, by, cx, cy, nx, ny) <= near:
            return True
    return False


@njit(cache=True, nogil=True, error_model="numpy")
def _clip_ring(coords, v0, v1, x0, y0, cx, cy, nx, ny, bx, by, tx, ty):
    """The signed area of the ring ``coords[v0:v1]`` (closed) cut to the convex quad (Sutherland–Hodgman: the
    ring cut by each side's half-plane in turn; a concave ring may leave edges along the quad's sides, which
    add no area), in coordinates relative to ``x0, y0``.  ``bx, by``, ``tx, ty``: work buffers; NaN when the
    cut ring outgrows them."""
    n = v1 - v0 - 1  # (the closing coordinate repeats the first)
    for v in range(n):
        bx[v] = coords[v0 + v, 0] - x0
        by[v] = coords[v0 + v, 1] - y0
    cap = len(bx)
    for c in range(4):
        m = 0
        px, py = bx[n - 1], by[n - 1]
        dp = nx[c] * (px - cx[c]) + ny[c] * (py - cy[c])
        for v in range(n):
            qx, qy = bx[v], by[v]
            dq = nx[c] * (qx - cx[c]) + ny[c] * (qy - cy[c])
            if (dq >= 0) != (dp >= 0):  # the edge crosses the side's line: where, on the edge
                if m == cap:
                    return np.nan
                t = dp / (dp - dq)
                tx[m], ty[m] = px + t * (qx - px), py + t * (qy - py)
                m += 1
            if dq >= 0:
                if m == cap:
                    return np.nan
                tx[m], ty[m] = qx, qy
                m += 1
            px, py, dp = qx, qy, dq
        bx, tx = tx, bx
        by, ty = ty, by
        n = m
        if n == 0:
            return 0.0
    turn = 0.0
    for v in range(n):
        w = v + 1 if v + 1 < n else 0
        turn += bx[v] * by[w] - bx[w] * by[v]
    return turn / 2.0


@njit(cache=True, nogil=True, error_model="numpy")
def ward_quads(first, ward, xy, coords, ring_first, ward_rings, factor, near, tol, least, scale, idx, area):
    """The ward holding the largest part of each convex quad (:meth:`WardIndex.assign`'s exact rule), from the
    corners; True where that answer is sure, else the caller asks GEOS.

    Quad ``g`` (corners ``xy[g]``) meets the candidate wards ``ward[first[g]:first[g + 1]]`` (rows ascending).
    A ward's rings are ``ward_rings[k]:ward_rings[k + 1]``, ring ``r``'s coordinates (closed)
    ``coords[ring_first[r]:ring_first[r + 1]]``, ``factor[r]`` +1 or -1 so that ``factor`` times the ring's
    signed area counts a shell's part and takes off a hole's.  For each ward: the area of its part of the quad
    (each ring cut to the quad, :func:`_clip_ring`) and whether its boundary comes within ``near`` (m) of the
    quad.  A ward whose boundary keeps away holds all or none of the quad: the lowest such ward holding it
    wins (GEOS' ``contains``), part NaN; one whose boundary comes near and that holds all the quad but a
    slack or less may hold it all or not: not sure.  Else the largest part (ties to the lower row) if above
    ``least`` (m²); not sure when two parts lie within the slack of each other or the largest within it of
    ``least``, or (``scale`` > 0) of a rounding step of ``part * scale`` (so the rounded part is GEOS' though
    the part differs from GEOS' in its last digits).  The slack: ``tol`` (m²) plus 1e-15 of the quad's
    coordinates times its perimeter (GEOS' cut corners lie up to its coordinates' rounding away).  Writes
    ``idx`` (-1: none), ``area`` (NaN but for a part); returns the ``sure`` mask.
    """
    size = 8
    for k in range(len(ward_rings) - 1):
        for r in range(ward_rings[k], ward_rings[k + 1]):
            size = max(size, 4 * (ring_first[r + 1] - ring_first[r]) + 16)
    bufs = np.empty((4, size))
    m = len(first) - 1
    sure = np.zeros(m, dtype=np.bool_)
    for g in range(m):
        idx[g], area[g] = -1, np.nan
        cx, cy, nx, ny, whole, perimeter = _quad_sides(xy, g)
        x0, y0 = xy[g, 0, 0], xy[g, 0, 1]
        slack = tol + 1e-15 * (abs(x0) + abs(y0)) * perimeter
        ok, held = True, False
        best, best_k, second = -np.inf, -1, -np.inf
        for p in range(first[g], first[g + 1]):
            k = ward[p]
            part, close = 0.0, False
            for r in range(ward_rings[k], ward_rings[k + 1]):
                close = close or _ring_near(coords, ring_first[r], ring_first[r + 1], x0, y0, cx, cy, nx, ny, near)
                part += factor[r] * _clip_ring(coords, ring_first[r], ring_first[r + 1], x0, y0, cx, cy, nx, ny,
                                               bufs[0], bufs[1], bufs[2], bufs[3])
            if close and whole - part <= slack or np.isnan(part):
                ok = False
                break
            if not close and part > 0.5 * whole:
                held = True
                idx[g] = k
                break
            if part > best:
                best, best_k, second = part, k, best
            else:
                second = max(second, part)
        if ok and not held and best > least - slack:
            ok = best - least > slack and best - second > slack
            if scale > 0:
                steps = best * scale
                ok = ok and abs(steps - np.floor(steps) - 0.5) > slack * scale
            idx[g], area[g] = best_k, best
        sure[g] = ok
    return sure


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _rotl(x, b):
    """``x`` (uint64) rotated left by ``b`` bits."""
    return (x << np.uint64(b)) | (x >> np.uint64(64 - b))


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _sipround(v0, v1, v2, v3):
    """One SipRound of the state ``v0 … v3`` (uint64)."""
    v0 += v1
    v1 = _rotl(v1, 13)
    v1 ^= v0
    v0 = _rotl(v0, 32)
    v2 += v3
    v3 = _rotl(v3, 16)
    v3 ^= v2
    v0 += v3
    v3 = _rotl(v3, 21)
    v3 ^= v0
    v2 += v1
    v1 = _rotl(v1, 17)
    v1 ^= v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


@njit(cache=True, nogil=True, error_model="numpy")
def text_hashes(offsets, data, k0, k1):
    """``pandas.util.hash_array`` of texts (``categorize=False``): SipHash-2-4 of each UTF-8 value, then mixed.

    ``offsets``/``data``: the values' bytes as an Arrow string array holds
    them (value ``r`` is ``data[offsets[r]:offsets[r + 1]]``); ``k0``,
    ``k1``: the 16-byte key as two little-endian uint64.  The same numbers
    as pandas (its SipHash of each encoded value, then its 64-bit mix),
    computed without the interpreter lock and without a bytes object per value.
    """
    n = len(offsets) - 1
    out = np.empty(n, dtype=np.uint64)
    for r in range(n):
        start, end = offsets[r], offsets[r + 1]
        length = end - start
        v0 = np.uint64(0x736F6D6570736575) ^ k0
        v1 = np.uint64(0x646F72616E646F6D) ^ k1
        v2 = np.uint64(0x6C7967656E657261) ^ k0
        v3 = np.uint64(0x7465646279746573) ^ k1
        whole = start + (length // 8) * 8
        for at in range(start, whole, 8):
            m = np.uint64(0)
            for k in range(8):
                m |= np.uint64(data[_u(at + k)]) << np.uint64(8 * k)
            v3 ^= m
            for _ in range(2):
                v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
            v0 ^= m
        b = np.uint64(length) << np.uint64(56)
        for k in range(end - whole):
            b |= np.uint64(data[_u(whole + k)]) << np.uint64(8 * k)
        v3 ^= b
        for _ in range(2):
            v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= b
        v2 ^= np.uint64(0xFF)
        for _ in range(4):
            v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        out[r] = _mix64(v0 ^ v1 ^ v2 ^ v3)  # pandas' mix of the 64-bit values
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def ward_raster(seg, seg_first, edge, edge_first, wb, ox, oy, size, cells, in_force, out):
    """The grid cells wholly inside each ward, by period: ``out[e, gx * cells + gy] = k`` (``WardIndex``'s grid).

    ``seg``: the wards' boundary segments (``x0, y0, x1, y1`` rows), those
    of ward ``k`` at ``seg_first[k]:seg_first[k + 1]``; ``edge``: the cells
    (``gx * cells + gy``) its boundary may cross, at
    ``edge_first[k]:edge_first[k + 1]``; ``wb`` the wards' bounds.  A cell
    is ward ``k``'s when its boundary crosses no part of it and its centre
    lies inside: an odd number of the boundary's crossings of the centre's
    row lie left of it (even-odd: a valid polygon's interior, holes and
    parts included; the centre is half a cell from the boundary, far from
    any rounding).  Wards go from the last row down, so the lowest row
    in force wins; ``out`` holds -1 elsewhere.
    """
    crossed = np.zeros(cells * cells, dtype=np.bool_)
    for k in range(len(seg_first) - 2, -1, -1):
        epochs = np.flatnonzero(in_force[:, k])
        if not len(epochs):
            continue
        for p in range(edge_first[k], edge_first[k + 1]):
            crossed[edge[p]] = True
        j0 = max(np.int64(np.floor((wb[k, 1] - oy) / size)), np.int64(0))
        j1 = min(np.int64(np.floor((wb[k, 3] - oy) / size)), np.int64(cells - 1))
        # the crossings of each cell row's centre line: (row, x), counted, then filled
        total = np.int64(0)
        for s in range(seg_first[k], seg_first[k + 1]):
            lo, hi = min(seg[s, 1], seg[s, 3]), max(seg[s, 1], seg[s, 3])
            total += max(np.int64(np.floor((hi - oy) / size)) - np.int64(np.floor((lo - oy) / size)) + 2, np.int64(0))
        rows = np.empty(total, dtype=np.int64)
        xs = np.empty(total)
        n = 0
        for s in range(seg_first[k], seg_first[k + 1]):
            x0, y0, x1, y1 = seg[s, 0], seg[s, 1], seg[s, 2], seg[s, 3]
            if y0 == y1:
                continue
            g0 = max(np.int64(np.floor((min(y0, y1) - oy) / size)) - 1, j0)
            g1 = min(np.int64(np.floor((max(y0, y1) - oy) / size)) + 1, j1)
            for gy in range(g0, g1 + 1):
                yc = oy + (gy + 0.5) * size
                if (y0 > yc) != (y1 > yc):
                    rows[n] = gy
                    xs[n] = x0 + (yc - y0) * (x1 - x0) / (y1 - y0)
                    n += 1
        rows, xs = rows[:n], xs[:n]
        order = np.argsort(xs, kind="mergesort")
        order = order[np.argsort(rows[order], kind="mergesort")]  # by row, then x
        a = 0
        while a < n:
            b = a
            while b < n and rows[order[b]] == rows[order[a]]:
                b += 1
            gy = rows[order[a]]
            for p in range(a, b - 1, 2):  # inside between the 1st and 2nd crossing, the 3rd and 4th, …
                xa, xb = xs[order[p]], xs[order[p + 1]]
                g0 = max(np.int64(np.floor((xa - ox) / size)), np.int64(0))
                g1 = min(np.int64(np.floor((xb - ox) / size)), np.int64(cells - 1))
                for gx in range(g0, g1 + 1):
                    xc = ox + (gx + 0.5) * size
                    cell = gx * cells + gy
                    if xa < xc and xc < xb and not crossed[cell]:
                        for e in epochs:
                            out[e, cell] = k
            a = b
        for p in range(edge_first[k], edge_first[k + 1]):
            crossed[edge[p]] = False
    return out


# -- keys, gathers and texts of the findings (no Python object per value) ----------------------------------------


@njit(cache=True, nogil=True, error_model="numpy")
def repeated_values(values, skip):
    """Which of the uint64 ``values`` (not ``skip``) occur more than once among those not skipped: every
    occurrence is marked.

    One pass filing the values in an open-addressing table (twice as many slots as values, linear probing;
    the values are hashes, so their low bits spread them), one pass reading their counts: what
    ``np.isin(values, repeated)`` after a sort finds, in ~1/4 of the sort's time.
    """
    n = len(values)
    size = 16
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.zeros(size, dtype=np.uint64)
    count = np.zeros(size, dtype=np.uint8)  # 0: free slot, 1: seen once, 2: seen more often
    slot = np.empty(n, dtype=np.int64)
    for r in range(n):
        slot[r] = -1
        if skip[r]:
            continue
        v = values[r]
        k = (v ^ (v >> np.uint64(32))) & mask
        while count[k] != 0 and table[k] != v:
            k = (k + np.uint64(1)) & mask
        table[k] = v
        count[k] = min(count[k] + 1, 2)
        slot[r] = k
    out = np.zeros(n, dtype=np.bool_)
    for r in range(n):
        if slot[r] >= 0:
            out[r] = count[_u(slot[r])] > 1
    return out


#: Little-endian WKB heads: a 2-D Polygon's, a 2-D MultiPolygon's and the MultiPolygon of one part put before a
#: Polygon's bytes (:func:`gisapp.formats.derive.wkb_multipolygons`).
_POLYGON = np.array([1, 3, 0, 0, 0], dtype=np.uint8)
_MULTIPOLYGON = np.array([1, 6, 0, 0, 0], dtype=np.uint8)
_ONE_PART = np.array([1, 6, 0, 0, 0, 1, 0, 0, 0], dtype=np.uint8)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _starts(data, at, size, head):
    """Whether the ``size`` bytes at ``data[at:]`` start with ``head``."""
    if size < len(head):
        return False
    for b in range(len(head)):
        if data[at + _u(b)] != head[b]:
            return False
    return True


@njit(cache=True, nogil=True, error_model="numpy")
def take_values(offsets, data, rows, multipolygons):
    """The values ``rows`` of an Arrow binary or string array (value ``r`` is ``data[offsets[r]:offsets[r + 1]]``),
    gathered: ``(offsets, data, ok)`` of the new array (int64 offsets: a large binary or string array).

    With ``multipolygons`` each value is WKB written as :func:`gisapp.formats.derive.wkb_multipolygons` writes it:
    a little-endian 2-D Polygon with rings behind the header of a MultiPolygon of one part, a little-endian 2-D
    MultiPolygon as it is; ``ok`` is False (and the value copied as it is) for any other value, which the caller
    converts (an empty value too: a missing value's validity is the caller's).
    """
    m = len(rows)
    out_offsets = np.empty(m + 1, dtype=np.int64)
    ok = np.ones(m, dtype=np.bool_)
    splice = np.zeros(m, dtype=np.bool_)
    first = np.empty(m, dtype=np.uint64)  # where each value starts in ``data`` (read once: random access)
    total = np.int64(0)
    out_offsets[0] = 0
    for r in range(m):
        s = _u(rows[r])
        start, size = _u(offsets[s]), np.int64(offsets[s + 1]) - np.int64(offsets[s])
        first[r] = start
        if multipolygons:
            if _starts(data, start, size, _POLYGON) and size >= 9 and (
                    data[start + _u(5)] | data[start + _u(6)] | data[start + _u(7)] | data[start + _u(8)]) != 0:
                splice[r] = True
                size += len(_ONE_PART)
            elif not _starts(data, start, size, _MULTIPOLYGON):
                ok[r] = False
        total += size
        out_offsets[r + 1] = total
    out = np.empty(total, dtype=np.uint8)
    for r in range(m):
        at = _u(out_offsets[r])
        if splice[r]:
            for b in range(len(_ONE_PART)):
                out[at + _u(b)] = _ONE_PART[b]
            at += _u(len(_ONE_PART))
        start = first[r]
        for b in range(_u(out_offsets[r + 1]) - at):
            out[at + b] = data[start + b]
    return out_offsets, out, ok


@njit(cache=True, nogil=True, error_model="numpy")
def equal_values(offsets_a, data_a, rows_a, offsets_b, data_b, rows_b):
    """Whether value ``rows_a[k]`` of one Arrow string (or binary) array has the bytes of value ``rows_b[k]`` of
    another (value ``r`` is ``data[offsets[r]:offsets[r + 1]]``): ``pc.equal`` of the two takes, without taking.

    The values' places are read first, in a loop of independent loads (many in flight), then the bytes.
    """
    m = len(rows_a)
    out = np.zeros(m, dtype=np.bool_)
    start_a = np.empty(m, dtype=np.uint64)
    start_b = np.empty(m, dtype=np.uint64)
    size = np.empty(m, dtype=np.int64)
    for k in range(m):
        a, b = _u(rows_a[k]), _u(rows_b[k])
        start_a[k], start_b[k] = _u(offsets_a[a]), _u(offsets_b[b])
        size_a = np.int64(offsets_a[a + 1]) - np.int64(offsets_a[a])
        size[k] = size_a if size_a == np.int64(offsets_b[b + 1]) - np.int64(offsets_b[b]) else -1
    for k in range(m):
        if size[k] < 0:
            continue
        same = True
        for c in range(_u(size[k])):
            if data_a[start_a[k] + c] != data_b[start_b[k] + c]:
                same = False
                break
        out[k] = same
    return out


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _mix64(x):
    """The splitmix64 finaliser of ``x`` (uint64), as pandas mixes its hashes (:func:`text_hashes`)."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


#: The hexadecimal digits' ASCII codes.
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).copy()


@njit(cache=True, nogil=True, error_model="numpy")
def finding_ids(rank, a_hash, b_hash, kind_hash, prefix, out):
    """Each finding's id, ``<prefix>-<16 hex digits>``, written as ASCII into ``out[r, :19]``.

    The digits are those of ``mix(mix(mix(kind_hash[rank[r]]) ^ lo) ^ hi)`` (``lo``, ``hi``: the smaller and the
    larger of ``a_hash[r]``, ``b_hash[r]``; :func:`_mix64`), most significant first; ``prefix[rank[r]]`` its
    two letters: :func:`gisapp.analysis.overlaps._pair_hash` and ``_id_bytes`` in one pass.
    """
    for r in range(len(rank)):
        k = rank[r]
        lo, hi = min(a_hash[r], b_hash[r]), max(a_hash[r], b_hash[r])
        h = _mix64(_mix64(_mix64(kind_hash[k]) ^ lo) ^ hi)
        out[r, 0] = prefix[k, 0]
        out[r, 1] = prefix[k, 1]
        out[r, 2] = 45  # "-"
        for d in range(16):
            out[r, 3 + d] = _HEX[(h >> np.uint64(60 - 4 * d)) & np.uint64(15)]
