"""Concurrent HTTP clients for the latency benchmarks: wrk when installed, Python threads otherwise.

``wrk`` (Debian package ``wrk``) is a C load generator: its clients cost the
2-core machine next to nothing, so the figures are the server's.  The
Python fallback (one thread per client, ``requests``) spends a good part of
a core itself and so reports higher latencies under load.  Both keep
``clients`` requests in flight, cycle through ``paths`` (a different one per
request) and report p50/p95/p99 in milliseconds.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

_SCRIPT = """
local paths = {%(paths)s}
local counter = 0
local threads = {}
function setup(thread) thread:set("id", #threads) table.insert(threads, thread) end
function init(args) counter = id * 7919 end
function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"p50_ms":%%.2f,"p95_ms":%%.2f,"p99_ms":%%.2f,"requests":%%d,"bytes":%%d,'
    .. '"non2xx":%%d,"errors":%%d,"seconds":%%.3f}\\n',
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.bytes, e.status, e.connect + e.read + e.write + e.timeout, summary.duration / 1e6))
end
"""


def wrk_path() -> str | None:
    """The wrk executable, or ``None``."""
    return shutil.which("wrk")


def run(base: str, paths: list[str], clients: int, *, seconds: float = 15.0, requests_per_client: int = 40) -> dict:
    """Latency of GET ``base + path`` under ``clients`` concurrent clients: wrk when present, else threads."""
    if wrk_path():
        return run_wrk(base, paths, clients, seconds=seconds)
    return run_threads([base], paths, clients, requests_per_client)


def run_wrk(base: str, paths: list[str], clients: int, *, seconds: float = 15.0) -> dict:
    """``wrk -c clients`` for ``seconds`` over ``paths``; its percentiles."""
    script = _SCRIPT % {"paths": ",".join(json.dumps(p) for p in paths)}
    with tempfile.TemporaryDirectory(prefix="gisapp-wrk-") as tmp:
        lua = Path(tmp) / "paths.lua"
        lua.write_text(script)
        cmd = [wrk_path(), f"-t{min(clients, 2)}", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "30s",
               "-s", str(lua), base]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    match = re.search(r"^WRKJSON (.*)$", out.stdout, re.MULTILINE)
    if not match:
        raise RuntimeError(f"wrk printed no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    stats = json.loads(match.group(1))
    return {"client": "wrk", "clients": clients, "requests": stats["requests"],
            "failures": stats["non2xx"] + stats["errors"], "p50_ms": stats["p50_ms"], "p95_ms": stats["p95_ms"],
            "p99_ms": stats["p99_ms"], "mean_bytes": stats["bytes"] / max(stats["requests"], 1),
            "throughput_rps": stats["requests"] / stats["seconds"] if stats["seconds"] else None}


def run_threads(bases: list[str], paths: list[str], clients: int, requests_per_client: int,
                inspect=None, ok=(200,)) -> dict:
    """One thread per client, each sending ``requests_per_client`` requests (client ``k`` to ``bases[k % n]``).

    ``inspect(body) -> number`` is averaged over the successful responses
    (status in ``ok``) as ``mean_inspected``, e.g. the features a page returned.
    """
    import requests

    latencies, inspected, sizes, failures = [], [], [], []
    lock = threading.Lock()

    def client(k: int):
        session = requests.Session()
        base = bases[k % len(bases)]
        for j in range(requests_per_client):
            path = paths[(k * requests_per_client + j) % len(paths)]
            t = time.perf_counter()
            try:
                r = session.get(base + path, timeout=60)
                body = r.content
                elapsed = time.perf_counter() - t
            except requests.RequestException as err:
                with lock:
                    failures.append(str(err))
                continue
            with lock:
                if r.status_code not in ok:
                    failures.append(f"HTTP {r.status_code}: {body[:200]!r}")
                else:
                    latencies.append(elapsed)
                    sizes.append(len(body))
                    if inspect is not None:
                        inspected.append(inspect(body))

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    lat = np.array(latencies) * 1000
    pct = (lambda q: float(np.percentile(lat, q))) if len(lat) else (lambda q: None)
    return {"client": "python-threads", "clients": clients, "requests": len(lat), "failures": len(failures),
            "failure_sample": failures[:3],
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "mean_bytes": float(np.mean(sizes)) if sizes else None,
            "mean_inspected": float(np.mean(inspected)) if inspected else None,
            "throughput_rps": len(lat) / wall if wall else None}
