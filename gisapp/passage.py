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
