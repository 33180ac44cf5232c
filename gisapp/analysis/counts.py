"""The ward dashboard's dossier counting over columns kept in memory (issue 16: any day well under 2 s at 1M).

:meth:`Store.dossier_counts` counts in SQL, and its cost grows with the dossiers and history rows the day
reaches (seconds at a million).  Here each process keeps, per store, the dossiers' counted columns and their
status history as numpy arrays (read once through Arrow, no Python object per value) and checks them against
the store's data version at each use: after a write only the dossiers it changed are read again (from the
change log and the history rows added since), a whole-layer replace reads everything again.  A dashboard as
of any day is then a few vectorised passes over the arrays.

:func:`dossier_counts` answers with the same frame as :meth:`Store.dossier_counts` (the same groups), so
:func:`gisapp.analysis.stats.grouped_counts` makes the same figures of either; a filter the arrays cannot
answer (text search, box, day) is counted by the store.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gisapp import domain
from gisapp import history as hist
from gisapp.filters import Filter
from gisapp.kept import Kept, in_background
from gisapp.schema import LAYERS
from gisapp.store import Store
from gisapp.store.base import (
    COUNT_COLUMNS,
    NEVER,
    NO_DAY,
    aggregate_frame,
    arrow_codes,
    arrow_days,
    count_frame,
    keys_written_since,
)

LAYER = "construction_permits"
KEY = hist.LAYER_KEYS[LAYER]
#: The dossier fields counted (after the key).
FIELDS = ["ward_code", "status", "procedure", "work_category", "channel", "received_on", "due_on", "completed_on"]
#: Above this many changed dossiers since the arrays were read, they are read again whole.
REREAD_KEYS = 100_000
#: Change-log entries asked for at once while catching up.
LOG_PAGE = 10_000
EPOCH = dt.date(1970, 1, 1)


@dataclass
class Columns:
    """A store's dossiers and their history as arrays, as of a data version (positions: dossiers as read,
    then those added since).  Text columns are codes into ``categories`` (one list per column)."""

    version: str | None
    log_id: str | None
    log_last: int
    history_seq: int
    keys: pa.Array  # dossier codes (string)
    cols: dict[str, np.ndarray]  # int32 codes (text) or days (dates) per field
    categories: dict[str, list]
    h_pos: np.ndarray  # int32: the history row's dossier position (-1: no such dossier)
    h_status: np.ndarray  # int32 code into categories["status"]
    h_on: np.ndarray  # int32 days: changed_on
    h_next: np.ndarray  # int32 days: next_on (NEVER for a key's last change)

    def history_rows(self, table: pa.Table) -> tuple[np.ndarray, ...]:
        """A :meth:`Store.history_table` as (position, status code, changed_on, next_on) arrays."""
        pos = pc.fill_null(pc.index_in(table.column("key"), value_set=self.keys), -1).to_numpy().astype(np.int32)
        status, self.categories["status"] = arrow_codes(table.column("status"), self.categories["status"])
        return (pos, status, arrow_days(table.column("changed_on"), NO_DAY),
                arrow_days(table.column(hist.NEXT_ON), NEVER))


def _dossier_cols(table: pa.Table, categories: dict[str, list]) -> dict[str, np.ndarray]:
    out = {}
    for name in FIELDS:
        if name in ("received_on", "due_on", "completed_on"):
            out[name] = arrow_days(table.column(name), NO_DAY)
        else:
            out[name], categories[name] = arrow_codes(table.column(name), categories.setdefault(name, []))
    for name in ("received_on", "completed_on"):  # months since 1970-01 (-1: no date), the same every day
        out[name + ":month"] = np.where(out[name] == NO_DAY, -1, _months(out[name])).astype(np.int32)
    return out


def load(store: Store, version: str | None) -> Columns:
    """Every dossier and its history read from ``store`` (at ``version``, read before)."""
    log = store.changes(after=1 << 62, limit=1)  # where the change log ends now
    dossiers = store.columns_table(LAYER, [KEY, *FIELDS])
    categories: dict[str, list] = {"status": list(domain.STATUSES)}
    cols = _dossier_cols(dossiers, categories)
    history = store.history_table(LAYER)
    out = Columns(version, log.log_id, log.last, 0, dossiers.column(KEY).combine_chunks(), cols, categories,
                  *(np.empty(0, np.int32) for _ in range(4)))
    out.h_pos, out.h_status, out.h_on, out.h_next = out.history_rows(history)
    out.history_seq = int(pc.max(history.column("seq")).as_py() or 0) if history.num_rows else 0
    return out


def refresh(store: Store, old: Columns, version: str | None) -> Columns | None:
    """``old`` brought to ``version``: the dossiers the writes since changed read again; ``None`` when everything
    is to be read again (:func:`load`: a whole-layer replace, another change log, many changed dossiers)."""
    written = keys_written_since(store, LAYER, old.log_last, old.log_id, REREAD_KEYS, LOG_PAGE)
    if written is None:  # another log, a whole-layer replace, many dossiers written
        return None
    keys, after = written
    added = store.history_table(LAYER, after_seq=old.history_seq)  # e.g. an imported history export
    keys.update(added.column("key").to_pylist())
    seq = max(old.history_seq, int(pc.max(added.column("seq")).as_py() or 0) if added.num_rows else 0)
    if len(keys) > REREAD_KEYS:
        return None
    if not keys:
        return Columns(version, old.log_id, after, seq, old.keys, old.cols, old.categories,
                       old.h_pos, old.h_status, old.h_on, old.h_next)
    changed = pa.array(sorted(keys), pa.string())
    keep = ~pc.is_in(old.keys, value_set=changed).to_numpy(zero_copy_only=False)
    fresh = store.columns_table(LAYER, [KEY, *FIELDS], keys=sorted(keys))
    categories = {k: list(v) for k, v in old.categories.items()}
    new_cols = _dossier_cols(fresh, categories)
    cols = {n: np.concatenate([old.cols[n][keep], new_cols[n]]) for n in old.cols}
    new_keys = pa.concat_arrays([old.keys.filter(pa.array(keep)), fresh.column(KEY).combine_chunks()])
    moved = np.full(len(keep) + 1, -1, np.int32)  # old position → new position (-1: read again or gone)
    moved[:-1][keep] = np.arange(int(keep.sum()), dtype=np.int32)
    h_keep = (old.h_pos >= 0) & keep[np.maximum(old.h_pos, 0)]  # rows of unknown keys count for nothing
    out = Columns(version, old.log_id, after, seq, new_keys, cols, categories,
                  np.where(old.h_pos[h_keep] >= 0, moved[old.h_pos[h_keep]], -1).astype(np.int32),
                  old.h_status[h_keep], old.h_on[h_keep], old.h_next[h_keep])
    again = store.history_table(LAYER, keys=sorted(keys))
    pos, status, on, nxt = out.history_rows(again)
    out.h_pos = np.concatenate([out.h_pos, pos])
    out.h_status = np.concatenate([out.h_status, status])
    out.h_on = np.concatenate([out.h_on, on])
    out.h_next = np.concatenate([out.h_next, nxt])
    return out


#: Stores whose arrays one process keeps (a server has one; tests and commands open many).
KEEP = 4
#: The arrays of the stores last counted, by (backend, location); a store's lock is held while they are read.
_DOSSIERS: Kept[Columns] = Kept(KEEP)


def _name(store: Store) -> tuple[str, str]:
    return type(store).__name__, store.url


def columns(store: Store) -> Columns:
    """The store's arrays as of its current data version: kept, refreshed, or read whole (waits for that)."""
    version = store.version()
    name = _name(store)
    with _DOSSIERS.lock(name):
        cached = _DOSSIERS.get(name)
        if cached is not None and cached.version == version and version is not None:
            return cached
        fresh = None if cached is None else refresh(store, cached, version)
        if fresh is None:
            fresh = load(store, version)
        _DOSSIERS.put(name, fresh)
        return fresh


