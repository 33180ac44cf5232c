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
    python -m benchmarks.bench_retile --store city1m.gpkg --store postgresql://…/city1m --tile-cache DIR

With ``--store`` (repeatable) the runs use an existing loaded store, each on
a fresh copy (:func:`benchmarks.store_copy`); ``--tile-cache`` keeps each
store's first render (hard links) for the next runs.  A write touching more
than :data:`gisapp.tiles.disk.EAGER_TILES` tiles has them dropped, not
rendered (``--eager-tiles`` changes the bound); the benchmark then asks for
some of them as a request does, built then read from the folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench_store, save_results, store_copy
from benchmarks.bench_postgis import SERVER_SETTINGS, make_data
from gisapp.config import parse_zooms
from gisapp.tiles import disk
from gisapp.tiles.disk import TileDir, render

LAYER = "construction_permits"


def edited(store, keys: np.ndarray, rows: np.ndarray) -> object:
    """The dossiers of ``keys`` at ``rows`` moved by 3 m and given another status (what an officer's save
    changes)."""
    out = store.read_keys(LAYER, list(keys[rows])).reset_index(drop=True)
    out["geometry"] = shapely.transform(out.geometry.values, lambda c: c + 3.0)
    out["status"] = np.where(out["status"].to_numpy() == "PROCESSING", "RESULT_READY", "PROCESSING")
    return out


def first_render(store, tile_dir: TileDir, zooms, cache: Path | None, source: str | None) -> dict:
    """Every tile rendered once: copied from ``cache`` (hard links) when it holds the tiles of ``source``'s
    data, else rendered (and kept there for the next run); ``{"first_render_s", "first_tiles", "cached"}``."""
    kept = None if cache is None or source is None else TileDir(cache, source).root
    if kept is not None and (kept / "state.json").exists():
        shutil.rmtree(tile_dir.root, ignore_errors=True)
        subprocess.run(["cp", "-al", str(kept), str(tile_dir.root)], check=True)
        return {"first_render_s": None, "first_tiles": (tile_dir.state() or {}).get("tiles"), "cached": True}
    t = time.perf_counter()
    first = render(store, tile_dir, zooms)
    out = {"first_render_s": round(time.perf_counter() - t, 1), "first_tiles": first["tiles"], "cached": False}
    if kept is not None:
        shutil.rmtree(kept, ignore_errors=True)
        subprocess.run(["cp", "-al", str(tile_dir.root), str(kept)], check=True)
    return out


def run_backend(name: str, store, zooms, saves: int, upsert: int, tmp: Path, cache: Path | None = None,
                source: str | None = None) -> dict:
    """The first render, then ``saves`` single saves and one ``upsert``-row write, each followed by a render."""
    rng = np.random.default_rng(15)
    tile_dir = TileDir(tmp / f"tiles-{name}", store.url)
    row: dict = {"backend": name, "load": list(os.getloadavg()),
                 **first_render(store, tile_dir, zooms, cache, source)}
    print(f"  {name}: first render {row['first_render_s']} s (cached: {row['cached']}), {row['first_tiles']:,} "
          "tiles", flush=True)
    keys = np.asarray(store.read_arrow(LAYER, fields=["dossier_code"]).column("dossier_code").to_pylist(),
                      dtype=object)
    row["saves"] = []
    for _ in range(saves):
        one = edited(store, keys, rng.integers(0, len(keys), 1))
        write_s, render_s, report = write_and_render(store, tile_dir, zooms, one)
        assert report["incremental"], report
        row["saves"].append({"write_s": round(write_s, 3), "render_s": round(render_s, 3), "tiles": report["tiles"]})
        print(f"  {name}: one save: write {write_s:.3f} s, its {report['tiles']} tiles re-rendered in "
              f"{render_s:.3f} s", flush=True)
    many = edited(store, keys, rng.choice(len(keys), upsert, replace=False))
    write_s, render_s, report = write_and_render(store, tile_dir, zooms, many)
    row["upsert"] = {"rows": upsert, "write_s": round(write_s, 2), "render_s": round(render_s, 2),
                     "tiles": report["tiles"], "dropped": report.get("dropped", 0),
                     "incremental": report["incremental"]}
    print(f"  {name}: {upsert:,}-row upsert: write {write_s:.2f} s, {report['tiles']:,} tiles re-rendered and "
          f"{report.get('dropped', 0):,} dropped (built on request) in {render_s:.2f} s", flush=True)
    row["upsert"]["requests"] = requested(store, tile_dir, zooms, many, report)
    renders = [s["render_s"] for s in row["saves"]]
    row["save_render_median_s"] = round(statistics.median(renders), 3) if renders else None
    row["save_render_max_s"] = max(renders) if renders else None
    row["load_after"] = list(os.getloadavg())
    return row


