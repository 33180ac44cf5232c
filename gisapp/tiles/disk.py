"""Vector tiles kept on disk for every server process, and the job that keeps them current after each write.

A z14 tile of a dense city holds 10,000–25,000 parcels and takes 150–250 ms
of one core to build (the GeoPackage encoder; ``ST_AsMVT`` takes longer);
several staff panning at once would queue behind it.  So the tiles of the
whole layer, unfiltered, are rendered into a folder shared by all the
server's worker processes (``GISAPP_TILE_DIR``) by a background process at
low priority (:func:`watch`), started by ``gisapp serve``.  A request then
reads a file.  Filtered tiles are built on request and kept in each
process's memory (:class:`gisapp.tiles.mvt.TileCache`).

Incremental: a write re-renders only the tiles it touched.  Every write logs
each feature it changed in the store's change log, in its own transaction,
with the box of the feature's old and new geometry
(:attr:`gisapp.store.base.Change.bbox`).  The folder's tiles are those of the
data up to one entry of that log, recorded in ``state.json``; on a new
version the renderer reads the entries after it, re-renders the tiles whose
buffered bounds meet one of their boxes at every zoom it keeps
(:class:`Dirty`), and moves the record on.  A write touching more than
:data:`EAGER_TILES` tiles (an import of rows scattered over the city
touches most z14–z17 tiles with features: a minute of rendering at 1M) has
them dropped from the folder instead, and the record moved on at once: a
dropped tile is built when first asked for and kept in the folder (only
if the folder has not moved on since the request found it current, under
``tiles.lock``: a tile built from older data never lands after its drop).  A ``replace`` entry (a bulk load
logged as one row), an entry without a box, another log (a store created
again), a new zoom level or another tile format (:func:`tile_format`: the
fields, extent, buffer and encoder a folder was rendered with) re-render the
layer whole.

Layout, under ``<root>/<store id>/`` (the store id a hash of its address):

- ``tiles/<layer>/<z>/<x>/<y>.mvt`` — the tiles, valid for the data up to
  ``state.json``'s ``seq`` (JSON: ``log``, ``seq``, ``version``, ``format``, ``zooms``,
  ``tiles``, ``built``, ``seconds``): every tile, except those a change
  logged after ``seq`` touched.  An empty tile is ``<y>.empty`` (a ``.mvt``
  of no bytes, which a crash could leave, counts as missing).
- ``<version id>/<layer>/<z>/<x>/<y>.mvt`` — tiles built for one version of
  the data (the version id a hash of :meth:`gisapp.store.base.Store.version`):
  by requests for a tile the folder above does not hold current, and by the
  renderer while it works (its whole-layer renders first go here, then move
  into ``tiles/``).  Removed once the folder above is current past them.
- ``heartbeat``, touched by the running renderer; ``render.lock``;
  ``progress.json`` (:class:`RenderProgress`); ``served``, whose time
  the server's processes set as they begin and end a request
  (:class:`Served`): the renderer yields to them (:class:`Yielding`).

Never a tile that misses a write: a request reads ``tiles/`` only for a tile
no change after ``seq`` touched (it reads the log's entries after ``seq``
once per data version and process), else its version's own folder, else it
builds the tile.  The renderer writes ``tiles/`` only with tiles it built
after reading the log position it then records, and records it only when
they are all written: a renderer killed midway leaves ``seq`` where it was,
so the next run renders the same tiles again (and requests meanwhile build
them).  A write that failed logged nothing, so it marks nothing.  Two
writers: both are logged, in commit order, and the next round renders both.

Files are written under a temporary name and renamed, so a reader never
sees half a tile.  Requests write back only tiles the renderer would make
(a zoom it renders, with features), into their version's folder: anonymous
requests for empty tiles anywhere in the world must not fill the disk.  The
root folder must belong to the user running the server and be closed to
others; otherwise tiles are built on request and the renderer says why (a
folder in ``/tmp`` made by someone else could point elsewhere).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np

from gisapp import geo
from gisapp.folders import private_folder
from gisapp.progress import SILENT, Progress, StatusFile, read_json
from gisapp.schema import STORE_CRS, WEB_CRS
from gisapp.store import Store
from gisapp.tiles import mvt as tiles
from gisapp.tiles import source as tile_source

BASE = "tiles"
STATE = "state.json"
#: The version of what the encoder writes (feature ids, ring repair, ...): raise it when that changes, so that
#: folders rendered before are rendered again (see :func:`tile_format`).
ENCODER = 2
LOCK = "render.lock"
HEARTBEAT = "heartbeat"
#: The running (or last) render's progress, per layer and zoom (JSON; see :class:`RenderProgress`).
PROGRESS = "progress.json"
#: Seconds between a renderer's signs of life while it works, and after which a silent one counts as gone.
HEARTBEAT_S, HEARTBEAT_STALE_S = 10.0, 60.0
#: Longest pause between two tries after a failure, seconds.
MAX_RETRY_S = 300.0
#: Change-log entries read per query.
LOG_PAGE = 10_000
#: Beyond this many changed features of one layer since the folder's position, the layer is rendered whole.
MAX_BOXES = 50_000
#: Tiles built at once by the renderer (both cores: shapely, numpy and PostGIS work outside Python's lock; the
#: renderer runs at low priority, so requests still come first).
RENDER_THREADS = 2
#: At most this many touched tiles (all layers and zooms) are rendered again at once by the renderer (a saved
#: feature: a few tiles, ready before the next view asks).  A write touching more (a 1,000-row import scattered
#: over the city touches a thousand z14–z17 tiles, a minute of rendering) has its tiles dropped from the folder
#: instead, in milliseconds, and each is built when a request first asks for it, then kept there
#: (:func:`shared_tile`): only the tiles someone looks at are built, and the folder is current at once.
EAGER_TILES = 64
#: A request reads at most this many change-log boxes of a layer after the folder's position; beyond, every
#: tile of the layer counts as touched (built on request) until the renderer moves the position on.
REQUEST_MAX_BOXES = 5_000
#: Taken shared by a request putting a tile it built into the current folder, exclusive by the renderer while
#: it drops tiles and moves the position on (a tile built from older data never lands after its drop).
BASE_LOCK = "tiles.lock"
#: Tile units added around a changed box beyond the tile's buffer (the encoders' interpolated and affine
#: projections stay within a fraction of a unit of PROJ; this covers them with room to spare).
DIRTY_MARGIN = 4
#: The file in a store's tile folder whose time the server's processes set as they begin and end a request.
SERVED = "served"
#: The renderer counts the server as busy while it began or ended a request within this many seconds.
BUSY_S = 0.1
#: While the server is busy the renderer waits before each tile it builds up to this many times as long as its
#: last tile took: beside a server answering without pause it gets about 1/(1 + YIELD_RATIO) of a core (at 1M the
#: items pages' p95 beside a render was 157-196 ms on the GeoPackage against 104-143 with no render), and all it
#: can get once the server is quiet.  Never zero: a busy server's tiles still become current.
YIELD_RATIO = 10
#: How often a waiting renderer looks whether the server became quiet, seconds.
YIELD_STEP_S = 0.01


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def tile_format() -> str:
    """What a tile's bytes depend on besides the data (fields, extent, buffer, encoder): ``state.json`` keeps it,
    and a folder of another format is not current (rendered again whole, never served)."""
    return _digest(json.dumps([ENCODER, tiles.EXTENT, tiles.BUFFER, tiles.TILE_FIELDS], sort_keys=True))


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


# -- what a write touched -----------------------------------------------------------------------

def mercator_boxes(boxes: np.ndarray) -> np.ndarray:
    """EPSG:5899 boxes ``(n, 4)`` as EPSG:3857 boxes holding their images (corners and mid-edges transformed)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0, x1, y1 = boxes.T
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    xs = np.stack([x0, x1, x0, x1, xm, xm, x0, x1], axis=1)
    ys = np.stack([y0, y0, y1, y1, y0, y1, ym, ym], axis=1)
    mx, my = geo.transformer(STORE_CRS, tiles.MERCATOR_CRS).transform(xs.ravel(), ys.ravel())
    mx, my = np.asarray(mx).reshape(-1, 8), np.asarray(my).reshape(-1, 8)
    return np.column_stack([mx.min(axis=1), my.min(axis=1), mx.max(axis=1), my.max(axis=1)])


