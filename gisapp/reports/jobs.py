"""A report is made in a child process: the server's own processes keep answering the map meanwhile.

Typesetting is pure Python (WeasyPrint) and holds the interpreter's lock for the whole of a report; in a
server thread it would slow every other request of that process.  :class:`Runner` therefore hands each
:class:`Job` to a small pool of child processes (``GISAPP_REPORT_WORKERS`` per server process, started
on the first report, at low priority), each with an address-space limit (``GISAPP_REPORT_MEMORY_MB``);
a report that takes longer than ``GISAPP_REPORT_SECONDS`` is stopped (its pool is replaced).  Jobs are
plain data; the PDF comes back as bytes and a refusal as the one :class:`~gisapp.errors.RequestError`.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import multiprocessing
import os
import resource
import threading
from dataclasses import dataclass, field
from typing import Any

from gisapp import domain
from gisapp.errors import RequestError
from gisapp.filters import Filter
from gisapp.reports import documents, render, review
from gisapp.store import open_store


@dataclass(frozen=True)
class Job:
    """One document to make: ``kind`` (``review``, ``dossier``, ``map``), the store, what to print, how."""

    kind: str
    store: str
    flt: Filter = field(default_factory=Filter)
    code: str | None = None  # the dossier sheet's dossier
    as_of: dt.date | None = None
    opts: documents.Options = field(default_factory=documents.Options)
    weekend: tuple[str, ...] = ("Sat", "Sun")
    holidays: tuple[dt.date, ...] = domain.VN_HOLIDAYS

    @property
    def calendar(self) -> domain.Calendar:
        """The working-day calendar of the job."""
        return domain.Calendar(self.weekend, self.holidays)


def make(job: Job) -> bytes:
    """The PDF of ``job``, made in this process."""
    store = open_store(job.store)
    if job.kind == "review":
        return documents.review_pdf(store, review.ReviewQuery(job.flt, job.as_of), job.calendar, job.opts)
    if job.kind == "dossier":
        return documents.dossier_pdf(store, job.code or "", job.calendar, job.opts, as_of=job.as_of)
    if job.kind == "map":
        return documents.map_pdf(store, job.flt, job.opts)
    raise ValueError(f"unknown report kind {job.kind!r}")


def _child(job: Job) -> tuple[str, Any]:
    """:func:`make` in a child: ``("pdf", bytes)`` or ``("error", (status, code, description))``."""
    try:
        return "pdf", make(job)
    except RequestError as err:  # its subclasses do not unpickle (their own arguments); send the fields
        return "error", (err.status, err.code, err.description)
    except MemoryError:
        return "error", (413, "ReportTooLarge", "Báo cáo vượt giới hạn bộ nhớ (GISAPP_REPORT_MEMORY_MB). / The "
                                                 "report needs more memory than GISAPP_REPORT_MEMORY_MB allows.")


def _limit(memory_mb: int) -> None:
    """Child start-up: low priority, limited address space, the typesetter and fonts loaded before any job."""
    os.nice(10)
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        render.check()  # imports WeasyPrint and finds the fonts (~1.5 s); a failure is reported by the job itself
        import matplotlib.figure  # noqa: F401
        import matplotlib_scalebar.scalebar  # noqa: F401
    except Exception:  # the job's own render.check() names what is missing
        pass


class Runner:
    """Makes reports in a pool of ``workers`` child processes (``0``: in the calling thread).

    At most ``queue`` reports are asked of one server process at a time (made or waiting for a child);
    another is refused at once (503, naming ``GISAPP_REPORT_QUEUE``) rather than holding one more of the
    server's threads, which the map needs: keep it below the server's threads (``gisapp serve --threads``).
    """

    def __init__(self, workers: int = 2, memory_mb: int = 3072, seconds: float = 120, queue: int = 3):
        self.workers, self.memory_mb, self.seconds = workers, memory_mb, seconds
        self._pool: cf.ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max(queue, 1))
        self.queue = max(queue, 1)

    def _executor(self) -> cf.ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MALLOC_ARENA_MAX"):
                    os.environ.setdefault(name, "1" if name != "MALLOC_ARENA_MAX" else "2")
                self._pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                    initializer=_limit, initargs=(self.memory_mb,))
            return self._pool

    def _replace(self, pool: cf.ProcessPoolExecutor) -> None:
        """Stop ``pool``'s children (a report over time, or a child that died) and start afresh next time."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        for proc in list(getattr(pool, "_processes", {}).values()):  # the executor has no public kill
            proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def run(self, job: Job) -> bytes:
        """The PDF of ``job``, or the :class:`RequestError` that refuses it."""
        if not self._slots.acquire(blocking=False):
            raise RequestError(503, "ReportsBusy", f"Máy chủ đang tạo {self.queue} báo cáo (GISAPP_REPORT_QUEUE); "
                               f"hãy thử lại sau ít giây. / The server is making {self.queue} reports already "
                               "(GISAPP_REPORT_QUEUE); try again in a few seconds.")
        try:
            return self._run(job)
        finally:
            self._slots.release()

    def _run(self, job: Job) -> bytes:
        if self.workers <= 0:
            return make(job)
        pool = self._executor()
        future = pool.submit(_child, job)
        try:
            kind, value = future.result(timeout=self.seconds)
        except cf.TimeoutError:
            self._replace(pool)
            raise RequestError(504, "ReportTimeout", f"Báo cáo chưa xong sau {self.seconds:g} giây "
                               f"(GISAPP_REPORT_SECONDS). / The report took longer than {self.seconds:g} s "
                               "(GISAPP_REPORT_SECONDS).") from None
        except cf.process.BrokenProcessPool:
            self._replace(pool)
            raise RequestError(503, "ReportFailed", "Tiến trình tạo báo cáo đã dừng (có thể do giới hạn bộ nhớ "
                               "GISAPP_REPORT_MEMORY_MB); hãy thử lại. / The report's process stopped (perhaps at "
                               "the GISAPP_REPORT_MEMORY_MB limit); try again.") from None
        if kind == "error":
            status, code, description = value
            raise RequestError(int(status), str(code), str(description))
        return bytes(value)

    def close(self) -> None:
        """Stop the children."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
