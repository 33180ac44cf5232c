"""Pre-rendered tiles on disk: rendering per data version, sharing between processes, the server's watcher."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qsl

import orjson
import pytest
from click.testing import CliRunner
from werkzeug.datastructures import MultiDict

from gisapp.cli import cli
from gisapp.config import ConfigError, load_config, parse_zooms
from gisapp.filters import parse_filter
from gisapp.folders import UnsafeFolder
from gisapp.store import open_store
from gisapp.tiles import mvt as tiles
from gisapp.tiles import source as tile_source
from gisapp.tiles.disk import TileDir, render, tile_range, watch
from gisapp.web.app import create_app
from tests.helpers import decode
from tests.pg_server import free_port
from tests.stores import BACKENDS, new_store

LAYER = "construction_permits"


@pytest.mark.parametrize("text, zooms", [("14-17", (14, 15, 16, 17)), ("15", (15,)), ("17,14-15", (14, 15, 17)),
                                         ("none", ()), ("", ())])
def test_zoom_settings_are_read(text, zooms):
    assert parse_zooms(text) == zooms


@pytest.mark.parametrize("text, message", [("13-15", "outside 14–18"), ("x", "'x' is not a zoom level"),
                                           ("16-14", "outside"), ("14-19", "outside")])
def test_bad_zoom_settings_are_refused_with_the_setting_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_zooms(text)
    with pytest.raises(ConfigError, match="GISAPP_TILE_WARM: .*" + message):
        load_config(environ={"GISAPP_TILE_WARM": text})


def test_tile_folder_can_be_turned_off():
    assert load_config(environ={"GISAPP_TILE_DIR": "none"})["TILE_DIR"] is None
    assert load_config(environ={"GISAPP_TILE_DIR": "/srv/tiles"})["TILE_DIR"] == "/srv/tiles"


def _tiles_on_disk(version_dir: Path) -> dict[tuple, bytes]:
    """(z, x, y, layer) → body of every tile in a version's folder (empty tiles are ``<y>.empty``)."""
    return {tuple(int(p) for p in (*f.relative_to(version_dir).parts[1:3], f.stem)) + (f.parts[-4],): f.read_bytes()
            for pattern in ("*.mvt", "*.empty") for f in version_dir.rglob(pattern)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_render_writes_every_tile_of_the_layers_as_the_store_builds_it(backend, tmp_path, request, demo_frames):
    store = new_store(backend, tmp_path, request)
    store.write(demo_frames[0], meta=demo_frames[1])
    tile_dir = TileDir(tmp_path / "tiles", store.url)
    report = render(store, tile_dir, (14, 15))
    on_disk = _tiles_on_disk(tile_dir.base)
    assert report["tiles"] == len(on_disk) == report["built"] and report["zooms"] == [14, 15]
    assert tile_dir.status(store.version()) == report
    extent = next(i.extent for i in store.info() if i.name == LAYER)
    x0, y0, x1, y1 = tile_range(extent, 14)
    z14 = {(x, y) for (z, x, y, layer) in on_disk if layer == LAYER and z == 14}
    assert z14 == {(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)}
    # z15: the four children of each z14 tile with features, and nothing else
    full14 = {(x, y) for (z, x, y, layer), body in on_disk.items() if layer == LAYER and z == 14 and body}
    assert full14 and len(full14) < len(z14)  # the demo district does not fill its box
    z15 = {(x, y) for (z, x, y, layer) in on_disk if layer == LAYER and z == 15}
    assert z15 == {(2 * x + dx, 2 * y + dy) for x, y in full14 for dx in (0, 1) for dy in (0, 1)}
    for (z, x, y, layer), body in on_disk.items():  # ST_AsMVT may order features differently from run to run
        assert _content(body, layer) == _content(tile_source.tile(store, layer, z, x, y), layer), (layer, z, x, y)
    with_rows = {i.name for i in store.info() if i.count and i.name in tiles.TILE_FIELDS}
    assert {layer for *_, layer in on_disk} == with_rows == {LAYER, "sidewalk_permits"}  # no findings yet
    again = render(store, tile_dir, (14, 15))  # nothing written since: nothing to render
    assert again["built"] == again["tiles"] == 0 and again["incremental"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_render_beside_a_busy_server_yields_between_tiles_and_still_renders_every_tile(backend, tmp_path, request,
                                                                                          demo_frames):
    store = new_store(backend, tmp_path, request)
    store.write(demo_frames[0], meta=demo_frames[1])
    busy, quiet = TileDir(tmp_path / "busy", store.url), TileDir(tmp_path / "quiet", store.url)
    busy.beat()  # the store's folder, as the renderer makes it
    busy.served().note()
    later = time.time() + 3600
    os.utime(busy.served().path, (later, later))  # a server that answers requests all along
    assert busy.served().busy() and not quiet.served().busy()
    yielding, alone = render(store, busy, (14,)), render(store, quiet, (14,))
    assert yielding["yielded"] > 0 and alone["yielded"] == 0
    assert busy.ready(store.version(), (14,)) and yielding["tiles"] == alone["tiles"] == yielding["built"] > 1
    on_disk, expected = _tiles_on_disk(busy.base), _tiles_on_disk(quiet.base)
    assert on_disk.keys() == expected.keys()
    for key in on_disk:  # ST_AsMVT may order features differently from run to run
        assert _content(on_disk[key], key[3]) == _content(expected[key], key[3]), key


def test_requests_note_that_they_are_served_for_the_renderer(demo_store, tmp_path):
    tile_dir = TileDir(tmp_path / "tiles", demo_store.url)
    tile_dir.beat()
    served = tile_dir.served()
    client = create_app({"STORE": demo_store.url, "TESTING": True, "TILE_DIR": str(tmp_path / "tiles")}).test_client()
    assert not served.path.exists()
    assert client.get(f"/api/collections/{LAYER}/items?limit=1").status_code == 200
    assert served.busy(within=3600)
    os.utime(served.path, (0, 0))  # long ago
    assert not served.busy(within=3600)
    assert client.get("/healthz").status_code == 200
    assert not served.busy(within=3600)  # a health probe is no officer waiting: the renderer goes on
    assert client.get("/?lang=en").status_code == 200
    assert served.busy(within=3600)
    # a removed folder (its renderer makes it again) does not fail the requests
    shutil.rmtree(tile_dir.root)
    assert client.get("/?lang=en").status_code == 200 and not served.path.exists()


def test_a_new_version_is_rendered_and_the_old_one_removed(demo_store, tmp_path):
    tile_dir = TileDir(tmp_path / "tiles", demo_store.url)
    first = demo_store.version()
    watch(lambda: open_store(demo_store.url), tile_dir, (14,), once=True)
    assert tile_dir.status(first)["zooms"] == [14]
    kept = demo_store.read(LAYER)
    demo_store.write({LAYER: kept.iloc[: len(kept) // 2]})
    second = demo_store.version()
    assert second != first and tile_dir.status(second) is None
    watch(lambda: open_store(demo_store.url), tile_dir, (14,), once=True)
    assert tile_dir.status(second)["zooms"] == [14]
    assert not tile_dir.version_dir(first).exists()
    assert {p.name for p in tile_dir.root.iterdir() if p.is_dir()} <= {tile_dir.version_dir(second).name, "tiles"}
    for (z, x, y, layer), body in _tiles_on_disk(tile_dir.base).items():
        assert _content(body, layer) == _content(tile_source.tile(demo_store, layer, z, x, y), layer)


def test_a_write_during_rendering_is_rendered_next(demo_store, tmp_path):
    tile_dir = TileDir(tmp_path / "tiles", demo_store.url)
    first = demo_store.version()
    kept = demo_store.read(LAYER)

    def write_after_first_zoom(message: str) -> None:
        if message.startswith(f"{LAYER} z14"):
            demo_store.write({LAYER: kept.iloc[:10]})

    render(demo_store, tile_dir, (14, 15), log=write_after_first_zoom)
    assert tile_dir.status(first)["zooms"] == [14, 15] and demo_store.version() != first
    watch(lambda: open_store(demo_store.url), tile_dir, (14, 15), once=True)
    second = demo_store.version()
    assert tile_dir.status(second)["zooms"] == [14, 15]
    for (z, x, y, layer), body in _tiles_on_disk(tile_dir.base).items():
        assert _content(body, layer) == _content(tile_source.tile(demo_store, layer, z, x, y), layer)


def _content(body: bytes, layer: str) -> dict:
    return {key: (f["geometry"].wkb, f["properties"]) for key, f in decode(body, layer).items()}


def _busiest_z14(store) -> tuple[int, int, int]:
    extent = next(i.extent for i in store.info() if i.name == LAYER)
    x0, y0, x1, y1 = tile_range(extent, 14)
    return max(((14, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)),
               key=lambda t: len(tile_source.tile(store, LAYER, *t)))


def test_unfiltered_tiles_come_from_the_shared_folder(demo_store, tmp_path):
    config = {"STORE": demo_store.url, "TESTING": True, "TILE_DIR": str(tmp_path / "tiles"), "TILE_CACHE_MB": 0}
    client = create_app(config).test_client()
    tile_dir = TileDir(tmp_path / "tiles", demo_store.url)
    z, x, y = _busiest_z14(demo_store)
    url = f"/tiles/{LAYER}/{z}/{x}/{y}.mvt"
    built = client.get(url)
    assert built.status_code == 200 and built.data == tile_source.tile(demo_store, LAYER, z, x, y)
    assert tile_dir.get(demo_store.version(), LAYER, z, x, y) == built.data  # kept for the other processes
    # What is in the folder is what the other processes serve: a planted body comes back as it is.
    tile_dir.put(demo_store.version(), LAYER, z, x, y, b"planted")
    other = create_app(config).test_client()
    assert other.get(url).data == b"planted"
    assert other.get(url + "?q=").data == b"planted"  # an empty filter parameter: still the unfiltered tile
    tile_dir.put(demo_store.version(), LAYER, z, x, y, b"")  # an empty tile on disk is a 204
    assert other.get(url).status_code == 204


@pytest.mark.parametrize("query, staff", [("status=RETURNED", False), ("q=Lê", False), ("q=Lê", True),
                                          ("bbox=108.17,16.0,108.2,16.03", False), ("from=2023-01-01", False),
                                          ("to=2023-12-31", False), ("ward=20305", False)])
def test_filtered_tiles_never_come_from_or_go_to_the_shared_folder(demo_store, tmp_path, query, staff):
    config = {"STORE": demo_store.url, "TESTING": True, "TILE_DIR": str(tmp_path / "tiles"), "TILE_CACHE_MB": 0,
              "SHOW_PERSONAL_DATA": staff}
    client = create_app(config).test_client()
    tile_dir = TileDir(tmp_path / "tiles", demo_store.url)
    z, x, y = _busiest_z14(demo_store)
    tile_dir.put(demo_store.version(), LAYER, z, x, y, b"planted")
    filtered = client.get(f"/tiles/{LAYER}/{z}/{x}/{y}.mvt?{query}")
    assert filtered.status_code in (200, 204) and filtered.data != b"planted"
    unfiltered = client.get(f"/tiles/{LAYER}/{z}/{x}/{y}.mvt")
    assert filtered.data != unfiltered.data  # each query selects fewer parcels than the whole tile
    assert tile_dir.get(demo_store.version(), LAYER, z, x, y) == b"planted"
    # with the real unfiltered tile in the folder, a filtered tile is its subset (gisapp.tiles.subset): the
    # store's own filtered tile, and still not written to the folder
    whole = tile_source.tile(demo_store, LAYER, z, x, y)
    tile_dir.put(demo_store.version(), LAYER, z, x, y, whole)
    again = client.get(f"/tiles/{LAYER}/{z}/{x}/{y}.mvt?{query}")
    flt = parse_filter(MultiDict(parse_qsl(query)), "tiles", personal=staff)[0]
    assert decode(again.data, LAYER) == decode(tile_source.tile(demo_store, LAYER, z, x, y, flt), LAYER)
    assert tile_dir.get(demo_store.version(), LAYER, z, x, y) == whole


def test_requests_write_back_only_tiles_the_renderer_would_make(demo_store, tmp_path):
    config = {"STORE": demo_store.url, "TESTING": True, "TILE_DIR": str(tmp_path / "tiles"), "TILE_WARM": "14-15"}
    client = create_app(config).test_client()
    tile_dir = TileDir(tmp_path / "tiles", demo_store.url)
    z, x, y = _busiest_z14(demo_store)
    assert client.get(f"/tiles/{LAYER}/{z}/{x}/{y}.mvt").status_code == 200
    assert client.get(f"/tiles/{LAYER}/17/{x * 8}/{y * 8}.mvt").status_code in (200, 204)  # z17: not rendered
    assert client.get(f"/tiles/{LAYER}/14/0/0.mvt").status_code == 204  # empty, far away
    on_disk = _tiles_on_disk(tile_dir.version_dir(demo_store.version()))
    assert list(on_disk) == [(z, x, y, LAYER)] and not tile_dir.base.exists()


def test_without_a_tile_folder_tiles_are_built_and_nothing_is_written(demo_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    before = sorted(tmp_path.rglob("*"))
    client = create_app({"STORE": demo_store.url, "TESTING": True, "TILE_DIR": "none"}).test_client()
    z, x, y = _busiest_z14(demo_store)
    assert client.get(f"/tiles/{LAYER}/{z}/{x}/{y}.mvt").data == tile_source.tile(demo_store, LAYER, z, x, y)
    assert sorted(tmp_path.rglob("*")) == before
    assert not any(Path(os.environ["GISAPP_TILE_DIR"]).rglob("*.mvt"))  # nor in the folder of the environment
    assert "tiles" not in client.get("/healthz").json


def test_health_says_whether_the_tiles_of_the_current_data_are_ready(demo_store, tmp_path):
    config = {"STORE": demo_store.url, "TESTING": True, "TILE_DIR": str(tmp_path / "tiles"), "TILE_WARM": "14"}
    client = create_app(config).test_client()
    assert client.get("/healthz").json["tiles"] == {"zooms": [14], "ready": False, "renderer": False}
    watch(lambda: open_store(demo_store.url), TileDir(tmp_path / "tiles", demo_store.url), (14,), once=True)
    tiles = client.get("/healthz").json["tiles"]
    assert {k: tiles[k] for k in ("zooms", "ready", "renderer")} == {"zooms": [14], "ready": True, "renderer": True}
    assert tiles["progress"]["state"] == "done"  # the last render's counts (tests/test_progress_browser.py)
    kept = demo_store.read(LAYER)
    demo_store.write({LAYER: kept.iloc[:10]})
    assert client.get("/healthz").json["tiles"]["ready"] is False  # the new data's tiles are not rendered yet


def test_zoom_levels_rendered_at_different_times_add_up(demo_store, tmp_path):
    tile_dir = TileDir(tmp_path / "tiles", demo_store.url)
    version = demo_store.version()
    render(demo_store, tile_dir, (14,))
    assert render(demo_store, tile_dir, (16,))["zooms"] == [14, 16]
    assert tile_dir.ready(version, (14,)) and tile_dir.ready(version, (14, 16)) and not tile_dir.ready(version, (15,))
    before = tile_dir.status(version)
    watch(lambda: open_store(demo_store.url), tile_dir, (14,), once=True)  # nothing to do
    assert tile_dir.status(version) == before


def test_a_tile_folder_others_control_is_not_used(demo_store, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "keep").mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafeFolder, match="link"):
        TileDir(link, demo_store.url)
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    with pytest.raises(UnsafeFolder, match="others may write"):
        TileDir(open_dir, demo_store.url)
    client = create_app({"STORE": demo_store.url, "TESTING": True, "TILE_DIR": str(link)}).test_client()
    z, x, y = _busiest_z14(demo_store)
    assert client.get(f"/tiles/{LAYER}/{z}/{x}/{y}.mvt").data == tile_source.tile(demo_store, LAYER, z, x, y)
    assert [p.name for p in elsewhere.iterdir()] == ["keep"]
    health = client.get("/healthz").json
    assert health["status"] == "ok" and "is a link" in health["tiles"]["problem"]
    result = CliRunner().invoke(cli, ["--store", demo_store.url, "tiles", "render"], env={"GISAPP_TILE_DIR": str(link)})
    assert result.exit_code == 2 and "GISAPP_TILE_DIR cannot hold tiles" in result.output


def test_a_tile_that_cannot_be_written_stops_the_render_and_is_reported(demo_store, tmp_path):
    tile_dir = TileDir(tmp_path / "tiles", demo_store.url)
    version_dir = tile_dir.version_dir(demo_store.version())
    version_dir.mkdir(parents=True)
    (version_dir / LAYER).write_text("a file where the layer's folder goes")  # as a full disk would, mkdir fails
    assert tile_dir.state() is None
    with pytest.raises(OSError, match="cannot write tiles"):
        watch(lambda: open_store(demo_store.url), tile_dir, (14,), once=True)
    assert tile_dir.status(demo_store.version()) is None


def test_cli_renders_and_names_a_missing_folder(demo_store, tmp_path):
    runner = CliRunner()
    env = {"GISAPP_TILE_DIR": str(tmp_path / "tiles")}
    result = runner.invoke(cli, ["--store", demo_store.url, "tiles", "render", "--zooms", "14"], env=env)
    assert result.exit_code == 0, result.output
    assert f"{LAYER} z14:" in result.output and "ready" in result.output
    assert TileDir(tmp_path / "tiles", demo_store.url).status(demo_store.version())["zooms"] == [14]
    off = runner.invoke(cli, ["--store", demo_store.url, "tiles", "render"], env={"GISAPP_TILE_DIR": "none"})
    assert off.exit_code == 2 and "GISAPP_TILE_DIR is none" in off.output
    bad = runner.invoke(cli, ["--store", demo_store.url, "tiles", "render", "--zooms", "9"], env=env)
    assert bad.exit_code == 2 and "--zooms" in bad.output and "outside" in bad.output


def _watchers(store_path: str) -> list[int]:
    """Processes running ``gisapp tiles watch`` for ``store_path``."""
    out = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"tiles\0watch" in cmdline and f"GISAPP_STORE={store_path}\0".encode() in environ:
            out.append(int(proc.name))
    return out


@pytest.mark.slow
def test_serve_renders_the_tiles_beside_the_workers_and_stops_the_renderer(demo_store, tmp_path):
    port = free_port()
    env = {**os.environ, "GISAPP_TILE_DIR": str(tmp_path / "tiles"), "GISAPP_TILE_WARM": "14-15"}
    proc = subprocess.Popen([sys.executable, "-m", "gisapp", "--store", demo_store.url, "serve", "--port", str(port),
                             "--workers", "2", "--threads", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    try:
        deadline, body = time.monotonic() + 90, None
        while not (body and body["tiles"]["ready"]):
            assert proc.poll() is None and time.monotonic() < deadline, "tiles not ready in 90 s"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    body = orjson.loads(r.read())
            except OSError:
                pass
            time.sleep(0.2)
        assert len(_watchers(demo_store.url)) == 1
        tile_dir = TileDir(tmp_path / "tiles", demo_store.url)
        status = tile_dir.status(demo_store.version())
        assert status["zooms"] == [14, 15] and status["tiles"] > 0
        assert not tile_dir.served().path.exists()  # health probes are not what the renderer yields to
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?lang=en", timeout=5):
            pass
        assert tile_dir.served().busy(within=3600)  # the workers' page requests set its time: the renderer yields
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "tiles: tiles of version" in out and "s of it yielding to requests" in out
    deadline = time.monotonic() + 10
    while _watchers(demo_store.url) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _watchers(demo_store.url) == []


@pytest.mark.slow
def test_the_renderer_ends_with_a_server_that_is_killed(demo_store, tmp_path):
    port = free_port()
    env = {**os.environ, "GISAPP_TILE_DIR": str(tmp_path / "tiles"), "GISAPP_TILE_WARM": "14"}
    proc = subprocess.Popen([sys.executable, "-m", "gisapp", "--store", demo_store.url, "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while not _watchers(demo_store.url):
            assert proc.poll() is None and time.monotonic() < deadline, "no renderer started"
            time.sleep(0.1)
    finally:
        proc.kill()  # no chance to stop its child itself
        proc.wait()
    deadline = time.monotonic() + 10
    while _watchers(demo_store.url) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _watchers(demo_store.url)
    for pid in left:  # do not leave it running when the test fails
        os.kill(pid, signal.SIGKILL)
    assert left == []


@pytest.mark.slow
def test_a_killed_renderer_is_started_again_by_the_server(demo_store, tmp_path):
    port = free_port()
    env = {**os.environ, "GISAPP_TILE_DIR": str(tmp_path / "tiles"), "GISAPP_TILE_WARM": "14"}
    proc = subprocess.Popen([sys.executable, "-m", "gisapp", "--store", demo_store.url, "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not _watchers(demo_store.url):
            assert proc.poll() is None and time.monotonic() < deadline, "no renderer started"
            time.sleep(0.1)
        first = _watchers(demo_store.url)
        os.kill(first[0], signal.SIGKILL)  # as the memory killer would
        deadline = time.monotonic() + 30
        while not [p for p in _watchers(demo_store.url) if p not in first]:
            assert proc.poll() is None and time.monotonic() < deadline, "the renderer was not started again"
            time.sleep(0.1)
        assert len(_watchers(demo_store.url)) == 1
        deadline = time.monotonic() + 60  # and the new one renders
        tile_dir = TileDir(tmp_path / "tiles", demo_store.url)
        while not tile_dir.ready(demo_store.version(), (14,)):
            assert time.monotonic() < deadline, "the restarted renderer did not render"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "ended with code -9" in out and "starting it again" in out
    deadline = time.monotonic() + 10
    while _watchers(demo_store.url) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _watchers(demo_store.url)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []
