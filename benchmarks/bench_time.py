"""Benchmark of issue 16's day slider and change feed, on the GeoPackage and the PostGIS store.

For each size (default 100,000 permits per layer; never run 1M here) it
generates the data (:func:`benchmarks.bench_postgis.make_data`), loads it
into each backend (a bulk replace: one ``replace`` entry per layer in the
change log), then upserts ``--log-rows`` dossiers in ``--batches`` writes
(one change-log entry each; the write time with its log is reported), and
serves the store with ``gisapp serve --workers 2``
(:func:`benchmarks.bench_postgis.app_servers`, no tile pre-rendering):

- day-filtered vector tiles (``?day=``, built on request, never from the
  shared folder) of sidewalk permits and dossiers at z14–z16 under
  ``--clients`` concurrent clients: p50/p95;
- ``/data/count?day=`` (the slider's count: dossiers, sidewalk permits and
  findings active that day): p50/p95;
- ``/api/changes`` pages of 100 and 1,000 entries at random cursors of a log
  of ``--log-rows`` entries: p50/p95.

Usage::

    python -m benchmarks.bench_time [--sizes 100000] [--clients 8] [--log-rows 100000]
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

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench_store, loadgen, save_results
from benchmarks.bench_postgis import SERVER_SETTINGS, app_servers, make_data
from benchmarks.bench_tiles import tile_list, tile_load_test
from gisapp.api.changes import encode_cursor

STATUSES = ("PROCESSING", "SUPPLEMENT_REQUESTED", "RESULT_READY", "RETURNED")


def busy_day(frames: dict) -> str:
    """The day most sidewalk permits are active on (the slider's worst case)."""
    side = frames["sidewalk_permits"]
    days = pd.date_range(side["start_on"].min(), side["end_on"].max(), freq="7D")
    counts = [int(((side["start_on"] <= d) & (side["end_on"] >= d)).sum()) for d in days]
    return days[int(np.argmax(counts))].date().isoformat()


def log_writes(store, frames: dict, rows: int, batches: int) -> list[float]:
    """Upsert ``rows`` dossiers (a new status each) in ``batches`` writes; the seconds each write took."""
    permits = frames["construction_permits"]
    rng = np.random.default_rng(3)
    pick = rng.choice(len(permits), size=min(rows, len(permits)), replace=False)
    times = []
    for i, part in enumerate(np.array_split(pick, batches)):
        batch = permits.iloc[part].copy()
        batch["status"] = STATUSES[i % len(STATUSES)]
        t = time.perf_counter()
        store.write({"construction_permits": batch}, mode="upsert")
        times.append(time.perf_counter() - t)
    return times


def run_store(name: str, url: str, store, frames: dict, args, zooms) -> dict:
    """Writes with their log, then the served figures of one store."""
    row: dict = {"backend": name}
    t = time.perf_counter()
    store.write(frames, mode="replace", meta={"as_of": "2026-01-01"})
    row["load_s"] = round(time.perf_counter() - t, 1)
    writes = log_writes(store, frames, args.log_rows, args.batches)
    page = store.changes(0, 0)
    row.update(upsert_s=[round(w, 2) for w in writes], log_entries=page.last)
    print(f"  {name}: loaded in {row['load_s']} s; {args.batches} upserts of {args.log_rows // args.batches:,} "
          f"dossiers with their log entries: {', '.join(f'{w:.1f}' for w in writes)} s; log {page.last:,} entries",
          flush=True)
    day = busy_day(frames)
    row["day"] = day
    per_client = max(3, args.requests // args.clients)
    rng = np.random.default_rng(7)
    with app_servers(url, settings={"GISAPP_TILE_WARM": "none"}) as bases:
        tile_load_test(bases, tile_list(frames, zooms, 10)[:20], 2, 5, query={"day": day})  # warm up
        row["tiles"] = []
        for layer in ("sidewalk_permits", "construction_permits"):
            for z in zooms:
                level = [tl for tl in tile_list(frames, (z,), args.tiles)]
                stats = {"layer": layer, "z": z,
                         **tile_load_test(bases, level, args.clients, per_client, layer=layer, query={"day": day})}
                row["tiles"].append(stats)
                print(f"  {name}: {layer} z{z} day={day}: p50 {stats['p50_ms']:.0f} ms p95 {stats['p95_ms']:.0f} ms "
                      f"({stats['requests']} requests, {stats['failures']} failed, {stats['empty']} empty)", flush=True)
        days = [(dt.date.fromisoformat(day) + dt.timedelta(days=int(d))).isoformat() for d in rng.integers(-60, 60, 40)]
        count = loadgen.run_threads(bases, [f"/data/count?day={d}" for d in days], args.clients, per_client)
        row["count"] = count
        print(f"  {name}: /data/count?day=: p50 {count['p50_ms']:.0f} ms p95 {count['p95_ms']:.0f} ms", flush=True)
        row["changes"] = []
        for limit in (100, 1000):
            cursors = [encode_cursor(page.log_id, int(s)) for s in rng.integers(0, max(1, page.last - limit), 50)]
            paths = [f"/api/changes?after={c}&limit={limit}" for c in cursors]
            stats = {"limit": limit, **loadgen.run_threads(bases, paths, args.clients, per_client,
                                                           inspect=lambda body: len(json.loads(body)["changes"]))}
            row["changes"].append(stats)
            print(f"  {name}: /api/changes limit={limit}: p50 {stats['p50_ms']:.0f} ms p95 {stats['p95_ms']:.0f} ms "
                  f"({stats['failures']} failed, {stats['mean_inspected'] or 0:.0f} entries a page)", flush=True)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000", help="permits per layer, comma-separated")
    parser.add_argument("--zooms", default="14,15,16")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=120, help="requests per measurement (all clients)")
    parser.add_argument("--tiles", type=int, default=40, help="distinct tiles per zoom level")
    parser.add_argument("--log-rows", type=int, default=100_000, help="dossiers upserted (change-log entries)")
    parser.add_argument("--batches", type=int, default=4, help="writes the upserts are split into")
    parser.add_argument("--backends", default="gpkg,postgis")
    args = parser.parse_args(argv)
    zooms = [int(z) for z in args.zooms.split(",")]
    results = {"started": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
               "cpus": os.cpu_count(), "clients": args.clients, "runs": []}
    backends = args.backends.split(",")
    server = None
    if "postgis" in backends:
        from tests.pg_server import start_server

        server = start_server(SERVER_SETTINGS)
    try:
        with tempfile.TemporaryDirectory(prefix="gisapp-bench-time-") as tmp:
            for n in (int(s) for s in args.sizes.split(",")):
                print(f"{n:,} permits per layer: generating …", flush=True)
                frames, generator = make_data(n)
                run = {"n": n, "generator": generator, "rows": []}
                for name in backends:
                    url, store = bench_store(name, Path(tmp) / f"time-{n}.gpkg", server, "time")
                    run["rows"].append(run_store(name, url, store, frames, args, zooms))
                    if name == "postgis":
                        from gisapp.store.postgis import close_pool

                        assert server is not None
                        close_pool(url)
                        server.drop_database(url.rsplit("/", 1)[1])
                    else:
                        Path(url).unlink(missing_ok=True)
                results["runs"].append(run)
    finally:
        if server is not None:
            server.stop()
    print_table(results)
    save_results("bench_time", results)


def print_table(results: dict) -> None:
    """One line per size and backend: p50/p95 ms of each measurement."""
    for run in results["runs"]:
        for row in run["rows"]:
            cells = [f"{t['layer'][:8]} z{t['z']} {t['p50_ms']:.0f}/{t['p95_ms']:.0f}" for t in row["tiles"]]
            cells.append(f"count {row['count']['p50_ms']:.0f}/{row['count']['p95_ms']:.0f}")
            cells += [f"changes×{c['limit']} {c['p50_ms']:.0f}/{c['p95_ms']:.0f}" for c in row["changes"]]
            print(f"{run['n']:>9,} {row['backend']:<8} " + " · ".join(cells) + f"   (p50/p95 ms, {results['clients']} "
                  "clients)")


if __name__ == "__main__":
    main()
