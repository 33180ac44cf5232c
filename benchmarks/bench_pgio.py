"""Benchmark: the PostGIS store's bulk input and output around ``gisapp analyze`` (issue 15 item 3).

Times, each stage on its own, with the machine's load average beside it:

- ``load_s``: ``store.write`` of the dossiers, sidewalk permits, wards and sidewalks in one replace
  (:func:`benchmarks.bench_postgis.make_data`), into a fresh database; ``load_client_cpu_s`` this process's CPU
  and ``load_server_cpu_s`` that of the database's server processes (read from ``/proc``: a server on this
  machine; ``None`` otherwise), ``load_wal_mb`` the WAL the server wrote meanwhile (with its ``wal_level``);
- ``read_s``: the analysis's read of its four layers (:func:`gisapp.analysis.run.read_layer`, two at
  once as :func:`~gisapp.analysis.run.analyze_store` reads them);
- ``findings_same_s``: a replace of the findings by the same findings (what a full analysis that finds
  what is stored writes: only the rows whose hash changed, here none);
- ``findings_all_s``: a replace of the findings by findings that all differ (a new table loaded whole).

Usage::

    python -m benchmarks.bench_pgio --sizes 20000            # a private server; load, analyse, then the stages
    python -m benchmarks.bench_pgio --url postgresql://…/db    # the stages on an analysed store (it is written:
                                                               # use a copy), no load
    python -m benchmarks.bench_pgio --server postgresql://…/postgres --sizes 1000000 --load-only
                                                               # the load into a fresh database on that server
    python -m benchmarks.bench_pgio --sizes 1000000 --load-only --setting wal_level=minimal \
        --setting max_wal_senders=0                            # a private server without WAL for the load

The 1M case of the issue: ``--url`` on a copy of the shared 1M city (``CREATE DATABASE … TEMPLATE city1m``)
and ``--server … --sizes 1000000 --load-only``, each under ``flock /work/data1m/heavy.lock``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import save_results  # noqa: E402


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def stages(url: str) -> dict:
    """The read and findings-write stages on the analysed store at ``url``."""
    import geopandas as gpd

    from gisapp.analysis.run import LAYERS, read_layer
    from gisapp.store.postgis import PostGISStore

    store = PostGISStore(url, must_exist=False)
    store.upgrade()
    out: dict = {"read_load": _load()}
    started, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=2) as pool:
        rows = sum(len(f) for f in pool.map(lambda name: read_layer(store, name), LAYERS))
    out["read_s"], out["read_rows"] = round(time.perf_counter() - started, 2), rows
    # the client's CPU (both threads): the rest of the read is the server's packing (on a 2-core machine the
    # read costs about the sum of both halves)
    out["read_client_cpu_s"] = round(time.process_time() - cpu, 2)
    print(f"  read of the analysed layers: {out['read_s']:.2f} s ({rows:,} rows, client CPU "
          f"{out['read_client_cpu_s']:.1f} s, load {out['read_load']})", flush=True)
    findings, meta = store.read("findings"), store.meta().get("findings")
    out["findings"] = len(findings)
    store.write({"findings": findings}, mode="replace", meta={"findings": meta})  # every row with its hash

    def replaced_by(frame, name: str, what: str) -> None:
        out[f"findings_{name}_load"] = _load()
        started = time.perf_counter()
        cpu = time.process_time()
        store.write({"findings": frame}, mode="replace", meta={"findings": meta})
        out[f"findings_{name}_s"] = round(time.perf_counter() - started, 2)
        out[f"findings_{name}_client_cpu_s"] = round(time.process_time() - cpu, 2)
        print(f"  findings replaced by {what}: {out[f'findings_{name}_s']:.2f} s (client CPU "
              f"{out[f'findings_{name}_client_cpu_s']:.1f} s, load {out[f'findings_{name}_load']})", flush=True)

    replaced_by(findings, "same", f"the same {len(findings):,}")
    changed = gpd.GeoDataFrame(findings.assign(detail=findings["detail"].fillna("") + " ·"), geometry="geometry",
                               crs=findings.crs)
    replaced_by(changed, "all", f"{len(findings):,} all changed")
    store.write({"findings": findings}, mode="replace", meta={"findings": meta})  # as they were
    return out


class ServerCPU:
    """The CPU seconds of the server processes of the database at ``url`` (its backends and their parallel
    workers) while it runs: each one's ``/proc`` counters read every 0.2 s, the last reading kept, so a process
    that ends keeps its last reading (the server must run on this machine: ``None`` otherwise)."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._con = psycopg.connect(url, autocommit=True)
        self._seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._local = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _cpu(pid: int) -> float | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = [r[0] for r in self._con.execute("SELECT pid FROM pg_stat_activity WHERE datname = "
                                                    "current_database() AND pid <> pg_backend_pid()").fetchall()]
            for pid in pids:
                cpu = self._cpu(pid)
                if cpu is None:
                    self._local = self._local and pid in self._seen
                else:
                    self._seen[pid] = cpu
            self._stop.wait(0.2)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        self._con.close()
        return round(sum(self._seen.values()), 1) if self._local and self._seen else None