def current(store: Store) -> Columns | None:
    """The store's arrays as of its current data version when that needs no whole read (kept, or refreshed
    for the dossiers written since); else ``None``, and the whole read begins in the background (a second at
    a million dossiers on the GeoPackage, more on PostGIS), so that meanwhile the store counts."""
    version = store.version()
    name = _name(store)
    lock = _DOSSIERS.lock(name)
    if not lock.acquire(blocking=False):  # arrays being read: the store counts meanwhile
        return None
    try:
        cached = _DOSSIERS.get(name)
        if cached is not None and cached.version == version and version is not None:
            return cached
        fresh = None if cached is None else refresh(store, cached, version)
        if fresh is not None:
            _DOSSIERS.put(name, fresh)
            return fresh
    finally:
        lock.release()
    in_background("gisapp-counts", _reading_dossiers(store))
    return None


def _reading_dossiers(store: Store) -> tuple[str, Callable[[], Any]]:
    """:func:`columns` as a read for :func:`gisapp.kept.in_background` (a failure leaves no arrays: the store
    counts; the next use tries again)."""
    return f"the dossiers' arrays of {store.url}", lambda: columns(store)


def answers(flt: Filter | None) -> bool:
    """Whether the arrays can count ``flt`` (else the store counts it): no text search, box or day (purposes
    and kinds are no fields of dossiers: the store ignores them, and so do the arrays)."""
    names = set(LAYERS[LAYER].field_names)
    return flt is None or (flt.q is None and flt.bbox is None and flt.day is None
                           and not (flt.purposes and "purpose" in names) and not (flt.kinds and "kind" in names))