def _pad(z: int) -> tuple[float, float]:
    """The tile size at zoom ``z`` (EPSG:3857 metres) and the margin a tile's content reaches beyond it."""
    size = 2 * tiles.HALF_WORLD / (1 << z)
    return size, size * (tiles.BUFFER + DIRTY_MARGIN) / tiles.EXTENT


def boxes_tiles(mboxes: np.ndarray, z: int) -> set[tuple[int, int]]:
    """The tiles ``(x, y)`` at zoom ``z`` whose content EPSG:3857 boxes ``mboxes`` may reach (buffer included)."""
    if not len(mboxes):
        return set()
    size, pad = _pad(z)
    top = (1 << z) - 1
    x0 = np.clip(np.floor((mboxes[:, 0] - pad + tiles.HALF_WORLD) / size), 0, top).astype(np.int64)
    x1 = np.clip(np.floor((mboxes[:, 2] + pad + tiles.HALF_WORLD) / size), 0, top).astype(np.int64)
    y0 = np.clip(np.floor((tiles.HALF_WORLD - mboxes[:, 3] - pad) / size), 0, top).astype(np.int64)
    y1 = np.clip(np.floor((tiles.HALF_WORLD - mboxes[:, 1] + pad) / size), 0, top).astype(np.int64)
    out: set[tuple[int, int]] = set()
    for a, b, c, d in zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist()):
        out.update((x, y) for x in range(a, c + 1) for y in range(b, d + 1))
    return out


