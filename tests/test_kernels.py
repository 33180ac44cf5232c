"""The analysis' compiled loops (gisapp.analysis.kernels) against the numpy and GEOS answers they replace,
on edge cases, alone, split over threads and behind their callers (spatial, convex, keys)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

from gisapp.analysis import convex, kernels, spatial
from gisapp.analysis.keys import siphash
from gisapp.analysis.spatial import WardIndex, bbox_pairs

X0, Y0 = 547_000.0, 1_770_000.0  # EPSG:5899 magnitudes: rounding as in the real data
KEY = "0123456789abcdef"


# -- numpy references (the code the kernels replaced) -----------------------------------------------------------


def numpy_rings(ring: np.ndarray) -> np.ndarray:
    """Closed, finite, within 1e8 and strictly convex, column by column (the numpy ``_convex_rings``)."""
    x, y = [ring[:, c, 0] for c in range(5)], [ring[:, c, 1] for c in range(5)]
    with np.errstate(invalid="ignore"):
        ok = (x[0] == x[4]) & (y[0] == y[4])
        for c in range(4):
            ok &= (np.abs(x[c]) < 1e8) & (np.abs(y[c]) < 1e8)
        ex = [x[c + 1] - x[c] for c in range(4)]
        ey = [y[c + 1] - y[c] for c in range(4)]
        left, right = np.ones(len(ring), dtype=bool), np.ones(len(ring), dtype=bool)
        for c in range(4):
            turn = ex[c] * ey[(c + 1) % 4] - ey[c] * ex[(c + 1) % 4]
            left &= turn > convex.EPSILON
            right &= turn < -convex.EPSILON
    return ok & (left | right)


def numpy_against(p, q, best2, perp):
    """The numpy separating gap of ``q``'s corners against ``p``'s sides (the numpy ``convex._against``)."""
    px, py = [p[:, k, 0] for k in range(4)], [p[:, k, 1] for k in range(4)]
    qx, qy = [q[:, k, 0] for k in range(4)], [q[:, k, 1] for k in range(4)]
    m = len(p)
    turn = np.zeros(m)
    for k in range(4):
        turn += px[k] * py[(k + 1) % 4] - px[(k + 1) % 4] * py[k]
    sign = np.where(turn > 0, 1.0, -1.0)
    gap = np.full(m, -np.inf)
    for k in range(4):
        ax, ay = px[k], py[k]
        ex, ey = px[(k + 1) % 4] - ax, py[(k + 1) % 4] - ay
        len2 = ex * ex + ey * ey
        root = np.sqrt(len2)
        least = np.full(m, np.inf)
        for j in range(4):
            dx, dy = qx[j] - ax, qy[j] - ay
            if best2 is not None:
                np.minimum(best2, dx * dx + dy * dy, out=best2)
            cross = dx * ey - dy * ex
            np.minimum(least, cross * sign, out=least)
            r = (dx * ex + dy * ey) / len2
            np.minimum(perp, np.where((r > 0.0) & (r < 1.0), np.abs(cross / len2) * root, np.inf), out=perp)
        np.maximum(gap, least / root, out=gap)
    return gap


def rectangles(rng, n, spread=60.0):
    """``n`` rotated rectangles near each other (many pairs apart, touching and overlapping), as ``(n, 5, 2)``."""
    cx, cy = X0 + rng.uniform(0, spread, n), Y0 + rng.uniform(0, spread, n)
    w, h, a = rng.uniform(1, 20, n), rng.uniform(1, 20, n), rng.uniform(0, np.pi, n)
    dx = np.stack([-w, w, w, -w, -w], axis=1) / 2
    dy = np.stack([-h, -h, h, h, -h], axis=1) / 2
    x = cx[:, None] + dx * np.cos(a)[:, None] - dy * np.sin(a)[:, None]
    y = cy[:, None] + dx * np.sin(a)[:, None] + dy * np.cos(a)[:, None]
    ring = np.stack([x, y], axis=2)
    ring[:, 4] = ring[:, 0]
    return ring


# -- quads -----------------------------------------------------------------------------------------------------


def spoiled_rings(rng):
    """Rectangles, then the same spoiled in every way the check must catch, both orientations."""
    ring = rectangles(rng, 400)
    ring[1::2] = ring[1::2, ::-1]  # clockwise
    ring[3::17, 4] += 1e-9  # not closed
    ring[5::19, 2] = ring[5::19, 1]  # a doubled corner
    ring[7::23, 0, 0] = np.nan
    ring[7::23, 4, 0] = np.nan
    ring[9::29, 1, 1] = np.inf
    ring[11::31, :, 0] += 2e8  # beyond 1e8
    ring[11::31, :, 1] -= 2e8
    ring[13::37, 2] = (ring[13::37, 1] + ring[13::37, 3]) / 2  # a flat corner: turn ~0
    ring[15::41, [1, 2]] = ring[15::41, [2, 1]]  # a bow-tie
    ring[17::43, 2] = (ring[17::43, 0] + ring[17::43, 2]) / 2  # a dent that stays convex: a triangle-ish quad
    # a corner turning by about EPSILON either way
    mid = (ring[19::47, 1] + ring[19::47, 3]) / 2
    ring[19::47, 2] = mid + 1e-9
    # a corner turning by under EPSILON, by a little more, and back: both ways round
    nearly = []
    for h in (1e-9, 5e-9, 2e-8, -1e-9):
        quad = np.array([(0.0, 0.0), (10.0, 0.0), (20.0, h), (0.0, 10.0), (0.0, 0.0)]) + (X0, Y0)
        nearly += [quad, quad[::-1]]
    return np.concatenate([ring, np.array(nearly)])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_quad_rings_are_the_numpy_check_on_edge_cases():
    ring = spoiled_rings(np.random.default_rng(1))
    want = numpy_rings(ring)
    assert want.sum() > 250 and (~want).sum() > 60
    assert want[-8:].tolist() == [False] * 4 + [True] * 2 + [False] * 2  # turns of 1e-8, 5e-8, 2e-7, -1e-8 m²
    np.testing.assert_array_equal(kernels.quad_rings(ring), want)
    # rows of a wider array (strided), as (k, 10), and through convex.quads' own check
    wide = np.zeros((len(ring), 14))
    wide[:, 3:13] = ring.reshape(-1, 10)
    np.testing.assert_array_equal(convex._convex_rings(wide[:, 3:13]), want)
    # and GEOS agrees that the kept ones are valid polygons
    polys = shapely.polygons(ring[want])
    assert shapely.is_valid(polys).all()


def test_quad_bounds_are_shapely_bounds_and_nan_for_no_quad():
    ring = rectangles(np.random.default_rng(4), 300)
    polys = shapely.polygons(ring)
    mask, xy = convex.quads(np.concatenate([polys, np.array([None, shapely.Point(X0, Y0)], dtype=object)]))
    got = convex.bounds(xy)
    np.testing.assert_array_equal(got[:300], shapely.bounds(polys))
    assert mask[:300].all() and np.isnan(got[300:]).all()


@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary()])
def test_the_wkb_reader_decides_only_the_shapes_it_knows(kind):
    ring = spoiled_rings(np.random.default_rng(2))[:60]
    polys = shapely.polygons(np.nan_to_num(ring, nan=X0, posinf=Y0))
    blobs = list(shapely.to_wkb(polys))
    blobs += list(shapely.to_wkb(shapely.multipolygons(polys[:10, None])))  # single-part multipolygons
    good = len(blobs)
    blobs += [blobs[0][:50], blobs[0] + b"\0", b"\0" + blobs[0][1:]]  # short, long, big-endian mark
    blobs += [blobs[0][:1] + bytes([7]) + blobs[0][2:]]  # the right length, another type
    blobs += [blobs[0][:5] + bytes([2]) + blobs[0][6:]]  # two rings announced
    blobs += [None]
    column = pa.array([b"x", *blobs], type=kind).slice(1)
    decided, mask, xy = convex.wkb_quads(column)
    # (shapely closes an open ring with a sixth point: those are not read here)
    sizes = np.array([len(b) for b in blobs[:good]])
    np.testing.assert_array_equal(decided[:good], (sizes == 93) | (sizes == 102))
    assert decided[:good].sum() > 50 and not decided[good:].any()
    want_mask, want_xy = convex.quads(shapely.from_wkb(np.array(blobs[:good], dtype=object)))
    np.testing.assert_array_equal(mask[:good][decided[:good]], want_mask[decided[:good]])
    np.testing.assert_array_equal(xy[:good][decided[:good]], want_xy[decided[:good]])
    assert want_mask.sum() > 30 and (~want_mask).sum() > 5 and not mask[good:].any() and np.isnan(xy[good:]).all()


def test_distances_and_separation_are_the_numpy_ones_bit_for_bit():
    rng = np.random.default_rng(3)
    p, q = rectangles(rng, 3000)[:, :4], rectangles(rng, 3000)[:, :4]
    q[:100] = p[:100]  # the same quad
    q[100:200] = p[100:200] + [[3.0, 0.0]]  # shifted along: sides collinear, overlapping
    q[200:300] = p[200:300, [2, 3, 0, 1]]  # the same, starting elsewhere
    best2, perp = np.full(len(p), np.inf), np.full(len(p), np.inf)
    gap = np.maximum(numpy_against(p, q, best2, perp), numpy_against(q, p, None, perp))
    near = np.minimum(np.sqrt(best2), perp)
    got_gap, got_near = kernels.quad_distances(p, q)
    np.testing.assert_array_equal(got_gap, gap)
    np.testing.assert_array_equal(got_near, near)
    np.testing.assert_array_equal(convex.separation(p, q)[0], gap)
    np.testing.assert_array_equal(convex.corner_distance(p, q), near)
    dist, sure = convex.distances(p, q)
    assert (gap > convex.EPSILON).sum() > 100 and (gap < -convex.EPSILON).sum() > 100
    np.testing.assert_array_equal(sure, np.abs(gap) > convex.EPSILON)
    np.testing.assert_array_equal(dist[sure], np.where(gap > 0, near, 0.0)[sure])
    # and GEOS: the same distance where numpy is sure
    geos = shapely.distance(shapely.polygons(p[sure]), shapely.polygons(q[sure]))
    assert (np.abs(dist[sure] - geos) < 1e-9).all()


def numpy_near_pairs(i, j, start_p, end_p, start_q, end_q, quad_p, quad_q, xy_p, xy_q, cut, touch, scale):
    """The numpy code :func:`kernels.near_pairs` replaced: period filter, then :func:`convex.distances` of the
    pairs of quads, the touching ones settled by a corner, the doubtful ones left to GEOS; surely far dropped."""
    current = (start_p[i] <= end_q[j]) & (start_q[j] <= end_p[i])
    i, j = i[current], j[current]
    both = np.flatnonzero(quad_p[i] & quad_q[j])
    dist, sure = np.full(len(i), np.nan), np.zeros(len(i), dtype=bool)
    d, s = convex.distances(xy_p[i[both]], xy_q[j[both]])
    touch_rows = np.flatnonzero(~s)
    near = convex.corner_distance(xy_p[i[both[touch_rows]]], xy_q[j[both[touch_rows]]])
    s[touch_rows[near < touch]] = True
    steps = d * scale
    s &= (np.abs(steps - np.floor(steps) - 0.5) > 1e-6) & (np.abs(d - cut) > 1e-9)
    dist[both], sure[both] = d, s
    keep = ~(sure & ~(dist <= cut))
    return i[keep], j[keep], dist[keep], sure[keep]


@pytest.mark.parametrize("split", [False, True])
def test_near_pairs_are_the_numpy_period_filter_and_distances(split):
    rng = np.random.default_rng(4)
    n, cut, scale = 3000, 5.0 + 1e-6, 1000.0
    touch = min(0.5 / scale, cut) - 1e-6
    p, q = rectangles(rng, n, 30)[:, :4], rectangles(rng, n, 30)[:, :4]
    q[:100] = p[:100]  # the same quad: 0
    q[100:200] = p[100:200] + [[3.0, 0.0]]  # collinear sides, overlapping
    box = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [0.0, 2.0]]) + [X0, Y0]
    p[200:400] = box
    gaps = np.r_[np.zeros(20), np.full(20, 5.0), np.full(20, cut), np.full(20, 1.2345), np.full(20, 2e-4),
                 np.full(20, 1e-9), rng.uniform(0, 6, 100)][:200]
    q[200:400] = box + np.column_stack([4.0 + gaps, np.zeros(200)])[:, None, :]  # touching, exactly cut, ½ mm
    quad_p, quad_q = rng.random(n) < 0.95, rng.random(n) < 0.95  # some other shapes: GEOS'
    xy_p, xy_q = np.where(quad_p[:, None, None], p, np.nan), np.where(quad_q[:, None, None], q, np.nan)
    start_p, start_q = rng.integers(0, 40, n), rng.integers(0, 40, n)
    end_p, end_q = start_p + rng.integers(0, 30, n), start_q + rng.integers(0, 30, n)
    start_q[:50] = end_p[:50]  # periods meeting on one day
    start_q[50:60] = end_p[50:60] + 1  # a day apart
    i = np.r_[np.arange(n), rng.integers(0, n, 2000)]
    j = np.r_[np.arange(n), rng.integers(0, n, 2000)]
    want = numpy_near_pairs(i, j, start_p, end_p, start_q, end_q, quad_p, quad_q, xy_p, xy_q, cut, touch, scale)
    args = (i, j, np.column_stack([start_p, end_p]), np.column_stack([start_q, end_q]), quad_p, quad_q, xy_p, xy_q,
            cut, touch, scale)
    if split:  # shares of the pairs, joined in order
        parts = [kernels.near_pairs(*args, lo, hi) for lo, hi in ((0, 1234), (1234, 1234), (1234, len(i)))]
        got = tuple(np.concatenate(col) for col in zip(*parts))
    else:
        got = kernels.near_pairs(*args, 0, len(i))
    for w, g in zip(want[:2] + want[3:], got[:2] + got[3:]):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(got[2][got[3]], want[2][want[3]])
    sure, far = want[3], ~(want[2] <= cut)
    assert sure.sum() > 1000 and (~sure).sum() > 100 and len(want[0]) < 0.5 * len(i)  # (the rest: dropped)
    assert ((want[2] == 0) & sure).sum() > 300 and (sure & (want[2] > 0)).sum() > 300 and not (sure & far).any()
    # where sure, GEOS' distance (to the mm, as the findings round it)
    rows = np.flatnonzero(sure)
    geos = shapely.distance(shapely.polygons(p[got[0][rows]]), shapely.polygons(q[got[1][rows]]))
    np.testing.assert_array_equal(np.round(got[2][rows], 3), np.round(geos, 3))


def test_polygon_wkb_is_shapely_wkb_of_the_polygons():
    rng = np.random.default_rng(6)
    # the intersections of overlapping quads (3 to 8 corners), as the clashes' geometry is made
    p, q = rectangles(rng, 3000, 20)[:, :4], rectangles(rng, 3000, 20)[:, :4]
    xy, count, _, sure = convex.intersections(p, q)
    xy, count = xy[sure & (count > 0)], count[sure & (count > 0)]
    assert set(count.tolist()) >= {3, 4, 5, 6, 7, 8}
    offsets, data, bounds = kernels.polygon_wkb(xy, count)
    polygons = convex.polygons(xy, count)
    want = shapely.to_wkb(polygons, byte_order=1)
    assert [bytes(data[offsets[r]:offsets[r + 1]]) for r in range(len(count))] == list(want)
    np.testing.assert_array_equal(bounds, shapely.bounds(polygons))
    assert shapely.from_wkb(bytes(data[offsets[0]:offsets[1]])).equals_exact(polygons[0], 0.0)
    offsets, data, bounds = kernels.polygon_wkb(np.empty((0, 8, 2)), np.empty(0, dtype=np.int64))
    assert offsets.tolist() == [0] and len(data) == 0 and bounds.shape == (0, 4)


def test_kernels_give_the_same_answers_from_threads():
    rng = np.random.default_rng(7)
    p, q = rectangles(rng, 2000)[:, :4], rectangles(rng, 2000)[:, :4]
    alone = kernels.quad_distances(p, q)
    with ThreadPoolExecutor(4) as pool:  # nogil kernels running at once on shared inputs
        runs = list(pool.map(lambda _: kernels.quad_distances(p, q), range(8)))
    for gap, near in runs:
        np.testing.assert_array_equal(gap, alone[0])
        np.testing.assert_array_equal(near, alone[1])


# -- the grid join ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table_type", [np.int32, np.int64])
@pytest.mark.parametrize("seed", [1, 2])
def test_cell_sort_is_a_stable_sort_by_cell(seed, table_type):
    rng = np.random.default_rng(seed)
    n, size, height = 5000, 10.0, 23
    # few distinct cells (many ties), corners on cell edges, and the grid's lowest corner itself
    x = np.round(rng.uniform(0, 200, n), 0 if seed == 1 else 3)
    y = np.round(rng.uniform(0, 200, n), 0 if seed == 1 else 3)
    x[:50], y[:50] = 0.0, 0.0
    x[50:100] = 10.0 * rng.integers(0, 20, 50)
    order, keys, first = kernels.cell_sort(x, y, 0.0, 0.0, size, height, np.zeros(height * height + 3, table_type))
    key = (np.floor(x / size).astype(np.int64) + 1) * height + np.floor(y / size).astype(np.int64) + 1
    want = np.argsort(key, kind="stable")
    np.testing.assert_array_equal(order, want)
    np.testing.assert_array_equal(keys, key[want])
    assert len(first) == height * height + 1
    np.testing.assert_array_equal(first, np.r_[0, np.cumsum(np.bincount(key, minlength=height * height))])


def test_cell_sort_of_nothing():
    order, keys, first = kernels.cell_sort(np.empty(0), np.empty(0), 0.0, 0.0, 1.0, 3, np.zeros(12, np.int32))
    assert len(order) == len(keys) == 0 and (first == 0).all() and len(first) == 10


def random_boxes(rng, n, size, extent):
    """``n`` random boxes of about ``size`` metres, some touching edge to edge."""
    x, y = rng.uniform(0, extent, n), rng.uniform(0, extent, n)
    w, h = rng.uniform(0, size, n), rng.uniform(0, size, n)
    out = np.column_stack([x, y, x + w, y + h])
    out[-30:, 0] = out[:30, 2]
    out[-30:, 1] = out[:30, 1]
    return out


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("tol, strict, same", [(0.0, False, False), (3.0, False, False), (0.0, True, True),
                                                (0.0, False, True)])
def test_the_grid_scan_shared_by_threads_gives_the_pairs_in_one_threads_order(monkeypatch, workers, tol, strict,
                                                                               same):
    rng = np.random.default_rng(11)
    a = random_boxes(rng, 3000, 10, 400)
    b = a if same else random_boxes(rng, 2000, 6, 400)
    alone = bbox_pairs(a, b, tol, strict=strict, same=same)
    monkeypatch.setattr(spatial, "_SCAN_SPLIT_MIN", 1)
    monkeypatch.setattr(spatial, "_WORKERS", workers)
    shared = bbox_pairs(a, b, tol, strict=strict, same=same)
    np.testing.assert_array_equal(shared[0], alone[0])
    np.testing.assert_array_equal(shared[1], alone[1])
    # and they are the pairs, each once
    bb = b + np.array([-tol, -tol, tol, tol])
    lt = np.less if strict else np.less_equal
    hit = (lt(a[:, None, 0], bb[None, :, 2]) & lt(bb[None, :, 0], a[:, None, 2])
           & lt(a[:, None, 1], bb[None, :, 3]) & lt(bb[None, :, 1], a[:, None, 3]))
    i, j = np.nonzero(hit)
    if same:
        i, j = i[i < j], j[i < j]
    got = list(zip(shared[0].tolist(), shared[1].tolist()))
    assert len(got) == len(set(got)) and set(got) == set(zip(i.tolist(), j.tolist())) and len(got) > 1000


# -- the ward grid look-up -------------------------------------------------------------------------------------


def test_ward_cells_are_the_numpy_look_up():
    rng = np.random.default_rng(5)
    cells, size, ox, oy = 40, 10.0, X0, Y0
    cell_ward = rng.integers(-1, 3, (3, cells * cells))
    cell_ward[1, :800] = 2  # large runs of one ward
    n = 20_000
    x0, y0 = ox + rng.uniform(-20, 420, n), oy + rng.uniform(-20, 420, n)
    ext = rng.choice([0.0, 3.0, 9.99, 10.0, 15.0, 25.0], n)  # within one cell, on an edge, 2 and 3 cells
    bounds = np.column_stack([x0, y0, x0 + ext, y0 + rng.uniform(0, 12, n)])
    bounds[:40] = np.nan
    epoch = rng.integers(0, 3, n)
    idx = np.full(n, -1, dtype=np.int64)
    ok = kernels.ward_cells(bounds, epoch, cell_ward, ox, oy, size, cells, idx)
    # numpy (the replaced code)
    with np.errstate(invalid="ignore"):
        gx0, gy0 = np.floor((bounds[:, 0] - ox) / size), np.floor((bounds[:, 1] - oy) / size)
        gx1, gy1 = np.floor((bounds[:, 2] - ox) / size), np.floor((bounds[:, 3] - oy) / size)
        want = (gx0 >= 0) & (gy0 >= 0) & (gx1 < cells) & (gy1 < cells) & (gx1 - gx0 <= 1) & (gy1 - gy0 <= 1)
    gx0, gy0, gx1, gy1 = (np.where(want, v, 0).astype(np.int64) for v in (gx0, gy0, gx1, gy1))
    corners = [cell_ward[epoch, x * cells + y] for x, y in ((gx0, gy0), (gx1, gy0), (gx0, gy1), (gx1, gy1))]
    want &= (corners[0] >= 0) & (corners[1] == corners[0]) & (corners[2] == corners[0]) & (corners[3] == corners[0])
    np.testing.assert_array_equal(ok, want)
    np.testing.assert_array_equal(idx[want], corners[0][want])
    assert (idx[~want] == -1).all() and want.sum() > 1000 and (~want).sum() > 1000


def test_ward_index_by_grid_is_the_exact_assignment():
    """A grid of wards (two periods) and many parcels: what the grid settles is what GEOS answers."""
    rng = np.random.default_rng(9)
    wards = [shapely.box(X0 + 100 * i, Y0 + 100 * j, X0 + 100 * (i + 1), Y0 + 100 * (j + 1))
             for i in range(5) for j in range(5)]
    wards += [shapely.Point(X0 + 250, Y0 + 250).buffer(120)]  # a later, round ward over the middle
    geoms = np.array(wards, dtype=object)
    start = np.array([0] * 25 + [100])
    end = np.array([99] * 25 + [spatial.NAT])
    index = WardIndex.build(geoms, start, end)
    n = 8000
    ring = rectangles(rng, n, spread=500)
    parcels = shapely.polygons(ring)
    dates = rng.choice([-5, 50, 150], n)
    idx, part = index.assign(parcels, dates, shapely.bounds(parcels))
    exact = WardIndex.build(geoms, start, end)._exactly(parcels, shapely.bounds(parcels), index.epoch_of(dates),
                                                         index.in_force())
    live = index.epoch_of(dates) > 0
    np.testing.assert_array_equal(idx[live], exact[0][live])
    np.testing.assert_array_equal(np.isnan(part[live]), np.isnan(exact[1][live]))
    assert (idx[~live] == -1).all() and (idx[dates == 150] == 25).sum() > 100 and np.isnan(part).sum() > 3000


@pytest.mark.parametrize("kind", ["uniform", "ties", "sorted", "reversed", "heavy tail", "nan", "small", "misled"])
def test_the_grid_cell_size_is_numpys_quantile_to_the_bit(kind):
    """The cell size's quantile from the top values (a sample's guess first) is ``np.quantile``'s, and so is the
    size, whatever the order and spread of the extents."""
    rng = np.random.default_rng(21)
    n = 200_003
    values = {"uniform": rng.uniform(0, 30, n), "ties": rng.integers(0, 5, n).astype(float),
              "sorted": np.sort(rng.uniform(0, 30, n)), "reversed": np.sort(rng.uniform(0, 30, n))[::-1].copy(),
              "heavy tail": rng.pareto(1.5, n), "nan": np.r_[rng.uniform(0, 30, n - 1), np.nan],
              "small": rng.uniform(0, 30, 500),
              # every sampled value is large: the sample's guess is too high and every value is read instead
              "misled": np.where(np.arange(n) % spatial._SAMPLE_STEP == 0, 1e6, rng.uniform(0, 30, n))}[kind]
    top, q = spatial._top_quantile(values, 0.99)
    want = np.quantile(values, 0.99)
    assert q == want or (np.isnan(q) and np.isnan(want))
    with np.errstate(invalid="ignore"):
        regular = float(values[values <= 4 * want].max(initial=0.0))
    assert spatial._cell_size(values, 1000.0, n) == max(regular, 1000.0 / max(np.sqrt(8.0 * n), 256.0), 1e-9)
    if kind in ("uniform", "sorted", "heavy tail"):
        assert len(top) < n // 10  # (the fast way was taken)


def test_ward_candidates_are_every_ward_in_force_whose_box_meets():
    """Boxes of every size (some wider than most, some NaN, some touching a ward's box) against wards in three
    periods: the wards in force whose box meets, by box then ward, as a comparison of every pair gives."""
    rng = np.random.default_rng(3)
    wb = np.array([[0, 0, 100, 100], [100, 0, 200, 100], [50, 50, 150, 150], [0, 0, 300, 300], [500, 500, 600, 600]],
                  dtype=float)
    in_force = rng.random((3, len(wb))) < 0.7
    n = 3000
    x, y = rng.uniform(-50, 350, n), rng.uniform(-50, 350, n)
    w, h = rng.choice([0.0, 1.0, 10.0, 120.0], n), rng.uniform(0, 30, n)
    bounds = np.column_stack([x, y, x + w, y + h])
    bounds[:20] = np.nan
    bounds[20:40] = [200.0, 50.0, 210.0, 60.0]  # touching ward 1's right side
    epoch = rng.integers(0, 3, n)
    k, i = kernels.ward_candidates(bounds, epoch, in_force, wb)
    with np.errstate(invalid="ignore"):
        meets = (bounds[:, None, 0] <= wb[None, :, 2]) & (bounds[:, None, 2] >= wb[None, :, 0]) \
            & (bounds[:, None, 1] <= wb[None, :, 3]) & (bounds[:, None, 3] >= wb[None, :, 1]) & in_force[epoch]
    want_i, want_k = np.nonzero(meets)
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_array_equal(k, want_k)
    assert len(np.unique(i)) > n // 3 and (k[np.isin(i, np.arange(20, 40))] == 1).any() and (np.diff(i) == 0).any()
    empty = kernels.ward_candidates(np.empty((0, 4)), np.empty(0, dtype=np.int64), in_force, wb)
    assert len(empty[0]) == len(empty[1]) == 0


def assigned_both_ways(geoms, start, end, parcels, dates, decimals=4):
    """``(idx, part)`` of ``parcels`` by GEOS alone and with their corners (:meth:`WardIndex.assign`), and the rows
    the compiled cut left to GEOS."""
    parcels = np.asarray(parcels, dtype=object)
    bounds = shapely.bounds(parcels).reshape(-1, 4)
    quad, xy = convex.quads(parcels)
    index = WardIndex.build(geoms, start, end)
    exact = WardIndex.build(geoms, start, end).assign(parcels, dates, bounds)
    got = index.assign(parcels, dates, bounds, corners=lambda rows: (quad[rows], xy[rows]), decimals=decimals)
    epoch = index.epoch_of(dates)
    rows = np.flatnonzero(epoch > 0)
    left = index._by_corners(rows, lambda r: (quad[r], xy[r]), bounds, epoch, index.in_force(), decimals,
                             np.full(len(parcels), -1, dtype=np.int64), np.full(len(parcels), np.nan))
    return exact, got, left


def box_at(x0, y0, x1, y1, clockwise=False):
    """A rectangle relative to (X0, Y0), drawn either way."""
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1, ccw=not clockwise)


def test_ward_quads_are_geos_on_edge_cases():
    """Wards drawn either way, with a hole, a concave notch, two parts; quads inside, outside, across, touching
    a side from within or a corner from without, in a hole, over a notch, split evenly, on a half step of the
    rounding, degenerate: the same wards and parts (rounded) as GEOS, and only the doubtful ones left to it."""
    u = shapely.Polygon([(0, 0), (200, 0), (200, 200), (140, 200), (140, 80), (60, 80), (60, 200), (0, 200)])
    wards = [box_at(0, 0, 100, 100), box_at(100, 0, 200, 100, clockwise=True),
             shapely.Polygon(shapely.get_coordinates(box_at(0, 100, 200, 300)),
                             [shapely.get_coordinates(box_at(50, 150, 150, 250))]),
             shapely.affinity.translate(u, X0 + 200, Y0), shapely.MultiPolygon([box_at(400, 0, 450, 50),
                                                                                 box_at(460, 0, 500, 50)])]
    geoms = np.array(wards, dtype=object)
    assert shapely.is_valid(geoms).all()
    cases = {
        "inside": box_at(10, 10, 30, 40), "outside": box_at(1000, 1000, 1010, 1010),
        "across": box_at(80, 10, 110, 30, clockwise=True),  # 2/3 in ward 0
        "side within": box_at(90, 10, 100, 30),  # on ward 0's side, from within: GEOS' call
        "corner without": box_at(-10, -10, 0, 0),  # touches ward 0 at its corner
        "in the hole": box_at(60, 160, 80, 180), "over the hole": box_at(40, 160, 60, 170),
        "over the notch": box_at(250, 150, 350, 170),  # both arms of the U, not the notch
        "over the parts": box_at(440, 10, 470, 20), "even": box_at(90, 40, 110, 60),
        "half step": box_at(99.5, 50, 99.5 + 0.9, 50 + 2.4691),  # 1.23455 m² in ward 0
        "rotated": shapely.affinity.rotate(box_at(95, 95, 115, 105), 30),
        "degenerate": shapely.Polygon([(X0 + 10, Y0 + 10), (X0 + 20, Y0 + 10), (X0 + 20, Y0 + 10), (X0 + 20, Y0 + 20)]),
    }
    parcels = np.array(list(cases.values()), dtype=object)
    n = len(parcels)
    exact, got, left = assigned_both_ways(geoms, np.zeros(len(geoms), dtype=np.int64),
                                          np.full(len(geoms), spatial.NAT), parcels, np.full(n, 5))
    np.testing.assert_array_equal(got[0], exact[0])
    np.testing.assert_array_equal(np.round(got[1], 4), np.round(exact[1], 4))  # (NaN where the ward holds it all)
    name = list(cases)
    assert sorted(name[k] for k in left) == ["degenerate", "even", "half step", "side within"]
    want = {"inside": (0, np.nan), "outside": (-1, np.nan), "across": (0, 400.0), "corner without": (-1, np.nan),
            "in the hole": (-1, np.nan), "over the hole": (2, 100.0), "over the notch": (3, 2 * 20 * 10.0),
            "over the parts": (4, 2 * 10 * 10.0), "even": (0, 200.0), "side within": (0, np.nan)}
    for key, (ward, part) in want.items():
        k = name.index(key)
        assert got[0][k] == ward and np.isclose(got[1][k], part, equal_nan=True, rtol=0, atol=1e-8), key


def test_ward_quads_are_geos_on_many_quads_over_concave_wards():
    """Voronoi wards cut by notches, one with a hole, one of two parts, in two periods, and 4,000 rotated
    rectangles of every size: the compiled cut settles nearly all of them, with GEOS' answers."""
    rng = np.random.default_rng(17)
    frame = shapely.box(X0, Y0, X0 + 1000, Y0 + 1000)
    seeds = shapely.multipoints(np.column_stack([X0 + rng.uniform(0, 1000, 10), Y0 + rng.uniform(0, 1000, 10)]))
    wards = [shapely.intersection(c, frame) for c in shapely.get_parts(shapely.voronoi_polygons(seeds))]
    for k in range(0, len(wards), 2):  # notches: concave wards
        c = shapely.centroid(wards[k])
        wards[k] = wards[k].difference(shapely.box(c.x - 5, c.y - 400, c.x + 5, c.y))
    wards[1] = wards[1].difference(shapely.centroid(wards[1]).buffer(40))
    wards.append(shapely.MultiPolygon([box_at(100, 100, 300, 300), box_at(320, 100, 500, 300)]))
    geoms = np.array(wards, dtype=object)
    assert shapely.is_valid(geoms).all()
    m = len(geoms)
    start = np.where(np.arange(m) < m - 1, 0, 100)
    end = np.where(np.arange(m) < m - 1, spatial.NAT, 300)
    n = 4000
    ring = rectangles(rng, n, spread=1100) - 50  # some beyond the wards
    centre = ring[:, :4].mean(axis=1, keepdims=True)
    ring[::2] = centre[::2] + (ring[::2] - centre[::2]) * 6  # some large
    parcels = shapely.polygons(ring)
    dates = rng.choice([-5, 50, 150], n)
    exact, got, left = assigned_both_ways(geoms, start, end, parcels, dates)
    np.testing.assert_array_equal(got[0], exact[0])
    np.testing.assert_array_equal(np.round(got[1], 4), np.round(exact[1], 4))
    part = ~np.isnan(exact[1])
    assert np.abs(got[1][part] - exact[1][part]).max() < 1e-8
    assert part.sum() > 500 and np.isnan(exact[1][exact[0] >= 0]).sum() > 1000 and (exact[0] == -1).sum() > 500
    assert len(left) < n // 100


# -- the ids' SipHash -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("large", [False, True])
def test_siphash_is_pandas_hash_on_every_length_and_slice(large):
    rng = np.random.default_rng(5)
    values = ["", "a", "abcdefg", "abcdefgh", "abcdefghi", "Phường Hòa Xuân", "ü" * 40, "\x00", "😀" * 3]
    values += ["x" * k for k in range(40)]  # every tail length, several blocks
    values += ["".join(chr(c) for c in rng.integers(32, 0x2FFF, rng.integers(0, 30))) for _ in range(2000)]
    arr = np.array(values, dtype=object)
    want = pd.util.hash_array(arr, hash_key=KEY, categorize=False)
    texts = pa.array(arr, type=pa.large_string() if large else pa.string())
    np.testing.assert_array_equal(siphash(texts, KEY), want)
    np.testing.assert_array_equal(siphash(texts.slice(100, 50), KEY), want[100:150])
    with_nulls = pa.array(list(values[:20]) + [None, None], type=texts.type)
    got = siphash(with_nulls, KEY)
    np.testing.assert_array_equal(got[:20], want[:20])
    assert (got[20:] == 0).all()
    assert (siphash(pa.array([None, None], type=texts.type), KEY) == 0).all()
    with pytest.raises(ValueError):
        siphash(texts, "short")


def classified_by_geos(index: WardIndex, wb, ox, oy, size, cells, in_force) -> np.ndarray:
    """The ward grid as the numpy code made it: edge cells, then GEOS' ``contains_xy`` of the other cells' centres."""
    out = np.full((len(in_force), cells * cells), -1, dtype=np.int64)
    ward, seg = spatial._segments(index.geoms)
    ward, ex, ey = spatial._edge_cells(ward, seg, ox, oy, size)
    inside = (ex >= 0) & (ex < cells) & (ey >= 0) & (ey < cells)
    edge_key = np.unique(ward[inside] * (cells * cells) + ex[inside] * cells + ey[inside])
    for k in range(len(index) - 1, -1, -1):
        epochs = np.flatnonzero(in_force[:, k])
        if not len(epochs):
            continue
        i0, j0 = np.floor((wb[k, :2] - (ox, oy)) / size).astype(int)
        i1, j1 = np.floor((wb[k, 2:] - (ox, oy)) / size).astype(int)
        gx, gy = np.arange(max(i0, 0), min(i1, cells - 1) + 1), np.arange(max(j0, 0), min(j1, cells - 1) + 1)
        near = (gx[:, None] * cells + gy[None, :]).ravel()
        lo, hi = np.searchsorted(edge_key, [k * cells * cells, (k + 1) * cells * cells])
        inner = near[~np.isin(near, edge_key[lo:hi] - k * cells * cells, assume_unique=True)]
        gx, gy = inner // cells, inner % cells
        inner = inner[shapely.contains_xy(index.geoms[k], ox + (gx + 0.5) * size, oy + (gy + 0.5) * size)]
        for e in epochs:
            out[e, inner] = k
    return out


def test_the_ward_raster_is_geos_point_in_polygon_of_the_cells():
    """Voronoi wards, one with a hole, one of two parts, one overlapping others, vertices on cell rows and
    columns, in three periods: the compiled even-odd fill gives the cells GEOS' ``contains_xy`` gave."""
    rng = np.random.default_rng(13)
    frame = shapely.box(X0, Y0, X0 + 3000, Y0 + 3000)
    seeds = shapely.multipoints(np.column_stack([X0 + rng.uniform(0, 3000, 14), Y0 + rng.uniform(0, 3000, 14)]))
    wards = [shapely.intersection(c, frame) for c in shapely.get_parts(shapely.voronoi_polygons(seeds))]
    wards[0] = wards[0].difference(shapely.Point(wards[0].centroid).buffer(150))  # a hole
    wards[1] = shapely.MultiPolygon([shapely.box(X0 + 100, Y0 + 100, X0 + 400, Y0 + 400),
                                     shapely.box(X0 + 2500, Y0 + 2500, X0 + 2900, Y0 + 2800)])
    wards.append(shapely.box(X0 + 50.0, Y0 + 50.0, X0 + 1550.0, Y0 + 1550.0))  # on cell lines of size 50
    wards.append(shapely.Polygon([(X0 + 500, Y0 + 1000), (X0 + 2000, Y0 + 1000), (X0 + 1250, Y0 + 2900)]))
    geoms = np.array(wards, dtype=object)
    assert shapely.is_valid(geoms).all()
    shapely.prepare(geoms)
    m = len(geoms)
    start = rng.choice([0, 100, 200], m)
    end = np.where(rng.random(m) < 0.5, spatial.NAT, start + 150)
    index = WardIndex.build(geoms, start, end)
    wb = shapely.bounds(geoms)
    ox, oy = wb[:, 0].min(), wb[:, 1].min()
    in_force = index.in_force()
    assert len(in_force) >= 3
    for size in (50.0, 37.0, 100.0, 333.3):
        cells = int(np.ceil(3000 / size)) + 1
        got = index._classify_cells(wb, ox, oy, size, cells, in_force)
        want = classified_by_geos(index, wb, ox, oy, size, cells, in_force)
        np.testing.assert_array_equal(got, want)
        assert (got >= 0).sum() > cells and len(np.unique(got)) > m // 3  # the case is not trivial


def test_kernels_load_and_cache_where_neither_the_package_nor_home_can_be_written(tmp_path):
    """A read-only install run by a user without a writable home: numba has no cache folder of its own and
    would refuse to load the kernels; they load, and their code is kept in the user's private temporary
    folder.  (A private mount namespace makes the package folder and home read-only for the child alone.)"""
    import os
    import shutil
    import subprocess
    import sys

    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare, "-m", "true"], capture_output=True) if unshare and os.getuid() == 0 else None
    if probe is None or probe.returncode != 0:
        message = "needs root and unshare(1) to mount the package folder read-only in a private namespace"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    package = os.path.dirname(os.path.dirname(kernels.__file__))  # gisapp/: the analysis' and the formats' kernels
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    code = ("import numpy as np; from gisapp.analysis import kernels; from gisapp.formats import derive; "
            "print(kernels._grow(np.arange(3), 5)[:3].tolist(), derive.fold_arrow(['Đà Nẵng'] * 3000)[0])")
    script = (f'mount --bind "{package}" "{package}" && mount -o remount,bind,ro "{package}" && '
              f'mount -t tmpfs -o ro tmpfs "{home}" && exec "{sys.executable}" -c "{code}"')
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(home), TMPDIR=str(temp))
    done = subprocess.run([unshare, "-m", "--propagation", "private", "sh", "-c", script], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[0, 1, 2] da nang"
    folder = temp / f"gisapp-numba-{os.getuid()}"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert list(folder.rglob("*.nbi")), "the compiled kernel is kept in the private folder"