def _in(codes: np.ndarray, categories: list, values) -> np.ndarray:
    wanted = np.array([categories.index(v) for v in values if v in categories], dtype=np.int32)
    return np.isin(codes, wanted)


def _day(value: dt.date) -> int:
    return (value - EPOCH).days


def dossier_counts(store: Store, flt: Filter | None, day: dt.date) -> pd.DataFrame:
    """:meth:`Store.dossier_counts` (the same groups and counts) from the arrays, or from the store for a filter
    they cannot answer and while they are being read (:func:`current`)."""
    arrays = current(store) if answers(flt) else None
    return store.dossier_counts(flt, day) if arrays is None else count(arrays, flt or Filter(), day)


def matching(store: Store, flt: Filter | None) -> int:
    """How many dossiers match ``flt`` (:meth:`Store.count` of the dossiers), from the arrays when they are at
    hand and can answer it, else from the store (kept per data version, :func:`layer_count`)."""
    arrays = current(store) if answers(flt) else None
    if arrays is None:
        return _kept(store, ("count", LAYER, flt), lambda: store.count(LAYER, flt))
    return int(_match(arrays, flt or Filter())[0].sum())


def ward_matching(store: Store, layer: str, flt: Filter | None) -> pd.DataFrame:
    """:meth:`Store.aggregate` per ward (``ward_code``, ``count``): of the dossiers from the arrays when they are
    at hand and can answer ``flt``, of sidewalk permits and findings from their periods (:func:`periods`) when
    at hand, else from the store, kept per data version (the map page, its count and each layer's first view
    as of a day ask the same grouped counts: one scan of the layer, not three)."""
    if layer in SIDE_LAYERS:
        found = periods(store, layer, wait=False) if side_answers(layer, flt) else None
        if found is None:
            return _kept(store, ("aggregate", layer, flt), lambda: store.aggregate(layer, flt))
        return _ward_frame(found.ward[_period_match(found, flt or Filter())], found.wards)
    arrays = current(store) if layer == LAYER and answers(flt) else None
    if arrays is None:
        return _kept(store, ("aggregate", layer, flt), lambda: store.aggregate(layer, flt))
    mask = _match(arrays, flt or Filter())[0]
    return _ward_frame(arrays.cols["ward_code"][mask], arrays.categories["ward_code"])


def layer_count(store: Store, layer: str, flt: Filter | None) -> int:
    """:meth:`Store.count` of ``layer``: the dossiers by :func:`matching`; another layer from its per-ward
    counts when they are kept (their sum: every feature is in one group, no ward a group too), else counted
    by the store and kept per data version."""
    if layer == LAYER:
        return matching(store, flt)
    found = periods(store, layer, wait=False) if side_answers(layer, flt) else None
    if found is not None:
        return int(_period_match(found, flt or Filter()).sum())
    version = store.version()
    grouped = _GROUPED.get(_key(store, version, ("aggregate", layer, flt)))
    if grouped is not None:
        return int(grouped["count"].sum())
    return _kept(store, ("count", layer, flt), lambda: store.count(layer, flt), version)


#: Counts and per-ward counts the store answered, by (store, data version, kind, layer, filter): the newest
#: ``KEEP_GROUPED``; a write changes the version, and with it every key.
KEEP_GROUPED = 256
_GROUPED: Kept[Any] = Kept(KEEP_GROUPED)


def _key(store: Store, version: str | None, what: tuple) -> tuple:
    """The key of ``what`` kept for ``store`` at data ``version``."""
    return (_name(store), version, *what)


def per_version(store: Store, what: tuple, compute: Callable[[], Any]) -> Any:
    """``compute()`` (an answer of the store that only a write changes, ``what`` naming it), kept per data
    version like the counts here (the map page's day slider range: two scans of each dated layer)."""
    return _kept(store, what, compute)


