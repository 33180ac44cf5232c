"""Status history benchmark (issue 16): the ward dashboard as of a day and API pages with ``as_of``.

    .venv/bin/python -m benchmarks.bench_history [--sizes 100000] [--backends gpkg,postgis] [--clients 8]

For each size N: N dossiers and N sidewalk permits from the demo's scalable
generator with the demo's consistent history (~4 rows per dossier, 3 per
permit), written to a GeoPackage and to a private PostGIS server
(``tests/pg_server.py``).  Measured per backend:

1. the write of layers plus history (seed-like);
2. ``statuses_as_of`` of every dossier on a day (one query);
3. the ward dashboard as of a day (``gisapp.analysis.stats.dashboard``: one grouped query,
   ``Store.dossier_counts``), median of 3, and for comparison the same figures counted dossier by
   dossier in Python (every dossier and its status of the day read, as before the counting moved into SQL);
4. ``/api/collections/construction_permits/items?as_of=…&bbox=…`` (street
   views of ~1,000 dossiers, default page of 100 and ``limit=1000``) under
   ``--clients`` concurrent clients against ``gisapp serve --workers 2``: p50/p95;
5. the map as of a day, first view (``/?as_of=…`` in a fresh Chromium context, empty cache:
   navigation start → dossiers painted), median of 3 after one warm-up (``--no-browser`` skips it).

Goals (issue 16, at 1M dossiers × ~5 history rows): dashboard as of any day
< 2 s; API page with ``as_of`` p95 < 200 ms at 8 clients; map view as of a day < 3 s first view.
The default size is 100,000 (1,000,000 is the goal's size: ``--sizes 1000000``, about an hour;
``--backends gpkg --skip-api`` for the dashboard alone).  ``--store PATH_OR_URL`` measures a store loaded
before (e.g. the session's shared 1M copies) instead of generating and writing one: minutes, not an hour.
The dashboard's first call in a process reads the dossiers' arrays (``gisapp.analysis.counts``): reported
apart ("first"), with the dashboard after one saved dossier (the arrays read again for it only).
Prints a table and writes JSON to ``benchmarks/out/``.
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
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import loadgen, save_results  # noqa: E402
from benchmarks.bench_postgis import (  # noqa: E402
    SERVER_SETTINGS,
    app_servers,
    make_data,
    server_times,
    view_boxes,
    wait_for_arrays,
)
from gisapp.analysis import counts, stats  # noqa: E402
from gisapp.analysis.counts import dossier_counts  # noqa: E402
from gisapp.demo.timeline import demo_history  # noqa: E402
from gisapp.domain import Calendar  # noqa: E402
from gisapp.filters import Filter  # noqa: E402
from gisapp.store.gpkg import GeoPackageStore  # noqa: E402
from gisapp.store.postgis import PostGISStore, close_pool  # noqa: E402
from tests.pg_server import start_server  # noqa: E402

DAYS = (dt.date(2022, 3, 31), dt.date(2022, 6, 30))


def timed(func, *args, **kw):
    t = time.perf_counter()
    out = func(*args, **kw)
    return out, time.perf_counter() - t


def items_paths(boxes: list, day: dt.date | None, limit: int | None) -> list[str]:
    """Items pages with ``as_of`` (none when ``day`` is None) over street-view ``boxes``."""
    params = lambda b: {"bbox": ",".join(map(str, b)), "f": "json",  # noqa: E731
                        **({"as_of": day.isoformat()} if day else {}), **({"limit": limit} if limit else {})}
    return ["/api/collections/construction_permits/items?" + urlencode(params(b)) for b in boxes]


def sql_counting(store, day: dt.date) -> int:
    """The dashboard's dossier counting as it is: one grouped query (``Store.dossier_counts``), then per group."""
    counts, _, _ = stats.grouped_counts(store.dossier_counts(Filter(as_of=day), day), day, Calendar())
    return int(counts["received"].sum())


def arrays_counting(store, day: dt.date) -> int:
    """The dashboard's dossier counting over the arrays kept in memory (``gisapp.analysis.counts``)."""
    counts, _, _ = stats.grouped_counts(dossier_counts(store, Filter(as_of=day), day), day, Calendar())
    return int(counts["received"].sum())


def python_dashboard(store, day: dt.date) -> int:
    """The dashboard's counters as they were counted before ``Store.dossier_counts``: per dossier, in Python."""
    flt, counts = Filter(as_of=day), None
    for batch in stats.as_of_batches(store, flt, stats.DASHBOARD_FIELDS):
        counts = stats.add_counts(counts, stats.ward_counts(batch, day, Calendar()))
        stats.monthly_counts(batch)
    return int(counts["received"].sum()) if counts is not None else 0


