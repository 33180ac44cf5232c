"""How a refused request looks: the one JSON error shape for the API and the map's data, the HTML error page
for the rest.  The error itself is :class:`gisapp.errors.RequestError`, raised by the core, the API and the
views alike; store failures and Werkzeug's HTTP errors are rendered as one too."""

from __future__ import annotations

from flask import current_app, jsonify, render_template, request
from markupsafe import escape
from werkzeug.exceptions import HTTPException, SecurityError

from gisapp.errors import RequestError
from gisapp.store import StoreError


def _wants_json() -> bool:
    path = request.path
    return (path.startswith(("/api", "/data", "/export", "/healthz", "/tiles", "/reports")) or path.endswith(".pdf")
            or request.args.get("f") == "json"
            or request.accept_mimetypes.best == "application/json")


def _respond(err: RequestError, *, page: bool = True):
    """The JSON error, or the HTML error page (a bare one when ``page`` is false: no links can be built)."""
    status, code, description = err.status, err.code, err.description
    if _wants_json() and request.args.get("f") != "html":
        return jsonify(err.body()), status
    if not page:
        body = (f"<!doctype html><meta charset=utf-8><title>{status}</title><h1>{status}</h1>"
                f'<p class="error-description">{escape(description)}</p>')
        return current_app.response_class(body, status=status, mimetype="text/html")
    return render_template("error.html", status=status, code=code, description=description), status


def _untrusted_host(app):
    """The 400 for a ``Host`` header that is not in ``GISAPP_TRUSTED_HOSTS`` (no page: no URL can be built)."""
    allowed = ", ".join(app.config.get("TRUSTED_HOSTS") or ())
    return _respond(RequestError(
        400, "UntrustedHost", f"Tên máy chủ không được phép (GISAPP_TRUSTED_HOSTS: {allowed}). / The Host header "
        f"names a host this server does not answer to (GISAPP_TRUSTED_HOSTS: {allowed})."), page=False)


def init_app(app) -> None:
    """Register the handlers: refused requests (bad parameters, unknown things), store errors, HTTP errors."""

    @app.errorhandler(RequestError)
    def _refused(err: RequestError):
        return _respond(err)

    @app.errorhandler(StoreError)
    def _store(err: StoreError):
        app.logger.error("store error: %s", err)
        return _respond(RequestError(503, "StoreUnavailable", str(err)))

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException):
        if isinstance(err, SecurityError):
            return _untrusted_host(app)
        code = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}.get(err.code or 500, "HTTPError")
        description = err.description or err.name
        if err.code == 413:
            setting = "INSPECTION_MAX_MB" if request.path.startswith("/inspections") else "MAX_UPLOAD_MB"
            limit = app.config.get(setting)
            description = (f"Tệp quá lớn: tối đa {limit} MB. / The file is too large: "
                           f"the limit is {limit} MB (GISAPP_{setting}).")
        return _respond(RequestError(err.code or 500, code, description))

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        app.logger.exception("unhandled error")
        return _respond(RequestError(500, "ServerError", "internal error; the details are in the server log"))
