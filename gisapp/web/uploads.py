"""Uploaded files waiting for confirmation: saved under a random token, then imported.

The upload page checks a file first (a dry run), shows the report, and
imports only when the officer confirms.  Between the two steps the file and
the chosen options wait in a private folder named by an unguessable token.
No Flask here: the view hands over file objects with ``save`` and
``filename``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from gisapp import i18n
from gisapp.folders import private_folder
from gisapp.importing import child as importing_child
from gisapp.importing.prepare import IMPORTABLE_LAYERS, ImportFailure
from gisapp.importing.read import safe_name
from gisapp.progress import read_json, write_json

ACCEPTED_SUFFIXES = (".csv", ".xlsx", ".zip", ".gpkg", ".geojson", ".json", ".shp")
MAX_AGE_SECONDS = 24 * 3600
STATUS_FILE = "status.json"
#: Made (exclusively) when an upload's import starts in the background: it is imported once.
CONFIRMED_FILE = "confirmed"
#: Seconds past the import's time limit after which a check still "checking" counts as stopped (its worker died).
STALE_MARGIN_S = 30
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")
log = logging.getLogger(__name__)


class UploadError(ImportFailure):
    """An upload that cannot be used; a message for the user, like :class:`ImportFailure`'s."""


@dataclass(frozen=True)
class Pending:
    """An uploaded file and the options chosen for its import."""

    token: str
    layer: str
    file: str
    parcels: str | None
    mode: str
    sheet: str | None
    crs: str | None
    uploaded_by: str

    def path(self, root: Path) -> Path:
        """The uploaded file (under ``files/``, apart from the upload's own bookkeeping)."""
        return Path(root) / self.token / "files" / self.file

    def parcels_path(self, root: Path) -> Path | None:
        """The uploaded parcels file, if any."""
        return Path(root) / self.token / "files" / self.parcels if self.parcels else None

    def rejects_path(self, root: Path) -> Path:
        """Where the dry run keeps the rejected rows."""
        return Path(root) / self.token / "rejects.csv"

    def status_path(self, root: Path) -> Path:
        """The check's progress and outcome (JSON), for every server process: see :func:`start_check`."""
        return Path(root) / self.token / STATUS_FILE


@dataclass(frozen=True)
class Quota:
    """How many MB of uploads may wait for confirmation: per officer, and in all; ``None``: no limit."""

    officer_mb: int | None = None
    total_mb: int | None = None


def save(root: Path, upload, *, layer: str, mode: str, sheet: str | None, crs: str | None,
         user: str, parcels=None, quota: Quota = Quota()) -> Pending:
    """Keep ``upload`` (and ``parcels``) under a new token; check the choices first, the ``quota`` after."""
    if layer not in IMPORTABLE_LAYERS:
        raise UploadError("upload_unknown_layer", layer=str(layer), layers=", ".join(IMPORTABLE_LAYERS))
    if mode not in ("upsert", "replace"):
        raise UploadError("upload_unknown_mode", mode=str(mode))
    files = {"file": upload, "parcels": parcels}
    names = {}
    for role, f in files.items():
        if f is None or not getattr(f, "filename", ""):
            if role == "file":
                raise UploadError("upload_no_file")
            continue
        name = safe_name(f.filename)
        if not name.endswith(ACCEPTED_SUFFIXES):
            raise UploadError("upload_bad_suffix", name=Path(f.filename.replace("\\", "/")).name,
                              suffixes=", ".join(ACCEPTED_SUFFIXES))
        names[role] = name
    if names.get("parcels") == names["file"]:
        names["parcels"] = "parcels_" + names["parcels"]
    try:
        root = private_folder(root)
    except OSError as err:
        log.error("the upload folder (GISAPP_UPLOADS) cannot be used: %s", err)
        raise UploadError("upload_folder_unusable") from None
    _clean(root)
    token = secrets.token_urlsafe(24)
    folder = Path(root) / token
    (folder / "files").mkdir(parents=True)
    for role, name in names.items():
        files[role].save(folder / "files" / name)
    try:
        _check_quota(Path(root), token, user, quota)
    except UploadError:
        discard(root, token)
        raise
    pending = Pending(token, layer, names["file"], names.get("parcels"), mode, sheet or None, crs or None, user)
    (folder / "pending.json").write_text(json.dumps(asdict(pending)), encoding="utf-8")
    return pending


