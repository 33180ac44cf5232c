"""Run every benchmark, one after the other: ``python -m benchmarks [--quick]``.

Each benchmark prints its own table and writes JSON to ``benchmarks/out/``.
``--quick`` runs the small sizes only (a few minutes); without it the full
sizes of the issues run (10k–1M features; about an hour on 2 cores).
Benchmarks are never part of the test suite.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

#: (module, full arguments, quick arguments)
BENCHMARKS = [
    ("benchmarks.bench_analysis", ["--stores", "gpkg,postgis", "--store-sizes", "100000,1000000"],
     ["--sizes", "10000,100000", "--repeat", "1", "--stores", "gpkg,postgis", "--store-sizes", "20000"]),
    ("benchmarks.bench_import", [], ["--n", "20000"]),
    ("benchmarks.bench_export", [], ["--sizes", "100000", "--requests", "10", "--repeat", "1"]),
    ("benchmarks.bench_map", [], ["--runs", "1", "--large", "20000"]),
    ("benchmarks.bench_postgis", [], ["--sizes", "100000", "--clients", "8", "--seconds", "5"]),
    ("benchmarks.bench_history", ["--sizes", "100000,1000000"], ["--sizes", "20000", "--seconds", "5"]),
    ("benchmarks.bench_reports", ["--sizes", "100000,1000000"], ["--sizes", "100000"]),
    ("benchmarks.bench_field", ["--sizes", "100000,1000000"], ["--sizes", "100000", "--seconds", "5", "--saves", "2"]),
    ("benchmarks.bench_progress", [], ["--sizes", "20000", "--repeat", "1", "--calls", "100000"]),
    ("benchmarks.bench_occupancy", ["--sizes", "100000,1000000"], ["--sizes", "100000", "--requests", "120",
                                                                    "--saves", "3"]),
    ("benchmarks.bench_time", [], ["--sizes", "20000", "--log-rows", "20000", "--requests", "60"]),
    ("benchmarks.bench_tiles", ["--filters", "--sizes", "100000,1000000"],
     ["--filters", "--sizes", "100000", "--requests", "80", "--tiles", "20"]),
    ("benchmarks.bench_retile", ["--sizes", "100000,1000000"], ["--sizes", "10000", "--saves", "2", "--upsert", "200"]),
    ("benchmarks.bench_incremental", ["--sizes", "100000,1000000"], ["--sizes", "100000", "--saves", "4"]),
    ("benchmarks.bench_passage", ["--sizes", "1000000"], ["--sizes", "100000", "--exact"]),
    ("benchmarks.bench_pgio", ["--sizes", "100000"], ["--sizes", "20000"]),
    ("benchmarks.bench_derive", ["--sizes", "1000000"], ["--sizes", "20000"]),
    ("benchmarks.bench_gpkgio", ["--sizes", "100000"], ["--sizes", "20000", "--runs", "1"]),
]


def main(argv=None) -> int:
    """Run the benchmarks named (default: all); return the number that failed."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("names", nargs="*", help="analysis, import, export, map, postgis, history, reports, field, "
                        "progress, occupancy, time, tiles, retile, incremental, passage, pgio, derive, gpkgio "
                        "(default: all)")
    args = parser.parse_args(argv)
    failed = 0
    for module, full, quick in BENCHMARKS:
        name = module.rsplit("_", 1)[-1]
        if args.names and name not in args.names:
            continue
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        rc = subprocess.call([sys.executable, "-m", module, *(quick if args.quick else full)])
        print(f"=== {name}: exit {rc} in {time.perf_counter() - started:.0f} s", flush=True)
        failed += rc != 0
    return failed


if __name__ == "__main__":
    sys.exit(main())
