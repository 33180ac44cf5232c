"""``/data/…``: the JSON the map pages fetch — features by filter and viewport, counts, wards.

Filters are parsed strictly (surface ``map`` of :mod:`gisapp.filters`): a bad
value is a 400 JSON error naming it (``errors.py`` renders the
:class:`gisapp.errors.FilterError`); other parameters are ignored.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from gisapp.analysis import counts, stats
from gisapp.errors import FilterError, NotFound
from gisapp.filters import parse_filter
from gisapp.web import auth, maps
from gisapp.web.request import get_store, known_wards

bp = Blueprint("data", __name__, url_prefix="/data")

MAP_LAYERS = ("construction_permits", "sidewalk_permits", "findings", "sidewalks")
GEOJSON = "application/geo+json"


def strict_filter(surface: str = "map"):
    """The request's filter as ``surface`` takes it, or :class:`FilterError` (400) for the first bad value."""
    return parse_filter(request.args, surface, known_wards=known_wards(), personal=auth.show_personal())[0]


def parse_zoom(text: str | None) -> int | None:
    """The ``zoom`` parameter: an integer 0–22, or ``None`` when absent."""
    if text is None or text == "":
        return None
    if not text.isdigit() or int(text) > 22:
        raise FilterError("zoom", f"{text!r} is not a zoom level (an integer from 0 to 22)")
    return int(text)


@bp.get("/<layer>.geojson")
def layer_geojson(layer: str):
    """Features of a map layer for the filter and viewport (or per-ward counts past the cap)."""
    if layer not in MAP_LAYERS:
        raise NotFound(f"no map layer {layer!r}; map layers: {', '.join(MAP_LAYERS)}")
    flt, zoom = strict_filter(), parse_zoom(request.args.get("zoom"))
    store = get_store()
    body = maps.layer_features(store, layer, flt, zoom=zoom, calendar=current_app.config["CALENDAR"],
                               cap=current_app.config.get("MAP_FEATURE_CAP", maps.FEATURE_CAP))
    return Response(body, mimetype=GEOJSON)


@bp.get("/wards.geojson")
def wards_geojson():
    """The ward set ``set`` (2022 or 2025) with a label point per ward."""
    year = request.args.get("set", "2022")
    if year not in stats.WARD_SETS:
        raise FilterError("set", f"unknown ward set {year!r}; use one of {', '.join(stats.WARD_SETS)}")
    return Response(maps.ward_set(get_store(), year), mimetype=GEOJSON)


@bp.get("/count")
def count():
    """How many construction dossiers match the filter (``count``); with ``day``, also the sidewalk permits
    and findings the map shows with them (its side filter: wards, dates, day)."""
    flt = strict_filter()
    store = get_store()
    body = {"layer": "construction_permits", "count": counts.matching(store, flt)}
    if flt.day:
        side = stats.side_filter(flt)
        body |= {"sidewalk_permits": counts.layer_count(store, "sidewalk_permits", side),
                 "findings": counts.layer_count(store, "findings", side)}
    return jsonify(body)


@bp.get("/construction_permits/<path:code>.json")
def permit_popup(code: str):
    """What a dossier's popup shows: fields, timeliness, linked and nearby sidewalk permits."""
    detail = stats.permit_detail(get_store(), code, current_app.config["CALENDAR"])
    if detail is None:
        raise NotFound(f"no dossier with code {code!r}")
    return Response(maps.popup_detail(detail, auth.show_personal()), mimetype="application/json")
