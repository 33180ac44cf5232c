"""Issue 15, item 1: a write costs what it changes — findings kept current by every write.

``python -m benchmarks.bench_incremental [--sizes 100000] [--backends gpkg,postgis] [--saves 5] [--rows 1000]``

For each size (dossiers and sidewalk permits per layer, from
``benchmarks.bench_postgis.make_data``: the demo generator with its
sidewalks) and backend, the store is loaded and analysed once, then:

- **one feature**: ``--saves`` single-feature writes through
  :func:`gisapp.analysis.incremental.write_with_findings` (a sidewalk permit
  moved onto another's place, a dossier moved, alternately): the seconds
  from the call to the findings current (the write included), median and
  worst, and the share of it spent computing the findings (the issue's goal
  at 1M: under 1 s);
- **upsert import**: a ``--rows``-row GeoJSON file (half stored sidewalk
  permits moved or re-dated, half new ones, scattered over the city)
  imported with :func:`gisapp.importing.prepare.run_import` (what
  ``gisapp import --mode upsert`` and the upload page run), and a second
  file of the same shape imported with the findings left out (the import
  itself).  Beyond the import: the seconds computing the findings plus the
  store's write with them less the write without them (whole-import times
  are printed too, but on a shared machine their noise is larger than the
  difference) (the issue's goal at 1M: under 5 s);
- **check** (sizes up to ``--verify-max``): the stored findings are compared
  with a full analysis run afterwards (same ids).

The issue's size is 1,000,000 (``--sizes 1000000``, one command for a quiet
machine); 100,000 is the default that fits a shared 2-core machine.  With
``--store PATH_OR_URL`` (repeatable) the runs use an existing loaded store
instead, each on a fresh copy (:func:`benchmarks.store_copy`: the file
copied, or ``CREATE DATABASE … TEMPLATE``), analysed first if it never was::

    python -m benchmarks.bench_incremental --store city1m.gpkg --store postgresql://…/city1m --tmp /big/folder
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
import pandas as pd
import shapely
from shapely import affinity

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench_store, save_results, store_copy  # noqa: E402
from benchmarks.bench_postgis import SERVER_SETTINGS, make_data  # noqa: E402
from gisapp import schema  # noqa: E402
from gisapp.analysis import incremental  # noqa: E402
from gisapp.store import open_store  # noqa: E402
from gisapp.store.postgis import display_url  # noqa: E402

S, C = "sidewalk_permits", "construction_permits"


def analyse(url: str) -> float:
    """The full analysis, written with its parameters (what ``gisapp analyze`` leaves); its seconds."""
    from gisapp.analysis.run import analyze_store

    store = open_store(url)
    t = time.perf_counter()
    result, _ = analyze_store(store, incremental.stored_params(store))
    store.write({"findings": result.findings}, mode="replace", meta={"findings": result.params.as_meta()})
    return time.perf_counter() - t


class Timer:
    """Wraps :func:`gisapp.analysis.incremental.findings_for_write` to time it (and to leave it out), and the
    stores' ``write`` to time it."""

    def __init__(self):
        from gisapp.store.gpkg import GeoPackageStore
        from gisapp.store.postgis import PostGISStore

        self.original = incremental.findings_for_write
        self.seconds: list[float] = []
        self.write_seconds: list[float] = []
        self.off = False
        self.classes = (GeoPackageStore, PostGISStore)
        self.writes = {cls: cls.write for cls in self.classes}

    def timed_write(self, cls):
        original = self.writes[cls]

        def write(store, *args, **kw):
            t = time.perf_counter()
            try:
                return original(store, *args, **kw)
            finally:
                self.write_seconds.append(time.perf_counter() - t)
        return write

    def __call__(self, *args, **kw):
        if self.off:
            return None
        t = time.perf_counter()
        out = self.original(*args, **kw)
        self.seconds.append(time.perf_counter() - t)
        return out

    def __enter__(self):
        incremental.findings_for_write = self
        for cls in self.classes:
            cls.write = self.timed_write(cls)
        return self

    def __exit__(self, *exc):
        incremental.findings_for_write = self.original
        for cls in self.classes:
            cls.write = self.writes[cls]


def single_writes(url: str, rng, n: int, timer: Timer) -> dict:
    """``n`` single-feature writes (a permit moved onto another's place, a dossier moved); seconds each."""
    store = open_store(url)
    times, find_s, written = [], [], []
    for k in range(n):
        layer = S if k % 2 == 0 else C
        count = store.count(layer)
        row = store.read(layer, limit=1, offset=int(rng.integers(count)))
        other = store.read(S, limit=1, offset=int(rng.integers(store.count(S)))).geometry.values[0]
        c, t = shapely.centroid(row.geometry.values[0]), shapely.centroid(other)
        row["geometry"] = affinity.translate(row.geometry.values[0], t.x - c.x + rng.uniform(-1, 1),
                                                     t.y - c.y + rng.uniform(-1, 1) + (0 if layer == S else 8))
        timer.seconds.clear()
        started = time.perf_counter()
        change = incremental.write_with_findings(store, {layer: row})
        times.append(time.perf_counter() - started)
        find_s.append(sum(timer.seconds))
        written.append(0 if change is None else len(change.findings))
    return {"writes": n, "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
            "findings_median_s": round(statistics.median(find_s), 3), "findings_written": written}


