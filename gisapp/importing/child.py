"""An upload's check and import, run in a child process under limits of memory and time.

Reading a file costs memory and time in proportion to its features: a 3 MB
zip holding a 305 MB GeoJSON of a million tiny polygons kept a server worker
busy for 55 s and took it from 0.8 to 3.2 GB.  The upload page therefore
runs :func:`gisapp.importing.prepare.run_import` in a fresh Python process
(``python -m gisapp.importing.child``) whose address space (``RLIMIT_AS``)
and CPU time are limited, and which is killed when it takes longer than
allowed; the job goes in and the summary comes back as JSON.  A hostile or
huge file then costs that process, never the server's memory.  The child
writes the rejects file and, on confirmation, the store itself.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field

from gisapp.config import ROOT
from gisapp.importing.read import ImportFailure, ReadLimits
from gisapp.progress import SILENT, Progress, StatusFile
from gisapp.store import StoreError

log = logging.getLogger(__name__)
#: Seconds of CPU the child may use beyond its wall-clock limit before the kernel stops it (a backstop).
CPU_MARGIN = 5
#: For tests only: seconds the child sleeps after each progress report, so that a browser can watch the stages
#: of a small file.  Never set it in production.
SLOW_ENV = "GISAPP_TEST_SLOW_PROGRESS"
#: Environment of the child: few threads, few malloc arenas, so that its address space stays near its use.
CHILD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2",
             "PYTHONDONTWRITEBYTECODE": "1"}


@dataclass(frozen=True)
class Job:
    """One check (``dry_run``) or import of an uploaded file, as plain data."""

    store: str
    layer: str
    path: str
    mode: str = "upsert"
    dry_run: bool = True
    parcels: str | None = None
    crs: str | None = None
    sheet: str | None = None
    rejects: str | None = None  # where the rejected rows are written, if any
    weekend: tuple[str, ...] = ("Sat", "Sun")
    holidays: tuple[str, ...] = ()  # ISO dates
    unpacked_mb: int | None = None
    max_features: int | None = None
    status: str | None = None  # a JSON file for the job's progress (gisapp.progress.StatusFile), if any


@dataclass(frozen=True)
class Summary:
    """What the upload page shows of an :class:`~gisapp.importing.prepare.ImportReport` (no rows)."""

    layer: str
    source: str
    read: int
    accepted: int
    repaired: int
    rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    changes: dict[str, int] = field(default_factory=dict)
    mode: str = "upsert"
    dry_run: bool = True
    written: bool = False

    @classmethod
    def of(cls, report) -> Summary:
        """The summary of an import report."""
        data = report.as_dict()
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def run(job: Job, *, memory_mb: int, seconds: float) -> Summary:
    """Run ``job`` in a child process with at most ``memory_mb`` of address space and ``seconds`` of time.

    Returns the summary; raises the child's :class:`ImportFailure` or
    :class:`~gisapp.store.StoreError`, an :class:`ImportFailure` naming the
    limit when the child ran out of memory or time, and ``RuntimeError``
    for anything else (a bug: the child's traceback is in the log).
    """
    name = os.path.basename(job.path)
    request = json.dumps({"job": asdict(job), "memory_mb": memory_mb, "seconds": seconds}).encode()
    env = {**os.environ, **CHILD_ENV,
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryFile() as stderr:  # a file: a chatty child costs no server memory
        try:
            done = subprocess.run([sys.executable, "-P", "-m", "gisapp.importing.child"], input=request,
                                  stdout=subprocess.PIPE, stderr=stderr, timeout=seconds, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise ImportFailure("import_too_slow", name=name, limit=_whole(seconds)) from None
        stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - 4000))
        tail = stderr.read().decode(errors="replace")
    answer = _answer(done.stdout)
    if "summary" in answer:
        data = answer["summary"]
        return Summary(**{**data, "warnings": tuple(data["warnings"])})
    if "failure" in answer:
        raise ImportFailure.from_dict(answer["failure"])
    if "store_error" in answer:
        raise StoreError(answer["store_error"])
    log.error("import child for %s ended with status %s: %s", name, done.returncode, tail)
    if "crash" in answer:
        raise RuntimeError(f"the import of {name} failed: {answer['crash']}")
    raise ImportFailure("import_stopped", name=name, memory=memory_mb, seconds=_whole(seconds))


def _answer(stdout: bytes) -> dict:
    """The child's JSON answer, or ``{}`` when it gave none (it died)."""
    try:
        answer = json.loads(stdout)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _whole(seconds: float) -> int | float:
    """Seconds as a whole number when they are one (for messages)."""
    return int(seconds) if float(seconds).is_integer() else seconds


# -- the child -------------------------------------------------------------


def _limit(memory_mb: int, seconds: float) -> None:
    """Limit this process's address space to ``memory_mb`` and its CPU time to ``seconds`` (and a margin)."""
    memory = memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = int(seconds) + CPU_MARGIN
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def _progress(job: Job) -> Progress:
    """The job's progress: its status file, if it has one (slowed down by :data:`SLOW_ENV`, for tests)."""
    if not job.status:
        return SILENT
    status = StatusFile(job.status, extra={"state": "checking" if job.dry_run else "importing"})
    try:
        delay = float(os.environ.get(SLOW_ENV) or 0)
    except ValueError:
        delay = 0.0
    if delay <= 0:
        return status

    def slowed(stage: str, done: int | None = None, total: int | None = None, unit: str = "") -> None:
        status(stage, done, total, unit)
        time.sleep(delay)
    return slowed


def _work(job: Job):
    """Do ``job`` here: the import report, the rejects file written."""
    from gisapp.domain import Calendar
    from gisapp.importing.prepare import run_import, write_rejects
    from gisapp.store import open_store

    calendar = Calendar(tuple(job.weekend), tuple(dt.date.fromisoformat(d) for d in job.holidays))
    report = run_import(open_store(job.store, must_exist=False), job.layer, job.path, calendar=calendar,
                        parcels=job.parcels, crs=job.crs, mode=job.mode, dry_run=job.dry_run, sheet=job.sheet,
                        limits=ReadLimits(job.unpacked_mb, job.max_features), progress=_progress(job))
    if job.rejects and report.rejected:
        write_rejects(report, job.rejects)
    return report


#: What the C libraries say when the address-space limit refuses them a mapping: a thread's stack, a shared
#: library loaded on first use (numba's compiler, ~170 MB), a buffer.
_NO_ADDRESS_SPACE = ("can't start new thread", "failed to map segment", "cannot allocate memory")


def _out_of_address_space(err: BaseException | None) -> bool:
    """Whether ``err`` is the address-space limit met: Python's allocator (``MemoryError``) or a C library's
    thread or mapping refused (``OSError`` ENOMEM, or its message), somewhere in the chain of causes."""
    while err is not None:
        if isinstance(err, MemoryError) or (isinstance(err, OSError) and err.errno == errno.ENOMEM):
            return True
        if isinstance(err, (RuntimeError, OSError, ImportError)) and any(
                text in str(err).lower() for text in _NO_ADDRESS_SPACE):
            return True
        err = err.__cause__ or err.__context__
    return False


def main() -> None:
    """The child: read the job from stdin, do it under the limits, answer on stdout (JSON)."""
    request = json.loads(sys.stdin.buffer.read())
    answer_to = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever a library prints goes to stderr; stdout carries the answer alone
    job = Job(**request["job"])
    name = os.path.basename(job.path)
    answer: dict[str, object]  # one key: summary, failure, store_error or crash
    try:
        _limit(request["memory_mb"], request["seconds"])
        answer = {"summary": asdict(Summary.of(_work(job)))}
    except ImportFailure as err:
        answer = {"failure": err.as_dict()}
    except StoreError as err:
        answer = {"store_error": str(err)}
    except Exception as err:  # the memory limit met, or a bug (its traceback goes to stderr, which the parent logs)
        if _out_of_address_space(err):
            answer = {"failure": ImportFailure("import_out_of_memory", name=name,
                                               limit=request["memory_mb"]).as_dict()}
        else:
            traceback.print_exc()
            answer = {"crash": f"{type(err).__name__}: {err}"}
    answer_to.write(json.dumps(answer))
    answer_to.flush()


if __name__ == "__main__":
    main()
