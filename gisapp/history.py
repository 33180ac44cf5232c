"""Status history: the ``status_changes`` table (not a map layer) and views of the data "as of" a day.

Pure functions over frames, no store, no Flask.  A history row says that a
feature (``key``: a dossier's ``dossier_code`` or a sidewalk permit's
``permit_no``, of ``layer``) entered ``status`` on ``changed_on`` (a date),
at ``changed_at`` (``HH:MM:SS`` text, ``""`` when only the day is known),
with a ``note``.  Rows of one key are ordered by (``changed_on``,
``changed_at``, ``seq``): ``seq`` is the order the store received them in.

The status a feature had on day D is the status of its last change on or
before D (a change dated D counts on D).  A feature without a change by D
keeps its current status, and the views say so (``status_known`` false).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

TABLE = "status_changes"
#: The layers that have a status history, and their keys.
LAYER_KEYS = {"construction_permits": "dossier_code", "sidewalk_permits": "permit_no"}
#: The table's columns, in order (``seq`` is added by the store).
COLUMNS = ("layer", "key", "status", "changed_on", "changed_at", "note")
#: ``changed_at``: a time of day, or empty for a date-only change.
TIME_PATTERN = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)?$")
#: Notes of the rows the store writes itself when a write changes a status.
WRITE_NOTE = "gisapp write"
#: Each stored row also keeps ``next_on``, the day of the key's next change (NULL for its last one), kept
#: by every write: the status on day D is then the one row per key with changed_on <= D < next_on (a
#: change superseded the same day has an empty interval), found by one scan with no sorting or grouping.
NEXT_ON = "next_on"
#: Above this many keys in one write, ``next_on`` is computed again for the whole layer.
WHOLE_LAYER_KEYS = 50_000


def next_on_sql(ph: str, keys_clause: str = "") -> str:
    """SQL setting ``next_on`` of the history rows of a layer (and of some keys: ``keys_clause``), both stores.

    Parameters: the layer, then the keys of ``keys_clause`` if any.
    """
    return (f"UPDATE {TABLE} SET {NEXT_ON} = n.next FROM (SELECT seq, lead(changed_on) OVER "
            f"(PARTITION BY key ORDER BY changed_on, changed_at, seq) AS next FROM {TABLE} "
            f"WHERE layer = {ph} {keys_clause}) n WHERE {TABLE}.seq = n.seq "
            f"AND {TABLE}.{NEXT_ON} IS DISTINCT FROM n.next")


def empty() -> pd.DataFrame:
    """A history frame without rows."""
    return frame([], [], [], [], [], [])


def frame(layer, key, status, changed_on, changed_at=None, note=None) -> pd.DataFrame:
    """A history frame from columns: text columns as objects, ``changed_on`` as datetime64 days.

    ``changed_at`` defaults to ``""`` (date only) and is normalised to ``HH:MM:SS``.
    """
    n = len(key)
    out = pd.DataFrame({
        "layer": _texts(layer, n),
        "key": _texts(key, n),
        "status": _texts(status, n),
        "changed_on": _days(changed_on, n),
        "changed_at": _times(changed_at if changed_at is not None else [""] * n),
        "note": _texts(note if note is not None else [None] * n, n),
    })
    out["changed_at"] = out["changed_at"].astype(object)
    return out


def _texts(values, n: int) -> pd.Series:
    if isinstance(values, str):
        values = [values] * n
    series = pd.Series(list(values), dtype=object)
    if len(series) > _DISTINCT_MIN and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        # text already (a write's keys and statuses): only the missing ones change; typed as ``map`` types it
        arr = series.to_numpy(dtype=object, copy=True)
        arr[pd.isna(arr)] = None
        return pd.Series(arr)
    return series.map(lambda v: None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else str(v))


#: Columns longer than this are converted value by distinct value (a write's history rows share one date and time).
_DISTINCT_MIN = 1000


def _days(values, n: int) -> pd.Series:
    """``changed_on`` values as datetime64[ms] days (each distinct value parsed once)."""
    series = pd.Series(values, dtype=object if n == 0 else None)
    if n > _DISTINCT_MIN and series.dtype == object:
        codes, uniques = pd.factorize(series)
        if (codes >= 0).all():
            parsed = pd.to_datetime(pd.Series(np.asarray(uniques, dtype=object), dtype=object))
            series = pd.Series(parsed.to_numpy()[codes])
    return pd.to_datetime(series).astype("datetime64[ms]").dt.normalize()


def _times(values) -> list[str]:
    """:func:`normal_time` of each value (of each distinct text once, in order of appearance)."""
    values = list(values)
    if len(values) > _DISTINCT_MIN and pd.api.types.infer_dtype(values, skipna=False) == "string":
        codes, uniques = pd.factorize(np.asarray(values, dtype=object))
        return list(np.asarray([normal_time(t) for t in uniques], dtype=object)[codes])
    return [normal_time(t) for t in values]


def normal_time(value) -> str:
    """``HH:MM:SS`` of a time of day (``HH:MM`` gets ``:00``); ``""`` for none; :class:`ValueError` else."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
        return ""
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S")
    text = str(value).strip()
    if not TIME_PATTERN.match(text):
        raise ValueError(f"{text!r} is not a time of day (HH:MM or HH:MM:SS)")
    return text if len(text) == 8 else text + ":00"


