"""The passages measured in each sidewalk's frame (gisapp/strips.py) equal the exact GEOS path's, value and day.

Randomised layouts of rectangles on rotated straight sidewalks (coordinates on a 0.1 m grid, so gates,
ends and reaches coincide often and the fast path's guards are exercised), and the demo data.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import shapely

from gisapp import passage, strips
from gisapp.analysis.overlaps import _column, _days, _geometries
from gisapp.passage import Occupancy, narrowest_over_period, occupancy_passages

X, Y = 548000.0, 1770700.0  # in Cẩm Lệ, EPSG:5899
EPOCH = dt.date(1970, 1, 1)


def _placed(u0, u1, v0, v1, origin, angle):
    """Boxes ``u0..u1`` along and ``v0..v1`` across a frame at ``origin`` turned by ``angle`` (world polygons)."""
    u = np.stack([u0, u1, u1, u0, u0], axis=-1)
    v = np.stack([v0, v0, v1, v1, v0], axis=-1)
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    x = origin[..., 0:1] + u * c - v * s
    y = origin[..., 1:2] + u * s + v * c
    return shapely.polygons(np.stack([x, y], axis=-1))


def layout(seed: int, n_walks: int = 24, per_walk: int = 9):
    """Sidewalks (rotated strips 3-6 m wide, 15-60 m long, a few turned by a right angle or
    touching another at a corner) and rectangles on them of the kinds that matter."""
    rng = np.random.default_rng(seed)
    angle = rng.choice([0.0, 0.3, np.pi / 2, 1.1, -0.7, np.pi], n_walks)
    origin = np.stack([X + 200.0 * np.arange(n_walks), np.full(n_walks, Y)], axis=1)
    width = rng.choice([3.0, 3.5, 4.0, 4.5, 6.0], n_walks)
    length = np.round(rng.uniform(15, 60, n_walks), 1)
    walks = list(_placed(np.zeros(n_walks), length, np.zeros(n_walks), width, origin, angle))
    # a corner: a second strip meeting the first's end across its width (the exact path's case)
    walks.append(_placed(np.array(length[0]), np.array(length[0] + width[0]), np.array(0.0), np.array(30.0),
                         origin[0], np.array(angle[0])))
    occ, start, end = [], [], []
    for k in range(n_walks):
        w, L = width[k], length[k]
        kinds = rng.choice(["lot", "facing", "across", "end", "off", "middle", "kerb", "in_lot", "street"], per_walk,
                           p=[0.15, 0.15, 0.1, 0.1, 0.1, 0.15, 0.1, 0.1, 0.05])
        a0 = np.round(rng.uniform(-1.0, L - 1.0, per_walk), 1)
        a1 = np.round(a0 + rng.uniform(0.5, 8.0, per_walk), 1)
        for j, kind in enumerate(kinds):
            depth = round(float(rng.uniform(0.3, 0.6 * w)), 1)
            v0, v1 = {"lot": (0.0, depth), "facing": (w - depth, w), "across": (0.0, w), "kerb": (w - depth, w),
                      "end": (0.0, depth), "off": (-0.5, depth), "middle": (0.5, min(depth + 0.5, w)),
                      "in_lot": (-2.0, 0.0), "street": (0.0, depth)}[kind]  # in_lot: touches the sidewalk, outside
            u0, u1 = {"end": (-0.5, 2.0) if j % 2 else (L - 2.5, L + 0.3),
                      "street": (L, L + 3.0)}.get(kind, (a0[j], a1[j]))  # street: beyond its end, touching it
            if kind == "off" and j % 2:
                v0, v1 = w - depth, w + 0.8  # beyond the kerb
            occ.append(_placed(np.array(u0), np.array(u1), np.array(v0), np.array(v1), origin[k], np.array(angle[k])))
            s = int(rng.integers(0, 40))
            start.append(s)
            end.append(s + int(rng.integers(0, 25)))
    # one turned a little (not a box in its sidewalk's frame) and one on the corner of the two strips
    occ.append(shapely.affinity.rotate(occ[3], 7, origin="centroid"))
    occ.append(_placed(np.array(length[0] - 1.0), np.array(length[0] + 1.0), np.array(0.0), np.array(1.5),
                       origin[0], np.array(angle[0])))
    start += [5, 5]
    end += [30, 30]
    walks_arr = np.array(walks, dtype=object)
    return (np.array(occ, dtype=object), np.array(start, dtype=np.int64), np.array(end, dtype=np.int64),
            walks_arr, np.r_[width, width[0]])


def _one_by_one(geoms, start, end, walks, widths):
    """The definition itself: :func:`narrowest_over_period` per occupancy, with every other as a neighbour."""
    value, day = np.full(len(geoms), np.nan), np.full(len(geoms), -1, dtype=np.int64)
    for p in range(len(geoms)):
        on = [k for k in range(len(walks))
              if shapely.area(shapely.intersection(walks[k], geoms[p])) > passage.AREA_MIN]
        if not on:
            continue
        date = [EPOCH + dt.timedelta(days=int(d)) for d in (start[p], end[p])]
        focus = Occupancy(geoms[p], *date)
        others = [Occupancy(geoms[q], EPOCH + dt.timedelta(days=int(start[q])), EPOCH + dt.timedelta(days=int(end[q])))
                  for q in range(len(geoms)) if q != p
                  and shapely.dwithin(geoms[q], geoms[p], max(widths[k] for k in on) + passage.REACH)]
        v, when = narrowest_over_period(shapely.union_all([walks[k] for k in on]), focus, others,
                                        width=max(widths[k] for k in on))
        if v is not None and when is not None:
            value[p], day[p] = v, (when - EPOCH).days
    return value, day


def _decided(geoms, start, end, walks, widths):
    """What the fast path alone decides: its values, days and which occupancies."""
    return strips.strip_passages(geoms, start, end, walks, np.asarray(widths, dtype=float), reach=passage.REACH,
                                 end_factor=passage.END_EDGE_FACTOR, min_width=2 * passage.SIMPLIFY_M,
                                 area_min=passage.AREA_MIN, grow=passage.GROWN_M, decimals=passage.DECIMALS)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_fast_path_equals_the_exact_path_on_random_layouts(seed):
    geoms, start, end, walks, widths = layout(seed)
    fast_value, fast_day = occupancy_passages(geoms, start, end, walks, widths)
    exact_value, exact_day = occupancy_passages(geoms, start, end, walks, widths, fast=False)
    np.testing.assert_array_equal(fast_value, exact_value)
    np.testing.assert_array_equal(fast_day, exact_day)
    value, day, done = _decided(geoms, start, end, walks, widths)
    # the fast path decided most of them itself (else this compares the exact path with itself)
    assert done.mean() > 0.7 and np.isfinite(value[done]).sum() > 0.6 * len(geoms)
    np.testing.assert_array_equal(value[done], exact_value[done])
    np.testing.assert_array_equal(day[done], exact_day[done])
    # and a spread of answers: full width, nothing left, the gaps between facing occupancies
    assert (value[done] == 0.0).any() and len(np.unique(value[done & np.isfinite(value)])) > 20


@pytest.mark.parametrize("seed", [11, 12])
def test_the_fast_path_equals_the_definition_one_by_one(seed):
    geoms, start, end, walks, widths = layout(seed, n_walks=8, per_walk=8)
    value, day, done = _decided(geoms, start, end, walks, widths)
    exact_value, exact_day = _one_by_one(geoms, start, end, walks, widths)
    assert done.sum() > 40
    np.testing.assert_array_equal(value[done], exact_value[done])
    np.testing.assert_array_equal(day[done], exact_day[done])


def test_the_cases_left_to_the_exact_path():
    geoms, start, end, walks, widths = layout(1)
    value, day, done = _decided(geoms, start, end, walks, widths)
    assert not done[-2]  # turned by 7°: not a box in its sidewalk's frame
    assert not done[-1]  # on two sidewalks that meet at a corner


def test_the_fast_path_equals_the_exact_path_on_the_demo(demo_frames):
    frames, _ = demo_frames
    side, walks = frames["sidewalk_permits"], frames["sidewalks"]
    geoms, start, end = _geometries(side)[:], _days(_column(side, "start_on")), _days(_column(side, "end_on"))
    ok = (start >= 0) & (end >= start)
    geoms, start, end = geoms[ok], start[ok], end[ok]
    walk, widths = _geometries(walks)[:], walks["width_m"].to_numpy(dtype=float)
    fast_value, fast_day = occupancy_passages(geoms, start, end, walk, widths)
    exact_value, exact_day = occupancy_passages(geoms, start, end, walk, widths, fast=False)
    np.testing.assert_array_equal(fast_value, exact_value)
    np.testing.assert_array_equal(fast_day, exact_day)
    value, _, done = _decided(geoms, start, end, walk, widths)
    assert done.mean() > 0.9 and np.isfinite(value[done]).sum() > 100


def test_occupancies_off_every_sidewalk():
    """No occupancy's box meets a sidewalk (an edit moved the only one away): each is on no sidewalk, as on the
    exact path (the random edit sequences of tests/test_incremental.py met this)."""
    geoms, start, end, walks, widths = layout(1)
    moved = shapely.transform(geoms, lambda xy: xy + [50_000.0, 50_000.0])
    for fast in (True, False):
        value, day = occupancy_passages(moved, start, end, walks, widths, fast=fast)
        assert np.isnan(value).all() and (day == -1).all()
    value, day, done = _decided(moved, start, end, walks, widths)
    assert done.all() and np.isnan(value).all()
