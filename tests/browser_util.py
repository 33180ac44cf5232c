"""Helpers for the page and browser tests: sample data, a live server, Chromium.

``sample_frames(n)`` builds small, deterministic layers (six square wards
near Cẩm Lệ, ``n`` lots, sidewalk permits, findings) including one owner
called ``<img src=x onerror=alert(1)>``; the benchmark uses it at 100,000.
``live_server(app)`` serves an app on 127.0.0.1 at a random port in a
thread; ``launch_chromium(p)`` starts Debian's Chromium, failing under CI
and skipping elsewhere when it is missing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import threading

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gisapp import domain, schema

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
XSS_OWNER = "<img src=x onerror=alert(1)>"
XSS_ADDRESS = "<img src=y onerror=alert(2)> 12 Ông Ích Đường"

WARDS_2022 = [("20260", "Khuê Trung"), ("20305", "Hòa Phát"), ("20306", "Hòa An"),
              ("20311", "Hòa Thọ Tây"), ("20312", "Hòa Thọ Đông"), ("20314", "Hòa Xuân")]
SUCCESSOR = {"20260": "20260", "20311": "20260", "20312": "20260", "20305": "20305", "20306": "20305",
             "20314": "20314"}
WARDS_2025 = [("20260", "Phường Cẩm Lệ"), ("20305", "Phường An Khê"), ("20314", "Phường Hòa Xuân")]
X0, Y0 = 544000.0, 1766000.0


def _cell(i: int, size: float) -> shapely.Polygon:
    col, row = i % 3, i // 3
    return shapely.box(X0 + col * size, Y0 + row * size, X0 + (col + 1) * size, Y0 + (row + 1) * size)


def sample_frames(n: int = 240, seed: int = 7, calendar: domain.Calendar | None = None,
                  cell: float | None = None) -> tuple[dict[str, gpd.GeoDataFrame], dict]:
    """Deterministic layers with ``n`` construction dossiers, and the store metadata."""
    calendar = calendar or domain.Calendar()
    rng = np.random.default_rng(seed)
    per_row, dx, dy = 100, 10.0, 30.0
    rows_needed = int(np.ceil(n / 6 / per_row)) + 1
    size = cell or max(1200.0, 100 + rows_needed * dy + 100, per_row * dx + 200)
    wards = []
    for i, (code, name) in enumerate(WARDS_2022):
        wards.append({"ward_key": f"2022-{code}", "ward_code": code, "name": name, "district": "Cẩm Lệ",
                      "valid_from": "2019-01-01", "valid_to": "2025-06-30", "successor_code": SUCCESSOR[code],
                      "approximate": 1, "source": "test", "geometry": _cell(i, size)})
    for code, name in WARDS_2025:
        parts = [_cell(i, size) for i, (c, _) in enumerate(WARDS_2022) if SUCCESSOR[c] == code]
        wards.append({"ward_key": f"2025-{code}", "ward_code": code, "name": name, "district": "",
                      "valid_from": "2025-07-01", "valid_to": None, "successor_code": None,
                      "approximate": 0, "source": "test", "geometry": shapely.union_all(parts)})
    idx = np.arange(n)
    ward_i = idx % 6
    k = idx // 6
    x = X0 + (ward_i % 3) * size + 100 + (k % per_row) * dx
    y = Y0 + (ward_i // 3) * size + 100 + (k // per_row) * dy
    statuses = np.array(["RETURNED", "RESULT_READY", "PROCESSING", "RECEIVED", "REFUSED", "SUPPLEMENT_REQUESTED",
                         "WITHDRAWN"])
    status = statuses[rng.choice(len(statuses), n, p=[0.55, 0.1, 0.15, 0.08, 0.04, 0.05, 0.03])]
    procedures = np.array(list(domain.PROCEDURES))
    procedure = procedures[rng.choice(len(procedures), n, p=[0.6, 0.2, 0.02, 0.05, 0.05, 0.05, 0.03])]
    received = pd.Timestamp("2022-01-04") + pd.to_timedelta(rng.integers(0, 178, n), unit="D")
    frame = pd.DataFrame({
        "dossier_code": [f"XD-2022-{i:06d}" for i in idx],
        "permit_no": [f"{i + 1}/GPXD" for i in idx],
        "ward_code": [WARDS_2022[w][0] for w in ward_i],
        "status": status, "procedure": procedure,
        "work_category": np.where(rng.random(n) < 0.9, "HOUSE", "OTHER"),
        "channel": np.where(rng.random(n) < 0.545, "ONLINE", np.where(rng.random(n) < 0.9, "IN_PERSON", "POST")),
        "received_on": received.astype("datetime64[ms]"),
    })
    frame["due_on"] = domain.due_date(frame["received_on"], frame["procedure"], frame["work_category"], calendar)
    closed = ~frame["status"].isin(domain.OPEN_STATUSES)
    early = pd.to_timedelta(rng.integers(0, 4, n), unit="D")
    frame["completed_on"] = (frame["due_on"] - early).where(closed)
    frame["issued_on"] = frame["completed_on"].where(frame["status"].isin(["RETURNED", "RESULT_READY"]))
    streets = ["Ông Ích Đường", "Cách Mạng Tháng Tám", "Trường Chinh", "Nguyễn Hữu Thọ", "Lê Đại Hành"]
    street = [streets[i % len(streets)] for i in idx]
    frame["owner_name"] = [f"Nguyễn Văn {i}" for i in idx]
    frame["owner_id_no"] = None
    frame["street"] = street
    frame["site_address"] = [f"{(i % 300) + 1} {s}" for i, s in zip(idx, street)]
    frame["map_sheet_no"] = [str(10 + i % 40) for i in idx]
    frame["parcel_no"] = [str(100 + i) for i in idx]
    frame["plot_area_m2"] = 8.0 * 20.0
    frame["footprint_m2"] = 120.0
    frame["floors"] = rng.integers(1, 6, n)
    frame["floor_area_m2"] = frame["floors"] * 120.0
    frame["height_m"] = frame["floors"] * 3.6
    if n:
        frame.loc[0, "owner_name"] = XSS_OWNER
        frame.loc[0, "site_address"] = XSS_ADDRESS
    lots = shapely.box(x, y, x + 8, y + 20)
    permits = gpd.GeoDataFrame(frame, geometry=lots, crs=schema.STORE_CRS)

    # sidewalk permits in front of every seventh lot, half of them linked to the dossier
    front = idx[idx % 7 == 3]
    purposes = np.array(list(domain.SIDEWALK_PURPOSES))
    sw_start = received[front] + pd.Timedelta(days=20)
    sidewalk = gpd.GeoDataFrame({
        "permit_no": [f"VH-2022-{j:05d}" for j in range(len(front))],
        "ward_code": [WARDS_2022[w][0] for w in ward_i[front]],
        "purpose": purposes[np.where(np.arange(len(front)) % 3 == 0, 0, np.arange(len(front)) % 5)],
        "status": "RETURNED",
        "channel": "ONLINE",
        "applicant_name": [f"Trần Thị {j}" for j in range(len(front))],
        "address": [frame["site_address"].iloc[i] for i in front],
        "street": [street[i] for i in front],
        "start_on": sw_start.astype("datetime64[ms]"),
        "end_on": (sw_start + pd.Timedelta(days=60)).astype("datetime64[ms]"),
        "sidewalk_width_m": 3.0,
        "used_width_m": np.where(np.arange(len(front)) % 4 == 0, 2.0, 1.2),
        "used_area_m2": 8.0 * 1.5,
        "construction_dossier_code": [frame["dossier_code"].iloc[i] if j % 2 == 0 else None
                                      for j, i in enumerate(front)],
    }, geometry=shapely.box(x[front], y[front] - 2.5, x[front] + 8, y[front] - 1.0), crs=schema.STORE_CRS)
    unlinked = sidewalk["construction_dossier_code"].isna().to_numpy()
    cands = sidewalk[unlinked]
    findings = gpd.GeoDataFrame({
        "finding_id": [f"F-{j:05d}" for j in range(len(cands))],
        "kind": "MERGE_CANDIDATE",
        "a_id": cands["permit_no"].to_numpy(),
        "b_id": frame["dossier_code"].to_numpy()[front[unlinked]],
        "ward_code": cands["ward_code"].to_numpy(),
        "distance_m": 1.0,
        "overlap_start": cands["start_on"].to_numpy(),
        "overlap_end": cands["end_on"].to_numpy(),
        "overlap_days": 61,
        "detail": "test",
    }, geometry=cands.geometry.to_numpy(), crs=schema.STORE_CRS)
    frames = {"wards": gpd.GeoDataFrame(wards, geometry="geometry", crs=schema.STORE_CRS),
              "construction_permits": permits, "sidewalk_permits": sidewalk, "findings": findings}
    return frames, {"as_of": "2022-07-08"}


# -- a real server in a thread ------------------------------------------------------------

@contextlib.contextmanager
def live_server(app):
    """Serve ``app`` on 127.0.0.1 at a free port; yields the base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def browser_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or ``None`` when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return f"Chromium is not installed at {CHROMIUM} (Debian package 'chromium')"
    return None