def _kept(store: Store, what: tuple, compute: Callable[[], Any], version: str | None = None) -> Any:
    """``compute()``, kept for ``store``'s data version (``version`` when the caller has it; not kept when the
    store has none)."""
    version = store.version() if version is None else version
    if version is None:
        return compute()
    key = _key(store, version, what)
    found = _GROUPED.get(key)
    if found is None:
        found = compute()
        _GROUPED.put(key, found)
    return found


def _match(c: Columns, flt: Filter) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The dossiers of ``c`` that match ``flt`` (a mask), with each one's status that day (codes), whether a
    history row gave it, and its completion date (cleared after the as-of day)."""
    cat = c.categories
    col = c.cols
    as_of = flt.as_of
    n = len(c.keys)
    mask = np.ones(n, bool)
    if flt.wards:
        mask &= _in(col["ward_code"], cat["ward_code"], flt.wards)
    if flt.procedures:
        mask &= _in(col["procedure"], cat["procedure"], flt.procedures)
    if flt.channels:
        mask &= _in(col["channel"], cat["channel"], flt.channels)
    received = col["received_on"]
    has_received = received != NO_DAY
    if flt.date_to:
        mask &= has_received & (received <= _day(flt.date_to))
    if flt.date_from:
        mask &= has_received & (received >= _day(flt.date_from))
    status = col["status"]
    known = np.ones(n, bool)
    completed = col["completed_on"]
    if as_of is not None:
        a = _day(as_of)
        mask &= has_received & (received <= a)
        holds = (c.h_on <= a) & (a < c.h_next) & (c.h_pos >= 0)
        then = np.full(n, -2, np.int32)  # -2: no history row holds the day
        then[c.h_pos[holds]] = c.h_status[holds]
        known = then != -2
        status = np.where(known, then, status)
        completed = np.where((completed != NO_DAY) & (completed <= a), completed, NO_DAY)
    if flt.statuses:
        mask &= _in(status, cat["status"], flt.statuses)
    return mask, status, known, completed


def count(c: Columns, flt: Filter, day: dt.date) -> pd.DataFrame:
    """The groups of :func:`gisapp.store.base.dossier_counts_sql` counted over the arrays ``c``."""
    cat = c.categories
    col = c.cols
    mask, status, known, completed = _match(c, flt)
    received = col["received_on"]
    idx = np.flatnonzero(mask)
    if not len(idx):
        return count_frame([])
    st, kn, done, due, rec = status[idx], known[idx], completed[idx], col["due_on"][idx], received[idx]
    is_open = _in(st, cat["status"], sorted(domain.OPEN_STATUSES))
    has_done = done != NO_DAY
    t = _day(day)
    # timeliness codes as the SQL: 0 none (no due date), 1 OVERDUE, 2 IN_TIME, 3 EARLY, 4 ON_TIME, 5 LATE
    timely = np.select([due == NO_DAY, is_open | ~has_done, done < due, done == due],
                       [0, np.where(due < t, 1, 2), 3, 4], default=5).astype(np.int64)
    rec_month = col["received_on:month"][idx].astype(np.int64)
    res_month = np.where(~is_open & has_done, col["completed_on:month"][idx], -1).astype(np.int64)  # done: completed
    no_due = due == NO_DAY
    ward = col["ward_code"][idx]
    online = _in(col["channel"][idx], cat["channel"], ["ONLINE"])
    # one integer per group of the dossiers with a due date; those without carry more (few in practice)
    parts = [(ward + 1, len(cat["ward_code"]) + 1), (st + 1, len(cat["status"]) + 1), (kn, 2), (online, 2),
             (rec_month + 1, 1 << 16), (res_month + 1, 1 << 16), (timely, 6)]
    key = np.zeros(len(idx), np.int64)
    for values, size in parts:
        key = key * size + values.astype(np.int64)
    frames = []
    with_due = ~no_due
    if with_due.any():
        groups, first, sizes = np.unique(key[with_due], return_index=True, return_counts=True)
        rows = np.flatnonzero(with_due)[first]
        frames.append(_groups(c, rows, idx, st, kn, online, rec_month, res_month, timely, done, sizes, False))
    if no_due.any():
        rows = np.flatnonzero(no_due)
        sub = pd.DataFrame({"key": key[rows], "rec": rec[rows], "proc": col["procedure"][idx][rows],
                            "cat": col["work_category"][idx][rows], "done": done[rows]})
        g = sub.reset_index().groupby(["key", "rec", "proc", "cat", "done"], sort=False)["index"].agg(["first", "size"])
        rows = rows[g["first"].to_numpy()]
        frames.append(_groups(c, rows, idx, st, kn, online, rec_month, res_month, timely, done, g["size"].to_numpy(),
                              True))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


_TIMELY = np.array([None, "OVERDUE", "IN_TIME", "EARLY", "ON_TIME", "LATE"], dtype=object)


def _months(days: np.ndarray) -> np.ndarray:
    """Months since 1970-01 of days since 1970-01-01."""
    return days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)


def _labels(codes: np.ndarray, categories: list) -> np.ndarray:
    table = np.array([*categories, None], dtype=object)
    return table[np.where(codes < 0, len(categories), codes)]


def _month_text(months: np.ndarray) -> np.ndarray:
    out = np.full(len(months), None, dtype=object)
    some = months >= 0
    out[some] = np.datetime_as_string(months[some].astype("datetime64[M]"), unit="M")
    return out


def _dates(days: np.ndarray) -> np.ndarray:
    out = days.astype("datetime64[D]").astype("datetime64[ms]")
    out[days == NO_DAY] = np.datetime64("NaT")
    return out


def _groups(c: Columns, rows, idx, st, kn, online, rec_month, res_month, timely, done, sizes,
            computed: bool) -> pd.DataFrame:
    """The frame of :meth:`Store.dossier_counts` for groups represented by ``rows`` (positions into ``idx``)."""
    cat, col = c.categories, c.cols
    pos = idx[rows]
    n = len(rows)
    extra = (lambda values: values) if computed else (lambda values: np.full(n, None, dtype=object))  # noqa: E731
    out = pd.DataFrame({
        "ward_code": _labels(col["ward_code"][pos], cat["ward_code"]),
        "status": _labels(st[rows], cat["status"]),
        "known": kn[rows].astype(bool),
        "online": online[rows].astype(bool),
        "received_month": _month_text(rec_month[rows]),
        "resolved_month": _month_text(res_month[rows]),
        "timeliness": _TIMELY[timely[rows]],
        "received_on": _dates(col["received_on"][pos]) if computed else np.full(n, np.datetime64("NaT"), "M8[ms]"),
        "procedure": extra(_labels(col["procedure"][pos], cat["procedure"])),
        "work_category": extra(_labels(col["work_category"][pos], cat["work_category"])),
        "completed_on": _dates(done[rows]) if computed else np.full(n, np.datetime64("NaT"), "M8[ms]"),
        "n": np.asarray(sizes, dtype=np.int64),
    }, columns=list(COUNT_COLUMNS))
    return out


# -- the map's other layers: ward codes and periods ----------------------------------------------------------

#: Layers whose counts by ward on a day (the map's sidewalk permits and findings beside the dossiers) are
#: counted over arrays too: each feature's ward and period, read whole (~1 s at a million on PostGIS).
SIDE_LAYERS = ("sidewalk_permits", "findings")


@dataclass
class Periods:
    """A layer's ward codes and periods as arrays, as of a data version and the change log's last entry then."""

    version: str | None
    log_id: str | None
    log_last: int
    wards: list  # ward codes: the categories of ``ward``
    ward: np.ndarray  # int32 codes into ``wards`` (-1: none)
    start: np.ndarray  # int32 days (NO_DAY: none)
    end: np.ndarray  # int32 days (NO_DAY: none, an open end)


def load_periods(store: Store, layer: str, version: str | None) -> Periods:
    """Every feature's ward and period of ``layer`` read from ``store`` (at ``version``, read before)."""
    lay = LAYERS[layer]
    log = store.changes(after=1 << 62, limit=1)  # where the change log ends now
    assert lay.date_field and lay.end_date_field
    table = store.columns_table(layer, ["ward_code", lay.date_field, lay.end_date_field])
    ward, wards = arrow_codes(table.column("ward_code"), [])
    return Periods(version, log.log_id, log.last, wards, ward, arrow_days(table.column(lay.date_field), NO_DAY),
                   arrow_days(table.column(lay.end_date_field), NO_DAY))


