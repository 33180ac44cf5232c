"""The upload page: officers upload a file, read the dry-run report, then confirm (or start again)."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, send_file, url_for

from gisapp.importing.prepare import IMPORTABLE_LAYERS, ImportFailure
from gisapp.web import auth, uploads
from gisapp.web.request import get_lang

bp = Blueprint("upload", __name__)


def _root():
    return current_app.config["UPLOADS"]


def _run(pending: uploads.Pending, dry_run: bool):
    return uploads.run(_root(), pending, current_app.config, dry_run=dry_run)


def _form(error: ImportFailure | None = None, status: int = 200):
    """The upload form, with ``error`` in the user's language naming the form's fields."""
    text = error.text(get_lang(), "web") if error else None
    return render_template("upload.html", layers=IMPORTABLE_LAYERS, error=text, lang=get_lang()), status


def _pending(token: str, missing_status: int = 404) -> uploads.Pending:
    """The upload ``token`` if the signed-in user may use it; :class:`_Refused` otherwise."""
    try:
        pending = uploads.load(_root(), token)
    except uploads.UploadError as err:
        raise _Refused(err, missing_status) from None
    if not uploads.may_use(pending, auth.current_user()):
        raise _Refused(uploads.UploadError("upload_not_yours"), 403)
    return pending


class _Refused(Exception):
    """An upload the user cannot use: the message and the HTTP status."""

    def __init__(self, error: ImportFailure, status: int):
        super().__init__(error)
        self.error, self.status = error, status


@bp.errorhandler(_Refused)
def _refused(err: _Refused):
    return _form(err.error, err.status)


@bp.get("/upload")
@auth.require("officer")
def form():
    """The upload form."""
    return _form()


@bp.post("/upload")
@auth.require("officer")
def check():
    """Save the upload and show its dry-run report."""
    f, config = request.form, current_app.config
    try:
        pending = uploads.save(_root(), request.files.get("file"), layer=f.get("layer", ""),
                               mode=f.get("mode", "upsert"), sheet=f.get("sheet"), crs=f.get("crs"),
                               user=auth.signed_in_user().username, parcels=request.files.get("parcels"),
                               quota=uploads.Quota(config["UPLOAD_QUOTA_MB"], config["UPLOADS_TOTAL_MB"]))
    except ImportFailure as err:
        return _form(err, 400)
    try:
        report = _run(pending, dry_run=True)
    except ImportFailure as err:
        uploads.discard(_root(), pending.token)
        return _form(err, 400)
    return render_template("upload_report.html", report=report, pending=pending, confirmed=False, lang=get_lang())


@bp.get("/upload/<token>/rejects.csv")
@auth.require("officer")
def rejects(token: str):
    """The rejected rows of a checked upload (CSV, UTF-8 with BOM)."""
    pending = _pending(token)
    path = pending.rejects_path(_root())
    if not path.exists():
        return _form(uploads.UploadError("upload_no_rejects"), 404)
    return send_file(path, mimetype="text/csv", as_attachment=True,
                     download_name=f"{uploads.safe_name(pending.file).rsplit('.', 1)[0]}.rejects.csv")


@bp.post("/upload/<token>/confirm")
@auth.require("officer")
def confirm(token: str):
    """Import the checked upload, record who uploaded and who confirmed it in the audit log, show the result."""
    officer = auth.signed_in_user()  # before importing: no import without its author in the audit log
    pending = _pending(token, missing_status=400)
    try:
        report = _run(pending, dry_run=False)
    except ImportFailure as err:
        return _form(err, 400)
    auth.get_accounts().audit(officer.username, "import", pending.layer, report.accepted,
                              f"{pending.mode} from {pending.file}, uploaded by {pending.uploaded_by}: " +
                              ", ".join(f"{k} {v}" for k, v in report.changes.items()))
    uploads.discard(_root(), token)
    return render_template("upload_report.html", report=report, pending=pending, confirmed=True, lang=get_lang())


@bp.post("/upload/<token>/discard")
@auth.require("officer")
def discard(token: str):
    """Drop a checked upload without importing it (its room in the quota is free again); back to the form."""
    uploads.discard(_root(), _pending(token).token)
    return redirect(url_for("upload.form"))


@bp.get("/upload/<token>")
@auth.require("officer")
def back(token: str):
    """A checked upload's page after a reload: start again."""
    return redirect(url_for("upload.form"))
