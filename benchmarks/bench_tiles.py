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

Usage::

    python -m benchmarks.bench_tiles [--sizes 100000] [--zooms 14,15,16,17] [--clients 8]
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

from benchmarks import loadgen
from benchmarks.bench_postgis import SERVER_SETTINGS, app_servers, make_data
from gisapp import geo, schema
from gisapp.store import open_store
from gisapp.store.gpkg import GeoPackageStore
from gisapp.tiles import mvt as tiles

OUT_DIR = Path(__file__).resolve().parent / "out"
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
    args = parser.parse_args(argv)
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
            run["rows"].append(run_store(name, url, tiles, zooms, args.clients, per_client))
        results["runs"].append(run)
    else:
        _generated(args, zooms, per_client, results)
    print_table(results)
    OUT_DIR.mkdir(exist_ok=True)
    out = OUT_DIR / f"bench_tiles_{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out.relative_to(ROOT)}")


def _generated(args, zooms, per_client: int, results: dict) -> None:
    from gisapp.store.postgis import PostGISStore, close_pool
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
                    if name == "gpkg":
                        url = str(Path(tmp) / f"tiles-{n}.gpkg")
                        store = GeoPackageStore(url, must_exist=False)
                    else:
                        url = server.url(server.create_database("tiles"))
                        store = PostGISStore(url, must_exist=False)
                    t = time.perf_counter()
                    store.write(frames, mode="replace", meta={"as_of": "2026-01-01"})
                    print(f"  {name}: loaded in {time.perf_counter() - t:.1f} s", flush=True)
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
    """One line per size and backend: p50/p95 ms per zoom level."""
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
