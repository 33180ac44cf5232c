"""The PostGIS store: each layer a table in EPSG:5899 on a PostgreSQL server.

Same behaviour as the GeoPackage store (``gisapp/store/gpkg.py``): the same
columns, types and order, the same filter semantics, pushed into SQL with
bound parameters.  Tables and indexes come from the versioned migrations in
:mod:`gisapp.store.migrations` (``gisapp db upgrade``; the first write
applies them too).

A write is one transaction.  ``replace`` loads each layer into a new table
with COPY, builds its indexes, then swaps it for the old one, so readers
see the old data until the commit and are blocked only for the swap (once
the schema is current the new tables are loaded and indexed on connections
of their own beside the transaction, which swaps them in: :class:`_Staging`)
(the findings, whose rows carry a hash of their values, are replaced in
place where they changed when few did: :func:`_replace_changed`);
``upsert`` loads into a temporary table and replaces rows by key.  Write
locks serialize writers.  Privileges granted on a layer table are carried
over by the swap; other objects (views) must not depend on layer tables.

Connections come from a small per-URL pool shared by the store objects of
one process (a store object is cheap: the app opens one per request).

Rows are written in spatial (Hilbert) order, so a street view's rows share
table pages; a bbox skips the exact geometry test for rows well inside it.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import os
import queue
import re
import threading
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import geopandas as gpd
import numpy as np
import orjson
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import shapely
from geopandas.tools.hilbert_curve import _continuous_to_discrete_coords, _encode
from pandas.util import hash_array
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter
from psycopg.types.json import Jsonb
from psycopg.types.string import ByteaBinaryLoader

from gisapp import geo, schema
from gisapp import history as hist
from gisapp.filters import Filter
from gisapp.formats import derive
from gisapp.formats.wkb import Polygons, read_polygons
from gisapp.inspections import Inspection
from gisapp.photos import Photo
from gisapp.progress import SILENT, Progress
from gisapp.schema import LAYERS, STORE_CRS, Layer
from gisapp.store import migrations
from gisapp.store.base import (
    GEOJSON_COLUMN,
    HISTORY_SCHEMA,
    INSPECTION_COLUMNS,
    PERSONAL_PROPERTIES_COLUMN,
    PERSONAL_SEARCH_COLUMN,
    PROPERTIES_COLUMN,
    REPLACE_DETAIL_MAX,
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
    page_columns,
    page_rows,
    replace_is_compact,
    search_column,
    store_layer,
    stored_properties,
    texts_columns,
    texts_rows,
    typed_table,
)
from gisapp.store.migrations import one

SRID = 5899
_ARROW_TYPES = {"text": pa.string(), "int": pa.int32(), "float": pa.float64(), "date": pa.date32()}
_GEOARROW_META = {b"ARROW:extension:name": b"geoarrow.wkb",
                  b"ARROW:extension:metadata": b'{"crs":"EPSG:5899","crs_type":"authority_code"}'}
#: Rows per COPY chunk (bounds the memory of a large load).
COPY_CHUNK = 100_000
_WRITE_LOCK_KEY = 0x6769736170700002
_IDLE = psycopg.pq.TransactionStatus.IDLE


# -- connections -------------------------------------------------------------

def conninfo(url: str) -> str:
    """A libpq URL from a store URL (``postgresql+psycopg://`` is accepted)."""
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", url)


def display_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


#: Pages of a layer read from their fields after one found a row without its stored text (:meth:`_Pool.texts_due`).
TEXTS_RETRY = 200


class _Pool:
    """Idle connections to one database, handed out one per ``with`` block."""

    def __init__(self, url: str, max_idle: int = 16):
        self.url = url
        self.max_idle = max_idle
        self.schema_ok = False
        #: layer → pages still read from their fields before the stored texts are tried again (see texts_due)
        self.untexted: dict[str, int] = {}
        self._idle: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    def texts_due(self, layer: str) -> bool:
        """Whether a page of ``layer`` should read the stored properties' texts: not for the next
        :data:`TEXTS_RETRY` pages after one found a row without it (a database loaded before migration 15 and
        not written since would read every page twice), then again."""
        with self._lock:
            left = self.untexted.get(layer, 0)
            if left:
                self.untexted[layer] = left - 1
            return not left

    def texts_missing(self, layer: str) -> None:
        """A page of ``layer`` found a row without its stored text (:meth:`texts_due`)."""
        with self._lock:
            self.untexted[layer] = TEXTS_RETRY

    def _new(self) -> psycopg.Connection:
        try:
            # JIT compilation costs more than these short queries take (~0.1-3 s per plan)
            return psycopg.connect(conninfo(self.url), autocommit=True, connect_timeout=10,
                                   application_name="gisapp", options="-c jit=off")
        except psycopg.OperationalError as err:
            reason = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
            reason = reason.removeprefix("connection failed: ")
            raise StoreError(f"cannot connect to the PostGIS store {display_url(self.url)}: {reason}") from None

    @contextlib.contextmanager
    def connection(self):
        """A connection in autocommit mode, returned to the pool afterwards."""
        con = None
        with self._lock:
            while self._idle and con is None:
                candidate = self._idle.pop()
                if not candidate.closed:
                    con = candidate
        if con is None:
            con = self._new()
        try:
            yield con
        except psycopg.OperationalError as err:
            con.close()
            raise StoreError(f"lost the connection to the PostGIS store {display_url(self.url)}: "
                             f"{str(err).strip()}") from None
        finally:
            if con.closed or con.broken or con.info.transaction_status != _IDLE:
                con.close()
            else:
                with self._lock:
                    keep = len(self._idle) < self.max_idle
                    if keep:
                        self._idle.append(con)
                if not keep:
                    con.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for con in idle:
            con.close()


_POOLS: dict[tuple[int, str], _Pool] = {}
_POOLS_LOCK = threading.Lock()


def _pool(url: str) -> _Pool:
    """The pool of ``url`` in this process (a forked worker gets its own)."""
    key = (os.getpid(), url)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = _Pool(url)
        return pool


def close_pool(url: str) -> None:
    """Close the pooled connections to ``url`` (tests drop their databases)."""
    with _POOLS_LOCK:
        pool = _POOLS.pop((os.getpid(), url), None)
    if pool is not None:
        pool.close()


# -- the store ----------------------------------------------------------------

class PostGISStore(Store):
    """A store in the PostgreSQL database at ``url`` (``postgresql://user@host:port/db``)."""

    #: A page waits for its query in the database server: two at once per process (measured at 100,000
    #: dossiers, 8 clients, 2 workers: ~30 % more pages a second and a lower p95 than one; issue 16)
    page_slots = 2

    def __init__(self, url: str, *, must_exist: bool = True) -> None:
        self._url = url
        self.url = display_url(url)  # printed by commands: never the password
        self._held: tuple[int, psycopg.Connection] | None = None  # (thread, connection) holding write_lock
        if must_exist:
            with self.connection():
                pass

    @contextlib.contextmanager
    def connection(self, *, check_schema: bool = True) -> Iterator[psycopg.Connection]:
        """A pooled autocommit connection; by default the schema is checked first."""
        pool = _pool(self._url)
        with pool.connection() as con:
            if check_schema and not pool.schema_ok:
                _check_schema(con, self._url)
                pool.schema_ok = True
            yield con

    def exists(self) -> bool:
        """Whether the database has the gisapp schema (any version: an old one asks for ``gisapp db upgrade``)."""
        return self.schema_version() > 0

    def schema_version(self) -> int:
        """The applied schema version (0 for a database without the gisapp schema)."""
        with self.connection(check_schema=False) as con:
            return migrations.current_version(con)

    def upgrade(self, target: int | None = None, progress: Progress = SILENT) -> list[migrations.Migration]:
        """Create or upgrade the schema (to ``target``, default the latest); the migrations applied."""
        with self.connection(check_schema=False) as con:
            applied = migrations.upgrade(con, target, progress)
        _pool(self._url).schema_ok = False
        return applied

    # -- reading ---------------------------------------------------------------

    def where(self, layer: Layer, flt: Filter | None) -> tuple[str, list]:
        """The WHERE clause and its parameters; a bbox is matched as :func:`_bbox_clause` says."""
        clauses, params = attribute_clauses(layer, flt, "%s")
        if flt is not None and flt.bbox is not None:
            clause, values = _bbox_clause(flt.bbox)
            clauses.append(clause)
            params.extend(values)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def read(self, layer: str, flt: Filter | None = None, *, limit: int | None = None,
             offset: int = 0) -> gpd.GeoDataFrame:
        lay = store_layer(layer)
        query, params = self._query(lay, lay.field_names, flt, limit, offset)
        with self.connection() as con:
            rows = con.cursor(binary=True).execute(query, params).fetchall()
        return _frame(lay, rows)

    def count(self, layer: str, flt: Filter | None = None) -> int:
        lay = store_layer(layer)
        where, params = self.where(lay, flt)
        with self.connection() as con:
            return one(con.execute(f"SELECT count(*) FROM {lay.name}{where}", params))[0]

    def get(self, layer: str, key: str) -> gpd.GeoDataFrame:
        lay = store_layer(layer)
        columns = ", ".join(lay.field_names)
        with self.connection() as con:
            rows = con.cursor(binary=True).execute(
                f"SELECT {columns}, ST_AsBinary(geom) FROM {lay.name} WHERE {lay.key} = %s", [str(key)]).fetchall()
        return _frame(lay, rows)

    def _query(self, layer: Layer, names: list[str], flt: Filter | None, limit=None, offset=0,
               geometry: str = "ST_AsBinary(geom)") -> tuple[str, list]:
        where, params = self.where(layer, flt)
        columns = "".join(f"{n}, " for n in names)
        query = f"SELECT {columns}{geometry} FROM {layer.name}{where} ORDER BY {layer.key}"
        if limit is not None and int(limit) >= 0:
            query += " LIMIT %s"
            params.append(int(limit))
        if offset and int(offset) > 0:
            query += " OFFSET %s"
            params.append(int(offset))
        return query, params

    def _row_batches(self, query: str, params: list, batch_size: int, limit=None) -> Iterator[list[tuple]]:
        """Rows of ``query`` in lists of ``batch_size``, from one query.

        Small pages are fetched at once; anything larger streams from a
        server-side cursor (the connection is held until the end).
        """
        batch_size = max(1, int(batch_size))
        with self.connection() as con:
            if limit is not None and 0 <= int(limit) <= batch_size:
                rows = con.cursor(binary=True).execute(query, params).fetchall()
                if rows:
                    yield rows
                return
            with con.transaction(), con.cursor(name="gisapp_batches", binary=True) as cur:
                cur.itersize = batch_size
                cur.execute(query, params)
                while True:
                    rows = cur.fetchmany(batch_size)
                    if rows:
                        yield rows
                    if len(rows) < batch_size:
                        return

    def rows_in_box(self, layer: str, box: tuple[float, float, float, float], *, fields: list[str]) -> list[tuple]:
        """Rows whose geometry's box meets ``box`` (see :meth:`Store.rows_in_box`): one query on the GiST index."""
        lay = store_layer(layer)
        names = field_names(lay, fields)
        columns = "".join(f"{n}, " for n in names)
        with self.connection() as con:
            return con.cursor(binary=True).execute(
                f"SELECT {columns}ST_AsBinary(geom) FROM {lay.name} "
                "WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 5899)", [float(v) for v in box]).fetchall()

    def read_keys(self, layer: str, keys: Collection[str]) -> gpd.GeoDataFrame:
        """Features by key (see :meth:`Store.read_keys`): one query on the key's index."""
        lay = store_layer(layer)
        wanted = sorted({str(k) for k in keys})
        if not wanted:
            return empty_frame(lay)
        columns = ", ".join(lay.field_names)
        with self.connection() as con:
            rows = con.cursor(binary=True).execute(
                f"SELECT {columns}, ST_AsBinary(geom) FROM {lay.name} WHERE {lay.key} = ANY(%s) ORDER BY {lay.key}",
                [wanted]).fetchall()
        return _frame(lay, rows)

    def box_texts(self, layer: str, box: tuple[float, float, float, float], column: str) -> list[tuple]:
        lay = store_layer(layer)
        with self.connection() as con:
            return con.execute(f"SELECT {lay.key}, {search_column(column)} FROM {lay.name} "
                               f"WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, {SRID})", list(box)).fetchall()

    def read_boxes(self, layer: str, boxes: np.ndarray) -> gpd.GeoDataFrame:
        """Features meeting any box (see :meth:`Store.read_boxes`): one query, a GiST probe per box (LATERAL)."""
        lay = store_layer(layer)
        arr = np.asarray(boxes, dtype=float).reshape(-1, 4)
        if not len(arr):
            return empty_frame(lay)
        names = ", ".join(f"t.{n}" for n in lay.field_names)
        with self.connection() as con:
            rows = con.cursor(binary=True).execute(
                f"SELECT DISTINCT ON (t.{lay.key}) {names}, ST_AsBinary(t.geom) "
                "FROM unnest(%s::float8[], %s::float8[], %s::float8[], %s::float8[]) AS b(x1, y1, x2, y2) "
                f"CROSS JOIN LATERAL (SELECT * FROM {lay.name} "
                "WHERE geom && ST_MakeEnvelope(b.x1, b.y1, b.x2, b.y2, 5899)) t "
                f"ORDER BY t.{lay.key}", [arr[:, k].tolist() for k in range(4)]).fetchall()
        return _frame(lay, rows)

    def iter_batches(self, layer: str, flt: Filter | None = None,
                     batch_size: int = 5000) -> Iterator[gpd.GeoDataFrame]:
        """Matching features in key order, ``batch_size`` at a time, from one query."""
        lay = store_layer(layer)
        query, params = self._query(lay, lay.field_names, flt)
        for rows in self._row_batches(query, params, batch_size):
            yield _frame(lay, rows)

    def iter_arrow(self, layer: str, flt: Filter | None = None, *, fields: list[str] | None = None,
                   batch_size: int = 5000, limit: int | None = None, offset: int = 0,
                   geometry: str = "wkb") -> Iterator[pa.Table]:
        """Matching features as Arrow tables, for serializers that stream.

        As :meth:`GeoPackageStore.iter_arrow`: the columns ``fields``
        (default: all of the layer's) typed as stored (text → string, date →
        date32, int → int32, float → double) and ``geometry`` as WKB in
        EPSG:5899 (or the stored GeoJSON text with ``geometry="geojson"``),
        rows ordered by the layer's key.
        """
        lay = store_layer(layer)
        names = field_names(lay, fields)
        if geometry_column(geometry) == GEOJSON_COLUMN:
            query, params = self._query(lay, names, flt, limit, offset, GEOJSON_COLUMN)
            geometry_field = pa.field("geometry", pa.string())
        else:
            query, params = self._query(lay, names, flt, limit, offset)
            geometry_field = pa.field("geometry", pa.binary(), metadata=_GEOARROW_META)
        arrow_schema = pa.schema([pa.field(n, _ARROW_TYPES[lay.field(n).type]) for n in names] + [geometry_field])
        for rows in self._row_batches(query, params, batch_size, limit):
            columns = list(zip(*rows))
            arrays = [pa.array(col, type=f.type) for col, f in zip(columns, arrow_schema)]
            yield pa.Table.from_arrays(arrays, schema=arrow_schema)

    def read_arrow(self, layer: str, flt: Filter | None = None, *, fields: list[str] | None = None,
                   limit: int | None = None, offset: int = 0) -> pa.Table | None:
        """All of :meth:`iter_arrow` in one table.

        A whole layer (no filter, limit or offset: the analysis) comes as a few rows of columns packed
        by the server (:func:`_packed_sql`: per column one value of all its bytes, one of their
        lengths), unpacked by numpy and Arrow without a Python object per row (a million rows in a
        few seconds); filtered reads (tiles, map data) take :meth:`iter_arrow`'s cursor as before.
        """
        if flt is not None or limit is not None or offset:
            return super().read_arrow(layer, flt, fields=fields, limit=limit, offset=offset)
        lay = store_layer(layer)
        names = field_names(lay, fields)
        # the table in its own (spatial) order, sorted here by key: in key order the server would read it
        # through the key's index, a random read of every row (at 1M rows minutes when not cached)
        read = list(dict.fromkeys([*names, lay.key]))
        types = {n: lay.field(n).type for n in read}
        with self.connection() as con:
            table = _packed_table(con, lay.name, types)
        if table is None:
            return None
        # key order as the GeoPackage's (bytes; the same as PostgreSQL's in a C or C.UTF-8 database)
        order = pa.array(_byte_order(table.column(lay.key).combine_chunks()))
        arrow_schema = pa.schema([pa.field(n, _ARROW_TYPES[lay.field(n).type]) for n in names]
                                 + [pa.field("geometry", pa.binary(), metadata=_GEOARROW_META)])
        # the columns put in that order two at a time (Arrow's take runs without the interpreter lock; the
        # geometry's, ~100 MB at a million rows, beside the others): ~0.15 s less at a million rows
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="gisapp-take") as pool:
            taken = dict(zip(["geometry", *names], pool.map(lambda n: table.column(n).take(order),
                                                               ["geometry", *names])))
        return pa.Table.from_arrays([taken[n] for n in [*names, "geometry"]], schema=arrow_schema)

    def page(self, layer: str, flt: Filter | None = None, *, fields: list[str], limit: int,
             offset: int = 0, texts: bool = False) -> Page:
        """The page's rows, then the count of all matches when the page does not tell it.

        A page with rows but fewer than ``limit`` ends the matches, so they
        number ``offset`` + its rows (a street view often fits in one page);
        otherwise a count query follows.  Not one query with a window count:
        that sorts every match before the limit, which a whole-extent bbox
        (QGIS asks for one) makes the whole layer.  With ``texts`` the rows read the stored properties' text
        (:func:`texts_columns`) instead of the fields (a row without it: the fields, read again).
        """
        lay = store_layer(layer)
        names = field_names(lay, fields)
        where, params = self.where(lay, flt)
        # as of a day: the statuses of that day in the same query, a flag column after the geometry
        expressions, flagged = page_columns(lay, [lay.key, *names], flt)
        pool = _pool(self._url)
        stored = texts_columns(lay, names, flagged) if texts and pool.texts_due(lay.name) else None
        with self.connection() as con:
            select = self._page_select(con, lay, where, params, flt)
            if stored is not None:
                utf8 = [f"convert_to({c}, 'UTF8')" for c in [*stored, GEOJSON_COLUMN]]  # bytes, not decoded
                rows = texts_rows(lay, con.cursor(binary=True).execute(
                    select([lay.key, *utf8]), [*params, int(limit), int(offset)]).fetchall())
            if stored is not None and rows is None:
                pool.texts_missing(lay.name)
            if stored is None or rows is None:
                columns = [*expressions[:len(names) + 1], GEOJSON_COLUMN, *expressions[len(names) + 1:]]
                # The rows as psycopg makes them are the page's rows: (key, *fields, GeoJSON text).
                rows = con.cursor(binary=True).execute(select(columns), [*params, int(limit), int(offset)]).fetchall()
                stored = None
            if len(rows) < int(limit) and (rows or not offset):
                matched = int(offset) + len(rows)
            else:
                matched = one(con.execute(f"SELECT count(*) FROM {lay.name}{where}", params))[0]
        if stored is not None:
            return Page(matched, rows, texts=True)
        rows, known = page_rows(rows, flagged, 1 + names.index("status") if "status" in names else None)
        return Page(matched, rows, known)

    def _page_select(self, con, lay: Layer, where: str, params: list, flt: Filter | None):
        """The query of a page's rows as a function of its columns (parameters: ``params``, limit, offset)."""
        if where and (flt is None or flt.bbox is None) and \
                _estimated_rows(con, f"SELECT 1 FROM {lay.name}{where}", params) <= FILTER_FIRST_MAX_ROWS:
            # A selective filter without a box: its matches first, through its own indexes, then their keys
            # sorted.  Left to itself the planner may walk the key index in order testing the filter, which
            # reads most of the table when the matches are not spread evenly over the keys (a status
            # the newest dossiers have: 200 ms at 100,000 dossiers, seconds at 1M, instead of ~5 ms).
            return lambda columns: (
                f"WITH matches AS MATERIALIZED (SELECT {lay.key} FROM {lay.name}{where}) "
                f"SELECT {', '.join(columns)} FROM {lay.name} WHERE {lay.key} IN "
                f"(SELECT {lay.key} FROM matches ORDER BY {lay.key} LIMIT %s OFFSET %s) ORDER BY {lay.key}")
        return lambda columns: \
            f"SELECT {', '.join(columns)} FROM {lay.name}{where} ORDER BY {lay.key} LIMIT %s OFFSET %s"

    def version(self) -> str | None:
        """The data version every write raises in its transaction, after the database's random token."""
        with self.connection() as con:
            token, version = one(con.execute("SELECT token, version FROM gisapp_version"))
        return f"{token}-{version}"

    def date_range(self, layer: str) -> tuple[str | None, str | None]:
        """First start date and last end date of ``layer`` (ISO text); the end is ``None`` when some are open."""
        lay = store_layer(layer)
        if not lay.date_field:
            return None, None
        start, end = lay.date_field, lay.end_date_field or lay.date_field
        open_ended = (f"EXISTS(SELECT 1 FROM {lay.name} WHERE {end} IS NULL AND {start} IS NOT NULL)"
                      if end != start else "false")
        with self.connection() as con:
            first, last, is_open = one(con.execute(
                f"SELECT (SELECT min({start}) FROM {lay.name}), (SELECT max({end}) FROM {lay.name}), {open_ended}"))
        iso = lambda d: None if d is None else d.isoformat()  # noqa: E731
        return iso(first), None if is_open else iso(last)

    def info(self) -> list[LayerInfo]:
        with self.connection() as con:
            rows = {r[0]: r[1:] for r in con.execute(
                "SELECT name, count, minx, miny, maxx, maxy FROM gisapp_layers")}
        out = []
        for name in LAYERS:
            n, *ext = rows.get(name, (0, None, None, None, None))
            out.append(LayerInfo(name, int(n), STORE_CRS, None if ext[0] is None else tuple(ext)))
        return out

    def changes(self, after: int = 0, limit: int = 100) -> ChangePage:
        """The change log's entries after ``after`` (see :meth:`Store.changes`); its id is the database's token.

        Entries are appended by :meth:`write` under the store's write lock, which it holds until it
        commits, so ``seq`` order is commit order (see :func:`_append_changes`).
        """
        with self.connection() as con, con.transaction():  # one snapshot: the id, the last seq and the rows
            con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            token, last = one(con.execute(
                "SELECT token, (SELECT coalesce(max(seq), 0) FROM gisapp_changes) FROM gisapp_version"))
            rows = con.execute("SELECT seq, layer, key, kind, status, "
                               "to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
                               "minx, miny, maxx, maxy "
                               "FROM gisapp_changes WHERE seq > %s ORDER BY seq LIMIT %s",
                               [int(after), int(limit)]).fetchall()
        return ChangePage(token, int(last), [change_of(r) for r in rows])

    def meta(self) -> dict[str, Any]:
        with self.connection() as con:
            return dict(con.execute("SELECT key, value FROM gisapp_meta ORDER BY key").fetchall())

    def aggregate(self, layer: str, flt: Filter | None = None, *, cell_m: float | None = None) -> pd.DataFrame:
        """Counts of matching features per ward or per grid cell in one query (see :meth:`Store.aggregate`).

        Grid cells hold the centres of the geometries' bounding boxes
        (``ST_XMin``/``ST_XMax`` compute them from the coordinates).
        """
        lay = store_layer(layer)
        columns = aggregate_columns(lay, cell_m)
        where, params = self.where(lay, flt)
        if cell_m is None:
            query = (f"SELECT ward_code, count(*) FROM {lay.name}{where} GROUP BY ward_code "
                     'ORDER BY ward_code COLLATE "C"')
        else:
            query = (f"SELECT (floor(cx / %s) + 0.5) * %s AS x, (floor(cy / %s) + 0.5) * %s AS y, count(*) "
                     "FROM (SELECT (ST_XMin(geom) + ST_XMax(geom)) / 2 AS cx, "
                     "(ST_YMin(geom) + ST_YMax(geom)) / 2 AS cy "
                     f"FROM {lay.name}{where}) c WHERE cx IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2")
            params = [float(cell_m)] * 4 + params
        with self.connection() as con:
            rows = con.execute(query, params).fetchall()
        return aggregate_frame(rows, columns)

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[None]:
        if self._held is not None and self._held[0] == threading.get_ident():
            yield
            return
        with self.connection() as con:
            con.execute("SELECT pg_advisory_lock(%s)", [_WRITE_LOCK_KEY])
            self._held = (threading.get_ident(), con)
            try:
                yield
            finally:
                self._held = None
                with contextlib.suppress(psycopg.Error):
                    con.execute("SELECT pg_advisory_unlock(%s)", [_WRITE_LOCK_KEY])

    @contextlib.contextmanager
    def _writer(self) -> Iterator[psycopg.Connection]:
        """The connection that holds this thread's :meth:`write_lock`, else a pooled one."""
        if self._held is not None and self._held[0] == threading.get_ident():
            yield self._held[1]
            return
        with _pool(self._url).connection() as con:
            yield con

    def write(self, frames: dict[str, gpd.GeoDataFrame], *, mode: str = "replace",
              meta: dict[str, Any] | None = None, history: pd.DataFrame | None = None,
              progress: Progress = SILENT, delete: dict[str, Collection[str]] | None = None) -> None:
        if mode not in ("replace", "upsert"):
            raise StoreError(f"unknown write mode {mode!r}; use 'replace' or 'upsert'")
        deleted = check_delete(mode, delete)
        layers = {name: store_layer(name) for name in [*frames, *deleted]}
        given = set() if history is None else set(history["layer"])
        # a replace: the frames typed and their COPY rows made in a thread beside this one (:class:`_Prepared`),
        # so that the database's work (history, COPY, index builds) and the client's overlap; the layers without
        # a status history first (wards, sidewalks: their index builds run while the client makes the large
        # layers' rows, not after them), the history's layers in their order (their rows' ``seq``), the change
        # log in the frames' order
        order = sorted(frames, key=lambda name: name in hist.LAYER_KEYS) if mode == "replace" else list(frames)
        prepared = _Prepared(layers, {name: frames[name] for name in order},
                             convert={name for name in frames if name not in HASHED_LAYERS}) \
            if mode == "replace" else None
        typed = {} if prepared is not None else \
            {name: schema.coerce(layers[name], frame, arrow_text=True) for name, frame in frames.items()}
        pool = _pool(self._url)
        staging: _Staging | None = None
        committed = False
        try:
            with self._writer() as con:
                with _nothing_changed(con, f"writing to {self.url}"), con.transaction():
                    upgraded = migrations.upgrade(con) if not pool.schema_ok else []
                    if prepared is not None and not upgraded:  # the committed schema is the current one:
                        staging = _Staging(self._url)  # the layers are loaded and indexed beside the transaction
                    con.execute("SELECT pg_advisory_xact_lock(%s)", [_WRITE_LOCK_KEY])
                    if prepared is None:
                        history_rows = _write_history(con, typed, history, mode)
                    else:  # the given history first, then each layer's own rows just before it is written
                        history_rows = _write_history(con, {}, history, mode, analyze=False, replaced={
                            name for name in given & set(frames) if name in hist.LAYER_KEYS and len(frames[name])})
                    # a first load into an empty history: its rows are COPYed before each layer as usual (the
                    # server's work while this client makes the layer's rows) but into a table of their own
                    # without indexes, which becomes the history after the layers (:func:`_move_history`)
                    staged = prepared is not None and history is None and _history_empty(con)
                    later: set[str] = set()  # staged layers whose next_on is set after the move
                    if staged:  # created in the write's transaction: gone with it if the write fails
                        _create_like(con, _HISTORY_STAGE, hist.TABLE)
                    counter = _RowCounter(progress, sum(len(f) for f in frames.values()))
                    removed = dict.fromkeys(layers, 0)
                    log: list[tuple] = []
                    bounds: dict[str, list[float] | None] = {}  # extents known from the hashes' coordinates
                    for name, keys in deleted.items():
                        lay = layers[name]
                        rows = con.execute(f"DELETE FROM {lay.name} WHERE {lay.key} = ANY(%s) "
                                           f"RETURNING {lay.key}, {_BOX_SQL}", [keys]).fetchall()
                        removed[name] += len(rows)
                        log.extend(boxed(delete_rows(lay, [r[0] for r in rows]),
                                         {str(r[0]): r[1:] for r in rows}, {}))
                    logs: dict[str, list[tuple]] = {}
                    if prepared is not None:  # each layer's history rows, before the first layer's rows: the
                        # server's work while this client makes the first rows (it waited, idle, before)
                        for name in order:
                            typed[name] = prepared.typed(name)
                            if name not in given:
                                history_rows += _write_history(con, {name: typed[name]}, None, mode, analyze=False,
                                                               into=_HISTORY_STAGE if staged else hist.TABLE,
                                                               later=later)
                    for name in order:
                        frame = typed[name]
                        changed = _replace_changed(con, layers[name], frame, counter, bounds) \
                            if mode == "replace" and name in HASHED_LAYERS else None
                        if changed is not None:
                            logs[name] = changed
                            continue
                        logs[name] = _logged(con, layers[name], frame, mode)
                        chunks = None if prepared is None else prepared.chunks(name)
                        if staging is not None and chunks is not None:
                            staging.load(con, layers[name], frame, counter, chunks)
                        elif mode == "replace":
                            _replace_layer(con, layers[name], frame, counter, chunks=chunks)
                        else:
                            removed[name] += _upsert_layer(con, layers[name], frame, counter)
                    for name in frames:
                        log.extend(logs[name])
                    if staging is not None:
                        staging.tail()
                    if staged:
                        _move_history(con, history_rows, later)
                    if staging is not None:
                        staging.swap(con)
                    if prepared is not None and history_rows > _HISTORY_ANALYZE_ROWS:
                        con.execute(f"ANALYZE {hist.TABLE}")
                    small = mode == "upsert" and sum(len(f) for f in typed.values()) <= SMALL_UPSERT
                    for name in layers:
                        if mode == "replace":
                            _set_stats(con, layers[name], typed[name], bounds)
                        elif small:
                            _update_stats_by(con, layers[name], typed.get(name), removed[name])
                        else:
                            _update_stats(con, layers[name])
                    if meta:
                        _write_meta(con, meta)
                    if log:
                        _append_changes(con, log)
                    con.execute("UPDATE gisapp_version SET version = version + 1")
                committed = True
        finally:
            if prepared is not None:
                prepared.close()
            if staging is not None:
                held = self._held[1] if self._held is not None and self._held[0] == threading.get_ident() else None
                staging.close(failed=not committed, held=held)


    def status_history(self, layer: str, keys: list[str] | None = None) -> pd.DataFrame:
        """The stored status changes of ``layer`` (see :meth:`Store.status_history`)."""
        store_layer(layer)
        query = (f"SELECT layer, key, status, changed_on, changed_at, note, seq FROM {hist.TABLE} WHERE layer = %s"
                 + ("" if keys is None else " AND key = ANY(%s)") + " ORDER BY key, changed_on, changed_at, seq")
        params: list = [layer] + ([] if keys is None else [[str(k) for k in keys]])
        with self.connection() as con:
            rows = con.execute(query, params).fetchall()
        out = hist.frame([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
                         [r[4] for r in rows], [r[5] for r in rows])
        out["seq"] = pd.Series([r[6] for r in rows], dtype="int64")
        return out

    def statuses_as_of(self, layer: str, day: dt.date, keys: list[str] | None = None) -> pd.DataFrame:
        """Each key's last status change by the end of ``day`` (see :data:`gisapp.history.NEXT_ON`)."""
        store_layer(layer)
        query = (f"SELECT key, status, changed_on FROM {hist.TABLE} "
                 "WHERE layer = %s AND changed_on <= %s AND (next_on IS NULL OR next_on > %s)"
                 + ("" if keys is None else " AND key = ANY(%s)"))
        params: list = [layer, day, day] + ([] if keys is None else [[str(k) for k in keys]])
        with self.connection() as con:
            rows = con.execute(query, params).fetchall()
        out = pd.DataFrame([r[:2] for r in rows], columns=["key", "status"], dtype=object)
        out["changed_on"] = pd.Series(np.array([r[2] for r in rows], dtype="datetime64[D]")).astype("datetime64[ms]")
        return out


    def dossier_counts(self, flt: Filter | None, day: dt.date) -> pd.DataFrame:
        """The dossiers counted in groups in one query (see :meth:`Store.dossier_counts`)."""
        lay = store_layer("construction_permits")
        where, params = self.where(lay, flt)
        query, params = dossier_counts_sql(lay.name, where, params, "%s", flt.as_of if flt is not None else None,
                                           day, "to_char({}::timestamp, 'YYYY-MM')")
        with self.connection() as con:
            rows = con.execute(query, params).fetchall()
        return count_frame(rows)

    def columns_table(self, layer: str, fields: list[str], keys: Collection[str] | None = None) -> pa.Table:
        """The ``fields`` of every feature (or of ``keys``) through one ``COPY`` (see :meth:`Store.columns_table`)."""
        lay = store_layer(layer)
        names = field_names(lay, fields)
        where = "" if keys is None else f" WHERE {lay.key} = ANY(%s)"
        return self._copy_table(f"SELECT {', '.join(names)} FROM {lay.name}{where}",
                                [] if keys is None else [sorted(map(str, keys))], columns_schema(lay, names))

    def history_table(self, layer: str, *, keys: Collection[str] | None = None, after_seq: int = 0) -> pa.Table:
        """The status changes of ``layer`` after ``after_seq``, one ``COPY`` (see :meth:`Store.history_table`)."""
        store_layer(layer)
        where = "layer = %s AND seq > %s" + ("" if keys is None else " AND key = ANY(%s)")
        params: list = [layer, int(after_seq)] + ([] if keys is None else [sorted(map(str, keys))])
        return self._copy_table(f"SELECT {', '.join(HISTORY_SCHEMA.names)} FROM {hist.TABLE} WHERE {where}",
                                params, HISTORY_SCHEMA)

    def search_texts_table(self, layer: str, column: str, keys: Collection[str] | None = None) -> pa.Table:
        """Keys and search texts of every feature (or of ``keys``), one ``COPY`` (see
        :meth:`Store.search_texts_table`)."""
        lay = store_layer(layer)
        where = "" if keys is None else f" WHERE {lay.key} = ANY(%s)"
        return self._copy_table(f"SELECT {lay.key}, {search_column(column)} FROM {lay.name}{where}",
                                [] if keys is None else [sorted(map(str, keys))], TEXTS_SCHEMA)

    def _copy_table(self, query: str, params: list, arrow_schema: pa.Schema) -> pa.Table:
        """The rows of ``query`` as an Arrow table of ``arrow_schema``: ``COPY … TO STDOUT`` (CSV) parsed by Arrow."""
        buf = pa.BufferOutputStream()
        with self.connection() as con, con.cursor() as cur:
            cur.execute("SET LOCAL DateStyle TO ISO")  # dates as YYYY-MM-DD whatever the server's setting
            with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)", params or None) as copy:
                for data in copy:
                    buf.write(data)
        data = buf.getvalue()
        if not data.size:
            return typed_table(None, arrow_schema)
        return pacsv.read_csv(
            pa.BufferReader(data), read_options=pacsv.ReadOptions(column_names=arrow_schema.names),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types={f.name: f.type for f in arrow_schema},
                                                 null_values=[""], strings_can_be_null=True,
                                                 quoted_strings_can_be_null=False))


    # -- inspections ----------------------------------------------------------

    def add_inspection(self, inspection: Inspection, photos: Sequence[Photo], *,
                       findings: gpd.GeoDataFrame | None = None) -> None:
        """Insert the inspection, its photos (one at a time) and upsert ``findings``: one transaction."""
        layer = store_layer("findings")
        typed = None if findings is None or not len(findings) else schema.coerce(layer, findings)
        row = list(inspection_row(inspection))
        geoms = len(INSPECTION_COLUMNS) - 2
        values = ", ".join(["%s"] * geoms + ["ST_SetSRID(ST_GeomFromWKB(%s), 5899)"] * 2)
        with self._writer() as con:  # this thread's write_lock() connection when it holds it
            with _nothing_changed(con, f"recording the inspection in {self.url}"), con.transaction():
                con.execute("SELECT pg_advisory_xact_lock(%s)", [_WRITE_LOCK_KEY])
                con.execute(f"INSERT INTO inspections ({', '.join(INSPECTION_COLUMNS)}) VALUES ({values})",
                            row)
                for n, p in enumerate(photos):
                    con.execute("INSERT INTO inspection_photos (token, inspection_id, seq, width, height, data) "
                                "VALUES (%s, %s, %s, %s, %s, %s)",
                                [p.token, inspection.inspection_id, n, p.width, p.height, p.data])
                if typed is not None:
                    log = _logged(con, layer, typed, "upsert")
                    _upsert_layer(con, layer, typed)
                    _update_stats(con, layer)
                    _append_changes(con, log)
                    con.execute("UPDATE gisapp_version SET version = version + 1")

    def inspections(self, *, target_layer: str | None = None, target_key: str | None = None,
                    inspection_id: str | None = None) -> list[Inspection]:
        where, params = inspection_where("%s", target_layer=target_layer, target_key=target_key,
                                         inspection_id=inspection_id)
        columns = [*INSPECTION_COLUMNS[:-2], "ST_AsBinary(position)", "ST_AsBinary(occupancy)"]
        with self.connection() as con:
            rows = con.execute(f"SELECT {', '.join(columns)} FROM inspections{where} "
                               "ORDER BY inspected_at, inspection_id", params).fetchall()
            photos: dict[str, list[tuple]] = {}
            for iid, token, w, h in con.execute(
                    "SELECT inspection_id, token, width, height FROM inspection_photos "
                    "WHERE inspection_id = ANY(%s) ORDER BY inspection_id, seq", [[r[0] for r in rows]]):
                photos.setdefault(iid, []).append((token, w, h))
        return [inspection_of(r, photos.get(r[0], [])) for r in rows]

    def inspection_photo(self, token: str) -> bytes | None:
        with self.connection() as con:
            row = con.execute("SELECT data FROM inspection_photos WHERE token = %s", [str(token)]).fetchone()
        return None if row is None else bytes(row[0])


