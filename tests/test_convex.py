"""Numpy geometry of convex quads (gisapp.analysis.convex) against GEOS, alone and inside the analysis."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.affinity

from gisapp import strips
from gisapp.analysis import convex
from gisapp.analysis import overlaps as ov
from gisapp.analysis.overlaps import AnalysisParams, find_overlaps

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
    assert (shapely.to_wkb(fast.findings.geometry.values) == shapely.to_wkb(exact.findings.geometry.values)).all()
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
