"""Benchmark: vector tiles (``/tiles/<layer>/<z>/<x>/<y>.mvt``) from the GeoPackage and the PostGIS store.

For each size (default 100,000 permits per layer) it generates the data with
:func:`benchmarks.bench_postgis.make_data`, loads it into each backend (a
GeoPackage file; PostGIS on a private server the benchmark starts), serves
it with ``gisapp serve --workers 2`` (:func:`benchmarks.bench_postgis.app_servers`)
and has ``--clients`` concurrent clients fetch tiles at z14–z17 around random
dossiers, one zoom level at a time: p50/p95 latency, throughput, mean tile
size.  The goal of issue 7: p95 under 50 ms at z14–z17 at 1M parcels, 8
clients, this 2-core machine.  The clients run on the same cores as the
server, so the figures are pessimistic.

``--store NAME=URL`` (repeatable) measures existing stores instead of
generating data (tiles then come from ``--boxes``, a JSON list of WGS84
boxes, or from the layer's extent).

``--filters`` measures FILTERED tiles instead (issue 15: p95 under 150 ms at
8 clients at 1M): for each filter kind of :data:`FILTER_KINDS` (a ward, a
status, a procedure, a channel, a date range, a day, as of a day, a text
search, and a combination), ``--clients`` clients fetch tiles of z14–z17
around random dossiers.  State measured: the servers' shared tile folder
fully rendered (the benchmark waits for ``/healthz`` to say so); then a
"cold" pass, the first filter on tiles no worker has taken apart yet (each
tile asked twice over); then the first search and the first status as of a
day of each worker (``first_search``, ``first_day``: each process reads the
layer's search texts, then its status history, once, and the request waits
for it: :mod:`gisapp.tiles.index`); then each kind on the same tiles ("warm": the
unfiltered tiles taken apart in memory, each kind's filtered tiles not yet
built, as when staff switch filters or play the day slider over one
district).  Before the load test, ``--compare`` (on by
default with ``--filters``) times, in one process, for each kind and each
way, the cost of one filtered tile: built by the store (the way before:
``ST_AsMVT`` with the filter on PostGIS, the R-tree rows and the Python
encoder on the GeoPackage), the subset of the unfiltered tile (taking it
apart included, and without it), and reading a pre-rendered per-ward tile
from disk (what pre-rendering per ward would serve, for the ward filter only).

Usage::

    python -m benchmarks.bench_tiles [--sizes 100000] [--zooms 14,15,16,17] [--clients 8]
    python -m benchmarks.bench_tiles --filters [--sizes 100000]      # filtered tiles, each filter kind
    python -m benchmarks.bench_tiles --filters --sizes 1000000       # the issue's 1M case (quiet machine)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench_store, loadgen, save_results
from benchmarks.bench_postgis import SERVER_SETTINGS, app_servers, make_data
from gisapp import geo, schema
from gisapp.store import open_store
from gisapp.tiles import mvt as tiles

LAYER = "construction_permits"


def tile_list(frames_or_bounds, zooms=(14, 15, 16, 17), k: int = 50, seed: int = 11) -> list[tuple[int, int, int]]:
    """``k`` tiles per zoom level, each holding a dossier picked at random: ``(z, x, y)``, zoom by zoom.

    ``frames_or_bounds``: the frames of :func:`make_data` (dossier centres
    from ``construction_permits``, EPSG:5899), or WGS84 boxes or points
    (``(minlon, minlat, maxlon, maxlat)`` or ``(lon, lat)``: their centres).
    """
    rng = np.random.default_rng(seed)
    if isinstance(frames_or_bounds, dict):
        geoms = frames_or_bounds[LAYER].geometry.values
        pick = rng.integers(0, len(geoms), k)
        centres = geo.transform(shapely.centroid(np.asarray(geoms)[pick]), schema.STORE_CRS, schema.WEB_CRS)
        lon, lat = shapely.get_x(centres), shapely.get_y(centres)
    else:
        pts = np.asarray(frames_or_bounds, dtype=float)
        pts = pts[rng.integers(0, len(pts), k)]
        if pts.shape[1] == 4:
            lon, lat = (pts[:, 0] + pts[:, 2]) / 2, (pts[:, 1] + pts[:, 3]) / 2
        else:
            lon, lat = pts[:, 0], pts[:, 1]
    return [(int(z), *tiles.tile_at(a, b, z)) for z in zooms for a, b in zip(lon, lat)]


def tile_load_test(bases: list[str], tiles, clients: int, requests_per_client: int, layer: str = LAYER,
                   query: dict | None = None) -> dict:
    """Latency of tile requests under ``clients`` concurrent clients (:func:`loadgen.run_threads`).

    Client ``k`` talks to ``bases[k % len(bases)]`` and walks ``tiles``
    from its own offset.  Returns p50_ms, p95_ms, requests, failures,
    mean_bytes, empty (204 answers) and throughput (requests/s).
    """
    suffix = f"?{urlencode(query)}" if query else ""
    paths = [f"/tiles/{layer}/{z}/{x}/{y}.mvt{suffix}" for z, x, y in tiles]
    stats = loadgen.run_threads(bases, paths, clients, requests_per_client, inspect=lambda body: not body,
                                ok=(200, 204))
    stats["empty"] = round((stats.pop("mean_inspected") or 0) * stats["requests"])
    stats["throughput"] = stats.pop("throughput_rps")
    return stats


#: Filter kinds of the filtered-tile benchmark: name → URL query (``{ward}``, ``{q}`` filled from the data).
FILTER_KINDS = {
    "unfiltered": "",  # the floor: a file read from the shared folder, for comparison
    "ward": "ward={ward}",
    "status": "status=PROCESSING,RECEIVED",
    "procedure": "procedure=NEW_BUILD",
    "channel": "channel=ONLINE",
    "range": "from=2022-03-01&to=2022-04-30",
    "day": "day=2022-04-15",
    "as_of": "as_of=2022-04-01",
    "as_of_status": "as_of=2022-04-01&status=PROCESSING",
    "q": "q={q}",
    "combined": "ward={ward}&status=RETURNED&day=2022-05-02",
}


def filter_queries(frames_or_store) -> dict[str, dict]:
    """:data:`FILTER_KINDS` as query dicts, the ward and search text taken from the data."""
    from urllib.parse import parse_qsl

    if isinstance(frames_or_store, dict):
        permits = frames_or_store[LAYER]
    else:
        permits = frames_or_store.read(LAYER, limit=20000)
    ward = str(permits["ward_code"].value_counts().index[0])
    streets = permits["street"].dropna().astype(str) if "street" in permits else None
    q = streets.str.split().str[:2].str.join(" ").value_counts().index[0] if streets is not None and len(streets) \
        else "a"  # the commonest street name (without its number): a search that finds something
    out: dict = {kind: dict(parse_qsl(text.format(ward=ward, q=q))) for kind, text in FILTER_KINDS.items()}
    # for filter_variants: the wards by size, and search words (street names, whole and their first two words)
    out["_wards"] = [str(w) for w in permits["ward_code"].value_counts().index[:8]]
    if streets is not None and len(streets):
        names = [str(v) for v in streets.value_counts().index[:20]]
        out["_words"] = list(dict.fromkeys([q, *names, *(" ".join(n.split()[:2]) for n in names)]))
    return out


def compare_ways(store, tiles_, queries: dict, tile_dir=None) -> dict:
    """Milliseconds per filtered tile (mean over ``tiles_``), per filter kind and way, in this process.

    Ways: ``store`` (built by the store with the filter: the way before),
    ``subset_cold`` (the unfiltered tile taken apart, then the subset),
    ``subset_warm`` (the subset of an unfiltered tile already taken apart),
    and for the ward filter ``per_ward_disk`` (reading a pre-rendered tile
    of that ward from a tile folder).  Checks that the subset's features
    equal the store's on every tile.
    """
    from werkzeug.datastructures import MultiDict

    from gisapp.filters import parse_filter
    from gisapp.tiles import index, subset
    from gisapp.tiles import source as tile_source
    from gisapp.tiles.disk import TileDir

    wholes = {t: tile_source.tile(store, LAYER, *t) for t in tiles_}
    out: dict = {}
    # the layer's search texts, then its status history, read once per process (gisapp.tiles.index): timed
    # apart, so that the subsets below are each tile's own cost
    for what, with_history in (("index_texts_s", False), ("index_history_s", True)):
        started = time.perf_counter()
        index.index(store, LAYER, with_history=with_history)
        out[what] = round(time.perf_counter() - started, 2)
    print(f"    index: search texts read in {out['index_texts_s']} s, status history in {out['index_history_s']} s",
          flush=True)
    for kind, query in queries.items():
        if kind.startswith("_"):
            continue
        flt = parse_filter(MultiDict(query), "tiles")[0]
        times = {"store": [], "subset_cold": [], "subset_warm": []}
        for t in tiles_:
            started = time.perf_counter()
            built = tile_source.tile(store, LAYER, *t, flt)
            times["store"].append(time.perf_counter() - started)
            started = time.perf_counter()
            feats = subset.take_apart(wholes[t], LAYER)
            body = tile_source.subset_tile(store, LAYER, *t, flt, feats)
            times["subset_cold"].append(time.perf_counter() - started)
            started = time.perf_counter()
            tile_source.subset_tile(store, LAYER, *t, flt, feats)
            times["subset_warm"].append(time.perf_counter() - started)
            if _features(body) != _features(built):
                raise AssertionError(f"subset and store differ: {kind} tile {t}")
        if kind == "ward" and tile_dir is not None:
            per_ward = TileDir(tile_dir, f"{store.url}#ward={query['ward']}")
            for t in tiles_:
                per_ward.put("v", LAYER, *t, tile_source.tile(store, LAYER, *t, flt))
            times["per_ward_disk"] = []
            for t in tiles_:
                started = time.perf_counter()
                per_ward.get("v", LAYER, *t)
                times["per_ward_disk"].append(time.perf_counter() - started)
        out[kind] = {way: round(1000 * float(np.mean(v)), 2) for way, v in times.items()}
        out[kind]["features"] = round(float(np.mean([len(_features(tile_source.tile(store, LAYER, *t, flt)))
                                                     for t in tiles_[:5]])), 1)
        print(f"    {kind:<13} " + "  ".join(f"{way} {ms:.1f} ms" for way, ms in out[kind].items()
                                              if way != "features"), flush=True)
    return out


def _features(body: bytes) -> dict:
    """Key → (properties, geometry commands) of a tile, decoded by mapbox-vector-tile (no gisapp code)."""
    import mapbox_vector_tile

    if not body:
        return {}
    layer = mapbox_vector_tile.decode(body)[LAYER]
    return {f["properties"]["dossier_code"]: (f["properties"], repr(f["geometry"])) for f in layer["features"]}


def filter_variants(queries: dict, k: int = 40) -> dict[str, list[dict]]:
    """Per kind of :data:`FILTER_KINDS`, up to ``k`` filters of that kind (other wards, statuses, days, words …).

    The load test asks each tile with another of them, so that every request is a filtered tile the server
    has not built yet (a filtered tile once built is served from the process's cache by its ETag): what a
    member of staff playing the day slider or switching statuses over a district costs.
    """
    import itertools

    days = [dt.date(2022, 1, 3) + dt.timedelta(days=4 * i) for i in range(k)]  # the demo data's first half-year
    statuses = ["RETURNED", "RESULT_READY", "PROCESSING", "RECEIVED", "REFUSED"]
    subsets = [",".join(c) for n in (1, 2, 3) for c in itertools.combinations(statuses, n)]
    wards = queries.get("_wards") or [queries["ward"]["ward"]]
    words = queries.get("_words") or [queries["q"]["q"]]
    out: dict[str, list[dict]] = {
        "unfiltered": [{}],
        "ward": [{"ward": w} for w in wards] + [{"ward": f"{a},{b}"} for a, b in itertools.combinations(wards, 2)],
        "status": [{"status": s} for s in subsets],
        "procedure": [{"procedure": ",".join(c)} for n in (1, 2, 3) for c in itertools.combinations(
            ["NEW_BUILD", "RENOVATION", "ADJUSTMENT", "EXTENSION"], n)],
        "channel": [{"channel": "ONLINE"}, {"channel": "IN_PERSON"}],
        "range": [{"from": d.isoformat(), "to": (d + dt.timedelta(days=30)).isoformat()} for d in days],
        "day": [{"day": d.isoformat()} for d in days],
        "as_of": [{"as_of": d.isoformat()} for d in days],
        "as_of_status": [{"as_of": d.isoformat(), "status": s} for d, s in zip(
            days, itertools.cycle(["PROCESSING", "RECEIVED", "RETURNED", "PROCESSING,RECEIVED"]))],
        "q": [{"q": w} for w in words],
        "combined": [{"ward": w, "status": "RETURNED", "day": d.isoformat()} for d, w in zip(
            days, itertools.cycle(wards))],
    }
    return {kind: out[kind][:k] for kind in queries if kind in out}


def run_filtered(name: str, url: str, frames_or_store, zooms, clients: int, per_client: int, n_tiles: int,
                 compare: bool, kinds: list[str] | None = None, tile_dir: str | None = None,
                 render: bool = True) -> dict:
    """The filtered-tile measures of one store: the in-process comparison, then the load test per kind.

    States measured, on ``gisapp serve --workers 2`` with the shared tile folder rendered:

    * ``first``: the first filtered request of tiles no worker has taken apart yet (each asked once:
      the unfiltered tile read from the folder and taken apart, then filtered);
    * per kind (``kinds``), warm: tiles every worker has taken apart, each request a filter of that kind
      the server has not answered for that tile yet (:func:`filter_variants`).

    ``tile_dir``: the tile folder to use and keep (rendered once for a store that does not change, e.g.
    the shared 1M copies), instead of a new one removed afterwards.  ``render`` false: no tile folder is
    rendered first (``GISAPP_TILE_WARM=none``; each unfiltered tile is built by the store when first taken
    apart, so the ``first`` figure is the store's build).
    """
    import random
    import shutil

    from benchmarks.bench_postgis import wait_for_tiles

    queries = filter_queries(frames_or_store)
    variants = filter_variants(queries)
    kinds = [k for k in (kinds or list(FILTER_KINDS)) if k in variants]
    row: dict = {"backend": name, "queries": {k: v for k, v in queries.items() if not k.startswith("_")},
                 "kinds": {}}
    tile_root = tempfile.mkdtemp(prefix="gisapp-bench-ftiles-")
    try:
        if compare:
            store = open_store(url)
            some = tile_list(frames_or_store if isinstance(frames_or_store, dict) else _points(store),
                             (14, 16), 8, seed=99)
            print(f"  {name}: one filtered tile, ms (mean of {len(some)} tiles at z14 and z16):", flush=True)
            row["compare"] = compare_ways(store, some, {k: queries[k] for k in kinds}, tile_dir=tile_root)
        settings = {"GISAPP_TILE_DIR": tile_dir or str(Path(tile_root) / "served"), "GISAPP_TILE_WARM": "-".join(
            str(z) for z in (min(zooms), max(zooms))) if render else "none"}
        with app_servers(url, settings=settings) as bases:
            row["render_s"] = round(wait_for_tiles(bases[0]), 1)
            print(f"  {name}: unfiltered tiles rendered in {row['render_s']} s", flush=True)
            points = frames_or_store if isinstance(frames_or_store, dict) else _points(open_store(url))
            warm = tile_list(points, zooms, 5, seed=1)  # the workers' first requests (imports, connections)
            tile_load_test(bases, warm, 2, 5)
            tile_load_test(bases, warm, 2, 5, query=queries["status"])
            # first: filtered requests of tiles no process has taken apart yet, each tile once
            fresh = tile_list(points, zooms, max(2, n_tiles // len(zooms)), seed=200)
            first = tile_load_test(bases, fresh, clients, max(1, len(fresh) // clients), query={"status": "REFUSED"})
            row["first"] = first
            print(f"  {name}: first  (a filter on {len(fresh)} tiles not taken apart yet) p50 "
                  f"{first['p50_ms']:.0f} ms p95 {first['p95_ms']:.0f} ms ({first['requests']} requests)",
                  flush=True)
            # the first search and the first status as of a day in each worker: the process reads the layer's
            # search texts, then its status history, once (gisapp.tiles.index) and waits for them
            for label, kind in (("first_search", "q"), ("first_day", "as_of_status")):
                if kind in queries:
                    once = tile_load_test(bases, fresh[:clients], clients, 1, query=queries[kind])
                    row[label] = once
                    print(f"  {name}: {label} (each worker reads the layer's index) p50 {once['p50_ms']:.0f} ms "
                          f"p95 {once['p95_ms']:.0f} ms", flush=True)
            sample = tile_list(points, zooms, max(2, n_tiles // len(zooms)), seed=100)
            # every client asks every tile once: each worker has taken every tile apart (keep-alive connections
            # stay with one worker)
            tile_load_test(bases, sample, clients, len(sample), query={"status": "REFUSED"})
            rng = random.Random(7)
            for kind in kinds:  # warm: the same tiles, each request a filter not yet answered for its tile
                pairs = [(t, v) for t in sample for v in variants[kind]]
                rng.shuffle(pairs)
                n = min(per_client, max(1, len(pairs) // clients)) if kind != "unfiltered" else per_client
                stats = _pairs_load_test(bases, pairs, clients, n)
                row["kinds"][kind] = stats
                print(f"  {name}: {kind:<13} p50 {stats['p50_ms']:.0f} ms p95 {stats['p95_ms']:.0f} ms "
                      f"({stats['requests']} requests, {stats['failures']} failed, {stats['empty']} empty, "
                      f"{stats['throughput']:.1f} tiles/s)", flush=True)
                if stats["failures"]:
                    print(f"    failures: {stats['failure_sample']}", flush=True)
    finally:
        shutil.rmtree(tile_root, ignore_errors=True)
    return row


def _pairs_load_test(bases: list[str], pairs: list[tuple], clients: int, per_client: int) -> dict:
    """:func:`tile_load_test` over ``(tile, query)`` pairs, each asked at most once while they last."""
    paths = [f"/tiles/{LAYER}/{z}/{x}/{y}.mvt" + (f"?{urlencode(q)}" if q else "") for (z, x, y), q in pairs]
    stats = loadgen.run_threads(bases, paths, clients, per_client, inspect=lambda body: not body, ok=(200, 204))
    stats["empty"] = round((stats.pop("mean_inspected") or 0) * stats["requests"])
    stats["throughput"] = stats.pop("throughput_rps")
    return stats


def _points(store) -> np.ndarray:
    """WGS84 centres of up to 400 dossiers of an existing store."""
    frame = store.read(LAYER, limit=400)
    pts = geo.transform(shapely.centroid(frame.geometry.values), schema.STORE_CRS, schema.WEB_CRS)
    return np.column_stack([shapely.get_x(pts), shapely.get_y(pts)])


def run_store(name: str, url: str, tiles, zooms, clients: int, per_client: int) -> dict:
    """The load test of one store, zoom level by zoom level, after a warm-up."""
    row = {"backend": name, "zooms": []}
    with app_servers(url) as bases:
        tile_load_test(bases, tiles[:20], 2, 5)  # warm up the workers and their connections
        for z in zooms:
            level = [t for t in tiles if t[0] == z]
            stats = {"z": z, **tile_load_test(bases, level, clients, per_client)}
            row["zooms"].append(stats)
            print(f"  {name}: z{z} p50 {stats['p50_ms']:.0f} ms p95 {stats['p95_ms']:.0f} ms "
                  f"({stats['requests']} requests, {stats['failures']} failed, {stats['empty']} empty, "
                  f"{(stats['mean_bytes'] or 0) / 1024:.0f} KiB, {stats['throughput']:.1f} tiles/s)", flush=True)
            if stats["failures"]:
                print(f"    failures: {stats['failure_sample']}", flush=True)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000", help="permits per layer, comma-separated")
    parser.add_argument("--zooms", default="14,15,16,17")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=160, help="requests per zoom level (all clients)")
    parser.add_argument("--tiles", type=int, default=60, help="distinct tiles per zoom level")
    parser.add_argument("--backends", default="gpkg,postgis")
    parser.add_argument("--store", action="append", default=[], metavar="NAME=URL",
                        help="measure an existing store instead of generating data (repeatable)")
    parser.add_argument("--boxes", help="with --store: JSON list of WGS84 boxes to pick tiles around")
    parser.add_argument("--filters", action="store_true",
                        help="measure filtered tiles, per filter kind (issue 15), instead of unfiltered ones")
    parser.add_argument("--no-compare", dest="compare", action="store_false",
                        help="with --filters: skip the in-process comparison of the ways to make a filtered tile")
    parser.add_argument("--kinds", help="with --filters: these kinds only, comma-separated "
                        f"({', '.join(FILTER_KINDS)})")
    parser.add_argument("--tile-dir", help="with --filters: the servers' tile folder, kept (rendered once for a store "
                        "that does not change, e.g. a copy of the shared 1M data), instead of a new one each run")
    parser.add_argument("--no-render", dest="render", action="store_false",
                        help="with --filters --store: render no tile folder first (unfiltered tiles built on request)")
    args = parser.parse_args(argv)
    kinds = args.kinds.split(",") if args.kinds else None
    zooms = [int(z) for z in args.zooms.split(",")]
    per_client = max(3, args.requests // args.clients)
    results = {"started": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
               "cpus": os.cpu_count(), "layer": LAYER, "clients": args.clients, "runs": []}
    if args.store:
        stores = dict(s.split("=", 1) for s in args.store)
        if args.boxes:
            points = json.loads(Path(args.boxes).read_text())
        else:
            extent = next(i.extent for i in open_store(next(iter(stores.values()))).info() if i.name == LAYER)
            box = geo.transform([shapely.box(*extent)], schema.STORE_CRS, schema.WEB_CRS)[0]
            rng = np.random.default_rng(5)
            b = box.bounds
            points = np.column_stack([rng.uniform(b[0], b[2], 400), rng.uniform(b[1], b[3], 400)])
        tiles = tile_list(points, zooms, args.tiles)
        run = {"n": None, "stores": list(stores), "rows": []}
        for name, url in stores.items():
            if args.filters:
                run["rows"].append(run_filtered(name, url, open_store(url), zooms, args.clients, per_client,
                                                args.tiles, args.compare, kinds, args.tile_dir, args.render))
            else:
                run["rows"].append(run_store(name, url, tiles, zooms, args.clients, per_client))
        results["runs"].append(run)
    else:
        _generated(args, zooms, per_client, results, kinds)
    print_table(results)
    save_results("bench_tiles", results)


def _generated(args, zooms, per_client: int, results: dict, kinds: list[str] | None = None) -> None:
    from gisapp.store.postgis import close_pool
    from tests.pg_server import start_server

    backends = args.backends.split(",")
    server = start_server(SERVER_SETTINGS) if "postgis" in backends else None
    try:
        with tempfile.TemporaryDirectory(prefix="gisapp-bench-tiles-") as tmp:
            for n in (int(s) for s in args.sizes.split(",")):
                print(f"{n:,} permits per layer: generating …", flush=True)
                frames, generator = make_data(n)
                tiles = tile_list(frames, zooms, args.tiles)
                run = {"n": n, "generator": generator, "rows": []}
                for name in backends:
                    url, store = bench_store(name, Path(tmp) / f"tiles-{n}.gpkg", server, "tiles")
                    t = time.perf_counter()
                    store.write(frames, mode="replace", meta={"as_of": "2026-01-01"})
                    print(f"  {name}: loaded in {time.perf_counter() - t:.1f} s", flush=True)
                    if args.filters:
                        row = run_filtered(name, url, frames, zooms, args.clients, per_client, args.tiles,
                                           args.compare, kinds)
                    else:
                        row = run_store(name, url, tiles, zooms, args.clients, per_client)
                    row["load_s"] = time.perf_counter() - t
                    run["rows"].append(row)
                    if name == "postgis":
                        close_pool(url)
                        server.drop_database(url.rsplit("/", 1)[1])
                    else:
                        Path(url).unlink(missing_ok=True)
                results["runs"].append(run)
                del frames
    finally:
        if server is not None:
            server.stop()


def print_table(results: dict) -> None:
    """One line per size and backend: p50/p95 ms per zoom level (per filter kind with ``--filters``)."""
    if any("kinds" in row for run in results["runs"] for row in run["rows"]):
        kinds = list(FILTER_KINDS)
        print(f"filtered tiles z14-z17, p50/p95 ms at {results['clients']} clients (first: a tile not taken apart "
              "yet; then warm, each request a filter not yet answered for its tile)")
        print(f"{'permits/layer':>13} {'backend':<10}" + "".join(f" {k:>13}" for k in [
            "first", "first_search", "first_day", *kinds]))
        for run in results["runs"]:
            for row in run["rows"]:
                cells = [f"{row['kinds'][k]['p50_ms']:.0f}/{row['kinds'][k]['p95_ms']:.0f}"
                         if row["kinds"].get(k, {}).get("p50_ms") is not None else "—" for k in kinds]
                for at, label in enumerate(("first", "first_search", "first_day")):
                    cold = row.get(label) or {}
                    cells.insert(at, f"{cold['p50_ms']:.0f}/{cold['p95_ms']:.0f}" if cold.get("p50_ms") else "—")
                size = f"{run['n']:,}" if run.get("n") else "existing"
                print(f"{size:>13} {row['backend']:<10}" + "".join(f" {c:>13}" for c in cells))
        return
    zooms = sorted({z["z"] for run in results["runs"] for row in run["rows"] for z in row["zooms"]})
    print(f"{'permits/layer':>13} {'backend':<10}" + "".join(f" {f'z{z} p50/p95 ms':>16}" for z in zooms)
          + f"   ({results['clients']} clients)")
    for run in results["runs"]:
        for row in run["rows"]:
            cells = []
            for z in zooms:
                s = next((i for i in row["zooms"] if i["z"] == z), None)
                cells.append("—" if s is None or s["p50_ms"] is None else f"{s['p50_ms']:.0f}/{s['p95_ms']:.0f}")
            size = f"{run['n']:,}" if run.get("n") else "existing"
            print(f"{size:>13} {row['backend']:<10}" + "".join(f" {c:>16}" for c in cells))


if __name__ == "__main__":
    main()
