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
import math
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


def run(base: str, paths: list[str], clients: int, *, seconds: float = 15.0, requests_per_client: int = 40,
        timed: bool = False) -> dict:
    """Latency of GET ``base + path`` under ``clients`` concurrent clients: wrk when present, else threads.

    ``timed``: the threads run for ``seconds`` too (instead of ``requests_per_client`` requests each), and
    the result says how stable the level was: ``p95_halves_ms``, the p95 of its first and second half
    (two wrk runs of half the time each with wrk).
    """
    if wrk_path():
        if not timed:
            return run_wrk(base, paths, clients, seconds=seconds)
        halves = [run_wrk(base, paths, clients, seconds=seconds / 2) for _ in range(2)]
        both = dict(halves[1])
        both["requests"] = sum(h["requests"] for h in halves)
        both["failures"] = sum(h["failures"] for h in halves)
        for key in ("p50_ms", "p95_ms", "p99_ms"):  # the worse half: a level is as good as its worse part
            both[key] = max(h[key] for h in halves)
        both["p95_halves_ms"] = [h["p95_ms"] for h in halves]
        return both
    if timed:
        return run_threads([base], paths, clients, 10**9, seconds=seconds)
    return run_threads([base], paths, clients, requests_per_client)


def run_wrk(base: str, paths: list[str], clients: int, *, seconds: float = 15.0) -> dict:
    """``wrk -c clients`` for ``seconds`` over ``paths``; its percentiles."""
    script = _SCRIPT % {"paths": ",".join(json.dumps(p) for p in paths)}
    with tempfile.TemporaryDirectory(prefix="gisapp-wrk-") as tmp:
        lua = Path(tmp) / "paths.lua"
        lua.write_text(script)
        # wrk takes whole seconds (``-d7.5s`` is refused): a fraction is rounded up
        cmd = [wrk_path(), f"-t{min(clients, 2)}", f"-c{clients}", f"-d{max(1, math.ceil(seconds))}s",
               "--timeout", "30s", "-s", str(lua), base]
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
                inspect=None, ok=(200,), seconds: float | None = None) -> dict:
    """One thread per client, each sending ``requests_per_client`` requests (client ``k`` to ``bases[k % n]``),
    or as many as it can in ``seconds`` when given.

    ``inspect(body) -> number`` is averaged over the successful responses
    (status in ``ok``) as ``mean_inspected``, e.g. the features a page returned.
    """
    import requests

    latencies, inspected, sizes, failures, starts = [], [], [], [], []
    lock = threading.Lock()
    deadline = None if seconds is None else time.perf_counter() + seconds

    def client(k: int):
        session = requests.Session()
        base = bases[k % len(bases)]
        stride = 7919 if deadline is not None else requests_per_client
        for j in range(requests_per_client):
            if deadline is not None and time.perf_counter() >= deadline:
                break
            path = paths[(k * stride + j) % len(paths)]
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
                    starts.append(t)
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
    halves = None
    if len(lat) >= 40:  # the p95 of the requests started in the first and in the second half of the run
        middle = started + wall / 2
        first = np.array(starts) < middle
        halves = [float(np.percentile(lat[first], 95)) if first.any() else None,
                  float(np.percentile(lat[~first], 95)) if (~first).any() else None]
    return {"client": "python-threads", "clients": clients, "requests": len(lat), "failures": len(failures),
            "failure_sample": failures[:3], "p95_halves_ms": halves,
            "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "mean_bytes": float(np.mean(sizes)) if sizes else None,
            "mean_inspected": float(np.mean(inspected)) if inspected else None,
            "throughput_rps": len(lat) / wall if wall else None}
