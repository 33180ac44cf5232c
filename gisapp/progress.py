"""Progress of long work: one small callback that the work calls and a front end shows.

Pure code (store loads, imports, the analysis, the tile renderer, exports,
migrations) never prints.  It takes a ``progress`` argument, a
:class:`Progress`, and calls it with the stage it is in and its counts::

    progress("read", 340_000, 1_000_000, "rows")
    progress("analyse")                       # a stage without counts
    progress("write", 0, 689_782, "findings")

Stages are short English codes (``read``, ``check``, ``write``, ``analyse``,
``render``, ``migrate``, ``build``, ``export``); the front ends label them
(the CLI in English, the upload page in Vietnamese or English).  The CLI
draws bars on a terminal (:mod:`gisapp.cli.progress`); an upload's child
process and the tile renderer write a :class:`StatusFile` that every server
process (gunicorn has several) can read.  :data:`SILENT` does nothing and is
the default everywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

#: Seconds between two writes of a status file (a stage change is always written at once).
WRITE_INTERVAL_S = 0.5


class Progress(Protocol):
    """What long work calls: the stage it is in, and how far it is when it can count (``done`` of ``total``)."""

    def __call__(self, stage: str, done: int | None = None, total: int | None = None, unit: str = "") -> None:
        ...


def _silent(stage: str, done: int | None = None, total: int | None = None, unit: str = "") -> None:
    """Progress that nobody watches."""


#: The default: progress nobody watches.
SILENT: Progress = _silent


def counted(items: Iterable[T], progress: Progress, stage: str, total: int | None, unit: str = "rows",
            size=len) -> Iterator[T]:
    """Yield ``items`` (batches), reporting the running sum of ``size(item)`` as ``stage``'s progress."""
    done = 0
    progress(stage, 0, total, unit)
    for item in items:
        yield item
        done += size(item)
        progress(stage, done, total, unit)


def time_left(done: int | None, total: int | None, elapsed: float) -> float | None:
    """Seconds left at the stage's rate so far (``None`` when it cannot be told yet)."""
    if not done or not total or elapsed <= 0 or done >= total:
        return 0.0 if done and total and done >= total else None
    return elapsed * (total - done) / done


class Tracker:
    """The current stage, its counts and when it started; its state as a JSON-ready dict."""

    def __init__(self, clock=time.time):
        self._clock = clock
        self.stage: str | None = None
        self.done: int | None = None
        self.total: int | None = None
        self.unit = ""
        self.stage_started = self.started = clock()

    def __call__(self, stage: str, done: int | None = None, total: int | None = None, unit: str = "") -> bool:
        """Take a report; whether it began a new stage."""
        new = stage != self.stage
        if new:
            self.stage, self.stage_started = stage, self._clock()
        self.done, self.total, self.unit = done, total, unit
        return new

    def state(self) -> dict[str, Any]:
        """The stage, counts, unit, seconds left (or ``None``) and times (epoch seconds)."""
        now = self._clock()
        left = time_left(self.done, self.total, now - self.stage_started)
        return {"stage": self.stage, "done": self.done, "total": self.total, "unit": self.unit,
                "seconds_left": None if left is None else round(left, 1),
                "started": round(self.started, 3), "updated": round(now, 3)}


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` atomically (a reader sees the old file or the new one, whole)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object in ``path``, or ``None`` when there is none (missing, unreadable, not an object)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class StatusFile:
    """A :class:`Progress` that keeps its state in a JSON file, for other processes to read.

    Written atomically, at most every ``interval`` seconds, and at once when
    a stage begins; ``extra`` fields (``state``, the job's name…) go into every
    write.  A file that cannot be written only loses the report (progress
    never stops the work).
    """

    def __init__(self, path: str | os.PathLike, *, interval: float = WRITE_INTERVAL_S,
                 extra: dict[str, Any] | None = None, clock=time.time):
        self.path = Path(path)
        self.interval = interval
        self.extra = dict(extra or {})
        self.tracker = Tracker(clock)
        self._clock = clock
        self._written = 0.0

    def __call__(self, stage: str, done: int | None = None, total: int | None = None, unit: str = "") -> None:
        new = self.tracker(stage, done, total, unit)
        finished = done is not None and total is not None and done >= total
        if new or finished or self._clock() - self._written >= self.interval:
            self.write()

    def write(self, **fields: Any) -> None:
        """Write the state now, with ``fields`` added to the extra fields from then on."""
        self.extra.update(fields)
        with contextlib.suppress(OSError):
            write_json(self.path, {**self.tracker.state(), **self.extra})
        self._written = self._clock()
