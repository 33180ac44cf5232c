"""Field work (issue 18): "here, today" latency under concurrent clients, and saving an inspection with photos.

1. ``/data/here`` at the centre of random sidewalk permits on their first day,
   against ``gisapp serve --workers 2`` on a GeoPackage store of ``n``
   permits per layer (``--sizes``; 100k by default, ``--sizes 1000000`` for
   the issue's 1M), ``--clients`` concurrent clients: p50/p95/p99.
2. ``POST /inspections`` with ``--photos`` phone photos of ~``--photo-mb`` MB
   (4000 × 3000 JPEGs), signed in as an inspector, against a one-process
   server (``gisapp serve``): wall time per save, and the server's peak
   resident memory (``VmHWM``) before and after the saves.

``python -m benchmarks.bench_field [--sizes 100000] [--clients 8] [--seconds 10] [--saves 3]``
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from benchmarks import loadgen
from benchmarks.bench_export import free_port
from benchmarks.bench_postgis import ROOT, app_servers, make_data
from gisapp import geo
from gisapp.accounts import Accounts
from gisapp.store.gpkg import GeoPackageStore

OUT = Path(__file__).parent / "out"
PASSWORD = "correct horse battery"
SETTINGS = {"GISAPP_TILE_WARM": "none", "GISAPP_TILE_DIR": "none"}


def here_paths(frames: dict, k: int = 400, seed: int = 5) -> list[str]:
    """``/data/here`` paths at the centres of ``k`` random sidewalk permits, each on its first day."""
    side = frames["sidewalk_permits"]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(side), size=min(k, len(side)), replace=False)
    rows = side.iloc[pick]
    points = geo.transform(rows.geometry.representative_point().values)
    out = []
    for point, start in zip(points, rows["start_on"]):
        day = (start.date() if hasattr(start, "date") else start).isoformat()
        out.append("/data/here?" + urlencode({"lon": f"{point.x:.7f}", "lat": f"{point.y:.7f}", "day": day}))
    return out


def phone_photo(mb: float, seed: int) -> bytes:
    """A 4000 × 3000 JPEG of about ``mb`` MB (a gradient with noise, as detailed as a phone photo)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = 4000, 3000
    base = (np.linspace(0, 200, w, dtype=np.float32)[None, :, None]
            + np.linspace(0, 50, h, dtype=np.float32)[:, None, None])
    amp = 12.0
    for _ in range(6):
        arr = (base + rng.normal(0, amp, (h, w, 3)).astype(np.float32)).clip(0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(arr).save(out, "JPEG", quality=90)
        size = out.tell() / 1e6
        if abs(size - mb) < 0.4:
            break
        amp *= (mb / size) ** 1.3
    return out.getvalue()


def _vm(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory field in kB."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


@contextlib.contextmanager
def one_process_server(store_url: str, accounts: str):
    """``gisapp serve`` (Flask's threaded server, one process) on a free port: (base URL, process)."""
    import requests

    port = free_port()
    env = {**os.environ, "GISAPP_STORE": store_url, "GISAPP_ACCOUNTS": accounts, **SETTINGS}
    cmd = [sys.executable, "-c", "from gisapp.cli import main; main()", "serve", "--host", "127.0.0.1",
           "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def save_benchmark(store_url: str, accounts: str, lonlat: tuple[float, float], target: str, *, photos: int,
                   photo_mb: float, saves: int) -> dict:
    """Time ``saves`` inspections of ``photos`` photos each; the server's peak RSS before and after."""
    import requests

    pictures = [phone_photo(photo_mb, seed) for seed in range(photos)]
    with one_process_server(store_url, accounts) as (base, proc):
        s = requests.Session()
        s.post(f"{base}/login", data={"username": "insp1", "password": PASSWORD,
                                      "csrf_token": _csrf(s.get(f"{base}/login").text)})
        s.get(f"{base}/inspections/new")  # warm up
        before = _vm(proc.pid, "VmHWM")
        rss_idle = _vm(proc.pid, "VmRSS")
        times = []
        for _ in range(saves):
            csrf = _csrf(s.get(f"{base}/inspections/new").text)
            files = [("photos", (f"p{i}.jpg", data, "image/jpeg")) for i, data in enumerate(pictures)]
            t = time.perf_counter()
            r = s.post(f"{base}/inspections", files=files, allow_redirects=False,
                       data={"csrf_token": csrf, "target": target, "inspection_type": "SITE_CHECK",
                             "outcome": "PASSED", "lon": f"{lonlat[0]:.7f}", "lat": f"{lonlat[1]:.7f}"})
            times.append(time.perf_counter() - t)
            if r.status_code != 303:
                raise RuntimeError(f"save failed: HTTP {r.status_code} {r.text[:300]}")
        after = _vm(proc.pid, "VmHWM")
    return {"photos": photos, "photo_mb": [round(len(p) / 1e6, 2) for p in pictures], "saves": saves,
            "seconds": [round(t, 3) for t in times], "median_s": round(float(np.median(times)), 3),
            "max_s": round(max(times), 3), "server_rss_idle_mb": round(rss_idle / 1024, 1),
            "server_peak_rss_before_mb": round(before / 1024, 1), "server_peak_rss_after_mb": round(after / 1024, 1),
            "peak_growth_mb": round((after - before) / 1024, 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000", help="permits per layer, comma-separated (1000000 for 1M)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--saves", type=int, default=3)
    parser.add_argument("--photos", type=int, default=5)
    parser.add_argument("--photo-mb", type=float, default=4.0)
    args = parser.parse_args(argv)
    results: dict = {"machine": platform.platform(), "cpus": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="gisapp-field-") as tmp:
        accounts = str(Path(tmp) / "accounts.sqlite")
        Accounts(accounts).add("insp1", PASSWORD, "inspector")
        for n in [int(s) for s in args.sizes.split(",")]:
            print(f"{n:,} permits per layer: generating …", flush=True)
            frames, generator = make_data(n)
            store = GeoPackageStore(Path(tmp) / f"field-{n}.gpkg", must_exist=False)
            store.write(frames)
            paths = here_paths(frames)
            run: dict = {"n": n, "generator": generator}
            with app_servers(store.url, settings={**SETTINGS, "GISAPP_ACCOUNTS": accounts}) as bases:
                loadgen.run_threads(bases, paths[:20], 2, 5)  # warm up
                run["here"] = loadgen.run(bases[0], paths, args.clients, seconds=args.seconds)
            print(f"  here, today: p50 {run['here']['p50_ms']:.1f} ms, p95 {run['here']['p95_ms']:.1f} ms "
                  f"({run['here']['requests']} requests, {run['here']['failures']} failures, "
                  f"{args.clients} clients, {run['here']['client']})", flush=True)
            first = frames["construction_permits"].iloc[0]
            point = geo.transform([first.geometry.representative_point()])[0]
            run["save"] = save_benchmark(store.url, accounts, (point.x, point.y), first["dossier_code"],
                                         photos=args.photos, photo_mb=args.photo_mb, saves=args.saves)
            save = run["save"]
            print(f"  save with {save['photos']} photos of ~{args.photo_mb:g} MB: median {save['median_s']} s, "
                  f"max {save['max_s']} s; server peak RSS {save['server_peak_rss_before_mb']} → "
                  f"{save['server_peak_rss_after_mb']} MB (+{save['peak_growth_mb']} MB)", flush=True)
            results["runs"].append(run)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"field-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