class Dirty:
    """What the change log says changed after a position: per tiled layer, everything or a set of boxes.

    ``whole``: layers to render whole (a ``replace``, an entry without a
    box, too many entries); ``boxes``: layer → EPSG:3857 boxes of the
    changed features (old and new geometry).
    """

    def __init__(self, whole: Iterable[str] = (), boxes: dict[str, np.ndarray] | None = None):
        self.whole = set(whole)
        self.boxes = {k: v for k, v in (boxes or {}).items() if len(v) and k not in self.whole}

    @classmethod
    def everything(cls) -> Dirty:
        return cls(tiles.TILE_FIELDS)

    def touched(self, layer: str, z: int, x: int, y: int) -> bool:
        """Whether a change may have altered tile ``z/x/y`` of ``layer``."""
        if layer in self.whole:
            return True
        boxes = self.boxes.get(layer)
        if boxes is None:
            return False
        size, pad = _pad(z)
        minx, maxy = -tiles.HALF_WORLD + x * size, tiles.HALF_WORLD - y * size
        return bool(np.any((boxes[:, 0] <= minx + size + pad) & (boxes[:, 2] >= minx - pad)
                           & (boxes[:, 1] <= maxy + pad) & (boxes[:, 3] >= maxy - size - pad)))

    def tiles(self, layer: str, z: int) -> set[tuple[int, int]]:
        """The tiles of ``layer`` at zoom ``z`` to render again (not for a layer in :attr:`whole`)."""
        return boxes_tiles(self.boxes.get(layer, np.empty((0, 4))), z)


def read_dirty(store: Store, after: int, upto: int | None = None, *, max_boxes: int = MAX_BOXES) -> Dirty:
    """:class:`Dirty` of the store's change-log entries after ``after`` (up to ``upto`` when given); a layer
    with more than ``max_boxes`` entries is whole (and the log is read no further once every layer is)."""
    whole: set[str] = set()
    raw: dict[str, list] = {}
    while True:
        page = store.changes(after, LOG_PAGE)
        for c in page.changes:
            if upto is not None and c.seq > upto:
                break
            if c.layer not in tiles.TILE_FIELDS or c.layer in whole or c.nowhere:  # nowhere: on no tile
                continue
            if c.bbox is None:
                whole.add(c.layer)
                raw.pop(c.layer, None)
                continue
            raw.setdefault(c.layer, []).append(c.bbox)
            if len(raw[c.layer]) > max_boxes:
                whole.add(c.layer)
                raw.pop(c.layer)
        if not page.changes or len(page.changes) < LOG_PAGE or (upto is not None and page.changes[-1].seq >= upto) \
                or whole >= set(tiles.TILE_FIELDS):
            break
        after = page.changes[-1].seq
    return Dirty(whole, {k: mercator_boxes(np.array(v)) for k, v in raw.items()})