def order(history: pd.DataFrame) -> pd.DataFrame:
    """``history`` sorted by layer, key, then the order of the changes."""
    by = ["layer", "key", "changed_on", "changed_at"] + (["seq"] if "seq" in history else [])
    return history.sort_values(by, kind="stable").reset_index(drop=True)


def status_at(history: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """The status of every ``(layer, key)`` of ``history`` at the end of ``day``.

    Columns ``layer``, ``key``, ``status``, ``changed_on`` (of that status);
    keys whose first change is after ``day`` are absent.  Vectorised: one
    sort and one ``drop_duplicates`` (what the stores do in SQL).
    """
    until = history[history["changed_on"] <= pd.Timestamp(day)]
    last = order(until).drop_duplicates(["layer", "key"], keep="last")
    return last[["layer", "key", "status", "changed_on"]].reset_index(drop=True)


def changes_between(layer: str, keys, old_status, new_status, when: dt.datetime,
                    note: str = WRITE_NOTE) -> pd.DataFrame:
    """The history rows a write appends: one per key whose status is new or differs from its old one.

    ``old_status`` is aligned with ``keys`` (``None`` for a key not stored before).
    """
    keys = pd.Series(list(keys), dtype=object)
    old = pd.Series(list(old_status), dtype=object)
    new = pd.Series(list(new_status), dtype=object)
    changed = new.notna() & (old.isna() | (old != new))
    n = int(changed.sum())
    return frame([layer] * n, keys[changed].tolist(), new[changed].tolist(), [when.date()] * n,
                 [when.strftime("%H:%M:%S")] * n, [note] * n)


def local_now() -> dt.datetime:
    """Now in the district (UTC+7), without a zone: when a write's history rows are dated."""
    return dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=7))).replace(tzinfo=None)


class PastStatuses:
    """:func:`status_at` (or :meth:`Store.statuses_as_of`) of one day, indexed once for many lookups."""

    def __init__(self, statuses: pd.DataFrame):
        self.index = pd.Index(statuses["key"].to_numpy(dtype=object))
        self.values = statuses["status"].to_numpy(dtype=object)

    def lookup(self, keys) -> tuple[np.ndarray, np.ndarray]:
        """The status of each of ``keys`` that day (``None`` where unknown) and where it is known."""
        pos = self.index.get_indexer(pd.Index(np.asarray(keys, dtype=object)))
        known = pos >= 0
        out = np.full(len(pos), None, dtype=object)
        out[known] = self.values[pos[known]]
        return out, known


