"""The free passage beside occupancies on straight sidewalks, in each sidewalk's own frame: numpy, no GEOS.

The common case of :func:`gisapp.passage.occupancy_passages`: a sidewalk
that is one rectangle (four corners, no holes) whose two short edges are
its end edges and whose two long edges are not (see
:data:`gisapp.passage.END_EDGE_FACTOR`), and occupancies that are
rectangles with their edges along and across it.  In the sidewalk's frame
(``u`` along its long edges, ``v`` across, the sidewalk
``[su0, su1] × [sv0, sv1]``) every shape of the exact definition
(:mod:`gisapp.passage`) is an axis-parallel box:

- the window, the focus ``P`` grown by ``r`` = width + REACH with mitred
  corners (a right angle's mitre is √2 < the limit 2), is ``P`` widened
  by ``r`` on every side; the stretch is sidewalk ∩ window, a box ``T``;
- the sides are the long edges within the window, two segments
  ``v = sv0`` and ``v = sv1`` over ``T``'s ``u`` range (when the window
  reaches past both long edges; the exact path trims them a micrometre at
  the sidewalk's ends, which moves no distance by more than that);
- the obstacles are the focus and the neighbours within ``r`` of it on
  the same days, each clipped to ``T`` (kept when that has area);
- distances between boxes are ``hypot(gap_u, gap_v)``, exactly what GEOS
  computes between those polygons (to float noise).

So the passage is the same bottleneck distance (minimax path from one side
to the other over the obstacles' distances), here found for every
occupancy and every day its set of active neighbours changes at once:
alone, ``min(width, wider gap beside it)``; with one neighbour, the best of
the five paths; with more, by relaxing the minimax distances from one side
until nothing changes.  The smallest rounded value over those days and the
first day it occurs are the exact path's answer (a passage within
:data:`ROUND_GUARD` of half a centimetre is left to it: rounding could go
either way there).

Every threshold the exact path applies (on a sidewalk: area > 0.01 m²,
contained in the sidewalk grown by a millimetre; a neighbour within
``r``; a clipped neighbour with area; an end edge no longer than 1.25 ×
the width; the rounding to the centimetre) is decided here only when the
quantity is more than :data:`GUARD` from it; otherwise, and for every shape
that is not such a box (to :data:`TOL`), the occupancy is left to the exact
path (``done`` is False), as is every occupancy on a sidewalk that any
such shape touches.  The one exception is a neighbour that only touches a
long edge of the sidewalk from outside: GEOS may keep a sliver of it, but
a sliver along a side changes no passage by more than its thickness.
"""

from __future__ import annotations

import builtins
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import shapely

#: Corners within this (m) of an axis-parallel box in a sidewalk's frame are that box.
TOL = 1e-8
#: A quantity this close (m, m²) to a threshold of the exact definition is left to the exact path.
GUARD = 1e-6
#: A passage this close (m) to half a centimetre is left to the exact path (rounding could go either way).
ROUND_GUARD = 1e-5
#: Occupancy-sidewalk pairs per block of work (small enough to stay in the caches, reuse memory).
BLOCK_PAIRS = 200_000
#: Upper bound on the float cells of one block of the day-by-day minimax (memory).
BLOCK_CELLS = 4_000_000