#: History rows of one write above which the history's statistics are computed again.
_HISTORY_ANALYZE_ROWS = 100_000
#: History rows of a first load above which they become the history whole, indexed once (:func:`_move_history`).
_HISTORY_BULK_ROWS = 50_000
#: The table (of the write's transaction, without indexes) a first load's history rows are COPYed into before
#: they move into the history (:func:`_move_history`).
_HISTORY_STAGE = "gisapp_history_load"


def _write_history(con: psycopg.Connection, typed: dict[str, gpd.GeoDataFrame], history: pd.DataFrame | None,
                   mode: str, *, replaced: Collection[str] = (), analyze: bool = True, into: str = hist.TABLE,
                   later: set[str] | None = None) -> int:
    """The history rows of a write, in its transaction (see :meth:`Store.write`): given ones, or changed statuses;
    how many were added.

    ``replaced``: layers whose history ``history`` replaces (given with no frame here: the caller writes
    them later).  ``analyze``: compute the history's statistics again after many rows (else the caller does).
    ``into``: the table the rows are COPYed into (the history, or a first load's :data:`_HISTORY_STAGE`: the
    layers whose ``next_on`` must be set then are added to ``later``).
    """
    parts = _history_parts(con, typed, history, mode, replaced=replaced)
    table = pa.concat_tables(parts) if parts else None
    if table is None or not table.num_rows:
        return 0
    # per layer its rows and keys, counted in Arrow (no Python object per row)
    counts = table.group_by("layer").aggregate([("key", "count"), ("key", "count_distinct")])
    # layers whose keys had no history before and get one row each: their next_on stay empty (no recompute);
    # a first load's stage holds only the layers written before this one (no scan of their million rows)
    fresh = {layer for layer, n, distinct in zip(counts["layer"].to_pylist(), counts["key_count"].to_pylist(),
                                                counts["key_count_distinct"].to_pylist(), strict=True)
             if n == distinct and (into == _HISTORY_STAGE or not one(con.execute(
                 f"SELECT EXISTS (SELECT 1 FROM {into} WHERE layer = %s)", [layer]))[0])}
    # binary COPY rows (:func:`_binary_rows`; a missing time of day is empty text, as the column's default)
    table = table.select(list(hist.COLUMNS))
    table = table.set_column(table.schema.get_field_index("changed_at"), "changed_at",
                             pc.fill_null(table["changed_at"], ""))
    table = table.add_column(0, "seq", _history_seqs(con, table.num_rows))
    freeze = ", FREEZE" if into == _HISTORY_STAGE and _FREEZE_LOADS else ""  # created in this transaction
    with con.cursor() as cur, cur.copy(f"COPY {into} ({', '.join(table.column_names)}) FROM STDIN "
                                       f"(FORMAT binary{freeze})") as copy:
        copy.write(_BINARY_HEADER)
        copy.write(memoryview(_binary_rows(table)))
        copy.write(_BINARY_TRAILER)
    for layer in sorted(set(counts["layer"].to_pylist()) - fresh):
        if into != hist.TABLE:  # staged: set once the rows are in the history (:func:`_move_history`)
            assert later is not None
            later.add(layer)
            continue
        unique = sorted(set(pc.filter(table["key"], pc.equal(table["layer"], layer)).to_pylist()))
        many = len(unique) > hist.WHOLE_LAYER_KEYS
        con.execute(hist.next_on_sql("%s", "" if many else "AND key = ANY(%s)"), [layer] if many else [layer, unique])
    if analyze and table.num_rows > _HISTORY_ANALYZE_ROWS:
        con.execute(f"ANALYZE {hist.TABLE}")
    return table.num_rows


