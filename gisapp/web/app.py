"""The app factory: settings, store access, views, error handlers."""

from __future__ import annotations

import logging
import secrets

from flask import Flask, current_app
from flask import request as flask_request
from werkzeug.middleware.proxy_fix import ProxyFix

from gisapp.analysis import counts
from gisapp.config import PACKAGE, ConfigError, load_config, resource_dir
from gisapp.store import open_store
from gisapp.tiles import index as tile_index
from gisapp.tiles.disk import Served, TileDir
from gisapp.web import auth, errors, request, views

LOG = logging.getLogger(__name__)


def create_app(config: dict | None = None) -> Flask:
    """Build the Flask app: settings, store access, views, error handlers.

    Nothing is read from the store here; each request opens what it needs.
    """
    templates = resource_dir("templates")
    if not templates.is_dir():
        raise ConfigError(f"template folder {templates} is missing (reinstall gisapp)")
    app = Flask(
        "gisapp",
        root_path=str(PACKAGE),
        template_folder=str(templates),
        static_folder=str(PACKAGE / "static"),
        static_url_path="/static",
    )
    settings = load_config(config)
    app.config.update(settings)
    if not app.config["SECRET_KEY"]:
        # Development without GISAPP_SECRET_KEY: a key of this process only
        # (sessions end when it restarts); production refuses to start instead.
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    if app.config["PROXIES"]:
        # The client's address and scheme as the trusted proxies saw them (sign-in throttling, Secure cookies);
        # only the last PROXIES entries of each header are believed, the rest may be the client's own words.
        n = app.config["PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    request.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    views.register(app)
    app.before_request(_note_served)
    app.teardown_request(lambda _error: _note_served())
    return app


_NOT_NOTED = object()
#: Requests the renderer does not yield to: a proxy's or a monitor's health probe, every few seconds, is no
#: officer waiting for a page, and would hold the renderer back as long as it probes.
_NOT_YIELDED_TO = frozenset({"/healthz"})


def _note_served() -> None:
    """Note in the store's tile folder that a request begins or ends (:class:`gisapp.tiles.disk.Served`): the
    tile renderer beside the server yields to the requests (:class:`gisapp.tiles.disk.Yielding`), but for
    health probes (:data:`_NOT_YIELDED_TO`)."""
    if flask_request.path in _NOT_YIELDED_TO:  # (both hooks run in the request's context)
        return
    served = current_app.extensions.get("gisapp.served", _NOT_NOTED)
    if served is _NOT_NOTED:  # once per process: where the folder is
        served = _served(current_app.config)
        current_app.extensions["gisapp.served"] = served
    if served is not None:
        try:
            served.note()
        except OSError:  # the folder unusable: the renderer just does not yield
            current_app.extensions["gisapp.served"] = None


def _served(config: dict) -> Served | None:
    """The store's :class:`gisapp.tiles.disk.Served` (``None`` when there is no usable tile folder)."""
    if not config.get("TILE_DIR"):
        return None
    try:
        return TileDir(config["TILE_DIR"], open_store(config["STORE"]).url).served()
    except Exception:  # noqa: BLE001 - a request says what is wrong with the store; tiles are built on request
        LOG.warning("the tile renderer will not yield to requests", exc_info=True)
        return None


def preload(app: Flask, *, wait: bool = False) -> None:
    """Begin reading, in the background, what this server process counts over: the dossiers' columns and
    history and the map's sidewalk permits' and findings' periods (:func:`gisapp.analysis.counts.preload`),
    and what its filtered tiles search and date (:func:`gisapp.tiles.index.preload`).
    ``gisapp serve`` calls it in each process as it starts, so that the first map views and dashboards of a
    day count in memory instead of in the store (at a million dossiers on PostGIS: seconds of reading).

    ``wait``: return when both are read (side by side; a failure is logged and leaves them to be read at
    their first use): ``gisapp serve --workers`` reads them so in gunicorn's master before its workers fork,
    once for all of them, so that no worker takes a request while it reads (at a million dossiers ~10 s of a
    core each, which the first pages of a new server waited for)."""
    try:
        store = open_store(app.config["STORE"])
        reading = [counts.preload(store), tile_index.preload(store)]
    except Exception:  # noqa: BLE001 - the requests count in the store meanwhile, and say what is wrong
        LOG.warning("cannot read the counts' columns of %s", app.config["STORE"], exc_info=True)
        return
    if wait:
        for thread in reading:
            thread.join()
