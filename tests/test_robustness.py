"""Faults and load: readers during an import, a killed import, a broken store."""

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyogrio
import pytest
from werkzeug.serving import make_server

from gisapp.store.gpkg import GeoPackageStore
from gisapp.web.app import create_app

pytestmark = pytest.mark.slow


def export_permits(store, path: Path, suffix: str = "X") -> Path:
    """The store's construction permits as a GeoPackage file, with changed dossier codes."""
    frame = store.read("construction_permits")
    frame["dossier_code"] = frame["dossier_code"] + suffix
    pyogrio.write_dataframe(frame, path)
    return path


def gisapp(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "gisapp", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_import_leaves_the_store_unchanged(demo_store, tmp_path):
    source = export_permits(demo_store, tmp_path / "permits.gpkg")
    before = demo_store.path.read_bytes()
    leftovers = lambda: list(demo_store.path.parent.glob(f".{demo_store.path.stem}.*.tmp.gpkg"))  # noqa: E731
    for _attempt in range(20):
        proc = gisapp("--store", demo_store.url, "import", "construction_permits", str(source), "--mode", "replace")
        deadline = time.monotonic() + 60
        while not leftovers() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            break
        proc.wait()
        demo_store.path.write_bytes(before)  # it finished before we could kill it: try again
    else:
        pytest.fail("the import always finished before it could be killed")
    assert proc.returncode == -signal.SIGKILL
    assert demo_store.path.read_bytes() == before
    store = GeoPackageStore(demo_store.path)
    assert store.count("construction_permits") == 2534
    # The next write clears the dead writer's copy.
    assert leftovers()
    store.write({"findings": store.read("findings")})
    assert not leftovers()


@pytest.fixture
def server(demo_store):
    app = create_app({"STORE": demo_store.url})
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()


def test_readers_see_old_or_new_data_while_an_import_runs(demo_store, server, tmp_path):
    import urllib.request

    source = export_permits(demo_store, tmp_path / "more.gpkg")
    proc = gisapp("--store", demo_store.url, "import", "construction_permits", str(source), "--mode", "upsert",
                  env={**os.environ})
    counts, latencies = [], []
    while proc.poll() is None or len(counts) < 5:
        started = time.perf_counter()
        with urllib.request.urlopen(f"{server}/api/collections/construction_permits/items?limit=1&f=json") as r:
            assert r.status == 200
            counts.append(__import__("json").loads(r.read())["numberMatched"])
        latencies.append(time.perf_counter() - started)
        if len(counts) > 2000:
            break
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert set(counts) <= {2534, 2 * 2534}, set(counts)
    assert counts[-1] == 2 * 2534
    print(f"\nreads during import: {len(counts)}, median {statistics.median(latencies) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms")


@pytest.mark.parametrize("path", ["/", "/wards", "/permits/XD-1", "/api/collections", "/export/wards.geojson",
                                  "/healthz", "/data/count"])
def test_a_corrupt_store_gives_a_clear_error_not_a_crash(tmp_path, path):
    bad = tmp_path / "broken.gpkg"
    bad.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    client = create_app({"STORE": str(bad)}).test_client()
    r = client.get(path)
    assert r.status_code == 503
    body = r.get_data(as_text=True)
    assert "not a GeoPackage" in body and "Traceback" not in body
    # And the app keeps answering.
    assert client.get(path).status_code == 503