def _log_end_if_untouched(store: Store, old: Periods, layer: str) -> int | None:
    """The change log's last entry when no write since ``old`` was read touched ``layer`` (nor replaced the
    log), else ``None``."""
    written = keys_written_since(store, layer, old.log_last, old.log_id, 0, LOG_PAGE)
    return None if written is None else written[1]


#: Each side layer's arrays by store (backend, location); held while one is read.
_PERIODS: Kept[Periods] = Kept(KEEP * len(SIDE_LAYERS))


def periods(store: Store, layer: str, *, wait: bool = True) -> Periods | None:
    """``layer``'s arrays as of the store's current data version: kept (also when the writes since did not
    touch the layer), else read whole.  ``wait`` false: ``None`` instead of waiting for a read (one runs in
    the background), so that meanwhile the store counts."""
    version = store.version()
    if version is None:  # nothing to keep them by
        return load_periods(store, layer, version) if wait else None
    key = (*_name(store), layer)
    lock = _PERIODS.lock(key)
    if not lock.acquire(blocking=wait):
        return None
    try:
        cached = _PERIODS.get(key)
        if cached is not None and cached.version == version:
            return cached
        last = None if cached is None else _log_end_if_untouched(store, cached, layer)
        if cached is not None and last is not None:
            fresh = Periods(version, cached.log_id, last, cached.wards, cached.ward, cached.start, cached.end)
        elif wait:
            fresh = load_periods(store, layer, version)
        else:
            fresh = None
        if fresh is not None:
            _PERIODS.put(key, fresh)
            return fresh
    finally:
        lock.release()
    in_background(f"gisapp-counts-{layer}", _reading_periods(store, layer))
    return None