def import_file(url: str, rng, rows: int, path: Path, tag: str) -> None:
    """A ``rows``-row sidewalk-permit GeoJSON (WGS84): half stored permits moved or re-dated, half new ones."""
    store = open_store(url)
    count = store.count(S)
    picks = np.sort(rng.choice(count, size=rows, replace=False))
    table = store.read_arrow(S, fields=["permit_no"])
    keys = np.asarray(table.column("permit_no").to_pylist(), dtype=object)[picks]
    frame = store.read_keys(S, list(keys)).reset_index(drop=True)
    half = rows // 2
    geoms = np.asarray(frame.geometry.values, dtype=object)
    shift = rng.uniform(-2.0, 2.0, size=(rows, 2))
    moved = np.flatnonzero((np.arange(rows) % 2 == 0) | (np.arange(rows) >= half))  # even rows and the new ones
    geoms[moved] = [affinity.translate(g, dx, dy) for g, (dx, dy) in zip(geoms[moved], shift[moved], strict=True)]
    dated = np.flatnonzero(np.arange(rows) % 2 == 1)
    frame.loc[dated, "end_on"] = pd.to_datetime(frame.loc[dated, "end_on"]) + pd.Timedelta(days=20)
    frame.loc[half:, "permit_no"] = [f"VH-2099-{tag}{k:06d}" for k in range(rows - half)]
    frame["geometry"] = geoms
    for name in ("start_on", "end_on"):
        frame[name] = pd.to_datetime(frame[name]).dt.strftime("%Y-%m-%d")
    frame.to_crs(schema.WEB_CRS).to_file(path, driver="GeoJSON")


def upsert_import(url: str, rng, rows: int, tmp: Path, timer: Timer, *, findings: bool) -> dict:
    """A ``rows``-row upsert import (``findings``: with the findings it changes, else without): its seconds."""
    from gisapp.domain import Calendar
    from gisapp.importing.prepare import run_import

    label = "with_findings" if findings else "without_findings"
    path = tmp / f"import-{label}.geojson"
    import_file(url, rng, rows, path, "B" if findings else "A")
    store = open_store(url)
    timer.seconds.clear()
    timer.write_seconds.clear()
    timer.off = not findings
    try:
        started = time.perf_counter()
        report = run_import(store, S, path, calendar=Calendar(), mode="upsert")
        seconds = time.perf_counter() - started
    finally:
        timer.off = False
    out = {f"{label}_s": round(seconds, 2), f"{label}_accepted": report.accepted,
           f"{label}_write_s": round(sum(timer.write_seconds), 2)}
    if findings:
        out["findings_compute_s"] = round(sum(timer.seconds), 2)
    return out


def verify(url: str) -> dict:
    """The stored findings against a full analysis run now: how many ids only one of them has (0 and 0)."""
    from gisapp.analysis.run import analyze_store

    store = open_store(url)
    full = analyze_store(store, incremental.stored_params(store))[0].findings
    table = store.read_arrow("findings", fields=["finding_id"])
    stored = set(table.column("finding_id").to_pylist()) if table is not None else set()
    want = set(full["finding_id"])
    return {"stored": len(stored), "full": len(want), "only_stored": len(stored - want),
            "only_full": len(want - stored)}


def run_store(row: dict, url: str, args, tmp: Path, timer: Timer) -> None:
    """The single writes, the upsert imports and the check on the loaded, analysed store ``url``, into ``row``."""
    name, n = row["backend"], row["n"]
    rng = np.random.default_rng(15)
    row["load"] = list(os.getloadavg())
    row["single"] = single_writes(url, rng, args.saves, timer)
    print(f"  {name}: one feature → findings current: median {row['single']['median_s']} s, "
          f"worst {row['single']['max_s']} s (findings {row['single']['findings_median_s']} s)", flush=True)
    row["import"] = upsert_import(url, rng, args.rows, tmp, timer, findings=True)
    if n <= args.verify_max:  # before the import without findings, which leaves them stale
        row["check"] = verify(url)
        print(f"  {name}: against a full analysis: {row['check']}", flush=True)
    row["import"].update(upsert_import(url, rng, args.rows, tmp, timer, findings=False))
    imp = row["import"]
    # beyond the import: computing the findings, and writing them with the rows (the store's
    # write with them against the write of the same number of rows without them)
    imp["beyond_import_s"] = round(imp["findings_compute_s"] + imp["with_findings_write_s"]
                                   - imp["without_findings_write_s"], 2)
    print(f"  {name}: {args.rows}-row upsert import {imp['with_findings_s']} s with the findings, "
          f"{imp['without_findings_s']} s without; beyond the import {imp['beyond_import_s']} s: "
          f"findings computed in {imp['findings_compute_s']} s, the write "
          f"{imp['with_findings_write_s']} s with them against {imp['without_findings_write_s']} s", flush=True)
    row["load_after"] = list(os.getloadavg())


