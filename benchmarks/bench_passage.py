"""Benchmark of the free passage beside sidewalk permits on full-field data (issue 15, item 3).

Full field: dossiers, sidewalk permits *and* the ``sidewalks`` layer, so
the ``CLEARANCE`` of every permit on a sidewalk is measured from geometry
(:func:`gisapp.passage.occupancy_passages`).  The data is either generated
(``--sizes``: :func:`gisapp.demo.build.generate` with that many dossiers and
sidewalk permits, as ``benchmarks.bench_postgis.make_data`` does) or read
read-only from a GeoPackage (``--gpkg``, e.g. the shared 1M city; only the
analysed columns, with pyogrio: no store is opened on it).

Per size it times, with the load average at the start:

- the passage stage alone (``gisapp.analysis.overlaps.passages``), with the
  share the straight-strip fast path (:mod:`gisapp.strips`) decided;
- with ``--exact``, the same stage on the exact GEOS path only
  (``fast=False``; a minute or more at 1M) and whether both agree value for
  value and day for day;
- ``find_overlaps`` on the four layers (the whole analysis, its stage laps;
  not with ``--no-analysis``).

Usage::

    python -m benchmarks.bench_passage --sizes 100000,200000 --exact
    flock /work/data1m/heavy.lock python -m benchmarks.bench_passage --gpkg /work/data1m/city1m.gpkg
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent / "out"
LAYERS = ("construction_permits", "sidewalk_permits", "wards", "sidewalks")


def load(size: int | None, gpkg: str | None) -> tuple[dict, str]:
    """The four layers, generated at ``size`` or read from ``gpkg``, and where they came from."""
    if gpkg:
        import pyogrio

        from gisapp.analysis.run import ANALYSED_FIELDS

        return {name: pyogrio.read_dataframe(gpkg, layer=name, columns=ANALYSED_FIELDS[name])
                for name in LAYERS}, gpkg
    from gisapp.demo import build

    return build.generate(size, size), f"gisapp.demo.build.generate({size}, {size})"


def passage_stage(side, walks, *, fast: bool) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The passages of every sidewalk permit (``overlaps.passages``' inputs), their days, and the seconds
    (wall, and CPU of all threads)."""
    from gisapp import passage
    from gisapp.analysis import overlaps

    geoms = overlaps._geometries(side)
    start = overlaps._days(overlaps._column(side, "start_on"))
    end = overlaps._days(overlaps._column(side, "end_on"))
    keep = (start != overlaps.NAT) & (end != overlaps.NAT) & (end >= start)
    original = passage.occupancy_passages

    def chosen(*args, **kw):
        return original(*args, **kw, fast=fast)

    overlaps.occupancy_passages = chosen  # the same stage, with the path chosen
    try:
        started, cpu = time.perf_counter(), time.process_time()
        value, day = overlaps.passages(geoms, start, end, keep, walks)
        return value, day, time.perf_counter() - started, time.process_time() - cpu
    finally:
        overlaps.occupancy_passages = original


def fast_share(side, walks) -> float:
    """The share of the sidewalk permits the straight-strip path decides itself."""
    from gisapp import passage, strips
    from gisapp.analysis import overlaps

    geoms = overlaps._geometries(side)
    start = overlaps._days(overlaps._column(side, "start_on"))
    end = overlaps._days(overlaps._column(side, "end_on"))
    keep = (start != overlaps.NAT) & (end != overlaps.NAT) & (end >= start)
    walk = overlaps._geometries(walks)
    widths = np.array(walks["width_m"], dtype=float)
    missing = ~(widths > 0)
    widths[missing] = [passage.sidewalk_width(g) for g in walk[missing]]
    _, _, done = strips.strip_passages(geoms[keep], start[keep], end[keep], walk, widths, reach=passage.REACH,
                                       end_factor=passage.END_EDGE_FACTOR, min_width=2 * passage.SIMPLIFY_M,
                                       area_min=passage.AREA_MIN, grow=passage.GROWN_M, decimals=passage.DECIMALS)
    return float(done.mean()) if len(done) else 0.0


def run(size: int | None, gpkg: str | None, exact: bool, repeat: int, analysis: bool = True) -> dict:
    """One size's figures."""
    from gisapp.analysis import overlaps

    started = time.perf_counter()
    layers, source = load(size, gpkg)
    row: dict = {"source": source, "load_s": round(time.perf_counter() - started, 1),
                 "sidewalk_permits": len(layers["sidewalk_permits"]), "sidewalks": len(layers["sidewalks"]),
                 "construction_permits": len(layers["construction_permits"])}
    side, walks = layers["sidewalk_permits"], layers["sidewalks"]
    row["loadavg_start"] = os.getloadavg()[0]
    best = None
    for _ in range(repeat):
        value, day, seconds, cpu = passage_stage(side, walks, fast=True)
        if best is None or seconds < best:
            best, row["passage_cpu_s"] = seconds, round(cpu, 2)
    row["passage_s"] = round(best or 0.0, 2)
    row["measured"] = int(np.isfinite(value).sum())
    row["fast_share"] = round(fast_share(side, walks), 4)
    if exact:
        e_value, e_day, seconds, cpu = passage_stage(side, walks, fast=False)
        row["passage_exact_s"], row["passage_exact_cpu_s"] = round(seconds, 2), round(cpu, 2)
        row["same_as_exact"] = bool(np.array_equal(np.nan_to_num(value, nan=-1.0), np.nan_to_num(e_value, nan=-1.0))
                                    and np.array_equal(day, e_day))
    best_total, laps = None, {}
    for _ in range(repeat if analysis else 0):
        row["loadavg_analysis"] = os.getloadavg()[0]
        started = time.perf_counter()
        result = overlaps.find_overlaps(layers["construction_permits"], side, layers["wards"], None, sidewalks=walks)
        seconds = time.perf_counter() - started
        if best_total is None or seconds < best_total:
            best_total, laps = seconds, {k: round(v, 2) for k, v in result.timings.items()}
    if analysis:
        row["find_overlaps_s"] = round(best_total or 0.0, 2)
        row["find_overlaps_laps"] = laps
        row["findings"] = int(len(result.findings))
    row["loadavg_end"] = os.getloadavg()[0]
    return row


def main(argv=None) -> int:
    """Run the sizes asked for; print a line per size; write ``benchmarks/out/passage.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000", help="generated sizes, permits per layer (comma separated)")
    parser.add_argument("--gpkg", help="read the layers from this GeoPackage (read-only) instead of generating")
    parser.add_argument("--exact", action="store_true", help="also time the exact GEOS path and compare")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-analysis", action="store_true", help="the passage stage only, not find_overlaps")
    args = parser.parse_args(argv)
    cases: list[tuple[int | None, str | None]] = ([(None, args.gpkg)] if args.gpkg
                                                  else [(int(s), None) for s in args.sizes.split(",")])
    rows = []
    for size, gpkg in cases:
        row = run(size, gpkg, args.exact, args.repeat, analysis=not args.no_analysis)
        rows.append(row)
        print(json.dumps(row), flush=True)
    OUT_DIR.mkdir(exist_ok=True)
    (OUT_DIR / "passage.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
