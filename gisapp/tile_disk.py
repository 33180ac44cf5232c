"""Vector tiles kept on disk for every server process, and the job that renders them after each write.

A z14 tile of a dense city holds 10,000–25,000 parcels and takes 150–250 ms
of one core to build (the GeoPackage encoder; ``ST_AsMVT`` takes longer);
several staff panning at once would queue behind it.  So the tiles of the
whole layer, unfiltered, are rendered once per version of the data into a
folder shared by all the server's worker processes (``GISAPP_TILE_DIR``),
by a background process at low priority (:func:`watch`), started by
``gisapp serve``.  A request then reads a file.  Filtered tiles are built
on request and kept in each process's memory (:class:`gisapp.tiles.TileCache`);
an unfiltered tile not rendered yet (the job still running, or a zoom it
does not render) is built on request and written here for the others.

Layout: ``<root>/<store id>/<version id>/<layer>/<z>/<x>/<y>.mvt``, where the
store id is a hash of the store's address and the version id a hash of
:meth:`gisapp.store.base.Store.version`; an empty tile is an empty file.
``<version id>/complete`` says the job finished (JSON: zooms, tiles, seconds).
Files are written under a temporary name and renamed, so a reader never
sees half a tile.  A write to the store makes a new version; the job then
removes the folders of the versions before it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from gisapp import geo, tiles
from gisapp.schema import STORE_CRS, WEB_CRS

COMPLETE = "complete"
LOCK = "render.lock"


def parse_zooms(text: str) -> tuple[int, ...]:
    """Zoom levels to pre-render: ``"14-17"``, ``"14,15"`` or ``"none"`` (each at least :data:`tiles.MIN_ZOOM`)."""
    text = (text or "").strip().lower()
    if text in ("", "none", "0"):
        return ()
    zooms: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        try:
            lo, hi = int(first), int(last or first)
        except ValueError:
            raise ValueError(f"{part.strip()!r} is not a zoom level or range (e.g. 14-17)") from None
        if not tiles.MIN_ZOOM <= lo <= hi <= tiles.TILEJSON_MAX_ZOOM:
            raise ValueError(f"zoom levels {part.strip()!r} are outside {tiles.MIN_ZOOM}–{tiles.TILEJSON_MAX_ZOOM}")
        zooms.update(range(lo, hi + 1))
    return tuple(sorted(zooms))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def store_id(url: str) -> str:
    """The folder name of a store: a hash of its absolute path or its URL (without password)."""
    return _digest(url if "://" in str(url) else os.path.abspath(url))


class TileDir:
    """The tiles of one store on disk, by data version (see the module's description)."""

    def __init__(self, root: str | os.PathLike, store_url: str):
        self.root = Path(root) / store_id(store_url)

    def version_dir(self, version: str) -> Path:
        return self.root / _digest(version)

    def _path(self, version: str, layer: str, z: int, x: int, y: int) -> Path:
        return self.version_dir(version) / layer / str(z) / str(x) / f"{y}.mvt"

    def get(self, version: str, layer: str, z: int, x: int, y: int) -> bytes | None:
        """The stored tile (``b""`` when empty), or ``None`` when it is not on disk."""
        try:
            return self._path(version, layer, z, x, y).read_bytes()
        except OSError:
            return None

    def has(self, version: str, layer: str, z: int, x: int, y: int) -> bool:
        return self._path(version, layer, z, x, y).exists()

    def put(self, version: str, layer: str, z: int, x: int, y: int, body: bytes) -> None:
        """Keep ``body`` as the tile (best effort: a full disk or a removed folder only loses the copy)."""
        path = self._path(version, layer, z, x, y)
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
        except OSError:
            pass

    def status(self, version: str) -> dict | None:
        """What the finished job wrote for ``version`` (zooms, tiles, seconds), or ``None``."""
        try:
            return json.loads((self.version_dir(version) / COMPLETE).read_text())
        except (OSError, ValueError):
            return None

    def mark_complete(self, version: str, report: dict) -> None:
        self.version_dir(version).mkdir(parents=True, exist_ok=True)
        tmp = self.version_dir(version) / f".{COMPLETE}.tmp"
        tmp.write_text(json.dumps(report))
        os.replace(tmp, self.version_dir(version) / COMPLETE)

    def prune(self, keep: str) -> int:
        """Remove the folders of every version but ``keep``; how many were removed."""
        keep_dir, removed = self.version_dir(keep), 0
        for child in self.root.iterdir() if self.root.is_dir() else ():
            if child.is_dir() and child != keep_dir:
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
        return removed

    @contextmanager
    def lock(self, *, wait: bool = False):
        """Hold the store's render lock; without ``wait``, yields ``False`` at once when another process holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
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


def render(store, tile_dir: TileDir, zooms, *, layers=None, log=None) -> dict:
    """Render the unfiltered tiles of ``layers`` at ``zooms`` for the store's current version.

    Zoom by zoom, so that the costliest (lowest) are ready first: at the
    first zoom every tile that meets the layer's extent, at the next only
    the children of tiles that were not empty.  Tiles already on disk are
    kept (a request, or a run cut short, made them).  Raises
    :class:`VersionChanged` when a write happens meanwhile (checked between
    tiles); the caller starts again on the new version.  Returns the report
    written to ``complete``.
    """
    started = time.monotonic()
    version = store.version()
    if not version:
        return {"zooms": [], "tiles": 0, "seconds": 0.0}
    layers = [name for name in (layers or tiles.TILE_FIELDS)]
    extents = {i.name: i.extent for i in store.info() if i.name in layers and i.extent is not None}
    zooms = sorted(zooms)
    count = built = 0
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
            for x, y in todo:
                body = tile_dir.get(version, layer, z, x, y)
                if body is None:
                    if store.version() != version:
                        raise VersionChanged(version)
                    body = store.tile(layer, z, x, y)
                    tile_dir.put(version, layer, z, x, y, body)
                    built += 1
                count += 1
                if body:
                    full.append((x, y))
            parents = (z, full)
            if log:
                log(f"{layer} z{z}: {len(todo)} tiles, {len(full)} with features")
    report = {"zooms": zooms, "tiles": count, "built": built, "seconds": round(time.monotonic() - started, 1)}
    tile_dir.mark_complete(version, report)
    tile_dir.prune(version)
    return report


def watch(open_store, tile_dir: TileDir, zooms, *, interval: float = 5.0, once: bool = False, log=None) -> None:
    """Render the tiles of each new version of the store, checking for one every ``interval`` seconds.

    ``open_store()`` gives the store (opened again for each version, as a
    request would).  Only one process renders a store's tiles at a time
    (:meth:`TileDir.lock`); the others look again later.  With ``once`` it
    waits for the lock, renders the current version and returns.
    """
    while True:
        try:
            if _render_current(open_store(), tile_dir, zooms, log, wait=once) == "changed":
                continue
        except Exception as err:  # a store that is down or being replaced: try again later
            if once:
                raise
            if log:
                log(f"tiles not rendered, trying again in {interval:g} s: {type(err).__name__}: {err}")
        if once:
            return
        time.sleep(interval)


def _render_current(store, tile_dir: TileDir, zooms, log, *, wait: bool = False) -> str:
    """Render the store's current version unless done or being done elsewhere: ``done``, ``busy`` or ``changed``."""
    version = store.version()

    def done() -> bool:
        return not version or (tile_dir.status(version) or {}).get("zooms") == sorted(zooms)

    if done():
        return "done"
    with tile_dir.lock(wait=wait) as mine:
        if not mine:
            return "busy"
        if done():  # rendered by the process that held the lock
            return "done"
        try:
            report = render(store, tile_dir, zooms, log=log)
        except VersionChanged:
            return "changed"
    if log:
        log(f"tiles of version {version} ready: {report}")
    return "done"
