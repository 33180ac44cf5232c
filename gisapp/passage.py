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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

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
    window = shapely.buffer(focus, width + REACH, quad_segs=8)
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


def occupancy_passages(geoms, starts, ends, sidewalks, widths=None) -> tuple[np.ndarray, np.ndarray]:
    """The narrowest passage beside each of many occupancies over its period, and the first day it is that narrow.

    ``geoms``, ``starts``, ``ends``: the occupancies (EPSG:5899; dates as
    int64 days since 1970, inclusive); every one counts as active on its
    days.  ``sidewalks``: the sidewalk polygons; ``widths``: their nominal
    widths (NaN or ``None``: from their outline).  Returns float metres
    (NaN where an occupancy is on no sidewalk or the passage is undefined)
    and int64 days (-1 there).

    Vectorised for the common case — an occupancy on one plain sidewalk with
    no other occupancy near it in space and time — where the passage is
    ``min(d(L, R), max(d(O, L), d(O, R)))`` for the sides ``L``, ``R`` and
    the occupancy ``O`` (the bottleneck of :func:`passage_width` for one
    obstacle); the others go through :func:`narrowest_over_period`.
    """
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
    i, s = shapely.STRtree(sidewalks).query(geoms, predicate="intersects")
    solid = shapely.area(shapely.intersection(geoms[i], sidewalks[s])) > AREA_MIN
    i, s = i[solid], s[solid]
    if not len(i):
        return out, day
    on = np.zeros(n, dtype=np.int64)
    np.add.at(on, i, 1)
    reach = np.zeros(n)
    np.maximum.at(reach, i, own[s] + REACH)
    # other occupancies near in space (within the stretch's reach) and overlapping in time
    a, b = shapely.STRtree(geoms).query(geoms[i], predicate="dwithin", distance=reach[i])
    a = i[a]
    keep = (a != b) & (starts[b] <= ends[a]) & (starts[a] <= ends[b])
    a, b = a[keep], b[keep]
    crowded = np.zeros(n, dtype=bool)
    crowded[a] = True
    parts = shapely.get_num_geometries(sidewalks)
    plain_sw = (parts == 1) & (shapely.get_num_interior_rings(shapely.get_geometry(sidewalks, 0)) == 0)
    fast = (on[i] == 1) & ~crowded[i] & plain_sw[s]
    fi, fs = i[fast], s[fast]
    polygon = shapely.get_geometry(sidewalks[fs], 0)
    width = own[fs]
    window = shapely.buffer(geoms[fi], width + REACH, quad_segs=8)
    along = shapely.intersection(shapely.get_exterior_ring(polygon), window)
    used, back = np.unique(fs, return_inverse=True)
    edges = _end_edges(shapely.get_geometry(sidewalks[used], 0), own[used])[back]
    cut = shapely.buffer(edges, _TOUCH, cap_style="flat")
    along = np.where(shapely.is_empty(edges), along, shapely.difference(along, cut))
    pieces, owner = shapely.get_parts(shapely.line_merge(along), return_index=True)
    long = shapely.length(pieces) > _TOUCH
    pieces, owner = pieces[long], owner[long]
    count = np.bincount(owner, minlength=len(fi))
    two = np.flatnonzero(count == 2)
    first = np.searchsorted(owner, two)
    left, right = pieces[first], pieces[first + 1]
    apart = shapely.distance(left, right)
    ok = apart > _TOUCH
    two, left, right, apart = two[ok], left[ok], right[ok], apart[ok]
    body = shapely.intersection(geoms[fi[two]], polygon[two])
    value = np.minimum(apart, np.maximum(shapely.distance(body, left), shapely.distance(body, right)))
    out[fi[two]] = np.round(np.maximum(value, 0.0), DECIMALS) + 0.0
    day[fi[two]] = starts[fi[two]]
    done = np.zeros(n, dtype=bool)
    done[fi[two]] = True
    # the rest, one by one
    epoch = dt.date(1970, 1, 1)
    todo = np.unique(i[~done[i]])
    if len(todo):
        order = np.argsort(a, kind="stable")
        a, b = a[order], b[order]
        lo, hi = np.searchsorted(a, todo), np.searchsorted(a, todo, side="right")
        by_permit = np.searchsorted(i, todo), np.searchsorted(i, todo, side="right")
        for k, p in enumerate(todo):
            mine = s[by_permit[0][k]:by_permit[1][k]]
            others = [Occupancy(geoms[q], epoch + dt.timedelta(days=int(starts[q])),
                                epoch + dt.timedelta(days=int(ends[q]))) for q in b[lo[k]:hi[k]]]
            focus = Occupancy(geoms[p], epoch + dt.timedelta(days=int(starts[p])),
                              epoch + dt.timedelta(days=int(ends[p])))
            sw = shapely.union_all(sidewalks[mine])
            value, when = narrowest_over_period(sw, focus, others, width=float(np.max(own[mine])))
            if value is not None and when is not None:
                out[p], day[p] = value, (when - epoch).days
    return out, day
