"""``/healthz``: the app answers and its store can be read; whether its tiles are rendered, and how far."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from gisapp.analysis import counts as kept
from gisapp.tiles import index as tile_index
from gisapp.tiles.disk import tiles_health
from gisapp.web.request import get_store

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 with layer counts when the store answers; 503 (JSON error) otherwise.

    ``tiles`` tells whether the unfiltered tiles of the data as it is now
    are rendered (``ready``), whether a renderer is running (``renderer``:
    ``gisapp serve`` starts one) and what is wrong with the tile folder, if
    anything; it does not make the answer fail: tiles not rendered yet are
    built on request.  ``progress`` is the running (or last) render's
    counts as the renderer keeps them in the tile folder
    (:class:`gisapp.tiles.disk.RenderProgress`): ``state`` (``rendering``,
    ``done``, ``stopped``), the ``layer`` and ``zoom`` it is at, per layer
    and zoom the tiles ``done`` of ``planned``, ``tiles_done``,
    ``seconds_left`` (of the current zoom) and ``started``/``updated``
    (epoch seconds).  ``arrays``: whether this server process holds the
    columns the dashboard and the map count over in memory
    (:func:`gisapp.analysis.counts.state`: ``ready``, ``reading``,
    ``behind``, ``none``; ``gisapp serve`` reads them when a process starts),
    per kind: ``dossiers``, ``sidewalk_permits``, ``findings``.  ``tile_index``:
    the same for the columns the filtered tiles search and date
    (:func:`gisapp.tiles.index.state`), per layer.
    """
    store = get_store()
    counts = {info.name: info.count for info in store.info()}
    body = {"status": "ok", "layers": counts, "arrays": kept.state(store),
            "tile_index": tile_index.state(store)}
    tiles = tiles_health(current_app.config, store)
    if tiles is not None:
        body["tiles"] = tiles
    return jsonify(body)
