"""The GeoPackage store: one ``.gpkg`` file, the embedded default.

Reads go through SQLite with bound parameters and the R-tree spatial index.
A write is atomic: small upserts and replaces of existing layers are one
SQLite transaction in the file itself (a replace's layers written by GDAL
into a private file first, then moved in); anything else (a new store, an
older file brought up to date, large upserts) goes to a copy of the file
that replaces the original only once every layer is written (``os.replace``
is atomic).  Either way a failed or killed write leaves the store as it was
and readers see the old data until then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import fcntl
import json
import logging
import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio
import pyogrio.errors
import shapely

from gisapp import geo, schema
from gisapp import history as hist
from gisapp.filters import Filter
from gisapp.formats import derive
from gisapp.formats.wkb import gpkg_envelope, gpkg_to_wkb, to_gpkg
from gisapp.inspections import Inspection
from gisapp.photos import Photo
from gisapp.progress import SILENT, Progress
from gisapp.schema import LAYERS, STORE_CRS, Layer
from gisapp.store.base import (
    GEOJSON_COLUMN,
    HISTORY_SCHEMA,
    INSPECTION_COLUMNS,
    PERSONAL_SEARCH_COLUMN,
    PROPERTIES_COLUMN,
    SEARCH_COLUMN,
    TEXTS_SCHEMA,
    ChangePage,
    LayerInfo,
    Page,
    Store,
    StoreError,
    aggregate_columns,
    aggregate_frame,
    attribute_clauses,
    boxed,
    change_of,
    change_rows,
    change_time,
    check_delete,
    columns_schema,
    count_frame,
    delete_rows,
    derived_columns,
    dossier_counts_sql,
    empty_frame,
    field_names,
    frame_boxes,
    geometry_column,
    inspection_of,
    inspection_row,
    inspection_where,
    merge_upsert,
    page_columns,
    page_rows,
    replace_is_compact,
    search_column,
    store_layer,
    stored_properties,
    texts_columns,
    texts_rows,
    typed_table,
    works_start_expression,
)

GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
META_TABLE = "gisapp_meta"
#: The change log (:meth:`GeoPackageStore.changes`) and its id: plain SQLite tables, not GeoPackage layers.
CHANGES_TABLE = "gisapp_changes"
CHANGE_LOG_TABLE = "gisapp_change_log"
_ARROW_TYPES = {"text": pa.string(), "int": pa.int32(), "float": pa.float64(), "date": pa.date32()}
#: Filter fields that get a B-tree index.
LOG = logging.getLogger(__name__)
_INDEXED = ("ward_code", "status", "procedure", "channel", "purpose", "kind",
            "received_on", "start_on", "end_on", "overlap_start", "a_id", "b_id")


#: What reads learn about a version of a file, shared by the store objects of all requests:
#: (path, file signature) → {"checked": True, ("tables",): {...}, ("columns", layer): {...},
#: ("fids", layer, filter): [...]}.
#: A write replaces the file, which changes its signature, so nothing stale is ever used.
_FILE_CACHE: dict = {}
_FILE_CACHE_LOCK = threading.Lock()
_FIDS_PER_FILE = 32
#: Seconds a bbox search waits for the key order its file version's first search started reading
#: (:meth:`GeoPackageStore._key_ranks`): a small layer's is read by then, a large one's is used when read.
RANKS_WAIT = 0.05


class _Stale(Exception):
    """The file is no longer the version a kept value was to be read for."""


def _file_cache(path: Path, signature: tuple) -> dict | None:
    """The cache entry of this version of the file (``None`` when the file cannot be stat'ed)."""
    if not signature:
        return None
    key = (str(path), signature)
    entry = _FILE_CACHE.get(key)
    if entry is None:
        with _FILE_CACHE_LOCK:
            for old in [k for k in _FILE_CACHE if k[0] == key[0]]:
                del _FILE_CACHE[old]
            if len(_FILE_CACHE) > 64:
                _FILE_CACHE.clear()
            entry = _FILE_CACHE.setdefault(key, {})
    return entry


def _open_reader(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)


class _Readers:
    """The process's idle read-only connections, per file, each tagged with the file version it reads.

    A kept connection keeps its parsed schema and page cache (a new one per
    request re-reads them: ~25 % of a street-view page).  No memory map,
    though it would save another ~10 %: a file overwritten in place (``cp
    backup.gpkg`` over the store) would kill the process with SIGBUS
    instead of failing one request.

    A write replaces the file (``os.replace``): a connection to the old file
    keeps its inode, and so its disk space, alive.  So the connections are
    the process's, not each thread's: the first read that sees a new
    version of the file (any thread) closes every idle connection to an
    older one, a connection in use is closed when it is handed back, and a
    write by this process closes the idle ones at once (:meth:`release`).
    An idle thread never holds a replaced file.
    """

    #: Most idle connections kept per file.
    PER_FILE = 8

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._idle: dict[str, list[tuple[tuple, sqlite3.Connection]]] = {}
        self._current: dict[str, tuple] = {}

    def _forked(self) -> None:
        if self._pid != os.getpid():  # a forked worker starts afresh (the parent's connections are the parent's)
            self._pid, self._idle, self._current = os.getpid(), {}, {}

    def take(self, path: Path, signature: tuple) -> sqlite3.Connection:
        """A connection to this version of the file: an idle one, else a new one."""
        key = str(path)
        stale: list[tuple[tuple, sqlite3.Connection]] = []
        keep: list[tuple[tuple, sqlite3.Connection]] = []
        con: sqlite3.Connection | None = None
        with self._lock:
            self._forked()
            self._current[key] = signature
            for entry in self._idle.get(key, []):
                (keep if entry[0] == signature else stale).append(entry)
            if keep:
                con = keep.pop()[1]
            self._idle[key] = keep
        for _, old in stale:
            old.close()
        return con if con is not None else _open_reader(path)

    def give_back(self, path: Path, signature: tuple, con: sqlite3.Connection) -> None:
        """Keep ``con`` for the next read, unless the file changed meanwhile (or enough are kept)."""
        key = str(path)
        with self._lock:
            self._forked()
            idle = self._idle.setdefault(key, [])
            if self._current.get(key) == signature and len(idle) < self.PER_FILE:
                idle.append((signature, con))
                return
        con.close()

    def release(self, path: Path) -> None:
        """Close the idle connections to ``path`` (this process just replaced the file)."""
        with self._lock:
            self._forked()
            idle = self._idle.pop(str(path), [])
            self._current.pop(str(path), None)
        for _, con in idle:
            con.close()

    def open_count(self, path: Path) -> int:
        """Idle connections kept to ``path`` (for the tests)."""
        with self._lock:
            return len(self._idle.get(str(path), []))


_READERS = _Readers()
os.register_at_fork(after_in_child=lambda: setattr(_READERS, "_lock", threading.Lock()))  # a lock held at fork


class GeoPackageStore(Store):
    """A store in one GeoPackage file at ``path``."""

    path: Path

    def __init__(self, path: str | os.PathLike, *, must_exist: bool = True) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        self._holder: int | None = None  # the thread holding the writers' lock through this object (write_lock)
        self._prefetched: dict[str, tuple[tuple, Future]] = {}  # layer → (file signature, its stored rows)
        if must_exist:
            self._check()

    def exists(self) -> bool:
        """Whether the file exists (a first write creates it)."""
        return self.path.exists()

    # -- reading -----------------------------------------------------------

    def _check(self, *, upgrade: bool = True) -> None:
        """Fail unless the file is a GeoPackage; fill hidden columns it lacks (unless not ``upgrade``)."""
        cache = _file_cache(self.path, self._signature())
        if cache is not None and cache.get("checked"):
            return
        if not self.path.exists():
            raise StoreError(f"store {self.path} does not exist; run 'gisapp seed' or import data first")
        try:
            with self._connect() as con:
                app_id = con.execute("PRAGMA application_id").fetchone()[0]
                tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as err:
            raise StoreError(f"store {self.path} is not a GeoPackage ({err})") from None
        if app_id != GPKG_APPLICATION_ID or "gpkg_contents" not in tables:
            raise StoreError(f"store {self.path} is not a GeoPackage")
        stale = self._stale_layers()
        if hist.TABLE not in tables and upgrade:  # a file from before the status history: add its table
            self._fill_hidden_columns(stale or ["(status history)"])
            return self._check(upgrade=False)
        if stale and upgrade:
            self._fill_hidden_columns(stale)
            return self._check(upgrade=False)
        if cache is not None and not stale:
            cache["checked"] = True

    def _fill_hidden_columns(self, stale: list[str]) -> None:
        """Write again the layers of a file from before their hidden columns were as gisapp writes them now.

        Once per file: the layers lacking the stored GeoJSON (or written when
        it could be NULL) are rewritten by :meth:`write`'s own path (so their
        text is what a fresh write stores), in a copy that replaces the file.
        """
        try:
            self.write({})  # (nothing to do if another process did it meanwhile)
        except OSError as err:
            raise StoreError(f"store {self.path} was written by an older gisapp (layers {', '.join(stale)} lack "
                             f"the stored GeoJSON) and could not be brought up to date: {err}; open it once with "
                             "write access to its folder (e.g. 'gisapp layers')") from None

    def _stale_layers(self) -> list[str]:
        """The file's layers whose stored GeoJSON is missing or may be NULL (written by an older gisapp)."""
        with self._connect() as con:
            tables = {r[0] for r in con.execute("SELECT table_name FROM gpkg_contents")}
            columns = {name: {r[1]: r[3] for r in con.execute(f'PRAGMA table_info("{name}")')}
                       for name in LAYERS if name in tables}
        return [name for name, cols in columns.items() if not cols.get(GEOJSON_COLUMN)]

    @contextlib.contextmanager
    def _connect(self):
        """A read-only connection to the file as it is now (kept for the next read: :class:`_Readers`)."""
        if not self.path.exists():
            raise StoreError(f"store {self.path} does not exist")
        if self.path.with_name(self.path.name + "-journal").exists():
            _roll_back_hot_journal(self.path)
        signature = self._signature()
        if not signature:
            con = _open_reader(self.path)
            try:
                yield con
            finally:
                con.close()
            return
        con = _READERS.take(self.path, signature)
        try:
            yield con
        except BaseException:
            con.close()  # it may be in the middle of a statement: not kept
            raise
        _READERS.give_back(self.path, signature, con)

    def _tables(self, con) -> set[str]:
        """The layers the file holds (its ``gpkg_contents``)."""
        return self._remembered(("tables",),
                                lambda: {r[0] for r in con.execute("SELECT table_name FROM gpkg_contents")})

    def _where(self, con, layer: Layer, flt: Filter | None) -> tuple[str, list]:
        clauses, params = attribute_clauses(layer, flt)
        if flt is not None and flt.bbox is not None:
            x1, y1, x2, y2 = geo.bbox_polygon(flt.bbox).bounds
            clauses.append(
                f'fid IN (SELECT id FROM "rtree_{layer.name}_geom" '
                "WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?)"
            )
            params.extend([x1, x2, y1, y2])
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _fids(self, con, layer: Layer, flt: Filter | None) -> list[int] | None:
        """Feature ids matching ``flt`` exactly when a bbox is set (in key order), else ``None``.

        R-tree candidates whose envelope lies inside the query box match
        without decoding their geometry; only those on its edge are tested.
        The answer is remembered per filter while the file is unchanged (for
        every store object on the file), so a count followed by a page costs
        one search.
        """
        if flt is None or flt.bbox is None:
            return None
        signature = self._signature()
        cache = _file_cache(self.path, signature)
        cache_key = ("fids", layer.name, flt)
        cached = None if cache is None else cache.get(cache_key)
        if cached is not None:
            return cached
        clauses, params = attribute_clauses(layer, flt)
        box = geo.bbox_polygon(flt.bbox)
        x1, y1, x2, y2 = box.bounds
        ranks = None if clauses else self._key_ranks(layer, cache, signature)
        rows = None
        if ranks is not None:
            # The R-tree's candidates alone, put in key order by the kept ranks (no key lookup per candidate:
            # ~3 µs each, two thirds of a street view's search at 1M)
            rows = con.execute(
                f'SELECT id, minx, miny, maxx, maxy FROM "rtree_{layer.name}_geom" '
                "WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?", [x1, x2, y1, y2]).fetchall()
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            if len(ids) and (ids.max() >= len(ranks) or ids.min() < 0 or (ranks[ids] < 0).any()):
                rows = None  # an R-tree entry without its row: the file is not as the ranks were read
            elif len(ids):
                rows = [rows[i] for i in np.argsort(ranks[ids], kind="stable")]
        if rows is None:
            where = " AND ".join(["r.maxx >= ? AND r.minx <= ? AND r.maxy >= ? AND r.miny <= ?", *clauses])
            rows = con.execute(
                f'SELECT t.fid, r.minx, r.miny, r.maxx, r.maxy FROM "rtree_{layer.name}_geom" r '
                f'JOIN "{layer.name}" t ON t.fid = r.id WHERE {where} ORDER BY t.{layer.key}',
                [x1, x2, y1, y2, *params],
            ).fetchall()
        if not rows:
            fids: list[int] = []
        else:
            arr = np.array(rows, dtype=np.float64)
            inner = _inner_rectangle(flt.bbox, box)
            if inner is not None:
                ix1, iy1, ix2, iy2 = inner
                inside = (arr[:, 1] >= ix1) & (arr[:, 2] >= iy1) & (arr[:, 3] <= ix2) & (arr[:, 4] <= iy2)
            else:
                shapely.prepare(box)
                inside = shapely.within(shapely.box(arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4]), box)
            hit = inside.copy()
            edge = np.flatnonzero(~inside)
            if len(edge):
                edge_fids = [int(v) for v in arr[edge, 0]]
                blobs = dict(con.execute(
                    f'SELECT fid, geom FROM "{layer.name}" WHERE fid IN (SELECT value FROM json_each(?))',
                    [json.dumps(edge_fids)]).fetchall())
                geoms = _decode([blobs.get(f) for f in edge_fids])
                hit[edge] = shapely.intersects(geoms, box)
            fids = [int(v) for v in arr[hit, 0]]
        if cache is not None:
            with _FILE_CACHE_LOCK:  # requests run in threads: never iterate while another inserts
                remembered = [k for k in list(cache) if isinstance(k, tuple) and k[0] == "fids"]
                if len(remembered) >= _FIDS_PER_FILE:
                    for k in remembered:
                        cache.pop(k, None)
                cache[cache_key] = fids
        return fids

    def _key_ranks(self, layer: Layer, cache: dict | None, signature: tuple) -> np.ndarray | None:
        """Each feature's place in key order, indexed by fid (-1: no such fid), kept per version of the file;
        ``None`` while it is read.

        The first search of a version starts reading it (``SELECT fid … ORDER BY key``, the key's index:
        ~0.3 s of a core at 1M, 4 bytes a fid) in a thread and waits for it :data:`RANKS_WAIT` seconds (a
        small layer is read by then); a larger one is searched as before meanwhile.
        """
        if cache is None:
            return None
        slot = ("key_ranks", layer.name)
        with _FILE_CACHE_LOCK:
            found = cache.get(slot)
            if found is None:
                cache[slot] = reading = threading.Event()
        if isinstance(found, np.ndarray):
            return found
        if found is not None:  # being read (an Event), or could not be (False)
            return None
        thread = threading.Thread(target=self._read_key_ranks, args=(layer, cache, signature, reading),
                                  daemon=True, name="gisapp-key-ranks")
        thread.start()
        reading.wait(RANKS_WAIT)
        found = cache.get(slot)
        return found if isinstance(found, np.ndarray) else None

    def _read_key_ranks(self, layer: Layer, cache: dict, signature: tuple, done: threading.Event) -> None:
        """Read :meth:`_key_ranks`' array into ``cache``, the entry of the file's version ``signature``, when the
        file is that version before and after reading; else (or when the fids are too sparse for an array
        indexed by them) ``False`` there: that version is searched by SQL."""
        slot, ranks = ("key_ranks", layer.name), None
        try:
            if self._signature() != signature:
                raise _Stale
            with contextlib.closing(_open_reader(self.path)) as con:
                rows = con.execute(f'SELECT fid FROM "{layer.name}" ORDER BY {layer.key}').fetchall()
            fids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            del rows
            if not len(fids) or (fids.min() >= 0 and fids.max() < 4 * len(fids) + 1024):
                ranks = np.full(int(fids.max()) + 1 if len(fids) else 0, -1, dtype=np.int32)
                ranks[fids] = np.arange(len(fids), dtype=np.int32)
            if self._signature() != signature:
                ranks = None  # written meanwhile: the entry is an old version's
        except _Stale:
            pass
        except (sqlite3.Error, OSError):
            LOG.warning("reading the key order of %s in %s failed", layer.name, self.path, exc_info=True)
        finally:
            with _FILE_CACHE_LOCK:
                cache[slot] = ranks if ranks is not None else False
            done.set()

    def _signature(self) -> tuple:
        """What identifies this version of the file: its inode, modification time and size, and SQLite's file
        change counter (header bytes 24–27, raised by every committed write in rollback-journal mode), since two
        small in-place writes within one clock tick may leave the time and the size as they were."""
        try:
            st = self.path.stat()
            with open(self.path, "rb") as f:
                f.seek(24)
                counter = int.from_bytes(f.read(4), "big")
        except OSError:
            return ()
        return (st.st_ino, st.st_mtime_ns, st.st_size, counter)

    def version(self) -> str | None:
        """The file's identity, modification time, size and change counter: any write changes one of them."""
        return "-".join(map(str, self._signature())) or None

    def read(self, layer: str, flt: Filter | None = None, *, limit: int | None = None,
             offset: int = 0) -> gpd.GeoDataFrame:
        lay = store_layer(layer)
        with self._connect() as con:
            if layer not in self._tables(con):
                return empty_frame(lay)
            rows = self._select(con, lay, [*lay.field_names, "geom"], flt, limit, offset)
        return _frame(lay, rows)

    def _select(self, con, layer: Layer, columns: list[str], flt: Filter | None, limit=None, offset=0,
                fids=None) -> list[tuple]:
        """Rows of ``columns`` matching ``flt`` in key order, ``offset``/``limit`` applied.

        With a bbox the matching feature ids come from :meth:`_fids` (pass
        them as ``fids`` when already known) and only the page's rows are read.
        """
        names = ", ".join(columns)
        if fids is None:
            fids = self._fids(con, layer, flt)
        if fids is not None:
            fids = fids[offset:] if limit is None else fids[offset:offset + limit]
            if not fids:
                return []
            sql = (f'SELECT {names} FROM "{layer.name}" WHERE fid IN (SELECT value FROM json_each(?)) '
                   f"ORDER BY {layer.key}")
            return con.execute(sql, [json.dumps(fids)]).fetchall()
        where, params = self._where(con, layer, flt)
        sql = f'SELECT {names} FROM "{layer.name}"{where} ORDER BY {layer.key}'
        if limit is not None or offset:
            sql += " LIMIT ? OFFSET ?"
            params = [*params, -1 if limit is None else int(limit), int(offset)]
        return con.execute(sql, params).fetchall()

    def page(self, layer: str, flt: Filter | None = None, *, fields: list[str], limit: int,
             offset: int = 0, texts: bool = False) -> Page:
        lay = store_layer(layer)
        names = field_names(lay, fields)
        with self._connect() as con:
            if layer not in self._tables(con):
                return Page(0, [])
            fids = self._fids(con, lay, flt)
            if fids is not None:
                matched = len(fids)
            else:
                where, params = self._where(con, lay, flt)
                matched = con.execute(f'SELECT count(*) FROM "{layer}"{where}', params).fetchone()[0]
            # as of a day: the statuses of that day in the same query (see page_columns)
            columns, flagged = page_columns(lay, [lay.key, *names], flt, hist.TABLE in self._schema_names(con))
            stored = texts_columns(lay, names, flagged) if texts and self._has_texts(con, lay) else None
            if stored is not None and matched > offset:
                blobs = [f"CAST({c} AS BLOB)" for c in [*stored, GEOJSON_COLUMN]]  # bytes, not decoded
                rows = texts_rows(lay, self._select(con, lay, [lay.key, *blobs], flt, limit, offset, fids=fids))
                if rows is not None:
                    return Page(matched, rows, texts=True)
            rows = [] if matched <= offset else \
                self._select(con, lay, [*columns[:len(names) + 1], GEOJSON_COLUMN, *columns[len(names) + 1:]],
                             flt, limit, offset, fids=fids)
        rows, known = page_rows(rows, flagged, 1 + names.index("status") if "status" in names else None)
        return Page(matched, rows, known)

    def _has_texts(self, con, layer: Layer) -> bool:
        """Whether the file's table of ``layer`` has the stored properties' texts (written by this gisapp)."""
        return self._remembered(("texts", layer.name), lambda: PROPERTIES_COLUMN in {
            r[1] for r in con.execute(f'PRAGMA table_info("{layer.name}")')})

    def _schema_names(self, con) -> set[str]:
        """Names of the file's tables and indexes (files written by older versions lack newer indexes)."""
        return self._remembered(("schema",), lambda: {r[0] for r in con.execute("SELECT name FROM sqlite_master")})

    def _remembered(self, key: tuple, compute):
        """``compute()``, remembered for this version of the file."""
        cache = _file_cache(self.path, self._signature())
        if cache is not None and key in cache:
            return cache[key]
        value = compute()
        if cache is not None:
            cache[key] = value
        return value

    def count(self, layer: str, flt: Filter | None = None) -> int:
        lay = store_layer(layer)
        with self._connect() as con:
            if layer not in self._tables(con):
                return 0
            fids = self._fids(con, lay, flt)
            if fids is not None:
                return len(fids)
            where, params = self._where(con, lay, flt)
            return con.execute(f'SELECT count(*) FROM "{layer}"{where}', params).fetchone()[0]

    def iter_batches(self, layer: str, flt: Filter | None = None,
                     batch_size: int = 5000) -> Iterator[gpd.GeoDataFrame]:
        """Matching features in batches, from one query (no OFFSET rescans)."""
        lay = store_layer(layer)
        columns = ", ".join(lay.field_names) + ", geom"
        if not self.path.exists():
            raise StoreError(f"store {self.path} does not exist")
        # Its own connection: the kept one of this thread may be closed (file replaced) between batches.
        with contextlib.closing(_open_reader(self.path)) as con:
            if layer not in self._tables(con):
                return
            fids = self._fids(con, lay, flt)
            if fids is not None:
                sql = (f'SELECT {columns} FROM "{layer}" WHERE fid IN (SELECT value FROM json_each(?)) '
                       f"ORDER BY {lay.key}")
                cursor = con.execute(sql, [json.dumps(fids)])
            else:
                where, params = self._where(con, lay, flt)
                cursor = con.execute(f'SELECT {columns} FROM "{layer}"{where} ORDER BY {lay.key}', params)
            while True:
                rows = cursor.fetchmany(batch_size)
                if rows:
                    yield _frame(lay, rows)
                if len(rows) < batch_size:
                    return

    def iter_arrow(self, layer: str, flt: Filter | None = None, *, fields: list[str] | None = None,
                   batch_size: int = 5000, limit: int | None = None, offset: int = 0,
                   geometry: str = "wkb") -> Iterator[pa.Table]:
        """Matching features as Arrow tables, for serializers that stream.

        Each table has the columns ``fields`` (default: all of the layer's)
        typed as stored (text → string, date → date32, int, float) and
        ``geometry`` as WKB in EPSG:5899 (or the stored GeoJSON text with
        ``geometry="geojson"``), rows ordered by the layer's key.
        GDAL reads the rows (no Python object per value), so the SQL is
        built with literals: only schema column names and values quoted by
        :func:`_literal` go into it.
        """
        lay = store_layer(layer)
        names = field_names(lay, fields)
        column = geometry_column(geometry)
        with self._connect() as con:
            if layer not in self._tables(con):
                return
            fids = self._fids(con, lay, flt)
        if fids is not None:
            fids = fids[offset:] if limit is None else fids[offset:offset + limit]
            if not fids:
                return
            where = f" WHERE fid IN (SELECT value FROM json_each({_literal(json.dumps(fids))}))"
            paging = ""
        else:
            clauses, params = attribute_clauses(lay, flt)
            where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
            where = _bind(where, params)
            paging = "" if limit is None and not offset else \
                f" LIMIT {-1 if limit is None else int(limit)} OFFSET {int(offset)}"
        columns = ", ".join(names)
        sql = f'SELECT {columns}{", " if names else ""}{column} FROM "{layer}"{where} ORDER BY {lay.key}{paging}'
        with pyogrio.open_arrow(self.path, sql=sql, batch_size=batch_size, use_pyarrow=True) as (_, reader):
            for batch in reader:
                if batch.num_rows:
                    yield pa.Table.from_batches([batch]).rename_columns([*names, "geometry"])

    def box_rows(self, layer: str, box: tuple[float, float, float, float], flt: Filter | None,
                 fields: list[str]) -> list[tuple]:
        """Rows of ``layer`` whose R-tree boxes meet ``box`` (EPSG:5899) and that match ``flt``'s attributes.

        Each row holds ``fields`` then the GeoPackage geometry blob; one query
        joining the R-tree to the rows.  ``flt.bbox`` is not applied (the
        caller knows its own box).
        """
        lay = store_layer(layer)
        x1, y1, x2, y2 = box
        clauses, params = attribute_clauses(lay, flt)
        where = " AND ".join(["r.maxx >= ? AND r.minx <= ? AND r.maxy >= ? AND r.miny <= ?", *clauses])
        columns = "".join(f"t.{f}, " for f in fields)
        with self._connect() as con:
            if layer not in self._tables(con):
                return []
            return con.execute(f'SELECT {columns}t.geom FROM "rtree_{layer}_geom" r JOIN "{layer}" t '
                               f"ON t.fid = r.id WHERE {where}", [x1, x2, y1, y2, *params]).fetchall()

    def box_texts(self, layer: str, box: tuple[float, float, float, float], column: str) -> list[tuple]:
        lay = store_layer(layer)
        x1, y1, x2, y2 = box
        with self._connect() as con:
            if layer not in self._tables(con):
                return []
            return con.execute(f'SELECT t.{lay.key}, t.{search_column(column)} '
                               f'FROM "rtree_{layer}_geom" r CROSS JOIN "{layer}" t '
                               "ON t.fid = r.id WHERE r.maxx >= ? AND r.minx <= ? AND r.maxy >= ? AND r.miny <= ?",
                               [x1, x2, y1, y2]).fetchall()

    def rows_in_box(self, layer: str, box: tuple[float, float, float, float], *, fields: list[str]) -> list[tuple]:
        """Rows whose R-tree box meets ``box`` (see :meth:`Store.rows_in_box`): one query joining the R-tree."""
        lay = store_layer(layer)
        names = field_names(lay, fields)
        dates = [k for k, n in enumerate(names) if lay.field(n).type == "date"]
        rows = self.box_rows(layer, box, None, names)
        out = []
        for row in rows:
            values = list(row[:-1])
            for k in dates:
                values[k] = None if values[k] is None else dt.date.fromisoformat(str(values[k])[:10])
            out.append((*values, None if row[-1] is None else gpkg_to_wkb(row[-1])))
        return out

    def date_range(self, layer: str) -> tuple[str | None, str | None]:
        """First start date and last end date of ``layer`` (ISO text); the end is ``None`` when some are open."""
        lay = store_layer(layer)
        with self._connect() as con:
            if layer not in self._tables(con) or not lay.date_field:
                return None, None
            start, end = lay.date_field, lay.end_date_field or lay.date_field
            first = con.execute(f'SELECT min({start}) FROM "{layer}"').fetchone()[0]
            last = con.execute(f'SELECT max({end}) FROM "{layer}"').fetchone()[0]
            open_ended = f'SELECT EXISTS(SELECT 1 FROM "{layer}" WHERE {end} IS NULL AND {start} IS NOT NULL)'
            if end != start and con.execute(open_ended).fetchone()[0]:
                last = None
        return first, last

    def aggregate(self, layer: str, flt: Filter | None = None, *, cell_m: float | None = None) -> pd.DataFrame:
        """Counts of matching features per ward (SQL ``GROUP BY``) or per grid cell (see :meth:`Store.aggregate`).

        Grid cells come from each geometry's exact bounding box (not the
        R-tree's, whose float32 bounds would move centres by up to ~0.1 m),
        as PostGIS computes them, so both stores put a feature in the same cell.
        """
        lay = store_layer(layer)
        columns = aggregate_columns(lay, cell_m)
        with self._connect() as con:
            if layer not in self._tables(con):
                return aggregate_frame([], columns)
            fids = self._fids(con, lay, flt)
            if fids is not None:
                where, params = " WHERE fid IN (SELECT value FROM json_each(?))", [json.dumps(fids)]
            else:
                where, params = self._where(con, lay, flt)
            if cell_m is None:
                return aggregate_frame(con.execute(
                    f'SELECT ward_code, count(*) FROM "{layer}"{where} GROUP BY ward_code '
                    "ORDER BY ward_code IS NULL, ward_code", params).fetchall(), columns)
            blobs = [r[0] for r in con.execute(f'SELECT geom FROM "{layer}"{where}', params)]
        return _grid_counts(_decode(blobs), float(cell_m))

    def get(self, layer: str, key: str) -> gpd.GeoDataFrame:
        lay = store_layer(layer)
        with self._connect() as con:
            if layer not in self._tables(con):
                return empty_frame(lay)
            columns = ", ".join(lay.field_names) + ", geom"
            rows = con.execute(f'SELECT {columns} FROM "{layer}" WHERE {lay.key} = ?', [str(key)]).fetchall()
        return _frame(lay, rows)

    def read_keys(self, layer: str, keys: Collection[str]) -> gpd.GeoDataFrame:
        """Features by key (see :meth:`Store.read_keys`): one query, the keys as one JSON parameter."""
        lay = store_layer(layer)
        wanted = sorted({str(k) for k in keys})
        with self._connect() as con:
            if not wanted or layer not in self._tables(con):
                return empty_frame(lay)
            columns = "".join(f"t.{n}, " for n in lay.field_names) + "t.geom"
            # CROSS JOIN: SQLite keeps the keys as the outer loop, one probe of the key's index each
            rows = con.execute(f'SELECT {columns} FROM json_each(?) j CROSS JOIN "{layer}" t '
                               f"ON t.{lay.key} = j.value ORDER BY t.{lay.key}", [json.dumps(wanted)]).fetchall()
        return _frame(lay, rows)

    def read_boxes(self, layer: str, boxes: np.ndarray) -> gpd.GeoDataFrame:
        """Features meeting any box (see :meth:`Store.read_boxes`): the boxes joined to the R-tree, a box at a
        time inside SQLite (the boxes are one JSON parameter per query, :data:`_BOX_CHUNK` of them)."""
        lay = store_layer(layer)
        arr = np.asarray(boxes, dtype=float).reshape(-1, 4)
        with self._connect() as con:
            if not len(arr) or layer not in self._tables(con):
                return empty_frame(lay)
            columns = "".join(f"t.{n}, " for n in lay.field_names)
            fids: set[int] = set()
            rows: list[tuple] = []
            for lo in range(0, len(arr), _BOX_CHUNK):
                part = json.dumps(arr[lo:lo + _BOX_CHUNK].tolist())
                found = con.execute(
                    "WITH b AS (SELECT json_extract(value, '$[0]') AS x1, json_extract(value, '$[1]') AS y1, "
                    "json_extract(value, '$[2]') AS x2, json_extract(value, '$[3]') AS y2 FROM json_each(?)), "
                    f'hit AS (SELECT DISTINCT r.id FROM b CROSS JOIN "rtree_{layer}_geom" r '
                    "WHERE r.maxx >= b.x1 AND r.minx <= b.x2 AND r.maxy >= b.y1 AND r.miny <= b.y2) "
                    f'SELECT t.fid, {columns}t.geom FROM hit CROSS JOIN "{layer}" t ON t.fid = hit.id',
                    [part]).fetchall()  # CROSS JOIN: the hits stay the outer loop (a rowid probe each)
                rows.extend(r[1:] for r in found if r[0] not in fids)
                fids.update(r[0] for r in found)
        frame = _frame(lay, rows)
        return frame.sort_values(lay.key, kind="stable").reset_index(drop=True) if len(frame) else frame

    def info(self) -> list[LayerInfo]:
        out = []
        with self._connect() as con:
            tables = self._tables(con)
            for name in LAYERS:
                if name not in tables:
                    out.append(LayerInfo(name, 0, STORE_CRS, None))
                    continue
                n = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                ext = con.execute(
                    f'SELECT min(minx), min(miny), max(maxx), max(maxy) FROM "rtree_{name}_geom"'
                ).fetchone()
                out.append(LayerInfo(name, n, STORE_CRS, None if ext[0] is None else tuple(ext)))
        return out

    def changes(self, after: int = 0, limit: int = 100) -> ChangePage:
        """The change log's entries after ``after`` (see :meth:`Store.changes`), from this version of the file.

        The log lives in the file, so it is replaced with the data by each write: a reader sees both or neither.
        """
        with self._connect() as con:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                               "AND name IN (?, ?)", [CHANGES_TABLE, CHANGE_LOG_TABLE])}
            if names != {CHANGES_TABLE, CHANGE_LOG_TABLE}:
                return ChangePage(None, 0, [])
            log_id = con.execute(f"SELECT id FROM {CHANGE_LOG_TABLE}").fetchone()
            last = con.execute(f"SELECT coalesce(max(seq), 0) FROM {CHANGES_TABLE}").fetchone()[0]
            boxes = ", ".join(BOX_COLUMNS) if _has_boxes(con) else "NULL, NULL, NULL, NULL"  # a file from before
            rows = con.execute(f"SELECT seq, layer, key, kind, status, changed_at, {boxes} FROM {CHANGES_TABLE} "
                               "WHERE seq > ? ORDER BY seq LIMIT ?", [int(after), int(limit)]).fetchall()
        return ChangePage(log_id[0] if log_id else None, int(last), [change_of(r) for r in rows])

    def _log_entries(self, layer: Layer, frame: gpd.GeoDataFrame, mode: str, exists: bool,
                     deleted: list[str]) -> list[tuple]:
        """The change-log entries of writing ``frame`` (coerced) to ``layer`` after deleting ``deleted`` keys."""
        if not exists:
            entries = change_rows(layer, frame, mode, None if mode == "replace"
                                  and replace_is_compact(0, len(frame)) else [])
            return boxed(entries, {}, _new_boxes(layer, frame, entries))
        gone = self._old_keys(layer, pd.DataFrame({layer.key: deleted}), "upsert") if deleted else []
        old_keys = self._old_keys(layer, frame, mode)
        if old_keys is not None and gone:
            old_keys = [k for k in old_keys if k not in set(gone)]
        entries = delete_rows(layer, gone) + change_rows(layer, frame, mode, old_keys)
        old_boxes = self._old_boxes(layer, [str(e[1]) for e in entries if e[2] in ("update", "delete")])
        return boxed(entries, old_boxes, _new_boxes(layer, frame, entries))

    def _old_boxes(self, layer: Layer, keys: list[str]) -> dict[str, tuple]:
        """The stored bounding boxes of the features ``keys`` (from the layer's R-tree), for the change log."""
        if not keys:
            return {}
        with self._connect() as con:
            rows = con.execute(f'SELECT t.{layer.key}, r.minx, r.miny, r.maxx, r.maxy FROM "{layer.name}" t '
                               f'JOIN "rtree_{layer.name}_geom" r ON r.id = t.fid '
                               f"WHERE t.{layer.key} IN (SELECT value FROM json_each(?))",
                               [json.dumps(keys)]).fetchall()
        return {str(r[0]): tuple(r[1:]) for r in rows}

    def _old_keys(self, layer: Layer, frame: gpd.GeoDataFrame, mode: str):
        """The layer's keys before a write, for its change-log entries (``None``: a compact replace); for an
        upsert only those among the keys written (through the key's index)."""
        with self._connect() as con:
            if layer.name not in self._tables(con):
                return None if mode == "replace" and replace_is_compact(0, len(frame)) else []
            if mode == "upsert":
                keys = json.dumps([str(k) for k in frame[layer.key]])
                return [r[0] for r in con.execute(f'SELECT {layer.key} FROM "{layer.name}" '
                                                  f"WHERE {layer.key} IN (SELECT value FROM json_each(?))", [keys])]
            old_count = con.execute(f'SELECT count(*) FROM "{layer.name}"').fetchone()[0]
            if replace_is_compact(old_count, len(frame)):
                return None
            return [r[0] for r in con.execute(f'SELECT {layer.key} FROM "{layer.name}"')]

    def meta(self) -> dict[str, Any]:
        with self._connect() as con:
            if META_TABLE not in self._tables(con):
                return {}
            return {k: orjson.loads(v) for k, v in con.execute(f"SELECT key, value FROM {META_TABLE}")}

    # -- writing -----------------------------------------------------------

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._holder == threading.get_ident():
            yield
            return
        with _lock(self.path):
            self._holder = threading.get_ident()
            try:
                yield
            finally:
                self._holder = None

    def write(self, frames: dict[str, gpd.GeoDataFrame], *, mode: str = "replace",
              meta: dict[str, Any] | None = None, history: pd.DataFrame | None = None,
              progress: Progress = SILENT, delete: dict[str, Collection[str]] | None = None) -> None:
        self._write(frames, mode=mode, meta=meta, history=history, progress=progress, delete=delete)

    def _write(self, frames: dict[str, gpd.GeoDataFrame], *, mode: str = "replace",
               meta: dict[str, Any] | None = None, history: pd.DataFrame | None = None,
               progress: Progress = SILENT, delete: dict[str, Collection[str]] | None = None,
               extra: Callable[[sqlite3.Connection], None] | None = None) -> None:
        """:meth:`write`, and ``extra`` run on the copy (in its own SQLite transaction) before it replaces the file."""
        if mode not in ("replace", "upsert"):
            raise StoreError(f"unknown write mode {mode!r}; use 'replace' or 'upsert'")
        deleted = check_delete(mode, delete)
        layers = {name: store_layer(name) for name in [*frames, *deleted]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.write_lock():
            exists = self.path.exists()
            if exists:
                self._check(upgrade=False)
            if not exists:
                deleted = {}
            frames = {**frames, **{n: empty_frame(layers[n]) for n in deleted if n not in frames}}
            stale = [n for n in self._stale_layers() if n not in frames] if exists else []  # written again too
            if exists and not (frames or stale or meta or extra or history is not None
                               or not self._has_history()):
                return
            if mode == "upsert" and exists and not stale and extra is None and \
                    sum(len(f) for f in frames.values()) <= IN_PLACE_ROWS and self._has_tables(layers):
                total = sum(len(f) for f in frames.values())
                log = [entry for name, frame in frames.items() for entry in self._log_entries(
                    layers[name], schema.coerce(layers[name], frame), mode, exists, deleted.get(name, []))]
                try:
                    _write_in_place(self.path, layers, frames, deleted, meta,
                                    self._history_rows(frames, history, exists), log)
                except sqlite3.OperationalError:
                    pass  # a reader (a streaming export) holds the file: rolled back, written into a copy below
                else:
                    progress("write", total, total, "rows")
                    return
            _remove_leftovers(self.path)
            if mode == "replace" and exists and frames and not stale and extra is None:
                try:
                    self._replace_in_place(frames, layers, meta, history, progress)
                except sqlite3.OperationalError as err:
                    if not _busy(err):
                        raise
                    # readers held the file past the timeout: rolled back, written into a copy below
                else:
                    return
            tmp = self.path.with_name(f".{self.path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.gpkg")
            children = _LayerFiles(tmp, new=not exists)
            try:
                if exists:
                    _copy(self.path, tmp)
                merged_meta = {**(self.meta() if exists else {}), **(meta or {})}
                given = set() if history is None else set(history["layer"])
                # a new file: every feature's status is new, so its history row comes from the written layer
                # in SQL (:func:`_history_from_layers`), not from a frame of a million rows through Python
                fresh = [] if exists else [n for n in frames if n in hist.LAYER_KEYS and n not in given]
                changes = self._history_rows({n: f for n, f in frames.items() if n not in fresh}, history, exists)
                # the history of a new store's large layers: built while the last child writes and the layers move
                # in, in a file of its own (:meth:`_LayerFiles.history`), its pages then put in
                ahead = hist.local_now() if fresh and history is None and not len(changes) else None
                written: set[str] = set()
                total, rows = sum(len(f) for f in frames.values()), 0
                progress("write", 0, total, "rows")
                log = []
                for name, frame in [*frames.items(), *((n, self.read(n)) for n in stale)]:
                    lay = layers.setdefault(name, LAYERS[name])
                    frame = schema.coerce(lay, frame, arrow_text=True)
                    if name in frames:
                        log.extend(self._log_entries(lay, frame, mode, exists, deleted.get(name, [])))
                    if mode == "upsert" and exists and name in frames:
                        frame = merge_upsert(lay, self.read(name), frame, deleted.get(name, ()))
                    # a large layer: a child process writes it into the copy meanwhile (one after the other);
                    # meanwhile a small one is written into a file of its own, moved in after
                    if not children.start(lay, frame, into=tmp, history=ahead if name in fresh else None):
                        children.write_small(lay, frame, tmp)
                    written.add(name)
                    if name in frames:
                        rows += len(frames[name])
                        progress("write", rows, total, "rows")
                # a new file's layers not given, empty, and the meta: written while the children write (into the
                # small layers' file, moved in with them), not by GDAL opening the whole copy after them (~0.8 s
                # each at 1M); the empty layers left without indexes as before (built when first written)
                missing = [n for n in LAYERS if not exists and n not in written]
                for name in missing:
                    children.write_small(LAYERS[name], empty_frame(LAYERS[name]), tmp)
                children.write_meta(merged_meta, tmp)
                built = None
                if children:
                    sources = children.wait()
                    children.flush_behind(tmp)  # the layer its child wrote here, while the others move in
                    built = children.history(fresh, ahead)
                    _move_layers(tmp, sources, timeout=IN_PLACE_TIMEOUT, private=True, bare=[*missing, META_TABLE],
                                 splice=children.pages)
                    children.flush_behind(tmp)  # and those, while the history is written
                replaced = [n for n in frames if mode == "replace" and history is not None
                            and n in set(history["layer"])]
                if built is not None:
                    _move_history(tmp, children.history_file, built.result())
                else:
                    _write_history(tmp, changes, replaced, fresh)
                if extra is not None:
                    with contextlib.closing(sqlite3.connect(tmp)) as con, con:
                        extra(con)
                if frames:
                    _append_changes(tmp, log)
                _finish(tmp, layers.values())
                os.replace(tmp, self.path)
                _READERS.release(self.path)  # the old file's space is freed once no read holds it
            except BaseException:
                children.close()  # first: a child still writing the copy would make it again
                for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
                    leftover.unlink(missing_ok=True)
                raise
            finally:
                children.close()


    def _replace_in_place(self, frames: dict[str, gpd.GeoDataFrame], layers: dict[str, Layer],
                          meta: dict[str, Any] | None, history: pd.DataFrame | None, progress: Progress) -> None:
        """A replace of existing layers in the file itself, in one SQLite transaction (writers' lock held).

        GDAL writes the new layers into a private file of their own (Arrow, its bulk R-tree); one
        transaction then drops the old tables, copies the new ones in (table, R-tree, triggers, GeoPackage
        metadata: SQLite's own copy, no row through Python), builds the indexes and adds the meta, history
        and change-log rows.  Cheaper than copying the whole store to replace a few layers (a 3.6 GB city
        store took 10 s to copy before the findings were written at all); a failure rolls it all back.
        """
        total, rows = sum(len(f) for f in frames.values()), 0
        progress("write", 0, total, "rows")
        changes = self._history_rows(frames, history, True)
        replaced = [n for n in frames if history is not None and n in set(history["layer"])]
        log: list[tuple] = []
        patches: dict[str, _Patch] = {}
        aux = self.path.with_name(f".{self.path.stem}.{os.getpid()}.{threading.get_ident()}.layers.tmp.gpkg")
        children = _LayerFiles(aux)
        try:
            for name, frame in frames.items():
                frame = schema.coerce(layers[name], frame, arrow_text=True)
                patch = self._patch(layers[name], frame)
                if patch is not None:
                    patches[name] = patch
                    log.extend(patch.log)
                else:
                    log.extend(self._log_entries(layers[name], frame, "replace", True, []))
                    if not children.start(layers[name], frame):  # large: a child process writes it meanwhile
                        children.write_small(layers[name], frame)
                rows += len(frame)
                progress("write", rows, total, "rows")
            _move_layers(self.path, children.wait(), meta=meta, history=changes, replaced=replaced, log=log,
                         patches=patches)
        finally:
            children.close()

    def _patch(self, layer: Layer, frame: gpd.GeoDataFrame) -> _Patch | None:
        """A replace of a stored layer by ``frame`` (coerced) as the rows it changes, when it changes few.

        A large layer (more than :data:`gisapp.store.base.REPLACE_DETAIL_MAX` features before and after) is
        compared with the stored one by key, field by field and geometry by geometry (its WKB): a full
        analysis finding what is stored writes nothing but its meta.  ``None`` (write the layer whole) for
        a small layer, one the file lacks, keys given twice or more than :data:`PATCH_MAX_SHARE` of the
        rows changed.  The change log gets an entry per changed feature (a ``replace`` beyond
        :data:`gisapp.store.base.REPLACE_DETAIL_MAX` of them), none for a layer that did not change.
        """
        prefetched = self._take_prefetched(layer.name)
        with self._connect() as con:
            if layer.name not in self._tables(con):
                return None
            old_count = con.execute(f'SELECT count(*) FROM "{layer.name}"').fetchone()[0]
        if not replace_is_compact(old_count, len(frame)):
            return None
        names = layer.field_names
        # GDAL reads the stored rows (without the GIL) unless they were read already (:meth:`prefetch_replace`),
        # and a thread encodes the new geometries while the fields are compared on two more (Arrow's kernels run
        # without the interpreter lock)
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="gisapp-patch") as pool:
            reading = prefetched or pool.submit(_stored_rows, self.path, layer)
            encoding = pool.submit(derive.multipolygon_wkb, frame.geometry.values)
            new = _field_arrays(layer, frame)
            read = reading.result()
            if read is None:
                return None  # a file written otherwise (a field missing): written whole
            info, stored = read
            keys = new[names.index(layer.key)]
            if keys.null_count or pc.count_distinct(keys).as_py() < len(keys):
                return None  # keys missing or given twice: the whole write fails as it would have
            old = [*(stored.column(n) for n in names), stored.column(info["geometry_name"] or "geometry")]
            old_keys = old[names.index(layer.key)].combine_chunks().cast(pa.string())
            # keys matched by Arrow's hash tables (no Python string per key)
            found = pc.index_in(keys, value_set=old_keys)
            present = found.is_valid().to_numpy(zero_copy_only=False)
            at = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
            same = present.copy()
            where = np.flatnonzero(present)
            # the usual case (the same features, in the order they were written): compared without reordering
            in_order = len(keys) == len(old_keys) and bool(pc.all(pc.equal(keys, old_keys)).as_py())
            taken = pa.array(at[where], pa.int64())

            def equal(a: pa.Array, b: pa.ChunkedArray) -> np.ndarray | None:
                """Whether each present row's new value equals its stored one (``None``: a stored value this
                layer's type cannot hold)."""
                try:
                    b = b.combine_chunks().cast(a.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    return None
                x, y = (a, b) if in_order else (a.take(where), b.take(taken))
                both_null = pc.and_(pc.is_null(x), pc.is_null(y))
                return pc.or_(pc.fill_null(pc.equal(x, y), False), both_null).to_numpy(zero_copy_only=False)

            columns = [*pool.map(equal, new, old[:-1]), equal(encoding.result(), old[-1])]
        for column in columns:
            if column is None:
                return None  # a stored value this layer's type cannot hold: written whole
            same[where] &= column
        changed = np.flatnonzero(~same)
        removed = sorted(old_keys.filter(pc.invert(pc.is_in(old_keys, value_set=keys))).to_pylist())
        if len(changed) + len(removed) > PATCH_MAX_SHARE * max(len(frame), old_count, 1):
            return None
        rows = frame.iloc[changed]
        updated = sorted(keys.take(pa.array(changed[present[changed]], pa.int64())).to_pylist())
        entries = change_rows(layer, rows, "upsert", updated) + delete_rows(layer, removed)
        if replace_is_compact(len(entries), 0):  # too many to log one by one
            log = boxed(change_rows(layer, rows, "replace", None), {}, {})
        else:
            log = boxed(entries, self._old_boxes(layer, [*updated, *removed]), frame_boxes(layer, rows))
        return _Patch([*removed, *updated], rows, log)

    def prefetch_replace(self, layer: str) -> None:
        """Start reading the stored rows of ``layer`` (GDAL, in a thread of its own: no interpreter lock held),
        for :meth:`_patch` to compare a replace of it with, if the file is still as it is now by then."""
        lay = store_layer(layer)
        signature = self._signature()
        if not signature:
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gisapp-prefetch")
        self._prefetched[layer] = (signature, pool.submit(_stored_rows, self.path, lay))
        pool.shutdown(wait=False)

    def _take_prefetched(self, layer: str) -> Future | None:
        """The read :meth:`prefetch_replace` started for ``layer``, if the file has not changed since."""
        signature, reading = self._prefetched.pop(layer, ((), None))
        if reading is None or signature != self._signature():
            return None
        return reading

    def _has_history(self) -> bool:
        """Whether the file has the status history table (files from before it do not)."""
        with self._connect() as con:
            return hist.TABLE in self._schema_names(con)

    def _history_rows(self, frames: dict, history: pd.DataFrame | None, exists: bool) -> pd.DataFrame:
        """The history rows a write adds: ``history``'s, and a row per new or changed status of the others."""
        parts = [] if history is None else [history]
        given = set() if history is None else set(history["layer"])
        when = hist.local_now()
        for name, frame in frames.items():
            key = hist.LAYER_KEYS.get(name)
            if key is None or name in given or not len(frame) or key not in frame:
                continue
            status = frame["status"] if "status" in frame else pd.Series(None, index=frame.index, dtype=object)
            old: dict = {}
            if exists:
                with self._connect() as con:
                    if name in self._tables(con):
                        keys = json.dumps([str(k) for k in frame[key]])
                        old = dict(con.execute(f'SELECT {key}, status FROM "{name}" '
                                               f"WHERE {key} IN (SELECT value FROM json_each(?))", [keys]))
            keys = frame[key].astype(str).tolist()
            parts.append(hist.changes_between(name, keys, [old.get(k) for k in keys], status, when))
        return pd.concat(parts, ignore_index=True) if parts else hist.empty()

    def status_history(self, layer: str, keys: list[str] | None = None) -> pd.DataFrame:
        """The stored status changes of ``layer`` (see :meth:`Store.status_history`)."""
        store_layer(layer)
        sql = (f"SELECT layer, key, status, changed_on, changed_at, note, seq FROM {hist.TABLE} WHERE layer = ?"
               + ("" if keys is None else " AND key IN (SELECT value FROM json_each(?))")
               + " ORDER BY key, changed_on, changed_at, seq")
        params = [layer] + ([] if keys is None else [json.dumps([str(k) for k in keys])])
        with self._connect() as con:
            rows = con.execute(sql, params).fetchall() if hist.TABLE in self._schema_names(con) else []
        return _history_frame(rows)

    def statuses_as_of(self, layer: str, day: dt.date, keys: list[str] | None = None) -> pd.DataFrame:
        """Each key's last status change by the end of ``day`` (see :data:`gisapp.history.NEXT_ON`)."""
        store_layer(layer)
        if keys is None:  # every key: the rows whose interval [changed_on, next_on) holds the day, one scan
            sql = (f"SELECT key, status, changed_on FROM {hist.TABLE} "
                   "WHERE layer = ? AND changed_on <= ? AND (next_on IS NULL OR next_on > ?)")
            params = [layer, day.isoformat(), day.isoformat()]
        else:  # a few keys (an API page): one index probe each, newest change first
            sql = (f"SELECT k.value, h.status, h.changed_on FROM (SELECT value, (SELECT seq FROM {hist.TABLE} "
                   "WHERE layer = ? AND key = j.value AND changed_on <= ? "
                   "ORDER BY changed_on DESC, changed_at DESC, seq DESC LIMIT 1) AS last FROM json_each(?) j) k "
                   f"JOIN {hist.TABLE} h ON h.seq = k.last ORDER BY k.value")
            params = [layer, day.isoformat(), json.dumps(sorted({str(k) for k in keys}))]
        with self._connect() as con:
            rows = con.execute(sql, params).fetchall() if hist.TABLE in self._schema_names(con) else []
        out = pd.DataFrame({"key": pd.Series([r[0] for r in rows], dtype=object),
                            "status": pd.Series([r[1] for r in rows], dtype=object)})
        out["changed_on"] = np.array([r[2] for r in rows], dtype="datetime64[D]").astype("datetime64[ms]")
        return out


    def dossier_counts(self, flt: Filter | None, day: dt.date) -> pd.DataFrame:
        """The dossiers counted in groups in one query (see :meth:`Store.dossier_counts`)."""
        lay = store_layer("construction_permits")
        with self._connect() as con:
            if lay.name not in self._tables(con):
                return count_frame([])
            fids = self._fids(con, lay, flt)
            if fids is not None:
                where, params = " WHERE fid IN (SELECT value FROM json_each(?))", [json.dumps(fids)]
            else:
                where, params = self._where(con, lay, flt)
            query, params = dossier_counts_sql(
                f'"{lay.name}"', where, params, "?", flt.as_of if flt is not None else None, day,
                "substr({}, 1, 7)", with_history=hist.TABLE in self._schema_names(con))
            rows = con.execute(query, params).fetchall()
        return count_frame(rows)

    def columns_table(self, layer: str, fields: list[str], keys: Collection[str] | None = None) -> pa.Table:
        """The ``fields`` of every feature (or of ``keys``), read by GDAL (see :meth:`Store.columns_table`)."""
        lay = store_layer(layer)
        names = field_names(lay, fields)
        with self._connect() as con:
            if layer not in self._tables(con):
                return typed_table(None, columns_schema(lay, names))
        where = "" if keys is None else \
            f" WHERE {lay.key} IN (SELECT value FROM json_each({_literal(json.dumps(sorted(map(str, keys))))}))"
        _, table = pyogrio.read_arrow(self.path, sql=f'SELECT {", ".join(names)} FROM "{layer}"{where}')
        return typed_table(table.select(names), columns_schema(lay, names))

    def history_table(self, layer: str, *, keys: Collection[str] | None = None, after_seq: int = 0) -> pa.Table:
        """The status changes of ``layer`` after ``after_seq``, read by GDAL (see :meth:`Store.history_table`)."""
        store_layer(layer)
        with self._connect() as con:
            if hist.TABLE not in self._schema_names(con):
                return typed_table(None, HISTORY_SCHEMA)
        where = f"layer = {_literal(layer)} AND seq > {int(after_seq)}"
        if keys is not None:
            where += f" AND key IN (SELECT value FROM json_each({_literal(json.dumps(sorted(map(str, keys))))}))"
        _, table = pyogrio.read_arrow(self.path, sql=f"SELECT {', '.join(HISTORY_SCHEMA.names)} "
                                                     f"FROM {hist.TABLE} WHERE {where}")
        return typed_table(table.select(HISTORY_SCHEMA.names) if table.num_rows else None, HISTORY_SCHEMA)

    def search_texts_table(self, layer: str, column: str, keys: Collection[str] | None = None) -> pa.Table:
        """Keys and search texts of every feature (or of ``keys``), read by GDAL (see
        :meth:`Store.search_texts_table`)."""
        lay = store_layer(layer)
        column = search_column(column)
        with self._connect() as con:
            if layer not in self._tables(con):
                return typed_table(None, TEXTS_SCHEMA)
        where = "" if keys is None else \
            f" WHERE {lay.key} IN (SELECT value FROM json_each({_literal(json.dumps(sorted(map(str, keys))))}))"
        _, table = pyogrio.read_arrow(self.path, sql=f'SELECT {lay.key} AS key, {column} AS text FROM "{layer}"{where}')
        return typed_table(table.select(TEXTS_SCHEMA.names) if table.num_rows else None, TEXTS_SCHEMA)


    # -- inspections ----------------------------------------------------------

    def add_inspection(self, inspection: Inspection, photos: Sequence[Photo], *,
                       findings: gpd.GeoDataFrame | None = None) -> None:
        """Insert the inspection and its photos; with ``findings``, through a copy of the file that replaces it
        (as :meth:`write`), else in place in one SQLite transaction (under the writers' lock either way)."""
        def insert(con: sqlite3.Connection) -> None:
            con.executescript(_INSPECTION_TABLES)
            con.execute(f"INSERT INTO inspections ({', '.join(INSPECTION_COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(INSPECTION_COLUMNS))})", _sqlite_row(inspection_row(inspection)))
            con.executemany("INSERT INTO inspection_photos (token, inspection_id, seq, width, height, data) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            [(p.token, inspection.inspection_id, n, p.width, p.height, p.data)
                             for n, p in enumerate(photos)])

        if findings is not None and len(findings):
            self._write({"findings": findings}, mode="upsert", extra=insert)
            return
        if not self.path.exists():
            raise StoreError(f"store {self.path} does not exist; run 'gisapp seed' or import data first")
        with self.write_lock(), contextlib.closing(sqlite3.connect(self.path, timeout=30)) as con:
            try:
                with con:
                    insert(con)
            except sqlite3.Error as err:
                raise StoreError(f"recording the inspection in {self.path} failed, nothing was changed: {err}") \
                    from None

    def inspections(self, *, target_layer: str | None = None, target_key: str | None = None,
                    inspection_id: str | None = None) -> list[Inspection]:
        where, params = inspection_where("?", target_layer=target_layer, target_key=target_key,
                                         inspection_id=inspection_id)
        with self._connect() as con:
            if "inspections" not in self._schema_names(con):
                return []
            rows = con.execute(f"SELECT {', '.join(INSPECTION_COLUMNS)} FROM inspections{where} "
                               "ORDER BY inspected_at, inspection_id", params).fetchall()
            photos: dict[str, list[tuple]] = {}
            ids = [r[0] for r in rows]
            for iid, token, w, h in con.execute(
                    "SELECT inspection_id, token, width, height FROM inspection_photos "
                    "WHERE inspection_id IN (SELECT value FROM json_each(?)) ORDER BY inspection_id, seq",
                    [json.dumps(ids)]):
                photos.setdefault(iid, []).append((token, w, h))
        return [inspection_of(r, photos.get(r[0], [])) for r in rows]

    def inspection_photo(self, token: str) -> bytes | None:
        with self._connect() as con:
            if "inspection_photos" not in self._schema_names(con):
                return None
            row = con.execute("SELECT data FROM inspection_photos WHERE token = ?", [str(token)]).fetchone()
        return None if row is None else bytes(row[0])

    def _has_tables(self, layers: dict[str, Layer]) -> bool:
        with self._connect() as con:
            tables = self._tables(con)
        return META_TABLE in tables and all(name in tables for name in layers)


