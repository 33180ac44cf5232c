"""Progress on the server (issue 20): an upload's check followed through its status file, and the tile
renderer's counts in ``/healthz`` and on the admin page while ``gisapp tiles render`` runs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gisapp.accounts import Accounts
from gisapp.web.app import create_app
from tests.helpers import signed_in, staff_accounts, token_of

ROOT = Path(__file__).resolve().parent.parent
# each upload is checked in a child process; the render runs as a command
pytestmark = pytest.mark.slow


def _config(demo_store, tmp_path) -> dict:
    if not (tmp_path / "acc.sqlite").exists():
        staff_accounts(tmp_path / "acc.sqlite", (("officer1", "officer"), ("officer2", "officer"), ("admin1", "admin")))
    return {"STORE": demo_store.url, "ACCOUNTS": str(tmp_path / "acc.sqlite"), "UPLOADS": str(tmp_path / "uploads"),
            "TESTING": True, "TILE_DIR": str(tmp_path / "tiles"), "TILE_WARM": "14-17"}


def _permits(demo_store, tmp_path, n=40) -> bytes:
    rows = demo_store.read("sidewalk_permits", limit=n).copy()
    rows["permit_no"] = [f"UP-{i}" for i in range(n)]
    for col in ("start_on", "end_on"):
        rows[col] = rows[col].dt.strftime("%Y-%m-%d")
    path = tmp_path / "permits.geojson"
    rows.to_crs(4326).to_file(path, driver="GeoJSON")
    return path.read_bytes()


def _send(client, content: bytes, name="permits.geojson"):
    page = client.get("/upload").get_data(as_text=True)
    data = {"layer": "sidewalk_permits", "mode": "upsert", "csrf_token": token_of(page),
            "file": (io.BytesIO(content), name)}
    return client.post("/upload", data=data, content_type="multipart/form-data",
                       headers={"Accept": "application/json"})


def _follow(client, status_url: str, timeout: float = 120) -> list[dict]:
    """Every distinct state the status URL answered until the check ended."""
    seen: list[dict] = []
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        body = client.get(status_url).json
        if not seen or body != seen[-1]:
            seen.append(body)
        if body["state"] in ("done", "imported", "failed"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"the check did not end: {seen[-1:]}")


def test_a_background_check_is_followed_by_any_worker_and_ends_in_its_report(demo_store, tmp_path, monkeypatch):
    monkeypatch.setenv("GISAPP_TEST_SLOW_PROGRESS", "0.2")  # test-only: the child sleeps after each report
    config = _config(demo_store, tmp_path)
    worker_a, worker_b = create_app(config), create_app(config)  # two apps: nothing shared in memory
    client = signed_in(worker_a, "officer1")
    r = _send(client, _permits(demo_store, tmp_path))
    assert r.status_code == 202
    answer = r.json
    assert answer["page"].startswith("/upload/") and answer["status"].endswith("/status")
    other_tab = signed_in(worker_b, "officer1")
    seen = _follow(other_tab, answer["status"])
    stages = [s["stage"] for s in seen]
    assert "read" in stages and "check" in stages
    checks = [s for s in seen if s["stage"] == "check" and s["total"]]
    assert len({s["done"] for s in checks}) >= 2  # the counts moved
    assert any("Đang kiểm tra các dòng" in s["text"] and "bước" in s["text"] for s in checks)
    assert seen[-1]["state"] == "done" and seen[-1]["error"] is None
    page = other_tab.get(answer["page"]).get_data(as_text=True)  # a refresh, another worker: the report
    assert 'data-testid="accepted">40<' in page and 'data-testid="confirm"' in page
    english = other_tab.get(answer["status"] + "?lang=en").json
    assert english["state"] == "done"
    assert signed_in(worker_b, "officer2").get(answer["status"]).status_code == 403  # not theirs


def test_while_checking_the_page_shows_the_stage_and_a_failure_shows_its_reason(demo_store, tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("GISAPP_TEST_SLOW_PROGRESS", "0.3")
    client = signed_in(create_app(_config(demo_store, tmp_path)), "officer1")
    answer = _send(client, b'{"type": "FeatureCollection", "features": [', name="broken.geojson").json
    page = client.get(answer["page"])
    if "upload-stage" in page.get_data(as_text=True):  # still checking: the progress page, polling
        assert 'data-status-url="' + answer["status"] + '"' in page.get_data(as_text=True)
    seen = _follow(client, answer["status"])
    assert seen[-1]["state"] == "failed" and "broken.geojson" in seen[-1]["error"]
    failed = client.get(answer["page"]).get_data(as_text=True)
    assert 'data-testid="upload-error"' in failed and "broken.geojson" in failed


def test_a_refused_upload_answers_json_with_the_reason(demo_store, tmp_path):
    client = signed_in(create_app(_config(demo_store, tmp_path)), "officer1")
    r = _send(client, b"x", name="permits.exe")
    assert r.status_code == 400 and "permits.exe" in r.json["error"]


def test_healthz_shows_the_renderers_counts_moving_during_a_render(demo_store, tmp_path):
    config = _config(demo_store, tmp_path)
    app = create_app(config)
    client = app.test_client()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GISAPP_STORE": demo_store.url,
           "GISAPP_TILE_DIR": config["TILE_DIR"]}
    proc = subprocess.Popen([sys.executable, "-m", "gisapp", "--quiet", "tiles", "render", "--zooms", "14-17"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = []
    try:
        while proc.poll() is None:
            progress = client.get("/healthz").json["tiles"].get("progress")
            if progress and progress["state"] == "rendering":
                seen.append(progress["tiles_done"])
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.wait() == 0, proc.stderr.read() if proc.stderr else ""
    moving = sorted(set(seen))
    assert len(moving) >= 3, seen  # written at most every 0.5 s by a render of several seconds
    assert seen == sorted(seen)
    tiles = client.get("/healthz").json["tiles"]
    assert tiles["ready"] is True
    last = tiles["progress"]
    assert last["state"] == "done" and last["tiles_done"] > moving[-1]
    for zooms in last["layers"].values():
        assert set(zooms) == {"14", "15", "16", "17"}
        assert all(c["done"] == c["planned"] for c in zooms.values())
    admin = signed_in(app, "admin1").get("/admin?lang=en").get_data(as_text=True)
    assert 'data-testid="tile-progress-table"' in admin and "z17" in admin and "done" in admin


def test_a_confirmed_import_runs_in_the_background_once_and_its_page_shows_the_result(demo_store, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setenv("GISAPP_TEST_SLOW_PROGRESS", "0.1")
    app = create_app(_config(demo_store, tmp_path))
    client = signed_in(app, "officer1")
    before = demo_store.count("sidewalk_permits")
    answer = _send(client, _permits(demo_store, tmp_path, n=12)).json
    assert _follow(client, answer["status"])[-1]["state"] == "done"
    report = client.get(answer["page"]).get_data(as_text=True)
    confirm = report.split('data-confirm-form')[0].rsplit('action="', 1)[1].split('"')[0]
    r = client.post(confirm, data={"csrf_token": token_of(report)}, headers={"Accept": "application/json"})
    assert r.status_code == 202
    again = client.post(confirm, data={"csrf_token": token_of(report)}, headers={"Accept": "application/json"})
    assert again.status_code == 400  # once only, even from another tab
    assert client.post(confirm, data={"csrf_token": token_of(report)}).status_code == 400  # nor by a plain post
    seen = _follow(client, answer["status"])
    assert "write" in [s["stage"] for s in seen]
    assert seen[-1]["state"] == "imported"
    assert demo_store.count("sidewalk_permits") == before + 12
    done = client.get(answer["page"]).get_data(as_text=True)
    assert "Đã nhập dữ liệu" in done and 'data-testid="accepted">12<' in done
    entry = Accounts(app.config["ACCOUNTS"]).audit_log()[0]
    assert (entry.username, entry.action, entry.rows) == ("officer1", "import", 12)