def _reading_periods(store: Store, layer: str) -> tuple[str, Callable[[], Any]]:
    """:func:`periods` as a read for :func:`gisapp.kept.in_background` (a failure: the store counts)."""
    return f"the periods of {layer} in {store.url}", lambda: periods(store, layer)


def side_answers(layer: str, flt: Filter | None) -> bool:
    """Whether :func:`periods` can count ``flt`` on ``layer``: a side layer, and only wards, dates, a day and
    an as-of day (what the map's dossier filter passes to sidewalk permits and findings)."""
    return layer in SIDE_LAYERS and (flt is None or flt == Filter(
        wards=flt.wards, date_from=flt.date_from, date_to=flt.date_to, day=flt.day, as_of=flt.as_of))


def _period_match(p: Periods, flt: Filter) -> np.ndarray:
    """The features of ``p`` that match ``flt`` as :func:`gisapp.store.base.attribute_clauses` selects them."""
    mask = np.ones(len(p.ward), bool)
    if flt.wards:
        mask &= _in(p.ward, p.wards, flt.wards)
    started, open_end = p.start != NO_DAY, p.end == NO_DAY
    if flt.date_to:
        mask &= started & (p.start <= _day(flt.date_to))
    if flt.date_from:
        mask &= open_end | (p.end >= _day(flt.date_from))
    if flt.as_of:
        a = _day(flt.as_of)
        mask &= started & (p.start <= a)
        if not (flt.date_from or flt.date_to or flt.day):  # active that day, unless a range or another day
            mask &= open_end | (p.end >= a)
    if flt.day:
        d = _day(flt.day)
        mask &= started & (p.start <= d) & (open_end | (p.end >= d))
    return mask


def _ward_frame(codes: np.ndarray, categories: list) -> pd.DataFrame:
    """Per-ward counts (``ward_code``, ``count``) of ward ``codes`` as :meth:`Store.aggregate` gives them."""
    values, sizes = np.unique(codes, return_counts=True)
    rows = sorted(zip(_labels(values, categories).tolist(), sizes.tolist(), strict=True),
                  key=lambda row: (row[0] is None, (row[0] or "").encode()))  # as ORDER BY ward_code COLLATE "C"
    return aggregate_frame(rows, ["ward_code", "count"])


def preload(store: Store) -> threading.Thread:
    """Read the dossiers' arrays and the side layers' periods in the background now (a server process does
    at its start, so that its first map views and dashboards need not count in SQL); the thread reading them."""
    return in_background("gisapp-counts-preload", *(_reading_periods(store, layer) for layer in SIDE_LAYERS),
                         _reading_dossiers(store))  # the small ones first


def state(store: Store) -> dict[str, str]:
    """Per kind of arrays (``dossiers`` and each side layer): ``ready`` (kept for the store's current data
    version), ``reading`` (being read or refreshed), ``behind`` (kept for an older version: brought up to date
    at the next use) or ``none``."""
    version = store.version()
    out = {"dossiers": _DOSSIERS.state(_name(store), version)}
    for layer in SIDE_LAYERS:
        out[layer] = _PERIODS.state((*_name(store), layer), version)
    return out