def load(url: str, n: int) -> dict:
    """Generate ``n`` per layer and time their load into the empty store at ``url``."""
    from benchmarks.bench_postgis import make_data
    from gisapp.store.postgis import PostGISStore

    started = time.perf_counter()
    frames, how = make_data(n)
    generated = time.perf_counter() - started
    store = PostGISStore(url, must_exist=False)
    store.upgrade()
    out = {"n": n, "generator": how, "generate_s": round(generated, 1), "load_load": _load()}
    wal = WalWritten(url)
    server = ServerCPU(url)  # a fresh database: its only backends are the load's (the pool's connections)
    started, cpu = time.perf_counter(), time.process_time()
    store.write(frames, mode="replace", meta={"as_of": "2026-01-01"})
    out["load_s"] = round(time.perf_counter() - started, 2)
    # the client's CPU (all its threads, less the sampler's few queries): the rest is the server's
    out["load_client_cpu_s"] = round(time.process_time() - cpu, 2)
    out["load_server_cpu_s"] = server.stop()
    out["load_wal_mb"], out["wal_level"] = wal.stop()
    print(f"  load of {n:,} per layer ({', '.join(f'{k} {len(v):,}' for k, v in frames.items())}): "
          f"{out['load_s']:.2f} s, client CPU {out['load_client_cpu_s']:.1f} s, server CPU "
          f"{out['load_server_cpu_s']} s, WAL {out['load_wal_mb']:,.0f} MB (wal_level {out['wal_level']}; "
          f"load {out['load_load']}, {_load()} after)", flush=True)
    return out


class WalWritten:
    """The WAL the server at ``url`` writes from now to :meth:`stop` (MB; the whole server's, other databases'
    writes included) and its ``wal_level``: a load into tables created in its own transactions writes none of
    their rows and index pages with ``wal_level = minimal``, all of them (about the data's size) otherwise."""

    def __init__(self, url: str) -> None:
        import psycopg

        self._con = psycopg.connect(url, autocommit=True)
        self._start = self._con.execute("SELECT pg_current_wal_lsn()").fetchone()[0]

    def stop(self) -> tuple[float, str]:
        written, level = self._con.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s), "
                                           "current_setting('wal_level')", [self._start]).fetchone()
        self._con.close()
        return round(float(written) / 1e6, 1), level


def _database_url(server: str, name: str) -> str:
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000", help="features per layer to load (default: %(default)s)")
    parser.add_argument("--url", help="time the read and findings stages on this analysed store (no load)")
    parser.add_argument("--server", help="load into a fresh database on this server (URL of a database to "
                        "connect to for CREATE DATABASE), instead of a private server")
    parser.add_argument("--load-only", action="store_true", help="only the load")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting of the private server, over the benchmark's (repeatable; e.g. "
                        "wal_level=minimal with max_wal_senders=0)")
    args = parser.parse_args(argv)
    results = []
    if args.url:
        results.append({"url": args.url, **stages(args.url)})
    else:
        import psycopg

        from gisapp.analysis.incremental import stored_params
        from gisapp.analysis.run import analyze_store
        from gisapp.store.postgis import PostGISStore, close_pool

        server = None
        if args.server is None:
            from benchmarks.bench_postgis import SERVER_SETTINGS
            from tests.pg_server import start_server

            server = start_server({**SERVER_SETTINGS, **dict(kv.split("=", 1) for kv in args.setting)})
        try:
            for n in [int(s) for s in args.sizes.split(",") if s.strip()]:
                name = f"gisapp_bench_pgio_{n}"
                if server is not None:
                    url = server.url(server.create_database(name))
                else:
                    with psycopg.connect(args.server, autocommit=True) as con:
                        con.execute(f"DROP DATABASE IF EXISTS {name}")
                        con.execute(f"CREATE DATABASE {name}")
                    url = _database_url(args.server, name)
                try:
                    row = load(url, n)
                    if not args.load_only:
                        store = PostGISStore(url)
                        result, _ = analyze_store(store, stored_params(store))
                        store.write({"findings": result.findings}, mode="replace",
                                    meta={"findings": result.params.as_meta()})
                        row.update(stages(url))
                    results.append(row)
                finally:
                    close_pool(url)
                    if server is None:
                        with psycopg.connect(args.server, autocommit=True) as con:
                            con.execute(f"DROP DATABASE IF EXISTS {name}")
        finally:
            if server is not None:
                server.stop()
    save_results("pgio", {"results": results})


if __name__ == "__main__":
    main()
