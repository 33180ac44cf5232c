"""The production server: ``gisapp serve --workers N`` runs gunicorn with N processes."""

import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.request

import orjson
import pytest

from tests.pg_server import free_port

pytestmark = pytest.mark.slow


def test_serve_with_workers_answers_from_several_processes(demo_store):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gisapp", "--store", demo_store.url, "serve", "--port", str(port),
                             "--workers", "2", "--threads", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    body = orjson.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.2)
        assert body["layers"]["construction_permits"] == 2534
        url = f"http://127.0.0.1:{port}/api/collections/construction_permits/items?limit=5"
        with urllib.request.urlopen(url, timeout=10) as r:
            assert orjson.loads(r.read())["numberReturned"] == 5
        # no keep-alive (an HTTP/1.1 client asks for it by default): the next request goes to a free worker
        con = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        con.request("GET", "/healthz")
        answer = con.getresponse()
        assert answer.status == 200 and answer.getheader("Connection") == "close"
        con.close()
        # what the processes count over and what their filtered tiles search and date is read before they
        # fork, so that none takes a request before it is there: ready from the first answer, in both workers
        # (no map, dashboard or filtered tile asked for)
        for _ in range(10):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                health = orjson.loads(r.read())
            arrays = {**health["arrays"], **{f"tiles:{k}": v for k, v in health["tile_index"].items()}}
            assert set(health["tile_index"]) == {"construction_permits", "sidewalk_permits"}
            assert set(arrays.values()) == {"ready"}, arrays
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "Starting gunicorn" in out and out.count("Booting worker") == 2
    assert out.index("read what the workers count over") < out.index("Starting gunicorn")
    # the access log ends each line with the worker's process id and the request's time in it, in microseconds
    logged = [line for line in out.splitlines() if "GET /api/collections/construction_permits/items" in line]
    pid, micros = logged[0].rsplit(" ", 2)[1:]
    assert pid.startswith("<") and pid.endswith(">") and pid[1:-1].isdigit() and micros.isdigit()
