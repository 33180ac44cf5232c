"""What a filtered tile needs beyond the tile's own properties, kept per process as columns: search texts, status
histories (issue 15: a search or a status as of a day on any tile under 150 ms p95 at 1M, cold disk or not).

A tile carries no search text and no history, so a text search (``q``) or a status as of a day (``as_of`` with
``status``) on a taken-apart tile (:mod:`gisapp.tiles.subset`) needs the store's word on its features.  Asked
per tile (:func:`gisapp.tiles.source.tile_texts`: the rows of the tile's box; ``tile_changes``: the history of
its keys), the first search on a z14 tile at 1M read its ~6,400 texts from rows scattered over the file: 6 s
on a cold GeoPackage (28 ms warm), and the first day likewise from the history.  Here each process reads, once
per store and layer, every feature's key and search text (:meth:`Store.search_texts_table`) and the layer's
status history (:meth:`Store.history_table`) as Arrow/numpy columns — sequential reads of the whole layer, a
few seconds at a million — and keeps them, brought up to date at each use from the change log as
:mod:`gisapp.analysis.counts` does (the keys written since are read again; a whole-layer replace, another log
or very many changed keys: everything read again).  A tile's features are then found by their keys (a binary
search in the sorted keys' bytes), their texts taken and matched, their status changes gathered: milliseconds
per tile, whatever the disk.

Positions: features as first read, then those read again after writes (appended: a position is never reused;
a changed key's old position is left unreferenced).  The personal search texts (staff searching owner names) are
read on their first use only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gisapp import history as hist
from gisapp.kept import Kept, in_background
from gisapp.schema import LAYERS, get_layer
from gisapp.store import Store
from gisapp.store.base import (
    NEVER,
    NO_DAY,
    PERSONAL_SEARCH_COLUMN,
    SEARCH_COLUMN,
    arrow_codes,
    arrow_days,
    keys_written_since,
)

#: Above this many keys written since the columns were read, they are read again whole.
REREAD_KEYS = 100_000
#: Change-log entries asked for at once while catching up.
LOG_PAGE = 10_000
#: Positions appended since the last sort above which every id is sorted again (else only the appended ones).
RESORT = 20_000


def _ids(keys: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each key's UTF-8 bytes and a closing ``\\x01`` as a fixed-width ``bytes`` array (numpy pads with zero bytes
    and drops them when comparing; the closing byte keeps a key's own trailing zero bytes)."""
    if not len(keys):
        return np.empty(0, "S1")
    closed = pc.binary_join_element_wise(keys, "\x01", "")
    return pc.cast(closed, pa.binary()).to_numpy(zero_copy_only=False).astype("S")


#: Multipliers of a key's bytes in its hash (:func:`_hash`), by byte position: odd 64-bit constants' powers.
_MUL = [pow(0x9E3779B97F4A7C15, i + 1, 1 << 64) for i in range(256)]


