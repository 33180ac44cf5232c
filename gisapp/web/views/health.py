"""``/healthz``: the app answers and its store can be read; whether its tiles are rendered."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from gisapp.tiles.disk import TileDir
from gisapp.web.request import get_store

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 with layer counts when the store answers; 503 (JSON error) otherwise.

    ``tiles`` tells whether the unfiltered tiles of the data as it is now
    are rendered (``ready``), whether a renderer is running (``renderer``:
    ``gisapp serve`` starts one) and what is wrong with the tile folder, if
    anything; it does not make the answer fail: tiles not rendered yet are
    built on request.
    """
    store = get_store()
    counts = {info.name: info.count for info in store.info()}
    body = {"status": "ok", "layers": counts}
    root, zooms = current_app.config.get("TILE_DIR"), list(current_app.config.get("TILE_WARM") or ())
    if root and zooms:
        try:
            shared = TileDir(root, store.url)
            body["tiles"] = {"zooms": zooms, "ready": shared.ready(store.version(), zooms),
                             "renderer": shared.renderer_alive()}
        except OSError as err:
            body["tiles"] = {"zooms": zooms, "ready": False, "renderer": False, "problem": str(err)}
    return jsonify(body)