def _history_frame(rows: list[tuple]) -> pd.DataFrame:
    """A :meth:`Store.status_history` frame from rows of its columns."""
    out = hist.frame([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                     [r[4] for r in rows], [r[5] for r in rows])
    out["seq"] = pd.Series([r[6] for r in rows], dtype="int64")
    return out


def _write_history(path: Path, rows: pd.DataFrame, replaced: list[str], fresh: Sequence[str] = ()) -> None:
    """Create the history table (and its index) if needed, drop the history of ``replaced`` layers, add ``rows``
    and a row per feature of each ``fresh`` layer (:func:`_history_from_layers`)."""
    with contextlib.closing(_copy_connection(path)) as con:
        _history_into(con, rows, replaced)
        _history_from_layers(con, fresh)
        con.commit()


def _history_from_layers(con: sqlite3.Connection, layers: Sequence[str]) -> None:
    """The history rows of a first write of ``layers`` (a new file): one per feature with a status, dated now,
    in the order of the features (as :func:`gisapp.history.changes_between` gives them for keys not stored
    before), in one ``INSERT … SELECT`` per layer.  Each key has one row, so ``next_on`` stays empty; the
    history's index is built once after the rows."""
    if not layers:
        return
    when = hist.local_now()
    con.execute(f"DROP INDEX IF EXISTS ix_{hist.TABLE}_key")
    for name in layers:
        con.execute(*_history_rows_sql(name, when))
    con.execute(_HISTORY_INDEX_SQL)


def _history_rows_sql(name: str, when: dt.datetime, into: str = "main", source: str = "main") -> tuple[str, list]:
    """The statement and parameters of :func:`_history_from_layers` for layer ``name`` (in the database
    ``source``), into the history table of the database ``into``."""
    return (f"INSERT INTO {into}.{hist.TABLE} (layer, key, status, changed_on, changed_at, note) "
            f'SELECT ?, {hist.LAYER_KEYS[name]}, status, ?, ?, ? FROM {source}."{name}" WHERE status IS NOT NULL '
            "ORDER BY fid", [name, when.date().isoformat(), when.strftime("%H:%M:%S"), hist.WRITE_NOTE])


def _history_table_sql(into: str = "main") -> str:
    """The history table's ``CREATE TABLE`` (as SQLite keeps it, in the database ``into``)."""
    return (f"CREATE TABLE IF NOT EXISTS {into}.{hist.TABLE} (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "layer TEXT NOT NULL, key TEXT NOT NULL, status TEXT NOT NULL, changed_on TEXT NOT NULL, "
            "changed_at TEXT NOT NULL DEFAULT '', note TEXT, next_on TEXT)")


def _history_into(con: sqlite3.Connection, rows: pd.DataFrame, replaced: list[str]) -> None:
    """:func:`_write_history` on an open connection, in its transaction."""
    con.execute(_history_table_sql())
    index_sql = _HISTORY_INDEX_SQL
    bulk = len(rows) > _HISTORY_BULK_ROWS
    # a bulk load (a seed's history, a city-scale replace) builds the index once after its rows, not row by row
    con.execute(f"DROP INDEX IF EXISTS ix_{hist.TABLE}_key" if bulk else index_sql)
    for name in replaced:
        con.execute(f"DELETE FROM {hist.TABLE} WHERE layer = ?", [name])
    if len(rows):
        days = rows["changed_on"].dt.strftime("%Y-%m-%d")
        # plain lists: iterating Arrow-backed text columns value by value costs more than the insert
        columns = [pd.Series(c).to_numpy(dtype=object, na_value=None).tolist()
                   for c in (rows["layer"], rows["key"], rows["status"], days, rows["changed_at"], rows["note"])]
        con.executemany(f"INSERT INTO {hist.TABLE} (layer, key, status, changed_on, changed_at, note) "
                        "VALUES (?, ?, ?, ?, ?, ?)", zip(*columns, strict=True))
        if bulk:
            con.execute(index_sql)
        for layer, keys in rows.groupby("layer")["key"]:
            unique = sorted(set(keys))
            many = len(unique) > hist.WHOLE_LAYER_KEYS
            con.execute(hist.next_on_sql("?", "" if many else "AND key IN (SELECT value FROM json_each(?))"),
                        [layer] if many else [layer, json.dumps(unique)])


def _history_file(path: Path, sources: Sequence[tuple[str, Path]], when: dt.datetime, started: bool) -> _Pages | None:
    """:func:`_history_from_layers` into the SQLite file ``path`` (a writer's private file: no journal, no sync),
    the layers' rows read from the GeoPackages ``sources`` (layer, file), after those there already when
    ``started``; then its index.  Returns its pages (:func:`_layer_pages`) for :func:`_move_history`."""
    with contextlib.closing(sqlite3.connect(f"file:{path}", uri=True, isolation_level=None)) as con:
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -262144", "temp_store = MEMORY"):
            con.execute(f"PRAGMA {pragma}")
        for k, (_, file) in enumerate(sources):
            con.execute(f"ATTACH DATABASE ? AS src{k}", [f"file:{file}?mode=ro"])
        con.execute("BEGIN")
        if not started:
            con.execute(_history_table_sql())
        for k, (name, _) in enumerate(sources):
            con.execute(*_history_rows_sql(name, when, source=f"src{k}"))
        con.execute(_HISTORY_INDEX_SQL)
        con.execute("COMMIT")
    return _layer_pages(path, hist.TABLE)


def _move_history(path: Path, source: Path, pages: _Pages | None) -> None:
    """The history table and its index of the file ``source`` (:func:`_history_file`) into the writer's private
    copy ``path``, which has none: as its pages where the files allow it (:func:`_splice_layer`), else its rows."""
    with _writer(path, timeout=IN_PLACE_TIMEOUT, cache_kib=_PRIVATE_CACHE_KIB) as con:
        con.execute("PRAGMA synchronous = OFF")
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("ATTACH DATABASE ? AS aux", [str(source)])
        con.execute("BEGIN IMMEDIATE")
        rows = pages is None or not _spliceable(con, hist.TABLE, "aux")
        _move_layer(con, hist.TABLE, rows=rows)
        con.execute("COMMIT")
        con.execute("DETACH DATABASE aux")
    if not rows:
        assert pages is not None
        _splice_layer(path, source, pages)


#: The history's index (layer, key and order of the changes).
_HISTORY_INDEX_SQL = (f"CREATE INDEX IF NOT EXISTS ix_{hist.TABLE}_key ON {hist.TABLE} "
                      "(layer, key, changed_on, changed_at, seq)")
#: History rows above which :func:`_history_into` builds the history's index after inserting them.
_HISTORY_BULK_ROWS = 50_000


#: The inspections and their photos: plain SQLite tables beside the GeoPackage's layers (photos as BLOBs).
_INSPECTION_TABLES = """
CREATE TABLE IF NOT EXISTS inspections (
    inspection_id TEXT PRIMARY KEY,
    target_layer TEXT,
    target_key TEXT,
    inspector TEXT NOT NULL,
    inspected_at TEXT NOT NULL,
    inspection_type TEXT NOT NULL,
    outcome TEXT NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    ward_code TEXT,
    position BLOB NOT NULL,
    occupancy BLOB
);
CREATE INDEX IF NOT EXISTS ix_inspections_target ON inspections (target_layer, target_key);
CREATE TABLE IF NOT EXISTS inspection_photos (
    token TEXT PRIMARY KEY,
    inspection_id TEXT NOT NULL REFERENCES inspections (inspection_id),
    seq INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_inspection_photos_inspection ON inspection_photos (inspection_id, seq);
"""


def _sqlite_row(row: tuple) -> tuple:
    """An inspections row for SQLite: the time as ISO text in UTC (sorts as time)."""
    return tuple(v.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00") if hasattr(v, "tzinfo") and hasattr(v, "hour") else v
                 for v in row)


#: An upsert of at most this many rows into existing layers is written in place, in one SQLite transaction,
#: instead of into a copy of the file (an occupancy saved with its findings: milliseconds, not a rewrite of
#: every layer it touches).  The file's signature (its modification time and size) changes all the same.
IN_PLACE_ROWS = 5000
#: Page cache (KiB) of the connection writing in place (see :func:`_write_in_place`).
IN_PLACE_CACHE_KB = 512 * 1024
#: Boxes per query of :meth:`GeoPackageStore.read_boxes`.
_BOX_CHUNK = 2000


def _gpkg_functions(con: sqlite3.Connection) -> None:
    """The SQL functions GeoPackage's R-tree triggers call (GDAL registers them; plain SQLite has none)."""

    def part(k: int):
        def f(blob):
            env = gpkg_envelope(blob)
            return None if env is None else env[k]
        return f

    con.create_function("ST_IsEmpty", 1, lambda blob: 1 if gpkg_envelope(blob) is None else 0, deterministic=True)
    for k, name in enumerate(("ST_MinX", "ST_MaxX", "ST_MinY", "ST_MaxY")):
        con.create_function(name, 1, part(k), deterministic=True)


def _sql_value(value):
    """A value as the GeoPackage holds it (dates as ISO text)."""
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()[:10]
    return value


@contextlib.contextmanager
def _writer(path: Path, *, timeout: float, cache_kib: int):
    """A connection writing the GeoPackage at ``path`` in the file itself (its SQL functions registered, a page
    cache of ``cache_kib``); an open transaction is rolled back if the block fails, and the connection closed."""
    con = sqlite3.connect(path, isolation_level=None, timeout=timeout)
    try:
        _gpkg_functions(con)
        con.execute(f"PRAGMA cache_size = {-cache_kib}")
        yield con
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()


def _write_in_place(path: Path, layers: dict[str, Layer], frames: dict[str, gpd.GeoDataFrame],
                    deleted: dict[str, list[str]], meta: dict[str, Any] | None, history: pd.DataFrame,
                    log: list[tuple]) -> None:
    """Upsert ``frames``, delete ``deleted`` keys and add the ``history`` rows in the file itself, in one
    transaction (writers' lock held)."""
    # room for every page the transaction changes (a row touches its table page, a dozen index pages and the
    # R-tree's): with SQLite's 2 MB default the cache spills into the file mid-transaction, each spill after
    # a sync of the journal — 4 s instead of 0.6 s for 1,000 rows and their findings at 1M per layer
    with _writer(path, timeout=2, cache_kib=IN_PLACE_CACHE_KB) as con:
        con.execute("BEGIN IMMEDIATE")
        for name, lay in layers.items():
            frame = schema.coerce(lay, frames[name]) if name in frames else empty_frame(lay)
            _rows_into(con, lay, [*deleted.get(name, []), *(str(k) for k in frame[lay.key])], frame)
        _meta_history_log_into(con, meta, history, [], log)
        _indexes_into(con, layers.values())  # those an older file lacks (once; none when it has them all)
        con.execute("COMMIT")


def _rows_into(con: sqlite3.Connection, lay: Layer, gone: Sequence[str], frame: gpd.GeoDataFrame) -> None:
    """Delete the features ``gone`` (keys) of ``lay``, then insert the rows of the coerced ``frame``, in the open
    transaction of a :func:`_writer` (its triggers keep the R-tree and the feature count)."""
    name = lay.name
    con.executemany(f'DELETE FROM "{name}" WHERE "{lay.key}" = ?', [(k,) for k in gone])
    if not len(frame):
        return
    table = _arrow_table(lay, frame)
    has = {r[1] for r in con.execute(f'PRAGMA table_info("{name}")')}  # an older file's table: without newer texts
    table = table.select([n for n in table.column_names if n in has or n == "geom"])
    names = table.column_names
    columns = [table.column(n).to_pylist() for n in names[:-1]]
    geoms = derive.geometry_objects(frame.geometry.values)  # (objects or WKB)
    columns.append(to_gpkg(geo.to_multipolygons(geoms), int(STORE_CRS.split(":")[1])))
    marks = ", ".join("?" * len(names))
    con.executemany(f'INSERT INTO "{name}" ({", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)}) '
                    f"VALUES ({marks})", [tuple(_sql_value(v) for v in row) for row in zip(*columns)])


def _meta_history_log_into(con: sqlite3.Connection, meta: dict | None, history, replaced, log) -> None:
    """A write's meta entries, status history (``replaced``: the layers whose history it replaces) and change-log
    entries, in the open transaction."""
    for key, value in (meta or {}).items():
        con.execute(f"DELETE FROM {META_TABLE} WHERE key = ?", [key])
        con.execute(f"INSERT INTO {META_TABLE} (key, value) VALUES (?, ?)", [key, orjson.dumps(value).decode()])
    _history_into(con, history, replaced)
    _changes_into(con, log)


def _new_boxes(layer: Layer, frame: gpd.GeoDataFrame, entries: list[tuple]) -> dict[str, tuple]:
    """The boxes of ``frame``'s features for change-log ``entries`` (none for a compact replace: no box to log)."""
    return frame_boxes(layer, frame) if any(e[2] != "replace" for e in entries) else {}


#: Seconds a write in the file itself waits for readers to let go before it falls back to a copy.
IN_PLACE_TIMEOUT = 10
#: Page cache of a replace written in the file itself (KiB, as ``PRAGMA cache_size`` takes it negative):
#: a city's findings fit, so SQLite needs no exclusive lock before the commit to spill pages.
_IN_PLACE_CACHE_KIB = 2 * 1024 * 1024
#: Page cache of a move into a writer's private copy (:func:`_move_layers`), which spills to the file unjournaled.
_PRIVATE_CACHE_KIB = 64 * 1024
#: The GeoPackage tables that describe a layer, one row (or a few) per layer under ``table_name``.
_GPKG_LAYER_TABLES = ("gpkg_contents", "gpkg_geometry_columns", "gpkg_extensions", "gpkg_ogr_contents")


def _roll_back_hot_journal(path: Path) -> None:
    """Roll back what a writer killed in the middle of an in-place write left (a hot journal beside the file).

    Read-only connections cannot ("attempt to write a readonly database") and would fail until the next
    write; a read-write connection's first read does it.  The journal of a live writer is not hot: then
    this read just waits for it, as any read would.  Without write access (a read-only deployment) nothing
    is done.
    """
    with contextlib.suppress(sqlite3.Error, OSError), contextlib.closing(sqlite3.connect(path, timeout=5)) as con:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()


def _busy(err: sqlite3.OperationalError) -> bool:
    """Whether ``err`` says another connection holds the file (not a full disk, not a broken file)."""
    return "locked" in str(err) or "busy" in str(err)


@dataclasses.dataclass(frozen=True)
class _Patch:
    """A layer's replace as the rows it changes (:meth:`GeoPackageStore._patch`): the stored features to
    delete (removed, and changed ones written again), the coerced rows to insert, the change-log entries."""

    gone: list[str]
    rows: gpd.GeoDataFrame
    log: list[tuple]


#: A replace is written as its changed rows (:meth:`GeoPackageStore._patch`) while they are at most this share
#: of the layer's rows (new and removed features, and features whose fields or geometry changed).
PATCH_MAX_SHARE = 0.2


def _move_layers(path: Path, sources: dict[str, Path], *, meta: dict[str, Any] | None = None,
                 history: pd.DataFrame | None = None, replaced: Sequence[str] = (), log: Sequence[tuple] = (),
                 patches: dict[str, _Patch] | None = None, timeout: float = IN_PLACE_TIMEOUT,
                 private: bool = False, bare: Collection[str] = (), splice: dict[str, _Pages] | None = None) -> None:
    """Replace the layers of the GeoPackage at ``path`` by those GDAL wrote to the files ``sources`` (layer →
    file; a file may hold several), apply the ``patches`` (layers written as their changed rows), add ``meta``,
    the ``history`` rows (dropping that of ``replaced`` layers first) and the change-log entries ``log``, build
    the indexes the moved layers lack: one transaction.  ``private``: ``path`` is a writer's private copy (thrown
    away if the write fails, flushed once by :func:`_finish`), so the transaction neither syncs nor journals,
    and its pages go to the file as the cache fills (no cache of the whole layer to allocate and write at the
    commit).  ``bare``: layers (among ``sources``) moved in last, without building their indexes.  ``splice``:
    layers (each alone in its file, with its indexes) and their pages, put into a private ``path`` as they are after
    the transaction where the files allow it (:func:`_splice_layer`), instead of SQLite copying their rows."""
    files = list(dict.fromkeys(sources.values()))
    alias = {file: f"aux{k}" for k, file in enumerate(files)}
    splice = splice or {}
    with _writer(path, timeout=timeout, cache_kib=_PRIVATE_CACHE_KIB if private else _IN_PLACE_CACHE_KIB) as con:
        if private:
            con.execute("PRAGMA synchronous = OFF")
            con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA temp_store = MEMORY")
        con.execute("PRAGMA threads = 2")
        for file in files:
            con.execute(f"ATTACH DATABASE ? AS {alias[file]}", [str(file)])
        con.execute("BEGIN IMMEDIATE")
        spliced = {}
        for name, file in sources.items():
            if name not in bare:
                rows = not (private and name in splice and _spliceable(con, name, alias[file]))
                _move_layer(con, name, alias[file], rows=rows)
                if not rows:
                    spliced[name] = file
        for name, patch in (patches or {}).items():
            _rows_into(con, store_layer(name), patch.gone, patch.rows)
        if meta or history is not None or log:
            _meta_history_log_into(con, meta, hist.empty() if history is None else history, list(replaced),
                                   list(log))
        # the moved layers' indexes, and those a patched layer of an older file lacks (once)
        _finish(path, [store_layer(name) for name in [*sources, *(patches or {})] if name not in bare], con=con)
        for name in bare:  # after the others' indexes: the file's objects in the order of before
            _move_layer(con, name, alias[sources[name]])
        con.execute("COMMIT")
        for file in files:
            con.execute(f"DETACH DATABASE {alias[file]}")
    for name, file in spliced.items():
        _splice_layer(path, file, splice[name])


def _move_layer(con: sqlite3.Connection, name: str, aux: str = "aux", *, rows: bool = True) -> None:
    """Layer ``name`` of the attached GeoPackage ``aux`` in place of ``main``'s, in the open transaction.

    The table's indexes that ``aux`` has are created empty before its rows are copied, so SQLite copies
    their entries in order (its transfer optimisation: no sort).  The R-tree's nodes are copied as GDAL
    packed them when both files have the same page size (the node size follows it), else its entries are
    inserted again.  Triggers come last: the rows copied in do not fire them (the R-tree has them already).
    Without ``rows`` the table, its indexes and R-tree are left empty and the table's ``AUTOINCREMENT`` counter
    is taken over: :func:`_splice_layer` puts their pages in after the transaction.
    """
    rtree = f"rtree_{name}_geom"
    con.execute(f'DROP TABLE IF EXISTS main."{rtree}"')
    con.execute(f'DROP TABLE IF EXISTS main."{name}"')  # its indexes and triggers with it
    objects = con.execute(f"SELECT type, sql FROM {aux}.sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
                          "ORDER BY type = 'trigger', type = 'index'", [name]).fetchall()
    for kind, ddl in objects:
        if kind in ("table", "index"):
            con.execute(ddl)
    if not rows:
        con.execute("INSERT INTO main.sqlite_sequence (name, seq) SELECT name, seq FROM "
                    f"{aux}.sqlite_sequence WHERE name = ?", [name])
    elif con.execute(f'SELECT 1 FROM {aux}."{name}" LIMIT 1').fetchone():  # (no sequence row for an empty table)
        con.execute(f'INSERT INTO main."{name}" SELECT * FROM {aux}."{name}"')
    tree = con.execute(f"SELECT sql FROM {aux}.sqlite_master WHERE name = ?", [rtree]).fetchone()
    if tree is not None:
        con.execute(tree[0])
    if tree is not None and rows:
        pages = [con.execute(f"PRAGMA {db}.page_size").fetchone()[0] for db in ("main", aux)]
        if pages[0] == pages[1]:
            for part in ("node", "rowid", "parent"):
                con.execute(f'DELETE FROM main."{rtree}_{part}"')
                con.execute(f'INSERT INTO main."{rtree}_{part}" SELECT * FROM {aux}."{rtree}_{part}"')
        else:
            con.execute(f'INSERT INTO main."{rtree}" SELECT * FROM {aux}."{rtree}"')
    for kind, ddl in objects:
        if kind == "trigger":
            con.execute(ddl)
    for table in _GPKG_LAYER_TABLES:
        columns = [_columns(con, db, table) for db in ("main", aux)]
        shared = ", ".join(f'"{c}"' for c in columns[0] if c in columns[1])
        if not shared:
            continue
        con.execute(f"DELETE FROM main.{table} WHERE lower(table_name) = lower(?)", [name])
        con.execute(f"INSERT INTO main.{table} ({shared}) SELECT {shared} FROM {aux}.{table} "
                    "WHERE lower(table_name) = lower(?)", [name])
    columns = [_columns(con, db, "gpkg_spatial_ref_sys") for db in ("main", aux)]
    shared = ", ".join(f'"{c}"' for c in columns[0] if c in columns[1])
    if not shared:  # (a plain table: the history, :func:`_move_history`)
        return
    con.execute(f"INSERT OR IGNORE INTO main.gpkg_spatial_ref_sys ({shared}) SELECT {shared} "
                f"FROM {aux}.gpkg_spatial_ref_sys WHERE srs_id IN (SELECT srs_id FROM {aux}.gpkg_contents "
                "WHERE lower(table_name) = lower(?))", [name])


def _spliceable(con: sqlite3.Connection, name: str, aux: str) -> bool:
    """Whether layer ``name`` of the attached file ``aux`` can be moved into ``main`` page by page
    (:func:`_splice_layer`) rather than row by row: ``main`` lacks the layer and has no free pages (the layer's
    pages then go after its last page), both files have the same page size, no reserved bytes per page, the same
    text encoding, no pointer-map pages (auto-vacuum) and a rollback journal (not a write-ahead log: the file
    holds every committed page)."""
    if con.execute("SELECT 1 FROM main.sqlite_master WHERE tbl_name = ?", [name]).fetchone() or \
            con.execute("PRAGMA main.freelist_count").fetchone()[0]:
        return False
    files = {r[1]: r[2] for r in con.execute("PRAGMA database_list")}
    heads = []
    for db in ("main", aux):
        if not files.get(db):
            return False
        with open(files[db], "rb") as fh:
            head = fh.read(100)
        heads.append((head[16:18], head[56:60]))  # page size, text encoding
        if head[20] or head[52:56] != bytes(4) or head[64:68] != bytes(4) or 2 in (head[18], head[19]):
            return False
    return heads[0] == heads[1]


@dataclasses.dataclass(frozen=True)
class _Pages:
    """The b-trees of a layer in a GeoPackage file, page by page (:func:`_layer_pages`)."""

    name: str
    roots: dict[str, int]  # b-tree (table, index) → its root page
    others: np.ndarray  # the other pages of those b-trees, in order
    # the pages holding page numbers (interior pages, overflow pages, pages with cells that overflow: the cells'
    # numbers) and the roots: page → (whether an overflow page, the cells that overflow)
    numbered: dict[int, tuple[bool, list[int]]]
    page_size: int


def _b_trees(con: sqlite3.Connection, name: str) -> dict[str, int]:
    """The b-trees of layer ``name`` (its table, their indexes, its R-tree's tables) and their root pages."""
    shadow = [f"rtree_{name}_geom_{part}" for part in ("node", "rowid", "parent")]
    return dict(con.execute("SELECT name, rootpage FROM sqlite_master WHERE rootpage > 0 AND "
                            "(tbl_name = ? OR name IN (?, ?, ?))", [name, *shadow]))


def _layer_pages(path: Path, name: str) -> _Pages | None:
    """Every page of layer ``name``'s b-trees in the GeoPackage at ``path`` (for :func:`_splice_layer`), or ``None``
    when SQLite cannot list them (built without its ``dbstat`` table).  SQLite reads each page for it: ~1–2 s for
    a million permits, so it is done as soon as their child is done, while the other child still writes."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as con:
        con.execute(f"PRAGMA mmap_size = {_COPY_MMAP_BYTES}")
        roots = _b_trees(con, name)
        pages: list[tuple[str, int, str, str]] = []  # (b-tree, page, kind, its path from the root)
        try:
            for obj in roots:
                pages.extend(con.execute("SELECT name, pageno, pagetype, path FROM dbstat WHERE name = ?", [obj]))
        except sqlite3.OperationalError:
            return None
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
    top = set(roots.values())
    numbered: dict[int, tuple[bool, list[int]]] = {n: (k == "overflow", []) for _, n, k, _ in pages
                                                   if k != "leaf" or n in top}
    where = {(obj, at): number for obj, number, _, at in pages}
    for obj, _, kind, at in pages:
        if kind == "overflow" and at.endswith("+000000"):  # "<its page's path><cell, hex>+<its rank, hex>"
            cut = at.rindex("/") + 1
            numbered.setdefault(where[obj, at[:cut]], (False, []))[1].append(int(at[cut:].split("+")[0], 16))
    others = np.array(sorted(n for _, n, _, _ in pages if n not in top), dtype=np.int64)
    return _Pages(name, roots, others, numbered, page_size)


def _splice_layer(path: Path, source: Path, layer: _Pages) -> None:
    """Put the pages of a layer (its table, indexes and R-tree) of the GeoPackage ``source``, listed in ``layer``,
    after the last page of the one at ``path``, where :func:`_move_layer` (``rows=False``) created them empty.

    The kernel copies the pages (``copy_file_range``) and the page numbers they hold (child pages, overflow
    chains) are renumbered; each b-tree's root takes the place of the empty root, so the schema stays as
    :func:`_move_layer` made it.  The same rows, index entries and R-tree nodes as SQLite's copy
    (``INSERT … SELECT``), without SQLite reading, packing and writing again the 1.3 GB of pages of a million
    permits (~4 s of one core).  No connection may be open on ``path``; :func:`_spliceable` said the files allow it.
    """
    name, numbers, page_size = layer.name, layer.others, layer.page_size
    with contextlib.closing(sqlite3.connect(path)) as con:
        empty = _b_trees(con, name)
    if set(empty) != set(layer.roots):
        raise StoreError(f"moving layer {name}: the tables and indexes of {path} are not those of {source}")
    roots = {layer.roots[obj]: empty[obj] for obj in empty}
    with open(path, "r+b") as dst, open(source, "rb") as src:
        head = bytearray(os.pread(dst.fileno(), 100, 0))
        last = int.from_bytes(head[28:32], "big")
        if os.fstat(dst.fileno()).st_size != last * page_size:
            raise StoreError(f"moving layer {name}: {path} is not {last} pages long")
        renumber = np.zeros(max([*numbers[-1:].tolist(), *roots]) + 1, dtype=np.int64)
        targets = _pages_after(last, len(numbers), page_size)
        renumber[numbers] = targets
        for old, new in roots.items():
            renumber[old] = new
        # runs of pages that follow each other in both files
        cuts = np.flatnonzero((np.diff(numbers) != 1) | (np.diff(targets) != 1)) + 1
        for run in np.split(numbers, cuts) if len(numbers) else []:
            _copy_range(src.fileno(), dst.fileno(), (int(run[0]) - 1) * page_size, len(run) * page_size,
                        (int(renumber[run[0]]) - 1) * page_size)
        # again, renumbered: the pages holding page numbers, and the roots in their places
        for number, (overflow, spilled) in sorted(layer.numbered.items()):
            page = bytearray(os.pread(src.fileno(), page_size, (number - 1) * page_size))
            _renumber_page(page, renumber, overflow, spilled)
            os.pwrite(dst.fileno(), page, (int(renumber[number]) - 1) * page_size)
        # the header: the new length, and the change counter raised as a commit raises it
        counter = ((int.from_bytes(head[24:28], "big") + 1) & 0xFFFFFFFF).to_bytes(4, "big")
        head[24:28], head[92:96] = counter, counter
        head[28:32] = int(targets[-1] if len(targets) else last).to_bytes(4, "big")
        os.pwrite(dst.fileno(), bytes(head), 0)


#: SQLite's lock-byte page is the one holding this offset: it never holds data (reading it is an error).
_LOCK_BYTE = 0x40000000


def _pages_after(last: int, count: int, page_size: int) -> np.ndarray:
    """The numbers of ``count`` new pages after page ``last`` of a SQLite file with pages of ``page_size`` bytes:
    the next ones, but never the lock-byte page (the one at 1 GiB: a file growing past it leaves it unused)."""
    numbers = last + 1 + np.arange(count, dtype=np.int64)
    lock = _LOCK_BYTE // page_size + 1
    if last < lock:
        numbers[numbers >= lock] += 1
    return numbers


def _copy_range(src: int, dst: int, offset: int, count: int, target: int) -> None:
    """Copy ``count`` bytes of file ``src`` from ``offset`` to file ``dst`` at ``target``, in the kernel (by
    reading and writing where the file system refuses, or copies nothing: some do)."""
    while count:
        try:
            done = os.copy_file_range(src, dst, count, offset, target)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            done = 0
        if done <= 0:
            done = os.pwrite(dst, os.pread(src, min(count, 1 << 24), offset), target)
        if done <= 0:
            raise OSError(f"copying {count} bytes at {offset} stopped")
        offset, target, count = offset + done, target + done, count - done


def _renumber_page(page: bytearray, renumber: np.ndarray, overflow: bool, spilled: Sequence[int]) -> None:
    """Renumber the page numbers a SQLite page holds (file format: https://sqlite.org/fileformat2.html): the next
    page of an ``overflow`` page; the child pages of an interior b-tree page; the first overflow page of its
    cells numbered ``spilled``.  No page is page 1 (no file header in it)."""
    def put(at: int) -> None:
        old = int.from_bytes(page[at:at + 4], "big")
        if not 0 < old < len(renumber) or not renumber[old]:
            raise StoreError(f"page number {old} is not the layer's")
        page[at:at + 4] = int(renumber[old]).to_bytes(4, "big")

    if overflow:
        if int.from_bytes(page[:4], "big"):
            put(0)
        return
    kind, cells = page[0], int.from_bytes(page[3:5], "big")
    interior = kind in (2, 5)  # index, table
    header = 12 if interior else 8
    starts = np.frombuffer(bytes(page[header:header + 2 * cells]), dtype=">u2").astype(np.int64)
    if interior:  # each cell starts with its child's number (4 bytes, big-endian)
        put(8)  # the right-most child
        view = np.frombuffer(page, dtype=np.uint8)  # (writable: the bytearray's memory)
        slots = starts[:, None] + np.arange(4)
        shifts = np.array([24, 16, 8, 0])
        old = (view[slots].astype(np.int64) << shifts).sum(axis=1)
        if len(old) and (old.max() >= len(renumber) or not renumber[old].all()):
            raise StoreError("a child page is not the layer's")
        view[slots] = (renumber[old][:, None] >> shifts) & 0xFF
    usable = len(page)
    for cell in spilled:
        at = int(starts[cell]) + (4 if interior else 0)
        size, at = _varint(page, at)
        if kind == 13:  # a table's leaf: the rowid, then the payload
            _, at = _varint(page, at)
        largest = usable - 35 if kind == 13 else (usable - 12) * 64 // 255 - 23
        least = (usable - 12) * 32 // 255 - 23
        local = least + (size - least) % (usable - 4)
        put(at + (local if local <= largest else least))


def _varint(data: bytearray, at: int) -> tuple[int, int]:
    """SQLite's variable-length integer at ``at``: its value and where the next field starts."""
    value = 0
    for k in range(8):
        byte = data[at + k]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + k + 1
    return (value << 8) | data[at + 8], at + 9


def _columns(con: sqlite3.Connection, db: str, table: str) -> list[str]:
    """The columns of ``db``'s ``table`` (none when it lacks the table)."""
    return [r[1] for r in con.execute(f'PRAGMA {db}.table_info("{table}")')]


def _remove_leftovers(path: Path) -> None:
    """Delete copies left by writers that were killed (their process is gone).

    Called with the writers' lock held, so no live writer's copy is touched.
    """
    for tmp in path.parent.glob(f".{path.stem}.*.tmp.gpkg*"):
        pid = tmp.name[len(path.stem) + 2:].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _copy_connection(path: Path) -> sqlite3.Connection:
    """A connection to a writer's private copy of the store, set for bulk work.

    Nobody else opens the copy and it is thrown away when the write fails, so
    SQLite need not sync each transaction (the copy is flushed once, in
    :func:`_finish`, before it replaces the file), may keep its rollback
    journal in memory, and gets 256 MB of page cache and in-memory temporary
    sorts: building the indexes of a million-row layer then does not spill to disk.  The copy is
    memory-mapped (no other process writes it, so no SIGBUS from a file changed underneath) and sorts may
    use a second thread: each index build scans the whole table, which then needs no copy from the
    file cache into SQLite's.
    """
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous = OFF")
    con.execute("PRAGMA cache_size = -262144")
    con.execute("PRAGMA temp_store = MEMORY")
    con.execute(f"PRAGMA mmap_size = {_COPY_MMAP_BYTES}")
    con.execute("PRAGMA threads = 2")
    if con.execute("PRAGMA journal_mode").fetchone()[0].lower() == "delete":
        con.execute("PRAGMA journal_mode = MEMORY")
    return con


#: How much of a writer's private copy SQLite may memory-map (:func:`_copy_connection`).
_COPY_MMAP_BYTES = 1 << 36


def _copy(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite file (called with the writers' lock held).

    With no rollback journal or write-ahead log beside the file, nothing is
    half-written (every writer holds the lock, readers never write): the
    file is copied by the kernel (``copy_file_range``), several times faster
    than SQLite's page-by-page backup of a gigabyte store.  Otherwise (a writer
    was killed mid-transaction: SQLite must roll back first) the online backup API.
    """
    if not any(src.with_name(src.name + suffix).exists() for suffix in ("-journal", "-wal")):
        shutil.copyfile(src, dst)
        return
    with contextlib.closing(sqlite3.connect(src)) as s, contextlib.closing(_copy_connection(dst)) as d:
        s.backup(d)


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive lock beside ``path`` so that writers never interleave."""
    with open(path.with_name(f".{path.name}.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _field_arrays(layer: Layer, frame: gpd.GeoDataFrame) -> list[pa.Array]:
    """The fields of a coerced frame as the GeoPackage table holds them (dates as date32, ints as int32), column
    by column (no Python object per value)."""
    arrays = []
    for f in layer.fields:
        col = frame[f.name]
        if f.type == "date":
            values = pa.array(pd.Series(col).to_numpy(dtype="datetime64[D]"), type=pa.date32(), from_pandas=True)
        elif f.type == "int":
            values = pa.array(pd.Series(col).astype("Int64"), type=pa.int64(), from_pandas=True).cast(pa.int32())
        elif f.type == "float":
            values = pa.array(pd.Series(col).to_numpy(dtype="float64", na_value=np.nan), type=pa.float64(),
                              from_pandas=True)
        else:
            values = derive.arrow_strings(col)
        arrays.append(values)
    return arrays


def _arrow_table(layer: Layer, frame: gpd.GeoDataFrame) -> pa.Table:
    """The rows of a coerced frame as the GeoPackage table holds them: :func:`_field_arrays`, the search texts,
    the GeoJSON and the WKB (no Python object per value: :func:`gisapp.store.base.derived_columns`)."""
    arrays: list = _field_arrays(layer, frame)
    names = list(layer.field_names)
    derived = derived_columns(layer, frame)
    for name in (SEARCH_COLUMN, PERSONAL_SEARCH_COLUMN, GEOJSON_COLUMN):
        arrays.append(derived[name])
        names.append(name)
    for name, values in stored_properties(layer, {n: _read_back(a) for n, a in zip(layer.field_names, arrays)}).items():
        arrays.append(values)
        names.append(name)
    arrays.append(derived["wkb"])
    names.append("geom")
    field_meta = {b"ARROW:extension:name": b"geoarrow.wkb"}
    arrow_schema = pa.schema([pa.field(n, a.type, nullable=n != GEOJSON_COLUMN)  # NOT NULL: always written
                              for n, a in zip(names[:-1], arrays[:-1])]
                             + [pa.field("geom", pa.binary(), metadata=field_meta)])
    return pa.Table.from_arrays(arrays, schema=arrow_schema)


def _read_back(values: pa.Array) -> pa.Array:
    """A field's values as SQLite reads them back (what the stored properties' text must show): a REAL -0.0 is
    stored as the integer 0 and read as 0.0 (-0.0 + 0.0 is 0.0)."""
    return pc.add(values, 0.0) if pa.types.is_floating(values.type) else values


def _stored_rows(path: Path, layer: Layer) -> tuple[dict, pa.Table] | None:
    """GDAL's read of the fields and geometry (GeoPackage blobs) of ``layer``'s stored rows, in fid order
    (``None`` when the file's table lacks a field: written otherwise)."""
    try:
        return pyogrio.read_arrow(path, sql=f'SELECT {", ".join(layer.field_names)}, geom FROM "{layer.name}"')
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.FieldError):
        return None


def _write_layer(path: Path, layer: Layer, frame: gpd.GeoDataFrame) -> None:
    pyogrio.write_arrow(
        _arrow_table(layer, frame), path, layer=layer.name, driver="GPKG",
        geometry_name="geom", geometry_type=layer.geometry, crs=STORE_CRS, layer_options=_layer_options(layer),
    )


def _layer_options(layer: Layer) -> dict[str, str]:
    """GDAL's options for writing ``layer``."""
    return {"OVERWRITE": "YES", "FID": "fid", "DESCRIPTION": layer.en}


def _write_meta(path: Path, meta: dict) -> None:
    table = pa.table({"key": pa.array(list(meta), pa.string()),
                      "value": pa.array([orjson.dumps(v).decode() for v in meta.values()], pa.string())})
    pyogrio.write_arrow(table, path, layer=META_TABLE, driver="GPKG", layer_options={"OVERWRITE": "YES"})


def _append_changes(path: Path, entries: list[tuple]) -> None:
    """Append a write's change-log entries to the copy being written (created with its id when missing).

    Writers hold the file lock and the copy replaces the file atomically, so numbering on from the last
    ``seq`` in the copy is in commit order and no reader sees a half-written log.
    """
    with contextlib.closing(_copy_connection(path)) as con:
        _changes_into(con, entries)
        con.commit()


def _changes_into(con: sqlite3.Connection, entries: list[tuple]) -> None:
    """:func:`_append_changes` on an open connection, in its transaction."""
    time = change_time()
    con.execute(f"CREATE TABLE IF NOT EXISTS {CHANGES_TABLE} (seq INTEGER PRIMARY KEY, layer TEXT NOT NULL, "
                "key TEXT, kind TEXT NOT NULL, status TEXT, changed_at TEXT NOT NULL, "
                "minx REAL, miny REAL, maxx REAL, maxy REAL)")
    if not _has_boxes(con):  # a log from before the boxes: entries without one count as anywhere
        for column in BOX_COLUMNS:
            con.execute(f"ALTER TABLE {CHANGES_TABLE} ADD COLUMN {column} REAL")
    con.execute(f"CREATE TABLE IF NOT EXISTS {CHANGE_LOG_TABLE} (id TEXT NOT NULL)")
    if con.execute(f"SELECT count(*) FROM {CHANGE_LOG_TABLE}").fetchone()[0] == 0:
        con.execute(f"INSERT INTO {CHANGE_LOG_TABLE} (id) VALUES (?)", [uuid.uuid4().hex])
    last = con.execute(f"SELECT coalesce(max(seq), 0) FROM {CHANGES_TABLE}").fetchone()[0]
    con.executemany(f"INSERT INTO {CHANGES_TABLE} (seq, layer, key, kind, status, {', '.join(BOX_COLUMNS)}, "
                    "changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    ((last + i, *entry, time) for i, entry in enumerate(entries, start=1)))


#: The change log's box of each entry (:attr:`gisapp.store.base.Change.bbox`), EPSG:5899.
BOX_COLUMNS = ("minx", "miny", "maxx", "maxy")


def _has_boxes(con: sqlite3.Connection) -> bool:
    """Whether the file's change log has the box columns (logs written before them do not)."""
    return "minx" in {r[1] for r in con.execute(f"PRAGMA table_info({CHANGES_TABLE})")}


def _finish(path: Path, layers, con: sqlite3.Connection | None = None) -> None:
    """Indexes on the filter fields and the key; then flush to disk.

    With ``con`` (a write in the file itself, :func:`_move_layers`): the indexes are built in its
    transaction, which the caller commits.
    """
    if con is not None:
        _indexes_into(con, layers)
        return
    with contextlib.closing(_copy_connection(path)) as con:
        _indexes_into(con, layers)
        con.commit()
        con.execute("PRAGMA wal_checkpoint")
    _fsync(path)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _indexes_into(con: sqlite3.Connection, layers) -> None:
    """:func:`_finish`'s indexes, on an open connection."""
    for lay in layers:
        for sql in _index_statements(lay):
            con.execute(sql)


def _index_statements(lay: Layer) -> list[str]:
    """The ``CREATE INDEX`` statements of a layer's table (on the filter fields and the key).

    None on (fid, key) any more: a bbox search orders its matches by the key order kept per file version
    (:meth:`GeoPackageStore._key_ranks`), and reads rows by fid only in the moment that order is read (1.1 →
    1.4 ms a street view at 1M; it cost ~0.8–1.2 s of CPU per 1M layer to build).  ``construction_dossier_code``
    (``Filter.dossiers``: a dossier's page) has a partial index of the permits naming a dossier only (~27 %);
    ``a_id`` and ``b_id`` (``Filter.involving``) one each.  Files written before keep the indexes they have, and
    get those they lack with the next write of that layer, whole or in place (until then those filters scan).
    """
    out: list[str] = []
    ward_dates = "ward_code" in lay.field_names and bool(lay.date_field)
    # the ward filter's index is (ward_code, dates) when the layer has dates: SQLite picks that one (covering)
    # for ``ward_code IN (…)`` whether or not an index on ward_code alone exists, so none is built (a sort of
    # the whole table less per large layer)
    cols = [c for c in (lay.key, *_INDEXED) if c in lay.field_names and not (c == "ward_code" and ward_dates)]
    for c in dict.fromkeys(cols):
        unique = "UNIQUE " if c == lay.key else ""
        out.append(f'CREATE {unique}INDEX IF NOT EXISTS "ix_{lay.name}_{c}" ON "{lay.name}" ({c})')
    if "construction_dossier_code" in lay.field_names:  # the permits naming a dossier (its page), no others
        out.append(f'CREATE INDEX IF NOT EXISTS "ix_{lay.name}_construction_dossier_code" ON "{lay.name}" '
                   "(construction_dossier_code) WHERE construction_dossier_code IS NOT NULL")
    if lay.works_start_fields:  # the day filter's works period (dossiers)
        out.append(f'CREATE INDEX IF NOT EXISTS "ix_{lay.name}_works_start" ON "{lay.name}" '
                   f"({works_start_expression(lay)})")
    if ward_dates:  # per-ward counts as of a day (the map's
        # zoomed-out view, the dashboard's sidewalk permits) from this index alone, not a row per feature
        dates = ", ".join(dict.fromkeys(f for f in (lay.date_field, lay.end_date_field) if f))
        out.append(f'CREATE INDEX IF NOT EXISTS "ix_{lay.name}_ward_dates" ON "{lay.name}" (ward_code, {dates})')
    return out


#: Layers of at least this many features are written by a child process (:class:`_LayerFiles`); smaller ones
#: (the 1M city's 167,577 sidewalks) are written here while the children write (this process waits anyway).
CHILD_ROWS = 200_000

#: Rows per Arrow batch a child of :class:`_LayerFiles` is sent (derived here one batch after the other, written by
#: GDAL there meanwhile).
STREAM_ROWS = 100_000

#: What a child of :class:`_LayerFiles` runs (``python -c``): GDAL writes the layer from the Arrow stream on its
#: standard input (batch by batch, as the writer derives them) into a GeoPackage, then SQLite builds the layer's
#: indexes there, and runs the job's statements ``after`` (a new store's history rows: :meth:`_LayerFiles.start`).
#: Only pyarrow and pyogrio are imported (no gisapp: a fraction of a second to start).
_CHILD_CODE = """
import json, sqlite3, sys
import pyarrow as pa
import pyogrio
job = json.loads(sys.argv[1])
pyogrio.set_gdal_config_options(job["gdal"])
with pa.ipc.open_stream(sys.stdin.buffer) as stream:
    pyogrio.write_arrow(stream, job["path"], layer=job["layer"], driver="GPKG", geometry_name="geom",
                        geometry_type=job["geometry_type"], crs=job["crs"], layer_options=job["options"])
con = sqlite3.connect(job["path"], isolation_level=None)
for pragma in job["pragmas"]:
    con.execute(pragma)
con.execute("BEGIN")
for sql in job["indexes"]:
    con.execute(sql)
con.execute("COMMIT")
for sql, params in job.get("after", []):
    con.execute(sql, params)
con.close()
"""


#: GDAL's settings in a child of :class:`_LayerFiles`: the file it writes is private to the writer (thrown away
#: if the write fails, flushed once before it replaces the store), so SQLite neither syncs nor journals it, and
#: 1 GB of page cache keeps the pages GDAL fills (table, R-tree) from being written out and read back meanwhile.
_CHILD_GDAL_OPTIONS = {"OGR_SQLITE_SYNCHRONOUS": "OFF", "OGR_SQLITE_JOURNAL": "OFF", "OGR_SQLITE_CACHE": "1024"}


class _LayerFiles:
    """Large layers written by GDAL in child processes, with their indexes, while the writer goes on: each into a
    GeoPackage of its own, moved into the store by :func:`_move_layers` once done (a replace in the store itself),
    or one after the other straight into the writer's private copy of the store (a new store: moving a layer of a
    million rows in costs about a third of writing it).

    GDAL's write holds Python's interpreter lock all along (pyogrio), and it and the index builds are most of a
    large write: in a child they use the other core while this process derives the columns.  The rows go to the
    child as an Arrow IPC stream on its standard input, :data:`STREAM_ROWS` at a time, so the child writes the
    first rows while the next are derived here (a thread feeds the pipe from a queue of batches: deriving never
    waits for GDAL).  Files are named as the writer's other private files, so leftovers of a killed writer are
    removed (:func:`_remove_leftovers`).  While a child writes into the copy, small layers go to :attr:`side`,
    moved in with the others.
    """

    def __init__(self, base: Path, *, new: bool = False) -> None:
        """``base``: the writer's private copy (its name gives the files' names); ``new``: of a new store, into
        which the layers written apart are moved as their pages (:attr:`pages`)."""
        self._base = base
        self._new = new
        self._stem = base.name.removesuffix(".tmp.gpkg")
        # layer → (its rows' derivation; its child, once started; its GeoPackage; its error file; whether moved in)
        self._jobs: dict[str, tuple[Future, Future, Path, Path, bool]] = {}
        self._last_into: Future | None = None  # the child writing into the copy, for the next one to wait for
        # a thread per child feeding its pipe, and per layer deriving its rows: every large layer at once
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gisapp-layer-files")
        self._derivers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="gisapp-layer-rows")
        self._side: list[str] = []
        self._order: list[str] = []  # the layers in the order they were given
        self._stop = threading.Event()
        self.side = self._file("small")
        self._flushes: list[Future] = []  # (:meth:`flush_behind`)
        self._planned: dict[str, Future] = {}  # layer → its pages in its own file, once its child is done
        # a new store's layers whose history rows go into :attr:`history_file` (:meth:`history`), in order: the
        # file each is read from, or None where its child adds them itself
        self._history: list[tuple[str, Path | None]] = []
        self.history_file = self._file("history")
        self.pages: dict[str, _Pages] = {}  # (:meth:`wait`)

    def _file(self, part: str) -> Path:
        return self._base.with_name(f"{self._stem}.{part}.tmp.gpkg")

    def __bool__(self) -> bool:
        """Whether there are layers to move in (:meth:`wait`)."""
        return bool(self._jobs or self._side)

    def write_small(self, layer: Layer, frame: gpd.GeoDataFrame, into: Path | None = None) -> None:
        """Write a small layer here: into ``into`` when given and no child writes, else into :attr:`side`
        (moved in by :meth:`wait`)."""
        if into is not None and not self._jobs:
            _write_layer(into, layer, frame)
            return
        with derive.reserve_cores(1):  # a child writes meanwhile
            _write_layer(self.side, layer, frame)
        self._side.append(layer.name)
        self._order.append(layer.name)

    def write_meta(self, meta: dict, into: Path) -> None:
        """Write the meta table (:func:`_write_meta`) into ``into`` when no child writes, else into :attr:`side`."""
        if not self._jobs:
            _write_meta(into, meta)
            return
        _write_meta(self.side, meta)
        self._side.append(META_TABLE)
        self._order.append(META_TABLE)

    def start(self, layer: Layer, frame: gpd.GeoDataFrame, *, into: Path | None = None,
              history: dt.datetime | None = None) -> bool:
        """Write ``frame`` (coerced) as ``layer`` in a child process, into ``into`` (after the child writing there
        before is done; else into a file of its own): its rows are derived here, a batch at a time, and sent to
        the child meanwhile; ``False`` (nothing done) when the layer is too small to be worth a process
        (:meth:`write_small`).  ``history``: the time of a new store's history rows of this layer (one per
        feature, :func:`_history_from_layers`), which go to :attr:`history_file` (:meth:`history`)."""
        if len(frame) < CHILD_ROWS:
            return False
        copy = into is not None and self._new
        if into is not None and self._last_into is not None:
            into = None  # a child writes the copy already: this one writes a file of its own at the same time
        path = into or self._file(layer.name)
        errors = self._file(layer.name).with_name(self._file(layer.name).name + ".err")
        if into is None:
            path.unlink(missing_ok=True)
        after: list = []
        if history is not None:  # the child writing into the copy adds the rows itself (the first layer's)
            if into is not None and not self._history:
                after = [["ATTACH DATABASE ? AS h", [str(self.history_file)]], ["PRAGMA h.journal_mode = OFF", []],
                         ["PRAGMA h.synchronous = OFF", []], [_history_table_sql("h"), []],
                         list(_history_rows_sql(layer.name, history, into="h"))]
            self._history.append((layer.name, None if after else path))
        job = {"path": str(path), "layer": layer.name, "geometry_type": layer.geometry, "after": after,
               "crs": STORE_CRS, "options": _layer_options(layer), "indexes": _index_statements(layer),
               "gdal": _CHILD_GDAL_OPTIONS,
               "pragmas": ["PRAGMA synchronous = OFF", "PRAGMA cache_size = -262144", "PRAGMA temp_store = MEMORY",
                           f"PRAGMA mmap_size = {_COPY_MMAP_BYTES}", "PRAGMA threads = 0"]
               + ([] if into else ["PRAGMA journal_mode = OFF"])}
        before = self._last_into if into is not None else None
        frame = frame.copy(deep=False)  # read by a thread: a frame object of its own (pandas caches columns)
        batches: queue.SimpleQueue = queue.SimpleQueue()
        stop = self._stop

        def feed() -> subprocess.Popen:
            batch = batches.get()  # the first batch (or the error that stopped deriving, or None: no rows)
            if not isinstance(batch, pa.RecordBatch):
                raise OSError(f"no rows of layer {layer.name} to write")
            if before is not None:
                before.result().wait()  # one writer of the copy at a time
            with open(errors, "wb") as err:
                child = subprocess.Popen([sys.executable, "-c", _CHILD_CODE, json.dumps(job)],
                                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
            assert child.stdin is not None
            try:
                # Arrow writes to the pipe without the interpreter lock: this process derives meanwhile
                out = pa.ipc.new_stream(child.stdin, batch.schema)
                while isinstance(batch, pa.RecordBatch) and not stop.is_set():
                    out.write_batch(batch)
                    batch = batches.get()
                if batch is None and not stop.is_set():
                    out.close()  # the end-of-stream mark: every row was sent
                else:  # deriving failed, or the write was given up: the child must not end the layer
                    child.kill()
            except OSError:  # the child failed (a broken pipe): its error file says why (:meth:`wait`)
                pass
            with contextlib.suppress(OSError):
                child.stdin.close()
            return child

        def derive_rows() -> None:
            done: object = None
            try:
                arrow_schema = None
                for begin in range(0, len(frame), STREAM_ROWS):
                    if stop.is_set():
                        done = OSError("the write was given up")
                        return
                    part = _arrow_table(layer, frame.iloc[begin:begin + STREAM_ROWS])
                    arrow_schema = arrow_schema or part.schema
                    for batch in part.cast(arrow_schema).to_batches(max_chunksize=STREAM_ROWS):
                        batches.put(batch)
            except BaseException as err:
                done = err
                raise
            finally:
                batches.put(done)  # the end of the rows, or why they end early

        launched = self._pool.submit(feed)
        if into is not None:
            self._last_into = launched
        elif copy:  # to be moved into a new store's copy: its pages listed as soon as its child is done
            self._planned[layer.name] = self._pool.submit(self._pages_when_done, launched, path, layer.name)
        self._jobs[layer.name] = (self._derivers.submit(derive_rows), launched, path, errors, into is None)
        self._order.append(layer.name)
        return True

    def wait(self) -> dict[str, Path]:
        """The file of each layer to move in (those written into files of their own, and the small ones of
        :attr:`side`), once every child is done (``OSError`` naming the layer if one failed)."""
        for name, (derived, launched, _, errors, _) in self._jobs.items():
            derived.result()  # the error that stopped deriving the rows, if one did
            child = launched.result()
            if child.wait() != 0:
                lines = errors.read_bytes().decode(errors="replace").strip().splitlines()
                raise OSError(f"writing layer {name} failed: {lines[-1] if lines else f'exit {child.returncode}'}")
        self.pages = {name: pages for name, planned in self._planned.items() if (pages := planned.result())}
        files = {**{name: path for name, (_, _, path, _, apart) in self._jobs.items() if apart},
                 **{name: self.side for name in self._side}}
        return {name: files[name] for name in self._order if name in files}

    def history(self, fresh: Sequence[str], when: dt.datetime | None) -> Future | None:
        """Once the children are done: the history rows of the ``fresh`` layers (:func:`_history_from_layers`,
        dated ``when``) read in a thread into :attr:`history_file` from the children's files (the rows of the
        layer written into the copy are there already) and indexed there, while the writer moves the layers in;
        the future's result: :func:`_layer_pages` of that file.  ``None`` when some of those layers were not
        written by a child (:meth:`start`): then the history is written in the copy."""
        if when is None or [name for name, _ in self._history] != list(fresh):
            return None
        files = [(name, file) for name, file in self._history if file is not None]
        return self._pool.submit(_history_file, self.history_file, files, when, len(files) < len(self._history))

    @staticmethod
    def _pages_when_done(launched: Future, path: Path, name: str) -> _Pages | None:
        """:func:`_layer_pages` of the file a child wrote, once it is done (``None`` if it failed: :meth:`wait`
        says why; or if they cannot be listed: the layer's rows are copied instead)."""
        try:
            if launched.result().wait() != 0:
                return None
            return _layer_pages(path, name)
        except Exception:  # (the child's failure is :meth:`wait`'s to report)
            LOG.debug("listing the pages of %s failed", path, exc_info=True)
            return None

    def flush_behind(self, path: Path) -> None:
        """Have the kernel write the pages of ``path`` so far to disk in a thread (``fsync``) while the writer goes
        on, so that the final flush (:func:`_finish`) waits for less of them; waited for by :meth:`close`."""
        self._flushes.append(self._pool.submit(_fsync, path))

    def close(self) -> None:
        """Stop the children still running and delete their files."""
        self._stop.set()
        self._derivers.shutdown()  # each stops at its next batch
        for _, launched, path, errors, apart in self._jobs.values():
            with contextlib.suppress(Exception):  # its failure is the writer's error already
                child = launched.result()
                if child.poll() is None:
                    child.kill()
                child.wait()
            errors.unlink(missing_ok=True)
            if apart:
                path.unlink(missing_ok=True)
        for flush in self._flushes:
            with contextlib.suppress(Exception):  # (the final flush says if the disk fails)
                flush.result()
        self._pool.shutdown()
        self.side.unlink(missing_ok=True)
        self.history_file.unlink(missing_ok=True)
        for planned in self._planned.values():
            with contextlib.suppress(Exception):
                planned.result()
        self._jobs, self._side, self._order, self._flushes, self._planned, self._history = {}, [], [], [], {}, []


def _inner_rectangle(bbox, polygon) -> tuple[float, float, float, float] | None:
    """An axis-parallel rectangle (EPSG:5899) inside the image of the WGS84 ``bbox``.

    Envelopes inside it need no geometry test.  The image is a slightly
    rotated quadrilateral (meridian convergence); the rectangle is bounded
    by the innermost points of its four sides, shrunk by a centimetre, and
    checked against ``polygon`` (``None`` if it is not inside).
    """
    lon1, lat1, lon2, lat2 = bbox
    n = 17
    t = geo.transformer(schema.WEB_CRS, STORE_CRS)
    lats, lons = np.linspace(lat1, lat2, n), np.linspace(lon1, lon2, n)
    xs, ys = t.transform(np.concatenate([np.full(n, lon1), np.full(n, lon2), lons, lons]),
                         np.concatenate([lats, lats, np.full(n, lat1), np.full(n, lat2)]))
    left, right, bottom, top = xs[:n], xs[n:2 * n], ys[2 * n:3 * n], ys[3 * n:]
    rect = (np.max(left) + 0.01, np.max(bottom) + 0.01, np.min(right) - 0.01, np.min(top) - 0.01)
    if rect[0] >= rect[2] or rect[1] >= rect[3] or not shapely.contains(polygon, shapely.box(*rect)):
        return None
    return float(rect[0]), float(rect[1]), float(rect[2]), float(rect[3])


def _literal(value) -> str:
    """An SQLite literal for ``value`` (text, number, date or None)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            raise StoreError("a filter value is not a finite number")
        return repr(float(value))
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text.replace("\x00", "").replace("'", "''") + "'"


def _bind(sql: str, params: list) -> str:
    """``sql`` with each ``?`` placeholder replaced by the literal of its parameter."""
    pieces = sql.split("?")
    if len(pieces) != len(params) + 1:
        raise StoreError("internal error: placeholders and parameters do not match")
    out = [pieces[0]]
    for value, piece in zip(params, pieces[1:]):
        out.append(_literal(value))
        out.append(piece)
    return "".join(out)


def _decode(blobs) -> np.ndarray:
    """Shapely geometries from GeoPackage geometry blobs (header + WKB)."""
    return shapely.from_wkb([gpkg_to_wkb(b) for b in blobs])


def _grid_counts(geoms: np.ndarray, cell_m: float) -> pd.DataFrame:
    """:meth:`GeoPackageStore.aggregate` by grid cell: the cells of bounding-box centres, as PostGIS computes them."""
    bounds = shapely.bounds(geoms).reshape(-1, 4)
    cx, cy = (bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2
    present = ~np.isnan(cx)  # missing or empty geometries are in no cell
    cells = pd.DataFrame({"x": (np.floor(cx[present] / cell_m) + 0.5) * cell_m,
                          "y": (np.floor(cy[present] / cell_m) + 0.5) * cell_m})
    counts = cells.groupby(["x", "y"], sort=True).size()
    return aggregate_frame([(x, y, n) for (x, y), n in counts.items()], ["x", "y", "count"])


def _frame(layer: Layer, rows: list[tuple]) -> gpd.GeoDataFrame:
    if not rows:
        return empty_frame(layer)
    names = layer.field_names
    raw = pd.DataFrame.from_records([r[:-1] for r in rows], columns=names)
    raw["geometry"] = _decode([r[-1] for r in rows])
    return gpd.GeoDataFrame(schema.coerce(layer, raw), geometry="geometry", crs=STORE_CRS)