def requested(store, tile_dir: TileDir, zooms, rows, report: dict, sample: int = 20) -> dict:
    """After an upsert whose tiles were dropped: ``sample`` of them asked for as a request does
    (:func:`gisapp.tiles.disk.shared_tile`, built and kept), then asked again (read from the folder)."""
    from gisapp.tiles import source as tile_source

    if not report.get("dropped"):
        return {}
    boxes = disk.mercator_boxes(shapely.bounds(np.asarray(rows.geometry.values, dtype=object)))
    todo = sorted({(z, x, y) for z in zooms for x, y in disk.boxes_tiles(boxes[:sample], z)})[:sample]
    version = store.version()
    out = {}
    for label in ("first_ms", "again_ms"):
        times = []
        for z, x, y in todo:
            t = time.perf_counter()
            disk.shared_tile(tile_dir, store, version, LAYER, z, x, y,
                             lambda z=z, x=x, y=y: tile_source.tile(store, LAYER, z, x, y), keep=True)
            times.append(1000 * (time.perf_counter() - t))
        out[label] = round(statistics.median(times), 1)
    print(f"  a dropped tile asked for: median {out['first_ms']} ms the first time (built), {out['again_ms']} ms "
          "after (from the folder)", flush=True)
    return out


def write_and_render(store, tile_dir, zooms, frame) -> tuple[float, float, dict]:
    """Upsert ``frame`` into the dossiers, then bring the tile folder up to date: the seconds of each, and the
    render's report."""
    t = time.perf_counter()
    store.write({LAYER: frame}, mode="upsert")
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    report = render(store, tile_dir, zooms)
    return write_s, time.perf_counter() - t, report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000", help="permits per layer, comma-separated")
    parser.add_argument("--zooms", default="14-17")
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--upsert", type=int, default=1000)
    parser.add_argument("--backends", default="gpkg,postgis")
    parser.add_argument("--store", action="append", default=[],
                        help="an existing loaded store (GeoPackage path or PostGIS URL; repeatable) instead of "
                        "generating one: each run works on a fresh copy of it (--sizes is then unused)")
    parser.add_argument("--tile-cache", default=None,
                        help="with --store: a folder keeping each store's first render, copied for the next runs")
    parser.add_argument("--tmp", default=None, help="folder for the copies of --store GeoPackages and the tiles")
    parser.add_argument("--eager-tiles", type=int, default=None,
                        help="render at once up to this many touched tiles, drop the rest (default: "
                        "gisapp.tiles.disk.EAGER_TILES; a huge number renders every touched tile, as before)")
    args = parser.parse_args(argv)
    if args.eager_tiles is not None:
        disk.EAGER_TILES = args.eager_tiles
    zooms = parse_zooms(args.zooms)
    backends = args.backends.split(",")
    results = {"started": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
               "cpus": os.cpu_count(), "load": os.getloadavg(), "zooms": list(zooms), "runs": []}
    if args.store:
        run_existing(args, zooms, results)
        print_table(results)
        save_results("bench_retile", results)
        return
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
                    run["rows"].append(run_backend(name, store, zooms, args.saves, args.upsert, Path(tmp)))
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
    print_table(results)
    save_results("bench_retile", results)


def run_existing(args, zooms, results: dict) -> None:
    """The runs on existing loaded stores (``--store``), each on a fresh copy (:func:`benchmarks.store_copy`)."""
    from gisapp.store import open_store
    from gisapp.store.postgis import display_url

    cache = Path(args.tile_cache) if args.tile_cache else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gisapp-bench-retile-", dir=args.tmp) as tmp:
        for source in args.store:
            name = "postgis" if "://" in source else "gpkg"
            with store_copy(source, Path(tmp), "retile") as url:
                store = open_store(url)
                n = store.count(LAYER)
                print(f"{n:,} dossiers: {name}, a copy of {display_url(source)}", flush=True)
                row = run_backend(name, store, zooms, args.saves, args.upsert, Path(tmp), cache, source)
                results["runs"].append({"n": n, "source": display_url(source), "rows": [row]})


def print_table(results: dict) -> None:
    print(f"{'permits/layer':>13} {'backend':<8} {'first render':>13} {'save → tiles median/max':>24} "
          f"{'upsert → tiles':>15}")
    for run in results["runs"]:
        for row in run["rows"]:
            print(f"{run['n']:>13,} {row['backend']:<8} {row['first_render_s']!s:>11} s "
                  f"{row['save_render_median_s']:>12} / {row['save_render_max_s']} s "
                  f"{row['upsert']['render_s']:>13} s")


if __name__ == "__main__":
    main()