def quad_corners(geoms: np.ndarray, known: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Which of ``geoms`` are one polygon of one ring of four corners, and those corners (k × 4 × 2).

    ``known``: :func:`gisapp.analysis.convex.quads` of ``geoms`` (mask, corners), if the caller has it: its
    rows are such polygons with those corners, so only the other rows are asked of GEOS.
    """
    if known is None:
        return _quad_corners(geoms)
    mask, xy = known
    other = np.flatnonzero(~mask)
    more, corners = _quad_corners(geoms[other])
    if not len(more):  # the usual case: every such polygon is one of the quads
        return np.flatnonzero(mask), xy[mask]
    rows = np.concatenate([np.flatnonzero(mask), other[more]])
    corners = np.concatenate([xy[mask], corners])
    order = np.argsort(rows, kind="stable")
    return rows[order], corners[order]


def _quad_corners(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`quad_corners` asking GEOS for every geometry."""
    kind = shapely.get_type_id(geoms)
    ok = ((kind == 3) | (kind == 6)) & (shapely.get_num_coordinates(geoms) == 5)
    rows = np.flatnonzero(ok)
    # five coordinates in a (multi)polygon can only be one closed ring of four corners
    corners = shapely.get_coordinates(geoms[rows]).reshape(-1, 5, 2)[:, :4] if len(rows) else np.zeros((0, 4, 2))
    return rows, corners


def _local(corners: np.ndarray, origin: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``corners`` (k × 4 × 2) in the frames ``origin``, ``u`` (k × 2): along and across coordinates."""
    d = corners - origin[:, None, :]
    return d[..., 0] * u[:, None, 0] + d[..., 1] * u[:, None, 1], d[..., 1] * u[:, None, 0] - d[..., 0] * u[:, None, 1]


def _aligned_box(lu: np.ndarray, lv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether four corners (k × 4 along, across) form a box with edges along the axes, and that box (k × 4)."""
    du = np.abs(np.roll(lu, -1, axis=1) - lu)
    dv = np.abs(np.roll(lv, -1, axis=1) - lv)
    a = (dv[:, 0] <= TOL) & (du[:, 1] <= TOL) & (dv[:, 2] <= TOL) & (du[:, 3] <= TOL)
    b = (du[:, 0] <= TOL) & (dv[:, 1] <= TOL) & (du[:, 2] <= TOL) & (dv[:, 3] <= TOL)
    box = np.stack([np.minimum(np.minimum(lu[:, 0], lu[:, 1]), np.minimum(lu[:, 2], lu[:, 3])),
                    np.maximum(np.maximum(lu[:, 0], lu[:, 1]), np.maximum(lu[:, 2], lu[:, 3])),
                    np.minimum(np.minimum(lv[:, 0], lv[:, 1]), np.minimum(lv[:, 2], lv[:, 3])),
                    np.maximum(np.maximum(lv[:, 0], lv[:, 1]), np.maximum(lv[:, 2], lv[:, 3]))], axis=1)
    return a | b, box


def strip_frames(sidewalks: np.ndarray, widths: np.ndarray, end_factor: float,
                 min_width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sidewalks that are straight strips, and their frames: origin (k × 2), unit ``u`` (k × 2), box (k × 4).

    A strip is a rectangle whose two short edges are end edges (no longer
    than ``end_factor`` × its width, by more than :data:`GUARD`), whose long
    edges are not, and whose width across is over ``min_width``.  Returns
    ``(is_strip, origin, u, box)`` over all ``sidewalks`` (zeros where not a strip).
    """
    n = len(sidewalks)
    strip = np.zeros(n, dtype=bool)
    origin, u, box = np.zeros((n, 2)), np.zeros((n, 2)), np.zeros((n, 4))
    rows, c = quad_corners(sidewalks)
    if not len(rows):
        return strip, origin, u, box
    edge = np.roll(c, -1, axis=1) - c
    length = np.hypot(edge[..., 0], edge[..., 1])
    first_long = length[:, 0] >= length[:, 1]
    along = np.where(first_long[:, None], edge[:, 0], edge[:, 1])
    unit = along / np.maximum(np.hypot(along[:, 0], along[:, 1]), 1e-300)[:, None]
    lu, lv = _local(c, c[:, 0], unit)
    rect, b = _aligned_box(lu, lv)
    limit = end_factor * widths[rows]
    short = np.where(first_long[:, None], length[:, [1, 3]], length[:, [0, 2]])
    long = np.where(first_long[:, None], length[:, [0, 2]], length[:, [1, 3]])
    ok = (rect & (short.max(axis=1) < limit - GUARD) & (long.min(axis=1) > limit + GUARD)
          & (b[:, 3] - b[:, 2] > min_width))
    strip[rows] = ok
    origin[rows], u[rows], box[rows] = c[:, 0], unit, b
    return strip, origin, u, box


def _box_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances between axis-parallel boxes ``(u0, u1, v0, v1)`` (last axis; broadcast), 0 where they meet."""
    gu = np.maximum(np.maximum(a[..., 0] - b[..., 1], b[..., 0] - a[..., 1]), 0.0)
    gv = np.maximum(np.maximum(a[..., 2] - b[..., 3], b[..., 2] - a[..., 3]), 0.0)
    return np.hypot(gu, gv)


def _own_frames(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per four corners (k × 4 × 2): whether a rectangle (to :data:`TOL`), its unit axis along the first edge,
    its centre and its half sizes along and across that axis (k × 2 each).

    A rectangle: opposite edges equal and opposite, and the second edge square to the first (its
    component along the first within :data:`TOL`): then every corner is within about TOL of the box.
    """
    x, y = corners[..., 0], corners[..., 1]
    ex, ey = x[:, 1] - x[:, 0], y[:, 1] - y[:, 0]
    fx, fy = x[:, 2] - x[:, 1], y[:, 2] - y[:, 1]
    length = np.maximum(np.hypot(ex, ey), 1e-300)
    ux, uy = ex / length, ey / length
    rect = ((np.abs(x[:, 3] - x[:, 2] + ex) <= TOL) & (np.abs(y[:, 3] - y[:, 2] + ey) <= TOL)
            & (np.abs(x[:, 0] - x[:, 3] + fx) <= TOL) & (np.abs(y[:, 0] - y[:, 3] + fy) <= TOL)
            & (np.abs(fx * ux + fy * uy) <= TOL))
    centre = np.stack([(x[:, 0] + x[:, 2]) / 2, (y[:, 0] + y[:, 2]) / 2], axis=1)
    half = np.stack([length / 2, np.abs(fy * ux - fx * uy) / 2], axis=1)
    return rect, np.stack([ux, uy], axis=1), centre, half


def strip_passages(geoms: np.ndarray, starts: np.ndarray, ends: np.ndarray, sidewalks: np.ndarray,
                   widths: np.ndarray, *, reach: float, end_factor: float, min_width: float, area_min: float,
                   grow: float, decimals: int, workers: int = 1, tree: shapely.STRtree | None = None,
                   quads: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The passage beside each occupancy it can decide (see the module notes), its day, and which it decided.

    ``geoms``, ``starts``, ``ends``: the occupancies (int64 days, inclusive);
    ``sidewalks``, ``widths``: the sidewalk polygons and their widths (all
    > 0).  ``reach``, ``end_factor``, ``min_width``, ``area_min``, ``grow``
    (the millimetre an occupancy may stick out of its sidewalk and still
    lie on it), ``decimals``: the exact definition's constants.
    ``workers``: threads, each taking a share of the pairs, then of the
    sidewalks (numpy releases the interpreter lock in its loops);
    ``tree``: an STRtree of ``geoms``, if the caller has one; ``quads``: :func:`gisapp.analysis.convex.quads`
    of ``geoms``, if the caller has it (:func:`quad_corners`).  Returns (metres, NaN
    where on no sidewalk; day, -1 there; ``done``): where ``done`` is
    False the values are not set and the exact path must answer.
    """
    n = len(geoms)
    out, day = np.full(n, np.nan), np.full(n, -1, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    if n == 0 or not len(sidewalks):
        return out, day, done
    strip, origin, unit, sbox = strip_frames(sidewalks, widths, end_factor, min_width)
    q_rows, q_corners = quad_corners(geoms, quads)
    rect, p_unit, p_centre, p_half = _own_frames(q_corners)
    # one column per occupancy (its axis, centre, half sizes; NaN where not a rectangle) and per sidewalk
    # (origin, axis, box, whether a strip): two gathers per pair instead of eight
    occ = np.full((6, n), np.nan)
    occ[:, q_rows[rect]] = np.concatenate([p_unit, p_centre, p_half], axis=1)[rect].T
    walk = np.ascontiguousarray(np.concatenate([origin, unit, sbox, strip[:, None].astype(float)], axis=1).T)
    # the pairs whose boxes meet (the exact path's candidates and more), sorted by sidewalk; worked on in
    # blocks of sidewalks (small arrays, reused memory; one block per thread at a time)
    s, i = (shapely.STRtree(geoms) if tree is None else tree).query(sidewalks)
    if not len(s):  # no occupancy's box meets a sidewalk's: every one is on no sidewalk
        done[:] = True
        return out, day, done
    blocks = max(1, workers, -(-len(s) // BLOCK_PAIRS))
    cut = np.searchsorted(s, np.linspace(0, len(sidewalks), blocks + 1).round().astype(np.int64))
    spans = [(int(a), int(b)) for a, b in zip(cut[:-1], cut[1:], strict=True) if b > a]
    with ThreadPoolExecutor(max(1, workers)) as threads:
        pool = threads if workers > 1 else builtins  # one worker: in this thread
        pairs = list(pool.map(lambda c: _pairs(i[c[0]:c[1]], s[c[0]:c[1]], occ, walk, area_min, grow), spans))
        slow = np.zeros(n, dtype=bool)
        dirty = np.zeros(len(sidewalks), dtype=bool)
        # pairs GEOS must judge: do they touch at all? (those that do send the occupancy, and the
        # sidewalk's occupancies, to the exact path)
        other = np.concatenate([c[0] + np.flatnonzero(~p[5]) for c, p in zip(spans, pairs, strict=True)])
        if len(other):
            touch = shapely.intersects(geoms[i[other]], sidewalks[s[other]])
            slow[i[other[touch]]] = True
            dirty[s[other[touch]]] = True
        slow[np.concatenate([p[0][p[4]] for p in pairs])] = True
        on = np.bincount(np.concatenate([p[0][p[3]] for p in pairs]), minlength=n)
        slow |= on > 1
        for pi, ps, _, solid, _, _ in pairs:
            slow[pi[solid & dirty[ps]]] = True
        # decided as on no sidewalk: no solid pair, nothing unsure
        done = ~slow & (on == 0)
        # measured here: one solid sidewalk, a strip, nothing unsure
        reach_of = widths + reach
        found = list(pool.map(lambda p: _measure(p[0], p[1], p[2], p[3] & ~slow[p[0]], starts[p[0]], ends[p[0]],
                                                 sbox, reach_of, decimals), pairs))
    for f, value, when in found:
        out[f], day[f] = value, when
        done[f] = True
    return out, day, done


def _pairs(i, s, occ, walk, area_min, grow):
    """Occupancy ``i`` and sidewalk ``s`` pairs (sorted by ``s``) in the sidewalk's frame: those that are
    boxes there and meet the sidewalk (``pi``, ``ps``, their boxes ``pb``, whether on it (``solid``), whether
    that is unsure), and per input pair whether it was a box (the rest: GEOS decides).

    ``occ``: per occupancy (column) its axis, centre and half sizes (NaN: not a rectangle); ``walk``: per
    sidewalk (column) its origin, axis, box and whether it is a strip (:func:`strip_passages`).
    """
    a, w = np.take(occ, i, axis=1), np.take(walk, s, axis=1)
    boxed = (w[8] > 0) & ~np.isnan(a[0])
    spread = a[4] + a[5]
    dot = a[0] * w[2] + a[1] * w[3]
    cross = a[0] * w[3] - a[1] * w[2]
    par = np.abs(cross) * spread <= TOL
    boxed &= par | (np.abs(dot) * spread <= TOL)
    dx, dy = a[2] - w[0], a[3] - w[1]
    cu = dx * w[2] + dy * w[3]
    cv = dy * w[2] - dx * w[3]
    hu = np.where(par, a[4], a[5])
    hv = np.where(par, a[5], a[4])
    pu0, pu1, pv0, pv1 = cu - hu, cu + hu, cv - hv, cv + hv
    ou = np.minimum(pu1, w[5]) - np.maximum(pu0, w[4])
    ov = np.minimum(pv1, w[7]) - np.maximum(pv0, w[6])
    k = np.flatnonzero(boxed & (ou >= -GUARD) & (ov >= -GUARD))
    w, ou, ov = w[:, k], ou[k], ov[k]
    pb = np.stack([pu0[k], pu1[k], pv0[k], pv1[k]], axis=1)
    # on the sidewalk: the exact path's "solid" (contained in the sidewalk grown by a millimetre: its own
    # area, else the overlap's, over area_min)
    m0, m1 = pb[:, 0] - (w[4] - grow), w[5] + grow - pb[:, 1]
    m2, m3 = pb[:, 2] - (w[6] - grow), w[7] + grow - pb[:, 3]
    inside = (m0 >= GUARD) & (m1 >= GUARD) & (m2 >= GUARD) & (m3 >= GUARD)
    unsure = (np.abs(m0) < GUARD) | (np.abs(m1) < GUARD) | (np.abs(m2) < GUARD) | (np.abs(m3) < GUARD)
    area = np.where(inside, (pb[:, 1] - pb[:, 0]) * (pb[:, 3] - pb[:, 2]), np.maximum(ou, 0) * np.maximum(ov, 0))
    unsure |= np.abs(area - area_min) < GUARD
    return i[k], s[k], pb, area > area_min, unsure, boxed


def _measure(pi, ps, pb, fast, p_start, p_end, sbox, reach_of, decimals):
    """The passages of the ``fast`` pairs among ``pi``, ``ps``, ``pb`` (every pair of their sidewalks, sorted
    by sidewalk; ``p_start``, ``p_end``: the days of each pair's occupancy): the occupancies decided, their
    passages and days."""
    f, fs, fp, f0, f1 = pi[fast], ps[fast], pb[fast], p_start[fast], p_end[fast]
    fsb = sbox[fs]
    r = reach_of[fs]
    # the window must reach past both long edges (else the exact path finds fewer than two sides)
    sides_ok = (fp[:, 2] - r < fsb[:, 2] - GUARD) & (fp[:, 3] + r > fsb[:, 3] + GUARD)
    f, fs, fp, fsb, r, f0, f1 = (a[sides_ok] for a in (f, fs, fp, fsb, r, f0, f1))
    # the stretch T, the focus clipped to it
    t = np.stack([np.maximum(fsb[:, 0], fp[:, 0] - r), np.minimum(fsb[:, 1], fp[:, 1] + r),
                  fsb[:, 2], fsb[:, 3]], axis=1)
    body = np.stack([np.maximum(fp[:, 0], t[:, 0]), np.minimum(fp[:, 1], t[:, 1]),
                     np.maximum(fp[:, 2], t[:, 2]), np.minimum(fp[:, 3], t[:, 3])], axis=1)
    # neighbours: every occupancy meeting the same sidewalk, on common days, within r, with area in T
    lo, hi = np.searchsorted(ps, fs), np.searchsorted(ps, fs, side="right")
    count = hi - lo
    row = np.repeat(np.arange(len(f)), count)
    at = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + np.repeat(lo, count)
    b0, b1 = p_start[at], p_end[at]
    keep = (pi[at] != f[row]) & (b0 <= f1[row]) & (f0[row] <= b1)
    at, row = at[keep], row[keep]
    box_b, b0, b1 = pb[at], b0[keep], b1[keep]
    dist = _box_distance(fp[row], box_b)
    rr = r[row]
    tt = t[row]
    clip = np.stack([np.maximum(box_b[:, 0], tt[:, 0]), np.minimum(box_b[:, 1], tt[:, 1]),
                     np.maximum(box_b[:, 2], tt[:, 2]), np.minimum(box_b[:, 3], tt[:, 3])], axis=1)
    cu, cv = clip[:, 1] - clip[:, 0], clip[:, 3] - clip[:, 2]
    unsure = np.abs(dist - rr) < GUARD
    unsure |= (dist < rr) & (np.abs(cu) <= GUARD) & (cv > -GUARD)  # at a gate or the sidewalk's end
    within = (dist < rr) & (cu > GUARD) & (cv > GUARD)
    bad_row = np.zeros(len(f), dtype=bool)
    bad_row[row[unsure]] = True
    row, clip = row[within], clip[within]
    n_start = np.maximum(b0[within], f0[row])
    n_end = np.minimum(b1[within], f1[row])
    m = np.bincount(row, minlength=len(f))
    value, when, tie = _minimax_by_day(f0, f1, t, body, clip, n_start, n_end, m, decimals)
    good = ~bad_row & ~tie
    return f[good], value[good], when[good]


def _minimax_by_day(f0, f1, t, body, clip, n_start, n_end, m, decimals):
    """Per focus row: the smallest rounded passage over the days its neighbours change, the first such day,
    and whether some day's passage lay within :data:`ROUND_GUARD` of a rounding boundary.

    ``f0``, ``f1``: each row's first and last day; ``clip``, ``n_start``, ``n_end``: the neighbours, row
    by row; ``m``: how many each row has.
    """
    k = len(f0)
    value, when, tie = np.full(k, np.nan), np.full(k, -1, dtype=np.int64), np.zeros(k, dtype=bool)
    first = np.cumsum(m) - m
    for size in np.unique(m):
        rows = np.flatnonzero(m == size)
        if size == 0:  # alone: the width, or the wider of the two gaps beside the occupancy
            tr, br = t[rows], body[rows]
            raw = np.maximum(np.minimum(tr[:, 3] - tr[:, 2], np.maximum(br[:, 2] - tr[:, 2], tr[:, 3] - br[:, 3])), 0)
            value[rows], tie[rows] = _rounded(raw, decimals)
            when[rows] = f0[rows]
            continue
        if size == 1:
            value[rows], when[rows], tie[rows] = _one_neighbour(rows, first, f0, t, body, clip, n_start, decimals)
            continue
        nodes = size + 3
        days_n = 1 + 2 * size
        per = max(1, BLOCK_CELLS // (days_n * nodes * nodes))
        for lo in range(0, len(rows), per):
            rr = rows[lo:lo + per]
            value[rr], when[rr], tie[rr] = _block(rr, size, first, f0, f1, t, body, clip, n_start, n_end, decimals)
    return value, when, tie


def _one_neighbour(rows, first, f0, t, body, clip, n_start, decimals):
    """:func:`_minimax_by_day` for rows with one neighbour: the five paths from side to side over the
    occupancy ``O`` and the neighbour ``N`` on the days ``N`` is there, the two over ``O`` alone before.

    (After ``N`` leaves the passage is the one before it came, never narrower than with it: not a candidate.)
    """
    tr, o, c = t[rows], body[rows], clip[first[rows]]
    left = np.stack([tr[:, 0], tr[:, 1], tr[:, 2], tr[:, 2]], axis=1)
    right = np.stack([tr[:, 0], tr[:, 1], tr[:, 3], tr[:, 3]], axis=1)
    width = tr[:, 3] - tr[:, 2]
    lo_, ro = o[:, 2] - tr[:, 2], tr[:, 3] - o[:, 3]  # the occupancy lies across the stretch's length
    ln, rn, on = _box_distance(left, c), _box_distance(right, c), _box_distance(o, c)
    alone = np.minimum(width, np.maximum(lo_, ro))
    with_n = np.minimum.reduce([alone, np.maximum(ln, rn), np.maximum(np.maximum(lo_, on), rn),
                                np.maximum(np.maximum(ln, on), ro)])
    s0, ns = f0[rows], n_start[first[rows]]
    # the days: the first (N there or not), N's first day (if later)
    first_with = ns <= s0
    v0, t0 = _rounded(np.maximum(np.where(first_with, with_n, alone), 0.0), decimals)
    v1, t1 = _rounded(np.maximum(with_n, 0.0), decimals)
    later = ns > s0
    narrower = later & (v1 < v0)
    return np.where(narrower, v1, v0), np.where(narrower, ns, s0), t0 | (later & t1)


def _block(rr, size, first, f0, f1, t, body, clip, n_start, n_end, decimals):
    """:func:`_minimax_by_day` for rows ``rr``, which all have ``size`` neighbours."""
    q = len(rr)
    nodes = size + 3
    boxes = np.empty((q, nodes, 4))
    tr = t[rr]
    boxes[:, 0] = np.stack([tr[:, 0], tr[:, 1], tr[:, 2], tr[:, 2]], axis=1)  # the side v = sv0
    boxes[:, 1] = np.stack([tr[:, 0], tr[:, 1], tr[:, 3], tr[:, 3]], axis=1)  # the side v = sv1
    boxes[:, 2] = body[rr]
    idx = first[rr][:, None] + np.arange(size)[None, :]
    if size:
        boxes[:, 3:] = clip[idx]
    dist = _box_distance(boxes[:, :, None, :], boxes[:, None, :, :])  # q × nodes × nodes
    s0, e0 = f0[rr], f1[rr]
    ns, ne = n_start[idx], n_end[idx]  # q × size
    # the days the set of active neighbours changes (repeats of the first day where none)
    days = np.concatenate([s0[:, None], np.where(ns > s0[:, None], ns, s0[:, None]),
                           np.where(ne < e0[:, None], ne + 1, s0[:, None])], axis=1)
    active = np.ones((q, days.shape[1], nodes), dtype=bool)
    active[:, :, 3:] = (ns[:, None, :] <= days[:, :, None]) & (days[:, :, None] <= ne[:, None, :])
    # minimax distance from the first side to every active node, relaxed until nothing changes
    best = np.where(active, dist[:, None, 0, :], np.inf)
    while True:
        via = np.maximum(best[:, :, :, None], dist[:, None, :, :])  # q × days × k × j
        via = np.where(active[:, :, :, None], via, np.inf).min(axis=2)
        new = np.where(active, np.minimum(best, via), np.inf)
        if np.array_equal(new, best):
            break
        best = new
    rounded, tie = _rounded(np.maximum(best[:, :, 1], 0.0), decimals)
    low = rounded.min(axis=1)
    first_day = np.where(rounded == low[:, None], days, np.iinfo(np.int64).max).min(axis=1)
    return low, first_day, tie.any(axis=1)


def _rounded(raw: np.ndarray, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    """``raw`` rounded to ``decimals``, and where it lay within :data:`ROUND_GUARD` of a rounding boundary."""
    scaled = raw * 10**decimals
    tie = np.abs(scaled - np.floor(scaled) - 0.5) < ROUND_GUARD * 10**decimals
    return np.round(raw, decimals) + 0.0, tie