def as_of_view(dossiers: pd.DataFrame, statuses: pd.DataFrame | PastStatuses, day: dt.date, *,
               key: str = "dossier_code") -> pd.DataFrame:
    """Dossiers (or permits) as they were at the end of ``day``.

    ``dossiers``: rows with ``key``, ``status`` and any of ``completed_on``,
    ``issued_on``, ``received_on``; ``statuses``: :func:`status_at` of their
    layer (``key``, ``status``), or a :class:`PastStatuses` of it (for many
    batches).  Rows received after ``day`` are dropped; each row gets the
    status it had (its current one where the history has none by then,
    with ``status_known`` false); completion and issue dates after ``day``
    are cleared (not yet known that day).
    """
    past = statuses if isinstance(statuses, PastStatuses) else PastStatuses(statuses)
    out = dossiers
    stamp = pd.Timestamp(day)
    if "received_on" in out:
        out = out[~(pd.to_datetime(out["received_on"]) > stamp).to_numpy()]
    out = out.copy()
    then, known = past.lookup(out[key].to_numpy(dtype=object))
    out["status_known"] = known
    current = out["status"].to_numpy(dtype=object)
    out["status"] = pd.array(np.where(known, then, current), dtype=out["status"].dtype)
    for name in ("completed_on", "issued_on"):
        if name in out:
            dates = pd.to_datetime(out[name])
            out[name] = dates.where(~(dates > stamp))
    return out


def problems(history: pd.DataFrame, known: pd.DataFrame) -> list[tuple[int, str, str]]:
    """What is wrong with each row of a history to import: ``(position, reason, detail)``.

    ``known``: the stored features of the history's layers (``layer``,
    ``key``, ``received_on`` — the start date: a dossier's receipt, a
    permit's first day or ``NaT``).  Reasons: an unknown dossier or permit,
    a change dated before its receipt, two changes of one key at the same
    time (within the file, or the same as a stored change: pass those in
    ``history`` with a ``stored`` column true; they are never reported).
    """
    out: list[tuple[int, str, str]] = []
    stored = history["stored"].to_numpy(dtype=bool) if "stored" in history else np.zeros(len(history), bool)
    index = pd.MultiIndex.from_frame(known[["layer", "key"]])
    pos = index.get_indexer(pd.MultiIndex.from_frame(history[["layer", "key"]]))
    received = known["received_on"].to_numpy(dtype="datetime64[ms]")
    for i in np.flatnonzero((pos < 0) & ~stored):
        what = "dossier" if history["layer"].iat[i] == "construction_permits" else "sidewalk permit"
        out.append((int(i), UNKNOWN_KEY, f"key {history['key'].iat[i]!r}: no such {what} in the store"))
    found = (pos >= 0) & ~stored
    first = np.where(pos >= 0, received[np.maximum(pos, 0)], np.datetime64("NaT"))
    when = history["changed_on"].to_numpy(dtype="datetime64[ms]")
    early = found & ~np.isnat(first) & (when < first)
    for i in np.flatnonzero(early):
        out.append((int(i), BEFORE_RECEIPT,
                    f"changed_on {str(when[i])[:10]!r}: before it was received ({str(first[i])[:10]})"))
    stamps = history[["layer", "key", "changed_on", "changed_at"]].astype(str).agg("|".join, axis=1) \
        if len(history) else pd.Series([], dtype=object)
    taken = set(stamps[stored])
    seen: set[str] = set()
    for i in np.flatnonzero(~stored):
        stamp = stamps.iat[i]
        if stamp in taken or stamp in seen:
            moment = str(when[i])[:10] + (f" {history['changed_at'].iat[i]}" if history["changed_at"].iat[i] else "")
            out.append((int(i), SAME_TIME, f"changed_on {moment!r}: another change of {history['key'].iat[i]!r} "
                                           "has the same time"))
        seen.add(stamp)
    return out


UNKNOWN_KEY = "unknown dossier or permit"
BEFORE_RECEIPT = "change dated before receipt"
SAME_TIME = "two changes at the same time"



# -- views of rows and Arrow tables as of a day (API pages, exports) ------------------------

