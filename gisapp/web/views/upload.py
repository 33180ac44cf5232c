"""The upload page: officers upload a file, read the dry-run report, then confirm (or start again)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, send_file, url_for

from gisapp.accounts import Accounts
from gisapp.importing.child import Summary
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


def _wants_json() -> bool:
    """Whether the upload page's script sent the form (it asks for JSON and follows the check itself)."""
    return request.accept_mimetypes.best == "application/json"


@bp.post("/upload")
@auth.require("officer")
def check():
    """Save the upload and show its dry-run report.

    The page's script (``static/upload.js``) asks for JSON: the check then
    runs in the background and the answer says where to follow it
    (``status``) and where its page is (``page``).  A plain form post waits
    for the report.
    """
    f, config = request.form, current_app.config
    try:
        pending = uploads.save(_root(), request.files.get("file"), layer=f.get("layer", ""),
                               mode=f.get("mode", "upsert"), sheet=f.get("sheet"), crs=f.get("crs"),
                               user=auth.signed_in_user().username, parcels=request.files.get("parcels"),
                               quota=uploads.Quota(config["UPLOAD_QUOTA_MB"], config["UPLOADS_TOTAL_MB"]))
    except ImportFailure as err:
        if _wants_json():
            return jsonify({"error": err.text(get_lang(), "web")}), 400
        return _form(err, 400)
    if _wants_json():
        uploads.start_check(_root(), pending, config)
        return jsonify({"token": pending.token, "status": url_for("upload.status", token=pending.token),
                        "page": url_for("upload.back", token=pending.token)}), 202
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
    detail = f"{pending.mode} from {pending.file}, uploaded by {pending.uploaded_by}: "
    if _wants_json():  # the page's script: import in the background, follow it like the check
        accounts = Accounts(current_app.config["ACCOUNTS"])  # its own: used from the import's thread

        def audit(report: Summary) -> None:
            accounts.audit(officer.username, "import", pending.layer, report.accepted,
                           detail + ", ".join(f"{k} {v}" for k, v in report.changes.items()))
        try:
            uploads.start_import(_root(), pending, current_app.config, audit)
        except ImportFailure as err:
            return jsonify({"error": err.text(get_lang(), "web")}), 400
        return jsonify({"token": pending.token, "status": url_for("upload.status", token=pending.token),
                        "page": url_for("upload.back", token=pending.token)}), 202
    if uploads.confirmed(_root(), pending):
        return _form(uploads.UploadError("upload_expired"), 400)
    try:
        report = _run(pending, dry_run=False)
    except ImportFailure as err:
        return _form(err, 400)
    auth.get_accounts().audit(officer.username, "import", pending.layer, report.accepted,
                              detail + ", ".join(f"{k} {v}" for k, v in report.changes.items()))
    uploads.discard(_root(), token)
    return render_template("upload_report.html", report=report, pending=pending, confirmed=True, lang=get_lang())


@bp.post("/upload/<token>/discard")
@auth.require("officer")
def discard(token: str):
    """Drop a checked upload without importing it (its room in the quota is free again); back to the form."""
    uploads.discard(_root(), _pending(token).token)
    return redirect(url_for("upload.form"))


@bp.get("/upload/<token>/status")
@auth.require("officer")
def status(token: str):
    """The background check's state as JSON (what ``static/upload.js`` polls), from the upload's status file."""
    data = uploads.check_status(_root(), _pending(token), current_app.config["IMPORT_SECONDS"])
    if data is None:
        return jsonify({"state": "unknown", "text": "", "error": None}), 404
    return jsonify(uploads.describe(data, get_lang()))


@bp.get("/upload/<token>")
@auth.require("officer")
def back(token: str):
    """An upload's page: its check's progress, its report or its failure (any tab, any time); else start again."""
    pending = _pending(token)
    data = uploads.check_status(_root(), pending, current_app.config["IMPORT_SECONDS"])
    if data is None:
        return redirect(url_for("upload.form"))
    if data.get("state") in ("done", "imported"):
        summary = data["summary"]
        report = Summary(**{**summary, "warnings": tuple(summary["warnings"])})
        return render_template("upload_report.html", report=report, pending=pending,
                               confirmed=data["state"] == "imported", lang=get_lang())
    if data.get("state") == "failed":
        return _form(ImportFailure.from_dict(data["error"]), 200)
    return render_template("upload_progress.html", pending=pending, state=uploads.describe(data, get_lang()),
                           lang=get_lang())