def _history_seqs(con: psycopg.Connection, rows: int) -> pa.Array:
    """The ``seq`` of ``rows`` new history rows in their order: the numbers the column's default would draw one
    row at a time (``nextval`` per row: 0.8 s of the server's CPU for a 1M city's 2M rows), drawn as one block.
    The caller holds the writers' lock, which every writer of the history takes (nobody draws between the
    ``nextval`` and the ``setval``)."""
    sequence = one(con.execute("SELECT pg_get_serial_sequence(%s, 'seq')", [hist.TABLE]))[0]
    first = one(con.execute("SELECT nextval(%s)", [sequence]))[0]
    if rows > 1:
        con.execute("SELECT setval(%s, %s)", [sequence, first + rows - 1])
    return pa.array(np.arange(first, first + rows, dtype=np.int64))


def _history_parts(con: psycopg.Connection, typed: dict[str, gpd.GeoDataFrame], history: pd.DataFrame | None,
                   mode: str, *, replaced: Collection[str] = ()) -> list[pa.Table]:
    """The history rows :func:`_write_history` adds (as :func:`_history_table`s), the histories it replaces
    deleted."""
    given = set() if history is None else set(history["layer"])
    parts = [] if history is None else [_history_table(history[history["layer"].notna()])]
    when = hist.local_now()
    if mode == "replace":
        for name in sorted(set(replaced) - set(typed)):
            con.execute(f"DELETE FROM {hist.TABLE} WHERE layer = %s", [name])
    for name, frame in typed.items():
        key = hist.LAYER_KEYS.get(name)
        if key is None or not len(frame):
            continue
        if name in given:
            if mode == "replace":
                con.execute(f"DELETE FROM {hist.TABLE} WHERE layer = %s", [name])
            continue
        parts.append(_status_changes(con, name, key, frame, when))
    return parts


