"""The narrowest free passage a pedestrian has on a sidewalk beside an occupancy, from geometry.

Pure shapely: no store, no Flask.  Everything in EPSG:5899 metres.

The free space is the sidewalk minus the union of the occupancies active on
a day.  A pedestrian of width *w* can pass the stretch next to an occupancy
iff the free space eroded by *w*/2 still connects the stretch's ends; the
narrowest passage is the largest such *w*.

How it is computed (exactly, without bisection):

- **The stretch** is the sidewalk within ``margin`` of the focus occupancy
  (the one being judged), where ``margin`` is the sidewalk's width plus
  :data:`REACH` metres, so the stretch runs past the occupancy along the
  sidewalk and never ends inside it across the width.  Sidewalks that touch
  each other (the two legs of a corner) count as one.
- **Its ends** (gates) are where the stretch's edge crosses the sidewalk,
  and, where the sidewalk itself ends inside the stretch (at a cross
  street), the sidewalk's own end edges: edges of its outline no longer
  than :data:`END_EDGE_FACTOR` times its width (after merging collinear
  vertices).
- **Its sides** are the pieces of the sidewalk's outline between the ends
  (two for a plain stretch).  Obstacles are the sides, the holes of the
  sidewalk and the occupancies.
- A pedestrian of width *w* is stopped iff a chain of obstacles, each less
  than *w* from the next, joins two different sides.  So the narrowest
  passage is the bottleneck distance between the sides in the graph of
  obstacles weighted by their distances: Kruskal's algorithm adds the
  closest pairs first, and the distance that first joins two sides is the
  answer.  Distances are shapely's exact distances between the polygons,
  so a 3 m sidewalk with a 1.5 m occupancy gives 1.5 (to float precision),
  and results are rounded to the centimetre.

The narrowest passage over a period is the smallest of the passages on the
days the set of active occupancies changes (:func:`narrowest_over_period`).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from gisapp.strips import strip_passages

#: Metres the stretch reaches past the occupancy, beyond the sidewalk's own width.
REACH = 2.0
#: An outline edge no longer than this many sidewalk widths, inside the stretch, is an end of the sidewalk.
END_EDGE_FACTOR = 1.25
#: Collinear vertices closer than this (metres) to a straight line are merged before looking for end edges.
SIMPLIFY_M = 0.05
#: Distances are reported to the centimetre.
DECIMALS = 2
_TOUCH = 1e-6
#: An occupancy is on a sidewalk when they share more than this area (m²; less is digitising noise).
AREA_MIN = 0.01
#: An occupancy within this (m) of its sidewalk's outline, outside, still lies wholly on it (float noise).
GROWN_M = 1e-3


def sidewalk_width(sidewalk: BaseGeometry) -> float:
    """A sidewalk's typical width, from its outline: twice its area over its perimeter (a long strip's width)."""
    perimeter = shapely.length(shapely.boundary(sidewalk))
    return float(2 * shapely.area(sidewalk) / perimeter) if perimeter > 0 else 0.0


def passage_width(sidewalk: BaseGeometry, focus: BaseGeometry, occupancies: Sequence[BaseGeometry] = (),
                  *, width: float | None = None) -> float | None:
    """The narrowest free passage (metres, to the cm) on ``sidewalk`` along the stretch next to ``focus``.

    ``sidewalk``: the sidewalk polygon(s) the focus lies on (touching
    polygons are merged); ``focus``: the occupancy whose stretch is judged
    (included as an obstacle); ``occupancies``: the other occupancies
    active on the day (any of them; those off the stretch do not count).
    ``width``: the sidewalk's nominal width (default: from its outline).
    ``None`` when ``focus`` is not on the sidewalk or the stretch has no
    two ends to connect (a sidewalk shorter than its own window with no
    recognisable end edges).  When the focus touches several separate
    sidewalks the narrowest of their passages is returned.
    """
    pieces = [p for p in shapely.get_parts(shapely.union_all(shapely.get_parts(sidewalk))) if not p.is_empty]
    answers = []
    for piece in pieces:
        if not shapely.intersects(piece, focus) or shapely.area(shapely.intersection(piece, focus)) <= 0:
            continue
        value = _piece_passage(piece, focus, occupancies, width)
        if value is not None:
            answers.append(value)
    return min(answers) if answers else None


def _piece_passage(sidewalk, focus, occupancies, width) -> float | None:
    width = sidewalk_width(sidewalk) if width is None or not width > 0 else float(width)
    window = _window(focus, width)
    stretch = shapely.intersection(sidewalk, window)
    sides, holes = _sides(sidewalk, window, width)
    if len(sides) < 2:
        return None
    blocked = [g for g in (focus, *occupancies) if g is not None and not g.is_empty]
    near = shapely.intersection(np.array(blocked, dtype=object), stretch)
    near = [g for g in near if not g.is_empty and shapely.area(g) > 0]
    obstacles = [*sides, *holes, *near]
    n_sides = len(sides)
    pairs: list[tuple[float, int, int]] = []
    for i in range(len(obstacles)):
        dist = shapely.distance(obstacles[i], np.array(obstacles[i + 1:], dtype=object))
        pairs.extend((float(d), i, i + 1 + k) for k, d in enumerate(dist))
    pairs.sort()
    parent = list(range(len(obstacles)))
    side_of = [i if i < n_sides else -1 for i in range(len(obstacles))]

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for d, i, j in pairs:
        ri, rj = root(i), root(j)
        if ri == rj:
            continue
        if side_of[ri] >= 0 and side_of[rj] >= 0:
            return round(max(d, 0.0), DECIMALS) + 0.0
        parent[rj] = ri
        if side_of[ri] < 0:
            side_of[ri] = side_of[rj]
    return None  # not reached: two sides always meet


#: Below this many items a vectorised shapely call of the passages is not split over threads.
PARALLEL_MIN = 20_000
#: Threads that split a long shapely call of the passages.
WORKERS = max(2, min(os.cpu_count() or 1, 4))


def split_over_cpus(func, *arrays, workers: int | None = None, minimum: int | None = None):
    """``func(*arrays)`` (element-wise over equal-length arrays) split into one chunk per CPU, run in threads.

    GEOS overlay, buffer and distance release the GIL, so a long call keeps every core busy; the chunks'
    results are joined in order, the same array as one call.  Below ``minimum`` items, or with one
    worker, it is one call.  Never for prepared geometries: GEOS builds their index on first use, and
    not thread-safely.
    """
    workers = min(os.cpu_count() or 1, WORKERS if workers is None else workers)
    if len(arrays[0]) < (PARALLEL_MIN if minimum is None else minimum) or workers < 2:
        return func(*arrays)
    chunks = [np.array_split(np.asarray(a), workers) for a in arrays]
    with ThreadPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(func, *chunks)))


def _grown(sidewalks):
    """``sidewalks`` grown by a millimetre (mitred): what an occupancy lies wholly on, float noise aside."""
    return shapely.buffer(sidewalks, GROWN_M, join_style="mitre")


def _window(focus, width):
    """The stretch's window: ``focus`` grown by ``width`` + :data:`REACH` with mitred corners (vectorised).

    Mitred, not round: it holds every point that near and has few vertices
    (an occupancy drawn as a rectangle along the sidewalk gives a rectangle,
    whose ends cut straight across it).
    """
    return shapely.buffer(focus, np.asarray(width) + REACH, join_style="mitre", mitre_limit=2.0)


def _sides(sidewalk, window, width: float) -> tuple[list, list]:
    """The stretch's sides (pieces of the sidewalk's outline between its ends) and the holes within it."""
    outline = shapely.simplify(shapely.get_exterior_ring(sidewalk), SIMPLIFY_M)
    coords = shapely.get_coordinates(outline)
    seg = np.diff(coords, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    short = np.flatnonzero(lengths <= END_EDGE_FACTOR * width)
    ends = shapely.linestrings(np.stack([coords[short], coords[short + 1]], axis=1)) if len(short) else []
    ends = [e for e in ends if shapely.intersects(e, window)]
    along = shapely.intersection(shapely.get_exterior_ring(sidewalk), window)
    if ends:
        along = shapely.difference(along, shapely.buffer(shapely.union_all(ends), _TOUCH, cap_style="flat"))
    sides = _connected_lines(along)
    holes = [h for h in (shapely.intersection(shapely.get_interior_ring(sidewalk, k), window)
                         for k in range(shapely.get_num_interior_rings(sidewalk))) if not h.is_empty]
    return sides, holes


def _connected_lines(lines) -> list:
    """The connected pieces of a (multi)linestring, each as one geometry."""
    parts = [p for p in shapely.get_parts(shapely.line_merge(lines)) if not p.is_empty and p.length > _TOUCH]
    parent = list(range(len(parts)))
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            if shapely.distance(parts[i], parts[j]) <= _TOUCH:
                a, b = i, j
                while parent[a] != a:
                    a = parent[a]
                while parent[b] != b:
                    b = parent[b]
                parent[b] = a
    groups: dict[int, list] = {}
    for i, p in enumerate(parts):
        r = i
        while parent[r] != r:
            r = parent[r]
        groups.setdefault(r, []).append(p)
    return [shapely.union_all(g) for g in groups.values()]


@dataclass(frozen=True)
class Occupancy:
    """An occupancy of the sidewalk: its polygon and its period (inclusive days)."""

    geometry: BaseGeometry
    start: dt.date
    end: dt.date


def change_days(start: dt.date, end: dt.date, others: Sequence[Occupancy]) -> list[dt.date]:
    """The days within ``start``–``end`` on which the set of active ``others`` changes (``start`` first)."""
    days = {start}
    for o in others:
        for d in (o.start, o.end + dt.timedelta(days=1)):
            if start < d <= end:
                days.add(d)
    return sorted(days)


def narrowest_over_period(sidewalk: BaseGeometry, focus: Occupancy, others: Sequence[Occupancy], *,
                          width: float | None = None) -> tuple[float | None, dt.date | None]:
    """The narrowest passage next to ``focus`` over its period, and the first day it is that narrow.

    Only the days when the set of active ``others`` changes are evaluated;
    ``(None, None)`` when the passage is not defined (see :func:`passage_width`).
    """
    relevant = [o for o in others if o.start <= focus.end and o.end >= focus.start]
    best: tuple[float | None, dt.date | None] = (None, None)
    seen: dict[frozenset, float | None] = {}
    for day in change_days(focus.start, focus.end, relevant):
        active = frozenset(i for i, o in enumerate(relevant) if o.start <= day <= o.end)
        if active not in seen:
            seen[active] = passage_width(sidewalk, focus.geometry, [relevant[i].geometry for i in sorted(active)],
                                         width=width)
        value = seen[active]
        if value is not None and (best[0] is None or value < best[0]):
            best = (value, day)
    return best


def _end_edges(polygons: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Per polygon, its end edges (see the module notes) as one MultiLineString (vectorised)."""
    rings = shapely.simplify(shapely.get_exterior_ring(polygons), SIMPLIFY_M)
    coords, owner = shapely.get_coordinates(rings, return_index=True)
    same = owner[:-1] == owner[1:]
    seg = coords[1:] - coords[:-1]
    short = same & (np.hypot(seg[:, 0], seg[:, 1]) <= END_EDGE_FACTOR * widths[owner[:-1]])
    at = np.flatnonzero(short)
    lines = shapely.linestrings(np.stack([coords[at], coords[at + 1]], axis=1)) if len(at) else np.array([])
    return shapely.multilinestrings(lines, indices=owner[at], out_size=len(polygons)) if len(at) else \
        np.array([shapely.MultiLineString() for _ in polygons], dtype=object)


