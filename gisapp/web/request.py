"""Per-request resources (the store, the language, the CSP nonce, kept on ``flask.g``) and request-wide rules.

The rules: no control character in any query parameter or path parameter;
no caching of responses that may carry personal data; a Content-Security-Policy
on every response.  Absolute links start with :func:`public_root`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import current_app, g, request

from gisapp.errors import FilterError, RequestError
from gisapp.store import Store, open_store
from gisapp.web import auth

LANGS = ("vi", "en")
#: Control characters: C0 (tab and line breaks included), DEL and C1.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: Endpoints whose request bodies have their own limit (a setting in MB) instead of ``MAX_UPLOAD_MB``.
BODY_LIMITS = {"fieldwork.create": "INSPECTION_MAX_MB"}
#: Endpoints whose responses never carry personal data and keep their own caching.
CACHEABLE_ENDPOINTS = ("static", "tiles.tile")


def get_store() -> Store:
    """The store for this request, opened once per request."""
    if "store" not in g:
        g.store = open_store(current_app.config["STORE"])
    return g.store


def data_version() -> str | None:
    """The store's data version as this request first found it (read once: a PostGIS round trip)."""
    if "data_version" not in g:
        g.data_version = get_store().version()
    return g.data_version


def known_wards() -> Callable[[], set[str] | None]:
    """The store's ward codes for the filter parser, read when it first meets a ward code (once per request).

    ``None`` (no check) when the store has no wards.
    """

    def codes() -> set[str] | None:
        if "known_wards" not in g:
            g.known_wards = _ward_codes(get_store(), data_version())
        return g.known_wards

    return codes


def read_body(limit: int) -> bytes:
    """The request body, at most ``limit`` bytes: 413 naming ``body`` when it is larger (never read whole)."""
    data = b"" if (request.content_length or 0) > limit else request.stream.read(limit + 1)
    if (request.content_length or 0) > limit or len(data) > limit:
        raise RequestError(413, "PayloadTooLarge", f"body: larger than {limit // 1024} KB "
                           f"({limit / (1 << 20):g} MB)")
    return data


def _ward_codes(store: Store, version: str | None) -> set[str] | None:
    """The store's ward codes, kept per process for each version of the data (reading them costs ~35 ms on a
    GeoPackage: every filtered tile of a ward would pay it)."""
    if not version:
        return store.ward_codes() or None
    kept = current_app.extensions.setdefault("gisapp.ward_codes", {})
    key = (store.url, version)
    if key not in kept:
        if len(kept) >= 8:
            kept.clear()
        kept[key] = store.ward_codes() or None
    return kept[key]


def get_lang() -> str:
    """The interface language: ``?lang=``, then the ``lang`` cookie, then the setting."""
    lang = request.args.get("lang") or request.cookies.get("lang") or current_app.config["LANG"]
    return lang if lang in LANGS else "vi"


def public_root() -> str:
    """The app's public URL without trailing slash: ``GISAPP_BASE_URL``, else the request's own root."""
    return current_app.config.get("BASE_URL") or request.url_root.rstrip("/")


def check_text_params(args, view_args, path: str = "") -> None:
    """:class:`FilterError` for the first query parameter (name or value), path parameter or else the path
    itself holding a control character: no code, date or search text has one, and the stores cannot all
    hold them (NUL)."""
    items = [(name, value) for name in args for value in args.getlist(name)]
    items += [(name, value) for name, value in (view_args or {}).items() if isinstance(value, str)]
    items.append(("path", path))  # a route the character kept from matching (a line break in a code)
    for name, value in items:
        for text in (name, value):
            found = CONTROL.search(text)
            if found:
                point = f"U+{ord(found.group()):04X}"
                raise FilterError(CONTROL.sub("", name) or "?",
                                  f"chứa ký tự điều khiển {point} / contains the control character {point}")


def csp_nonce() -> str:
    """This response's nonce for inline scripts (made on first use; the policy then names it)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return g.csp_nonce


def content_security_policy(nonce: str | None, basemap: str | None) -> str:
    """The policy: scripts from the app itself and inline ones with ``nonce`` only; images also from the basemap.

    Styles keep ``'unsafe-inline'``: the pages, the legend and Leaflet set ``style``
    attributes, which no nonce covers; injected CSS cannot run code.
    """
    script = "'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    images = " ".join(["'self'", "data:", *basemap_origins(basemap)])
    return "; ".join([
        "default-src 'self'", f"script-src {script}", "style-src 'self' 'unsafe-inline'", f"img-src {images}",
        "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'self'", "form-action 'self'",
        "frame-ancestors 'self'",
    ])


def basemap_origins(basemap: str | None) -> list[str]:
    """Where the basemap's images come from (``GISAPP_TILES``): none, OpenStreetMap, or the URL's origin."""
    value = (basemap or "none").strip()
    if value.lower() == "none":
        return []
    if value.lower() == "osm":
        return ["https://tile.openstreetmap.org"]
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return []
    return [f"{parts.scheme}://{parts.netloc.replace('{s}', '*')}"]


def init_app(app) -> None:
    """Request-wide rules (control characters, caching, CSP), the ``?lang=`` cookie, template helpers."""

    @app.before_request
    def _refuse_control_characters():
        check_text_params(request.args, request.view_args, request.path)

    @app.before_request
    def _body_limit():
        # before the CSRF check reads the form: an endpoint's own limit on the request body, else MAX_UPLOAD_MB's
        setting = BODY_LIMITS.get(request.endpoint or "")
        if setting:
            request.max_content_length = app.config[setting] * 1024 * 1024

    @app.context_processor
    def _layer_label():
        from gisapp.schema import get_layer

        return {"layer_label": lambda name: get_layer(name).label(get_lang()), "csp_nonce": csp_nonce,
                "public_root": public_root}

    @app.after_request
    def _policy_and_caching(response):
        # Registered first, so it runs last, after every view and hook has set its headers.
        response.headers["Content-Security-Policy"] = content_security_policy(g.get("csp_nonce"),
                                                                              app.config.get("BASEMAP"))
        if request.endpoint not in CACHEABLE_ENDPOINTS and _may_show_personal():
            response.headers["Cache-Control"] = "private, no-store"
        return response

    @app.after_request
    def _persist_lang(response):
        lang = request.args.get("lang")
        if lang in LANGS:
            response.set_cookie("lang", lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
        return response


def _may_show_personal() -> bool:
    """Whether this response may carry personal data: the request may see it (signed-in staff)."""
    return auth.show_personal()