class HistorySource(Protocol):
    """What the as-of views read: a store (:class:`gisapp.store.Store`; this core module cannot import it)."""

    def iter_arrow(self, layer: str, flt=None, *, fields: list[str] | None = None, batch_size: int = 5000,
                   limit: int | None = None, offset: int = 0, geometry: str = "wkb") -> Iterator[pa.Table]:
        """Matching features as Arrow tables (:meth:`gisapp.store.Store.iter_arrow`)."""

    def statuses_as_of(self, layer: str, day: dt.date, keys: list[str] | None = None) -> pd.DataFrame:
        """The status of each key at the end of ``day`` (:meth:`gisapp.store.Store.statuses_as_of`)."""


def past_statuses(store: HistorySource, layer: str, day: dt.date, keys: list[str]) -> dict[str, str]:
    """Key → the status it had at the end of ``day``, for the ``keys`` that had a change by then."""
    if layer not in LAYER_KEYS or not keys:
        return {}
    found = store.statuses_as_of(layer, day, [str(k) for k in keys])
    return dict(zip(found["key"], found["status"], strict=True))


#: Dates that were not yet known on an earlier day.
LATER_DATES = ("completed_on", "issued_on")


def as_of_rows(rows: list[tuple], fields: list[str], statuses: dict[str, str],
               day: dt.date) -> tuple[list[tuple], int]:
    """API page rows (``(key, *fields, geometry)``) as of ``day``, and how many had no history by then.

    The status becomes the one of that day (from ``statuses``; a key
    without one keeps its current status); completion and issue dates after
    the day are cleared.
    """
    status_at_ = fields.index("status") + 1 if "status" in fields else None
    later = [fields.index(f) + 1 for f in LATER_DATES if f in fields]
    out, unknown = [], 0
    for row in rows:
        values = list(row)
        if status_at_ is not None:
            past = statuses.get(str(row[0]))
            unknown += past is None
            values[status_at_] = past if past is not None else values[status_at_]
        for i in later:
            v = values[i]
            if v is not None and (dt.date.fromisoformat(v[:10]) if isinstance(v, str) else v) > day:
                values[i] = None
        out.append(tuple(values))
    return out, unknown


def as_of_table(table: pa.Table, layer: str, statuses: dict[str, str], day: dt.date) -> pa.Table:
    """An Arrow batch of ``layer`` as of ``day``: statuses of that day, later completion/issue dates cleared."""
    key = LAYER_KEYS.get(layer)
    names = table.column_names
    if key is None or key not in names:
        return table
    if "status" in names:
        keys = table.column(key).to_pylist()
        current = table.column("status").to_pylist()
        status = pa.array([statuses.get(k, c) for k, c in zip(keys, current, strict=True)], pa.string())
        table = table.set_column(names.index("status"), "status", status)
    for name in LATER_DATES:
        if name in names:
            col = table.column(name).cast(pa.date32())
            later = pc.fill_null(pc.greater(col, pa.scalar(day, pa.date32())), False)
            table = table.set_column(names.index(name), name, pc.if_else(later, pa.nulls(len(col), pa.date32()), col))
    return table


class AsOfSource:
    """A store whose Arrow batches are as of ``day`` (for exports: :class:`gisapp.formats.exports.ArrowSource`)."""

    def __init__(self, store: HistorySource, day: dt.date):
        self.store, self.day = store, day

    def iter_arrow(self, layer: str, flt=None, *, fields: list[str] | None = None, batch_size: int = 5000,
                   limit: int | None = None, offset: int = 0, geometry: str = "wkb") -> Iterator[pa.Table]:
        """:meth:`gisapp.store.Store.iter_arrow`, each batch through :func:`as_of_table`."""
        for table in self.store.iter_arrow(layer, flt, fields=fields, batch_size=batch_size, limit=limit,
                                           offset=offset, geometry=geometry):
            key = LAYER_KEYS.get(layer)
            keys = table.column(key).to_pylist() if key and key in table.column_names else []
            yield as_of_table(table, layer, past_statuses(self.store, layer, self.day, keys), self.day)
