"""Several app servers on one PostGIS database, and the sample nginx (``deploy/nginx.conf``) in front of them.

Two real ``gisapp serve`` processes (gunicorn, each with its own tile
folder and its own tile renderer) on one real PostGIS database: a write
through one is in the other's API answers at once and in its tiles, and
both renderers end with their folder holding the new version only.  Two
servers sharing one tile folder render each version once.  Then
the real nginx, run from the sample configuration: links carry the proxy's
scheme, host and port, a sign-in through it is good on both servers, a
write through it is seen by both, and a phone photo of ~17 MB passes.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import shapely

from gisapp import geo
from gisapp.accounts import Accounts
from gisapp.schema import STORE_CRS, WEB_CRS
from gisapp.tiles import mvt
from gisapp.tiles.disk import TileDir
from tests.helpers import PASSWORD, decode, occupancy_inputs, phone_jpeg, token_of
from tests.nginx_server import start_nginx
from tests.pg_server import free_port
from tests.stores import analyzed_store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ZOOM = 14  # the zoom the renderers render (one, to keep them short)


def _serve(port: int, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "gisapp", "serve", "--port", str(port), "--workers", "1",
                                 "--threads", "4"], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait(predicate, timeout: float, what: str, pause: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(pause)


def _health(base: str) -> dict | None:
    try:
        r = requests.get(f"{base}/healthz", timeout=10)
    except requests.RequestException:
        return None
    return r.json() if r.status_code == 200 else None


@pytest.fixture(scope="module")
def city(pg_server, demo_frames, tmp_path_factory, request):
    """The demo, analysed, in one PostGIS database; an accounts file with an officer."""
    frames, meta = demo_frames
    home = tmp_path_factory.mktemp("city")
    store = analyzed_store("postgis", home, request, frames, meta)
    Accounts(home / "accounts.sqlite").add("olga", PASSWORD, "officer")
    return store, home


@contextlib.contextmanager
def _two_servers(store, home: Path, folders: list[Path]):
    """Two ``gisapp serve`` on the one database, with tile folders ``folders``: ``(ports, bases, logs)``.

    They share what a city's servers on one machine share: the secret key, the
    accounts file and the uploads folder.
    """
    common = {**os.environ, "GISAPP_STORE": store.url, "GISAPP_ENV": "development",
              "GISAPP_SECRET_KEY": secrets.token_hex(32), "GISAPP_ACCOUNTS": str(home / "accounts.sqlite"),
              "GISAPP_UPLOADS": str(home / "uploads"), "GISAPP_PROXIES": "1", "GISAPP_TILE_WARM": str(ZOOM),
              "GISAPP_REPORT_WORKERS": "0", "PYTHONUNBUFFERED": "1"}  # logs read by the tests
    ports = [free_port(), free_port()]
    logs = [home / f"serve-{p}.log" for p in ports]
    procs = [_serve(p, {**common, "GISAPP_TILE_DIR": str(folder)}, log) for p, folder, log in zip(ports, folders, logs)]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for proc, base, log in zip(procs, bases, logs):
            _wait(lambda proc=proc, base=base: proc.poll() is not None or _health(base), 90, f"{base} started")
            assert proc.poll() is None, log.read_text()
        yield ports, bases, logs
    finally:
        for proc in procs:
            _stop(proc)


@pytest.fixture(scope="module")
def servers(city):
    """Two servers on the one database, each with its own tile folder: ``(ports, bases, tile folders)``."""
    store, home = city
    folders = [home / "tiles-a", home / "tiles-b"]
    with _two_servers(store, home, folders) as (ports, bases, _):
        yield ports, bases, folders


def _sign_in(base: str, verify: bool | str = True) -> requests.Session:
    """A session signed in as the officer at ``base`` (a browser sends the Referer: HTTPS needs it for CSRF)."""
    session = requests.Session()
    session.verify, session.trust_env = verify, False  # not REQUESTS_CA_BUNDLE, no proxy from the environment
    session.headers["Referer"] = f"{base}/"
    csrf = token_of(session.get(f"{base}/login").text)
    r = session.post(f"{base}/login", data={"username": "olga", "password": PASSWORD, "csrf_token": csrf},
                     allow_redirects=False)
    assert r.status_code == 302, r.text[:500]
    return session


def _map_token(session: requests.Session, base: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', session.get(f"{base}/").text)
    assert found, "the map page carries no CSRF token"
    return found.group(1)


def _proposal(store, k: int):
    """A 2 m disc at the centre of the ``k``-th demo sidewalk permit, on its days: the occupancy's inputs, its tile."""
    permits = store.read("sidewalk_permits").sort_values("permit_no").reset_index(drop=True)
    row = permits.iloc[k]
    disc = shapely.buffer(shapely.centroid(row.geometry), 1.0)
    centre = geo.transform([shapely.centroid(disc)], STORE_CRS, WEB_CRS)[0]
    tile = (ZOOM, *mvt.tile_at(centre.x, centre.y, ZOOM))
    return occupancy_inputs(disc, str(row.start_on.date()), str(row.end_on.date())), tile, centre


