"""Progress benchmark (issue 20): what showing progress costs the long work.

    .venv/bin/python -m benchmarks.bench_progress [--sizes 20000,100000] [--calls 200000]

1. A store load (``GeoPackageStore.write``) and the analysis (``analyze_store``)
   of N generated dossiers, with no one watching (:data:`gisapp.progress.SILENT`),
   with a status file (:class:`gisapp.progress.StatusFile`, what an upload's
   child and the tile renderer write) and with the command line's plain
   lines (:class:`gisapp.cli.progress.TerminalProgress` on a pipe, as with
   ``--progress``): seconds, best of ``--repeat``.
2. The cost of one report, in µs: a status file within its 0.5 s interval
   (the tile renderer reports every tile), and the command line's renderer.

Goal: progress adds less than 2 % to a load or an analysis.  Prints a table
and writes JSON to ``benchmarks/out/``.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gisapp.analysis.overlaps import AnalysisParams  # noqa: E402
from gisapp.analysis.run import analyze_store  # noqa: E402
from gisapp.cli.progress import TerminalProgress  # noqa: E402
from gisapp.demo.build import generate  # noqa: E402
from gisapp.progress import SILENT, StatusFile  # noqa: E402
from gisapp.store.gpkg import GeoPackageStore  # noqa: E402

OUT = ROOT / "benchmarks" / "out"


def _watchers(folder: Path) -> dict:
    return {"silent": lambda: SILENT,
            "status file": lambda: StatusFile(folder / "status.json"),
            "cli lines": lambda: TerminalProgress(io.StringIO(), tty=False)}


def load_and_analyse(n: int, repeat: int) -> list[dict]:
    """Seconds of a store load and of the analysis of ``n`` dossiers, per watcher."""
    frames = generate(n, n // 4)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, make in _watchers(folder).items():
            write_s, analyse_s = [], []
            for k in range(repeat):
                store = GeoPackageStore(folder / f"s{k}-{name.replace(' ', '_')}.gpkg", must_exist=False)
                started = time.perf_counter()
                store.write(frames, progress=make())
                write_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                analyze_store(store, AnalysisParams(), make())
                analyse_s.append(time.perf_counter() - started)
            rows.append({"n": n, "watcher": name, "write_s": round(min(write_s), 3),
                         "analyse_s": round(min(analyse_s), 3)})
    return rows


def per_call(calls: int) -> dict:
    """µs per report of a status file (mostly within its interval) and of the command line's lines."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in _watchers(Path(tmp)).items():
            progress = make()
            started = time.perf_counter()
            for i in range(calls):
                progress("render construction_permits z17", i, calls, "tiles")
            out[name] = round(1e6 * (time.perf_counter() - started) / calls, 3)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args(argv)
    rows = [r for n in map(int, args.sizes.split(",")) for r in load_and_analyse(n, args.repeat)]
    calls = per_call(args.calls)
    print(f"{'n':>8}  {'watcher':<12} {'write s':>8} {'analyse s':>10}")
    for r in rows:
        print(f"{r['n']:>8}  {r['watcher']:<12} {r['write_s']:>8.3f} {r['analyse_s']:>10.3f}")
    print("µs per report: " + ", ".join(f"{k} {v}" for k, v in calls.items()))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"bench_progress_{args.sizes.replace(',', '_')}.json"
    path.write_text(json.dumps({"rows": rows, "us_per_report": calls, "machine": platform.platform(),
                                "python": platform.python_version()}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