def _check_quota(root: Path, token: str, user: str, quota: Quota) -> None:
    """Refuse the new upload ``token`` of ``user`` when it takes the waiting uploads past ``quota``."""
    new = _size(root / token)
    mine = total = new
    for folder in root.iterdir():
        meta = folder / "pending.json"
        if folder.name == token or not meta.is_file():
            continue
        size = _size(folder)
        total += size
        with contextlib.suppress(OSError, ValueError, KeyError):
            if json.loads(meta.read_text(encoding="utf-8"))["uploaded_by"] == user:
                mine += size
    if quota.officer_mb is not None and mine > quota.officer_mb << 20:
        raise UploadError("upload_quota_officer", used=_mb(mine), limit=quota.officer_mb)
    if quota.total_mb is not None and total > quota.total_mb << 20:
        raise UploadError("upload_quota_total", used=_mb(total), limit=quota.total_mb)


def _size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (one removed meanwhile counts nothing)."""
    size = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            size += path.stat().st_size if path.is_file() else 0
    return size


def _mb(size: int) -> str:
    """Bytes as MB with one decimal, for messages."""
    return f"{size / (1 << 20):.1f}"


def may_use(pending: Pending, user) -> bool:
    """Whether ``user`` may confirm, discard or download the rejects of ``pending``: its uploader or an admin."""
    return user is not None and (user.username == pending.uploaded_by or user.can("admin"))


def run(root: Path, pending: Pending, config, *, dry_run: bool, status: Path | None = None) -> importing_child.Summary:
    """Check (``dry_run``) or import ``pending`` in a child process, within the settings' limits.

    The check writes the rejected rows to :meth:`Pending.rejects_path`.
    ``config`` is the app's settings (store, calendar, limits); the child
    writes its progress to ``status`` (JSON), if given.
    """
    calendar = config["CALENDAR"]
    parcels = pending.parcels_path(root)
    job = importing_child.Job(
        store=str(config["STORE"]), layer=pending.layer, path=str(pending.path(root)), mode=pending.mode,
        dry_run=dry_run, parcels=str(parcels) if parcels else None, crs=pending.crs, sheet=pending.sheet,
        rejects=str(pending.rejects_path(root)) if dry_run else None, weekend=tuple(calendar.weekend),
        holidays=tuple(d.isoformat() for d in calendar.holidays), unpacked_mb=config["MAX_UNPACKED_MB"],
        max_features=config["MAX_UPLOAD_FEATURES"], status=str(status) if status else None)
    return importing_child.run(job, memory_mb=config["IMPORT_MEMORY_MB"], seconds=config["IMPORT_SECONDS"])


def start_check(root: Path, pending: Pending, config) -> None:
    """Check ``pending`` in the background; its progress and outcome go to :meth:`Pending.status_path`.

    The file (written atomically; see :class:`gisapp.progress.StatusFile`)
    is what every server process answers from, so a refresh or a second tab
    served by another worker sees the same state: ``state`` is
    ``checking`` (with the child's ``stage``, ``done``, ``total``, ``unit``,
    ``seconds_left``), then ``done`` (with ``summary``) or ``failed`` (with
    ``error``, an :class:`ImportFailure` as data).  A thread of this process
    waits for the child and writes the outcome.
    """
    _start(root, pending, dict(config), dry_run=True, on_done=None)


def start_import(root: Path, pending: Pending, config, on_done: Callable[[importing_child.Summary], None]) -> None:
    """Import the checked ``pending`` in the background, followed as :func:`start_check` is.

    ``state`` is ``importing``, then ``imported`` (with ``summary``; the
    uploaded files are removed, the status kept for the page until the
    upload is a day old) or ``failed``.  ``on_done(summary)`` runs in the
    thread once the store is written (the audit log).  An upload is imported
    once: :class:`UploadError` when it was confirmed before (another tab).
    """
    try:
        (Path(root) / pending.token / CONFIRMED_FILE).open("x").close()
    except FileExistsError:
        raise UploadError("upload_expired") from None
    _start(root, pending, dict(config), dry_run=False, on_done=on_done)


def confirmed(root: Path, pending: Pending) -> bool:
    """Whether ``pending`` was confirmed already (its import started in the background)."""
    return (Path(root) / pending.token / CONFIRMED_FILE).exists()


def _start(root: Path, pending: Pending, config: dict, *, dry_run: bool, on_done) -> None:
    path = pending.status_path(root)
    write_json(path, {"state": "checking" if dry_run else "importing", "stage": "queued", "started": time.time(),
                      "updated": time.time()})
    threading.Thread(target=_background, args=(root, pending, config, path, dry_run, on_done), daemon=True,
                     name=f"upload-{pending.token[:6]}").start()


def _background(root: Path, pending: Pending, config: dict, path: Path, dry_run: bool, on_done) -> None:
    """The thread of :func:`start_check` and :func:`start_import`: run the child and record how it ended."""
    try:
        summary = run(root, pending, config, dry_run=dry_run, status=path)
        if on_done is not None:
            on_done(summary)
        outcome: dict = {"state": "done" if dry_run else "imported", "summary": asdict(summary)}
        if not dry_run:
            shutil.rmtree(Path(root) / pending.token / "files", ignore_errors=True)
            pending.rejects_path(root).unlink(missing_ok=True)
    except ImportFailure as err:
        outcome = {"state": "failed", "error": err.as_dict()}
    except Exception as err:  # the store down, a bug in the child: logged, and said on the page
        log.exception("the %s of upload %s failed", "check" if dry_run else "import", pending.file)
        outcome = {"state": "failed", "error": ImportFailure("upload_check_failed", name=pending.file,
                                                             reason=f"{type(err).__name__}: {err}").as_dict()}
    if outcome["state"] == "failed" and not dry_run:  # nothing was written: it may be confirmed again
        (Path(root) / pending.token / CONFIRMED_FILE).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # the upload was discarded meanwhile
        write_json(path, {**(read_json(path) or {}), **outcome, "updated": time.time()})


def check_status(root: Path, pending: Pending, seconds: float) -> dict | None:
    """The state :func:`start_check` keeps for ``pending`` (``None`` when it was not checked that way).

    A check still ``checking`` ``seconds`` (the import's time limit) and a
    margin after it began was lost with its server process: ``failed``.
    """
    data = read_json(pending.status_path(root))
    if data is None:
        return None
    running = data.get("state") in ("checking", "importing")
    if running and time.time() - float(data.get("started") or 0) > seconds + STALE_MARGIN_S:
        name = pending.file
        data = {**data, "state": "failed", "error": ImportFailure("import_stopped", name=name, memory="?",
                                                                   seconds=seconds).as_dict()}
    return data


def describe(data: dict, lang: str) -> dict:
    """The JSON the upload page polls: ``state``, counts, ``text`` (the stage in ``lang``), ``error`` text."""
    stage, done, total, unit = data.get("stage"), data.get("done"), data.get("total"), data.get("unit") or ""
    words = i18n.text(f"progress_{stage}", lang) if f"progress_{stage}" in i18n.STRINGS else str(stage or "")
    unit_word = i18n.text(f"progress_{unit}", lang) if f"progress_{unit}" in i18n.STRINGS else unit
    text = words
    if total:
        text += f": {done or 0:,} / {total:,} {unit_word}".rstrip()
    elif done:
        text += f": {done:,} {unit_word}".rstrip()
    left = data.get("seconds_left")
    if total and left:
        text += " (" + i18n.text("progress_seconds_left", lang, seconds=max(1, round(left))) + ")"
    error = data.get("error")
    return {"state": data.get("state"), "stage": stage, "done": done, "total": total, "unit": unit,
            "seconds_left": left, "text": text,
            "error": ImportFailure.from_dict(error).text(lang, "web") if isinstance(error, dict) else None}


def load(root: Path, token: str) -> Pending:
    """The upload saved under ``token``; :class:`UploadError` when there is none."""
    if not _TOKEN.fullmatch(token or ""):
        raise UploadError("upload_unknown")
    meta = Path(root) / token / "pending.json"
    if not meta.exists():
        raise UploadError("upload_expired")
    return Pending(**json.loads(meta.read_text(encoding="utf-8")))


def discard(root: Path, token: str) -> None:
    """Remove an upload once imported."""
    if _TOKEN.fullmatch(token or ""):
        shutil.rmtree(Path(root) / token, ignore_errors=True)


def _clean(root: Path) -> None:
    """Remove uploads older than a day."""
    root = Path(root)
    if not root.exists():
        return
    limit = time.time() - MAX_AGE_SECONDS
    for folder in root.iterdir():
        if folder.is_dir() and folder.stat().st_mtime < limit:
            shutil.rmtree(folder, ignore_errors=True)
