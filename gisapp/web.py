"""Per-request resources: the store and the language, kept on ``flask.g``."""

from __future__ import annotations

from flask import current_app, g, request

from gisapp.store import Store, open_store

LANGS = ("vi", "en")


def get_store() -> Store:
    """The store for this request, opened once per request."""
    if "store" not in g:
        g.store = open_store(current_app.config["STORE"])
    return g.store


def get_lang() -> str:
    """The interface language: ``?lang=``, then the ``lang`` cookie, then the setting."""
    lang = request.args.get("lang") or request.cookies.get("lang") or current_app.config["LANG"]
    return lang if lang in LANGS else "vi"


def init_app(app) -> None:
    """Remember a language chosen with ``?lang=`` in a cookie."""

    @app.after_request
    def _persist_lang(response):
        lang = request.args.get("lang")
        if lang in LANGS:
            response.set_cookie("lang", lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
        return response