def _history_empty(con: psycopg.Connection) -> bool:
    """Whether the history has no row (a first load)."""
    return not one(con.execute(f"SELECT EXISTS (SELECT 1 FROM {hist.TABLE})"))[0]


def _move_history(con: psycopg.Connection, rows: int, later: Collection[str] = ()) -> None:
    """Move a first load's history rows from :data:`_HISTORY_STAGE` (a table of the write's transaction, without
    indexes) into the empty history: over :data:`_HISTORY_BULK_ROWS` rows the stage becomes the history
    (:func:`_swap_history`: its indexes built once, no row copied: 2M rows took 4.5 s of the server's time to
    copy, and 1.9 s to index), else its rows are inserted in their ``seq`` order.  In the write's transaction
    (a failed write leaves history and index as they were); the history's readers wait from here to the
    write's end, as a layer's do from its swap."""
    if rows > _HISTORY_BULK_ROWS:
        _swap_history(con)
    else:
        con.execute(f"INSERT INTO {hist.TABLE} SELECT * FROM {_HISTORY_STAGE} ORDER BY seq")
        con.execute(f"DROP TABLE {_HISTORY_STAGE}")
    for layer in sorted(later):  # keys with several rows
        con.execute(hist.next_on_sql("%s"), [layer])


def _swap_history(con: psycopg.Connection) -> None:
    """The empty history replaced by :data:`_HISTORY_STAGE`, its rows: the history's indexes built on the stage
    (its primary key added on its index), the ``seq`` sequence handed over, the grants given again, then the
    stage renamed in its place (the rows keep their ``seq``: the stage's default draws from the same sequence)."""
    table, stage = hist.TABLE, _HISTORY_STAGE
    indexes = _index_defs(con, table)
    primary = {r[0] for r in con.execute("SELECT i.relname FROM pg_constraint c JOIN pg_class i ON i.oid = c.conindid "
                                         "WHERE c.conrelid = %s::regclass AND c.contype = 'p'", [table])}
    grants = _grants(con, table)
    sequence = one(con.execute("SELECT pg_get_serial_sequence(%s, 'seq')", [table]))[0]
    _index_memory(con)
    renames = _indexes_on(con, indexes, stage)
    if sequence:
        con.execute(f"ALTER SEQUENCE {sequence} OWNED BY {stage}.seq")
    con.execute(f"DROP TABLE {table}")
    con.execute(f"ALTER TABLE {stage} RENAME TO {table}")
    for temporary, index in renames:
        con.execute(f"ALTER TABLE {table} ADD CONSTRAINT {index} PRIMARY KEY USING INDEX {temporary}"
                    if index in primary else f"ALTER INDEX {temporary} RENAME TO {index}")
    _grant(con, table, grants)


def _history_table(rows: pd.DataFrame) -> pa.Table:
    """History rows (a :func:`gisapp.history.frame`) as the Arrow table COPYed into the history."""
    return pa.table({"layer": pa.array(rows["layer"].tolist(), pa.string()),
                     "key": pa.array(rows["key"].tolist(), pa.string()),
                     "status": pa.array(rows["status"].tolist(), pa.string()),
                     "changed_on": pa.array(rows["changed_on"].to_numpy(dtype="datetime64[D]"), pa.date32()),
                     "changed_at": pa.array(rows["changed_at"].tolist(), pa.string()),
                     "note": pa.array(rows["note"].tolist(), pa.string())})


def _status_changes(con: psycopg.Connection, name: str, key: str, frame: gpd.GeoDataFrame,
                    when: dt.datetime) -> pa.Table:
    """The history rows (as :func:`_history_table`) of writing ``frame`` to layer ``name``: what
    :func:`gisapp.history.changes_between` gives for its keys, their stored statuses and its statuses, made
    column by column (no Python object per row but the keys, a second at a million rows less)."""
    if not one(con.execute(f"SELECT EXISTS (SELECT 1 FROM {name})"))[0]:  # a first load has no old statuses:
        # every status is new, its rows made in Arrow (no Python object per row)
        keys, new = derive.arrow_strings(frame[key]), derive.arrow_strings(frame["status"])
        changed = pc.is_valid(new)
        keys, new = pc.filter(keys, changed), pc.filter(new, changed)
    else:
        keys = frame[key].astype(str).reset_index(drop=True)
        status = frame["status"].reset_index(drop=True)
        query = f"SELECT {key}, status FROM {name} WHERE {key} = ANY(%s)"
        old = keys.map(dict(con.execute(query, [keys.tolist()]).fetchall()))
        changed = status.notna() & (old.isna() | (old != status))
        keys = pa.array(keys[changed].to_numpy(dtype=object), pa.string())
        new = pa.array(status[changed].astype(str).to_numpy(dtype=object), pa.string())
    n = len(keys)
    text = lambda value: pa.repeat(pa.scalar(value, pa.string()), n)  # noqa: E731
    return pa.table({"layer": text(name), "key": keys, "status": new,
                     "changed_on": pa.array(np.full(n, np.datetime64(when.date(), "D")), pa.date32()),
                     "changed_at": text(when.strftime("%H:%M:%S")),
                     "note": text(hist.WRITE_NOTE)})


def _check_schema(con: psycopg.Connection, url: str) -> None:
    version = migrations.current_version(con)
    if version == 0:
        raise StoreError(f"database {display_url(url)} has no gisapp schema; "
                         "run 'gisapp db upgrade' (or 'gisapp seed')")
    if version < migrations.LATEST:
        raise StoreError(f"database {display_url(url)} has schema version {version}, this gisapp needs "
                         f"{migrations.LATEST}; run 'gisapp db upgrade'")
    if version > migrations.LATEST:
        raise StoreError(f"database {display_url(url)} has schema version {version}, newer than this gisapp "
                         f"({migrations.LATEST}); upgrade gisapp")


def _geometry_param(geom) -> str:
    """Hex EWKB (SRID 5899) of one shapely geometry: a ``%s::geometry`` parameter.

    Sent as text of unknown type, it makes the parameter itself a geometry,
    decoded once per query (``ST_GeomFromWKB(%s)`` is evaluated again for
    every row under the generic plans of prepared statements).
    """
    return shapely.to_wkb(shapely.set_srid(geom, SRID), hex=True, include_srid=True)


#: A page whose filter (without a box) the planner expects to match at most this many rows is read filter
#: first (see :meth:`PostGISStore.page`); sorting that many keys takes a few milliseconds.
FILTER_FIRST_MAX_ROWS = 50_000


def _estimated_rows(con: psycopg.Connection, query: str, params: list) -> float:
    """The planner's estimate of the rows ``query`` returns (one planning, no execution: ~0.2 ms)."""
    plan = one(con.execute(f"EXPLAIN (FORMAT JSON) {query}", params))[0]
    if isinstance(plan, str | bytes):
        plan = orjson.loads(plan)
    return float(plan[0]["Plan"]["Plan Rows"])


def _bbox_clause(bbox) -> tuple[str, list]:
    """SQL matching the geometries that intersect the WGS84 ``bbox``, and its parameters.

    ``ST_Intersects`` with the box's image in EPSG:5899 (a slightly rotated,
    curved quadrilateral), except that geometries whose bounding box lies
    inside :func:`_inner_box` match without the GEOS test (most of a street
    view; ~1 µs per row saved): the same rows for less CPU.  ``CASE``, not
    ``OR``, keeps the planner from adding a second index scan.
    """
    polygon = geo.bbox_polygon(bbox)
    inner = _inner_box(bbox, polygon)
    box = _geometry_param(polygon)
    if inner is None:
        return "ST_Intersects(geom, %s::geometry)", [box]
    clause = ("geom && %s::geometry AND CASE WHEN geom @ %s::geometry THEN true "
              "ELSE ST_Intersects(geom, %s::geometry) END")
    return clause, [box, _geometry_param(shapely.box(*inner)), box]


def _inner_box(bbox, polygon) -> tuple[float, float, float, float] | None:
    """An axis-parallel rectangle (EPSG:5899) well inside ``polygon``, the image of the WGS84 ``bbox``.

    Bounded by the innermost points of the image's four sides, then shrunk
    by a margin: PostGIS compares bounding boxes in single precision rounded
    outwards (up to one float32 step, ~0.1 m at these coordinates), so a box
    that ``@`` finds inside this rectangle is truly inside it, and so inside
    ``polygon``.  ``None`` when there is no such rectangle (tiny or empty
    boxes), or it is not inside ``polygon`` (checked exactly).
    """
    if polygon.is_empty:
        return None
    lon1, lat1, lon2, lat2 = bbox
    area = geo.AREA_5899  # clamped as geo.bbox_polygon clamps
    lon1, lat1, lon2, lat2 = max(lon1, area[0]), max(lat1, area[1]), min(lon2, area[2]), min(lat2, area[3])
    n = 17
    lats, lons = np.linspace(lat1, lat2, n), np.linspace(lon1, lon2, n)
    xs, ys = geo.transformer(schema.WEB_CRS, STORE_CRS).transform(
        np.concatenate([np.full(n, lon1), np.full(n, lon2), lons, lons]),
        np.concatenate([lats, lats, np.full(n, lat1), np.full(n, lat2)]))
    bounds = np.asarray(polygon.bounds)
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys)) and np.all(np.isfinite(bounds))):
        return None
    margin = max(1.0, 4 * float(np.spacing(np.float32(np.max(np.abs(bounds))))))
    rect = (float(np.max(xs[:n])) + margin, float(np.max(ys[2 * n:3 * n])) + margin,
            float(np.min(xs[n:2 * n])) - margin, float(np.min(ys[3 * n:])) - margin)
    if rect[0] >= rect[2] or rect[1] >= rect[3] or not shapely.contains_properly(polygon, shapely.box(*rect)):
        return None
    return rect


