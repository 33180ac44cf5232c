"""Map page speed, measured in Chromium: the Cẩm Lệ demo and 100,000 generated permits.

For each data set the app is served by waitress on 127.0.0.1 and a fresh
browser context (empty cache) opens the map page.  Reported:

- ``html_bytes``: the page's own HTML;
- ``drawn_ms``: navigation start → the permits layer painted on the canvas
  (every demo permit; at 100,000 the first view, per-ward counts);
- ``transferred_bytes``: bytes over the wire for the whole first view
  (HTML, vendored JS/CSS, data), from Chrome's network events;
- ``max_features``: the most features any one response carried;
- ``street_ms`` (100,000 only): a street-level view after zooming in.

Goals (issue 3): HTML < 300 KB at any size, demo drawn < 1.5 s, 100k first
view < 3 s and never all 100,000 requested at once.

    .venv/bin/python benchmarks/bench_map.py [--runs 3] [--large 100000]

Prints a table and writes ``benchmarks/out/bench_map.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gisapp.demo import build as demo
from gisapp.domain import Calendar  # noqa: E402
from gisapp.store.gpkg import GeoPackageStore  # noqa: E402
from gisapp.web.app import create_app  # noqa: E402
from tests.browser_util import launch_chromium  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
GOALS = {"html_bytes": 300_000, "demo_drawn_ms": 1500, "large_drawn_ms": 3000}


def build_store(path: Path, n: int | None) -> tuple[GeoPackageStore, float]:
    """The demo store (``n`` None) or ``n`` generated permits over the demo wards; returns (store, seconds)."""
    started = time.perf_counter()
    if n is None:
        frames, meta = demo.build(Calendar())
    else:
        wards = demo.build.__globals__["demo_wards"].wards_frame()
        frames = demo.generate(n, n // 6, wards=wards[wards["valid_to"].notna()].reset_index(drop=True))
        frames["wards"] = wards
        meta = {"as_of": demo.AS_OF.isoformat(), "demo": False}
    store = GeoPackageStore(path, must_exist=False)
    store.write(frames, meta=meta)
    return store, time.perf_counter() - started


class Server:
    """waitress serving the app on 127.0.0.1 at a free port, in a thread."""

    def __init__(self, app):
        from waitress.server import create_server

        self.server = create_server(app, host="127.0.0.1", port=0, threads=4, ident="gisapp-bench")
        self.base = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.base

    def __exit__(self, *exc):
        self.server.close()


def measure(browser, base: str, expected: int | None, street: tuple[float, float] | None) -> dict:
    """One cold first view of ``/`` (and a street view when ``street`` = (lat, lon))."""
    # bypass_csp: wait_for_function evaluates its condition with eval, which the app's policy forbids
    context = browser.new_context(viewport={"width": 1400, "height": 860}, bypass_csp=True)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    wire = {"bytes": 0, "requests": 0}

    def finished(event):
        wire["bytes"] += event.get("encodedDataLength", 0)
        wire["requests"] += 1

    cdp.on("Network.loadingFinished", finished)
    outside, feature_counts, errors = [], [], []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base) else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    def on_response(resp):
        if "/data/construction_permits.geojson" in resp.url:
            try:
                feature_counts.append(len(json.loads(resp.body())["features"]))
            except Exception:  # noqa: BLE001 - a body we cannot read is not counted
                pass

    page.on("response", on_response)
    response = page.goto(base + "/", wait_until="commit")
    html_bytes = len(response.body())
    cond = "window.gisapp && gisapp.state.paintedAt.permits !== undefined && gisapp.idle()"
    if expected is not None:
        cond += f" && gisapp.state.drawn.permits === {expected}"
    page.wait_for_function(cond, timeout=60000, polling=10)
    drawn_ms = page.evaluate("gisapp.state.paintedAt.permits")
    mode = page.evaluate("gisapp.state.mode.permits")
    drawn = page.evaluate("gisapp.state.drawn.permits")
    page.wait_for_load_state("networkidle")
    result = {"html_bytes": html_bytes, "drawn_ms": round(drawn_ms), "mode": mode, "drawn": drawn,
              "transferred_bytes": wire["bytes"], "requests": wire["requests"]}
    if street:
        page.evaluate("gisapp.state.paintedAt = {}")
        started = page.evaluate("performance.now()")
        page.evaluate("([lat, lon]) => { gisapp.map.setView([lat, lon], 17, {animate: false}); }", list(street))
        page.wait_for_function("gisapp.state.paintedAt.permits !== undefined && gisapp.idle() && "
                               "gisapp.state.mode.permits === 'features'", timeout=60000, polling=10)
        result["street_ms"] = round(page.evaluate("gisapp.state.paintedAt.permits") - started)
        result["street_drawn"] = page.evaluate("gisapp.state.drawn.permits")
    result["max_features"] = max(feature_counts or [0])
    result["outside_requests"] = len(outside)
    result["console_errors"] = len(errors)
    context.close()
    return result


def run(label: str, store: GeoPackageStore, browser, runs: int, expected: int | None, street=None) -> dict:
    """``runs`` cold views against ``store``; the median of the timings."""
    app = create_app({"STORE": store.url, "BASEMAP": "none"})
    with Server(app) as base:
        measure(browser, base, expected, street)  # warm the server (first-request imports, file cache)
        results = [measure(browser, base, expected, street) for _ in range(runs)]
    out = dict(results[-1])
    for key in ("drawn_ms", "street_ms", "transferred_bytes"):
        if key in out:
            out[key] = round(statistics.median(r[key] for r in results))
    out["drawn_ms_all"] = [r["drawn_ms"] for r in results]
    out["permits"] = store.count("construction_permits")
    out["label"] = label
    return out


def main(argv=None) -> int:
    """Run the benchmark; exit status 1 when a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="cold views per data set (median reported)")
    parser.add_argument("--large", type=int, default=100_000, help="generated permits for the large case")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = launch_chromium(p)
        demo_store, demo_s = build_store(Path(tmp) / "demo.gpkg", None)
        rows.append(run("demo", demo_store, browser, args.runs, demo_store.count("construction_permits")))
        rows[-1]["build_s"] = round(demo_s, 1)
        big, big_s = build_store(Path(tmp) / "large.gpkg", args.large)
        lot = big.read("construction_permits", limit=1).to_crs(4326).geometry.iloc[0].centroid
        rows.append(run(f"{args.large:,} permits", big, browser, args.runs, None, street=(lot.y, lot.x)))
        rows[-1]["build_s"] = round(big_s, 1)
        browser.close()

    header = f"{'data':<18}{'permits':>9}{'HTML KB':>9}{'drawn ms':>10}{'mode':>11}{'transfer KB':>13}" \
             f"{'max feats':>11}{'street ms':>11}{'outside':>9}{'errors':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['label']:<18}{r['permits']:>9}{r['html_bytes'] / 1000:>9.1f}{r['drawn_ms']:>10}{r['mode']:>11}"
              f"{r['transferred_bytes'] / 1000:>13.0f}{r['max_features']:>11}{r.get('street_ms', '—'):>11}"
              f"{r['outside_requests']:>9}{r['console_errors']:>8}")
    demo_row, big_row = rows
    checks = {
        "html < 300 KB": all(r["html_bytes"] < GOALS["html_bytes"] for r in rows),
        "demo drawn < 1.5 s": demo_row["drawn_ms"] < GOALS["demo_drawn_ms"],
        "large first view < 3 s": big_row["drawn_ms"] < GOALS["large_drawn_ms"],
        "large never all at once": big_row["max_features"] < big_row["permits"],
        "nothing outside 127.0.0.1": all(r["outside_requests"] == 0 for r in rows),
    }
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'MISS'} {name}")
    OUT.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": "bench_map", "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": platform.platform(),
              "cpus": __import__("os").cpu_count(), "runs": args.runs, "goals": GOALS, "checks": checks, "rows": rows}
    (OUT / "bench_map.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written {OUT / 'bench_map.json'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
