"""The store interface every backend implements, and what backends share."""

from __future__ import annotations

import abc
import contextlib
import datetime as dt
import math
import re
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from gisapp import domain, history, schema
from gisapp.filters import Filter, fold
from gisapp.formats import derive, geojson
from gisapp.formats.wkb import Polygons
from gisapp.inspections import Inspection, PhotoRef
from gisapp.photos import Photo
from gisapp.progress import SILENT, Progress
from gisapp.schema import STORE_CRS, Layer

#: Hidden columns with the accent-folded text that ``q`` searches: public fields, and personal
#: ones (owner names, ID numbers) that only signed-in staff search (``Filter.q_personal``).
SEARCH_COLUMN = "search_text"
PERSONAL_SEARCH_COLUMN = "search_personal"
#: Hidden column with each geometry as RFC 7946 GeoJSON text in WGS84 (text ``null`` when missing),
#: written with the row, so that API pages and GeoJSON exports need no reprojection or formatting.
#: Stores written before it existed get it filled once (PostGIS migration 6, GeoPackage on opening).
GEOJSON_COLUMN = "geometry_geojson"
#: Hidden columns with each row's properties as JSON text, written with the row, so that an items page reads
#: one text per feature rather than every field's value and builds no dict of them: the public fields' object
#: as the page writes it (:func:`gisapp.formats.geojson.properties_texts`), and the personal fields' members,
#: which pages for signed-in staff splice in (:func:`gisapp.formats.geojson.with_personal`; NULL on layers
#: without personal fields).  Rows written before they existed have them NULL (PostGIS migration 15), layers
#: of a GeoPackage written by an older gisapp lack them: their pages are built from the fields as before.
PROPERTIES_COLUMN = "properties_json"
PERSONAL_PROPERTIES_COLUMN = "properties_personal"


class StoreError(Exception):
    """The store cannot be opened or written; the message is for the user."""


@dataclass(frozen=True)
class LayerInfo:
    """What ``gisapp layers`` prints of a layer."""

    name: str
    count: int
    crs: str
    extent: tuple[float, float, float, float] | None


@dataclass(frozen=True)
class Page:
    """One page of features as plain rows, for serializers that build text (API pages).

    ``matched`` counts every feature the filter matches; each row is
    ``(key, *fields, geometry)``: the layer's key, the requested fields'
    values (text, int, float, date or ISO date text; ``None`` when missing)
    and the geometry as the stored GeoJSON text in WGS84 (:data:`GEOJSON_COLUMN`),
    in key order.
    """

    matched: int
    rows: list[tuple]
    #: With ``Filter.as_of`` on a layer with a status history the rows are as of that day (the status of
    #: that day, later completion/issue dates empty: :func:`page_columns`) and this says, per row, whether
    #: its status came from the history (else it is its current one); ``None`` otherwise.
    known: list[bool] | None = None
    #: Rows ``(key, properties, geometry)``: the properties as the stored JSON text of the requested fields
    #: (:data:`PROPERTIES_COLUMN`) and the geometry's, both as UTF-8 bytes, when :meth:`Store.page` was asked
    #: for ``texts`` and could give them.
    texts: bool = False


#: Kinds of change in the change log (:meth:`Store.changes`): a feature added, written again or removed, and a
#: layer replaced whole by a bulk load too large to log feature by feature (consumers reload that layer).
CHANGE_KINDS = ("insert", "update", "delete", "replace")
#: A replace-mode write logs one row per feature (inserts, updates, deletes) while the old and the new layer
#: hold at most this many features together; beyond it one ``replace`` row (a seed or a city-scale reload:
#: a million rows in the log would cost more than the load and tell a consumer nothing a reload does not).
REPLACE_DETAIL_MAX = 10_000


@dataclass(frozen=True)
class Change:
    """One entry of the change log: the ``seq``-th, of ``layer``'s feature ``key`` (``None`` for a
    ``replace``), its kind (:data:`CHANGE_KINDS`), its new status (``None`` for deletes, replaces and
    layers without one) and when it was written (UTC, ISO 8601).

    ``bbox``: the box ``(minx, miny, maxx, maxy)`` in EPSG:5899 holding the feature's geometry before
    and after the write (what it may have changed on a map: the tiles to render again); :data:`NO_BOX`
    (a box holding nothing) for a feature without geometry before and after (it was on no map);
    ``None`` for a ``replace`` and entries logged before the box was (then: anywhere)."""

    seq: int
    layer: str
    key: str | None
    kind: str
    status: str | None
    time: str
    bbox: tuple[float, float, float, float] | None = None

    @property
    def nowhere(self) -> bool:
        """Whether the entry's feature had no geometry before or after the write: it touched no map."""
        return self.bbox is not None and self.bbox[0] > self.bbox[2]


#: The change log's box of a feature without geometry before and after a write: it meets no box.
NO_BOX = (math.inf, math.inf, -math.inf, -math.inf)


@dataclass(frozen=True)
class ChangePage:
    """Entries of the change log after a position: ``log_id`` names the log (``None``: the store has none
    yet, nothing was written since it got one), ``last`` is the log's last ``seq`` (0 when empty)."""

    log_id: str | None
    last: int
    changes: list[Change]