def items_cpu_ms(url: str, paths: list[str]) -> float:
    """CPU of this process per items page (Flask test client, one thread, after a warm-up pass): what a page
    costs a server, less sensitive than latency to other load on the machine (PostGIS's own work not included)."""
    from gisapp.web.app import create_app

    client = create_app({"STORE": url, "BASEMAP": "none"}).test_client()
    for path in paths:
        assert client.get(path).status_code == 200
    started = time.process_time()
    for path in paths:
        client.get(path)
    return 1000 * (time.process_time() - started) / len(paths)


def map_first_view(base: str, day: dt.date | None, runs: int = 3, new_days: bool = False) -> dict:
    """``/?as_of=day`` (``/`` when ``day`` is None) in fresh Chromium contexts (empty cache): ms from navigation
    start to the dossiers painted.  ``new_days``: each view as of another day not viewed before (``day`` minus
    1, 2, … weeks), so that no count the server keeps per data version answers it."""
    from playwright.sync_api import sync_playwright

    from tests.browser_util import launch_chromium

    def once(browser, day=day) -> tuple[float, str]:
        context = browser.new_context(viewport={"width": 1400, "height": 860}, bypass_csp=True)
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
        page.goto(f"{base}/" + (f"?as_of={day.isoformat()}" if day else ""), wait_until="commit")
        page.wait_for_function("window.gisapp && gisapp.state.paintedAt.permits !== undefined && gisapp.idle()",
                               timeout=120000, polling=10)
        drawn, mode = page.evaluate("gisapp.state.paintedAt.permits"), page.evaluate("gisapp.state.mode.permits")
        context.close()
        return drawn, mode

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            once(browser)  # warm the server
            views = [once(browser, day - dt.timedelta(weeks=1 + i) if new_days and day else day) for i in range(runs)]
        finally:
            browser.close()
    return {"median_ms": round(statistics.median(v[0] for v in views)), "all_ms": [round(v[0]) for v in views],
            "mode": views[-1][1]}


def items_level(base: str, boxes, day: dt.date | None, limit: int | None, clients: int, seconds: float,
                log: Path, state: str) -> dict:
    """API items pages under ``clients`` clients for ``seconds`` (wrk, or threads): the clients' p50/p95 and the
    same requests' times in the server (its access log), with the load average before and after."""
    paths = items_paths(boxes, day, limit)
    loadgen.run_threads([base], paths[:20], 2, 5)  # warm up
    offset, load = log.stat().st_size, os.getloadavg()[0]
    result = loadgen.run(base, paths, clients, seconds=seconds)
    out = {k: result[k] for k in ("p50_ms", "p95_ms", "p99_ms", "requests", "failures", "client")}
    out |= {"state": state, "load_avg": [load, os.getloadavg()[0]],
            "server": server_times(log, offset, "/items")}
    inside = out["server"] or {}
    print(f"    API items {'as_of' if day else 'without as_of'}, limit {limit or 100}, {clients} clients "
          f"({result['client']}, {state}): p50 {result['p50_ms']:.0f} ms p95 {result['p95_ms']:.0f} ms "
          f"p99 {result['p99_ms']:.0f} ms ({result['requests']} requests, {result['failures']} failed); in the "
          f"server p50 {inside.get('p50_ms', float('nan')):.0f} p95 {inside.get('p95_ms', float('nan')):.0f} "
          f"max {inside.get('max_ms', float('nan')):.0f} ms; load average {load:.1f}→{os.getloadavg()[0]:.1f}",
          flush=True)
    return out


def dashboard_after_a_write(store, row: dict) -> None:
    """A saved dossier, then the dashboard: the arrays read again for it only."""
    one = store.read("construction_permits", limit=1)
    one["status"] = "REFUSED" if one["status"].iloc[0] != "REFUSED" else "RETURNED"
    _, row["write_one_s"] = timed(store.write, {"construction_permits": one}, mode="upsert")
    _, row["dashboard_after_write_s"] = timed(stats.dashboard, store, Filter(as_of=DAYS[1]), Calendar())
    print(f"    one dossier saved ({row['write_one_s']:.2f} s), then the dashboard as of {DAYS[1]}: "
          f"{row['dashboard_after_write_s']:.2f} s", flush=True)


