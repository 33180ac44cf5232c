"""``/tiles/…``: Mapbox Vector Tiles of the map layers, and their TileJSON, for QGIS, GDAL and web maps.

``/tiles/<layer>/<z>/<x>/<y>.mvt`` takes the map's filter parameters (parsed
strictly, as ``/data``: a bad value is a 400 JSON error naming it); any other
parameter is a 400 too, as on ``/api``, so that a client never takes an
unfiltered tile for a filtered one (``ward_code=`` is not ``ward=``).  An
empty tile is ``204 No Content``.  Below :data:`gisapp.tiles.mvt.MIN_ZOOM` a
tile is refused with 400: the map shows per-ward counts there.

Where a tile comes from: this process's memory (:class:`gisapp.tiles.mvt.TileCache`),
then, for an unfiltered tile, the folder all processes share
(:mod:`gisapp.tiles.disk`, rendered after each write), else the store builds it.
A filtered tile is the subset of the unfiltered one that matches
(:mod:`gisapp.tiles.subset`: the unfiltered tile taken apart once per process
and version, kept in the same cache), or, for a ``bbox`` filter, built by the store.
"""

from __future__ import annotations

import hashlib
import threading
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, request

from gisapp import geo
from gisapp.errors import NotFound
from gisapp.filters import Filter
from gisapp.schema import LAYERS, STORE_CRS, WEB_CRS
from gisapp.store import Store
from gisapp.tiles import mvt as tiles
from gisapp.tiles import source as tile_source
from gisapp.tiles import subset
from gisapp.tiles.disk import shared_tile, shared_tiles
from gisapp.web.request import data_version, get_store, public_root
from gisapp.web.views.data import strict_filter

bp = Blueprint("tiles", __name__, url_prefix="/tiles")
WORLD = [-180.0, -85.0511287798066, 180.0, 85.0511287798066]


def _layer(layer: str) -> str:
    if layer not in tiles.TILE_FIELDS:
        raise NotFound(f"no vector tiles for layer {layer!r}; layers: {', '.join(tiles.TILE_FIELDS)}")
    return layer


@bp.get("/<layer>/<z>/<x>/<y>.mvt")
def tile(layer: str, z: str, x: str, y: str):
    """One tile of ``layer`` for the request's filter (204 when it is empty)."""
    _layer(layer)
    return _tile(layer, *tiles.check_tile(z, x, y, min_zoom=tiles.MIN_ZOOM))


def _tile(layer: str, z: int, x: int, y: int) -> Response:
    """:func:`tile` once its address is checked (the URL's text made numbers)."""
    flt = strict_filter("tiles")
    store = get_store()
    version = data_version()
    etag = _etag(version, f"{layer}/{z}/{x}/{y}", flt)
    if etag and etag in request.if_none_match:
        return Response(status=304, headers={"ETag": f'"{etag}"', "Cache-Control": "private, no-cache"})
    cache = _cache()
    body = cache.get(etag) if etag else None
    if body is None:
        body = _shared_tile(store, version, flt, layer, z, x, y)
        if etag:
            cache.put(etag, body)
    response = Response(body, status=200 if body else 204, mimetype=tiles.MEDIA_TYPE)
    response.headers["Cache-Control"] = "private, no-cache"
    if etag:
        response.set_etag(etag)
    return response


def _shared_tile(store: Store, version: str | None, flt, layer: str, z: int, x: int, y: int) -> bytes:
    """The tile from the processes' shared folder when it is unfiltered and there, else built.

    A tile a write touched is built until the renderer caught up
    (:func:`gisapp.tiles.disk.shared_tile`).  A tile built here is written to
    the folder only when the renderer would make it too (a zoom it renders,
    with features): requests cannot fill the disk.
    """
    if not version:
        return tile_source.tile(store, layer, z, x, y, flt)
    if not flt.with_(q_personal=False).is_empty():
        return _filtered_tile(store, version, flt, layer, z, x, y)
    shared = shared_tiles(current_app.config, store)  # checks the folder: only for tiles it may hold
    if shared is None:
        return tile_source.tile(store, layer, z, x, y, flt)
    return shared_tile(shared, store, version, layer, z, x, y, lambda: tile_source.tile(store, layer, z, x, y, flt),
                       keep=z in current_app.config.get("TILE_WARM", ()))


