"""Benchmark: incremental tiles — one saved feature, then a 1,000-row upsert, and the tiles they touched re-rendered.

For each size (default 100,000 permits per layer) it generates the data with
:func:`benchmarks.bench_postgis.make_data`, loads it into each backend (a
GeoPackage file; PostGIS on a private server the benchmark starts), renders
every tile at ``--zooms`` once (:func:`gisapp.tiles.disk.render`, what
``gisapp serve``'s renderer does on a new store), then ``--saves`` times
saves one dossier (moved 3 m, its status changed: an upsert of one row, as
the map's save does) and times :func:`gisapp.tiles.disk.render` bringing the
folder up to date (reading the change log, re-rendering the touched tiles at
every zoom); then one upsert of ``--upsert`` dossiers the same way.  The
goal of issue 15: one saved feature → its tiles re-rendered in under 1 s at
1,000,000 per layer.  The render runs in this process at normal priority
(``serve``'s runs at low priority beside the server).

Usage::

    python -m benchmarks.bench_retile [--sizes 100000] [--zooms 14-17] [--saves 5] [--upsert 1000]
    python -m benchmarks.bench_retile --sizes 1000000        # the issue's case (long: the first render)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench_store, save_results
from benchmarks.bench_postgis import SERVER_SETTINGS, make_data
from gisapp.config import parse_zooms
from gisapp.tiles.disk import TileDir, render

LAYER = "construction_permits"


def edited(frame, rows: np.ndarray, rng) -> object:
    """``rows`` of the permits frame moved by 3 m and given another status (what an officer's save changes)."""
    out = frame.iloc[rows].copy()
    out["geometry"] = shapely.transform(out.geometry.values, lambda c: c + 3.0)
    out["status"] = np.where(out["status"].to_numpy() == "PROCESSING", "RESULT_READY", "PROCESSING")
    return out


def run_backend(name: str, store, frames, zooms, saves: int, upsert: int, tmp: Path) -> dict:
    """The first render, then ``saves`` single saves and one ``upsert``-row write, each followed by a render."""
    rng = np.random.default_rng(15)
    tile_dir = TileDir(tmp / f"tiles-{name}", store.url)
    t = time.perf_counter()
    first = render(store, tile_dir, zooms)
    row: dict = {"backend": name, "first_render_s": round(time.perf_counter() - t, 1), "first_tiles": first["tiles"]}
    print(f"  {name}: first render {row['first_render_s']} s, {first['tiles']:,} tiles", flush=True)
    permits = frames[LAYER]
    row["saves"] = []
    for _ in range(saves):
        one = edited(permits, rng.integers(0, len(permits), 1), rng)
        t = time.perf_counter()
        store.write({LAYER: one}, mode="upsert")
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        report = render(store, tile_dir, zooms)
        render_s = time.perf_counter() - t
        assert report["incremental"], report
        row["saves"].append({"write_s": round(write_s, 3), "render_s": round(render_s, 3), "tiles": report["tiles"]})
        print(f"  {name}: one save: write {write_s:.3f} s, its {report['tiles']} tiles re-rendered in "
              f"{render_s:.3f} s", flush=True)
    many = edited(permits, rng.choice(len(permits), upsert, replace=False), rng)
    t = time.perf_counter()
    store.write({LAYER: many}, mode="upsert")
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    report = render(store, tile_dir, zooms)
    render_s = time.perf_counter() - t
    row["upsert"] = {"rows": upsert, "write_s": round(write_s, 2), "render_s": round(render_s, 2),
                     "tiles": report["tiles"], "incremental": report["incremental"]}
    print(f"  {name}: {upsert:,}-row upsert: write {write_s:.2f} s, {report['tiles']:,} tiles re-rendered in "
          f"{render_s:.2f} s", flush=True)
    renders = [s["render_s"] for s in row["saves"]]
    row["save_render_median_s"] = round(statistics.median(renders), 3) if renders else None
    row["save_render_max_s"] = max(renders) if renders else None
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000", help="permits per layer, comma-separated")
    parser.add_argument("--zooms", default="14-17")
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--upsert", type=int, default=1000)
    parser.add_argument("--backends", default="gpkg,postgis")
    args = parser.parse_args(argv)
    zooms = parse_zooms(args.zooms)
    backends = args.backends.split(",")
    results = {"started": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
               "cpus": os.cpu_count(), "load": os.getloadavg(), "zooms": list(zooms), "runs": []}
    from gisapp.store.postgis import close_pool
    from tests.pg_server import start_server

    server = start_server(SERVER_SETTINGS) if "postgis" in backends else None
    try:
        with tempfile.TemporaryDirectory(prefix="gisapp-bench-retile-") as tmp:
            for n in (int(s) for s in args.sizes.split(",")):
                print(f"{n:,} permits per layer: generating …", flush=True)
                frames, generator = make_data(n)
                run = {"n": n, "generator": generator, "rows": []}
                for name in backends:
                    url, store = bench_store(name, Path(tmp) / f"retile-{n}.gpkg", server, "retile")
                    store.write(frames, mode="replace", meta={"as_of": "2026-01-01"})
                    run["rows"].append(run_backend(name, store, frames, zooms, args.saves, args.upsert, Path(tmp)))
                    if name == "postgis":
                        close_pool(url)
                        assert server is not None
                        server.drop_database(url.rsplit("/", 1)[1])
                    else:
                        Path(url).unlink(missing_ok=True)
                results["runs"].append(run)
                del frames
    finally:
        if server is not None:
            server.stop()
    print(f"{'permits/layer':>13} {'backend':<8} {'first render':>13} {'save → tiles median/max':>24} "
          f"{'upsert → tiles':>15}")
    for run in results["runs"]:
        for row in run["rows"]:
            print(f"{run['n']:>13,} {row['backend']:<8} {row['first_render_s']:>11} s "
                  f"{row['save_render_median_s']:>12} / {row['save_render_max_s']} s "
                  f"{row['upsert']['render_s']:>13} s")
    save_results("bench_retile", results)


if __name__ == "__main__":
    main()