def _file(session: requests.Session, base: str, inputs: dict) -> str:
    r = session.post(f"{base}/occupancy", json={"inputs": inputs, "applicant_name": "Test", "address": "1 Test"},
                     headers={"X-CSRFToken": _map_token(session, base)})
    assert r.status_code == 201, r.text[:1000]
    return r.json()["permit_no"]


def _tile_keys(base: str, tile) -> set[str]:
    z, x, y = tile
    r = requests.get(f"{base}/tiles/sidewalk_permits/{z}/{x}/{y}.mvt", timeout=30)
    assert r.status_code in (200, 204), r.text[:500]
    return set(decode(r.content, "sidewalk_permits"))


def _rendered(base: str) -> bool:
    tiles = (_health(base) or {}).get("tiles") or {}
    return bool(tiles.get("ready"))


def test_a_write_through_one_server_is_in_the_others_answers_and_tiles(city, servers):
    store, _ = city
    _, (a, b), folders = servers
    _wait(lambda: _rendered(a) and _rendered(b), 240, "both renderers done with the first version", 1)
    inputs, tile, centre = _proposal(store, 3)
    officer = _sign_in(a)
    # signed in at one server, signed in at the other (shared key and accounts file: no sticky sessions)
    page = officer.get(f"{b}/api/collections/sidewalk_permits/items?limit=1&f=json").json()
    assert "applicant_name" in page["features"][0]["properties"]

    number = _file(officer, a, inputs)
    # in the other server's API answers at once: no cache keyed by anything but the store's version
    item = requests.get(f"{b}/api/collections/sidewalk_permits/items/{number}?f=json", timeout=30)
    assert item.status_code == 200 and item.json()["properties"]["status"] == "NEW"
    box = f"{centre.x - 0.0001},{centre.y - 0.0001},{centre.x + 0.0001},{centre.y + 0.0001}"
    near = requests.get(f"{b}/api/collections/sidewalk_permits/items?bbox={box}&f=json", timeout=30).json()
    assert number in [f["id"] for f in near["features"]]
    # and in its tiles within 5 s (in fact at once: a tile of a version not rendered yet is built on request)
    _wait(lambda: number in _tile_keys(b, tile), 5, "the new permit on the other server's tile")
    assert number in _tile_keys(a, tile)

    # Both renderers notice the new version (written by another process: its change log) and re-render the tiles
    # it touched; neither undoes the other: each folder is of the new version, the permit in its tiles.
    version = store.version()
    _wait(lambda: _rendered(a) and _rendered(b), 120, "both renderers done with the new version", 0.5)
    for folder in folders:
        tiles = TileDir(folder, store.url)
        assert tiles.ready(version, [ZOOM])
        assert {p.name for p in tiles.root.iterdir() if p.is_dir()} <= {tiles.version_dir(version).name, "tiles"}
        assert number in decode(tiles.get(None, "sidewalk_permits", *tile) or b"", "sidewalk_permits")


def test_two_servers_sharing_one_tile_folder_render_each_version_once(city, tmp_path):
    store, home = city
    folder = tmp_path / "tiles"
    with _two_servers(store, home, [folder, folder]) as (_, (a, b), logs):
        _wait(lambda: _rendered(a) and _rendered(b), 240, "the first version rendered", 1)
        officer = _sign_in(b)
        inputs, tile, _ = _proposal(store, 7)
        number = _file(officer, b, inputs)
        version = store.version()
        _wait(lambda: _rendered(a) and _rendered(b), 120, "the new version rendered", 0.5)
        assert number in _tile_keys(a, tile)
    tiles = TileDir(folder, store.url)
    assert {p.name for p in tiles.root.iterdir() if p.is_dir()} <= {tiles.version_dir(version).name, "tiles"}
    assert number in decode(tiles.get(None, "sidewalk_permits", *tile) or b"", "sidewalk_permits")
    # one renderer rendered the new version, the other found it done (the lock file in the folder)
    rendered = [log.read_text().count(f"tiles of version {version} ready") for log in logs]
    assert sorted(rendered) == [0, 1], rendered