def _bottleneck(edges: list[tuple[float, int, int]]) -> float:
    """The bottleneck distance between nodes 0 and 1 (the two sides): Kruskal until they are joined."""
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.get(i, i) != i:
            i = parent[i]
        return i

    for d, i, j in sorted(edges):
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[rj] = ri
            if root(0) == root(1):
                return d
    return math.inf


def occupancy_passages(geoms, starts, ends, sidewalks, widths=None, *, fast: bool = True,
                       quads: tuple[np.ndarray, np.ndarray] | None = None, tree=None) -> tuple[np.ndarray, np.ndarray]:
    """The narrowest passage beside each of many occupancies over its period, and the first day it is that narrow.

    ``geoms``, ``starts``, ``ends``: the occupancies (EPSG:5899; dates as
    int64 days since 1970, inclusive); every one counts as active on its
    days.  ``sidewalks``: the sidewalk polygons; ``widths``: their nominal
    widths (NaN or ``None``: from their outline).  Returns float metres
    (NaN where an occupancy is on no sidewalk or the passage is undefined)
    and int64 days (-1 there).

    The same answers as :func:`narrowest_over_period`, in three tiers:

    1. (``fast``, the default) a rectangle on one straight rectangular
       sidewalk, among rectangles along it: in the sidewalk's own frame,
       with numpy, no GEOS (:func:`gisapp.strips.strip_passages`; every
       quantity within a micrometre of one of the definition's thresholds,
       and every other shape, is left to the tiers below).  On the 1M
       full-field city it decides 99.8 % of the sidewalk permits;
    2. an occupancy on one sidewalk without holes whose stretch has two
       sides ``L``, ``R``: every distance (sides, the occupancy ``O``, the
       neighbours active with it, clipped to the stretch) is computed by
       one shapely call over all of them; alone, the passage is
       ``min(d(L, R), max(d(O, L), d(O, R)))``, and with neighbours a small
       Kruskal per day the set of neighbours changes;
    3. other cases (several sidewalks, holes, odd outlines) go through
       :func:`narrowest_over_period`.

    ``fast=False`` skips the first tier (the tests compare the two).  ``quads``: the convex quadrilaterals
    among ``geoms`` and their corners (:func:`gisapp.analysis.convex.quads`), if the caller has them (the
    first tier then asks GEOS only for the other rows' corners).  ``tree``: what ``shapely.STRtree(geoms)``
    answers (its ``query`` without a predicate or with ``dwithin``), if the caller has it; ``geoms`` may then be
    anything indexed like an object array (:class:`gisapp.analysis.geoms.Geometries`: only the geometries GEOS
    must see are made).
    """
    if tree is None:
        geoms = np.asarray(geoms, dtype=object)
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    sidewalks = np.asarray(sidewalks, dtype=object)
    n = len(geoms)
    out, day = np.full(n, np.nan), np.full(n, -1, dtype=np.int64)
    if n == 0 or len(sidewalks) == 0:
        return out, day
    own = np.full(len(sidewalks), np.nan) if widths is None else np.asarray(widths, dtype=float).copy()
    missing = ~(own > 0)
    if missing.any():
        own[missing] = [sidewalk_width(s) for s in sidewalks[missing]]
    todo = np.arange(n)
    tree = shapely.STRtree(geoms) if tree is None else tree
    if fast:
        out, day, decided = strip_passages(geoms, starts, ends, sidewalks, own, reach=REACH,
                                           end_factor=END_EDGE_FACTOR, min_width=2 * SIMPLIFY_M, area_min=AREA_MIN,
                                           grow=GROWN_M, decimals=DECIMALS,
                                           workers=min(os.cpu_count() or 1, WORKERS), tree=tree, quads=quads)
        todo = np.flatnonzero(~decided)
        if not len(todo):
            return out, day
    # (a tree of the few left, asked by every sidewalk: cheaper than a tree of every sidewalk)
    s, i = shapely.STRtree(geoms[todo]).query(sidewalks, predicate="intersects")
    order = np.lexsort((s, i))
    i, s = todo[i[order]], s[order]
    # most lie wholly on their sidewalk (to a millimetre: an edge on the property line is off it by float
    # noise), and need no overlay
    used_walks = np.unique(s)
    grown = np.empty(len(sidewalks), dtype=object)
    grown[used_walks] = split_over_cpus(_grown, sidewalks[used_walks])
    shapely.prepare(grown[used_walks])
    inside = shapely.contains(grown[s], geoms[i])
    edge = np.flatnonzero(~inside)
    solid = shapely.area(geoms[i]) > AREA_MIN
    solid[edge] = shapely.area(split_over_cpus(shapely.intersection, geoms[i[edge]], sidewalks[s[edge]])) > AREA_MIN
    i, s, inside = i[solid], s[solid], inside[solid]
    if not len(i):
        return out, day
    on = np.zeros(n, dtype=np.int64)
    np.add.at(on, i, 1)
    reach = np.zeros(n)
    np.maximum.at(reach, i, own[s] + REACH)
    # other occupancies near in space (within the stretch's reach) and overlapping in time
    a, b = tree.query(geoms[i], predicate="dwithin", distance=reach[i])
    a = i[a]
    keep = (a != b) & (starts[b] <= ends[a]) & (starts[a] <= ends[b])
    a, b = a[keep], b[keep]
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    plain_sw = np.zeros(len(sidewalks), dtype=bool)
    plain_sw[used_walks] = ((shapely.get_num_geometries(sidewalks[used_walks]) == 1)
                            & (shapely.get_num_interior_rings(shapely.get_geometry(sidewalks[used_walks], 0)) == 0))
    plain = (on[i] == 1) & plain_sw[s]
    fi, fs, f_inside = i[plain], s[plain], inside[plain]
    polygon = shapely.get_geometry(sidewalks[fs], 0)
    width = own[fs]
    window = split_over_cpus(_window, geoms[fi], width)
    # each sidewalk's outline without its end edges, once per sidewalk, then cut by each window
    used, back = np.unique(fs, return_inverse=True)
    outline = shapely.get_exterior_ring(shapely.get_geometry(sidewalks[used], 0))
    edges = _end_edges(shapely.get_geometry(sidewalks[used], 0), own[used])
    has = np.flatnonzero(~shapely.is_empty(edges))
    outline[has] = shapely.difference(outline[has], shapely.buffer(edges[has], _TOUCH, cap_style="flat"))
    along = split_over_cpus(shapely.intersection, outline[back], window)
    pieces, owner = shapely.get_parts(split_over_cpus(shapely.line_merge, along), return_index=True)
    long = shapely.length(pieces) > _TOUCH
    pieces, owner = pieces[long], owner[long]
    count = np.bincount(owner, minlength=len(fi))
    two = np.flatnonzero(count == 2)
    first = np.searchsorted(owner, two)
    left, right = pieces[first], pieces[first + 1]
    apart = split_over_cpus(shapely.distance, left, right)
    ok = apart > _TOUCH
    two, left, right, apart = two[ok], left[ok], right[ok], apart[ok]
    done_rows = fi[two]  # the occupancies measured here, one per row of the arrays below
    poly = polygon[two]
    body = geoms[done_rows].copy()
    cut_body = np.flatnonzero(~f_inside[two])
    body[cut_body] = split_over_cpus(shapely.intersection, body[cut_body], poly[cut_body])
    to_left, to_right = split_over_cpus(shapely.distance, body, left), split_over_cpus(shapely.distance, body, right)
    alone = np.minimum(apart, np.maximum(to_left, to_right))
    out[done_rows] = np.round(np.maximum(alone, 0.0), DECIMALS) + 0.0
    day[done_rows] = starts[done_rows]
    # their neighbours, clipped to the stretch, and every distance among the obstacles of each row
    row_of = np.full(n, -1, dtype=np.int64)
    row_of[done_rows] = np.arange(len(done_rows))
    near = row_of[a] >= 0
    na, nb = row_of[a[near]], b[near]
    if len(na):
        stretch = split_over_cpus(shapely.intersection, poly[na], window[two][na])
        clipped = split_over_cpus(shapely.intersection, geoms[nb], stretch)
        solid = shapely.area(clipped) > 0
        na, nb, clipped = na[solid], nb[solid], clipped[solid]
        c_left = split_over_cpus(shapely.distance, clipped, left[na])
        c_right = split_over_cpus(shapely.distance, clipped, right[na])
        c_body = split_over_cpus(shapely.distance, clipped, body[na])
        # (no rows left when no neighbour reaches into the stretch with some area: then no group at all)
        bounds = np.flatnonzero(np.r_[True, na[1:] != na[:-1], True]) if len(na) else np.zeros(1, dtype=np.int64)
        pair_j: list[np.ndarray] = []
        pair_k: list[np.ndarray] = []
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            if hi - lo > 1:
                jj, kk = np.triu_indices(hi - lo, 1)
                pair_j.append(jj + lo)
                pair_k.append(kk + lo)
        pj = np.concatenate(pair_j) if pair_j else np.empty(0, dtype=np.int64)
        pk = np.concatenate(pair_k) if pair_k else np.empty(0, dtype=np.int64)
        between = split_over_cpus(shapely.distance, clipped[pj], clipped[pk])
        among: dict[int, list[tuple[float, int, int]]] = {}
        for j, k, d in zip(pj.tolist(), pk.tolist(), between.tolist(), strict=True):
            among.setdefault(j, []).append((d, j, k))
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            r = int(na[lo])
            p = int(done_rows[r])
            # nodes: 0 = L, 1 = R, 2 = the occupancy, 3 + m = its m-th neighbour (m = index - lo)
            base = [(float(apart[r]), 0, 1), (float(to_left[r]), 2, 0), (float(to_right[r]), 2, 1)]
            ns = nb[lo:hi]
            n_start = np.maximum(starts[ns], starts[p])
            n_end = np.minimum(ends[ns], ends[p])
            change = sorted({int(starts[p]), *n_start[n_start > starts[p]].tolist(),
                             *(n_end[n_end < ends[p]] + 1).tolist()})
            best, best_day = math.inf, -1
            seen: dict[tuple, float] = {}
            for when in change:
                active = tuple(np.flatnonzero((n_start <= when) & (when <= n_end)).tolist())
                if active not in seen:
                    edges_now = list(base)
                    for m in active:
                        g = lo + m
                        edges_now += [(float(c_left[g]), 3 + m, 0), (float(c_right[g]), 3 + m, 1),
                                      (float(c_body[g]), 3 + m, 2)]
                        edges_now += [(d, 3 + (j - lo), 3 + (k - lo)) for d, j, k in among.get(g, ())
                                      if (k - lo) in active]
                    seen[active] = round(max(_bottleneck(edges_now), 0.0), DECIMALS) + 0.0
                if seen[active] < best:
                    best, best_day = seen[active], when
            out[p], day[p] = best, best_day
    done = np.zeros(n, dtype=bool)
    done[done_rows] = True
    # the rest, one by one
    epoch = dt.date(1970, 1, 1)
    rest = np.unique(i[~done[i]])
    if len(rest):
        lo_n, hi_n = np.searchsorted(a, rest), np.searchsorted(a, rest, side="right")
        by_permit = np.searchsorted(i, rest), np.searchsorted(i, rest, side="right")
        for k, p in enumerate(rest):
            mine = s[by_permit[0][k]:by_permit[1][k]]
            others = [Occupancy(geoms[q], epoch + dt.timedelta(days=int(starts[q])),
                                epoch + dt.timedelta(days=int(ends[q]))) for q in b[lo_n[k]:hi_n[k]]]
            focus = Occupancy(geoms[p], epoch + dt.timedelta(days=int(starts[p])),
                              epoch + dt.timedelta(days=int(ends[p])))
            sw = shapely.union_all(sidewalks[mine])
            value, when = narrowest_over_period(sw, focus, others, width=float(np.max(own[mine])))
            if value is not None and when is not None:
                out[p], day[p] = value, (when - epoch).days
    return out, day