def _spatial_order(geoms: np.ndarray) -> np.ndarray:
    """Row positions in Hilbert-curve order of the bounding-box centres (missing/empty ones last).

    Rows are written in this order, so that the rows of one street view share
    table pages: an items page then reads ~100 pages instead of ~1,000 (one
    per row in key order), which is most of the server's time for a page.
    The curve is geopandas' (``hilbert_distance``, 16 levels), which refuses
    missing geometries: those get the largest distance.
    """
    bounds = derive.geometry_bounds(geoms)  # (shapely objects or WKB: NaN where missing or empty)
    present = ~np.isnan(bounds[:, 0])
    distance = np.full(len(bounds), np.iinfo(np.int64).max, dtype=np.int64)
    if present.any():  # ``GeoSeries.hilbert_distance(level=16)`` of the present ones, from their boxes
        distance[present] = _encode(16, *_continuous_to_discrete_coords(bounds[present], 16, None))
    return np.argsort(distance, kind="stable")


class _RowCounter:
    """Rows COPYed so far out of ``total``, told to a :class:`~gisapp.progress.Progress` as ``write``."""

    def __init__(self, progress: Progress, total: int):
        self.progress, self.total, self.done = progress, total, 0
        progress("write", 0, total, "rows")

    def add(self, rows: int) -> None:
        self.done += rows
        self.progress("write", self.done, self.total, "rows")


def _copy_into(con: psycopg.Connection, table: str, layer: Layer, frame: gpd.GeoDataFrame,
               counter: _RowCounter | None = None, *, freeze: bool = False,
               chunks: Iterator[tuple[int, pa.Buffer]] | None = None) -> None:
    """COPY ``frame`` into ``table`` in PostgreSQL's binary format, ``COPY_CHUNK`` rows at a time, in
    :func:`_spatial_order`.

    ``freeze`` (a table created in this transaction, see :func:`_replace_layer`): the rows are
    written frozen, their pages marked all-visible.  ``chunks``: the rows of ``frame`` already made
    (:func:`_copy_chunks`, by :class:`_Prepared`), as (rows, bytes) pairs.
    """
    columns = _copy_columns(layer)
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT binary{', FREEZE' if freeze else ''})"
    with con.cursor() as cur, cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy:
        copy.write(_BINARY_HEADER)
        for rows, data in (chunks if chunks is not None else _copy_chunks(layer, frame)):
            copy.write(memoryview(data))
            if counter is not None:
                counter.add(rows)
        copy.write(_BINARY_TRAILER)


def _copy_columns(layer: Layer) -> list[str]:
    """The columns :func:`_copy_into` writes, in the order of :func:`_arrow_table`'s."""
    return [*layer.field_names, SEARCH_COLUMN, PERSONAL_SEARCH_COLUMN, GEOJSON_COLUMN, "geom",
            *(["row_hash"] if layer.name in HASHED_LAYERS else []), PROPERTIES_COLUMN, PERSONAL_PROPERTIES_COLUMN]


def _copy_chunks(layer: Layer, frame: gpd.GeoDataFrame) -> Iterator[tuple[int, pa.Buffer]]:
    """The rows of ``frame`` in :func:`_spatial_order` as binary COPY rows (:func:`_binary_rows`),
    ``COPY_CHUNK`` rows at a time: (rows, bytes).

    Plain polygons' points are read once, in the frame's order (:func:`gisapp.formats.derive.plain_polygons`),
    and each chunk's taken from them: shapely's geometries read in the spatial order, scattered in memory, cost
    several times as much (a 1M layer's WKB ~2.6 s against ~0.45 s)."""
    geoms = frame.geometry.values
    polygons = None if derive.is_wkb(geoms) or layer.geometry != "MultiPolygon" else derive.plain_polygons(geoms)
    order = _spatial_order(geoms)
    for start in range(0, len(frame), COPY_CHUNK):
        rows = order[start:start + COPY_CHUNK]
        yield len(rows), _binary_rows(_arrow_table(layer, frame.iloc[rows],
                                                   None if polygons is None else polygons.take(rows)))


#: What a binary COPY starts with (signature, flags, no header extension) and ends with (a field count of -1).
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_BINARY_TRAILER = b"\xff\xff"
#: Days from 1970-01-01 (Arrow's dates) to 2000-01-01 (PostgreSQL's).
_PG_EPOCH_DAYS = 10957
#: Each fixed-width Arrow type of :func:`_arrow_table`: the big-endian numpy type of its binary COPY value.
_BINARY_FIXED = {pa.date32(): ">i4", pa.int32(): ">i4", pa.int64(): ">i8", pa.float64(): ">f8"}
_EMPTY_BINARY = pa.scalar(b"", pa.binary())


def _binary_rows(table: pa.Table) -> pa.Buffer:
    """The rows of ``table`` (:func:`_arrow_table`'s columns: texts, EWKB, dates, int4, int8, float8) as the rows
    of a binary ``COPY`` (without its header and trailer): per row the field count, then per field its length
    (-1: NULL) and its value as the column type's ``recv`` function reads it (text: its UTF-8 bytes; geometry:
    EWKB; date: days since 2000 as int4; numbers big-endian).

    No Python object per value: each column's lengths and values become one Arrow binary array per run of
    fixed-width columns (a numpy record) or per text column (a length prefix joined to the values), and Arrow
    joins them row by row; the joined array's bytes are the rows one after another."""
    n, names = table.num_rows, table.column_names
    parts: list[pa.Array] = [_fixed_binary(np.full(n, len(names), dtype=">i2"))]
    k = 0
    while k < len(names):
        col = table.column(k)
        if col.type in _BINARY_FIXED:  # this column and the fixed-width ones after it: one record per row
            run = []
            while k < len(names) and table.column(k).type in _BINARY_FIXED:
                run.append(table.column(k))
                k += 1
            record = np.empty(n, dtype=[(f, t) for j, c in enumerate(run)
                                        for f, t in ((f"l{j}", ">i4"), (f"v{j}", _BINARY_FIXED[c.type]))])
            for j, c in enumerate(run):
                arr = c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c
                valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
                values = pc.fill_null(arr.cast(pa.int32()) if arr.type == pa.date32() else arr, 0)
                values = values.to_numpy(zero_copy_only=False)
                if arr.type == pa.date32():
                    values = values - _PG_EPOCH_DAYS
                record[f"l{j}"] = np.where(valid, np.dtype(_BINARY_FIXED[c.type]).itemsize, -1)
                record[f"v{j}"] = values
            if all(c.null_count == 0 for c in run):
                parts.append(_fixed_binary(record))
            else:  # a NULL is its length alone: each record cut at its first NULL's value, the rest moved up
                parts.append(_records_without_null_values(record, run))
            continue
        arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        arr = arr.cast(pa.binary())
        lengths = pc.fill_null(pc.binary_length(arr), -1).to_numpy(zero_copy_only=False).astype(">i4")
        parts += [_fixed_binary(lengths), pc.fill_null(arr, _EMPTY_BINARY)]
        k += 1
    rows = pc.binary_join_element_wise(*parts, _EMPTY_BINARY)
    if isinstance(rows, pa.ChunkedArray):
        rows = rows.combine_chunks()
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int32)[rows.offset:rows.offset + n + 1]
    return rows.buffers()[2][int(offsets[0]):int(offsets[-1])] if n else pa.py_buffer(b"")


def _fixed_binary(values: np.ndarray) -> pa.Array:
    """Each element's bytes (a numpy array of fixed-width elements) as an Arrow binary array."""
    width = values.dtype.itemsize
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values),
                                                [None, pa.py_buffer(np.ascontiguousarray(values).tobytes())]) \
        .cast(pa.binary())


def _records_without_null_values(record: np.ndarray, run: list) -> pa.Array:
    """:func:`_fixed_binary` of the records of a run of fixed-width columns some of whose values are NULL:
    a NULL field is its length (-1) without a value, so each field becomes a binary array of its own (length and
    value, or the length alone), joined row by row."""
    out = []
    for j, c in enumerate(run):
        field = np.empty(len(record), dtype=[("l", ">i4"), ("v", record.dtype[f"v{j}"])])
        field["l"], field["v"] = record[f"l{j}"], record[f"v{j}"]
        whole = _fixed_binary(field)
        if c.null_count:
            whole = pc.if_else(pa.array(record[f"l{j}"] >= 0), whole, pa.scalar(b"\xff\xff\xff\xff", pa.binary()))
        out.append(whole)
    return pc.binary_join_element_wise(*out, _EMPTY_BINARY)


#: Bytes of COPY rows :class:`_Prepared` makes ahead of the writer at most (one chunk of :data:`COPY_CHUNK` rows
#: whatever its size): a layer of a million rows (~1 GB of them) while the server builds the previous one's indexes,
#: so that its COPY then waits for the server alone.
PREPARED_BYTES = 1_200_000_000
_DONE = object()


