"""Vector tiles kept on disk for every server process, and the job that renders them after each write.

A z14 tile of a dense city holds 10,000–25,000 parcels and takes 150–250 ms
of one core to build (the GeoPackage encoder; ``ST_AsMVT`` takes longer);
several staff panning at once would queue behind it.  So the tiles of the
whole layer, unfiltered, are rendered once per version of the data into a
folder shared by all the server's worker processes (``GISAPP_TILE_DIR``),
by a background process at low priority (:func:`watch`), started by
``gisapp serve``.  A request then reads a file.  Filtered tiles are built
on request and kept in each process's memory (:class:`gisapp.tiles.mvt.TileCache`);
an unfiltered tile not rendered yet (the job still running, or a zoom it
does not render) is built on request and written here for the others.

Layout: ``<root>/<store id>/<version id>/<layer>/<z>/<x>/<y>.mvt``, where the
store id is a hash of the store's address and the version id a hash of
:meth:`gisapp.store.base.Store.version`; an empty tile is ``<y>.empty`` (a
``.mvt`` of no bytes, which a crash could leave, counts as missing).
``<version id>/complete`` says which zooms are done (JSON: zooms, tiles,
seconds); ``<store id>/heartbeat`` is touched by the running renderer.
Files are written under a temporary name and renamed, so a reader never
sees half a tile.  A write to the store makes a new version: the renderer
first removes the folders of every other version (requests ask for the
current one only; a request that read the version just before the write
may write one old tile back, removed next time), then renders.

Requests write back only tiles the renderer would make (a zoom it renders,
with features): anonymous requests for empty tiles anywhere in the world
must not fill the disk.  The root folder must belong to the user running
the server and be closed to others; otherwise tiles are built on request
and the renderer says why (a folder in ``/tmp`` made by someone else could
point elsewhere).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from gisapp import geo
from gisapp.folders import private_folder
from gisapp.progress import SILENT, Progress, StatusFile, read_json
from gisapp.schema import STORE_CRS, WEB_CRS
from gisapp.store import Store
from gisapp.tiles import mvt as tiles
from gisapp.tiles import source as tile_source

COMPLETE = "complete"
LOCK = "render.lock"
HEARTBEAT = "heartbeat"
#: The running (or last) render's progress, per layer and zoom (JSON; see :class:`RenderProgress`).
PROGRESS = "progress.json"
#: Seconds between a renderer's signs of life while it works, and after which a silent one counts as gone.
HEARTBEAT_S, HEARTBEAT_STALE_S = 10.0, 60.0
#: Longest pause between two tries after a failure, seconds.
MAX_RETRY_S = 300.0


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def store_id(url: str) -> str:
    """The folder name of a store: a hash of its absolute path or its URL (without password)."""
    return _digest(url if "://" in str(url) else os.path.abspath(url))


def shared_tiles(config: dict, store: Store) -> TileDir | None:
    """The store's tile folder from the app's settings (``None`` when off or unsafe to use)."""
    root = config.get("TILE_DIR")
    if not root:
        return None
    try:
        return TileDir(root, store.url)
    except OSError:
        return None


class TileDir:
    """The tiles of one store on disk, by data version (see the module's description)."""

    def __init__(self, root: str | os.PathLike, store_url: str):
        self.root = private_folder(root) / store_id(store_url)

    def version_dir(self, version: str) -> Path:
        return self.root / _digest(version)

    def _path(self, version: str, layer: str, z: int, x: int, y: int, suffix: str = ".mvt") -> Path:
        return self.version_dir(version) / layer / str(z) / str(x) / f"{y}{suffix}"

    def get(self, version: str, layer: str, z: int, x: int, y: int) -> bytes | None:
        """The stored tile (``b""`` when empty), or ``None`` when it is not on disk."""
        try:
            body = self._path(version, layer, z, x, y).read_bytes()
            if body:
                return body
        except OSError:
            pass
        return b"" if self._path(version, layer, z, x, y, ".empty").exists() else None

    def put(self, version: str, layer: str, z: int, x: int, y: int, body: bytes) -> bool:
        """Keep ``body`` as the tile; whether it worked (a full disk or a removed folder only loses the copy)."""
        path = self._path(version, layer, z, x, y, ".mvt" if body else ".empty")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{y}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(body)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._path(version, layer, z, x, y, ".empty" if body else ".mvt").unlink(missing_ok=True)
        except OSError:
            return False
        return True

    def status(self, version: str) -> dict | None:
        """What the renderer wrote when it finished ``version`` (zooms, tiles, seconds), or ``None``."""
        try:
            return json.loads((self.version_dir(version) / COMPLETE).read_text())
        except (OSError, ValueError):
            return None

    def ready(self, version: str | None, zooms) -> bool:
        """Whether the tiles of ``version`` at every one of ``zooms`` are rendered."""
        if not version:
            return False
        return set(zooms) <= set((self.status(version) or {}).get("zooms", ()))

    def mark_complete(self, version: str, report: dict) -> dict:
        """Record ``report`` for ``version``, its zooms joined to those done before; the record."""
        done = self.status(version) or {}
        report = {**report, "zooms": sorted(set(report["zooms"]) | set(done.get("zooms", ())))}
        self.version_dir(version).mkdir(parents=True, exist_ok=True)
        tmp = self.version_dir(version) / f".{COMPLETE}.tmp"
        tmp.write_text(json.dumps(report))
        os.replace(tmp, self.version_dir(version) / COMPLETE)
        return report

    def prune(self, keep: str) -> int:
        """Remove the folders of every version but ``keep``; how many."""
        keep_dir, removed = self.version_dir(keep), 0
        for child in self.root.iterdir() if self.root.is_dir() else ():
            if child != keep_dir and child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
        return removed

    def progress(self) -> dict | None:
        """The running (or last) render's progress as :class:`RenderProgress` wrote it, or ``None``."""
        return read_json(self.root / PROGRESS)

    def beat(self) -> None:
        """Say that a renderer is alive (see :meth:`renderer_alive`)."""
        self.root.mkdir(exist_ok=True)
        (self.root / HEARTBEAT).touch()

    def renderer_alive(self, within: float = HEARTBEAT_STALE_S) -> bool:
        """Whether a renderer said so in the last ``within`` seconds."""
        try:
            return time.time() - (self.root / HEARTBEAT).stat().st_mtime < within
        except OSError:
            return False

    @contextmanager
    def lock(self, *, wait: bool = False):
        """Hold the store's render lock; without ``wait``, yields ``False`` at once when another process holds it."""
        self.root.mkdir(exist_ok=True)
        with open(self.root / LOCK, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def tile_range(extent, z: int) -> tuple[int, int, int, int]:
    """The tiles ``(x0, y0, x1, y1)`` (inclusive) at zoom ``z`` that meet ``extent`` (EPSG:5899 box)."""
    box = geo.transform([geo.bbox_polygon(extent, STORE_CRS, STORE_CRS)], STORE_CRS, WEB_CRS)[0].bounds
    (x0, y0), (x1, y1) = tiles.tile_at(box[0], box[3], z), tiles.tile_at(box[2], box[1], z)
    return x0, y0, x1, y1


class VersionChanged(Exception):
    """The store was written to while its tiles were being rendered."""


class RenderProgress:
    """The renderer's counts, per layer and zoom, in ``<store id>/progress.json`` for every process to read.

    ``{"state": "rendering"|"done", "version", "layer", "zoom", "layers":
    {layer: {zoom: {"done", "planned"}}}, "tiles_done", "seconds_left"
    (of the current zoom, at its rate so far), "started", "updated"}``,
    written atomically, at most every :data:`gisapp.progress.WRITE_INTERVAL_S`
    seconds.  A zoom's planned count is known when it starts (the children
    of the tiles with features one zoom up).  Each report also goes to
    ``progress`` (the command line's bar) as ``("render <layer> z<zoom>",
    done, planned, "tiles")``.
    """

    def __init__(self, tile_dir: TileDir, version: str, progress: Progress = SILENT):
        self.layers: dict[str, dict[str, dict[str, int]]] = {}
        self.progress, self.tiles_done = progress, 0
        tile_dir.root.mkdir(exist_ok=True)
        self.file = StatusFile(tile_dir.root / PROGRESS, extra={"state": "rendering", "version": _digest(version)})

    def zoom(self, layer: str, z: int, planned: int) -> None:
        """A zoom of ``layer`` begins, with ``planned`` tiles."""
        self.layer, self.z = layer, z
        self.layers.setdefault(layer, {})[str(z)] = {"done": 0, "planned": planned}
        self.file.extra.update(layer=layer, zoom=z, layers=self.layers)
        self.tile(0)

    def tile(self, n: int = 1) -> None:
        """``n`` more tiles of the current zoom are done."""
        counts = self.layers[self.layer][str(self.z)]
        counts["done"] += n
        self.tiles_done += n
        self.file.extra["tiles_done"] = self.tiles_done
        stage = f"render {self.layer} z{self.z}"
        self.file(stage, counts["done"], counts["planned"], "tiles")
        self.progress(stage, counts["done"], counts["planned"], "tiles")

    def finish(self, state: str = "done") -> None:
        """Write the last state (``done``, or ``stopped`` when the render did not end)."""
        self.file.write(state=state)


def tiles_health(config: dict, store: Store) -> dict | None:
    """The ``tiles`` part of ``/healthz`` (and of the admin page); ``None`` when there is no tile folder or zoom.

    ``zooms``, ``ready``, ``renderer`` and ``problem`` as ``/healthz``
    describes them, and ``progress`` (:func:`render_progress`) when a
    render has run.
    """
    root, zooms = config.get("TILE_DIR"), list(config.get("TILE_WARM") or ())
    if not (root and zooms):
        return None
    try:
        shared = TileDir(root, store.url)
        body: dict = {"zooms": zooms, "ready": shared.ready(store.version(), zooms),
                      "renderer": shared.renderer_alive()}
    except OSError as err:
        return {"zooms": zooms, "ready": False, "renderer": False, "problem": str(err)}
    progress = shared.progress()
    if progress is not None:
        body["progress"] = render_progress(progress)
    return body


def render_progress(data: dict) -> dict:
    """What ``/healthz`` and the admin page show of a ``progress.json`` (its known fields only)."""
    keys = ("state", "layer", "zoom", "layers", "tiles_done", "seconds_left", "started", "updated")
    return {k: data.get(k) for k in keys}


def render(store: Store, tile_dir: TileDir, zooms, *, layers=None, log=None, progress: Progress = SILENT) -> dict:
    """Render the unfiltered tiles of ``layers`` at ``zooms`` for the store's current version.

    Other versions' folders are removed first.  Then zoom by zoom, so that
    the costliest (lowest) are ready first: at the first zoom every tile
    that meets the layer's extent, at the next only the children of tiles
    that were not empty.  Tiles already on disk are kept (a request, or a
    run cut short, made them).  Raises :class:`VersionChanged` when a write
    happens meanwhile (checked between tiles): the caller starts again on
    the new version; ``OSError`` when a tile cannot be written (a full
    disk).  Returns the record written to ``complete``.  Its counts go to
    ``progress.json`` and to ``progress`` (:class:`RenderProgress`).
    """
    started = time.monotonic()
    version = store.version()
    if not version:
        return {"zooms": [], "tiles": 0, "built": 0, "seconds": 0.0}
    tile_dir.prune(version)
    layers = list(layers or tiles.TILE_FIELDS)
    extents = {i.name: i.extent for i in store.info() if i.name in layers and i.extent is not None}
    zooms = sorted(zooms)
    counter = RenderProgress(tile_dir, version, progress)
    try:
        count, built = _render_layers(store, tile_dir, version, extents, zooms, counter, log)
    except BaseException:
        counter.finish("stopped")
        raise
    counter.finish()
    report = {"zooms": zooms, "tiles": count, "built": built, "seconds": round(time.monotonic() - started, 1)}
    return tile_dir.mark_complete(version, report)


def _render_layers(store: Store, tile_dir: TileDir, version: str, extents: dict, zooms: list[int],
                   counter: RenderProgress, log) -> tuple[int, int]:
    """The body of :func:`render`: the tiles seen and the tiles built."""
    count = built = 0
    beat = time.monotonic()
    for layer, extent in extents.items():
        parents = None
        for z in zooms:
            if parents is None:
                x0, y0, x1, y1 = tile_range(extent, z)
                todo = [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
            else:
                step = 1 << (z - parents[0])
                todo = [(px * step + dx, py * step + dy) for px, py in parents[1]
                        for dx in range(step) for dy in range(step)]
            full = []
            counter.zoom(layer, z, len(todo))
            for x, y in todo:
                body = tile_dir.get(version, layer, z, x, y)
                if body is None:
                    if store.version() != version:
                        raise VersionChanged(version)
                    body = tile_source.tile(store, layer, z, x, y)
                    if not tile_dir.put(version, layer, z, x, y, body):
                        raise OSError(f"cannot write tiles into {tile_dir.version_dir(version)}")
                    built += 1
                count += 1
                counter.tile()
                if body:
                    full.append((x, y))
                if time.monotonic() - beat > HEARTBEAT_S:
                    tile_dir.beat()
                    beat = time.monotonic()
            parents = (z, full)
            if log:
                log(f"{layer} z{z}: {len(todo)} tiles, {len(full)} with features")
    return count, built


def watch(open_store: Callable[[], Store], tile_dir: TileDir, zooms, *, interval: float = 5.0, once: bool = False,
          log=None, progress: Progress = SILENT) -> None:
    """Render the tiles of each new version of the store, checking for one every ``interval`` seconds.

    ``open_store()`` gives the store (opened again for each version, as a
    request would).  Only one process renders a store's tiles at a time
    (:meth:`TileDir.lock`); the others look again later.  With ``once`` it
    waits for the lock, renders the current version and returns.  A failure
    (the store down, a full disk) is logged once and tried again, less and
    less often (up to every :data:`MAX_RETRY_S` seconds).
    """
    failure, pause = None, interval
    while True:
        try:
            tile_dir.beat()
            if _render_current(open_store(), tile_dir, zooms, log, wait=once, progress=progress):
                continue
            failure, pause = None, interval
        except Exception as err:
            if once:
                raise
            message = f"{type(err).__name__}: {err}"
            if log and message != failure:
                log(f"tiles not rendered, trying again: {message}")
            failure, pause = message, min(pause * 2, MAX_RETRY_S)
        if once:
            return
        time.sleep(pause)


def _render_current(store: Store, tile_dir: TileDir, zooms, log, *, wait: bool = False,
                    progress: Progress = SILENT) -> bool:
    """Render the store's current version unless done or being done elsewhere; whether it changed meanwhile."""
    version = store.version()
    if not version or tile_dir.ready(version, zooms):
        return False
    with tile_dir.lock(wait=wait) as mine:
        if not mine or tile_dir.ready(version, zooms):  # busy elsewhere, or done by the process that was
            return False
        try:
            report = render(store, tile_dir, zooms, log=log, progress=progress)
        except VersionChanged:
            return True
    if log:
        log(f"tiles of version {version} ready: {report}")
    return False