def run_backend(name: str, store, url: str, frames: dict, history, boxes, clients: int, seconds: float,
                api: bool = True, browser: bool = True, write: bool = True, python: bool = True,
                dashboard: bool = True) -> dict:
    row: dict = {"backend": name, "load_average": os.getloadavg()}
    if write:
        _, row["write_s"] = timed(store.write, frames, mode="replace", meta={"as_of": "2022-07-08"}, history=history)
        print(f"  {name}: wrote layers + {len(history):,} history rows in {row['write_s']:.1f} s", flush=True)
    for day in DAYS if dashboard else ():
        past, t = timed(store.statuses_as_of, "construction_permits", day)
        row[f"statuses_as_of_{day}_s"] = t
        # the first of a process counts in SQL while the dossiers' arrays are read in the background
        # (gisapp.analysis.counts); once they are, the dashboards count over them
        _, first = timed(stats.dashboard, store, Filter(as_of=day), Calendar())
        _, row[f"arrays_wait_{day}_s"] = timed(counts.columns, store)
        runs = []
        for _ in range(3):
            board, t = timed(stats.dashboard, store, Filter(as_of=day), Calendar())
            runs.append(t)
        row[f"dashboard_{day}_first_s"] = first
        row[f"dashboard_{day}_s"] = statistics.median(runs)
        _, row[f"counting_sql_{day}_s"] = timed(sql_counting, store, day)
        _, row[f"counting_arrays_{day}_s"] = timed(arrays_counting, store, day)
        if python:
            received, row[f"counting_python_{day}_s"] = timed(python_dashboard, store, day)
            assert received == board.total.received, (received, board.total.received)
        print(f"    as of {day}: statuses_as_of {len(past):,} keys {row[f'statuses_as_of_{day}_s']:.2f} s; "
              f"dashboard {board.total.received:,} dossiers median {row[f'dashboard_{day}_s']:.2f} s "
              f"(first {first:.2f} s, then arrays ready after {row[f'arrays_wait_{day}_s']:.2f} s more); "
              f"its dossier counting over the arrays "
              f"{row[f'counting_arrays_{day}_s']:.2f} s, in SQL {row[f'counting_sql_{day}_s']:.2f} s"
              + (f" (counted in Python as before: {row[f'counting_python_{day}_s']:.2f} s)" if python else ""),
              flush=True)
    if dashboard:
        dashboard_after_a_write(store, row)
    if api:
        for day in (DAYS[1], None):
            label = f"items_cpu_ms_{'as_of' if day else 'plain'}"
            row[label] = items_cpu_ms(url, items_paths(boxes, day, None))
        print(f"    API items page CPU in this process: {row['items_cpu_ms_as_of']:.1f} ms as_of, "
              f"{row['items_cpu_ms_plain']:.1f} ms without", flush=True)
    if not api and not browser:
        return row
    with tempfile.TemporaryDirectory(prefix="gisapp-bench-history-") as tmp:
        log = Path(tmp) / "server.log"
        # no tile renderer at work beside the measurements (tiles are built on request, the map's first view
        # at the district's zoom asks for none): the state measured is the server's own
        settings = {"GISAPP_TILE_WARM": "none", "GISAPP_TILE_DIR": str(Path(tmp) / "tiles")}
        if api:
            # just started: each worker reads its counts' arrays in the background (seconds at 1M)
            with app_servers(url, settings=settings, log=log) as bases:
                row["items_while_reading_arrays"] = items_level(bases[0], boxes, DAYS[1], None, clients,
                                                                seconds, log, "while the workers read their arrays")
        with app_servers(url, settings=settings, log=log) as bases:
            row["arrays_ready_s"] = wait_for_arrays(bases[0])
            print(f"    server started; its workers' counts arrays ready after {row['arrays_ready_s']:.0f} s "
                  f"(load average {os.getloadavg()[0]:.1f}); the renderer idle (GISAPP_TILE_WARM=none)", flush=True)
            if api:
                for day, limit in ((DAYS[1], None), (None, None), (DAYS[1], 1000), (None, 1000)):
                    label = f"items_{'as_of' if day else 'plain'}_limit_{limit or 100}"
                    row[label] = items_level(bases[0], boxes, day, limit, clients, seconds, log, "warm")
            if browser:
                row["map_as_of_first_view"] = view = map_first_view(bases[0], DAYS[1])
                row["map_as_of_new_day_first_view"] = new = map_first_view(bases[0], DAYS[1], new_days=True)
                row["map_first_view"] = plain = map_first_view(bases[0], None)
                print(f"    map as of {DAYS[1]}, first view: median {view['median_ms']:,} ms {view['all_ms']} "
                      f"({view['mode']}); as of days not viewed before {new['median_ms']:,} ms {new['all_ms']}; "
                      f"without as_of {plain['median_ms']:,} ms (load average {os.getloadavg()[0]:.1f})",
                      flush=True)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000", help="dossiers (and sidewalk permits), comma-separated")
    parser.add_argument("--backends", default="gpkg,postgis")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load per measurement")
    parser.add_argument("--skip-api", action="store_true", help="no API load (dashboard and map only)")
    parser.add_argument("--no-browser", action="store_true", help="no map first view in Chromium")
    parser.add_argument("--no-python", action="store_true", help="no per-dossier counting in Python to compare")
    parser.add_argument("--no-dashboard", action="store_true", help="no dashboard (nor the write before the "
                        "servers start): the API and the map only")
    parser.add_argument("--store", help="a loaded store to measure instead of generating and writing one "
                                        "(a GeoPackage path or a PostGIS URL; it is written to: one dossier "
                                        "saved). --sizes and --backends are then ignored")
    args = parser.parse_args(argv)
    if args.store:
        results = {"started": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
                   "cpus": os.cpu_count(), "store": args.store, "runs": [existing_store(args)]}
        print_table(results)
        save_results("bench_history", results)
        return
    backends = args.backends.split(",")
    results: dict = {"started": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
                     "cpus": os.cpu_count(), "runs": []}
    server = start_server(SERVER_SETTINGS) if "postgis" in backends else None
    try:
        with tempfile.TemporaryDirectory(prefix="gisapp-bench-") as tmp:
            for n in (int(s) for s in args.sizes.split(",")):
                print(f"{n:,} dossiers and sidewalk permits: generating …", flush=True)
                frames, generator = make_data(n)
                frames = {k: frames[k] for k in ("wards", "construction_permits", "sidewalk_permits") if k in frames}
                history = demo_history(frames)
                boxes, _ = view_boxes(frames, 200)
                per_dossier = len(history[history["layer"] == "construction_permits"]) / n
                run = {"n": n, "generator": generator, "history_rows": len(history),
                       "history_rows_per_dossier": round(per_dossier, 2), "rows": []}
                print(f"  {len(history):,} history rows ({per_dossier:.1f} per dossier)", flush=True)
                for name in backends:
                    if name == "gpkg":
                        path = Path(tmp) / f"bench-{n}.gpkg"
                        store, url = GeoPackageStore(path, must_exist=False), str(path)
                    else:
                        url = server.url(server.create_database("bench"))
                        store = PostGISStore(url, must_exist=False)
                    run["rows"].append(run_backend(name, store, url, frames, history, boxes, args.clients,
                                                   args.seconds, api=not args.skip_api,
                                                   browser=not args.no_browser, python=not args.no_python))
                    if name == "postgis":
                        close_pool(url)
                    else:
                        path.unlink(missing_ok=True)
                results["runs"].append(run)
    finally:
        if server is not None:
            server.stop()
    print_table(results)
    save_results("bench_history", results)