def require_browser() -> None:
    """Fail under CI (``CI=true``), skip elsewhere, when the browser tests cannot run."""
    reason = browser_missing_reason()
    if reason:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"browser tests must run in CI: {reason}")
        pytest.skip(reason)


def launch_chromium(p):
    """Launch Debian's Chromium through Playwright (never Playwright's own download)."""
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def days(n: int) -> dt.timedelta:
    """``n`` days."""
    return dt.timedelta(days=n)


# -- pytest fixtures for browser tests (import them into the test module) ------------------

@pytest.fixture(scope="module", name="chromium")
def chromium_fixture():
    """A Chromium browser for the module; fails under CI, skips elsewhere, when missing."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()


class PageRecorder:
    """A page that records every request URL, console error, page error and dialog."""

    def __init__(self, page, base: str):
        self.page, self.base = page, base
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("dialog", self._dialog)

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def outside(self) -> list[str]:
        """Requests that left the server's own origin (data: URLs aside)."""
        return [u for u in self.requests if not u.startswith(self.base + "/") and not u.startswith("data:")]


def wait_until(page, condition: str, timeout: int = 30000, interval: int = 50):
    """Wait until the JavaScript expression ``condition`` is truthy in ``page``; return its value.

    Playwright's ``wait_for_function`` evaluates its expression with ``eval``
    inside the page, which the app's Content-Security-Policy forbids; here the
    expression is part of the function Playwright sends (run by the browser's
    debugging protocol, which the policy does not govern).
    """
    return page.evaluate("""([timeout, interval]) => new Promise((resolve, reject) => {
        const until = Date.now() + timeout;
        const check = () => {
            let value;
            try { value = (__CONDITION__); } catch (err) { reject(err); return; }
            if (value) { resolve(value); return; }
            if (Date.now() > until) { reject(new Error("timed out waiting for: " + __TEXT__)); return; }
            setTimeout(check, interval);
        };
        check();
    })""".replace("__TEXT__", json.dumps(condition)).replace("__CONDITION__", condition), [timeout, interval])


def open_page(browser, base: str, viewport=(1400, 860)) -> PageRecorder:
    """A fresh context and page on ``base`` with recording on."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="vi-VN")
    return PageRecorder(context.new_page(), base)