def run_existing(sources: list[str], args, results: dict, timer: Timer) -> None:
    """The runs on existing loaded stores (``--store``), each on a fresh copy (:func:`benchmarks.store_copy`);
    a store not analysed yet is analysed first (on the copy)."""
    with tempfile.TemporaryDirectory(prefix="gisapp-bench-incremental-", dir=args.tmp) as tmp:
        for source in sources:
            name = "postgis" if "://" in source else "gpkg"
            with store_copy(source, Path(tmp), "incremental") as url:
                store = open_store(url)
                analysis_s = None if store.meta().get("findings") else analyse(url)
                row = {"backend": name, "n": store.count(S), "source": display_url(source),
                       "analysis_s": analysis_s and round(analysis_s, 1)}
                print(f"  {name}: copy of {row['source']}, {row['n']:,} sidewalk permits", flush=True)
                run_store(row, url, args, Path(tmp), timer)
                results["runs"].append(row)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000", help="permits and dossiers per layer, comma-separated "
                        "(the issue's goal is 1000000)")
    parser.add_argument("--backends", default="gpkg,postgis")
    parser.add_argument("--saves", type=int, default=6, help="single-feature writes")
    parser.add_argument("--rows", type=int, default=1000, help="rows of the upsert import")
    parser.add_argument("--verify-max", type=int, default=100_000,
                        help="compare with a full analysis afterwards up to this size")
    parser.add_argument("--store", action="append", default=[],
                        help="an existing loaded store (GeoPackage path or PostGIS URL; repeatable) instead of "
                        "generating one: each run works on a fresh copy of it (--sizes is then unused)")
    parser.add_argument("--tmp", default=None, help="folder for the copies of --store GeoPackages")
    args = parser.parse_args(argv)
    if args.store:
        results = {"started": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
                   "cpus": os.cpu_count(), "load": os.getloadavg(), "runs": []}
        with Timer() as timer:
            run_existing(args.store, args, results, timer)
        print_table(results)
        save_results("bench_incremental", results)
        return
    from gisapp.store.postgis import close_pool
    from tests.pg_server import start_server

    backends = args.backends.split(",")
    results = {"started": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
               "cpus": os.cpu_count(), "load": os.getloadavg(), "runs": []}
    server = start_server(SERVER_SETTINGS) if "postgis" in backends else None
    try:
        with tempfile.TemporaryDirectory(prefix="gisapp-bench-incremental-") as tmp, Timer() as timer:
            for n in (int(s) for s in args.sizes.split(",")):
                print(f"{n:,} per layer: generating …", flush=True)
                frames, generator = make_data(n)
                for name in backends:
                    url, store = bench_store(name, Path(tmp) / f"incremental-{n}.gpkg", server, "incremental")
                    t = time.perf_counter()
                    store.write(frames, mode="replace", meta={"as_of": "2026-01-01"})
                    load_s = time.perf_counter() - t
                    analysis_s = analyse(url)
                    print(f"  {name}: loaded in {load_s:.1f} s, analysed in {analysis_s:.1f} s", flush=True)
                    row = {"backend": name, "n": n, "generator": generator, "load_s": round(load_s, 1),
                           "analysis_s": round(analysis_s, 1)}
                    run_store(row, url, args, Path(tmp), timer)
                    results["runs"].append(row)
                    if name == "postgis":
                        close_pool(url)
                        server.drop_database(url.rsplit("/", 1)[1])
                del frames
    finally:
        if server is not None:
            server.stop()
    print_table(results)
    save_results("bench_incremental", results)


def print_table(results: dict) -> None:
    print("\nfindings kept current by every write (issue 15, item 1; goals at 1M: < 1 s and < 5 s)")
    print(f"{'backend':8} {'n':>9} {'one feature s':>14} {'worst s':>8} {'import s':>9} {'without s':>10} "
          f"{'beyond s':>9}")
    for r in results["runs"]:
        print(f"{r['backend']:8} {r['n']:>9,} {r['single']['median_s']:>14} {r['single']['max_s']:>8} "
              f"{r['import']['with_findings_s']:>9} {r['import']['without_findings_s']:>10} "
              f"{r['import']['beyond_import_s']:>9}")


if __name__ == "__main__":
    main()
