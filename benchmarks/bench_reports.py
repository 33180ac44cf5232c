"""Printed reports benchmark (issue 17): review report, dossier sheet, map print; a city's half year; 4 at once.

    .venv/bin/python -m benchmarks.bench_reports [--sizes 100000,1000000] [--concurrent 4]

1. The demo (Cẩm Lệ, 2,534 dossiers, findings analysed): the district review report of H1 2022, a
   dossier sheet and the map print of one ward, each made in a fresh process (``--child``): wall time
   warm (the second of two in that process: imports and fonts loaded once per report process) and
   the first one, cold; the review split into figures and typesetting.
2. A city of N dossiers (``demo.generate(N, N // 6)``, findings analysed) for six months: the district
   review report in a fresh process: wall time and peak resident memory (``ru_maxrss``).
3. ``--concurrent`` review reports at once through a real server (waitress, 4 threads; reports in
   ``GISAPP_REPORT_WORKERS`` = 2 child processes) while a client asks the map's ``/data/count`` in a
   loop: its latency (p50, p95, max) before and during the reports, and the reports' times.

Goals: demo review < 3 s, dossier sheet < 1 s, 1M six-month review < 30 s and < 1 GB, the map answering
while 4 reports run.  Prints a table and writes JSON to ``benchmarks/out/``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "out"
H1 = {"from": "2022-01-01", "to": "2022-06-30"}
GOALS = {"demo_review_s": 3.0, "dossier_s": 1.0, "city_review_s": 30.0, "city_review_mb": 1024}


def build_store(path: Path, n: int | None) -> float:
    """The demo (``n`` None) or ``n`` generated dossiers with ``n // 6`` sidewalk permits, findings analysed."""
    from gisapp.analysis.overlaps import AnalysisParams, find_overlaps
    from gisapp.demo import build as demo
    from gisapp.domain import Calendar
    from gisapp.store.gpkg import GeoPackageStore

    started = time.perf_counter()
    if n is None:
        frames, meta = demo.build(Calendar())
    else:
        frames = demo.generate(n, n // 6)
        meta = {"as_of": demo.AS_OF.isoformat(), "demo": False,
                "source": "generated; ward boundaries © OpenStreetMap contributors (ODbL 1.0)"}
    findings = find_overlaps(frames["construction_permits"], frames["sidewalk_permits"], frames["wards"],
                             AnalysisParams()).findings
    GeoPackageStore(path, must_exist=False).write({**frames, "findings": findings}, meta=meta)
    return time.perf_counter() - started


def child(kind: str, store_path: str, repeat: int) -> dict:
    """Make one document ``repeat`` times in this (fresh) process; times and peak memory."""
    from gisapp.domain import Calendar
    from gisapp.filters import Filter
    from gisapp.reports import documents, render, review
    from gisapp.store import open_store

    store = open_store(store_path)
    opts = documents.Options()
    query = review.ReviewQuery(Filter(date_from=review.dt.date(2022, 1, 1), date_to=review.dt.date(2022, 6, 30)))
    code = store.read("construction_permits", limit=1)["dossier_code"].iloc[0]
    times, cpu, parts = [], [], {}
    for _ in range(repeat):
        started = time.perf_counter()
        cpu_started = time.process_time()
        if kind == "review":
            t0 = time.perf_counter()
            rep = review.build_review(store, query, Calendar())
            parts["figures_s"] = round(time.perf_counter() - t0, 3)
            t0 = time.perf_counter()
            context = documents.review_context(store, rep, opts)
            parts["maps_s"] = round(time.perf_counter() - t0, 3)
            t0 = time.perf_counter()
            body = render.pdf("review.html", **context)
            parts["typeset_s"] = round(time.perf_counter() - t0, 3)
        elif kind == "dossier":
            body = documents.dossier_pdf(store, code, Calendar(), opts)
        else:
            body = documents.map_pdf(store, Filter(wards=("20311",), date_from=query.flt.date_from,
                                                   date_to=query.flt.date_to), opts)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    # CPU seconds too: on a shared machine the wall time says as much about the neighbours as about the report
    return {"kind": kind, "cold_s": round(times[0], 3), "warm_s": round(min(times[1:] or times), 3),
            "cold_cpu_s": round(cpu[0], 3), "warm_cpu_s": round(min(cpu[1:] or cpu), 3),
            "bytes": len(body), "maxrss_mb": peak_mb(), **parts}


def peak_mb() -> int:
    """This process's peak resident memory in MB: ``VmHWM`` (``ru_maxrss`` keeps the parent's peak across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_child(kind: str, store: Path, repeat: int = 2) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_reports", "--child", kind, str(store),
                          "--repeat", str(repeat)], capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def concurrent(store: Path, reports: int, seconds_before: float = 3.0) -> dict:
    """``reports`` review reports at once through waitress while a client polls ``/data/count``."""
    from waitress.server import create_server

    from gisapp.web.app import create_app

    app = create_app({"STORE": str(store), "REPORT_WORKERS": 2, "TESTING": False})
    server = create_server(app, host="127.0.0.1", port=0, threads=4, ident="bench")
    base = f"http://127.0.0.1:{server.effective_port}"
    threading.Thread(target=server.run, daemon=True).start()
    url = base + "/reports/review.pdf?from=2022-01-01&to=2022-06-30"
    urllib.request.urlopen(url, timeout=300).read()  # start the report processes (their imports)

    def poll(until: float, out: list[float]) -> None:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            urllib.request.urlopen(base + "/data/count?ward=20311", timeout=60).read()
            out.append(time.perf_counter() - t0)
            time.sleep(0.05)

    before: list[float] = []
    poll(time.perf_counter() + seconds_before, before)
    during: list[float] = []
    report_times: list[float] = []
    done = threading.Event()

    refused: list[int] = []

    def one() -> None:
        t0 = time.perf_counter()
        while True:
            try:
                urllib.request.urlopen(url, timeout=300).read()
                break
            except urllib.error.HTTPError as err:  # 503 ReportsBusy (GISAPP_REPORT_QUEUE): try again, as a user would
                if err.code != 503:
                    raise
                refused.append(1)
                time.sleep(2)
        report_times.append(time.perf_counter() - t0)

    workers = [threading.Thread(target=one) for _ in range(reports)]
    started = time.perf_counter()
    for w in workers:
        w.start()

    def watcher() -> None:
        for w in workers:
            w.join()
        done.set()

    threading.Thread(target=watcher, daemon=True).start()
    while not done.is_set():
        poll(time.perf_counter() + 0.5, during)
    wall = time.perf_counter() - started
    app.extensions["gisapp_reports"].close()
    server.close()

    def stats(values: list[float]) -> dict:
        values = sorted(values)
        return {"n": len(values), "p50_ms": round(1000 * statistics.median(values), 1),
                "p95_ms": round(1000 * values[int(0.95 * (len(values) - 1))], 1),
                "max_ms": round(1000 * values[-1], 1)}

    return {"reports": reports, "refused_503": len(refused), "wall_s": round(wall, 2),
            "report_s": [round(t, 2) for t in sorted(report_times)],
            "map_before": stats(before), "map_during": stats(during)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000", help="city sizes, comma-separated (e.g. 100000,1000000)")
    parser.add_argument("--concurrent", type=int, default=4, help="reports at once (0: skip)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "STORE"), help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.repeat)))
        return 0
    results: dict = {"machine": platform.platform(), "cpus": __import__("os").cpu_count(), "goals": GOALS}
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        demo_store = Path(tmp) / "demo.gpkg"
        results["demo_build_s"] = round(build_store(demo_store, None), 1)
        for kind in ("review", "dossier", "map"):
            results[f"demo_{kind}"] = r = run_child(kind, demo_store, repeat=3)
            split = {k: v for k, v in r.items() if k in ("figures_s", "maps_s", "typeset_s")}
            print(f"demo {kind:8s} cold {r['cold_s']:6.2f} s  warm {r['warm_s']:6.2f} s (CPU {r['warm_cpu_s']:.2f} s)  "
                  f"{r['bytes']:>8,} B  "
                  f"peak {r['maxrss_mb']} MB  {split}", flush=True)
        for n in [int(s) for s in args.sizes.split(",") if s]:
            store = Path(tmp) / f"city-{n}.gpkg"
            build_s = build_store(store, n)
            r = run_child("review", store, repeat=1)
            results[f"city_{n}"] = {"build_s": round(build_s, 1), **r}
            print(f"city {n:>9,} six-month review {r['cold_s']:6.2f} s, CPU {r['cold_cpu_s']:.2f} s "
                  f"(figures {r['figures_s']} s, maps {r['maps_s']} s, typesetting {r['typeset_s']} s), "
                  f"peak {r['maxrss_mb']} MB "
                  f"(store built in {build_s:.0f} s)", flush=True)
            store.unlink()
        if args.concurrent:
            c = concurrent(demo_store, args.concurrent)
            results["concurrent"] = c
            print(f"{c['reports']} reports at once: {c['wall_s']} s in all, each {c['report_s']} ({c['refused_503']} "
                  f"answers 503, asked again after 2 s); the map's "
                  f"/data/count before {c['map_before']}, during {c['map_during']}", flush=True)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"reports-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