def _hash(keyb: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each fixed-width key (trailing zero bytes, numpy's padding, add nothing)."""
    width = keyb.dtype.itemsize
    data = np.ascontiguousarray(keyb).view(np.uint8).reshape(len(keyb), width)
    out = np.zeros(len(keyb), np.uint64)
    for i in range(width):
        out += data[:, i].astype(np.uint64) * np.uint64(_MUL[i % len(_MUL)] ^ (i // len(_MUL)))
    out ^= out >> np.uint64(31)
    return out


@dataclass(eq=False)
class Lookup:
    """Keys to positions: sorted by the hash of each key's bytes (numbers, fast to search), the bytes kept to
    check a hit."""

    hashes: np.ndarray  # uint64, sorted
    keys: np.ndarray  # fixed-width bytes, aligned
    pos: np.ndarray  # int64, aligned

    @classmethod
    def of(cls, keyb: np.ndarray, pos: np.ndarray) -> Lookup:
        """The lookup of keys ``keyb`` at ``pos``; of a key given twice the last one (the newest) is kept."""
        if not len(keyb):
            return cls(np.empty(0, np.uint64), np.empty(0, "S1"), np.empty(0, np.int64))
        hashes = _hash(keyb)
        order = np.lexsort((np.arange(len(hashes)), hashes))  # by hash, then as given
        hashes, keyb, pos = hashes[order], keyb[order], pos[order]
        keep = np.ones(len(hashes), bool)
        keep[:-1] = (hashes[1:] != hashes[:-1]) | (keyb[1:] != keyb[:-1])
        return cls(hashes[keep], keyb[keep], pos[keep])

    def __len__(self) -> int:
        return len(self.hashes)

    def find(self, keyb: np.ndarray, hashes: np.ndarray) -> np.ndarray | None:
        """The position of each key (-1: not here); ``None`` when a hash is shared by two keys here (ask the store)."""
        out = np.full(len(keyb), -1, np.int64)
        if not len(self) or not len(keyb):
            return out
        order = np.argsort(hashes)  # searched in order: each search starts where the last one ended
        at = np.empty(len(hashes), np.int64)
        at[order] = np.minimum(np.searchsorted(self.hashes, hashes[order]), len(self) - 1)
        same = self.hashes[at] == hashes
        if (same & (self.hashes[np.minimum(at + 1, len(self) - 1)] == hashes) & (at + 1 < len(self))).any():
            return None
        hit = same & (self.keys[at] == keyb)
        out[hit] = self.pos[at[hit]]
        return out

    def without(self, keyb: np.ndarray) -> Lookup:
        """This lookup without the keys ``keyb``."""
        keep = ~np.isin(self.keys, keyb)
        return Lookup(self.hashes[keep], self.keys[keep], self.pos[keep])

    @property
    def nbytes(self) -> int:
        return self.hashes.nbytes + self.keys.nbytes + self.pos.nbytes


@dataclass
class LayerIndex:
    """One layer's keys, search texts and status history as columns, as of a data version.

    ``keys[p]`` is position ``p``'s key; ``base`` (the keys first read) and ``new`` (those read again since)
    find a key's newest position; ``texts[column]``
    is the search text per position (a chunked array: appended chunks).
    """

    layer: str
    version: str | None
    log_id: str | None
    log_last: int
    keys: pa.ChunkedArray
    base: Lookup
    new: Lookup
    texts: dict[str, pa.ChunkedArray]
    history: History | None = None  # read on first use (a status as of a day)

    def __len__(self) -> int:
        return len(self.keys)

    def positions(self, keys: pa.Array) -> np.ndarray | None:
        """The newest position of each of ``keys`` (a tile's features), or ``None`` when one is not here (then the
        caller asks the store)."""
        wanted = _ids(keys)
        hashes = _hash(wanted)
        base = self.base.find(wanted, hashes)
        new = self.new.find(wanted, hashes)
        if base is None or new is None:
            return None
        out = np.where(new >= 0, new, base)  # the newest
        return None if (out < 0).any() else out

    def texts_at(self, column: str, pos: np.ndarray) -> pa.Array:
        return self.texts[column].take(pa.array(pos)).combine_chunks() if len(pos) else pa.array([], pa.string())

    @property
    def nbytes(self) -> int:
        return self.base.nbytes + self.new.nbytes + self.keys.nbytes + sum(t.nbytes for t in self.texts.values()) \
            + (self.history.nbytes if self.history is not None else 0)


@dataclass
class History:
    """The status history of a :class:`LayerIndex`'s positions: position ``p``'s rows are
    ``start[p]:start[p + 1]``; ``seq``: the last history row read."""

    seq: int
    start: np.ndarray  # int64, one per position and one more
    status: np.ndarray  # int16 codes into ``statuses``
    on: np.ndarray  # int32 days: changed_on
    next: np.ndarray  # int32 days: next_on (NEVER: the key's last change)
    statuses: list[str]

    @property
    def nbytes(self) -> int:
        return self.start.nbytes + self.status.nbytes + self.on.nbytes + self.next.nbytes

    def status_in(self, pos: np.ndarray, current: pa.Array | None, day: dt.date, statuses) -> np.ndarray:
        """Which features (at positions ``pos``; ``current``: their status in the tile) had one of ``statuses`` at
        the end of ``day``: their history row holding the day (``changed_on <= day < next_on``), else their
        current status (:func:`gisapp.store.base.status_as_of_sql`)."""
        n = len(pos)
        starts, counts = self.start[pos], self.start[pos + 1] - self.start[pos]
        rows = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
        owner = np.repeat(np.arange(n), counts)
        a = (day - dt.date(1970, 1, 1)).days
        holds = (self.on[rows] <= a) & (a < self.next[rows])
        then = np.full(n, -1, np.int64)
        then[owner[holds]] = self.status[rows[holds]]
        wanted = np.isin(np.arange(len(self.statuses)), [self.statuses.index(s) for s in statuses
                                                          if s in self.statuses])
        known = then >= 0
        out = np.zeros(n, bool)
        out[known] = wanted[then[known]]
        if current is not None and (~known).any():
            now = pc.fill_null(pc.is_in(current, value_set=pa.array(list(statuses), pa.string())), False) \
                .to_numpy(zero_copy_only=False).astype(bool)
            out[~known] = now[~known]
        return out



def _history(keys: pa.Array, table: pa.Table, statuses: list[str], seq: int) -> History:
    """History rows ``table`` of the features ``keys`` (one per position, in order, each once; rows of other keys
    left out) by position; ``statuses``: the codes so far (extended)."""
    count = len(keys)
    if not table.num_rows:
        return History(seq, np.zeros(count + 1, np.int64), np.empty(0, np.int16), np.empty(0, np.int32),
                       np.empty(0, np.int32), statuses)
    pos = pc.fill_null(pc.index_in(table.column("key"), value_set=keys), -1).to_numpy(zero_copy_only=False)
    codes, _ = arrow_codes(table.column("status"), statuses)
    on = arrow_days(table.column("changed_on"), NO_DAY)
    nxt = arrow_days(table.column(hist.NEXT_ON), NEVER)
    ok = (pos >= 0) & (codes >= 0) & (on != NO_DAY)
    pos, codes, on, nxt = pos[ok], codes[ok], on[ok], nxt[ok]
    order = np.argsort(pos, kind="stable")
    starts = np.searchsorted(pos[order], np.arange(count + 1)).astype(np.int64)
    last = int(pc.max(table.column("seq")).as_py() or 0)
    return History(max(seq, last), starts, codes[order].astype(np.int16), on[order], nxt[order], statuses)


def load(store: Store, layer: str, version: str | None, *, with_history: bool = False) -> LayerIndex:
    """Every feature's key and search text (and with ``with_history`` the layer's status history) read from
    ``store`` (``version``: read before)."""
    log = store.changes(after=1 << 62, limit=1)  # where the change log ends now
    table = store.search_texts_table(layer, SEARCH_COLUMN)
    keys = table.column("key").combine_chunks()
    out = LayerIndex(layer, version, log.log_id, log.last, pa.chunked_array([keys]),
                     Lookup.of(_ids(keys), np.arange(len(keys), dtype=np.int64)), Lookup.of(*_NONE),
                     {SEARCH_COLUMN: pa.chunked_array([table.column("text").combine_chunks()])})
    if with_history:
        out.history = _read_history(store, out)
    return out


def _read_history(store: Store, index: LayerIndex) -> History:
    """The whole status history of ``index``'s layer (whose keys are each at one position: none read again)."""
    if index.layer not in hist.LAYER_KEYS:
        return _history(index.keys.combine_chunks(), pa.table({}), [], 0)
    return _history(index.keys.combine_chunks(), store.history_table(index.layer), [], 0)


def refresh(store: Store, old: LayerIndex, version: str | None) -> LayerIndex | None:
    """``old`` brought to ``version``: the keys written since read again (appended); ``None`` when everything is
    to be read again (a whole-layer replace, another change log, many changed keys)."""
    written = keys_written_since(store, old.layer, old.log_last, old.log_id, REREAD_KEYS, LOG_PAGE)
    if written is None:
        return None
    keys, after = written
    seq = 0
    if old.history is not None and old.layer in hist.LAYER_KEYS:
        added = store.history_table(old.layer, after_seq=old.history.seq)  # e.g. an imported history export
        keys.update(k for k in added.column("key").to_pylist() if k is not None)
        seq = max(old.history.seq, int(pc.max(added.column("seq")).as_py() or 0) if added.num_rows else 0)
    if len(keys) > REREAD_KEYS:
        return None
    if not keys:
        history = None if old.history is None else dataclasses.replace(old.history, seq=seq)
        return dataclasses.replace(old, version=version, log_last=after, history=history)
    wanted = sorted(keys)
    fresh = store.search_texts_table(old.layer, SEARCH_COLUMN, keys=wanted)
    fresh_keys = fresh.column("key").combine_chunks()
    n_old, n_new = len(old), len(fresh_keys)
    texts = {SEARCH_COLUMN: _append(old.texts[SEARCH_COLUMN], fresh.column("text").combine_chunks())}
    for column in old.texts:
        if column != SEARCH_COLUMN:
            more = store.search_texts_table(old.layer, column, keys=wanted)
            texts[column] = _append(old.texts[column], _aligned(more, fresh_keys))
    history = None
    if old.history is not None:
        h = old.history
        again = store.history_table(old.layer, keys=wanted) if old.layer in hist.LAYER_KEYS else pa.table({})
        more_h = _history(fresh_keys, again, list(h.statuses), seq)
        history = History(max(seq, more_h.seq), np.concatenate([h.start[:-1], more_h.start + h.start[-1]]),
                          np.concatenate([h.status, more_h.status]), np.concatenate([h.on, more_h.on]),
                          np.concatenate([h.next, more_h.next]), more_h.statuses)
    all_keys = pa.chunked_array([*old.keys.chunks, fresh_keys]) if n_new else old.keys
    new = Lookup.of(np.concatenate([old.new.keys, _ids(fresh_keys)]),
                    np.concatenate([old.new.pos, np.arange(n_old, n_old + n_new, dtype=np.int64)]))
    base = old.base
    if len(new) > RESORT:  # every key sorted again: the appended ones last, so the newest position is kept
        base = Lookup.of(np.concatenate([base.keys, new.keys]), np.concatenate([base.pos, new.pos]))
        new = Lookup.of(*_NONE)
    gone = _ids(pa.array(sorted(keys - set(fresh_keys.to_pylist())), pa.string()))  # deleted: found no more
    if len(gone):
        base, new = base.without(gone), new.without(gone)
    return LayerIndex(old.layer, version, old.log_id, after, all_keys, base, new, texts, history)


_NONE = (np.empty(0, "S1"), np.empty(0, np.int64))


def _append(texts: pa.ChunkedArray, more: pa.Array) -> pa.ChunkedArray:
    """``texts`` with ``more`` after them (chunks merged once there are many)."""
    chunks = [*texts.chunks, more]
    if len(chunks) > 32:
        chunks = [pa.chunked_array(chunks).combine_chunks()]
    return pa.chunked_array(chunks, pa.string())


def _aligned(table: pa.Table, keys: pa.Array) -> pa.Array:
    """The texts of ``table`` (``key``, ``text``) in the order of ``keys``."""
    at = pc.index_in(keys, value_set=table.column("key").combine_chunks())
    return table.column("text").combine_chunks().take(at)


# -- per process -------------------------------------------------------------------------------------------------

#: Layer indexes one process keeps (a server has one store; tests and commands open many).
KEEP = 6
#: The indexes of the stores last used, by (backend, location, layer); the lock of one is held while it is read
#: or refreshed (other layers go on).
_KEPT: Kept[LayerIndex] = Kept(KEEP)


def _name(store: Store, layer: str) -> tuple[str, str, str]:
    return type(store).__name__, store.url, layer


def index(store: Store, layer: str, column: str = SEARCH_COLUMN, *, with_history: bool = False) -> LayerIndex:
    """``layer``'s index as of the store's current data version, with the search texts ``column`` (and its status
    history with ``with_history``): kept, refreshed, or read whole (the caller waits for that)."""
    get_layer(layer)
    name = _name(store, layer)
    with _KEPT.lock(name):
        version = store.version()
        cached = _KEPT.get(name)
        if cached is not None and cached.version == version and version is not None:
            found = cached
        else:
            fresh = None if cached is None else refresh(store, cached, version)
            found = load(store, layer, version, with_history=with_history) if fresh is None else fresh
        if with_history and found.history is None:
            if len(found.new) or len(found.keys.chunks) > 1:  # keys read again: positions are not one per key
                found = load(store, layer, version, with_history=True)
            else:
                found = dataclasses.replace(found, history=_read_history(store, found))
        if column not in found.texts:
            more = store.search_texts_table(layer, column)
            found = dataclasses.replace(found, texts={**found.texts, column: pa.chunked_array(
                [_aligned(more, found.keys.combine_chunks())])})
        _KEPT.put(name, found)
        return found


#: The layers whose filtered tiles are searched and dated (:func:`preload` reads their indexes).
SEARCHED = tuple(name for name in hist.LAYER_KEYS if name in LAYERS)


def preload(store: Store) -> threading.Thread:
    """Read the searched layers' indexes, with their status histories, in the background now (a server process
    does at its start, so that its first search or day on a tile does not wait seconds for them); the thread
    reading them."""
    return in_background("gisapp-tile-index-preload", *(
        (f"the tile index of {layer} in {store.url}", functools.partial(index, store, layer, with_history=True))
        for layer in SEARCHED))  # a failure: the first filtered tile reads it again and reports what is wrong


def state(store: Store) -> dict[str, str]:
    """Per searched layer: ``ready`` (its index, with the history, kept for the store's current data version),
    ``reading`` (being read or refreshed), ``behind`` (kept for an older version: refreshed at the next use) or
    ``none``."""
    version = store.version()
    return {layer: _KEPT.state(_name(store, layer), version, lambda found: found.history is not None)
            for layer in SEARCHED}


def personal_column(layer: str) -> str | None:
    """The personal search text column of ``layer``, ``None`` when it has none."""
    return PERSONAL_SEARCH_COLUMN if LAYERS[layer].personal_text_fields else None


def forget_all() -> None:
    """Drop every kept index (tests)."""
    _KEPT.clear()