class _Prepared:
    """The frames of a replace typed (:func:`gisapp.schema.coerce`) and, for the layers ``convert``, their COPY
    binary COPY rows made (:func:`_copy_chunks`), in the order of ``frames`` (every frame typed before the first
    rows), by a thread beside the writer.

    The writer's connection waits on the server (history, COPY, index builds, ``ANALYZE``) with Python's
    interpreter lock released, so the next layer's rows are made meanwhile: a load costs about the larger of
    the client's and the server's work instead of their sum.  At most :data:`PREPARED_BYTES` of chunks wait.
    An error in the thread is raised where its frame or chunks are asked for.
    """

    def __init__(self, layers: dict[str, Layer], frames: dict[str, gpd.GeoDataFrame], convert: Collection[str]):
        self._layers, self._frames, self._convert = layers, frames, set(convert)
        self._typed: dict[str, Future] = {name: Future() for name in frames}
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._room = threading.Condition()
        self._ahead = 0  # bytes of the chunks waiting in the queue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gisapp-copy-text", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        size = item[1].size if isinstance(item, tuple) else 0
        with self._room:
            while self._ahead and self._ahead + size > PREPARED_BYTES and not self._stop.is_set():
                self._room.wait(0.1)
            if self._stop.is_set():
                return False
            self._ahead += size
        self._queue.put(item)
        return True

    def _run(self) -> None:
        names = list(self._frames)
        for k, name in enumerate(names):  # every frame typed first: the writer sends their history rows meanwhile
            try:
                frame = schema.coerce(self._layers[name], self._frames[name], arrow_text=True)
            except BaseException as err:  # every later frame fails alike
                for later in names[k:]:
                    self._typed[later].set_exception(err)
                return
            self._typed[name].set_result(frame)
        for name in names:
            if name not in self._convert:
                continue
            frame = self._typed[name].result()
            try:  # on a frame object of its own (pandas caches columns per frame object; the writer reads too)
                for chunk in _copy_chunks(self._layers[name], frame.copy(deep=False)):
                    if not self._put(chunk):
                        return
            except BaseException as err:
                self._put(err)
                return
            if not self._put(_DONE):
                return

    def typed(self, name: str) -> gpd.GeoDataFrame:
        """The typed frame of layer ``name`` (waits for it)."""
        return self._typed[name].result()

    def chunks(self, name: str) -> Iterator[tuple[int, pa.Buffer]] | None:
        """The COPY rows of layer ``name`` when it is one of ``convert`` (asked for in the order of the frames),
        else ``None``."""
        return self._chunks() if name in self._convert else None

    def _chunks(self) -> Iterator[tuple[int, pa.Buffer]]:
        while True:
            item = self._queue.get()
            if isinstance(item, tuple):
                with self._room:
                    self._ahead -= item[1].size
                    self._room.notify()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop the thread (a write that failed or did not take every chunk) and wait for it."""
        self._stop.set()
        self._thread.join()



@contextlib.contextmanager
def _nothing_changed(con: psycopg.Connection, what: str) -> Iterator[None]:
    """A database error of a write's transaction in ``con`` as a :class:`StoreError` saying ``what`` failed and
    nothing was changed (a lost connection stays itself: the caller's retry looks for it)."""
    try:
        yield
    except psycopg.Error as err:
        if isinstance(err, psycopg.OperationalError) and con.broken:
            raise
        raise StoreError(f"{what} failed, nothing was changed: {str(err).strip().splitlines()[0]}") from err

def _arrow_table(layer: Layer, frame: gpd.GeoDataFrame, polygons: Polygons | None = None) -> pa.Table:
    """The rows to COPY (:func:`_binary_rows`): typed columns, the search texts, the GeoJSON, geometry as EWKB
    (``polygons``: the frame's geometries as :func:`gisapp.formats.derive.plain_polygons` reads them, if read)."""
    arrays = {}
    for f in layer.fields:
        col = frame[f.name]
        if f.type == "date":
            arrays[f.name] = pa.array(col.to_numpy(dtype="datetime64[D]"), type=pa.date32(), from_pandas=True)
        elif f.type == "int":
            arrays[f.name] = pa.array(col.astype("Int64"), type=pa.int64(), from_pandas=True).cast(pa.int32())
        elif f.type == "float":
            arrays[f.name] = pa.array(col.to_numpy(dtype="float64", na_value=np.nan), type=pa.float64(),
                                      from_pandas=True)
        else:
            arrays[f.name] = derive.arrow_strings(col)
    derived = derived_columns(layer, frame, polygons)  # column by column, over the cores
    for name in (SEARCH_COLUMN, PERSONAL_SEARCH_COLUMN, GEOJSON_COLUMN):
        arrays[name] = derived[name]
    arrays["geom"] = _ewkb(derived["wkb"])
    if layer.name in HASHED_LAYERS:
        arrays["row_hash"] = pa.array(row_hashes(layer, frame), type=pa.int64())
    arrays.update(stored_properties(layer, {f.name: arrays[f.name] for f in layer.fields}))
    return pa.table(arrays)


#: What follows the first 4 bytes of a little-endian 2-D WKB to make it EWKB with SRID 5899:
#: the type's high byte with the SRID flag, then the SRID.
_SRID_SPLICE = pa.scalar(b"\x20" + SRID.to_bytes(4, "little"), pa.binary())


def _ewkb(wkb: pa.Array) -> pa.Array:
    """EWKB with SRID 5899 of little-endian ``wkb`` (:func:`gisapp.formats.derive.geometry_wkb`; null where
    missing), what a binary COPY feeds a geometry column.

    Arrow splices the SRID flag and value into 2-D WKB (shapely's own EWKB is several times slower).  Anything
    else (3-D, ...) goes through shapely.
    """
    n = len(wkb)
    if n == 0 or wkb.null_count == n:
        return pa.nulls(n, pa.binary())
    byte_order = pc.binary_slice(wkb, 0, 1)
    type_high = pc.binary_slice(wkb, 4, 5)
    plain = pc.all(pc.equal(byte_order, pa.scalar(b"\x01", pa.binary()))).as_py() is not False and \
        pc.all(pc.equal(type_high, pa.scalar(b"\x00", pa.binary()))).as_py() is not False
    if not plain:
        with_srid = shapely.set_srid(shapely.from_wkb(wkb.to_numpy(zero_copy_only=False)), SRID)
        return pa.array(shapely.to_wkb(with_srid, include_srid=True), type=pa.binary(), from_pandas=True)
    ewkb = pc.binary_join_element_wise(pc.binary_slice(wkb, 0, 4), _SRID_SPLICE,
                                       pc.binary_slice(wkb, 5, 2**31 - 1), _EMPTY_BINARY)
    return ewkb.combine_chunks() if isinstance(ewkb, pa.ChunkedArray) else ewkb


#: Table pages (8 kB) read by one query of :func:`_packed_table` (its values stay far below a value's 1 GB).
PACKED_PAGES = 32768
_NULL_DAYS = -2**31  # a date no PostgreSQL date is: days since 1970 of a missing date
_NULL_INT = -2**63  # an int8 no int4 column holds: a missing integer


def _packed_sql(table: str, types: dict[str, str], *, utf8: bool = False) -> str:
    """One row of every column of ``table``'s rows in a page range (``ctid`` from ``%s`` to before ``%s``;
    ``NULL``: the end), each column packed into ``bytea`` values in the same row order (one aggregate level:
    every aggregate sees the rows in the same sequence).

    Text and the geometry (WKB): the values' bytes one after another and their byte lengths (int4, -1
    where missing); dates: days since 1970 (int4, :data:`_NULL_DAYS` where missing); integers: int8
    (:data:`_NULL_INT`); floats: float8 (NaN where missing: a stored float is never NaN, the stores write
    NaN as missing).  Big-endian, as PostgreSQL's binary ``send`` functions write them.
    ``utf8`` (a UTF-8 server and connection): texts are joined as ``text`` as they are stored, the bytes the
    connection sends unconverted (read them as bytes), without a ``convert_to`` per value (~20 % of a text
    column's packing).
    """
    parts, inner = ["count(*)"], []
    for k, (n, t) in enumerate([*types.items(), ("geometry", "geometry")]):
        # each value computed once, in the subquery (an expression written twice in the aggregates, as a
        # value and in its length, is evaluated twice: ST_AsBinary of a million rows ~1 s more)
        # texts as UTF-8 whatever the server's or the connection's encoding (the lengths of the same bytes)
        col = "ST_AsBinary(geom)" if t == "geometry" else f"convert_to({n}, 'UTF8')" if t == "text" and not utf8 \
            else n
        inner.append(f"{col} AS v{k}")
        if t in ("text", "geometry"):
            joined = "text" if t == "text" and utf8 else "bytea"
            parts += [f"string_agg(v{k}, ''::{joined})",
                      f"string_agg(int4send(coalesce(octet_length(v{k}), -1)), ''::bytea)"]
        elif t == "date":
            parts.append(f"string_agg(int4send(coalesce(v{k} - DATE '1970-01-01', {_NULL_DAYS})), ''::bytea)")
        elif t == "int":
            parts.append(f"string_agg(int8send(coalesce(v{k}::int8, {_NULL_INT})), ''::bytea)")
        else:
            parts.append(f"string_agg(float8send(coalesce(v{k}::float8, 'NaN')), ''::bytea)")
    # OFFSET 0 keeps the planner from pulling the subquery up (which would write its expressions back twice)
    return (f"SELECT {', '.join(parts)} FROM (SELECT {', '.join(inner)} FROM {table} "
            "WHERE ctid >= %s::tid AND (%s::tid IS NULL OR ctid < %s::tid) OFFSET 0) packed")


def _packed_table(con: psycopg.Connection, table: str, types: dict[str, str]) -> pa.Table | None:
    """Every row of ``table``'s columns ``types`` (name → field type) and its geometry (WKB, as ``geometry``),
    in the table's own order, read as :func:`_packed_sql` packs them, a range of :data:`PACKED_PAGES` pages
    per query, all in one snapshot; ``None`` for an empty table."""
    chunks: list[pa.Table] = []
    with con.transaction():
        con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        con.execute("SET LOCAL jit TO off")  # nothing to compile for: a scan
        pages, server_encoding = one(con.execute(
            "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int8, "
            "current_setting('server_encoding')", [table]))
        utf8 = server_encoding == "UTF8" and con.info.encoding == "utf-8"
        query = _packed_sql(table, types, utf8=utf8)
        cur = con.cursor(binary=True)
        if utf8:  # the joined texts as the bytes sent (UTF-8), not decoded into a str and encoded back
            cur.adapters.register_loader("text", ByteaBinaryLoader)
        for start in range(0, max(int(pages), 1), PACKED_PAGES):
            end = None if start + PACKED_PAGES >= pages else f"({start + PACKED_PAGES},0)"
            row = one(cur.execute(query, [f"({start},0)", end, end]))
            if row[0]:
                chunks.append(_unpacked(row, types))
    if not chunks:
        return None
    return pa.concat_tables(chunks).combine_chunks()


def _byte_order(keys: pa.Array) -> np.ndarray:
    """The indices that sort the texts ``keys`` by their bytes, as ``pyarrow.compute.sort_indices`` (stable).

    Keys of up to 32 bytes (every layer's) are cut into big-endian 64-bit words, zero-padded (a text holds no
    zero byte, so a prefix sorts first), and sorted word by word from the last, each a stable sort of the
    words in the order so far (as ``lexsort``, ~1.5× faster: each pass sorts one array): ~3× faster than
    Arrow's comparison sort of a million texts; longer keys take Arrow's.
    """
    n = len(keys)
    if n == 0 or keys.null_count:
        return pc.sort_indices(keys).to_numpy()
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int32)[keys.offset:keys.offset + n + 1].astype(np.int64)
    lengths = np.diff(offsets)
    words = -(-int(lengths.max()) // 8)
    if words > 4:
        return pc.sort_indices(keys).to_numpy()
    data = np.frombuffer(keys.buffers()[2], dtype=np.uint8)[:offsets[-1]]
    # each key's 8-byte windows read from the data (padded so that the last key's reach past it), then the
    # bytes past the key's end zeroed
    windows = np.lib.stride_tricks.sliding_window_view(np.concatenate([data, np.zeros(8 * words, np.uint8)]), 8)
    columns = []
    for w in range(words):
        chunk = windows[offsets[:-1] + 8 * w]
        chunk = np.where(np.arange(8 * w, 8 * w + 8) < lengths[:, None], chunk, np.uint8(0)).astype(np.uint8)
        columns.append(np.ascontiguousarray(chunk).view(">u8").ravel().astype(np.uint64))
    order = np.argsort(columns[-1], kind="stable")
    for column in columns[-2::-1]:
        order = order[np.argsort(column[order], kind="stable")]
    return order


def _unpacked(row: tuple, types: dict[str, str]) -> pa.Table:
    """The Arrow table of one row of :func:`_packed_sql` (``row[0]`` rows)."""
    n, values, arrays = int(row[0]), iter(row[1:]), {}
    for name, t in [*types.items(), ("geometry", "geometry")]:
        if t in ("text", "geometry"):
            data, lengths = next(values), np.frombuffer(next(values), dtype=">i4").astype(np.int64)
            valid = lengths >= 0
            offsets = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(np.where(valid, lengths, 0), out=offsets[1:])
            arrow_type = pa.large_binary() if t == "geometry" else pa.large_string()
            mask = None if valid.all() else pa.array(valid).buffers()[1]
            array = pa.Array.from_buffers(arrow_type, n, [mask, pa.py_buffer(offsets), pa.py_buffer(data or b"")],
                                          null_count=int(n - valid.sum()))
            arrays[name] = array.cast(pa.binary() if t == "geometry" else pa.string())
        elif t == "date":
            days = np.frombuffer(next(values), dtype=">i4").astype(np.int32)
            arrays[name] = pa.array(days, type=pa.int32(), mask=days == _NULL_DAYS).cast(pa.date32())
        elif t == "int":
            ints = np.frombuffer(next(values), dtype=">i8")
            arrays[name] = pa.array(ints.astype(np.int32), type=pa.int32(), mask=ints == _NULL_INT)
        else:
            floats = np.frombuffer(next(values), dtype=">f8").astype(np.float64)
            arrays[name] = pa.array(floats, type=pa.float64(), mask=np.isnan(floats))
    return pa.table(arrays)


#: Layers whose rows carry a hash of their values (``row_hash``, migration 13): a replace of one writes only
#: the rows whose hash is new and deletes only those whose hash is gone (:func:`_replace_changed`).
HASHED_LAYERS = frozenset({"findings"})
#: A replace of a hashed layer that would write or delete more than this share of its rows (and more than
#: :data:`CHANGED_MIN` rows) loads the layer whole instead: a new table, its indexes built once, frozen rows.
CHANGED_SHARE = 0.3
CHANGED_MIN = 10_000
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser of uint64 values (wrapping arithmetic): every input bit moves every output bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def _geometry_hashes(geoms: np.ndarray, multi: bool,
                     bounds: list[list[float] | None] | None = None) -> np.ndarray:
    """A uint64 of each geometry: its type, parts and coordinates in order.

    ``multi``: a Polygon hashes as the MultiPolygon of its one polygon (what a MultiPolygon layer stores,
    :func:`gisapp.geo.to_multipolygons`, so a frame read back hashes as the frame written).  ``bounds``: a list
    the box of all the coordinates (minx, miny, maxx, maxy; ``None`` without any) is appended to, what
    :func:`_frame_bounds` says of the geometries (each one's box is that of its coordinates)."""
    parts = _wkb_parts(geoms) if derive.is_wkb(geoms) else None
    if parts is not None:
        coords, owner, types, count = parts
    else:
        geoms = derive.geometry_objects(geoms)
        # the coordinates with their owners' index, the counts from it: one walk over the geometries (a second,
        # get_num_coordinates, cost more than the index where an analysis left its objects scattered in memory)
        coords, owner = shapely.get_coordinates(geoms, return_index=True)
        types, count = shapely.get_type_id(geoms).astype(np.int64), shapely.get_num_geometries(geoms)
    if bounds is not None:
        # column by column: numpy reduces an (n, 2) array along its rows ~20× slower (0.23 s at 3.5M coordinates)
        x, y = coords[:, 0], coords[:, 1]
        bounds.append([float(x.min()), float(y.min()), float(x.max()), float(y.max())] if len(coords) else None)
    counts = np.bincount(owner, minlength=len(geoms)).astype(np.int64)
    starts = np.zeros(len(geoms) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    bits = np.ascontiguousarray(coords, dtype=np.float64).view(np.uint64)
    position = np.arange(len(owner), dtype=np.int64) - starts[owner]
    # the mixed position of each coordinate from a table of the few positions there are
    mixed = _mix(np.arange(int(counts.max()) if len(owner) else 0, dtype=np.uint64) + _GOLDEN)[position]
    each = _mix(bits[:, 0] ^ _mix(bits[:, 1] ^ mixed))
    sums = np.zeros(len(geoms), dtype=np.uint64)
    has = counts > 0
    if len(each):
        sums[has] = np.add.reduceat(each, starts[:-1][has])
    if multi:
        types[types == 3] = 6
    shape = (types + 2) * 1_000_003 + count
    return _mix(sums ^ _mix(shape.astype(np.uint64) * _GOLDEN + counts.astype(np.uint64)))


def _wkb_parts(wkb) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """What :func:`_geometry_hashes` reads of each geometry, from WKB without an object per geometry
    (:func:`gisapp.formats.wkb.read_polygons`): the coordinates and their owners (``shapely.get_coordinates``),
    the type ids and the numbers of parts; ``None`` (ask shapely) unless every geometry is a 2-D little-endian
    Polygon or MultiPolygon with points, or missing."""
    arr = derive.wkb_array(wkb)
    polygons = read_polygons(arr)
    counts = polygons.point_counts()
    missing = arr.is_null().to_numpy(zero_copy_only=False)
    if polygons.other.any() or len(polygons.fallback) or (counts[~missing] == 0).any():
        return None
    types = np.where(missing, -1, np.where(polygons.multi, 6, 3)).astype(np.int64)
    parts = np.where(polygons.multi, np.diff(polygons.feature_offsets), ~missing).astype(np.int64)
    return polygons.xy, polygons.point_features(), types, parts


def row_hashes(layer: Layer, frame: gpd.GeoDataFrame, bounds: list[list[float] | None] | None = None) -> np.ndarray:
    """A 64-bit hash (int64) of each row of ``frame`` (typed by :func:`gisapp.schema.coerce`): its fields and geometry.

    Rows stored alike hash alike (a Polygon as the MultiPolygon a MultiPolygon layer stores; in any process:
    no per-process seed); different rows collide with a chance of ~2⁻⁶⁴.  Texts are joined by Arrow with
    their lengths hashed beside them (so no two ways to split a joined text hash alike) and the joined bytes
    go through pandas' SipHash; numbers, dates and coordinates are mixed in numpy.  ``bounds``: as
    :func:`_geometry_hashes`'.
    """
    n = len(frame)
    h = np.full(n, np.uint64(len(layer.fields)), dtype=np.uint64)
    texts = []
    for f in layer.fields:
        col = frame[f.name]
        if f.type == "text":
            text = derive.arrow_strings(col)  # an Arrow-backed column as it is (no Python string per value)
            texts.append(text)
            value = pc.fill_null(pc.binary_length(text), -1).to_numpy().astype(np.int64).view(np.uint64)
        elif f.type == "date":
            value = col.to_numpy(dtype="datetime64[ms]").view(np.int64).view(np.uint64)
        elif f.type == "int":
            value = col.astype("Int64").to_numpy(dtype="float64", na_value=np.nan).view(np.uint64)
        else:
            value = col.to_numpy(dtype="float64", na_value=np.nan).view(np.uint64)
        if f.type in ("int", "float"):  # one NaN (missing) for all
            value = np.where(np.isnan(value.view(np.float64)), np.uint64(0x7FF8000000000000), value)
        h = _mix(h * _GOLDEN + value)
    if texts:
        joined = pc.binary_join_element_wise(*texts, "", null_handling="replace", null_replacement="")
        # categorize=False: the same hashes (pandas hashes each distinct value alike either way) without first
        # factorizing the texts, nearly all distinct here (0.9 s of a 1 s hash at 700,000 findings)
        h = _mix(h * _GOLDEN + hash_array(joined.cast(pa.binary()).to_numpy(zero_copy_only=False), categorize=False))
    h = _mix(h * _GOLDEN + _geometry_hashes(frame.geometry.values, layer.geometry == "MultiPolygon", bounds))
    return h.view(np.int64)


def _member(values: np.ndarray, ordered: np.ndarray) -> np.ndarray:
    """Whether each of ``values`` is in ``ordered`` (int64 arrays, ``ordered`` sorted): a binary search (with
    the sort ~10× ``np.isin``'s hashing at 700,000 values)."""
    if not len(ordered):
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
    return ordered[at] == values


def _stored_hashes(con: psycopg.Connection, table: str) -> tuple[np.ndarray, int]:
    """The hashes stored in the hashed layer ``table`` (sorted int64) and how many of its rows have none.

    Read in order from the hashes' index (migration 14: an index-only scan of a few MB where a scan of the
    table read every finding's row, ~400 MB at 700,000 findings) as one packed value; sorted here should the
    server have taken another way.
    """
    blob, unknown = one(con.execute(
        f"SELECT (SELECT string_agg(int8send(h), ''::bytea) FROM (SELECT row_hash AS h FROM {table} "
        f"WHERE row_hash IS NOT NULL ORDER BY row_hash) s), (SELECT count(*) FROM {table} WHERE row_hash IS NULL)"))
    stored = np.frombuffer(blob or b"", dtype=">i8").astype(np.int64)
    if len(stored) > 1 and (stored[1:] < stored[:-1]).any():
        stored = np.sort(stored)
    return stored, int(unknown)


def _replace_changed(con: psycopg.Connection, layer: Layer, frame: gpd.GeoDataFrame,
                     counter: _RowCounter | None = None,
                     bounds: dict[str, list[float] | None] | None = None) -> list[tuple] | None:
    """Replace the rows of the hashed ``layer`` by ``frame``, writing only what changed; its change-log entries.

    The stored rows' hashes (one packed value) against :func:`row_hashes` of ``frame``: rows whose hash is
    not stored are written (COPY), stored rows whose hash ``frame`` lacks (or without one) are deleted,
    the rest stay as they are.  A feature written and deleted is logged as an ``update``, one only written as
    an ``insert``, one only deleted as a ``delete``; more than :data:`~gisapp.store.base.REPLACE_DETAIL_MAX`
    changes log one ``replace``.  ``None`` (nothing done) when the change is large enough that loading the
    layer whole costs less (:data:`CHANGED_SHARE`).  ``bounds`` gets the extent of ``frame`` (for
    :func:`_set_stats`, from the coordinates the hashes read).
    """
    name, key = layer.name, layer.key
    # the stored hashes read by the server while this thread hashes the frame (the connection waits with the
    # interpreter lock released)
    with ThreadPoolExecutor(max_workers=1) as reader:
        reading = reader.submit(_stored_hashes, con, name)
        box: list[list[float] | None] = []
        new = row_hashes(layer, frame, box)
        stored, unknown = reading.result()
    if bounds is not None:
        bounds[name] = box[0]
    old_count = len(stored) + unknown
    ordered = np.sort(new)
    if len(ordered) > 1 and (ordered[1:] == ordered[:-1]).any():  # a row twice: the whole load refuses it
        return None                                                 # (the key's unique index)
    if not unknown and np.array_equal(ordered, stored):  # the same rows (a full analysis that found what is
        write, gone = np.zeros(len(new), dtype=bool), stored[:0]  # stored): no binary search of each hash
    else:
        write = ~_member(new, stored)
        gone = stored[~_member(stored, ordered)]
    changes = int(write.sum()) + len(gone) + int(unknown)
    if changes > max(CHANGED_MIN, CHANGED_SHARE * max(len(frame), int(old_count))):
        return None
    removed: list[tuple] = []
    if len(gone) or unknown:
        removed = con.execute(f"DELETE FROM {name} WHERE row_hash = ANY(%s::int8[]) OR row_hash IS NULL "
                              f"RETURNING {key}, {_BOX_SQL}", [gone.tolist()]).fetchall()
    written = frame.iloc[np.flatnonzero(write)]
    if len(written):
        _copy_into(con, name, layer, written)
    if counter is not None:
        counter.add(len(frame))
    if changes > len(frame) * 0.1 + 1000:
        con.execute(f"ANALYZE {name}")
    old_keys = [str(r[0]) for r in removed]
    if len(written) + len(removed) > REPLACE_DETAIL_MAX:
        return boxed([(name, None, "replace", None)], {}, {})
    entries = change_rows(layer, written, "upsert", old_keys)
    entries += delete_rows(layer, set(old_keys) - {e[1] for e in entries})
    return boxed(entries, {str(r[0]): r[1:] for r in removed}, frame_boxes(layer, written))


#: Load replaced layers with ``COPY … FREEZE`` (a module setting so that the benchmark can compare).
_FREEZE_LOADS = True
#: Memory for a replaced layer's index builds (``maintenance_work_mem`` in its transaction, when the server's is less).
INDEX_MEMORY = "256MB"
_INDEX_DEF = re.compile(r"^CREATE (UNIQUE )?INDEX (\S+) ON (\S+) USING ")


def _replace_layer(con: psycopg.Connection, layer: Layer, frame: gpd.GeoDataFrame,
                   counter: _RowCounter | None = None, *,
                   chunks: Iterator[tuple[int, pa.Buffer]] | None = None) -> None:
    """Load ``frame`` into a new table with the old one's indexes and grants, then swap (``chunks``: its COPY
    text already made, see :func:`_copy_into`)."""
    name, load = layer.name, f"{layer.name}__load"
    indexes = _index_defs(con, name)
    con.execute(f"DROP TABLE IF EXISTS {load}")
    _create_like(con, load, name)
    # Frozen: the first reads after a load set no hint bits (no page dirtied by a reader), and autovacuum finds
    # nothing to freeze later (at 1M rows it rewrote every page, minutes after the load, under the readers).
    _copy_into(con, load, layer, frame, counter, freeze=_FREEZE_LOADS, chunks=chunks)
    _index_memory(con)
    _swap_in(con, layer, load, _indexes_on(con, indexes, load))
    con.execute(f"ANALYZE {name}")


def _index_defs(con: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    """The indexes of ``table``: (name, definition), as ``pg_indexes`` gives them."""
    return con.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                       "AND tablename = %s", [table]).fetchall()


def _create_like(con: psycopg.Connection, table: str, like: str) -> None:
    """Create ``table`` with the columns, defaults, constraints, storage and comments of ``like`` (no index)."""
    con.execute(f"CREATE TABLE {table} (LIKE {like} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                "INCLUDING STORAGE INCLUDING COMMENTS)")


def _swap_in(con: psycopg.Connection, layer: Layer, load: str, renames: list[tuple[str, str]]) -> None:
    """Replace ``layer``'s table by the table ``load``: the old one dropped, ``load`` and its indexes
    (:func:`_indexes_on`' ``renames``) renamed in its place, the old table's grants given again."""
    grants = _grants(con, layer.name)
    _before_swap(con, layer)
    con.execute(f"DROP TABLE {layer.name}")
    con.execute(f"ALTER TABLE {load} RENAME TO {layer.name}")
    for temporary, index in renames:
        con.execute(f"ALTER INDEX {temporary} RENAME TO {index}")
    _grant(con, layer.name, grants)


def _grants(con: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    """The privileges others hold on ``table``: (grantee or ``PUBLIC``, privilege)."""
    return con.execute(
        "SELECT a.grantee::regrole::text, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a "
        "WHERE c.oid = %s::regclass AND a.grantee <> 0 AND a.grantee <> c.relowner "
        "UNION ALL SELECT 'PUBLIC', a.privilege_type FROM pg_class c, aclexplode(c.relacl) a "
        "WHERE c.oid = %s::regclass AND a.grantee = 0", [table, table]).fetchall()


def _grant(con: psycopg.Connection, table: str, grants: list[tuple[str, str]]) -> None:
    """Give :func:`_grants`' privileges on ``table``."""
    for grantee, privilege in grants:
        who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
        con.execute(sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privilege), sql.Identifier(table), who))


def _indexes_on(con: psycopg.Connection, indexes: list[tuple[str, str]], table: str) -> list[tuple[str, str]]:
    """Build the ``indexes`` (name, definition: ``pg_indexes``) of another table on ``table``, each under a
    temporary name; (temporary name, name) of each, to rename once the other table is gone."""
    statements, renames = _index_statements(indexes, table)
    for ddl in statements:
        con.execute(ddl)
    return renames


def _index_statements(indexes: list[tuple[str, str]], table: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The statements that build ``indexes`` (name, definition: ``pg_indexes``) of another table on ``table``,
    each under a temporary name, and (temporary name, name) of each, to rename once the other table is gone."""
    statements, renames = [], []
    for index, ddl in indexes:
        temporary = f"{index[:56]}__load"
        statements.append(_INDEX_DEF.sub(rf"CREATE \g<1>INDEX {temporary} ON {table} USING ", ddl))  # no UNIQUE: ""
        renames.append((temporary, index))
    return statements, renames


class _Staging:
    """The layers of a replace loaded and indexed beside the write's transaction, swapped in by it.

    In one transaction the server does one thing at a time: a 1M layer's index builds (~9 s) held up the next
    layer's ``COPY``.  Here each layer's rows are COPYed (``FREEZE``) into a load table created and committed
    on a connection of its own (:meth:`load`), and its indexes built (temporary names) and its statistics
    computed on others, by builder threads, while the next layer is COPYed; the write's transaction then swaps
    the load tables in (:meth:`swap`: the old table dropped, the load table and its indexes renamed, the grants
    given again).  No reader looks at a load table, and the store changes at the write's commit alone: a
    failed write rolls its transaction back and drops the load tables (:meth:`close`; a writer killed
    meanwhile leaves them to the next write of the layer, which drops them first).  Only for a store whose
    schema is current (the load tables are made like the committed layer tables).

    While layers are still COPYed one build runs at a time (the client makes the next layer's rows meanwhile,
    and the ``COPY`` needs the server too); once the last is loaded (:meth:`tail`) :data:`TAIL_BUILDS` run at
    once, each on a connection of its own: the last layer's GiST build and its ``ANALYZE`` take one process
    each, and beside them the B-trees keep the other cores busy (at 1M rows per layer on 2 cores the last
    layer's builds took ~9 s one after another, the client waiting).  ``CREATE INDEX`` takes a SHARE lock:
    several run on one table at once.
    """

    def __init__(self, url: str):
        self._url = url
        self._loaded: dict[str, tuple[Layer, list[tuple[str, str]], Future]] = {}  # load → layer, renames, built
        self._jobs: collections.deque[tuple[str, str | None]] = collections.deque()  # (load, DDL; None: ANALYZE)
        self._pending: dict[str, int] = {}  # load → its jobs not finished yet
        self._blocking: dict[str, set[str]] = {}  # load → the builds its ANALYZE waits for (expression indexes)
        self._cond = threading.Condition()
        self._slots, self._running, self._stopped = 1, 0, False
        self._threads = [threading.Thread(target=self._work, name=f"gisapp-index-{k}", daemon=True)
                         for k in range(TAIL_BUILDS)]
        for thread in self._threads:
            thread.start()

    def load(self, con: psycopg.Connection, layer: Layer, frame: gpd.GeoDataFrame, counter: _RowCounter | None,
             chunks: Iterator[tuple[int, pa.Buffer]]) -> None:
        """COPY ``frame`` (its rows: ``chunks``) into ``layer``'s load table, then queue its index builds and
        its ``ANALYZE``; the old table's indexes are read in the write's transaction ``con``."""
        name, load = layer.name, f"{layer.name}__load"
        indexes = _index_defs(con, name)
        # ANALYZE gathers the statistics of expression indexes too: it waits for those builds, not the others
        expressions = {r[0] for r in con.execute("SELECT indexrelid::regclass::text FROM pg_index "
                                                 "WHERE indrelid = %s::regclass AND indexprs IS NOT NULL", [name])}
        built: Future = Future()
        with _pool(self._url).connection() as loader, loader.transaction():
            loader.execute(f"DROP TABLE IF EXISTS {load}")
            _create_like(loader, load, name)
            self._loaded[load] = (layer, [], built)  # dropped by close() if the write fails from here on
            _copy_into(loader, load, layer, frame, counter, freeze=_FREEZE_LOADS, chunks=chunks)
        statements, renames = _index_statements(indexes, load)
        self._loaded[load] = (layer, renames, built)
        blocking = [ddl for (index, _), ddl in zip(indexes, statements, strict=True) if index in expressions]
        gist = [ddl for ddl in statements if " USING gist " in ddl and ddl not in blocking]  # the longest
        rest = [ddl for ddl in statements if ddl not in blocking and ddl not in gist]
        with self._cond:
            self._pending[load] = len(statements) + 1
            self._blocking[load] = set(blocking)
            self._jobs.extend((load, ddl) for ddl in [*blocking, *gist])
            if not blocking:
                self._jobs.append((load, None))
            self._jobs.extend((load, ddl) for ddl in rest)
            self._cond.notify_all()

    def tail(self) -> None:
        """Every layer is loaded: :data:`TAIL_BUILDS` builds run at once from now on."""
        with self._cond:
            self._slots = TAIL_BUILDS
            self._cond.notify_all()

    def _work(self) -> None:
        """A builder thread: the queued jobs one after another, while fewer than the slots run."""
        while True:
            with self._cond:
                while not self._stopped and (not self._jobs or self._running >= self._slots):
                    self._cond.wait()
                if self._stopped:
                    return
                load, ddl = self._jobs.popleft()
                self._running += 1
            built = self._loaded[load][2]
            error = None
            try:
                if not built.done():  # (not after one of the layer's jobs failed)
                    with _pool(self._url).connection() as con, con.transaction():
                        if ddl is None:
                            con.execute(f"ANALYZE {load}")
                        else:
                            _index_memory(con)
                            con.execute(ddl)
            except BaseException as err:  # noqa: BLE001 - raised in the write's thread by swap()
                error = err
            with self._cond:
                self._running -= 1
                self._pending[load] -= 1
                if ddl in self._blocking[load]:
                    self._blocking[load].discard(ddl)
                    if not self._blocking[load]:
                        self._jobs.appendleft((load, None))
                if not built.done() and (error is not None or not self._pending[load]):
                    if error is not None:
                        built.set_exception(error)
                    else:
                        built.set_result(self._loaded[load][1])
                self._cond.notify_all()

    def swap(self, con: psycopg.Connection) -> None:
        """Swap every loaded layer in, in the write's transaction ``con`` (each once its indexes are built)."""
        self.tail()
        for load, (layer, _renames, built) in self._loaded.items():
            _swap_in(con, layer, load, built.result())

    def close(self, *, failed: bool, held: psycopg.Connection | None = None) -> None:
        """Stop the builders (a build under way ends first); once the write ``failed`` (its transaction rolled
        back: the swapped layers are load tables again) drop the load tables, holding the writers' lock (another
        write may have begun and made its own): on ``held``, the connection that holds it for this thread, else
        in a transaction that takes it."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
        if not failed or not self._loaded:
            return
        with contextlib.suppress(psycopg.Error, StoreError), contextlib.ExitStack() as stack:
            con = held
            if con is None:
                con = stack.enter_context(_pool(self._url).connection())
                stack.enter_context(con.transaction())
                con.execute("SELECT pg_advisory_xact_lock(%s)", [_WRITE_LOCK_KEY])
            for load in self._loaded:
                con.execute(f"DROP TABLE IF EXISTS {load}")


#: Index builds (and ``ANALYZE``) of a replace's load tables that run at once once every layer is loaded
#: (:class:`_Staging`): one per core of the measured 2-core server (each B-tree build may add the server's
#: parallel workers).
TAIL_BUILDS = 2


def _index_memory(con: psycopg.Connection) -> None:
    """Sorts of a million keys in memory (the default 64 MB spills them to disk), for this transaction only."""
    con.execute("SELECT set_config('maintenance_work_mem', %s, true) "
                "WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes(%s)",
                [INDEX_MEMORY, INDEX_MEMORY])


def _before_swap(con: psycopg.Connection, layer: Layer) -> None:
    """Hook between loading a layer and swapping it in (tests inject failures here)."""


def _upsert_layer(con: psycopg.Connection, layer: Layer, frame: gpd.GeoDataFrame,
                  counter: _RowCounter | None = None) -> int:
    """Replace rows with the keys of ``frame`` and add the others; how many stored rows were replaced."""
    name, key = layer.name, layer.key
    con.execute(f"CREATE TEMP TABLE gisapp_upsert (LIKE {name} INCLUDING DEFAULTS) ON COMMIT DROP")
    _copy_into(con, "gisapp_upsert", layer, frame, counter)
    replaced = con.execute(f"DELETE FROM {name} t USING gisapp_upsert u WHERE t.{key} = u.{key}").rowcount
    _before_swap(con, layer)
    con.execute(f"INSERT INTO {name} SELECT * FROM gisapp_upsert")
    con.execute("DROP TABLE gisapp_upsert")
    if len(frame) > 10_000:
        con.execute(f"ANALYZE {name}")
    return max(replaced, 0)


#: Upserts of at most this many rows update the layer's count and extent from what they wrote, without
#: scanning the layer (an occupancy saved with its findings); larger writes recount.
SMALL_UPSERT = 5000


def _frame_bounds(frame: gpd.GeoDataFrame) -> list[float] | None:
    """The box (minx, miny, maxx, maxy) of ``frame``'s geometries, ``None`` when it has none (or only empty ones)."""
    b = derive.geometry_bounds(frame.geometry.values)
    b = b[~np.isnan(b[:, 0])]  # (missing or empty)
    if not len(b):
        return None
    return [float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())]


def _set_stats(con: psycopg.Connection, layer: Layer, frame: gpd.GeoDataFrame,
               known: dict[str, list[float] | None] | None = None) -> None:
    """Record the count and extent of a replaced ``layer`` in ``gisapp_layers``: those of ``frame``, the rows
    it now holds (no scan of the million rows just loaded); the extent from ``known`` when it has the layer's."""
    found = known[layer.name] if known is not None and layer.name in known else _frame_bounds(frame)
    bounds: list[float | None] = list(found) if found else [None] * 4
    con.execute("UPDATE gisapp_layers SET count = %s, minx = %s, miny = %s, maxx = %s, maxy = %s WHERE name = %s",
                [len(frame), *bounds, layer.name])


def _update_stats_by(con: psycopg.Connection, layer: Layer, frame: gpd.GeoDataFrame | None, removed: int) -> None:
    """Update the count and extent of ``layer`` in ``gisapp_layers`` by a small upsert, without a scan.

    The count is exact (rows removed, rows added); the extent grows to hold
    the rows written and does not shrink for rows removed (it stays a bound
    of the data, exact again after the layer's next large write).
    """
    added = 0 if frame is None else len(frame)
    bounds = _frame_bounds(frame) if frame is not None and added else None
    if bounds is None:
        con.execute("UPDATE gisapp_layers SET count = count - %s + %s WHERE name = %s", [removed, added, layer.name])
        return
    con.execute(
        "UPDATE gisapp_layers SET count = count - %s + %s, minx = LEAST(minx, %s), miny = LEAST(miny, %s), "
        "maxx = GREATEST(maxx, %s), maxy = GREATEST(maxy, %s) WHERE name = %s",
        [removed, added, *bounds, layer.name])


def _update_stats(con: psycopg.Connection, layer: Layer) -> None:
    """Record the layer's count and extent in ``gisapp_layers`` (one scan)."""
    con.execute(
        "UPDATE gisapp_layers g SET count = s.n, minx = ST_XMin(s.e), miny = ST_YMin(s.e), "
        "maxx = ST_XMax(s.e), maxy = ST_YMax(s.e) "
        f"FROM (SELECT count(*) AS n, ST_Extent(geom) AS e FROM {layer.name}) s WHERE g.name = %s",
        [layer.name])


def _old_keys(con: psycopg.Connection, layer: Layer, frame: gpd.GeoDataFrame, mode: str):
    """The layer's keys before a write, for its change-log entries (``None``: a compact replace); for an
    upsert only those among the keys written (through the key's index)."""
    if mode == "upsert":
        keys = [str(k) for k in frame[layer.key]]
        return [r[0] for r in con.execute(f"SELECT {layer.key} FROM {layer.name} WHERE {layer.key} = ANY(%s)",
                                          [keys])]
    old_count = one(con.execute("SELECT count FROM gisapp_layers WHERE name = %s", [layer.name]))[0]
    if replace_is_compact(int(old_count), len(frame)):
        return None
    return [r[0] for r in con.execute(f"SELECT {layer.key} FROM {layer.name}")]


#: A geometry's box as four columns, for the change log.
_BOX_SQL = "ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom)"


def _logged(con: psycopg.Connection, layer: Layer, frame: gpd.GeoDataFrame, mode: str) -> list[tuple]:
    """The change-log entries of writing ``frame`` to ``layer``, each with its feature's old and new box
    (the old ones read here, before the write)."""
    entries = change_rows(layer, frame, mode, _old_keys(con, layer, frame, mode))
    keys = [e[1] for e in entries if e[2] in ("update", "delete")]
    old = {} if not keys else {str(r[0]): r[1:] for r in con.execute(
        f"SELECT {layer.key}, {_BOX_SQL} FROM {layer.name} WHERE {layer.key} = ANY(%s)", [keys])}
    compact = all(e[2] == "replace" for e in entries)  # one replace entry: no box to log
    return boxed(entries, old, {} if compact else frame_boxes(layer, frame))


def _append_changes(con: psycopg.Connection, entries: list[tuple]) -> None:
    """Append a write's change-log entries, numbered on from the log's last ``seq``, in the write's transaction.

    The caller holds the store's write lock (``pg_advisory_xact_lock``) until it commits, so no two writers
    number at once and a later ``seq`` is always committed after an earlier one: a reader that has seen
    ``seq`` ``n`` never finds a new entry at or below ``n`` later.  (A sequence would not do: ``nextval`` is
    not transactional, so a transaction that drew 7 could commit after one that drew 8, and a consumer
    already past 8 would miss 7.)  The lock is taken again here (it nests) for any future caller.
    """
    con.execute("SELECT pg_advisory_xact_lock(%s)", [_WRITE_LOCK_KEY])
    last = one(con.execute("SELECT coalesce(max(seq), 0) FROM gisapp_changes"))[0]
    time = change_time()
    with con.cursor().copy("COPY gisapp_changes (seq, layer, key, kind, status, minx, miny, maxx, maxy, "
                           "changed_at) FROM STDIN") as copy:
        for i, entry in enumerate(entries, start=1):
            copy.write_row((last + i, *entry, time))


def _write_meta(con: psycopg.Connection, meta: dict) -> None:
    dumps = lambda value: orjson.dumps(value).decode()  # noqa: E731 - same JSON as the GeoPackage store
    with con.cursor() as cur:
        cur.executemany(
            "INSERT INTO gisapp_meta (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            [(str(k), Jsonb(v, dumps=dumps)) for k, v in meta.items()])


def _frame(layer: Layer, rows: list[tuple]) -> gpd.GeoDataFrame:
    if not rows:
        return empty_frame(layer)
    names = layer.field_names
    columns = list(zip(*rows))
    data = {}
    for f, values in zip(layer.fields, columns):
        if f.type == "date":
            data[f.name] = np.array(values, dtype="datetime64[D]")
        elif f.type == "float":
            data[f.name] = np.array([np.nan if v is None else v for v in values], dtype="float64")
        else:
            data[f.name] = pd.Series(values, dtype=object)
    raw = pd.DataFrame(data, columns=names)
    raw["geometry"] = shapely.from_wkb(np.array(columns[-1], dtype=object))
    return gpd.GeoDataFrame(schema.coerce(layer, raw), geometry="geometry", crs=STORE_CRS)
