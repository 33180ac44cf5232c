"""Per-request resources (the store and the language, kept on ``flask.g``) and request-wide rules.

The rules: no control character in any query parameter or path parameter;
no caching of responses that may carry personal data.  Absolute links start with :func:`public_root`.
"""

from __future__ import annotations

import re

from flask import current_app, g, request

from gisapp.filters import FilterError
from gisapp.store import Store, open_store

LANGS = ("vi", "en")
#: Control characters: C0 (tab and line breaks included), DEL and C1.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: Endpoints whose responses never carry personal data and keep their own caching.
CACHEABLE_ENDPOINTS = ("static", "tiles.tile")


def get_store() -> Store:
    """The store for this request, opened once per request."""
    if "store" not in g:
        g.store = open_store(current_app.config["STORE"])
    return g.store


def known_wards(store: Store, param: str = "ward") -> set[str] | None:
    """The store's ward codes when the request names a ward in ``param`` (once per request).

    ``None`` (no check) when no ward is asked for or the store has no wards.
    """
    if not any(request.args.getlist(param)):
        return None
    if "known_wards" not in g:
        g.known_wards = store.ward_codes() or None
    return g.known_wards


def get_store_for_writing() -> Store:
    """The store for an import from a page: created when it does not exist yet."""
    return open_store(current_app.config["STORE"], must_exist=False)


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


def init_app(app) -> None:
    """Request-wide rules (control characters, caching), the ``?lang=`` cookie, template helpers."""

    @app.before_request
    def _refuse_control_characters():
        check_text_params(request.args, request.view_args, request.path)

    @app.context_processor
    def _layer_label():
        from gisapp.schema import get_layer

        return {"layer_label": lambda name: get_layer(name).label(get_lang()),
                "public_root": public_root}

    @app.after_request
    def _no_caching_of_personal_data(response):
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
    from gisapp import privacy

    return privacy.show_personal()
