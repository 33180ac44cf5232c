"""What a process keeps in memory per store, and how it is read beside the requests.

The dashboard's arrays (:mod:`gisapp.analysis.counts`) and the filtered tiles' index (:mod:`gisapp.tiles.index`)
each keep, per store (and layer), columns read once and brought up to the store's data version at each use.
They share how that is kept: the newest few values by key, one lock per key held while its value is read or
refreshed (other keys go on), what a server's health check says of each, and reads started in the background
whose failure is logged, not raised (the caller answers from the store meanwhile).  And how a command lets
go of a million geometries without waiting for it (:func:`free_in_background`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, Protocol, TypeVar

import geopandas as gpd
import numpy as np

LOG = logging.getLogger(__name__)


class Versioned(Protocol):
    """A kept value: the store's data version it was read at (``None``: the store has none)."""

    version: str | None


V = TypeVar("V", bound=Versioned)


class Kept(Generic[V]):
    """The newest ``keep`` values by key (least recently put dropped first), each key with its own lock."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._values: dict[Hashable, V] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()  # held while the dicts themselves change

    def lock(self, key: Hashable) -> threading.Lock:
        """The lock of ``key``: hold it while its value is read or refreshed."""
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: Hashable) -> V | None:
        """The value kept for ``key`` (``None``: none)."""
        with self._guard:
            return self._values.get(key)

    def put(self, key: Hashable, value: V) -> None:
        """Keep ``value`` as the newest; drop the oldest beyond :attr:`keep`."""
        with self._guard:
            self._values.pop(key, None)
            self._values[key] = value
            while len(self._values) > self.keep:
                oldest = next(iter(self._values))
                del self._values[oldest]
                lock = self._locks.get(oldest)
                if lock is not None and not lock.locked():  # a long test run opens many stores
                    del self._locks[oldest]

    def clear(self) -> None:
        """Drop every value (tests)."""
        with self._guard:
            self._values.clear()

    def state(self, key: Hashable, version: str | None, complete: Callable[[V], bool] = lambda _: True) -> str:
        """``reading`` (its lock is held), ``none`` (nothing kept, or not ``complete``), ``ready`` (kept for the
        store's current data ``version``) or ``behind`` (kept for an older one: brought up to date at next use)."""
        with self._guard:
            lock, found = self._locks.get(key), self._values.get(key)
        if lock is not None and lock.locked():
            return "reading"
        if found is None or not complete(found):
            return "none"
        return "ready" if found.version == version and version is not None else "behind"


def read_logged(what: str, read: Callable[[], Any]) -> None:
    """``read()``; a failure is logged as "reading ``what`` failed", not raised (the caller answers from the
    store meanwhile; the next use reads again, and reports what is wrong)."""
    try:
        read()
    except Exception:  # noqa: BLE001 - whatever failed, the caller answers from the store meanwhile
        LOG.warning("reading %s failed", what, exc_info=True)


def in_background(name: str, *reads: tuple[str, Callable[[], Any]]) -> threading.Thread:
    """Each ``(what, read)`` of ``reads`` in turn through :func:`read_logged`, in a daemon thread ``name`` (returned:
    join it to wait for them)."""
    def run() -> None:
        for what, read in reads:
            read_logged(what, read)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


#: Geometries freed at a time by :func:`free_in_background`.
FREE_SLICE = 20_000


def free_in_background(frames: Iterable[Any]) -> None:
    """Free the geometries of ``frames`` (GeoDataFrames the caller keeps no other reference to) in a daemon
    thread, a slice at a time (so the interpreter lock changes hands between slices).

    At a million features they take ~1 s to free (a GEOS destructor each), which a command would spend after
    its work is done; when the process exits first, the rest goes back to the system with its memory.  The
    frames must not be used afterwards (their geometries become missing).  Frames without shapely geometries
    (the analysis's WKB columns) have nothing to free and are left alone.
    """
    pending = [frame for frame in frames if isinstance(frame, gpd.GeoDataFrame)]
    if not pending:
        return

    def free() -> None:
        arrays = [np.asarray(frame.geometry.array) for frame in pending]  # the frames' own objects (views)
        pending.clear()
        for geoms in arrays:
            for start in range(0, len(geoms), FREE_SLICE):
                geoms[start:start + FREE_SLICE] = None

    threading.Thread(target=free, name="gisapp-free", daemon=True).start()