def _filtered_tile(store: Store, version: str, flt, layer: str, z: int, x: int, y: int) -> bytes:
    """A filtered tile: the matching features of the unfiltered tile, taken apart once per process
    (:func:`gisapp.tiles.source.subset_tile`), else built by the store with the filter."""
    if flt.bbox is None:
        try:
            feats = _taken_apart(store, version, layer, z, x, y)
        except subset.TileFormatError:  # a damaged file in the shared folder: the store builds the tile
            return tile_source.tile(store, layer, z, x, y, flt)
        size = feats.nbytes
        body = tile_source.subset_tile(store, layer, z, x, y, flt, feats)
        if feats.nbytes != size:  # it now keeps what the store said of its features (search texts, histories)
            _cache().put(_features_key(version, layer, z, x, y), feats, feats.nbytes)
        if body is not None:
            return body
    return tile_source.tile(store, layer, z, x, y, flt)


_TAKING_APART = threading.Lock()


def _taken_apart(store: Store, version: str, layer: str, z: int, x: int, y: int) -> subset.TileFeatures:
    """The unfiltered tile taken apart, from this process's cache, else made once (threads asking for the same
    tile meanwhile wait for it instead of doing it again)."""
    key = _features_key(version, layer, z, x, y)
    cache = _cache()
    feats = cache.get(key)
    if feats is not None:
        return feats
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _TAKING_APART:
        lock = app.extensions.setdefault("gisapp.taking_apart", {}).setdefault(key, threading.Lock())
    try:
        with lock:
            feats = cache.get(key)
            if feats is None:
                feats = subset.take_apart(_shared_tile(store, version, Filter(), layer, z, x, y), layer)
                cache.put(key, feats, feats.nbytes)
    finally:
        with _TAKING_APART:
            app.extensions["gisapp.taking_apart"].pop(key, None)
    return feats


def _features_key(version: str, layer: str, z: int, x: int, y: int) -> str:
    """The cache key of the unfiltered tile taken apart."""
    return f"features|{_etag(version, f'{layer}/{z}/{x}/{y}', Filter())}"


def _cache() -> tiles.TileCache:
    """This app's tile cache (``TILE_CACHE_MB`` per server process)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # the proxy's app, kept per process
    cache = app.extensions.get("gisapp.tile_cache")
    if cache is None:
        cache = app.extensions.setdefault("gisapp.tile_cache",
                                          tiles.TileCache(int(app.config.get("TILE_CACHE_MB", 256)) * 2**20))
    return cache


def _etag(version: str | None, tile: str, flt) -> str | None:
    """A validator of a tile's content: the store's version, the tile and the filter as parsed
    (parameters the tile ignores make no new entry; whether ``q`` searched owner names is in it)."""
    if not version:
        return None
    key = f"{version}|{tile}|{flt!r}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@bp.get("/<layer>.json")
def tilejson(layer: str):
    """TileJSON 3.0.0 of ``layer``: the tile URL (with the request's filter), zooms, bounds and fields."""
    lay = LAYERS[_layer(layer)]
    params = strict_filter("tiles").with_(q_personal=False).to_params()
    store = get_store()
    url = f"{public_root()}/tiles/{layer}/{{z}}/{{x}}/{{y}}.mvt" + (f"?{urlencode(params)}" if params else "")
    extent = next((i.extent for i in store.info() if i.name == layer), None)
    bounds = WORLD
    if extent is not None:
        box = geo.transform([geo.bbox_polygon(extent, STORE_CRS, STORE_CRS)], STORE_CRS, WEB_CRS)[0]
        bounds = [round(v, 7) for v in box.bounds]
    center = [round((bounds[0] + bounds[2]) / 2, 7), round((bounds[1] + bounds[3]) / 2, 7), tiles.MIN_ZOOM]
    fields = {f: lay.field(f).en for f in tiles.TILE_FIELDS[layer]}
    return jsonify({
        "tilejson": "3.0.0", "name": layer, "description": lay.en, "version": "1.0.0", "scheme": "xyz",
        "tiles": [url], "minzoom": tiles.MIN_ZOOM, "maxzoom": tiles.TILEJSON_MAX_ZOOM,
        "bounds": bounds, "center": center, "attribution": "gisapp",
        "vector_layers": [{"id": layer, "description": lay.en, "minzoom": tiles.MIN_ZOOM,
                           "maxzoom": tiles.TILEJSON_MAX_ZOOM, "fields": fields}],
    })