def snapshot(store: Store, tries: int = 50) -> tuple[str | None, int, str | None]:
    """The store's change-log id, last ``seq`` and data version, read so that the version is that of the
    data up to that ``seq`` (the log's end read before and after the version agree)."""
    for _ in range(tries):
        before = store.changes(0, 0)
        version = store.version()
        after = store.changes(0, 0)
        if (before.log_id, before.last) == (after.log_id, after.last):
            return after.log_id, after.last, version
        time.sleep(0.02)
    raise RuntimeError("the store is written to without a pause; its tiles are rendered at the next pause")


#: Per process: the :class:`Dirty` of a tile folder's position as of a data version (a request reads the
#: change log once per version, not once per tile).
_DIRTY_CACHE: OrderedDict[tuple, Dirty] = OrderedDict()
_DIRTY_LOCK = threading.Lock()


class TileDir:
    """The tiles of one store on disk (see the module's description)."""

    def __init__(self, root: str | os.PathLike, store_url: str):
        self.root = private_folder(root) / store_id(store_url)

    @property
    def base(self) -> Path:
        """The folder of the tiles current up to ``state.json``'s position."""
        return self.root / BASE

    def version_dir(self, version: str) -> Path:
        return self.root / _digest(version)

    def _path(self, version: str | None, layer: str, z: int, x: int, y: int, suffix: str = ".mvt") -> Path:
        top = self.base if version is None else self.version_dir(version)
        return top / layer / str(z) / str(x) / f"{y}{suffix}"

    def get(self, version: str | None, layer: str, z: int, x: int, y: int) -> bytes | None:
        """The tile built for ``version`` (``None``: the current folder's), ``b""`` when empty; ``None`` when
        it is not on disk."""
        try:
            body = self._path(version, layer, z, x, y).read_bytes()
            if body:
                return body
        except OSError:
            pass
        return b"" if self._path(version, layer, z, x, y, ".empty").exists() else None

    def put(self, version: str | None, layer: str, z: int, x: int, y: int, body: bytes) -> bool:
        """Keep ``body`` as the tile of ``version`` (``None``: the current folder); whether it worked (a full
        disk or a removed folder only loses the copy)."""
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

    def state(self) -> dict | None:
        """What ``state.json`` says: the log position, data version and zooms the current folder is of."""
        return read_json(self.root / STATE)

    def _write_state(self, state: dict) -> None:
        tmp = self.root / f".{STATE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.root / STATE)

    def status(self, version: str | None) -> dict | None:
        """The record of the last render (zooms, tiles, seconds) when the folder is of ``version``, else ``None``."""
        state = self.state()
        return state if state and version and state.get("version") == version \
            and state.get("format") == tile_format() else None

    def ready(self, version: str | None, zooms) -> bool:
        """Whether the tiles of ``version`` at every one of ``zooms`` are rendered."""
        return set(zooms) <= set((self.status(version) or {}).get("zooms", ()))

    def current(self, store: Store, version: str, layer: str, z: int, x: int, y: int) -> bool:
        """Whether the current folder's tile ``z/x/y`` of ``layer`` holds the data of ``version`` (or later).

        It does when the folder is of that version, or when no change logged
        after the folder's position touched the tile (the entries are read
        once per version and folder position in each process, at most
        :data:`REQUEST_MAX_BOXES` per layer).
        """
        return self.current_state(store, version, layer, z, x, y) is not None

    def current_state(self, store: Store, version: str, layer: str, z: int, x: int, y: int) -> dict | None:
        """The folder's state (``state.json``) when its tile ``z/x/y`` of ``layer`` holds the data of
        ``version`` (see :meth:`current`), else ``None``."""
        state = self.state()
        if not state or z not in state.get("zooms", ()) or state.get("format") != tile_format():
            return None
        if state.get("version") == version:
            return state
        key = (str(self.root), state.get("log"), state.get("seq"), version)
        with _DIRTY_LOCK:
            dirty = _DIRTY_CACHE.get(key)
        if dirty is None:
            log_id = store.changes(0, 0).log_id
            dirty = read_dirty(store, int(state.get("seq") or 0), max_boxes=REQUEST_MAX_BOXES) \
                if log_id and log_id == state.get("log") else Dirty.everything()
            with _DIRTY_LOCK:
                _DIRTY_CACHE[key] = dirty
                while len(_DIRTY_CACHE) > 16:
                    _DIRTY_CACHE.popitem(last=False)
        return None if dirty.touched(layer, z, x, y) else state

    def put_current(self, state: dict, layer: str, z: int, x: int, y: int, body: bytes) -> bool:
        """Keep ``body``, built after the folder was found at ``state`` and its tile current (:meth:`current_state`)
        but missing, in the current folder; whether it went there (not when the renderer moved the folder on
        meanwhile: it may have dropped the tile for a write the body does not hold)."""
        with self._base_lock(exclusive=False) as mine:
            if not mine:  # the renderer is moving the folder on: the version's folder keeps it
                return False
            now = self.state() or {}
            if any(now.get(k) != state.get(k) for k in ("log", "seq", "format")) or z not in now.get("zooms", ()):
                return False
            return self.put(None, layer, z, x, y, body)

    @contextmanager
    def _base_lock(self, *, exclusive: bool):
        """The lock between requests putting tiles into the current folder and the renderer putting or dropping
        tiles there and moving its position on (:data:`BASE_LOCK`); yields whether it is held (a shared one is
        not waited for)."""
        # a request never waits: it finds the lock taken only while the renderer moves on
        with _flocked(self.root, BASE_LOCK, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH | fcntl.LOCK_NB) as held:
            yield held

    def drop(self, layer: str, todo: Iterable[tuple[int, int, int]]) -> int:
        """Remove the current folder's tiles ``(z, x, y)`` of ``layer`` (a write touched them); how many were
        there.  Call under the base lock, before the position moves on."""
        dropped = 0
        for z, x, y in todo:
            for suffix in (".mvt", ".empty"):
                try:
                    self._path(None, layer, z, x, y, suffix).unlink()
                    dropped += 1
                except FileNotFoundError:
                    pass
        return dropped

    def prune(self, keep: str | None = None) -> int:
        """Remove the folders of every version but ``keep`` (never the current folder); how many."""
        keep_dir, removed = None if keep is None else self.version_dir(keep), 0
        for child in self.root.iterdir() if self.root.is_dir() else ():
            if child not in (keep_dir, self.base) and child.is_dir():  # and what a killed promote left
                shutil.rmtree(child, ignore_errors=True)
                removed += 1
        return removed

    def promote(self, version: str, layer: str) -> None:
        """Make ``version``'s folder of ``layer`` (a whole-layer render) the current folder's."""
        src, dst = self.version_dir(version) / layer, self.base / layer
        trash = self.root / f".old-{layer}-{os.getpid()}-{time.monotonic_ns()}"
        self.base.mkdir(exist_ok=True)
        if dst.exists():
            os.replace(dst, trash)
        if src.exists():
            os.replace(src, dst)
        shutil.rmtree(trash, ignore_errors=True)

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

    def served(self) -> Served:
        """When the server's processes last began or ended a request (:class:`Served`)."""
        return Served(self.root)

    @contextmanager
    def lock(self, *, wait: bool = False):
        """Hold the store's render lock; without ``wait``, yields ``False`` at once when another process holds it."""
        with _flocked(self.root, LOCK, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)) as held:
            yield held


