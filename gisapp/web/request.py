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


def init_app(app) -> None:
    """Remember a language chosen with ``?lang=`` in a cookie; layer labels for templates."""

    @app.context_processor
    def _layer_label():
        from gisapp.schema import get_layer

        return {"layer_label": lambda name: get_layer(name).label(get_lang())}

    @app.after_request
    def _persist_lang(response):
        lang = request.args.get("lang")
        if lang in LANGS:
            response.set_cookie("lang", lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
        return response
