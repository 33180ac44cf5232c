"""Benchmark: the GeoPackage store's bulk load and ``gisapp analyze`` end to end (issue 15 item 3).

Times, with the machine's load average and the CPU seconds beside each figure:

- ``load_s``: ``store.write`` of the dossiers, sidewalk permits, wards and sidewalks in one replace
  (:func:`benchmarks.bench_postgis.make_data`) into a new GeoPackage (the issue's "loading 1M features":
  under 30 s at 1M per layer); ``load_cpu_s`` this process's CPU and ``load_children_cpu_s`` that of the
  child processes writing the large layers (:class:`gisapp.store.gpkg._LayerFiles`);
- ``analyze_s``: ``gisapp analyze --json`` as a command (its start included), run ``--runs`` times on the
  store (the first run of a store analysed by older code may rewrite findings), with the read, analysis and
  storing seconds it reports.

Usage::

    python -m benchmarks.bench_gpkgio --sizes 20000                 # load into a temporary folder, then analyze
    python -m benchmarks.bench_gpkgio --store copy.gpkg --runs 2   # analyze an existing store (it is written: a copy)
    python -m benchmarks.bench_gpkgio --sizes 1000000 --dir /work/data1m/NAME --load-only

The 1M cases of the issue, each under ``flock /work/data1m/heavy.lock``: ``--store`` on a copy of the shared
1M city (``cp /work/data1m/city1m.gpkg …``), and ``--sizes 1000000 --dir … --load-only``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import save_results  # noqa: E402


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def load(path: Path, n: int) -> dict:
    """Generate ``n`` per layer and time their load into a new GeoPackage at ``path``."""
    from benchmarks.bench_postgis import make_data
    from gisapp.store.gpkg import GeoPackageStore

    started = time.perf_counter()
    frames, how = make_data(n)
    out = {"n": n, "generator": how, "generate_s": round(time.perf_counter() - started, 1), "load_load": _load()}
    path.unlink(missing_ok=True)
    store = GeoPackageStore(path, must_exist=False)
    cpu, children = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    store.write(frames, mode="replace", meta={"as_of": "2026-01-01"})
    out["load_s"] = round(time.perf_counter() - started, 2)
    out["load_cpu_s"] = round(_cpu(resource.RUSAGE_SELF) - cpu, 1)
    out["load_children_cpu_s"] = round(_cpu(resource.RUSAGE_CHILDREN) - children, 1)
    out["load_load_after"] = _load()
    print(f"  load of {n:,} per layer ({', '.join(f'{k} {len(v):,}' for k, v in frames.items())}): "
          f"{out['load_s']:.2f} s (CPU {out['load_cpu_s']} s here, {out['load_children_cpu_s']} s in children; "
          f"load {out['load_load']}→{out['load_load_after']})", flush=True)
    return out


def analyze(path: Path, runs: int, extra: list[str]) -> list[dict]:
    """``gisapp analyze --json`` on the store at ``path``, ``runs`` times, each timed as a command."""
    out = []
    for k in range(runs):
        load_before, children = _load(), _cpu(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "gisapp", "--store", str(path), "analyze", "--quiet", "--json",
                               *extra], capture_output=True, text=True, cwd=ROOT)
        row = {"run": k + 1, "analyze_s": round(time.perf_counter() - started, 2),
               "cpu_s": round(_cpu(resource.RUSAGE_CHILDREN) - children, 1), "load": load_before,
               "load_after": _load(), "args": extra}
        if done.returncode != 0:
            raise SystemExit(f"gisapp analyze failed: {done.stderr[-2000:]}")
        facts = json.loads(done.stdout)
        row.update(read_s=facts["run"]["read_seconds"], analysis_s=facts["run"]["run_seconds"],
                   store_s=facts["write_seconds"], findings=facts["findings"])
        print(f"  gisapp analyze {' '.join(extra)} (run {k + 1}): {row['analyze_s']:.2f} s (read {row['read_s']}, "
              f"analysis {row['analysis_s']}, storing {row['store_s']}; {row['findings']:,} findings; "
              f"CPU {row['cpu_s']} s; load {row['load']}→{row['load_after']})", flush=True)
        out.append(row)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000", help="features per layer to load (default: %(default)s)")
    parser.add_argument("--store", help="only time gisapp analyze on this existing GeoPackage (it is written)")
    parser.add_argument("--dir", help="folder for the loaded GeoPackage (default: a temporary one, removed)")
    parser.add_argument("--runs", type=int, default=2, help="gisapp analyze runs per store (default: %(default)s)")
    parser.add_argument("--distance", help="also run gisapp analyze --distance this (changed parameters)")
    parser.add_argument("--load-only", action="store_true", help="only the load")
    args = parser.parse_args(argv)
    extra = [[]] + ([["--distance", args.distance]] if args.distance else [])
    results: list[dict] = []
    if args.store:
        for more in extra:
            results.extend(analyze(Path(args.store), args.runs, more))
    else:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            for n in [int(s) for s in args.sizes.split(",") if s.strip()]:
                path = Path(tmp) / f"bench-{n}.gpkg"
                row = load(path, n)
                if not args.load_only:
                    row["analyze"] = [r for more in extra for r in analyze(path, args.runs, more)]
                results.append(row)
                path.unlink(missing_ok=True)
    save_results("gpkgio", {"results": results})


if __name__ == "__main__":
    main()