@contextmanager
def _flocked(root: Path, name: str, flags: int):
    """Hold ``flock(flags)`` on the file ``name`` in ``root`` (made if missing); yields ``False`` at once when
    ``flags`` has ``LOCK_NB`` and another process holds it."""
    root.mkdir(exist_ok=True)
    with open(root / name, "a") as f:
        try:
            fcntl.flock(f, flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Served:
    """When the server's processes last began or ended a request, for the renderer beside them: the time of
    ``<store id>/served`` (:data:`SERVED`), set by each request at its start and end (one system call, no
    data written) and read by the renderer between tiles."""

    def __init__(self, root: Path):
        self.path = root / SERVED

    def note(self) -> None:
        """A request begins or ends now (nothing when the folder is gone: its renderer makes it again)."""
        try:
            os.utime(self.path)
        except FileNotFoundError:
            with suppress(FileNotFoundError):
                self.path.touch()

    def busy(self, within: float = BUSY_S) -> bool:
        """Whether a request began or ended in the last ``within`` seconds."""
        try:
            return time.time() - self.path.stat().st_mtime < within
        except OSError:
            return False


class Yielding:
    """The renderer's pace beside a busy server (:class:`Served`): before each tile it builds, a render thread
    waits while the server is busy, at most :data:`YIELD_RATIO` times as long as the last tile took.  One
    thread waits at a time, so the renderer's tiles, not just each thread's, are spaced so; when the server
    is quiet nothing waits.  ``waited``: the seconds spent waiting."""

    def __init__(self, served: Served, ratio: float = YIELD_RATIO):
        self.served, self.ratio = served, ratio
        self.last, self.waited = 0.0, 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Wait before building a tile while the server is busy (see the class)."""
        with self._lock:
            deadline = time.monotonic() + self.ratio * self.last
            while (now := time.monotonic()) < deadline and self.served.busy():
                time.sleep(step := min(YIELD_STEP_S, deadline - now))
                self.waited += step

    def built(self, seconds: float) -> None:
        """A tile took ``seconds`` to build."""
        self.last = seconds


def shared_tile(tile_dir: TileDir, store: Store, version: str, layer: str, z: int, x: int, y: int,
                build: Callable[[], bytes], *, keep: bool) -> bytes:
    """An unfiltered tile for a request at data ``version``: from disk when a file there holds that data, else
    ``build()``, kept when ``keep`` and not empty: in the current folder when the tile is current there but
    missing (the renderer dropped it, :data:`EAGER_TILES`), else in the version's folder."""
    body = tile_dir.get(version, layer, z, x, y)
    if body is not None:
        return body
    state = tile_dir.current_state(store, version, layer, z, x, y)
    if state is not None:
        body = tile_dir.get(None, layer, z, x, y)
        if body is not None:
            return body
    body = build()  # data of the folder's position or later: a dropped tile goes back into the current folder
    if keep and body and not (state is not None and tile_dir.put_current(state, layer, z, x, y, body)):
        tile_dir.put(version, layer, z, x, y, body)
    return body


def tile_range(extent, z: int) -> tuple[int, int, int, int]:
    """The tiles ``(x0, y0, x1, y1)`` (inclusive) at zoom ``z`` that meet ``extent`` (EPSG:5899 box)."""
    box = geo.transform([geo.bbox_polygon(extent, STORE_CRS, STORE_CRS)], STORE_CRS, WEB_CRS)[0].bounds
    (x0, y0), (x1, y1) = tiles.tile_at(box[0], box[3], z), tiles.tile_at(box[2], box[1], z)
    return x0, y0, x1, y1


class RenderProgress:
    """The renderer's counts, per layer and zoom, in ``<store id>/progress.json`` for every process to read.

    ``{"state": "rendering"|"done", "version", "layer", "zoom", "layers":
    {layer: {zoom: {"done", "planned"}}}, "tiles_done", "seconds_left"
    (of the current zoom, at its rate so far), "started", "updated"}``,
    written atomically, at most every :data:`gisapp.progress.WRITE_INTERVAL_S`
    seconds.  A zoom's planned count is known when it starts (the children
    of the tiles with features one zoom up; for an incremental render, the
    tiles the changes touched).  Each report also goes to ``progress`` (the
    command line's bar) as ``("render <layer> z<zoom>", done, planned, "tiles")``.
    """

    def __init__(self, tile_dir: TileDir, version: str, progress: Progress = SILENT):
        self.layers: dict[str, dict[str, dict[str, int]]] = {}
        self.progress, self.tiles_done = progress, 0
        self.tile_dir, self.beaten = tile_dir, time.monotonic()
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
        if time.monotonic() - self.beaten > HEARTBEAT_S:  # a long render is a live renderer
            self.tile_dir.beat()
            self.beaten = time.monotonic()

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


def render(store: Store, tile_dir: TileDir, zooms, *, layers=None, log=None, progress: Progress = SILENT,
           full: bool = False) -> dict:
    """Bring the tiles of ``layers`` at ``zooms`` (and at the zooms the folder already keeps) up to the store's data.

    Reads the log position and data version (:func:`snapshot`), then per
    layer: the tiles the changes logged since the folder's position touched
    (:func:`read_dirty`), or, when the layer is to be rendered whole
    (``full``, a first render, a ``replace`` …), zoom by zoom so that the
    costliest (lowest) are ready first: at the first zoom every tile that
    meets the layer's extent, at the next only the children of tiles that
    were not empty — into the version's folder, moved into the current one
    when the layer is done.  Then records the position (``state.json``) and
    removes other versions' folders.  A write meanwhile is not waited for:
    the tiles show it or not, the position is the one read first, and the
    next call renders what it touched.  ``OSError`` when a tile cannot be
    written (a full disk).  Returns the record written.  Counts go to
    ``progress.json`` and to ``progress`` (:class:`RenderProgress`).
    """
    started = time.monotonic()
    log_id, seq, version = snapshot(store)
    if not version:
        return {"zooms": [], "tiles": 0, "built": 0, "seconds": 0.0}
    state = tile_dir.state() or {}
    kept = set(state.get("zooms", ())) if state.get("log") == log_id and log_id \
        and state.get("format") == tile_format() else set()
    zooms = sorted(set(zooms) | kept)
    layers = list(layers or tiles.TILE_FIELDS)
    if full or not kept or set(zooms) - kept or seq < int(state.get("seq") or 0):
        dirty = Dirty.everything()
    else:
        dirty = read_dirty(store, int(state.get("seq") or 0), upto=seq)
    extents = {i.name: i.extent for i in store.info() if i.name in layers}
    counter = RenderProgress(tile_dir, version, progress)
    pace = Yielding(tile_dir.served())
    count = built = 0
    touched = {layer: [(z, x, y) for z in zooms for x, y in sorted(dirty.tiles(layer, z))]
               for layer in layers if layer not in dirty.whole}
    lazy = sum(len(t) for t in touched.values()) > EAGER_TILES
    done: list[tuple] = []
    try:
        for layer in layers:
            if layer in dirty.whole:
                n, b = _render_whole(store, tile_dir, version, layer, extents.get(layer), zooms, counter, log,
                                     pace)
            elif not lazy:
                n, b = _render_dirty(store, tile_dir, version, layer, touched[layer], zooms, counter, log, done,
                                     pace)
            else:
                n, b = 0, 0
            count, built = count + n, built + b
    except BaseException:
        counter.finish("stopped")
        raise
    counter.finish()
    report = {"log": log_id, "seq": seq, "version": version, "format": tile_format(), "zooms": zooms,
              "tiles": count, "built": built, "dropped": sum(len(t) for t in touched.values()) if lazy else 0,
              "incremental": not dirty.whole, "seconds": 0.0, "yielded": round(pace.waited, 2)}
    with tile_dir._base_lock(exclusive=True):  # no request puts a tile of older data over these meanwhile
        for layer in layers:  # meanwhile requests found them in the version's folder
            if layer in dirty.whole:
                tile_dir.promote(version, layer)
        for layer, z, x, y, body in done:
            if not tile_dir.put(None, layer, z, x, y, body):
                raise OSError(f"cannot write tiles into {tile_dir.base}")
        if lazy:
            for layer, todo in touched.items():
                tile_dir.drop(layer, todo)
        report["seconds"] = round(time.monotonic() - started, 2)
        tile_dir._write_state(report)
    if lazy and log:
        log(f"{report['dropped']} changed tiles dropped, built when asked for")
    tile_dir.prune(keep=version)
    return report


def _build(store: Store, tile_dir: TileDir, version: str, layer: str, z: int, x: int, y: int,
           pace: Yielding) -> tuple[bytes, bool]:
    """Tile ``z/x/y`` of ``layer`` for ``version``'s folder: the one there (a request built it) or a new one,
    built at ``pace``; whether it was built.  ``OSError`` when it cannot be written."""
    body = tile_dir.get(version, layer, z, x, y)
    if body is not None:
        return body, False
    pace.wait()
    started = time.monotonic()
    body = tile_source.tile(store, layer, z, x, y)
    pace.built(time.monotonic() - started)
    if not tile_dir.put(version, layer, z, x, y, body):
        raise OSError(f"cannot write tiles into {tile_dir.version_dir(version)}")
    return body, True


def _build_all(store: Store, tile_dir: TileDir, version: str, layer: str, todo: list[tuple[int, int, int]],
               pace: Yielding):
    """:func:`_build` of each tile ``(z, x, y)`` of ``todo``, :data:`RENDER_THREADS` at a time, in order:
    ``((z, x, y), body, built)``."""
    if len(todo) < 2:
        for z, x, y in todo:
            yield (z, x, y), *_build(store, tile_dir, version, layer, z, x, y, pace)
        return
    pool = _pool()
    ahead: deque = deque()
    try:
        for t in todo:
            ahead.append((t, pool.submit(_build, store, tile_dir, version, layer, *t, pace)))
            if len(ahead) > 2 * RENDER_THREADS:  # a few ahead only: a stopped render stops soon
                t0, future = ahead.popleft()
                yield t0, *future.result()
        while ahead:
            t0, future = ahead.popleft()
            yield t0, *future.result()
    finally:
        for _, future in ahead:
            future.cancel()
        for _, future in ahead:
            if not future.cancelled():
                future.exception()  # wait for the one running: nothing writes after the render ended


_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The renderer's threads, kept for the process: each keeps its store connections (a GeoPackage reader's
    page cache) warm from one render to the next."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="gisapp-render"))
        return _POOL[0]


