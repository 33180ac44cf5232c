"""Numpy geometry of convex quads (gisapp.analysis.convex) against GEOS, alone and inside the analysis."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely
import shapely.affinity

from gisapp import strips
from gisapp.analysis import convex
from gisapp.analysis import geoms as geoms_module
from gisapp.analysis import overlaps as ov
from gisapp.analysis.geoms import BoxTree, Geometries
from gisapp.analysis.overlaps import AnalysisParams, find_overlaps
from gisapp.analysis.run import LAYERS, analyze_store, read_layer
from tests.stores import BACKENDS, new_store

X0, Y0 = 547_000.0, 1_770_000.0  # EPSG:5899 magnitudes: rounding as in the real data


def rect(rng, x, y, w, h, turn=None):
    """A rectangle w × h with its lower-left corner near (x, y) (offsets from X0, Y0), turned ``turn`` degrees."""
    g = shapely.box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + h)
    return g if turn is None else shapely.affinity.rotate(g, turn)


def test_quads_are_the_strictly_convex_single_rings():
    ccw = shapely.box(X0, Y0, X0 + 4, Y0 + 2)
    cw = shapely.Polygon(list(ccw.exterior.coords)[::-1])
    kite = shapely.Polygon([(X0, Y0), (X0 + 3, Y0 + 1), (X0 + 4, Y0 + 4), (X0 + 1, Y0 + 3)])
    cases = [
        (ccw, True), (cw, True), (shapely.MultiPolygon([ccw]), True), (kite, True),
        (shapely.Polygon([(X0, Y0), (X0 + 4, Y0 + 4), (X0 + 4, Y0), (X0, Y0 + 4)]), False),  # bow tie: invalid
        (shapely.Polygon([(X0, Y0), (X0 + 2, Y0), (X0 + 4, Y0), (X0 + 2, Y0 + 3)]), False),  # flat corner
        (shapely.Polygon([(X0, Y0), (X0 + 4, Y0), (X0 + 1, Y0 + 1), (X0, Y0 + 4)]), False),  # concave
        (shapely.Polygon([(X0, Y0), (X0 + 4, Y0), (X0 + 4, Y0), (X0, Y0 + 4)]), False),  # doubled corner
        (shapely.Polygon([(X0, Y0), (X0 + 4, Y0), (X0, Y0 + 4)]), False),  # triangle
        (shapely.MultiPolygon([ccw, shapely.box(X0 + 9, Y0, X0 + 10, Y0 + 1)]), False),
        (shapely.box(X0, Y0, X0 + 9, Y0 + 9).difference(shapely.box(X0 + 1, Y0 + 1, X0 + 2, Y0 + 2)), False),
        (shapely.Polygon(), False), (None, False), (shapely.Point(X0, Y0), False),
        (shapely.Polygon([(X0, Y0), (X0 + 1e-9, Y0), (X0 + 1e-9, Y0 + 5), (X0, Y0 + 5)]), False),  # too thin
    ]
    geoms = np.array([g for g, _ in cases], dtype=object)
    mask, xy = convex.quads(geoms)
    assert mask.tolist() == [want for _, want in cases]
    assert (shapely.is_valid(geoms[mask])).all()
    assert (xy[mask] == shapely.get_coordinates(geoms[mask]).reshape(-1, 5, 2)[:, :4]).all()
    assert np.isnan(xy[~mask]).all()
    assert (convex.bounds(xy[mask]) == shapely.bounds(geoms[mask])).all()
    # the passage's strips take the quads' corners instead of asking GEOS again: the same rows and corners
    rows, corners = strips.quad_corners(geoms)
    known_rows, known_corners = strips.quad_corners(geoms, (mask, xy))
    assert rows.tolist() == known_rows.tolist() and len(rows) > mask.sum()  # bow tie, flat, concave, doubled too
    assert (corners == known_corners).all()


def quad_pairs(rng, n):
    """Pairs of quads: apart, overlapping, one inside the other, edges touching, corners touching, exactly at
    set distances along an axis, at half-millimetre distances (rounding ties), and either orientation."""
    a, b = [], []
    for k in range(n):
        x, y = rng.uniform(0, 50, 2)
        w, h = rng.uniform(1, 20, 2)
        kind = k % 8
        p = rect(rng, x, y, w, h, None if kind in (2, 3, 4, 5) else rng.uniform(0, 180))
        if kind in (0, 1):  # anywhere near, turned
            q = rect(rng, *rng.uniform(0, 60, 2), *rng.uniform(1, 15, 2), rng.uniform(0, 180))
        elif kind == 2:  # sharing an edge, or part of one
            q = rect(rng, x + w, y + rng.uniform(-h, h), rng.uniform(1, 5), h)
        elif kind == 3:  # exactly a round distance apart along x
            q = rect(rng, x + w + rng.choice([0.0, 1.0, 2.5, 5.0, 3.0]), y + rng.uniform(-3, 3), 2.0, 3.0)
        elif kind == 4:  # half a millimetre steps: rounding ties
            q = rect(rng, x + w + rng.integers(0, 5000) / 1000 + 0.0005, y, 2.0, 3.0)
        elif kind == 5:  # corner to corner
            q = rect(rng, x + w, y + h, 2.0, 3.0)
        elif kind == 6:  # inside
            q = rect(rng, x + w / 4, y + h / 4, w / 4, h / 4)
        else:  # crossing like a plus sign, no corner inside the other
            c = p.centroid
            q = shapely.affinity.rotate(shapely.affinity.scale(p, 0.2, 3.0, origin=c), 0.0)
        if rng.random() < 0.5:
            q = shapely.Polygon(list(q.exterior.coords)[::-1])
        a.append(p)
        b.append(q)
    return np.array(a, dtype=object), np.array(b, dtype=object)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_distances_and_separation_are_the_geos_ones_where_sure(seed):
    rng = np.random.default_rng(seed)
    p, q = quad_pairs(rng, 4000)
    pm, pxy = convex.quads(p)
    qm, qxy = convex.quads(q)
    keep = pm & qm
    assert keep.mean() > 0.95
    p, q, pxy, qxy = p[keep], q[keep], pxy[keep], qxy[keep]
    dist, sure = convex.distances(pxy, qxy)
    geos = shapely.distance(p, q)
    assert sure.mean() > 0.6
    assert (dist[sure] == geos[sure]).all()  # bit for bit
    gap = convex.separation(pxy, qxy)[0]
    decided = np.abs(gap) > convex.EPSILON
    assert ((gap < 0)[decided] == shapely.intersects(p, q)[decided]).all()
    assert (~decided).sum() > 100  # the touching pairs are left to GEOS
    # split over threads: the same
    d2, s2 = convex.split_pairs(convex.distances, np.repeat(pxy, 20, axis=0), np.repeat(qxy, 20, axis=0))
    assert (d2 == np.repeat(dist, 20)).all() and (s2 == np.repeat(sure, 20)).all()


def assert_geos_intersections(p, q, least_sure: float):
    """:func:`convex.intersections` of the quads ``p``, ``q`` (shapely) against GEOS: where sure, the same
    polygon to the bit (after ``normalize``), clockwise as GEOS gives it, and the area within 1e-9 m²."""
    pm, pxy = convex.quads(p)
    qm, qxy = convex.quads(q)
    assert pm.all() and qm.all()
    xy, count, area, sure = convex.intersections(pxy, qxy)
    geos = shapely.intersection(p, q)
    assert sure.mean() >= least_sure
    mine = convex.polygons(xy[sure], count[sure])
    assert (shapely.to_wkb(shapely.normalize(mine)) == shapely.to_wkb(shapely.normalize(geos[sure]))).all()
    assert not shapely.is_ccw(shapely.get_exterior_ring(mine)).any()
    np.testing.assert_allclose(area[sure], shapely.area(geos[sure]), rtol=0, atol=1e-9)
    # split over threads: the same
    parts = convex.split_pairs(convex.intersections, np.repeat(pxy, 20, axis=0), np.repeat(qxy, 20, axis=0))
    for got, want in zip(parts, (xy, count, area, sure)):
        np.testing.assert_array_equal(got, np.repeat(want, 20, axis=0))
    return sure


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_intersections_are_the_geos_polygons_where_sure(seed):
    rng = np.random.default_rng(seed)
    p, q = quad_pairs(rng, 4000)
    keep = convex.quads(p)[0] & convex.quads(q)[0] & shapely.intersects(p, q)
    p, q = p[keep], q[keep]
    kind = np.flatnonzero(keep) % 8
    sure = assert_geos_intersections(p, q, 0.3)
    assert sure[np.isin(kind, (0, 1, 6, 7))].mean() > 0.95  # crossing, nested, plus signs: numpy's
    assert not sure[np.isin(kind, (2, 5))].any()  # shared edges, touching corners: GEOS'


def test_intersections_leave_the_doubtful_cases_to_geos():
    a = shapely.box(X0, Y0, X0 + 4, Y0 + 2)
    turned = shapely.affinity.rotate(a, 30)
    cases = [
        (a, a, False),  # identical
        (a, shapely.Polygon(list(a.exterior.coords)[::-1]), False),  # identical, the other way round
        (a, shapely.box(X0 + 4, Y0, X0 + 8, Y0 + 2), False),  # sharing an edge: no area
        (a, shapely.box(X0 + 4, Y0 + 2, X0 + 5, Y0 + 3), False),  # touching at a corner
        (a, shapely.box(X0 + 2, Y0, X0 + 6, Y0 + 2), False),  # overlapping along collinear sides
        (a, shapely.box(X0 + 2, Y0 + 1e-9, X0 + 6, Y0 + 2.5), False),  # a side a nanometre off another's line
        (a, shapely.box(X0 + 1, Y0 + 0.5, X0 + 2, Y0 + 1), True),  # nested
        (a, shapely.box(X0 - 1, Y0 - 1, X0 + 5, Y0 + 3), True),  # nested, the other one inside
        (a, shapely.box(X0 + 3.999999, Y0 - 1, X0 + 5, Y0 + 3), True),  # a sliver, 1 µm wide
        (a, shapely.box(X0 + 3.99999999, Y0 - 1, X0 + 5, Y0 + 3), False),  # 10 nm: a corner nearly on a line
        (a, turned, True), (turned, shapely.affinity.rotate(a, 45, origin=(X0 + 2, Y0 + 1)), True),
        (a, shapely.affinity.rotate(shapely.box(X0 + 1, Y0 - 3, X0 + 2, Y0 + 5), 10), True),  # a plus sign
    ]
    p = np.array([c[0] for c in cases], dtype=object)
    q = np.array([c[1] for c in cases], dtype=object)
    sure = assert_geos_intersections(p, q, 0.4)
    assert sure.tolist() == [c[2] for c in cases]
    assert not convex.intersections(np.empty((0, 4, 2)), np.empty((0, 4, 2)))[3].any()


def layers(seed: int, n: int = 900):
    """Randomised layers: mostly rectangles (Polygons and MultiPolygons, either orientation), and other shapes,
    invalid and self-touching geometry, multipolygons, strips sharing edges and strips exactly at the distance."""
    rng = np.random.default_rng(seed)
    extent = 400.0
    start = pd.Timestamp("2024-01-01")

    def shape(k, scale):
        x, y = rng.uniform(0, extent, 2)
        s = scale * rng.uniform(0.3, 1.0)
        kind = k % 12
        if kind <= 5:
            g = rect(rng, x, y, s, s / 3, rng.uniform(0, 180) if kind < 4 else None)
            if kind % 2:
                g = shapely.Polygon(list(g.exterior.coords)[::-1])
            return shapely.MultiPolygon([g]) if kind in (0, 3) else g
        if kind == 6:  # pentagon
            return shapely.Point(X0 + x, Y0 + y).buffer(s / 2, quad_segs=1).union(rect(rng, x, y, s / 2, s / 2))
        if kind == 7:  # bow tie: invalid
            return shapely.Polygon([(X0 + x, Y0 + y), (X0 + x + s, Y0 + y + s), (X0 + x + s, Y0 + y),
                                    (X0 + x, Y0 + y + s)])
        if kind == 8:  # ring touching itself: invalid
            return shapely.Polygon([(X0 + x, Y0 + y), (X0 + x + s, Y0 + y), (X0 + x + s / 2, Y0 + y + s / 2),
                                    (X0 + x + s, Y0 + y + s), (X0 + x, Y0 + y + s), (X0 + x + s / 2, Y0 + y + s / 2),
                                    (X0 + x, Y0 + y)])
        if kind == 9:  # two parts
            return shapely.MultiPolygon([rect(rng, x, y, s / 3, s / 3), rect(rng, x + s, y, s / 3, s / 3)])
        if kind == 10:  # a hole touching the shell at a point: valid
            return shapely.Polygon(shapely.box(X0 + x, Y0 + y, X0 + x + s, Y0 + y + s).exterior.coords,
                                   [[(X0 + x, Y0 + y), (X0 + x + s / 2, Y0 + y + s / 4),
                                     (X0 + x + s / 4, Y0 + y + s / 2)]])
        return rect(rng, x, y, s, s / 4, 0.0)  # axis-aligned

    cons_geoms = [shape(k, 16.0) for k in range(n)]
    side_geoms = [shape(k + 5, 10.0) for k in range(n)]
    # strips sharing an edge with another strip (touching, not a clash), at exactly d, d + 1 mm and on rounding
    # ties from a parcel's axis-aligned box
    linked = [None] * n
    at = np.full(n, -1)  # the parcel a strip was put beside
    for k in range(0, n // 3, 3):
        b = shapely.bounds(side_geoms[k])
        side_geoms[k + 1] = shapely.box(b[2], b[1], b[2] + 3.0, b[3])
        parcel = k + 11 - (k + 11) % 12 + 11  # an axis-aligned one
        if parcel < n:
            c = shapely.bounds(cons_geoms[parcel])
            gap = [5.0, 5.001, 4.9995, 1.2345, 0.0][k % 5]
            side_geoms[k + 2] = shapely.box(c[2] + gap, c[1], c[2] + gap + 2.0, c[1] + 3.0)
            linked[k + 2] = f"XD{parcel:04d}" if k % 2 else None
            at[k + 2] = parcel
    received = start + pd.to_timedelta(rng.integers(0, 500, n), "D")
    cons = gpd.GeoDataFrame({
        "dossier_code": [f"XD{k:04d}" for k in range(n)], "ward_code": rng.choice(["W1", "W2"], n),
        "received_on": received, "issued_on": pd.NaT}, geometry=cons_geoms, crs="EPSG:5899")
    s0 = start + pd.to_timedelta(rng.integers(0, 600, n), "D")
    s0 = np.where(at >= 0, received[np.maximum(at, 0)], s0)  # during the works beside it
    link = np.where(rng.random(n) < 0.2, cons["dossier_code"].to_numpy()[rng.integers(0, n, n)], None)
    link = np.where(pd.notna(np.array(linked, dtype=object)), np.array(linked, dtype=object), link)
    side = gpd.GeoDataFrame({
        "permit_no": [f"VH{k:04d}" for k in range(n)], "ward_code": "W1", "start_on": s0,
        "end_on": s0 + pd.to_timedelta(rng.integers(0, 120, n), "D"), "sidewalk_width_m": rng.uniform(2, 5, n),
        "used_width_m": rng.uniform(0.5, 3, n), "construction_dossier_code": link},
        geometry=side_geoms, crs="EPSG:5899")
    half = extent / 2
    wards = gpd.GeoDataFrame({
        "ward_key": ["W1-a", "W2-a", "W1-b"], "ward_code": ["W1", "W2", "W1"], "name": ["A", "B", "C"],
        "valid_from": pd.to_datetime(["2020-01-01", "2020-01-01", "2025-01-01"]),
        "valid_to": pd.to_datetime(["2024-12-31", None, None])},
        geometry=[shapely.box(X0 - 50, Y0 - 50, X0 + half, Y0 + extent + 50),
                  shapely.box(X0 + half, Y0 - 50, X0 + extent + 50, Y0 + extent + 50),
                  shapely.Polygon([(X0 - 50, Y0 - 50), (X0 + extent, Y0 - 50), (X0 - 50, Y0 + extent)])],
        crs="EPSG:5899")
    return cons, side, wards


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_numpy_quads_give_the_exact_geos_findings(seed, monkeypatch):
    """The analysis with quads in numpy equals the analysis with every shape in GEOS: same rows in the same
    order, ids, values, geometries (bit for bit), skipped features and summary."""
    cons, side, wards = layers(seed)
    params = AnalysisParams(distance_m=5.0, gap_days=60)
    fast = find_overlaps(cons, side, wards, params)
    monkeypatch.setattr(ov, "_QUADS", False)
    exact = find_overlaps(cons, side, wards, params)
    kinds = set(exact.findings["kind"])
    assert kinds >= {"MERGE_CANDIDATE", "LINKED", "CLASH", "OPPORTUNITY", "CLEARANCE", "WARD_MISMATCH"}
    assert len(exact.findings) > 300
    assert exact.skipped["reason"].str.startswith("invalid geometry").sum() > 50
    distance = exact.findings["distance_m"]
    assert (distance == 5.0).sum() > 3 and (distance == 0.0).sum() > 3
    assert distance.isin([4.999, 1.234, 1.235]).sum() > 3  # half-millimetre ties, rounded one way or the other
    pd.testing.assert_frame_equal(pd.DataFrame(fast.findings.drop(columns="geometry")),
                                  pd.DataFrame(exact.findings.drop(columns="geometry")))
    # the same polygons to the bit; a clash's ring cut in numpy may start at another corner than GEOS'
    assert (shapely.to_wkb(shapely.normalize(fast.findings.geometry.values))
            == shapely.to_wkb(shapely.normalize(exact.findings.geometry.values))).all()
    pd.testing.assert_frame_equal(fast.skipped, exact.skipped)
    pd.testing.assert_frame_equal(fast.summary, exact.summary)


def test_touching_quads_are_not_clashes_and_exactly_d_is_within():
    day = pd.Timestamp("2024-03-01")
    a = shapely.box(X0, Y0, X0 + 4, Y0 + 2)
    side = gpd.GeoDataFrame({
        "permit_no": ["A", "B", "C", "D"], "ward_code": "W1", "start_on": day, "end_on": day,
        "sidewalk_width_m": 4.0, "used_width_m": 1.0, "construction_dossier_code": None},
        geometry=[a, shapely.box(X0 + 4, Y0, X0 + 8, Y0 + 2),  # shares an edge with A
                  shapely.box(X0 + 8, Y0 + 2, X0 + 9, Y0 + 3),  # meets B at a corner
                  shapely.box(X0 + 3.5, Y0 + 1, X0 + 4.5, Y0 + 5)],  # overlaps A and B
        crs="EPSG:5899")
    cons = gpd.GeoDataFrame({"dossier_code": ["X"], "ward_code": "W1", "received_on": day, "issued_on": pd.NaT},
                            geometry=[shapely.box(X0 - 15, Y0, X0 - 5, Y0 + 2)], crs="EPSG:5899")  # 5 m from A
    wards = gpd.GeoDataFrame({"ward_key": ["W1-a"], "ward_code": ["W1"], "name": ["A"],
                              "valid_from": pd.to_datetime(["2020-01-01"]), "valid_to": pd.NaT},
                             geometry=[shapely.box(X0 - 100, Y0 - 100, X0 + 100, Y0 + 100)], crs="EPSG:5899")
    found = find_overlaps(cons, side, wards).findings
    clash = found[found["kind"] == "CLASH"]
    assert sorted(zip(clash["a_id"], clash["b_id"])) == [("A", "D"), ("B", "D")]
    merge = found[found["kind"] == "MERGE_CANDIDATE"]
    assert merge[["b_id", "distance_m"]].values.tolist() == [["A", 5.0]]


def test_date_objects_give_the_same_days_as_text():
    import datetime as dt

    days = [dt.date(2024, 2, 29), None, dt.date(1969, 12, 31), float("nan"), dt.datetime(2025, 7, 1, 23, 59)]
    text = ["2024-02-29", None, "1969-12-31", None, "2025-07-01"]
    fast = ov._days(pd.Series(days, dtype=object))
    assert fast.tolist() == ov._days(pd.Series(text, dtype=object)).tolist()
    assert fast.tolist() == [19782, ov.NAT, -1, ov.NAT, 20270]


# -- the analysis from WKB (gisapp.analysis.geoms): corners read in numpy, objects made only where asked ------------


def wkb_cases() -> np.ndarray:
    """Geometries of every kind :func:`convex.wkb_quads` reads or leaves to shapely."""
    ccw = shapely.box(X0, Y0, X0 + 4, Y0 + 2)
    cw = shapely.Polygon(list(ccw.exterior.coords)[::-1])
    kite = shapely.Polygon([(X0, Y0), (X0 + 3, Y0 + 1), (X0 + 4, Y0 + 4), (X0 + 1, Y0 + 3)])
    with np.errstate(invalid="ignore"):
        not_finite = shapely.Polygon([(X0, Y0), (X0 + 4, Y0), (X0 + 4, np.nan), (X0, Y0 + 2)])
    return np.array([
        ccw, cw, shapely.MultiPolygon([ccw]), shapely.MultiPolygon([kite]), kite,
        shapely.Polygon([(X0, Y0), (X0 + 4, Y0 + 4), (X0 + 4, Y0), (X0, Y0 + 4)]),  # bow tie
        shapely.Polygon([(X0, Y0), (X0 + 2, Y0), (X0 + 4, Y0), (X0 + 2, Y0 + 3)]),  # flat corner
        shapely.MultiPolygon([shapely.Polygon([(X0, Y0), (X0 + 4, Y0), (X0 + 1, Y0 + 1), (X0, Y0 + 4)])]),  # concave
        shapely.Polygon([(X0, Y0), (X0 + 4, Y0), (X0, Y0 + 4)]),  # triangle
        shapely.MultiPolygon([ccw, shapely.box(X0 + 9, Y0, X0 + 10, Y0 + 1)]),  # two parts
        shapely.box(X0, Y0, X0 + 9, Y0 + 9).difference(shapely.box(X0 + 1, Y0 + 1, X0 + 2, Y0 + 2)),  # a hole
        shapely.Polygon(), shapely.MultiPolygon(), None, shapely.Point(X0, Y0), shapely.LineString([(0, 0), (1, 1)]),
        shapely.GeometryCollection([ccw]),
        shapely.Polygon([(X0, Y0), (X0 + 1e-9, Y0), (X0 + 1e-9, Y0 + 5), (X0, Y0 + 5)]),  # too thin
        shapely.box(2e8, 0, 2e8 + 4, 2),  # beyond 1e8 m
        not_finite,
        shapely.force_3d(ccw), shapely.MultiPolygon([shapely.force_3d(kite)]),  # Z: left to shapely, then quads
    ], dtype=object)


def arrow_wkb(blobs: list, kind=None, chunk: int | None = None) -> pa.ChunkedArray:
    """WKB values as an Arrow column: binary or large binary, in chunks of ``chunk`` (sliced, so with offsets)."""
    kind = kind or pa.binary()
    padded = pa.array([b"junk", *blobs, b"junk"], type=kind).slice(1, len(blobs))  # an offset into its buffers
    if chunk is None:
        return pa.chunked_array([padded])
    return pa.chunked_array([padded.slice(k, chunk) for k in range(0, len(blobs), chunk)], type=kind)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the NaN corner
@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary()])
@pytest.mark.parametrize("chunk", [None, 3])
def test_quads_read_from_wkb_are_the_shapely_quads(kind, chunk):
    geoms = wkb_cases()
    mask, xy = convex.quads(geoms)
    assert mask.sum() >= 6 and (~mask).sum() >= 14
    little = list(shapely.to_wkb(geoms))
    big = list(shapely.to_wkb(geoms, byte_order=0))  # big-endian: left to shapely
    ewkb = list(shapely.to_wkb(shapely.set_srid(geoms, 5899), include_srid=True))  # extended WKB: likewise
    for blobs in (little, big, ewkb, little + big + ewkb):
        column = arrow_wkb(blobs, kind, chunk)
        made = shapely.from_wkb(np.array(blobs, dtype=object))
        want_mask, want_xy = convex.quads(made)
        got_mask, got_xy = Geometries.of_wkb(column).quads()
        np.testing.assert_array_equal(got_mask, want_mask)
        np.testing.assert_array_equal(got_xy, want_xy)
    # numpy read the little-endian 2D polygons and single-part multipolygons of 5 coordinates itself (rows 0-7
    # and 17-19, quads or not); shapely the rest
    decided, dmask, dxy = convex.wkb_quads(arrow_wkb(little, kind, chunk))
    assert decided.tolist() == [k <= 7 or k in (17, 18, 19) for k in range(len(geoms))]
    np.testing.assert_array_equal(dmask[decided], mask[decided])
    np.testing.assert_array_equal(dxy[decided], xy[decided])
    assert not convex.wkb_quads(arrow_wkb(big, kind, chunk))[0].any()


def test_quads_from_evenly_and_unevenly_spaced_wkb():
    """Many rectangles: one strided view over the values when all are alike, gathered when lengths vary."""
    rng = np.random.default_rng(5)
    n = 3000
    rects = np.array([rect(rng, *rng.uniform(0, 500, 2), *rng.uniform(1, 9, 2), rng.uniform(0, 180))
                      for _ in range(n)], dtype=object)
    multi = np.array([shapely.MultiPolygon([g]) for g in rects], dtype=object)
    mixed = np.where(rng.random(n) < 0.5, rects, multi)
    mixed[rng.integers(0, n, 40)] = None
    for geoms in (multi, mixed):
        blobs = list(shapely.to_wkb(geoms))
        for chunk in (None, 1000):
            mask, xy = Geometries.of_wkb(arrow_wkb(blobs, chunk=chunk)).quads()
            want_mask, want_xy = convex.quads(geoms)
            assert want_mask.sum() > 0.9 * n
            np.testing.assert_array_equal(mask, want_mask)
            np.testing.assert_array_equal(xy, want_xy)


def test_geometries_make_objects_only_for_the_rows_asked():
    geoms = wkb_cases()
    blobs = list(shapely.to_wkb(geoms))
    lazy = Geometries.of_wkb(arrow_wkb(blobs, chunk=4))
    assert len(lazy) == len(geoms) and not lazy._source.built.any()
    rows = np.array([9, 2, 9, 13])
    got = lazy[rows]
    assert shapely.to_wkb(got).tolist() == shapely.to_wkb(geoms[rows]).tolist()  # None stays None
    assert lazy._source.built.sum() == 3
    view = lazy.take(np.arange(len(geoms)) % 2 == 1)  # a view: makes nothing
    assert lazy._source.built.sum() == 3 and len(view) == len(geoms) // 2
    assert view[0].equals(geoms[1]) and view[4] is lazy[9]  # made once, shared by the views
    assert shapely.to_wkb(view[1:3]).tolist() == shapely.to_wkb(geoms[[3, 5]]).tolist()
    vmask, vxy = view.quads()
    np.testing.assert_array_equal(vmask, convex.quads(geoms)[0][1::2])
    np.testing.assert_array_equal(vxy, convex.quads(geoms)[1][1::2])
    assert Geometries.of_objects(geoms)[rows].tolist() == geoms[rows].tolist()
    assert lazy[-1].equals(geoms[-1]) and view[-1].equals(geoms[len(geoms) // 2 * 2 - 1])
    assert lazy._source.wkb.num_chunks == 1  # joined once: Arrow's take joins a chunked array's chunks per call
    # objects made already for some rows: those served as they are (their WKB, null here, never read)
    made = np.array([1, 4])
    mixed = Geometries.of_wkb(arrow_wkb([None if k in made else b for k, b in enumerate(blobs)]), made, geoms[made])
    assert mixed[made].tolist() == geoms[made].tolist() and mixed._source.built.sum() == 2
    assert shapely.to_wkb(mixed[:6]).tolist() == shapely.to_wkb(geoms[:6]).tolist()


def test_wkb_chunks_joined_as_large_binary_past_the_binary_limit(monkeypatch):
    geoms = wkb_cases()
    monkeypatch.setattr(geoms_module, "_BINARY_MAX", 100)
    lazy = Geometries.of_wkb(arrow_wkb(list(shapely.to_wkb(geoms)), chunk=4))
    assert lazy._source.wkb.type == pa.large_binary() and lazy._source.wkb.num_chunks == 1
    assert shapely.to_wkb(lazy[:]).tolist() == shapely.to_wkb(geoms).tolist()
    np.testing.assert_array_equal(lazy.quads()[1], convex.quads(geoms)[1])


def test_the_box_tree_answers_as_an_strtree():
    rng = np.random.default_rng(8)
    n = 2000
    tree_geoms = np.array([rect(rng, *rng.uniform(0, 800, 2), *rng.uniform(0.5, 12, 2), rng.uniform(0, 180))
                           for _ in range(n)], dtype=object)
    tree_geoms[:5] = [rect(rng, *rng.uniform(0, 800, 2), 300.0, 2.0) for _ in range(5)]  # bigger than a cell
    tree_geoms[5] = shapely.box(X0 + 900, Y0 + 900, X0 + 900, Y0 + 900.5)  # flat, at the edge of the grid
    queries = np.array([rect(rng, *rng.uniform(-50, 850, 2), rng.uniform(20, 200), 3.0, rng.choice([0.0, 30.0]))
                        for _ in range(300)], dtype=object)
    queries[0] = shapely.box(X0 - 900, Y0, X0 - 800, Y0 + 1)  # off the grid
    queries[1] = shapely.box(X0 + 890, Y0 + 890, X0 + 900, Y0 + 900)  # touching the flat one's corner
    mine = BoxTree(Geometries.of_wkb(arrow_wkb(list(shapely.to_wkb(tree_geoms)))), shapely.bounds(tree_geoms))
    theirs = shapely.STRtree(tree_geoms)

    def pairs(found):
        return sorted(zip(found[0].tolist(), found[1].tolist()))

    assert len(pairs(theirs.query(queries))) > 500 and (1, 5) in pairs(theirs.query(queries))
    assert pairs(mine.query(queries)) == pairs(theirs.query(queries))
    reach = rng.uniform(0, 6, len(queries))
    want = pairs(theirs.query(queries, predicate="dwithin", distance=reach))
    assert pairs(mine.query(queries, predicate="dwithin", distance=reach)) == want and len(want) > 500
    got = mine.query(queries)
    assert (np.lexsort((got[1], got[0])) == np.arange(got.shape[1])).all()  # sorted by query, then tree row


def as_wkb_frame(frame: gpd.GeoDataFrame, chunk: int | None = None) -> pd.DataFrame:
    """``frame`` as :func:`gisapp.analysis.run.read_layer` gives it with ``wkb=True``: a WKB geometry column."""
    column = arrow_wkb(list(shapely.to_wkb(frame.geometry.values)), chunk=chunk)
    return pd.DataFrame({**{c: frame[c] for c in frame.columns if c != "geometry"},
                         "geometry": pd.arrays.ArrowExtensionArray(column)})


def sidewalk_strips(extent: float = 400.0) -> gpd.GeoDataFrame:
    """Straight sidewalks (3 m by 80-400 m) across the random layers, and one L-shaped."""
    walks = [shapely.box(X0, Y0 + y, X0 + extent, Y0 + y + 3.0) for y in np.arange(0.0, extent, 25.0)]
    walks += [shapely.box(X0 + x, Y0, X0 + x + 3.0, Y0 + 80.0) for x in np.arange(10.0, extent, 60.0)]
    walks.append(shapely.box(X0, Y0, X0 + 40, Y0 + 40).difference(shapely.box(X0 + 3, Y0 + 3, X0 + 40, Y0 + 40)))
    return gpd.GeoDataFrame({"width_m": np.r_[np.full(len(walks) - 1, 3.0), np.nan]}, geometry=walks,
                            crs="EPSG:5899")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_find_overlaps_on_wkb_equals_find_overlaps_on_objects(seed):
    """The WKB path (the parcels and permits as WKB, as `gisapp analyze` reads them) gives the findings of the
    objects' path: same rows, ids, values, geometries bit for bit, skipped rows and reasons, summary."""
    cons, side, wards = layers(seed, n=600)
    rng = np.random.default_rng(seed)
    for frame in (cons, side):  # missing, empty and non-polygonal geometries too
        rows = rng.choice(len(frame), 12, replace=False)
        frame.loc[rows[:4], "geometry"] = None
        frame.loc[rows[4:8], "geometry"] = shapely.Polygon()
        frame.loc[rows[8:], "geometry"] = shapely.Point(X0, Y0)
    walks = sidewalk_strips()
    params = AnalysisParams(distance_m=5.0, gap_days=60)
    objects = find_overlaps(cons, side, wards, params, sidewalks=walks)
    wkb = find_overlaps(as_wkb_frame(cons), as_wkb_frame(side, chunk=250), wards, params, sidewalks=walks)
    found = objects.findings
    assert set(found["kind"]) >= {"MERGE_CANDIDATE", "LINKED", "CLASH", "OPPORTUNITY", "CLEARANCE", "WARD_MISMATCH"}
    assert found["detail"].str.contains("đo trên vỉa hè").sum() > 10  # passages measured on the sidewalks
    reasons = objects.skipped["reason"]
    assert reasons.str.startswith("invalid geometry").sum() > 30 and reasons.str.contains("not a polygon").sum() == 8
    assert reasons.str.contains("empty or missing").sum() == 16
    pd.testing.assert_frame_equal(pd.DataFrame(wkb.findings.drop(columns="geometry")),
                                  pd.DataFrame(found.drop(columns="geometry")))
    assert shapely.to_wkb(wkb.findings.geometry.values).tolist() == shapely.to_wkb(found.geometry.values).tolist()
    pd.testing.assert_frame_equal(wkb.skipped, objects.skipped)
    pd.testing.assert_frame_equal(wkb.summary, objects.summary)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_store_analysed_from_wkb_equals_its_layers_analysed_as_objects(backend, tmp_path, request):
    """`gisapp analyze`'s read (the parcels and permits as WKB, from GDAL or PostGIS) gives the findings of the
    same layers read as GeoDataFrames."""
    cons, side, wards = layers(4, n=300)
    walks = sidewalk_strips()
    walks["sidewalk_id"] = [f"S{k}" for k in range(len(walks))]
    store = new_store(backend, tmp_path, request)
    store.write({"construction_permits": cons, "sidewalk_permits": side, "wards": wards, "sidewalks": walks})
    params = AnalysisParams(distance_m=5.0, gap_days=60)
    result, _ = analyze_store(store, params)
    frames = {name: read_layer(store, name) for name in LAYERS}
    read = read_layer(store, "sidewalk_permits", wkb=True)  # WKB and texts left in Arrow
    assert all(isinstance(read.dtypes[c], pd.ArrowDtype) for c in ("geometry", "permit_no", "ward_code"))
    want = find_overlaps(frames["construction_permits"], frames["sidewalk_permits"], frames["wards"], params,
                         sidewalks=frames["sidewalks"])
    assert len(want.findings) > 100 and len(want.skipped) > 10
    pd.testing.assert_frame_equal(pd.DataFrame(result.findings.drop(columns="geometry")),
                                  pd.DataFrame(want.findings.drop(columns="geometry")))
    assert (shapely.to_wkb(result.findings.geometry.values).tolist()
            == shapely.to_wkb(want.findings.geometry.values).tolist())
    pd.testing.assert_frame_equal(result.skipped, want.skipped)