@pytest.fixture(scope="module")
def proxy(servers, tmp_path_factory):
    """The real nginx running ``deploy/nginx.conf`` in front of the two servers."""
    ports, _, _ = servers
    server = start_nginx(tmp_path_factory.mktemp("nginx"), ports)
    yield server
    server.stop()


def test_nginx_in_front_of_two_servers(city, servers, proxy):
    store, _ = city
    _, (a, b), _ = servers
    public = proxy.https
    # Absolute links carry the proxy's scheme, host and port, whatever a client claims in X-Forwarded-*.
    landing = requests.get(f"{public}/api?f=json", verify=proxy.cert, timeout=30,
                           headers={"X-Forwarded-Proto": "ftp", "X-Forwarded-Host": "evil.example"}).json()
    assert landing["links"] and all(link["href"].startswith(f"{public}/api") for link in landing["links"])
    page = requests.get(f"{public}/api/collections/construction_permits/items?limit=5&f=json", verify=proxy.cert,
                        timeout=30).json()
    assert {link["rel"] for link in page["links"]} >= {"self", "next"}
    assert all(link["href"].startswith(f"{public}/api/collections/") for link in page["links"])
    # Data is compressed, HTML pages never (BREACH): the map page, the sign-in form, the API's HTML.
    def encoding(path, **headers):
        r = requests.get(f"{public}{path}", verify=proxy.cert, timeout=30,
                         headers={"Accept-Encoding": "gzip", **headers})
        assert r.status_code == 200, (path, r.status_code)
        return r.headers.get("Content-Encoding")

    assert encoding("/api/collections/construction_permits/items?limit=50&f=json") == "gzip"
    assert encoding("/static/map.js") == "gzip"
    assert encoding("/data/wards.geojson") == "gzip"
    for path, headers in (("/", {}), ("/login", {}), ("/api/collections?f=html", {}),
                          ("/api/collections", {"Accept": "text/html,application/xhtml+xml"})):
        assert encoding(path, **headers) is None, path
    # plain HTTP is sent to HTTPS
    r = requests.get(f"http://127.0.0.1:{proxy.http_port}/api", allow_redirects=False, timeout=30)
    assert r.status_code == 301 and r.headers["Location"].startswith("https://127.0.0.1")

    # One sign-in through the proxy is good on both servers (nginx alternates between them).
    officer = _sign_in(public, proxy.cert)
    dossier = store.read("construction_permits", limit=1)["dossier_code"].iloc[0]
    for _ in range(6):
        assert officer.get(f"{public}/occupancy/frontage/{dossier}").status_code == 200
    served = {up for up, line in proxy.upstreams() if line.startswith("200 GET /occupancy/frontage/")}
    assert served == {a.removeprefix("http://"), b.removeprefix("http://")}, proxy.upstreams()

    # A write through the proxy is seen by both servers at once.
    inputs, _, _ = _proposal(store, 5)
    number = _file(officer, public, inputs)
    for base in (a, b, public):
        r = requests.get(f"{base}/api/collections/sidewalk_permits/items/{number}?f=json", verify=proxy.cert,
                         timeout=30)
        assert r.status_code == 200, (base, r.text[:300])

    # A phone photo of ~17 MB passes the proxy (nginx's own default stops bodies over 1 MB).
    photo = phone_jpeg(4900, 3675, quality=94, noise=True)
    assert 15 * 2**20 < len(photo) < 20 * 2**20
    token = token_of(officer.get(f"{public}/inspections/new").text)
    r = officer.post(f"{public}/inspections", headers={"Accept": "application/json"},
                     data={"csrf_token": token, "inspection_type": "SITE_CHECK", "outcome": "PASSED",
                           "lon": "108.2", "lat": "16.01"},
                     files={"photos": ("site.jpg", io.BytesIO(photo), "image/jpeg")})
    assert r.status_code == 201, (r.status_code, r.text[:500], proxy.error_log()[-1000:])
    inspection = r.json()["inspection_id"]
    assert officer.get(f"{public}/inspections/{inspection}").status_code == 200
    assert [i.inspection_id for i in store.inspections(inspection_id=inspection)] == [inspection]