def _render_dirty(store: Store, tile_dir: TileDir, version: str, layer: str, todo: list[tuple[int, int, int]],
                  zooms: list[int], counter: RenderProgress, log, done: list[tuple], pace: Yielding) -> tuple[int, int]:
    """Render the tiles ``todo`` ``(z, x, y)`` of ``layer`` the changes touched into the version's folder, and
    add them to ``done`` as ``(layer, z, x, y, body)`` for the current one (all zooms at once: a save touches a
    tile or a few at each)."""
    count = built = 0
    per_zoom = {z: [(x, y) for zz, x, y in todo if zz == z] for z in zooms}
    current = None
    for (z, x, y), body, new in _build_all(store, tile_dir, version, layer, todo, pace):
        if z != current:
            if current is not None and log:
                log(f"{layer} z{current}: {len(per_zoom[current])} tiles changed")
            counter.zoom(layer, z, len(per_zoom[z]))
            current = z
        done.append((layer, z, x, y, body))
        count, built = count + 1, built + new
        counter.tile()
    if current is not None and log:
        log(f"{layer} z{current}: {len(per_zoom[current])} tiles changed")
    return count, built


def _render_whole(store: Store, tile_dir: TileDir, version: str, layer: str, extent, zooms: list[int],
                  counter: RenderProgress, log, pace: Yielding) -> tuple[int, int]:
    """Render every tile of ``layer`` into the version's folder: the tiles seen and the tiles built."""
    count = built = 0
    if extent is None:
        return 0, 0
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
        for (_, x, y), body, new in _build_all(store, tile_dir, version, layer, [(z, x, y) for x, y in todo], pace):
            count, built = count + 1, built + new
            counter.tile()
            if body:
                full.append((x, y))
        parents = (z, full)
        if log:
            log(f"{layer} z{z}: {len(todo)} tiles, {len(full)} with features")
    return count, built


def watch(open_store: Callable[[], Store], tile_dir: TileDir, zooms, *, interval: float = 1.0, once: bool = False,
          log=None, progress: Progress = SILENT) -> None:
    """Keep the tiles current with the store, looking for a new version every ``interval`` seconds.

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
            if _render_current(open_store(), tile_dir, zooms, log, wait=once, progress=progress) and not once:
                continue
            failure, pause = None, interval
        except Exception as err:
            if once:
                raise
            message = f"{type(err).__name__}: {err}"
            if log and message != failure:
                log(f"tiles not rendered, trying again: {message}")
            failure, pause = message, min(max(pause, 1.0) * 2, MAX_RETRY_S)
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
        report = render(store, tile_dir, zooms, log=log, progress=progress)
    if log:
        kind = "changed tiles" if report["incremental"] else "tiles"
        log(f"{kind} of version {report['version']} ready: {report['tiles']} tiles, {report['seconds']} s "
            f"({report['yielded']} s of it yielding to requests)")
    return store.version() != report["version"]