class Store(abc.ABC):
    """Layers of features in EPSG:5899, read with filters, written atomically.

    Every read returns a GeoDataFrame with exactly the layer's schema
    columns (typed as :func:`gisapp.schema.coerce` types them) and a
    ``geometry`` column in EPSG:5899, ordered by the layer's key.
    """

    #: Where the store is, for messages (never with a password).
    url: str
    #: Feature pages one server process builds at once (the API's, ``gisapp.web.views.api``): one where a page
    #: is CPU work in the process itself (a GeoPackage: SQLite and the page under one interpreter lock); more
    #: where part of it waits for another process (a database server), so that a second page's work fills it.
    page_slots: int = 1

    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the store has been created (by a first write, ``seed``, ``import`` or ``gisapp db upgrade``).

        Says nothing about its data: a store created empty exists.  A store
        that cannot be reached raises :class:`StoreError`.
        """

    @abc.abstractmethod
    def read(self, layer: str, flt: Filter | None = None, *, limit: int | None = None,
             offset: int = 0) -> gpd.GeoDataFrame:
        """Features of ``layer`` matching ``flt``, ``offset``/``limit`` applied."""

    @abc.abstractmethod
    def count(self, layer: str, flt: Filter | None = None) -> int:
        """How many features of ``layer`` match ``flt``."""

    @abc.abstractmethod
    def get(self, layer: str, key: str) -> gpd.GeoDataFrame:
        """The feature whose key is ``key`` (an empty frame if there is none)."""

    @abc.abstractmethod
    def info(self) -> list[LayerInfo]:
        """Every layer with its count, CRS and extent."""

    @abc.abstractmethod
    def meta(self) -> dict[str, Any]:
        """Store-wide metadata (``as_of``, analysis parameters, ...)."""

    @abc.abstractmethod
    def write(self, frames: dict[str, gpd.GeoDataFrame], *, mode: str = "replace",
              meta: dict[str, Any] | None = None, history: pd.DataFrame | None = None,
              progress: Progress = SILENT, delete: dict[str, Collection[str]] | None = None) -> None:
        """Write several layers in one transaction: all of them or nothing.

        ``mode="replace"`` swaps each layer whole; ``"upsert"`` replaces
        features with the same key and adds new ones.  ``meta`` entries are
        merged into the store metadata in the same transaction.  ``progress``
        hears ``("write", rows written, rows in all, "rows")``.

        Status history (:mod:`gisapp.history`), in the same transaction: every
        written feature of a layer with a history whose status is new or
        changed gets a row dated now (note :data:`gisapp.history.WRITE_NOTE`),
        unless ``history`` holds rows of that layer: then those rows are the
        history written for it (with ``mode="replace"`` they replace the
        layer's stored history, e.g. the demo's; else they are added, e.g.
        an imported history export, with ``frames`` empty).

        ``delete`` ("upsert" only): per layer, the keys of features removed in the
        same transaction before ``frames`` are written (keys not stored are
        no error) — how an incremental analysis replaces its findings.

        A frame's geometries may come as WKB (EPSG:5899) in an Arrow binary
        ``geometry`` column of a plain frame (:func:`gisapp.formats.derive.is_wkb`:
        :attr:`gisapp.analysis.overlaps.AnalysisResult.rows`): stored as the
        geometries they stand for, a layer's little-endian MultiPolygon WKB as
        it is, without a shapely object per row where the write needs none.
        """

    @abc.abstractmethod
    def status_history(self, layer: str, keys: list[str] | None = None) -> pd.DataFrame:
        """The stored status changes of ``layer`` (of ``keys`` only, when given), in order.

        Columns :data:`gisapp.history.COLUMNS` then ``seq``; ``changed_on``
        datetime64, ``changed_at`` ``HH:MM:SS`` or ``""``.
        """

    @abc.abstractmethod
    def statuses_as_of(self, layer: str, day: dt.date, keys: list[str] | None = None) -> pd.DataFrame:
        """The status of each feature of ``layer`` at the end of ``day``, from its history, in one query.

        Columns ``key``, ``status``, ``changed_on``; one row per key with a
        change on or before ``day`` (of ``keys`` only, when given), by key.
        """

    @abc.abstractmethod
    def dossier_counts(self, flt: Filter | None, day: dt.date) -> pd.DataFrame:
        """The construction dossiers matching ``flt`` counted in groups by what the ward dashboard counts, in one query.

        With ``flt.as_of``: each dossier as it was at the end of that day (its
        status from the history, else its current one with ``known`` false;
        completion dates after it cleared).  Timeliness is reckoned at ``day``
        from the stored ``due_on``; where that is empty the group also carries
        ``received_on``, ``procedure``, ``work_category`` and ``completed_on``
        so the caller computes it with the working-day calendar.  Columns
        :data:`COUNT_COLUMNS` (see :func:`dossier_counts_sql`).
        """

    @abc.abstractmethod
    def columns_table(self, layer: str, fields: list[str], keys: Collection[str] | None = None) -> pa.Table:
        """Every feature's ``fields`` (of ``keys`` only, when given) as one Arrow table, without geometry.

        Typed as :meth:`iter_arrow` types them (text → string, date → date32), in no particular order (the
        table's own: no sort, no index walk), read without a Python object per value: whole-layer columns for
        counting in memory (:mod:`gisapp.analysis.counts`).
        """

    @abc.abstractmethod
    def history_table(self, layer: str, *, keys: Collection[str] | None = None, after_seq: int = 0) -> pa.Table:
        """The stored status changes of ``layer`` with ``seq`` above ``after_seq`` (of ``keys`` only, when
        given) as one Arrow table :data:`HISTORY_SCHEMA` (``next_on``: :data:`gisapp.history.NEXT_ON`), in no
        particular order, read without a Python object per value."""

    @abc.abstractmethod
    def search_texts_table(self, layer: str, column: str, keys: Collection[str] | None = None) -> pa.Table:
        """Every feature's key and stored search text ``column`` (:data:`SEARCH_COLUMN` or
        :data:`PERSONAL_SEARCH_COLUMN`; of ``keys`` only, when given) as one Arrow table :data:`TEXTS_SCHEMA`
        (``key``, ``text``), in no particular order, read without a Python object per value: the filtered
        tiles' search index kept in memory (:mod:`gisapp.tiles.index`)."""

    @abc.abstractmethod
    def write_lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the writers' lock, across processes, for reads followed by writes of this store object.

        While it is held no other writer (thread, process or server) writes
        the store; :meth:`write` calls made through this object inside the
        block keep the lock.  For read–compute–write steps that must see
        every earlier write (an occupancy saved with its findings: two
        officers saving at once must each see the other's permit).
        """

    def prefetch_replace(self, layer: str) -> None:  # noqa: B027 - a hint: nothing to do by default
        """A hint: a replace of ``layer`` through this object follows (a full analysis's findings), so a
        backend that compares the new rows with the stored ones may start reading those now, in the
        background.  Nothing by default."""

    @abc.abstractmethod
    def iter_arrow(self, layer: str, flt: Filter | None = None, *, fields: list[str] | None = None,
                   batch_size: int = 5000, limit: int | None = None, offset: int = 0,
                   geometry: str = "wkb") -> Iterator[pa.Table]:
        """Matching features as Arrow tables, for serializers that stream.

        Columns: ``fields`` (default: all of the layer's) typed as stored
        (string, date32, int32, float64), then ``geometry`` as WKB in
        EPSG:5899, or with ``geometry="geojson"`` the stored WGS84 GeoJSON
        text (:data:`GEOJSON_COLUMN`, a string); rows in key order;
        ``offset``/``limit`` applied.
        """

    @abc.abstractmethod
    def page(self, layer: str, flt: Filter | None = None, *, fields: list[str], limit: int,
             offset: int = 0, texts: bool = False) -> Page:
        """The count of matching features and one page of them as rows (see :class:`Page`).

        ``texts``: each row's properties as their stored JSON text when the store holds it for ``fields``
        (the public fields, or all of them; not as of a day: :func:`texts_columns`), the page then
        ``texts``; else rows of values as without it."""

    @abc.abstractmethod
    def rows_in_box(self, layer: str, box: tuple[float, float, float, float], *, fields: list[str]) -> list[tuple]:
        """Rows of ``layer`` whose bounding box meets ``box`` (minx, miny, maxx, maxy in EPSG:5899), in one query.

        Each row is ``(*fields, geometry)``: the values as Python values
        (text, int, float, :class:`datetime.date`; ``None`` when missing)
        and the geometry as WKB in EPSG:5899.  In no particular order; for
        small neighbourhoods read through the spatial index (the occupancy check).
        """

    @abc.abstractmethod
    def read_keys(self, layer: str, keys: Collection[str]) -> gpd.GeoDataFrame:
        """The features of ``layer`` whose keys are among ``keys`` (unknown keys are no error), in key order, in
        one query (what a write is about to replace: an incremental analysis's old geometries)."""

    @abc.abstractmethod
    def read_boxes(self, layer: str, boxes: np.ndarray) -> gpd.GeoDataFrame:
        """The features of ``layer`` whose bounding box meets any of ``boxes`` (an (n, 4) array of minx, miny,
        maxx, maxy in EPSG:5899), each once, in key order, through the spatial index (the neighbourhoods of
        the features a write changes, scattered over the city, without reading what lies between them)."""

    @abc.abstractmethod
    def box_texts(self, layer: str, box: tuple[float, float, float, float], column: str) -> list[tuple]:
        """``(key, text)`` of the rows of ``layer`` whose boxes meet ``box`` (EPSG:5899), through the spatial
        index; ``column`` is the search text or the personal one (the filtered tiles' searches,
        :func:`gisapp.tiles.source.tile_texts`)."""

    @abc.abstractmethod
    def date_range(self, layer: str) -> tuple[str | None, str | None]:
        """First start date and last end date of ``layer`` (ISO text); the end is ``None`` when some are open."""

    @abc.abstractmethod
    def aggregate(self, layer: str, flt: Filter | None = None, *, cell_m: float | None = None) -> pd.DataFrame:
        """Counts of the features of ``layer`` matching ``flt``, grouped, in one query (maps at low zoom).

        Without ``cell_m``: one row per ``ward_code`` (columns ``ward_code``,
        ``count``), ordered by code, features without one last.  With
        ``cell_m``: one row per square grid cell of that size in EPSG:5899
        holding the centres of the features' bounding boxes (columns ``x``,
        ``y`` — the cell centre — and ``count``), ordered by ``x`` then ``y``.
        """

    def read_arrow(self, layer: str, flt: Filter | None = None, *, fields: list[str] | None = None,
                   limit: int | None = None, offset: int = 0) -> pa.Table | None:
        """All of :meth:`iter_arrow` in one table (``None`` when nothing matches)."""
        tables = list(self.iter_arrow(layer, flt, fields=fields, batch_size=65536, limit=limit, offset=offset))
        return pa.concat_tables(tables) if tables else None

    @abc.abstractmethod
    def version(self) -> str | None:
        """What changes whenever the data changes (for HTTP validators); ``None`` when not known cheaply."""

    def ward_codes(self) -> set[str]:
        """The GSO codes of every ward in the store (of any ward set)."""
        table = self.read_arrow("wards", fields=["ward_code"])
        return set() if table is None else {c for c in table.column("ward_code").to_pylist() if c}

    @abc.abstractmethod
    def iter_batches(self, layer: str, flt: Filter | None = None,
                     batch_size: int = 5000) -> Iterator[gpd.GeoDataFrame]:
        """Matching features in key order, ``batch_size`` at a time, from one query (for streaming)."""

    @abc.abstractmethod
    def changes(self, after: int = 0, limit: int = 100) -> ChangePage:
        """The change log's entries with ``seq`` above ``after``, at most ``limit``, in ``seq`` order.

        Every :meth:`write` appends its entries in its own transaction (all of them or none, visible with
        the data), numbered on from the log's last ``seq``: entries become visible in ``seq`` order, so a
        reader that has seen ``seq`` ``n`` never later finds a new entry at or below ``n``.  The log's id
        stays while the store lives; a store created again gets a new one.
        """

    @abc.abstractmethod
    def add_inspection(self, inspection: Inspection, photos: Sequence[Photo], *,
                       findings: gpd.GeoDataFrame | None = None) -> None:
        """Record ``inspection`` with its ``photos`` (JPEG bytes, stored in the store) in one transaction.

        ``findings`` (the ``UNPERMITTED`` findings the inspection opens or
        closes) are upserted into the findings layer in the same transaction:
        all of it is stored, or nothing.
        """

    @abc.abstractmethod
    def inspections(self, *, target_layer: str | None = None, target_key: str | None = None,
                    inspection_id: str | None = None) -> list[Inspection]:
        """The inspections (with their photos' tokens) of one target, or one by id, or all; oldest first."""

    @abc.abstractmethod
    def inspection_photo(self, token: str) -> bytes | None:
        """The JPEG bytes of the photo with ``token`` (``None`` when there is none)."""

    def as_of(self) -> dt.date:
        """The data's as-of date (``meta()['as_of']``), today when unset."""
        value = self.meta().get("as_of")
        return dt.date.fromisoformat(value) if value else dt.date.today()


def attribute_clauses(layer: Layer, flt: Filter | None, ph: str = "?") -> tuple[list[str], list]:
    """SQL conditions and parameters for the attribute part of a filter.

    ``ph`` is the backend's placeholder.  Every value is a parameter; only
    column names from the schema are written into the SQL.
    """
    if flt is None:
        return [], []
    names = set(layer.field_names)
    clauses: list[str] = []
    params: list = []

    def any_of(column: str, values):
        if values and column in names:
            clauses.append(f"{column} IN ({', '.join([ph] * len(values))})")
            params.extend(values)

    any_of("ward_code", flt.wards)
    if flt.as_of and flt.statuses and layer.name in history.LAYER_KEYS and "status" in names:
        status, status_params = status_as_of_sql(layer, ph)
        clauses.append(f"{status} IN ({', '.join([ph] * len(flt.statuses))})")
        params.extend([*[flt.as_of.isoformat()] * len(status_params), *flt.statuses])
    else:
        any_of("status", flt.statuses)
    any_of("procedure", flt.procedures)
    any_of("channel", flt.channels)
    any_of("purpose", flt.purposes)
    any_of("kind", flt.kinds)
    # exact matches on indexed columns (a dossier's page: the partial index of the permits naming a dossier,
    # those of the findings' a_id and b_id), not the search text
    any_of("construction_dossier_code", flt.dossiers)
    if flt.involving and {"a_id", "b_id"} <= names:
        marks = ", ".join([ph] * len(flt.involving))
        clauses.append(f"(a_id IN ({marks}) OR b_id IN ({marks}))")
        params.extend([*flt.involving, *flt.involving])
    start, end = layer.date_field, layer.end_date_field or layer.date_field
    if start and flt.date_to:
        clauses.append(f"{start} <= {ph}")
        params.append(flt.date_to.isoformat())
    if start and flt.date_from:
        clauses.append(f"({end} >= {ph}{f' OR {end} IS NULL' if end != start else ''})")
        params.append(flt.date_from.isoformat())
    if start and flt.as_of:
        clauses.append(f"{start} <= {ph}")
        params.append(flt.as_of.isoformat())
        if end != start and not (flt.date_from or flt.date_to or flt.day):  # active that day, unless a range
            # or another day (the slider's) is asked
            clauses.append(f"({end} >= {ph} OR {end} IS NULL)")
            params.append(flt.as_of.isoformat())
    if flt.day:
        clauses.extend(day_clauses(layer, flt.day, ph, params))
    if flt.q:
        personal = flt.q_personal and bool(layer.personal_text_fields)
        for word in fold(flt.q).split():
            pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            if personal:
                clauses.append(f"({SEARCH_COLUMN} LIKE {ph} ESCAPE '\\' "
                               f"OR {PERSONAL_SEARCH_COLUMN} LIKE {ph} ESCAPE '\\')")
                params.extend([pattern, pattern])
            else:
                clauses.append(f"{SEARCH_COLUMN} LIKE {ph} ESCAPE '\\'")
                params.append(pattern)
    return clauses, params


def change_time() -> str:
    """The time a write logs: now, UTC, ISO 8601 to the millisecond."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def keys_written_since(store: Store, layer: str, after: int, log_id: str | None, most: int,
                       page: int = 10_000) -> tuple[set[str], int] | None:
    """The keys of ``layer`` the change log names after its entry ``after``, and the log's last entry, read
    ``page`` entries at a time (what a copy of the store kept in memory reads again to catch up).

    ``None`` when the log is not the one ``after`` belongs to (``log_id``: a store replaced by another file,
    a new database), a whole-layer replace touched ``layer``, or more than ``most`` keys were written.
    """
    keys: set[str] = set()
    while True:
        found = store.changes(after=after, limit=page)
        if found.log_id != log_id and (log_id is not None or found.changes):
            return None
        for change in found.changes:
            if change.layer == layer:
                if change.key is None:
                    return None
                keys.add(change.key)
        if len(keys) > most:
            return None
        if not found.changes:
            return keys, after
        after = found.changes[-1].seq


def replace_is_compact(old_count: int, new_count: int) -> bool:
    """Whether a replace-mode write of a layer logs one ``replace`` entry instead of one per feature."""
    return old_count + new_count > REPLACE_DETAIL_MAX


def change_rows(layer: Layer, frame: pd.DataFrame, mode: str, old_keys) -> list[tuple[str, str | None, str,
                                                                                       str | None]]:
    """The ``(layer, key, kind, status)`` entries one layer's write logs, in order.

    ``old_keys``: the layer's keys before the write, or ``None`` for a compact replace
    (:func:`replace_is_compact`).  Upsert: each written feature is an ``insert`` or an ``update``;
    replace: the same, then a ``delete`` for each feature the new layer lacks.  Within a write the
    entries are in key order (deletes after).
    """
    if old_keys is None:
        return [(layer.name, None, "replace", None)]
    old = {str(k) for k in old_keys}
    keys = [str(k) for k in frame[layer.key]]
    statuses = (frame["status"].tolist() if "status" in layer.field_names and "status" in frame
                else [None] * len(keys))
    rows: list[tuple[str, str | None, str, str | None]] = [
        (layer.name, k, "update" if k in old else "insert", None if pd.isna(st) else str(st))
        for k, st in sorted(zip(keys, statuses), key=lambda pair: pair[0])]
    if mode == "replace":
        rows += [(layer.name, g, "delete", None) for g in sorted(old - set(keys))]
    return rows


#: A change-log entry as a write appends it: layer, key, kind, status, then its box (four numbers or ``None``s).
LogEntry = tuple


def frame_boxes(layer: Layer, frame: pd.DataFrame) -> dict[str, tuple[float, float, float, float]]:
    """The bounding box (EPSG:5899) of each feature of ``frame`` with a geometry, by key."""
    if not len(frame) or "geometry" not in frame:
        return {}
    bounds = derive.geometry_bounds(frame.geometry.values)  # (shapely objects or WKB)
    keys = [str(k) for k in frame[layer.key]]
    return {k: (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
            for k, b in zip(keys, bounds) if not np.isnan(b[0])}


def boxed(entries: list[tuple], old: dict[str, tuple], new: dict[str, tuple]) -> list[LogEntry]:
    """``entries`` (``(layer, key, kind, status)``) each with the box of its feature's ``old`` and ``new``
    geometry together (see :attr:`Change.bbox`): ``(layer, key, kind, status, minx, miny, maxx, maxy)``."""
    out = []
    for entry in entries:
        key, kind = entry[1], entry[2]
        boxes = [] if kind == "replace" else [b for b in (old.get(key), None if kind == "delete" else new.get(key))
                                              if b is not None and b[0] is not None]  # no geometry: no box
        if boxes:
            box = (min(b[0] for b in boxes), min(b[1] for b in boxes),
                   max(b[2] for b in boxes), max(b[3] for b in boxes))
        elif kind == "replace":
            box = (None, None, None, None)
        else:  # no geometry before or after: on no tile (not "anywhere")
            box = NO_BOX
        out.append((*entry, *box))
    return out


def change_of(row: tuple) -> Change:
    """A :class:`Change` from a change-log row ``(seq, layer, key, kind, status, time, minx, miny, maxx, maxy)``."""
    seq, layer, key, kind, status, time = row[:6]
    box = row[6:10]
    bbox = None if len(box) < 4 or any(v is None for v in box) else (
        float(box[0]), float(box[1]), float(box[2]), float(box[3]))
    return Change(seq, layer, key, kind, status, time, bbox)


def delete_rows(layer: Layer, gone) -> list[tuple[str, str | None, str, str | None]]:
    """The ``delete`` entries a write logs for the stored keys ``gone`` it removed (``Store.write(delete=)``)."""
    return [(layer.name, k, "delete", None) for k in sorted(str(g) for g in gone)]


def works_start_expression(layer: Layer) -> str:
    """SQL of a layer's works start (``coalesce(issued_on, received_on)``); both stores index it as written."""
    return f"coalesce({', '.join(layer.works_start_fields)})"


def day_clauses(layer: Layer, day: dt.date, ph: str, params: list) -> list[str]:
    """SQL conditions for the ``day`` filter: the features active on ``day`` (its parameters go to ``params``).

    A layer with a works period (dossiers: ``Layer.works_start_fields``) is active from the first set
    start field (``issued_on``, else ``received_on``) for ``Layer.works_months`` months, the period the
    overlap analysis uses, so the dossiers shown on a day are those whose works the day's findings
    compare; a layer with an end date (sidewalk permits, findings, wards) from ``date_field`` to
    ``end_date_field`` inclusive, an empty end being open; a layer with only a date field on that date.
    """
    start, end = layer.date_field, layer.end_date_field
    if layer.works_start_fields:
        works = works_start_expression(layer)
        params.extend([day.isoformat(), domain.works_start_bound(day, layer.works_months).isoformat()])
        return [f"{works} <= {ph}", f"{works} >= {ph}"]
    if not start:
        return []
    if not end:
        params.append(day.isoformat())
        return [f"{start} = {ph}"]
    params.extend([day.isoformat(), day.isoformat()])
    return [f"{start} <= {ph}", f"({end} >= {ph} OR {end} IS NULL)"]


def status_as_of_sql(layer: Layer, ph: str = "?") -> tuple[str, list[str]]:
    """SQL of a row's status at the end of a day (its last change by then, else its current status).

    Returns the expression and the names of its parameters (the day, as ISO text).  It refers to the
    layer's key and ``status`` unqualified, so it works whatever the layer table is called in the query;
    the history's index on (layer, key, changed_on) makes it one index probe per row.
    """
    key = history.LAYER_KEYS[layer.name]
    return (f"COALESCE((SELECT h.status FROM {history.TABLE} h WHERE h.layer = '{layer.name}' "
            f"AND h.key = {key} AND h.changed_on <= {ph} "
            "ORDER BY h.changed_on DESC, h.changed_at DESC, h.seq DESC LIMIT 1), status)", ["day"])


#: Columns of :meth:`Store.dossier_counts`: the group (ward, status of the day, whether it came from the
#: history, filed online, month received, month resolved — closed with a completion date —, timeliness from
#: the stored due date, and where that is empty what computes it) and ``n``, the dossiers in it.
COUNT_COLUMNS = ("ward_code", "status", "known", "online", "received_month", "resolved_month", "timeliness",
                 "received_on", "procedure", "work_category", "completed_on", "n")


def page_columns(layer: Layer, names: list[str], flt: Filter | None,
                 with_history: bool = True) -> tuple[list[str], bool]:
    """The SQL of a page's columns ``names`` and whether a last column (status from the history) was added.

    Without ``flt.as_of`` (or on a layer without history) the names themselves.  With it, each row as it
    was at the end of that day, in the page's own query: ``status`` is the key's last change on or before
    the day (one probe of the history's index per row of the page), else the current one; ``completed_on``
    and ``issued_on`` after the day are empty (:func:`gisapp.history.as_of_rows` does the same to rows).
    The day is written into the SQL as a date literal (it is a ``date``, never text from a request).
    ``with_history`` false: a store without a history table.

    The last column says whether the status came from the history: 1/0, or, when the page shows the
    status, that status itself after ``1`` (from the history) or ``0`` (its current one), and the status
    column is empty: one probe per row (a status column and a flag column each probed it: two, ~10 ms a
    1,000-row page of the 6.8M-row history at 1M).  :func:`page_rows` puts it back in its place.
    """
    day = flt.as_of if flt is not None else None
    if day is None or layer.name not in history.LAYER_KEYS:
        return list(names), False
    literal = f"'{dt.date.fromordinal(day.toordinal()).isoformat()}'"
    out = [f"CASE WHEN {n} <= {literal} THEN {n} END" if n in history.LATER_DATES else n for n in names]
    if "status" not in names:  # no status to show: none "without history"
        return [*out, "1"], True
    if not with_history:
        return [*out, "0"], True
    key = history.LAYER_KEYS[layer.name]
    # the key's last change by then: the first entry of the history index read backwards (index only)
    then = (f"(SELECT h.status FROM {history.TABLE} h WHERE h.layer = '{layer.name}' AND h.key = {key} "
            f"AND h.changed_on <= {literal} ORDER BY h.changed_on DESC, h.changed_at DESC, h.seq DESC LIMIT 1)")
    out = ["NULL" if n == "status" else n for n in out]
    return [*out, f"COALESCE('1' || {then}, '0' || status)"], True


def texts_columns(layer: Layer, names: list[str], flagged: bool = False) -> list[str] | None:
    """The stored text columns a page of the fields ``names`` reads instead of them (:data:`PROPERTIES_COLUMN`,
    and for signed-in staff :data:`PERSONAL_PROPERTIES_COLUMN`), or ``None``: other fields, or rows as of a
    day (``flagged``, :func:`page_columns`: their status and dates are not the stored ones)."""
    if flagged:
        return None
    if names == [f.name for f in layer.fields if not f.personal]:
        return [PROPERTIES_COLUMN]
    if names == layer.field_names and geojson.personal_run(layer) is not None:
        return [PROPERTIES_COLUMN, PERSONAL_PROPERTIES_COLUMN]
    return None


def texts_rows(layer: Layer, rows: list[tuple]) -> list[tuple] | None:
    """``(key, properties, geometry)`` rows of a page read as ``(key, *texts_columns, geometry)``, or ``None``
    when a row's text is missing (written before the column existed: read the fields instead)."""
    if not rows:
        return rows
    if len(rows[0]) == 3:
        return None if any(r[1] is None for r in rows) else rows
    run = geojson.personal_run(layer)
    if run is None or any(r[1] is None or r[2] is None for r in rows):
        return None
    after = run[1]
    return [(k, geojson.with_personal(public, personal, after), g) for k, public, personal, g in rows]


def stored_properties(layer: Layer, arrays) -> dict[str, pa.Array]:
    """The :data:`PROPERTIES_COLUMN` and :data:`PERSONAL_PROPERTIES_COLUMN` values a write stores beside the
    rows whose fields' values, as stored, are ``arrays`` (field name → Arrow array)."""
    public, personal = geojson.properties_texts(layer, arrays)
    return {PROPERTIES_COLUMN: public,
            PERSONAL_PROPERTIES_COLUMN: pa.nulls(len(public), pa.string()) if personal is None else personal}


def page_rows(rows: list[tuple], flagged: bool, status: int | None = None) -> tuple[list[tuple], list[bool] | None]:
    """A page's rows without the flag column :func:`page_columns` added (after the geometry), and the flags.

    ``status``: the position of the status in the rows, when the page shows it (where a flag column
    holding the status puts it).
    """
    if not flagged:
        return rows, None
    if status is None or not rows or not isinstance(rows[0][-1], str | None):
        return [r[:-1] for r in rows], [bool(r[-1]) for r in rows]
    out, known = [], []
    for r in rows:
        marked = r[-1]  # "1" + the status from the history, "0" + the current one; None: no status at all
        out.append((*r[:status], None if marked is None else marked[1:], *r[status + 1:-1]))
        known.append(marked is not None and marked[0] == "1")
    return out, known


def dossier_counts_sql(table: str, where: str, where_params: list, ph: str, as_of: dt.date | None, day: dt.date,
                       month: str, with_history: bool = True) -> tuple[str, list]:
    """The query of :meth:`Store.dossier_counts` over the dossiers ``SELECT``ed from ``table`` with ``where``.

    ``where`` is the backend's filter with its parameters ``where_params`` (placeholders ``ph``);
    ``month`` formats a date column as ``YYYY-MM`` (``{}`` stands for the column).
    With ``as_of`` the status is the history row whose interval [``changed_on``, ``next_on``) holds that
    day (one per key, :data:`gisapp.history.NEXT_ON`), joined to each dossier (a hash join on PostGIS,
    an index probe per dossier on SQLite; ``with_history`` false: a store without a history table, every
    status its current one), and completion dates after the day are cleared — what
    :func:`gisapp.history.as_of_view` does to rows; timeliness follows :func:`gisapp.domain.timeliness`.
    """
    layer = "construction_permits"
    key = history.LAYER_KEYS[layer]
    open_list = ", ".join(f"'{s}'" for s in sorted(domain.OPEN_STATUSES))
    fields = "ward_code, status, channel, received_on, due_on, completed_on, procedure, work_category"
    # parameters are written as markers first (@A: the as-of day, @T: the day of timeliness, @W: the filter's)
    if as_of is not None and with_history:
        status, known = "COALESCE(h.status, p.status)", "CASE WHEN h.seq IS NULL THEN 0 ELSE 1 END"
        done = "CASE WHEN p.completed_on <= @A THEN p.completed_on END"
        join = (f" LEFT JOIN {history.TABLE} h ON h.layer = '{layer}' AND h.key = p.{key} "
                f"AND h.changed_on <= @A AND (h.{history.NEXT_ON} IS NULL OR h.{history.NEXT_ON} > @A)")
        fields += f", {key}"
    elif as_of is not None:
        status, known, join = "p.status", "0", ""
        done = "CASE WHEN p.completed_on <= @A THEN p.completed_on END"
    else:
        status, known, done, join = "p.status", "1", "p.completed_on", ""
    # each dossier once: its status that day, from the history or not, online, dates, open or not
    inner = (f"SELECT p.ward_code AS ward_code, {status} AS st, {known} AS known, "
             "CASE WHEN p.channel = 'ONLINE' THEN 1 ELSE 0 END AS online, p.received_on AS received_on, "
             f"{done} AS done, p.due_on AS due_on, p.procedure AS procedure, p.work_category AS work_category "
             f"FROM (SELECT {fields} FROM {table}@W) p{join}")
    is_open = f"COALESCE(r.st, '') IN ({open_list})"
    select = [
        "r.ward_code", "r.st", "r.known", "r.online",
        month.format("r.received_on"),
        f"CASE WHEN NOT {is_open} AND r.done IS NOT NULL THEN {month.format('r.done')} END",
        f"CASE WHEN r.due_on IS NULL THEN NULL WHEN {is_open} OR r.done IS NULL THEN "
        "CASE WHEN r.due_on < @T THEN 'OVERDUE' ELSE 'IN_TIME' END "
        "WHEN r.done < r.due_on THEN 'EARLY' WHEN r.done = r.due_on THEN 'ON_TIME' ELSE 'LATE' END",
        "CASE WHEN r.due_on IS NULL THEN r.received_on END",
        "CASE WHEN r.due_on IS NULL THEN r.procedure END",
        "CASE WHEN r.due_on IS NULL THEN r.work_category END",
        "CASE WHEN r.due_on IS NULL THEN r.done END",
    ]
    groups = ", ".join(str(i) for i in range(1, len(select) + 1))
    marked = f"SELECT {', '.join(select)}, count(*) FROM ({inner}) r GROUP BY {groups}"
    values: dict[str, list] = {"@A": [as_of.isoformat() if as_of else None], "@T": [day.isoformat()],
                               "@W": list(where_params)}
    params = [v for m in re.findall(r"@[ATW]\b", marked) for v in values[m]]
    return re.sub(r"@[ATW]\b", lambda m: where if m.group(0) == "@W" else ph, marked), params


#: Columns of :meth:`Store.history_table`.
HISTORY_SCHEMA = pa.schema([("key", pa.string()), ("status", pa.string()), ("changed_on", pa.date32()),
                            (history.NEXT_ON, pa.date32()), ("seq", pa.int64())])
#: A missing date, and a history row's open end (a key's last change), as int32 days since 1970-01-01 in the
#: arrays kept in memory from :meth:`Store.columns_table` and :meth:`Store.history_table`.
NO_DAY = np.iinfo(np.int32).min
NEVER = np.iinfo(np.int32).max


def arrow_days(column: pa.Array | pa.ChunkedArray, missing: int) -> np.ndarray:
    """A date32 column as int32 days since 1970 (``missing`` where empty)."""
    return pc.fill_null(column.cast(pa.int32()), missing).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)


def arrow_codes(column: pa.Array | pa.ChunkedArray, categories: list) -> tuple[np.ndarray, list]:
    """A text column as int32 codes into ``categories`` (extended in place with its new values); -1 where empty."""
    values = pc.unique(column if isinstance(column, pa.Array) else column.combine_chunks()).drop_null().to_pylist()
    categories.extend(v for v in values if v not in categories)
    codes = pc.index_in(column, value_set=pa.array(categories, pa.string()))
    return pc.fill_null(codes, -1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False), categories


#: Columns of :meth:`Store.search_texts_table`.
TEXTS_SCHEMA = pa.schema([("key", pa.string()), ("text", pa.string())])
#: Arrow types of the stored field types (what :meth:`Store.iter_arrow` and :meth:`Store.columns_table` give).
ARROW_TYPES = {"text": pa.string(), "int": pa.int32(), "float": pa.float64(), "date": pa.date32()}


def typed_table(table: pa.Table | None, arrow_schema: pa.Schema) -> pa.Table:
    """``table``'s columns cast to ``arrow_schema`` (dates stored as text become date32); an empty table of that
    schema for ``None``."""
    if table is None:
        return arrow_schema.empty_table()
    columns = []
    for f in arrow_schema:
        col = table.column(f.name)
        if col.type != f.type:
            col = col.cast(pa.string()).cast(f.type) if pa.types.is_date(f.type) and not pa.types.is_date(col.type) \
                else col.cast(f.type)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=arrow_schema)


def columns_schema(layer: Layer, names: list[str]) -> pa.Schema:
    """The Arrow schema of :meth:`Store.columns_table`'s ``names`` of ``layer``."""
    return pa.schema([pa.field(n, ARROW_TYPES[layer.field(n).type]) for n in names])


def count_frame(rows: list[tuple]) -> pd.DataFrame:
    """:meth:`Store.dossier_counts`'s frame from its rows (dates as datetime64, flags as bool, ``n`` int64)."""
    frame = pd.DataFrame(rows, columns=list(COUNT_COLUMNS), dtype=object)
    for name in ("known", "online"):
        frame[name] = frame[name].astype(bool)
    for name in ("received_on", "completed_on"):
        frame[name] = pd.to_datetime(frame[name]).astype("datetime64[ms]")
    frame["n"] = frame["n"].astype("int64")
    return frame


def search_column(column: str) -> str:
    """``column`` when it is the search text or the personal one, else :class:`StoreError` (it goes into SQL)."""
    if column not in (SEARCH_COLUMN, PERSONAL_SEARCH_COLUMN):
        raise StoreError(f"no search text {column!r}")
    return column


def geometry_column(geometry: str) -> str:
    """The stored column a :meth:`Store.iter_arrow` ``geometry`` argument asks for (``"wkb"``: the geometry)."""
    if geometry not in ("wkb", "geojson"):
        raise StoreError(f"unknown geometry encoding {geometry!r}; use 'wkb' or 'geojson'")
    return GEOJSON_COLUMN if geometry == "geojson" else "geom"


def geojson_texts(geoms) -> pa.Array:
    """The :data:`GEOJSON_COLUMN` values of EPSG:5899 geometries (text ``null`` where missing or empty)."""
    from gisapp.formats.geojson import geometry_texts

    return geometry_texts(np.asarray(geoms, dtype=object))


def derived_columns(layer: Layer, frame: pd.DataFrame, polygons: Polygons | None = None) -> dict[str, pa.Array]:
    """The hidden columns a write stores beside a coerced frame's fields, as Arrow arrays, column by column on
    the pool's threads (:mod:`gisapp.formats.derive`): :data:`SEARCH_COLUMN` and :data:`PERSONAL_SEARCH_COLUMN`
    (:func:`search_text`'s texts), :data:`GEOJSON_COLUMN` (:func:`geojson_texts` of the stored geometry) and
    ``"wkb"``: the stored geometry as little-endian WKB (a Polygon as the MultiPolygon of it on a MultiPolygon
    layer: ``shapely.to_wkb(geo.to_multipolygons(...), byte_order=1)``; null where missing).

    The same values as those functions, several times faster: texts never become Python strings (coerce
    with ``arrow_text=True`` to keep them in Arrow from the start) and the GeoJSON is made from the points of
    plain polygons, else read from the WKB (:func:`gisapp.formats.derive.geometry_columns`; ``polygons``: the
    frame's geometries as :func:`gisapp.formats.derive.plain_polygons` reads them, when read already)."""
    wkb, texts = derive.geometry_columns(frame.geometry.values, layer.geometry == "MultiPolygon", polygons)
    return {SEARCH_COLUMN: derive.search_texts(layer, frame),
            PERSONAL_SEARCH_COLUMN: derive.search_texts(layer, frame, personal=True),
            GEOJSON_COLUMN: texts, "wkb": wkb}


def search_text(layer: Layer, frame: pd.DataFrame, personal: bool = False) -> pd.Series:
    """The folded text ``q`` matches against: the layer's text fields (or its personal ones) joined.

    As Python strings; :func:`gisapp.formats.derive.search_texts` gives the same texts as an Arrow array."""
    texts = derive.search_texts(layer, frame, personal)
    return pd.Series(texts.to_numpy(zero_copy_only=False), index=frame.index, dtype=object)


def field_names(layer: Layer, fields=None) -> list[str]:
    """``fields`` (default: all of the layer's) as a list, or :class:`StoreError` for one the layer lacks."""
    names = list(layer.field_names if fields is None else fields)
    unknown = [n for n in names if n not in layer.field_names]
    if unknown:
        raise StoreError(f"layer {layer.name!r} has no field {unknown[0]!r}")
    return names


def store_layer(name: str) -> Layer:
    """The layer called ``name`` or :class:`StoreError`."""
    try:
        return schema.get_layer(name)
    except KeyError as err:
        raise StoreError(err.args[0]) from None


def empty_frame(layer: Layer) -> gpd.GeoDataFrame:
    """An empty frame with the layer's typed columns."""
    frame = pd.DataFrame({name: pd.Series(dtype=object) for name in layer.field_names})
    return gpd.GeoDataFrame(schema.coerce(layer, frame.assign(geometry=None)), geometry="geometry", crs=STORE_CRS)


def check_delete(mode: str, delete: dict[str, Collection[str]] | None) -> dict[str, list[str]]:
    """``delete`` of :meth:`Store.write` as lists, or :class:`StoreError` when it cannot be done."""
    if not delete:
        return {}
    if mode != "upsert":
        raise StoreError("delete is for mode 'upsert' (a replaced layer keeps only what is written)")
    for name in delete:
        store_layer(name)
    return {name: [str(k) for k in keys] for name, keys in delete.items()}


def merge_upsert(layer: Layer, existing: gpd.GeoDataFrame, new: gpd.GeoDataFrame,
                 deleted: Collection[str] = ()) -> gpd.GeoDataFrame:
    """``existing`` without the keys ``deleted``, rows of ``new`` replacing those with the same key, others added
    (``new``'s geometry may be WKB: :func:`gisapp.formats.derive.is_wkb`)."""
    if derive.is_wkb(new["geometry"].array):
        new = new.assign(geometry=derive.geometry_objects(new["geometry"].array))
    kept = existing[~existing[layer.key].isin(new[layer.key]) & ~existing[layer.key].isin(list(deleted))]
    merged = pd.concat([kept, new], ignore_index=True)
    return gpd.GeoDataFrame(merged, geometry="geometry", crs=STORE_CRS)


def aggregate_columns(layer: Layer, cell_m: float | None) -> list[str]:
    """The columns of :meth:`Store.aggregate` of ``layer``, or :class:`StoreError` for what cannot be grouped."""
    if cell_m is None:
        if "ward_code" not in layer.field_names:
            raise StoreError(f"layer {layer.name!r} has no ward_code to count by")
        return ["ward_code", "count"]
    if not cell_m > 0:
        raise StoreError("cell_m must be positive")
    return ["x", "y", "count"]


def aggregate_frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    """:meth:`Store.aggregate`'s frame from its rows: ``ward_code`` text or ``x``/``y`` float64, ``count`` int64."""
    frame = pd.DataFrame(rows, columns=columns)
    types = {"count": "int64"} if columns[0] == "ward_code" else {"x": "float64", "y": "float64", "count": "int64"}
    return frame.astype(types)


#: Columns of the inspections table, in order (positions and occupancies as WKB in EPSG:5899).
def inspection_where(ph: str, **equal: str | None) -> tuple[str, list[str]]:
    """The ``WHERE`` of an inspections query (``ph``: the driver's placeholder) for the columns given a value."""
    given = {column: value for column, value in equal.items() if value is not None}
    where = (" WHERE " + " AND ".join(f"{column} = {ph}" for column in given)) if given else ""
    return where, list(given.values())


INSPECTION_COLUMNS = ("inspection_id", "target_layer", "target_key", "inspector", "inspected_at",
                      "inspection_type", "outcome", "notes", "ward_code", "position", "occupancy")


def inspection_row(inspection: Inspection) -> tuple:
    """The inspections table's row of ``inspection`` (time as UTC, geometries as WKB)."""
    i = inspection
    return (i.inspection_id, i.target_layer, i.target_key, i.inspector, i.inspected_at.astimezone(dt.UTC),
            i.inspection_type, i.outcome, i.notes, i.ward_code, shapely.to_wkb(i.position),
            None if i.occupancy is None else shapely.to_wkb(i.occupancy))


def inspection_of(row: tuple, photos: list[tuple]) -> Inspection:
    """The :class:`Inspection` of a row in :data:`INSPECTION_COLUMNS` order and its photos' (token, width, height)."""
    at = row[4]
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return Inspection(
        inspection_id=row[0], target_layer=row[1], target_key=row[2], inspector=row[3], inspected_at=at,
        inspection_type=row[5], outcome=row[6], notes=row[7] or "", ward_code=row[8],
        position=shapely.from_wkb(bytes(row[9])),
        occupancy=None if row[10] is None else shapely.from_wkb(bytes(row[10])),
        photos=tuple(PhotoRef(t, int(w), int(h)) for t, w, h in photos))
