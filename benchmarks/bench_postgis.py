"""Benchmark: the GeoPackage and the PostGIS store on the same data, at city scale.

For each size (default 100,000 and 1,000,000 permits per layer) it generates
construction dossiers and sidewalk-use permits (:func:`gisapp.demo.build.generate`
when it works at that size, else the vectorised generator below), loads them
into each backend — a GeoPackage file, and PostGIS on a private server the
benchmark starts (``tests/pg_server.py``) — and reports:

- load time (``store.write`` of both layers and the wards: one transaction);
- analysis time: read the three layers + :func:`gisapp.analysis.overlaps.find_overlaps`
  (geopandas), when the module exists;
- items-page latency: ``gisapp serve --workers 2`` (gunicorn) in a child
  process on 127.0.0.1, clients fetching
  ``/api/collections/construction_permits/items?bbox=…&limit=1000`` for
  random street-view boxes (~1,000 features each), p50/p95 at 8 and 32
  concurrent clients for ``--seconds`` each (:mod:`benchmarks.loadgen`:
  wrk when installed, else Python threads, which load the same 2 cores),
  in each state of ``--items-states`` (each row says which, see
  :data:`ITEMS_STATES`), after autovacuum has finished with the load
  (waited for, and said); each level also reports the p95 of its two halves
  (a level whose halves differ is not stable: run it longer), the
  machine's load average (this machine is shared) and the CPU a page cost
  in the app server's workers and the database's backends
  (:func:`cpu_per_page`: what the page costs rather than how long it
  waited, though on this shared virtual machine the same pages cost more
  CPU when it is busy);
- the time the server takes to render the unfiltered z14–z17 tiles after
  it starts (:mod:`gisapp.tiles.disk`), then vector-tile latency (z14–z17
  tiles at random parcels), the same way, three times: as served (memory
  cache and shared folder), from the shared folder only (memory caches
  off: each request a process's first for its tile), and built on request
  (no folder, no cache: what a filtered tile costs).

Prints a table; writes JSON to ``benchmarks/out/``.

Usage::

    python -m benchmarks.bench_postgis [--sizes 100000,1000000] [--clients 8,32] [--seconds 15]
        [--items-states cold,warm,rendering]

The issue's 1M case alone, items only (about 10 minutes; run it on a quiet machine)::

    python -m benchmarks.bench_postgis --sizes 1000000 --clients 8 --seconds 30 --no-analysis --no-map --no-tiles
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import loadgen, save_results  # noqa: E402
from gisapp import geo, schema  # noqa: E402
from gisapp.store.gpkg import GeoPackageStore  # noqa: E402
from gisapp.store.postgis import PostGISStore, close_pool  # noqa: E402
from tests.pg_server import free_port, start_server  # noqa: E402

try:
    from benchmarks import bench_tiles  # noqa: E402
except ImportError:  # tiles not built yet
    bench_tiles = None

#: Permits per km² of the synthetic city: a ~0.5 km² street view holds ~1,000.
DENSITY_PER_KM2 = 2000.0
VIEW_M = (800.0, 625.0)  # street-view box, metres (0.5 km²)
ORIGIN = (520_000.0, 1_740_000.0)
SERVER_SETTINGS = {"shared_buffers": "1GB", "work_mem": "64MB", "maintenance_work_mem": "1GB",
                   "max_wal_size": "8GB", "checkpoint_timeout": "30min", "effective_cache_size": "8GB",
                   "random_page_cost": "1.1", "max_connections": "100"}
WORKERS = 2  # gunicorn worker processes (one per core), 4 threads each
#: The states the items pages are measured in.  ``cold``: PostgreSQL restarted (its buffers empty; the OS's
#: file cache is not dropped; with ``--store`` not restarted: as found) and a new server process (its pools,
#: prepared statements and caches empty), measured from its first answer (``gisapp serve`` answers once it has
#: read its counts' arrays and tile index; each level says whether it still read them meanwhile, and when the
#: server answered); ``warm``: the same server after every page was asked for once; ``rendering``: warm, while
#: a new server's tile renderer renders every tile into an empty folder beside it (the state right after a
#: write, at 1M for ~2 minutes).  In every state autovacuum has finished with the load first.
ITEMS_STATES = ("cold", "warm", "rendering")


# -- data ----------------------------------------------------------------------------

def _rectangles(cx, cy, w, h, angle):
    dx = np.array([-0.5, 0.5, 0.5, -0.5, -0.5])
    dy = np.array([-0.5, -0.5, 0.5, 0.5, -0.5])
    x, y = dx[None, :] * w[:, None], dy[None, :] * h[:, None]
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    return shapely.polygons(np.stack([cx[:, None] + x * cos - y * sin, cy[:, None] + x * sin + y * cos], axis=-1))


def _text(prefix, numbers, width=7):
    return np.strings.add(prefix, np.strings.zfill(np.asarray(numbers).astype(str), width)).astype(object)


def generate(n: int, seed: int = 7) -> dict[str, gpd.GeoDataFrame]:
    """``n`` dossiers and ``n`` sidewalk permits on a square city at :data:`DENSITY_PER_KM2`.

    One parcel per grid cell (jittered, rotated a little), a sidewalk strip in
    front of it (5 % shifted onto the neighbour's strip: clashes), wards on a
    10 × 10 grid, dates over four years.  Vectorised: 1M per layer in seconds.
    """
    rng = np.random.default_rng(seed)
    cell = np.sqrt(1e6 / DENSITY_PER_KM2)
    cols = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    gx, gy = i % cols, i // cols
    cx = ORIGIN[0] + (gx + 0.5) * cell + rng.uniform(-2, 2, n)
    cy = ORIGIN[1] + (gy + 0.5) * cell + rng.uniform(-2, 2, n)
    w, h = rng.uniform(5, 12, n), rng.uniform(12, 18, n)
    parcels = _rectangles(cx, cy + 2, w, h, rng.uniform(-0.1, 0.1, n))
    side = cy + 2 - h / 2 - 2.0
    shift = np.where(rng.random(n) < 0.05, cell * 0.6, 0.0)
    strips = _rectangles(cx + shift, side, rng.uniform(3, 9, n), rng.uniform(1.5, 3.0, n), np.zeros(n))

    size = cols * cell
    ward_cols = 10
    wsize = size / ward_cols
    ward_ix = (np.minimum((cx - ORIGIN[0]) // wsize, ward_cols - 1)
               + ward_cols * np.minimum((cy - ORIGIN[1]) // wsize, ward_cols - 1)).astype(int)
    codes = np.array([f"{20000 + k:05d}" for k in range(ward_cols * ward_cols)], dtype=object)
    wk = np.arange(ward_cols * ward_cols)
    wx, wy = ORIGIN[0] + (wk % ward_cols) * wsize, ORIGIN[1] + (wk // ward_cols) * wsize
    wards = gpd.GeoDataFrame({
        "ward_key": np.strings.add(codes.astype(str), "-2020-01-01").astype(object), "ward_code": codes,
        "name": _text("Phường ", wk, 2), "district": "Đà Nẵng", "valid_from": pd.Timestamp("2020-01-01"),
        "valid_to": pd.NaT, "approximate": 1, "source": "synthetic"},
        geometry=shapely.box(wx, wy, wx + wsize, wy + wsize), crs=schema.STORE_CRS)

    ward = codes[ward_ix]
    mismatch = rng.random(n) < 0.001
    ward = np.where(mismatch, codes[(ward_ix + 1) % len(codes)], ward)
    day0 = np.datetime64("2022-01-01")
    received = day0 + rng.integers(0, 4 * 365, n).astype("timedelta64[D]")
    done = rng.random(n) < 0.8
    completed = np.where(done, received + rng.integers(3, 25, n).astype("timedelta64[D]"), np.datetime64("NaT"))
    streets = np.array(["Cách Mạng Tháng Tám", "Ông Ích Đường", "Nguyễn Hữu Thọ", "Trường Chinh", "Lê Đại Hành",
                        "Phạm Hùng", "Hoàng Văn Thái", "Tôn Đức Thắng"], dtype=object)
    street = streets[rng.integers(0, len(streets), n)]
    number = rng.integers(1, 999, n).astype(str)
    construction = gpd.GeoDataFrame({
        "dossier_code": _text("XD-", i), "permit_no": np.strings.add(number, "/GPXD").astype(object),
        "ward_code": ward,
        "status": rng.choice(["RETURNED", "RESULT_READY", "PROCESSING", "RECEIVED", "REFUSED"], n,
                             p=[0.6, 0.1, 0.15, 0.1, 0.05]).astype(object),
        "procedure": rng.choice(["NEW_BUILD", "RENOVATION", "ADJUSTMENT", "EXTENSION"], n,
                                p=[0.65, 0.2, 0.1, 0.05]).astype(object),
        "work_category": np.where(rng.random(n) < 0.94, "HOUSE", "OTHER").astype(object),
        "channel": np.where(rng.random(n) < 0.545, "ONLINE", "IN_PERSON").astype(object),
        "received_on": received, "due_on": received + np.timedelta64(21, "D"),
        "completed_on": completed, "issued_on": completed,
        "owner_name": _text("Nguyễn Văn ", i), "owner_id_no": _text("0480", i, 8),
        "site_address": np.strings.add(np.strings.add(number, " "), street.astype(str)).astype(object),
        "street": street, "map_sheet_no": (gy // 50 + 1).astype(str).astype(object),
        "parcel_no": (gx + 1).astype(str).astype(object),
        "plot_area_m2": np.round(w * h, 2), "footprint_m2": np.round(w * h * 0.8, 2),
        "floor_area_m2": np.round(w * h * 2.4, 2), "floors": rng.integers(1, 7, n), "height_m": rng.uniform(3, 22, n),
    }, geometry=parcels, crs=schema.STORE_CRS)
    start = day0 + rng.integers(0, 4 * 365, n).astype("timedelta64[D]")
    materials = rng.random(n) < 0.45
    sidewalk = gpd.GeoDataFrame({
        "permit_no": _text("VH-", i), "ward_code": ward,
        "purpose": np.where(materials, "MATERIALS", rng.choice(["BUSINESS", "PARKING", "EVENT"], n)).astype(object),
        "status": "RETURNED", "channel": "ONLINE", "applicant_name": _text("Trần Thị ", i),
        "address": construction["site_address"].to_numpy(), "street": street,
        "start_on": start, "end_on": start + rng.integers(1, 90, n).astype("timedelta64[D]"),
        "sidewalk_width_m": rng.uniform(3, 6, n), "used_width_m": rng.uniform(0.5, 3, n),
        "construction_dossier_code": np.where(materials & (rng.random(n) < 0.6), construction["dossier_code"], None),
    }, geometry=strips, crs=schema.STORE_CRS)
    sidewalk["used_area_m2"] = np.round(sidewalk.area, 2)
    return {"wards": wards, "construction_permits": construction, "sidewalk_permits": sidewalk}


def make_data(n: int) -> tuple[dict, str]:
    """Frames of ``n`` per layer and which generator made them."""
    try:
        from gisapp.demo import build as demo
        frames = demo.generate(n, n)
        if len(frames["construction_permits"]) == n and len(frames["sidewalk_permits"]) == n:
            return frames, "gisapp.demo.build.generate"
    except Exception as err:  # a work in progress elsewhere must not stop the benchmark
        print(f"  gisapp.demo.build.generate({n}, {n}) failed ({type(err).__name__}: {err}); using the local generator")
    return generate(n), "benchmarks.bench_postgis.generate"


def view_boxes(frames: dict, k: int, seed: int = 3, target: int = 1000) -> tuple[list[tuple], float]:
    """``k`` WGS84 street-view boxes (4:3) centred on random dossiers, sized to hold ~``target`` dossiers.

    Returns the boxes and the side length (m) of the box in EPSG:5899.
    """
    rng = np.random.default_rng(seed)
    bounds = shapely.bounds(frames["construction_permits"].geometry.values)
    cx, cy = (bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2
    pick = rng.integers(0, len(cx), k)
    x, y = cx[pick], cy[pick]
    order = np.argsort(cx)
    sx = cx[order]
    width = VIEW_M[0]
    for _ in range(4):  # scale the box until the mean count is near the target
        counts = []
        for i in range(min(k, 60)):
            lo, hi = np.searchsorted(sx, [x[i] - width / 2, x[i] + width / 2])
            ys = cy[order[lo:hi]]
            counts.append(int(np.count_nonzero(np.abs(ys - y[i]) <= width * 0.375)))
        width *= float(np.sqrt(target / max(np.mean(counts), 1.0)))
    w, h = width / 2, width * 0.375
    boxes = shapely.box(x - w, y - h, x + w, y + h)
    web = geo.transform(boxes, schema.STORE_CRS, schema.WEB_CRS)
    return [tuple(round(v, 6) for v in b.bounds) for b in web], width


# -- measurements ------------------------------------------------------------------------

def timed(func, *args, **kw):
    t = time.perf_counter()
    out = func(*args, **kw)
    return out, time.perf_counter() - t


def analysis_times(store, frames_n: int) -> dict:
    """Seconds for the geopandas path (read + find_overlaps) and the SQL path, when available."""
    out = {}
    try:
        from gisapp.analysis import overlaps as analysis
    except ImportError:
        return {"geopandas": None, "note": "gisapp.analysis.overlaps not available"}
    params = analysis.AnalysisParams(as_of=store.as_of())
    t = time.perf_counter()
    layers = {name: store.read(name) for name in ("construction_permits", "sidewalk_permits", "wards")}
    out["geopandas_read_s"] = time.perf_counter() - t
    result, out["geopandas_analysis_s"] = timed(analysis.find_overlaps, layers["construction_permits"],
                                                layers["sidewalk_permits"], layers["wards"], params)
    out["findings"] = int(len(result.findings))
    del layers
    return out


#: The ``gisapp serve`` process (gunicorn's master) behind each base URL :func:`app_servers` yields.
_MASTERS: dict[str, int] = {}
#: Seconds from starting each server (base URL) to its first answer to ``/healthz``.
_ANSWERED: dict[str, float] = {}


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers_cpu_s(base: str) -> float | None:
    """CPU seconds used so far by the worker processes of the server at ``base`` (``None``: no /proc), not its
    tile renderer's."""
    master = _MASTERS.get(base)
    if master is None or not Path(f"/proc/{master}").exists():
        return None
    return sum(_cpu_s(p) for p in _worker_pids(base))


def renderer_cpu_s(base: str) -> float | None:
    """CPU seconds used so far by the tile renderer of the server at ``base`` (its master's children that are
    not its workers: ``gisapp tiles watch``; on PostGIS not its queries' backends), ``None`` when it has none."""
    master = _MASTERS.get(base)
    children = Path(f"/proc/{master}/task/{master}/children")
    if master is None or not children.exists():
        return None
    workers = set(_worker_pids(base))
    others = [int(p) for p in children.read_text().split() if int(p) not in workers]
    return sum(_cpu_s(p) for p in others) if others else None


def _worker_pids(base: str) -> list[int]:
    """The process ids of the workers of the server at ``base`` (not its tile renderer's)."""
    master = _MASTERS.get(base)
    if master is None:
        return []
    children = Path(f"/proc/{master}/task/{master}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    # gunicorn's workers are forks of it (its command line); the tile renderer, also its child, is not
    command = Path(f"/proc/{master}/cmdline").read_bytes()
    workers = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes() == command:
                workers.append(pid)
    return workers


def backends_cpu_s(url: str, base: str | None = None) -> float | None:
    """CPU seconds used so far by the PostgreSQL backends serving ``url``'s database (``None`` for a GeoPackage
    or a server whose processes this machine cannot see): those of the workers of the server at ``base`` (their
    pooled connections), else all of the database's client backends."""
    pids = _backend_pids(url, base)
    if pids is None or (pids and not Path(f"/proc/{pids[0]}").exists()):
        return None
    return sum(_cpu_s(p) for p in pids)


def _backend_pids(url: str, base: str | None = None) -> list[int] | None:
    """The process ids of the client backends of ``url``'s database (``None`` for a GeoPackage): with ``base``,
    only those whose client is a worker of the server at ``base`` (their sockets' local ports; not its tile
    renderer's, whose queries the ``rendering`` state measures beside the pages)."""
    if "://" not in url:
        return None
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        rows = con.execute("SELECT pid, client_port FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchall()
    if base is None:
        return [pid for pid, _ in rows]
    ports = _local_ports(_worker_pids(base))
    return [pid for pid, port in rows if port in ports]


def _local_ports(pids: list[int]) -> set[int]:
    """The local TCP ports of the sockets processes ``pids`` hold open (/proc)."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@contextlib.contextmanager
def app_servers(store_url: str, processes: int = 1, settings: dict | None = None, log: Path | None = None,
                threads: int | None = None):
    """``processes`` × ``gisapp serve --workers 2`` (gunicorn) on free ports; their base URLs.

    ``settings`` are extra environment variables (``GISAPP_…``) for the servers.  ``log``: a file that gets
    their output (the access log, each line ending with the request's time in the worker in microseconds:
    :func:`server_times` reads it).  ``threads``: each worker's threads (``gisapp serve --threads``; ``None``:
    its default).
    """
    import requests

    env = {**os.environ, "GISAPP_STORE": store_url, "GISAPP_ENV": "development", **(settings or {})}
    procs, bases = [], []
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        for _ in range(processes):
            port = free_port()
            cmd = [sys.executable, "-c", "from gisapp.cli import main; main()", "serve", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(WORKERS), *(["--threads", str(threads)] if threads else [])]
            procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.PIPE))
            bases.append(f"http://127.0.0.1:{port}")
        started = time.monotonic()
        for proc, base in zip(procs, bases):
            for _ in range(600):
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                        break
                time.sleep(0.2)
            else:
                raise RuntimeError("server did not answer /healthz")
            _MASTERS[base], _ANSWERED[base] = proc.pid, round(time.monotonic() - started, 1)
        yield bases
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if log is not None:
            out.close()


_ACCESS = re.compile(r'"GET (\S+) HTTP/[\d.]+" (\d+) .* <(\d+)> (\d+)$')


def server_times(log: Path, offset: int, path_part: str) -> dict | None:
    """p50/p95/max in ms of the requests' times in the server (the access log's last field) logged in ``log``
    after byte ``offset``, of paths holding ``path_part``: the server's share of the clients' latency (the
    rest is waiting to be accepted and read, and the network), and how many each worker process answered
    (gthread workers keep a client's connection: 8 clients may all land on one of two workers)."""
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    found = [(m.group(3), int(m.group(4)) / 1000) for m in map(_ACCESS.search, text.splitlines())
             if m and path_part in m.group(1) and m.group(2) == "200"]
    if not found:
        return None
    values = np.array([t for _, t in found])
    workers: dict[str, int] = {}
    for pid, _ in found:
        workers[pid] = workers.get(pid, 0) + 1
    return {"requests": len(values), "p50_ms": float(np.percentile(values, 50)),
            "p95_ms": float(np.percentile(values, 95)), "max_ms": float(values.max()),
            "per_worker": sorted(workers.values(), reverse=True)}


def _arrays_ready(base: str) -> bool:
    """Whether the server at ``base`` says (one answer, from either worker) it holds its counts' arrays and tile
    index for the current data (see :func:`wait_for_arrays`)."""
    import requests

    with contextlib.suppress(requests.RequestException, ValueError):
        health = requests.get(f"{base}/healthz", timeout=30).json()
        kinds = {**(health.get("arrays") or {}), **(health.get("tile_index") or {})}
        return bool(kinds) and set(kinds.values()) == {"ready"}
    return False


def wait_for_arrays(base: str, timeout: float = 900, in_a_row: int = 10) -> float:
    """Seconds until ``/healthz`` says, ``in_a_row`` times running (answers come from either worker), that the
    server process holds what it reads in the background as it starts for the current data: its counts'
    arrays (:func:`gisapp.analysis.counts.state`) and its filtered tiles' index
    (:func:`gisapp.tiles.index.state`; at 1M that one goes on for seconds after the arrays, ~7 s of a core
    in the workers and ~2 s in the database, which a level measured then counted as the pages' CPU)."""
    started, ready = time.monotonic(), 0
    while ready < in_a_row:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"counts' arrays and tile index not read after {timeout:.0f} s")
        ready = ready + 1 if _arrays_ready(base) else 0
        time.sleep(0.1 if ready else 1)
    return time.monotonic() - started


def wait_until_idle(base: str, url: str, *, window: float = 2.0, below: float = 0.05, timeout: float = 300) -> float:
    """Seconds until the server's workers (and, on PostGIS, the database's backends) used less than
    ``below`` of a core over ``window`` seconds: nothing of the server's own left running in the background
    when a warm level starts (whatever a new version reads as it starts)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = (workers_cpu_s(base) or 0.0) + (backends_cpu_s(url, base) or 0.0)
        time.sleep(window)
        if (workers_cpu_s(base) or 0.0) + (backends_cpu_s(url, base) or 0.0) - before < below * window:
            break
    return time.monotonic() - started


def machine_cpu_s() -> float | None:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat: everything but idle and iowait,
    steal included: time the hypervisor gave to other machines), ``None`` without /proc."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields[:8]]
    busy = sum(values) - values[3] - values[4]  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def iowait_s() -> float | None:
    """Seconds the machine's cores have waited for the disk (/proc/stat's iowait, all cores), ``None`` without
    /proc: a level whose reads are not in the file cache (another job's copies of the 1M city evict it)."""
    try:
        return int(Path("/proc/stat").read_text().split(None, 6)[5]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def disk_read_mb(base: str, url: str) -> float | None:
    """MB the server's workers and (on PostGIS) their database backends have read from the disk so far
    (/proc/PID/io ``read_bytes``: not what the file cache answered); ``None`` when not readable."""
    pids = list(_worker_pids(base)) + (_backend_pids(url, base) or [])
    total = None
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{pid}/io").read_text().splitlines():
                if line.startswith("read_bytes:"):
                    total = (total or 0) + int(line.split()[1])
    return None if total is None else total / 1e6


def children_cpu_s() -> float:
    """CPU seconds of this process's waited-for children (wrk's runs)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_RETURNED = re.compile(rb'"numberReturned":(\d+)')


def items_paths(boxes: list) -> list[str]:
    """Items-page paths (1,000 features at most) for street-view ``boxes``."""
    return ["/api/collections/construction_permits/items?"
            + urlencode({"bbox": ",".join(map(str, b)), "limit": 1000, "f": "json"}) for b in boxes]


def returned(body: bytes) -> int:
    """``numberReturned`` of an items page."""
    m = _RETURNED.search(body[:4096]) or _RETURNED.search(body)
    return int(m.group(1)) if m else -1


def latency_levels(base: str, paths: list[str], clients: list[int], seconds: float, label: str) -> list[dict]:
    """:func:`loadgen.run` at each number of clients, printed as it goes."""
    out = []
    loadgen.run_threads([base], paths[:20], 2, 5)  # warm up
    for c in clients:
        stats = loadgen.run(base, paths, c, seconds=seconds)
        out.append(stats)
        print(f"    {label}, {c} clients ({stats['client']}): "
              f"p50 {stats['p50_ms']:.0f} ms p95 {stats['p95_ms']:.0f} ms "
              f"({stats['requests']} requests, {stats['failures']} failed, {stats['throughput_rps']:.1f} req/s, "
              f"{stats['mean_bytes'] / 1024:.0f} KiB each)", flush=True)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="permits per layer, comma-separated")
    parser.add_argument("--clients", default="8,32", help="concurrent clients, comma-separated")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of load per client level")
    parser.add_argument("--backends", default="gpkg,postgis")
    parser.add_argument("--no-analysis", action="store_true", help="skip the analysis timings")
    parser.add_argument("--no-map", action="store_true", help="skip the map views in Chromium")
    parser.add_argument("--no-tiles", action="store_true", help="skip the tile latencies")
    parser.add_argument("--items-states", default=",".join(ITEMS_STATES),
                        help=f"states to measure the items pages in, of {', '.join(ITEMS_STATES)}")
    parser.add_argument("--store", help="the items pages only, of a loaded store (a GeoPackage path or a PostGIS "
                        "URL, e.g. a copy of the session's shared 1M city), several runs (--runs): minutes, not an "
                        "hour. Its PostgreSQL is not restarted: 'cold' is then a new server process only")
    parser.add_argument("--runs", type=int, default=3, help="with --store: independent runs, each with new servers")
    parser.add_argument("--threads", type=int, help="with --store: threads per worker (gisapp serve --threads; "
                        "default its own)")
    parser.add_argument("--busy", type=float, default=0.0, help="with --store: each level beside other work keeping "
                        "this many cores busy (e.g. 1: one of this machine's two)")
    args = parser.parse_args(argv)
    states = [st for st in args.items_states.split(",") if st]
    if not set(states) <= set(ITEMS_STATES):
        parser.error(f"--items-states: one or more of {', '.join(ITEMS_STATES)}")
    clients = [int(c) for c in args.clients.split(",")]
    if args.store:
        results = items_of_store(args.store, clients, args.seconds, states, args.runs, args.threads, args.busy)
        print_items_runs(results)
        save_results("bench_postgis", results)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = args.backends.split(",")
    results = {"started": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
               "cpus": os.cpu_count(), "workers": WORKERS, "view_m": VIEW_M, "runs": []}
    server = start_server(SERVER_SETTINGS) if "postgis" in backends else None
    try:
        with tempfile.TemporaryDirectory(prefix="gisapp-bench-") as tmp:
            for n in sizes:
                print(f"{n:,} permits per layer: generating …", flush=True)
                frames, generator = make_data(n)
                boxes, width = view_boxes(frames, 400)
                run = {"n": n, "generator": generator, "view_box_m": [width, width * 0.75], "rows": []}
                print(f"  generator {generator}; street view {width:.0f} × {width * 0.75:.0f} m", flush=True)
                for name in backends:
                    if name == "gpkg":
                        path = Path(tmp) / f"bench-{n}.gpkg"
                        store, url = GeoPackageStore(path, must_exist=False), str(path)
                    else:
                        url = server.url(server.create_database("bench"))
                        store = PostGISStore(url, must_exist=False)
                    row = _run_backend(name, store, url, frames, boxes, clients, args.seconds,
                                       not args.no_analysis, not args.no_map, server=server if name == "postgis"
                                       else None, states=states, with_tiles=not args.no_tiles)
                    run["rows"].append(row)
                    if name == "postgis":
                        close_pool(url)
                    else:
                        path.unlink(missing_ok=True)
                results["runs"].append(run)
                del frames
    finally:
        if server is not None:
            server.stop()
    print_table(results)
    save_results("bench_postgis", results)


def _run_backend(name, store, url, frames, boxes, clients: list[int], seconds: float, with_analysis: bool,
                 with_map: bool, *, server=None, states=("warm",), with_tiles: bool = True) -> dict:
    print(f"  {name}: loading …", flush=True)
    _, load_s = timed(store.write, frames, mode="replace", meta={"as_of": "2026-01-01"})
    row = {"backend": name, "load_s": load_s}
    print(f"  {name}: loaded in {load_s:.1f} s", flush=True)
    if with_analysis:
        try:
            row["analysis"] = analysis_times(store, len(frames["construction_permits"]))
        except Exception as err:  # report, do not stop the other measurements
            row["analysis"] = {"error": f"{type(err).__name__}: {err}"}
        print(f"  {name}: analysis {row['analysis']}", flush=True)
    paths = items_paths(boxes)
    shared = {"GISAPP_TILE_DIR": tempfile.mkdtemp(prefix="gisapp-bench-tiles-")}
    try:
        return _measure_servers(name, url, frames, boxes, paths, row, shared, clients, seconds, with_map,
                                server=server, states=states, with_tiles=with_tiles)
    finally:
        shutil.rmtree(shared["GISAPP_TILE_DIR"], ignore_errors=True)


def _measure_servers(name, url, frames, boxes, paths, row, shared, clients, seconds, with_map, *, server=None,
                     states=("warm",), with_tiles: bool = True) -> dict:
    row["autovacuum"] = settle(url) if server is not None else None
    if row["autovacuum"]:
        print(f"  {name}: autovacuum done with the load after {row['autovacuum']['waited_s']:.0f} s "
              f"({row['autovacuum']['runs']})", flush=True)
    row["items_states"] = {}
    with app_servers(url, 1, shared) as bases:
        # The server renders the unfiltered z14-z17 tiles in the background after it starts (a new
        # data version): wait for that, so that it does not take CPU from the measurements.
        row["tiles_rendered_s"] = wait_for_tiles(bases[0])
        print(f"  {name}: tiles z14-z17 rendered {row['tiles_rendered_s']:.0f} s after the server started",
              flush=True)
    for state in states:
        row["items_states"][state] = items_in_state(state, name, url, server, shared, paths, clients, seconds)
    first = next(iter(row["items_states"].values()), None)
    row["items"] = first["levels"] if first else []
    with app_servers(url, 1, shared) as bases:
        sample = loadgen.run_threads(bases, paths[:40], 1, 40, inspect=returned)
        row["items_mean_features"] = sample["mean_inspected"]
        if bench_tiles is not None and with_tiles:
            # 400 tiles, each asked for 4 times first: each worker process has its own cache and a
            # request goes to either, so after that almost every tile is cached in both.
            tiles = bench_tiles.tile_list(frames, k=400)
            tile_paths = [f"/tiles/construction_permits/{z}/{x}/{y}.mvt" for z, x, y in tiles]
            loadgen.run_threads(bases, tile_paths, 4, len(tile_paths), ok=(200, 204))
            row["tiles"] = latency_levels(bases[0], tile_paths, clients, seconds, f"{name} tiles z14-17, cached")
    if bench_tiles is not None and with_tiles:
        # Memory caches off: every tile read from the shared folder, as a process's first request for it.
        with app_servers(url, 1, {**shared, "GISAPP_TILE_CACHE_MB": "0"}) as bases:
            row["tiles_disk"] = latency_levels(bases[0], tile_paths, clients, seconds,
                                               f"{name} tiles z14-17, from the shared folder")
        # No folder, no memory cache: every tile built on request (as a filtered tile is).
        with app_servers(url, 1, {"GISAPP_TILE_DIR": "none", "GISAPP_TILE_CACHE_MB": "0"}) as bases:
            row["tiles_uncached"] = latency_levels(bases[0], tile_paths, clients, seconds,
                                                   f"{name} tiles z14-17, built on request")
    with app_servers(url, 1, shared) as bases:
        if with_map:
            b = boxes[0]
            row["map"] = map_views(bases[0], street=((b[1] + b[3]) / 2, (b[0] + b[2]) / 2))
            print(f"    {name} map: first view drawn in {row['map']['drawn_ms']} ms ({row['map']['mode']}), "
                  f"street view {row['map'].get('street_ms')} ms, at most {row['map']['max_features']} features "
                  f"in a response", flush=True)
    return row


def items_of_store(url: str, clients: list[int], seconds: float, states: list[str], runs: int,
                   threads: int | None = None, busy: float = 0.0) -> dict:
    """The items pages of a loaded store in each of ``states``, ``runs`` times (new servers each run): per level
    the clients' p50/p95 (and of each half), the server's own times, the load average, autovacuum."""
    from gisapp.store import open_store

    store = open_store(url)
    table = store.read_arrow("construction_permits", fields=["dossier_code"])
    assert table is not None, f"{url} has no dossiers"
    frames = {"construction_permits": gpd.GeoDataFrame(
        geometry=shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False)), crs=5899)}
    boxes, width = view_boxes(frames, 400)
    del frames, table
    paths = items_paths(boxes)
    name = "postgis" if "://" in url else "gpkg"
    results = {"started": dt.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
               "cpus": os.cpu_count(), "workers": WORKERS, "threads": threads, "busy_cores": busy, "store": url,
               "view_box_m": [width, width * 0.75], "runs": []}
    print(f"{url}: {store.count('construction_permits'):,} dossiers; street view {width:.0f} m", flush=True)
    for run in range(runs):
        row: dict = {"run": run + 1, "backend": name, "items_states": {}}
        row["autovacuum"] = settle(url) if name == "postgis" else None
        with tempfile.TemporaryDirectory(prefix="gisapp-bench-items-") as tmp:
            shared = {"GISAPP_TILE_DIR": str(Path(tmp) / "tiles"), "GISAPP_TILE_WARM": "none"}
            for state in states:
                row["items_states"][state] = items_in_state(state, f"{name} run {run + 1}", url, None, shared,
                                                            paths, clients, seconds, log=Path(tmp) / "server.log",
                                                            threads=threads, busy=busy)
        results["runs"].append(row)
    return results


def print_items_runs(results: dict) -> None:
    """One line per run and state: p50/p95 at each level, the halves' p95, the server's p95, the load."""
    print("\nitems pages (limit 1000, street views), p50/p95 ms [p95 of each half] (server p95), load average, "
          "pages a second, CPU per page:")
    for row in results["runs"]:
        for state, found in row["items_states"].items():
            print(f"  run {row['run']} {row['backend']:<7} {state:<9} answered {found.get('answered_after_s')} s "
                  f"after its start; background work: {found.get('background')}; buffers {found.get('buffers')}; "
                  f"renderer {found.get('renderer')}")
            for level in found["levels"]:
                halves = "/".join(f"{h:.0f}" for h in level.get("p95_halves_ms") or [] if h is not None)
                inside = (level.get("server") or {}).get("p95_ms")
                print(f"  run {row['run']} {row['backend']:<7} {state:<9} {level['clients']:>3} clients: "
                      f"{level['p50_ms']:.0f}/{level['p95_ms']:.0f} [{halves}] "
                      f"({'-' if inside is None else f'{inside:.0f}'}) load {level['state']['before']['load_avg']:.1f}"
                      f"→{level['state']['after']['load_avg']:.1f}, {level['throughput_rps']:.0f} pages/s, "
                      f"CPU per page {_cpu_text(level.get('cpu_ms_per_page') or {})}, other work "
                      f"{_cores_text(level.get('other_cores'))} (renderer {_cores_text(level.get('renderer_cores'))})"
                      f", disk wait {_cores_text(level.get('iowait_cores'))}"
                      f" ({level.get('disk_read_mb')} MB read)"
                      + ("" if level.get("tiles_rendered") is None else f", {level['tiles_rendered']} tiles rendered"))


#: The tables whose autovacuum :func:`settle` waits for.
LAYER_TABLES = ("construction_permits", "sidewalk_permits")


def settle(url: str, timeout: float = 900) -> dict:
    """Wait until autovacuum is done with the load, then CHECKPOINT.

    Done: each layer table vacuumed since the load (nothing inserted since its last vacuum), too little
    changed since its last analysis for another (the autovacuum thresholds), and no autovacuum worker on
    the database for 5 s in a row.  After a load autovacuum visits the new tables within a minute or so (at
    1M rows it rewrote every page, before loads were frozen, under the measurements); the result says how
    long this waited (``settled`` false: not within ``timeout``) and how often each layer table was vacuumed
    and analysed automatically.
    """
    import psycopg

    started, quiet_since, settled = time.monotonic(), None, False
    with psycopg.connect(url, autocommit=True) as con:
        while time.monotonic() - started < timeout:
            busy = con.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' "
                               "AND datname = current_database()").fetchone()[0]
            pending = con.execute(
                "SELECT count(*) FROM pg_stat_user_tables WHERE relname = ANY(%s) AND (n_ins_since_vacuum > 0 "
                "OR n_mod_since_analyze > 50 + 0.1 * n_live_tup)", [list(LAYER_TABLES)]).fetchone()[0]
            now = time.monotonic()
            quiet_since = None if busy or pending else (quiet_since or now)
            if quiet_since is not None and now - quiet_since >= 5:
                settled = True
                break
            time.sleep(0.5)
        con.execute("CHECKPOINT")
        runs = {r[0]: {"autovacuum": r[1], "autoanalyze": r[2]} for r in con.execute(
            "SELECT relname, autovacuum_count, autoanalyze_count FROM pg_stat_user_tables "
            "WHERE relname = ANY(%s) ORDER BY relname", [list(LAYER_TABLES)])}
    return {"waited_s": round(time.monotonic() - started, 1), "settled": settled, "runs": runs}


def restart_postgres(server) -> None:
    """Restart the benchmark's PostgreSQL (fast shutdown): its shared buffers start empty."""
    server._run("pg_ctl", "restart", "-D", server.data, "-m", "fast", "-w", "-t", "120",
                "-l", server.root / "server.log")


def autovacuum_workers(url: str | None) -> int | None:
    """Autovacuum workers busy on ``url``'s database now (``None`` for a GeoPackage)."""
    if url is None or "://" not in url:
        return None
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        return con.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' "
                           "AND datname = current_database()").fetchone()[0]


_BUSY = """
import sys, time
share = float(sys.argv[1])
while True:
    start = time.monotonic()
    while time.monotonic() - start < 0.01 * share:
        pass
    time.sleep(0.01 * (1 - share))
"""


@contextlib.contextmanager
def other_work(cores: float):
    """Processes that keep ``cores`` of the machine busy (at normal priority, 10 ms periods) while the block runs:
    the pages measured beside a known amount of other work (each level reports all the other work it saw).
    Yields a list that gets the CPU seconds they used when they are stopped (this process's children's
    CPU, which :func:`other_cores` counts as the level's own, wrk's, unless told)."""
    procs, used = [], []
    left = cores
    try:
        while left > 1e-6:
            share = min(1.0, left)
            procs.append(subprocess.Popen([sys.executable, "-c", _BUSY, str(share)]))
            left -= share
        yield used
    finally:
        used.append(sum(_cpu_s(proc.pid) for proc in procs))
        for proc in procs:
            proc.kill()
            proc.wait()


def items_in_state(state: str, name: str, url: str, server, shared: dict, paths: list[str], clients: list[int],
                   seconds: float, log: Path | None = None, threads: int | None = None, busy: float = 0.0) -> dict:
    """The items pages' latency levels in ``state`` (see :data:`ITEMS_STATES`), with what the state was.

    ``busy``: the levels run beside :func:`other_work` of that many cores.

    ``server`` None (a store not of the benchmark's own PostgreSQL): ``cold`` is a new server process only.
    ``log``: the servers' access log goes there, and each level also reports the server's own request times.
    """
    settings = dict(shared)
    if state == "rendering":
        settings["GISAPP_TILE_DIR"] = tempfile.mkdtemp(prefix="gisapp-bench-tiles-")
        settings.pop("GISAPP_TILE_WARM", None)  # the renderer at work: every tile into the empty folder
    if state == "cold" and server is not None:
        close_pool(url)
        restart_postgres(server)
    try:
        with app_servers(url, 1, settings, log=log, threads=threads) as bases:
            arrays_s = idle_s = None
            if state != "cold":
                loadgen.run_threads(bases, paths, 4, (len(paths) + 3) // 4)  # every page once: warm
                # and each worker done reading what it reads as it starts (seconds at 1M), then quiet
                arrays_s = round(wait_for_arrays(bases[0]), 1)
                idle_s = round(wait_until_idle(bases[0], url), 1)
            background = "done, idle" if state != "cold" else \
                "none (read before it answered)" if _arrays_ready(bases[0]) else "reading its arrays and tile index"
            info = {"state": state, "answered_after_s": _ANSWERED.get(bases[0]),
                    "buffers": ("cold" if server is not None else "as found") if state == "cold" else "warm",
                    "arrays_ready_after_s": arrays_s, "idle_after_s": idle_s, "background": background,
                    "renderer": "rendering" if state == "rendering" else
                    "idle (GISAPP_TILE_WARM=none)" if settings.get("GISAPP_TILE_WARM") == "none" else
                    "idle (tiles ready)"}
            levels = []
            for c in clients:
                before = {"load_avg": os.getloadavg()[0], "autovacuum_workers": autovacuum_workers(url),
                          "tiles_ready": _tiles_ready(bases[0]), "tiles_done": _tiles_done(bases[0])}
                offset = log.stat().st_size if log is not None and log.exists() else 0
                cpu = workers_cpu_s(bases[0]), backends_cpu_s(url, bases[0])
                others = machine_cpu_s(), children_cpu_s(), time.process_time(), time.monotonic()
                rendered = renderer_cpu_s(bases[0])
                disk = iowait_s(), disk_read_mb(bases[0], url)
                with other_work(busy) as used:
                    stats = loadgen.run(bases[0], paths, c, seconds=seconds, timed=True)
                others = (others[0], others[1] + sum(used), *others[2:])  # the other work's, not the level's
                elapsed = time.monotonic() - others[3]
                stats["iowait_cores"] = None if disk[0] is None or iowait_s() is None else \
                    round((iowait_s() - disk[0]) / elapsed, 2)
                read = disk_read_mb(bases[0], url)
                stats["disk_read_mb"] = None if disk[1] is None or read is None else round(read - disk[1], 1)
                stats["server"] = server_times(log, offset, "/items") if log is not None else None
                after = workers_cpu_s(bases[0]), backends_cpu_s(url, bases[0])
                stats["cpu_ms_per_page"] = cpu_per_page(cpu, after, stats["requests"])
                stats["other_cores"] = other_cores(cpu, after, others)
                rendered_after = renderer_cpu_s(bases[0])
                stats["renderer_cores"] = None if rendered is None or rendered_after is None else \
                    round((rendered_after - rendered) / elapsed, 2)  # its process, part of the other work
                stats["state"] = {**info, "before": before, "after": {
                    "load_avg": os.getloadavg()[0], "autovacuum_workers": autovacuum_workers(url),
                    "tiles_ready": _tiles_ready(bases[0]), "tiles_done": _tiles_done(bases[0])}}
                stats["tiles_rendered"] = None if state != "rendering" or None in (
                    before["tiles_done"], stats["state"]["after"]["tiles_done"]) else \
                    stats["state"]["after"]["tiles_done"] - before["tiles_done"]  # what yielding to the pages cost
                levels.append(stats)
                halves = stats.get("p95_halves_ms") or []
                inside = stats["server"] or {}
                print(f"    {name} items [{state}], {c} clients ({stats['client']}): "
                      f"p50 {stats['p50_ms']:.0f} ms p95 {stats['p95_ms']:.0f} ms "
                      f"(in the server p95 {inside.get('p95_ms', float('nan')):.0f} ms, requests per worker "
                      f"{inside.get('per_worker')}; CPU per page {_cpu_text(stats['cpu_ms_per_page'])}) "
                      f"(halves {' / '.join(f'{h:.0f}' for h in halves if h is not None) or '—'}; "
                      f"{stats['requests']} requests, {stats['failures']} failed, "
                      f"{stats['throughput_rps']:.1f} req/s; other work {_cores_text(stats['other_cores'])} "
                      f"(the tile renderer's process {_cores_text(stats['renderer_cores'])}), "
                      f"waiting for the disk {_cores_text(stats['iowait_cores'])}, read from it "
                      f"{stats['disk_read_mb']} MB; "
                      f"load avg {before['load_avg']:.1f}→"
                      f"{stats['state']['after']['load_avg']:.1f}, tiles ready {before['tiles_ready']}→"
                      f"{stats['state']['after']['tiles_ready']} ({stats['tiles_rendered']} tiles rendered meanwhile), "
                      f"autovacuum {before['autovacuum_workers']})",
                      flush=True)
    finally:
        if state == "rendering":
            shutil.rmtree(settings["GISAPP_TILE_DIR"], ignore_errors=True)
    return {**info, "levels": levels}


def cpu_per_page(before: tuple, after: tuple, requests: int) -> dict:
    """Milliseconds of CPU per request, of the app server's workers and of the database's backends, from
    :func:`workers_cpu_s` / :func:`backends_cpu_s` before and after a level: what a page costs, not how
    long it waited (on a shared virtual machine it still grows when other work runs: at 200,000 one page
    was 16.7 ms of the workers' CPU at load average 2.5, 25.8 ms at 7.9)."""
    out = {}
    for name, b, a in zip(("workers", "database"), before, after):
        out[name] = None if a is None or b is None or not requests else round((a - b) * 1000 / requests, 2)
    return out


def other_cores(cpu_before: tuple, cpu_after: tuple, others_before: tuple) -> float | None:
    """Cores the machine spent on other work than the level's (its workers, database backends, wrk and this
    process) while it ran, from :func:`machine_cpu_s`: other helpers' jobs, the tile renderer, autovacuum,
    and time the hypervisor gave elsewhere (steal). ``None`` without /proc."""
    machine0, children0, own0, t0 = others_before
    machine1 = machine_cpu_s()
    if machine0 is None or machine1 is None:
        return None
    ours = sum((a or 0.0) - (b or 0.0) for a, b in zip(cpu_after, cpu_before))
    ours += children_cpu_s() - children0 + time.process_time() - own0
    return round(max(0.0, machine1 - machine0 - ours) / max(time.monotonic() - t0, 1e-9), 2)


def _cores_text(cores: float | None) -> str:
    return "—" if cores is None else f"{cores:.2f} cores"


def _cpu_text(cpu: dict) -> str:
    return " + ".join(f"{name} {value:.1f} ms" for name, value in cpu.items() if value is not None) or "—"


def _tiles_ready(base: str) -> bool | None:
    import requests

    with contextlib.suppress(requests.RequestException, ValueError):
        tiles = requests.get(f"{base}/healthz", timeout=30).json().get("tiles")
        return None if tiles is None else bool(tiles["ready"])
    return None


def _tiles_done(base: str) -> int | None:
    """How many tiles the server's renderer has rendered so far in its render (``/healthz``), if it renders."""
    import requests

    with contextlib.suppress(requests.RequestException, ValueError, AttributeError):
        progress = (requests.get(f"{base}/healthz", timeout=30).json().get("tiles") or {}).get("progress") or {}
        return progress.get("tiles_done")
    return None


def wait_for_tiles(base: str, timeout: float = 3600) -> float:
    """Seconds until ``/healthz`` says the server's tiles are rendered (see :mod:`gisapp.tiles.disk`)."""
    import requests

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(requests.RequestException):
            tiles = requests.get(f"{base}/healthz", timeout=30).json().get("tiles")
            if tiles is None or tiles["ready"]:  # no rendering (GISAPP_TILE_WARM=none), or done
                return time.monotonic() - started
        time.sleep(1)
    raise RuntimeError(f"tiles not rendered after {timeout:.0f} s")


def map_views(base: str, street: tuple[float, float], runs: int = 3) -> dict:
    """Cold first views of the map page in headless Chromium (:func:`benchmarks.bench_map.measure`); medians."""
    from playwright.sync_api import sync_playwright

    from benchmarks.bench_map import measure
    from tests.browser_util import launch_chromium

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            measure(browser, base, None, street)  # warm the server
            results = [measure(browser, base, None, street) for _ in range(runs)]
        finally:
            browser.close()
    out = dict(results[-1])
    for key in ("drawn_ms", "street_ms"):
        out[key] = round(statistics.median(r[key] for r in results))
    return out


def print_table(results: dict) -> None:
    """The results as a plain-text table: one row per size and backend."""
    levels = sorted({i["clients"] for run in results["runs"] for row in run["rows"] for i in row.get("items", [])})
    head = f"{'permits/layer':>13} {'backend':<8} {'load s':>7} {'read+gpd s':>10}"
    head += "".join(f" {f'items p50/p95 @{c}':>19}" for c in levels)
    head += "".join(f" {f'tiles p50/p95 @{c}':>19}" for c in levels)
    head += "".join(f" {f'folder p50/p95 @{c}':>20}" for c in levels)
    head += "".join(f" {f'uncached p50/p95 @{c}':>22}" for c in levels)
    head += f" {'render s':>8}"
    head += f" {'map first/street ms':>20}"
    print(head)
    for run in results["runs"]:
        for row in run["rows"]:
            a = row.get("analysis") or {}
            gpd_s = (a.get("geopandas_read_s") or 0) + (a.get("geopandas_analysis_s") or 0) \
                if a.get("geopandas_analysis_s") is not None else None
            line = (f"{run['n']:>13,} {row['backend']:<8} {row['load_s']:>7.1f} {_fmt(gpd_s, 10)}")
            for kind, width in (("items", 19), ("tiles", 19), ("tiles_disk", 20), ("tiles_uncached", 22)):
                for c in levels:
                    item = next((i for i in row.get(kind, []) if i["clients"] == c), None)
                    cell = "—" if item is None or item["p50_ms"] is None else \
                        f"{item['p50_ms']:.0f}/{item['p95_ms']:.0f}"
                    line += f" {cell:>{width}}"
            line += f" {_fmt(row.get('tiles_rendered_s'), 8)}"
            m = row.get("map")
            line += f" {(str(m['drawn_ms']) + '/' + str(m.get('street_ms'))) if m else '—':>20}"
            print(line)
    print("items pages by state (p50/p95 ms; the p95 of each half of the level; load average before → after):")
    for run in results["runs"]:
        for row in run["rows"]:
            for state, found in (row.get("items_states") or {}).items():
                cells = []
                for level in found["levels"]:
                    halves = "/".join(f"{h:.0f}" for h in level.get("p95_halves_ms") or [] if h is not None)
                    st = level["state"]
                    cells.append(f"@{level['clients']} {level['p50_ms']:.0f}/{level['p95_ms']:.0f} (halves {halves}; "
                                 f"load {st['before']['load_avg']:.1f}→{st['after']['load_avg']:.1f})")
                print(f"  {run['n']:>9,} {row['backend']:<8} {state:<9} buffers {found['buffers']}, renderer "
                      f"{found['renderer']}: " + "; ".join(cells))


def _fmt(value, width: int) -> str:
    return f"{'—':>{width}}" if value is None else f"{value:>{width}.1f}"


if __name__ == "__main__":
    main()
