"""Benchmark of the overlap analysis (:func:`gisapp.analysis.overlaps.find_overlaps`).

Synthetic data, generated with numpy in seconds even at a million features:
construction parcels (rotated rectangles 5-12 m × 12-25 m) spread over the
area, sidewalk-use strips (half of them in front of a parcel, half anywhere),
random dates over four years, and two ward grids (one in force until
2025-06-30, a coarser one from 2025-07-01).  Densities: the district
(35 km², Cẩm Lệ) and the city (3,500 km²).

Each (size, density) runs in its own subprocess so that its peak memory
(``ru_maxrss``: generation plus analysis) is its own; the subprocess gets an
address-space limit (``--mem-limit-gb``) and a time limit so that a run too
big for the machine fails alone.  Wall time and CPU time (all threads) are
both reported, with the load average at the start: on a shared machine the
wall time depends on the neighbours.  Results are printed as a table and
written as JSON to ``benchmarks/out/``.

Beside each analysis it times the plain way, in the same process on the
same data: ``geopandas.sjoin(predicate="dwithin")`` of the sidewalk permits
with the parcels, then the works-period date filter (what a merge candidate
is; the analysis finds every other kind too), and prints the ratio.  And the
analysis of the same layers handed over as WKB, the parcels and permits as
``gisapp analyze`` reads them (:func:`gisapp.analysis.run.read_layer` with
``wkb``: shapely objects made only where GEOS must look): ``wkb s``, its CPU
and its own ratio to the same plain way (``wkb``).

``--stores gpkg,postgis`` measures the issue's other figures on full-field
layers (:func:`benchmarks.bench_postgis.generate`, ``--store-sizes`` permits
per layer): the load of both layers and the wards into each store
(``store.write``, mode replace) and ``gisapp analyze`` end to end (a fresh
process: read the layers, analyse, write the findings), the best of
``--repeat``; PostGIS on a private server (``tests/pg_server.py``).

Usage::

    python -m benchmarks.bench_analysis --sizes 10000,100000,1000000 --density both
    python -m benchmarks.bench_analysis --full      # the issue's 1M case: city core, both stores
    python -m benchmarks.bench_analysis --stages copy.gpkg  # the stages of gisapp analyze on a copy of a store
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

#: Area of each density, in km².
DENSITIES = {"district": 35.0, "city": 3500.0}
#: Lower-left corner of the synthetic area (EPSG:5899, near Cẩm Lệ).
ORIGIN = (540_000.0, 1_760_000.0)
#: Ward grids (columns, rows) before and after 1 Jul 2025.
WARD_GRIDS = {"district": ((3, 2), (3, 1)), "city": ((8, 8), (5, 5))}
FIRST_DAY = np.datetime64("2022-01-01")
SPAN_DAYS = 4 * 365
OUT_DIR = Path(__file__).resolve().parent / "out"


def rectangles(cx, cy, width, height, angle):
    """Rotated rectangles (centre, size, angle in radians) as single-part MultiPolygons, vectorised.

    MultiPolygons because that is what the store gives the analysis (the
    layers are MultiPolygon layers).
    """
    import shapely

    dx = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])
    dy = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])
    x = dx[None, :] * width[:, None]
    y = dy[None, :] * height[:, None]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    coords = np.stack([cx[:, None] + x * cos - y * sin, cy[:, None] + x * sin + y * cos], axis=-1)
    return shapely.multipolygons(shapely.polygons(coords).reshape(-1, 1))


def _ids(prefix: str, n: int) -> np.ndarray:
    """``prefix`` followed by a 7-digit number, for 0..n-1."""
    return np.strings.add(prefix, np.strings.zfill(np.arange(n).astype(str), 7)).astype(object)


def _dates(days: np.ndarray) -> np.ndarray:
    """Int day offsets from ``FIRST_DAY`` (negative: missing) as datetime64[ms]."""
    out = (FIRST_DAY + np.maximum(days, 0).astype("timedelta64[D]")).astype("datetime64[ms]")
    return np.where(days < 0, np.datetime64("NaT"), out)


def _ward_grid(size: float, cols: int, rows: int, codes: np.ndarray):
    """A ``cols`` × ``rows`` grid of square-ish wards over the area, with their codes."""
    import shapely

    xs = ORIGIN[0] + np.linspace(0, size, cols + 1)
    ys = ORIGIN[1] + np.linspace(0, size, rows + 1)
    gx, gy = np.meshgrid(np.arange(cols), np.arange(rows), indexing="ij")
    gx, gy = gx.ravel(), gy.ravel()
    return shapely.box(xs[gx], ys[gy], xs[gx + 1], ys[gy + 1]), codes[: cols * rows]


def generate(n: int, density: str, seed: int = 0):
    """(construction, sidewalk, wards) GeoDataFrames with ``n`` permits per layer."""
    import geopandas as gpd
    import pandas as pd

    rng = np.random.default_rng(seed)
    size = np.sqrt(DENSITIES[density]) * 1000.0
    # construction parcels
    cx = ORIGIN[0] + rng.uniform(0, size, n)
    cy = ORIGIN[1] + rng.uniform(0, size, n)
    pw, ph = rng.uniform(5, 12, n), rng.uniform(12, 25, n)
    pa = rng.uniform(0, np.pi / 2, n)
    parcels = rectangles(cx, cy, pw, ph, pa)
    received = rng.integers(0, SPAN_DAYS, n)
    issued = np.where(rng.random(n) < 0.75, received + rng.integers(10, 45, n), -1)
    works = np.where(issued >= 0, issued, received)

    # wards: two grids, the second (from 2025-07-01) reusing the first codes
    (c1, r1), (c2, r2) = WARD_GRIDS[density]
    codes = np.array([f"2{k:04d}" for k in range(max(c1 * r1, c2 * r2))], dtype=object)
    old, old_codes = _ward_grid(size, c1, r1, codes)
    new, new_codes = _ward_grid(size, c2, r2, codes)
    cut = (np.datetime64("2025-07-01") - FIRST_DAY).astype(int)
    col1 = np.minimum(((cx - ORIGIN[0]) / size * c1).astype(int), c1 - 1)
    row1 = np.minimum(((cy - ORIGIN[1]) / size * r1).astype(int), r1 - 1)
    col2 = np.minimum(((cx - ORIGIN[0]) / size * c2).astype(int), c2 - 1)
    row2 = np.minimum(((cy - ORIGIN[1]) / size * r2).astype(int), r2 - 1)
    declared = np.where(received < cut, codes[col1 * r1 + row1], codes[col2 * r2 + row2])
    wrong = rng.random(n) < 0.02
    declared[wrong] = codes[rng.integers(0, c1 * r1, int(wrong.sum()))]
    dossier = _ids("XD-", n)

    # sidewalk strips: half in front of a parcel, half anywhere
    front = rng.random(n) < 0.5
    k = rng.integers(0, n, n)
    used = rng.uniform(0.5, 2.5, n)
    width = rng.uniform(3.0, 6.0, n)
    length = rng.uniform(3.0, 15.0, n)
    gap = rng.uniform(0.0, 6.0, n)
    along = rng.uniform(-0.5, 0.5, n) * np.maximum(pw[k] - length, 0)
    across = -ph[k] / 2 - gap - used / 2
    ang = np.where(front, pa[k], rng.uniform(0, np.pi / 2, n))
    sx = np.where(front, cx[k] + along * np.cos(ang) - across * np.sin(ang), ORIGIN[0] + rng.uniform(0, size, n))
    sy = np.where(front, cy[k] + along * np.sin(ang) + across * np.cos(ang), ORIGIN[1] + rng.uniform(0, size, n))
    strips = rectangles(sx, sy, length, used, ang)
    start = np.where(front, works[k] + rng.integers(-30, 330, n), rng.integers(0, SPAN_DAYS, n))
    start = np.maximum(start, 0)
    end = start + rng.integers(0, 90, n)
    link = np.where(front & (rng.random(n) < 0.4), dossier[k], None)

    def text(values):
        """An object column, as the store returns text."""
        return pd.Series(np.asarray(values, dtype=object), dtype=object)

    construction = gpd.GeoDataFrame({
        "dossier_code": text(dossier), "ward_code": text(declared),
        "received_on": _dates(received), "issued_on": _dates(issued),
    }, geometry=parcels, crs="EPSG:5899")
    sidewalk = gpd.GeoDataFrame({
        "permit_no": text(_ids("VH-", n)), "ward_code": text(declared[k]),
        "start_on": _dates(start), "end_on": _dates(end),
        "sidewalk_width_m": width, "used_width_m": used, "construction_dossier_code": text(link),
    }, geometry=strips, crs="EPSG:5899")
    m1, m2 = len(old_codes), len(new_codes)
    wards = gpd.GeoDataFrame({
        "ward_key": text(np.concatenate([np.strings.add(old_codes.astype(str), "-2020"),
                                         np.strings.add(new_codes.astype(str), "-2025")])),
        "ward_code": text(np.concatenate([old_codes, new_codes])),
        "name": text(np.concatenate([old_codes, new_codes])),
        "valid_from": pd.to_datetime(["2020-01-01"] * m1 + ["2025-07-01"] * m2),
        "valid_to": pd.to_datetime(["2025-06-30"] * m1 + [None] * m2),
    }, geometry=np.concatenate([old, new]), crs="EPSG:5899")
    return construction, sidewalk, wards


def run_one(n: int, density: str, repeat: int = 1, seed: int = 0) -> dict:
    """Generate one data set, analyse it ``repeat`` times; time, memory and counts."""
    from gisapp.analysis.overlaps import AnalysisParams, find_overlaps

    started = time.perf_counter()
    construction, sidewalk, wards = generate(n, density, seed)
    generated = time.perf_counter() - started
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runs = []
    load = os.getloadavg()[0]
    for _ in range(repeat):
        t, cpu = time.perf_counter(), time.process_time()
        result = find_overlaps(construction, sidewalk, wards, AnalysisParams())
        runs.append((time.perf_counter() - t, time.process_time() - cpu, result.timings))
    best, best_cpu, stages = min(runs, key=lambda r: r[0])
    wkb_frames = [as_wkb(frame) for frame in (construction, sidewalk)]
    wkb_runs = []
    for _ in range(repeat):
        t, cpu = time.perf_counter(), time.process_time()
        find_overlaps(*wkb_frames, wards, AnalysisParams())
        wkb_runs.append((time.perf_counter() - t, time.process_time() - cpu))
    wkb_best, wkb_cpu = min(wkb_runs)
    del wkb_frames
    counts = result.rows["kind"].value_counts().to_dict()
    n_findings, n_skipped = len(result.rows), len(result.skipped)
    peak_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # before the plain way's
    del result
    plain = [plain_sjoin(construction, sidewalk) for _ in range(max(1, min(repeat, 2)))]
    sjoin_s = min(p[0] for p in plain)
    return {
        "sjoin_s": round(sjoin_s, 3), "sjoin_pairs": plain[0][1], "ratio": round(sjoin_s / best, 2),
        "ratio_wkb": round(sjoin_s / wkb_best, 2), "load_average_at_end": round(os.getloadavg()[0], 2),
        "n": n, "density": density, "area_km2": DENSITIES[density], "seed": seed,
        "generate_s": round(generated, 3), "analysis_s": round(best, 3), "analysis_cpu_s": round(best_cpu, 3),
        "analysis_wkb_s": round(wkb_best, 3), "analysis_wkb_cpu_s": round(wkb_cpu, 3),
        "analysis_wkb_runs_s": [round(r[0], 3) for r in wkb_runs],
        "analysis_runs_s": [round(r[0], 3) for r in runs], "load_average_at_start": round(load, 2),
        "stages_s": {k: round(v, 3) for k, v in stages.items()},
        "peak_rss_mb": peak_mb,
        "rss_after_generate_mb": round(rss_before / 1024, 1),
        "findings": n_findings, "by_kind": {k: int(v) for k, v in counts.items()},
        "skipped": n_skipped,
    }


def as_wkb(frame):
    """``frame`` with its geometries as WKB and its texts as strings, in Arrow columns: what
    ``read_layer(…, wkb=True)`` gives."""
    import pandas as pd
    import pyarrow as pa
    import shapely

    def column(values):
        if values.dtype != object:
            return values
        return pd.Series(pd.arrays.ArrowExtensionArray(pa.array(values.to_numpy(), type=pa.string())),
                         index=values.index)

    wkb = pa.array(shapely.to_wkb(frame.geometry.values), type=pa.binary())
    return pd.DataFrame({**{c: column(frame[c]) for c in frame.columns if c != "geometry"},
                         "geometry": pd.arrays.ArrowExtensionArray(wkb)})


def plain_sjoin(construction, sidewalk, distance_m: float = 5.0, works_months: int = 12) -> tuple[float, int]:
    """The plain way to the merge candidates: ``geopandas.sjoin(predicate="dwithin")`` and a date filter.

    Returns (seconds, pairs kept).  The works period is the analysis' own
    (from ``issued_on``, else ``received_on``, for ``works_months``).
    """
    import geopandas as gpd
    import pandas as pd

    started = time.perf_counter()
    pairs = gpd.sjoin(sidewalk, construction, how="inner", predicate="dwithin", distance=distance_m)
    works_start = pairs["issued_on"].fillna(pairs["received_on"])
    works_end = works_start + pd.DateOffset(months=works_months) - pd.Timedelta(days=1)
    kept = pairs[(pairs["start_on"] <= works_end) & (pairs["end_on"] >= works_start)]
    return time.perf_counter() - started, len(kept)


def store_run(n: int, backends: list[str], repeat: int) -> list[dict]:
    """Load ``n`` full-field permits per layer into each store, then time ``gisapp analyze`` end to end."""
    import shutil
    import tempfile

    from benchmarks.bench_postgis import SERVER_SETTINGS
    from benchmarks.bench_postgis import generate as full_layers
    from gisapp.store.gpkg import GeoPackageStore
    from gisapp.store.postgis import PostGISStore, close_pool
    from tests.pg_server import start_server

    root = Path(__file__).resolve().parent.parent
    # compiled modules may be cached (a PYTHONDONTWRITEBYTECODE shell would compile gisapp's ~300 modules in every
    # run, seconds that are no part of the command's work); the best of the runs is reported
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    frames = full_layers(n)
    rows = []
    server = start_server(SERVER_SETTINGS) if "postgis" in backends else None
    tmp = Path(tempfile.mkdtemp(prefix="gisapp-bench-analysis-"))
    try:
        for name in backends:
            if name == "gpkg":
                url = str(tmp / f"bench-{n}.gpkg")
                store = GeoPackageStore(url, must_exist=False)
            else:
                url = server.url(server.create_database("bench"))
                store = PostGISStore(url, must_exist=False)
            load = os.getloadavg()[0]
            started = time.perf_counter()
            store.write(frames, mode="replace", meta={"as_of": "2026-01-01"})
            load_s = time.perf_counter() - started
            print(f"  {name} {n:,}: loaded in {load_s:.1f} s", flush=True)
            runs, line = [], ""
            for _ in range(repeat):
                started = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "gisapp", "--store", url, "--quiet", "analyze"],
                                      cwd=root, env=env, capture_output=True, text=True, check=False)
                runs.append(time.perf_counter() - started)
                if done.returncode != 0:
                    line = "error: " + (done.stderr.strip().splitlines() or ["failed"])[-1]
                    break
                line = done.stdout.strip().splitlines()[-1]
            print(f"  {name} {n:,}: analyze {min(runs):.1f} s ({line})", flush=True)
            rows.append({"backend": name, "n": n, "load_s": round(load_s, 2),
                         "analyze_s": round(min(runs), 2), "analyze_runs_s": [round(r, 2) for r in runs],
                         "analyze_output": line, "load_average_at_start": round(load, 2)})
            if name == "postgis":
                close_pool(url)
            else:
                Path(url).unlink(missing_ok=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def stage_run(url: str) -> dict:
    """The stages of ``gisapp analyze`` on the store at ``url`` (a GeoPackage path or a PostGIS URL), timed apart.

    Reading each analysed layer alone (:func:`gisapp.analysis.run.read_layer`), then what ``gisapp analyze``
    does: the layers read two at a time, the analysis, the findings written (a replace, with the analysis
    meta; on a GeoPackage only the rows that differ from the stored ones), then written again unchanged:
    what a second full analysis of unchanged data costs.  The store is
    written to: give a GeoPackage copy (``cp city1m.gpkg x.gpkg``) or a database copy.
    """
    from gisapp.analysis.incremental import stored_params
    from gisapp.analysis.run import AS_WKB, LAYERS, analyze_store, read_layer
    from gisapp.store import open_store

    store = open_store(url)
    out: dict = {"store": url, "load_average_at_start": round(os.getloadavg()[0], 2), "stages_s": {}}
    stages = out["stages_s"]

    def timed(name: str, func, *args, **kw):
        started = time.perf_counter()
        value = func(*args, **kw)
        stages[name] = round(time.perf_counter() - started, 3)
        print(f"  {name}: {stages[name]:.2f} s (load {os.getloadavg()[0]:.1f})", flush=True)
        return value

    layers = {name: timed(f"read {name}", read_layer, store, name, wkb=name in AS_WKB) for name in LAYERS}
    out["rows"] = {name: len(frame) for name, frame in layers.items()}
    params = stored_params(store)
    with store.write_lock():
        result, read_s = timed("read + analyse (analyze_store)", analyze_store, store, params, then_replace=True)
        stages["read (2 threads)"] = round(read_s, 3)
        stages["analyse"] = round(stages["read + analyse (analyze_store)"] - read_s, 3)
        meta = {"findings": params.as_meta()}
        # the rows as gisapp analyze writes them (Arrow texts, MultiPolygon WKB: no object per finding)
        timed("write findings", store.write, {"findings": result.rows}, mode="replace", meta=meta)
        timed("write findings again (unchanged)", store.write, {"findings": result.rows}, mode="replace",
              meta=meta)
    out["findings"] = len(result.rows)
    return out


def _run_in_subprocess(n: int, density: str, repeat: int, seed: int, mem_gb: float, timeout: float) -> dict:
    """:func:`run_one` in a fresh interpreter (its own peak memory), within the limits."""
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "benchmarks.bench_analysis", "--worker", "--mem-limit-gb", str(mem_gb),
           "--sizes", str(n), "--density", density, "--repeat", str(repeat), "--seed", str(seed)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"n": n, "density": density, "error": f"no result within {timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return {"n": n, "density": density, "error": last}
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_table(rows: list[dict]) -> str:
    """The results as a plain-text table."""
    head = (f"{'density':<9} {'n':>9} {'gen s':>7} {'analysis s':>10} {'cpu s':>7} {'wkb s':>6} {'cpu s':>6} "
            f"{'sjoin s':>7} {'ratio':>6} {'wkb':>6} "
            f"{'peak MB':>8} {'findings':>9} {'load':>5}  stages (s)")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['density']:<9} {r['n']:>9} error: {r['error']}")
            continue
        stages = " ".join(f"{k} {v:.2f}" for k, v in r["stages_s"].items())
        lines.append(f"{r['density']:<9} {r['n']:>9} {r['generate_s']:>7.2f} {r['analysis_s']:>10.2f} "
                     f"{r['analysis_cpu_s']:>7.2f} {r.get('analysis_wkb_s', float('nan')):>6.2f} "
                     f"{r.get('analysis_wkb_cpu_s', float('nan')):>6.2f} "
                     f"{r['sjoin_s']:>7.2f} {r['ratio']:>5.1f}× {r.get('ratio_wkb', float('nan')):>5.1f}× "
                     f"{r['peak_rss_mb']:>8.0f} {r['findings']:>9} "
                     f"{r['load_average_at_start']:>5.1f}  {stages}")
    return "\n".join(lines)


def format_stores(rows: list[dict]) -> str:
    """The store runs as a plain-text table."""
    head = f"{'backend':<8} {'n/layer':>9} {'load s':>7} {'analyze s':>9} {'load':>5}  gisapp analyze said"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['backend']:<8} {r['n']:>9} {r['load_s']:>7.1f} {r['analyze_s']:>9.1f} "
                     f"{r['load_average_at_start']:>5.1f}  {r['analyze_output']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command line: run the benchmark grid, print the table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="permits per layer, comma-separated (default: %(default)s)")
    parser.add_argument("--density", default="both", choices=["district", "city", "both"])
    parser.add_argument("--repeat", type=int, default=2, help="analysis runs per size; the best is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: benchmarks/out/…)")
    parser.add_argument("--mem-limit-gb", type=float, default=16.0,
                        help="address-space limit of each run, GB (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per run (default: %(default)s)")
    parser.add_argument("--stores", default="", help="also load and run gisapp analyze on these stores "
                        "(gpkg, postgis; comma-separated)")
    parser.add_argument("--store-sizes", default="100000", help="permits per layer for --stores (default: %(default)s)")
    parser.add_argument("--full", action="store_true",
                        help="the issue's case: --sizes 1000000 --density city --stores gpkg,postgis "
                             "--store-sizes 1000000")
    parser.add_argument("--stages", metavar="STORE", default="",
                        help="only time the stages of gisapp analyze on this existing store (a GeoPackage path or "
                             "PostGIS URL; it is written to: give a copy) and exit")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stages:
        result = stage_run(args.stages)
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        out = args.out or OUT_DIR / f"bench_analysis-stages-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2))
        print(f"written to {out}")
        return 0
    if args.full:
        args.sizes, args.density, args.stores, args.store_sizes = "1000000", "city", "gpkg,postgis", "1000000"
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    densities = ["district", "city"] if args.density == "both" else [args.density]
    if args.worker:
        limit = int(args.mem_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        print(json.dumps(run_one(sizes[0], densities[0], args.repeat, args.seed)))
        return 0
    rows = []
    for density in densities:
        for n in sizes:
            rows.append(_run_in_subprocess(n, density, args.repeat, args.seed, args.mem_limit_gb, args.timeout))
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(format_table(rows))
    stores = []
    backends = [b for b in args.stores.split(",") if b.strip()]
    for n in [int(s) for s in args.store_sizes.split(",") if s.strip()] if backends else []:
        stores.extend(store_run(n, backends, args.repeat))
    if stores:
        print()
        print(format_stores(stores))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = args.out or OUT_DIR / f"bench_analysis-{stamp}.json"
    out.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "run_at": dt.datetime.now().isoformat(timespec="seconds"), "results": rows, "stores": stores,
    }, indent=2))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