def existing_store(args) -> dict:
    """The measurements of ``run_backend`` on the loaded store ``args.store`` (not written first)."""
    import geopandas as gpd
    import shapely

    from gisapp.store import open_store

    store = open_store(args.store)
    name = "postgis" if args.store.startswith(("postgresql:", "postgres:")) else "gpkg"
    table = store.read_arrow("construction_permits", fields=["dossier_code"])
    assert table is not None, f"{args.store} has no dossiers"
    n = table.num_rows
    frames = {"construction_permits": gpd.GeoDataFrame(
        geometry=shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)), crs=5899)}
    boxes, _ = view_boxes(frames, 200)
    print(f"{args.store}: {n:,} dossiers", flush=True)
    row = run_backend(name, store, args.store, {}, None, boxes, args.clients, args.seconds,
                      api=not args.skip_api, browser=not args.no_browser, write=False, python=not args.no_python,
                      dashboard=not args.no_dashboard)
    return {"n": n, "rows": [row]}


def print_table(results: dict) -> None:
    print("\nsize       backend  write s  dashboard s (03-31 / 06-30) [its counting: SQL / as before in Python, "
          "06-30]  map first view ms  items p95 ms as_of (plain), limit 100 / 1000")
    for run in results["runs"]:
        for row in run["rows"]:
            items = (f"{row['items_as_of_limit_100']['p95_ms']:>6.0f} ({row['items_plain_limit_100']['p95_ms']:.0f}) / "
                     f"{row['items_as_of_limit_1000']['p95_ms']:.0f} ({row['items_plain_limit_1000']['p95_ms']:.0f})"
                     if "items_as_of_limit_100" in row else "-")
            view = row.get("map_as_of_first_view", {}).get("median_ms", "-")
            python = row.get(f"counting_python_{DAYS[1]}_s")
            nan = float("nan")
            print(f"{run['n']:>9,}  {row['backend']:<7} {row.get('write_s', nan):>7.1f}  "
                  f"{row.get(f'dashboard_{DAYS[0]}_s', nan):>6.2f} / {row.get(f'dashboard_{DAYS[1]}_s', nan):<6.2f} "
                  f"[{row.get(f'counting_sql_{DAYS[1]}_s', nan):.2f} / {'-' if python is None else f'{python:.2f}'}]"
                  f"{view:>18}  {items}")


if __name__ == "__main__":
    main()
