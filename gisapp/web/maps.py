"""The folium maps of the pages, and the data their JavaScript fetches.

Maps carry no feature data: each is a Leaflet map with empty layer groups,
controls, a legend and a small JSON configuration; ``static/map.js`` fills
the groups from the ``/data/…`` endpoints for the current filter and
viewport.  :func:`layer_features` is the core of those endpoints: it reads
through the store with the filter (and the viewport's bbox) and, when more
than ``cap`` features match, answers per-ward counts instead of features.

Nothing here touches Flask's request; everything it needs is an argument.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import folium
import numpy as np
import orjson
import shapely
from branca.element import Figure, MacroElement
from folium import plugins
from folium.elements import JSCSSMixin
from jinja2 import Template
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup, escape

from gisapp import domain, geo, history, i18n
from gisapp.analysis import counts as kept
from gisapp.analysis import stats
from gisapp.filters import Filter
from gisapp.formats import geojson
from gisapp.schema import LAYERS
from gisapp.store import Store
from gisapp.web import assets

#: The map's filter parameters that also filter sidewalk permits and findings (:func:`stats.side_filter`).
SIDE_PARAMS = ("ward", "from", "to", "day", "as_of")
#: Most features one response carries; beyond it the map gets per-ward counts.
FEATURE_CAP = 5000
#: Below this zoom a layer over the cap is shown as per-ward counts without looking at the viewport.
DETAIL_ZOOM = 15
MAX_ZOOM = 19
DEFAULT_CENTER = (16.01, 108.20)  # Cẩm Lệ

#: Properties each map layer sends to the browser (popups fetch the rest on demand).
MAP_FIELDS = {
    "construction_permits": ["dossier_code", "status", "site_address"],
    "sidewalk_permits": ["permit_no", "purpose", "status", "address", "start_on", "end_on",
                         "sidewalk_width_m", "used_width_m", "construction_dossier_code"],
    "findings": ["finding_id", "kind", "a_id", "b_id", "overlap_start", "overlap_end",
                 "overlap_area_m2", "distance_m"],
    "sidewalks": ["sidewalk_id", "ward_code", "street", "width_m", "street_class"],
}
#: Fields of a dossier the popup shows, in order.
POPUP_FIELDS = ["status", "procedure", "work_category", "channel", "received_on", "due_on", "completed_on",
                "issued_on", "permit_no", "owner_name", "floors", "plot_area_m2", "map_sheet_no", "parcel_no"]
SIDEWALK_FIELDS = ["permit_no", "purpose", "status", "start_on", "end_on", "sidewalk_width_m", "used_width_m",
                   "address", "construction_dossier_code"]
FINDING_FIELDS = ["finding_id", "kind", "a_id", "b_id", "overlap_start", "overlap_end", "overlap_days",
                  "overlap_area_m2", "distance_m", "detail"]


# -- data for the map's JavaScript --------------------------------------------------

def layer_features(store: Store, layer: str, flt: Filter, *, zoom: int | None, calendar: domain.Calendar,
                   cap: int = FEATURE_CAP) -> bytes:
    """A GeoJSON FeatureCollection for one map layer, the filter and the viewport.

    Extra members: ``mode`` (``features`` or ``aggregate``), ``complete``
    (true when the features are every match, whatever the viewport, so the
    browser need not fetch again when panning) and ``numberMatched``.
    Per-ward counts replace features once more than ``cap`` match.
    """
    lay = LAYERS[layer]
    everywhere = flt.with_(bbox=None)
    total = kept.layer_count(store, layer, everywhere)  # kept per data version: the page counted it already
    if total <= cap:
        return _collection(store, lay, everywhere, calendar, complete=True, total=total)
    if flt.bbox is None or (zoom is not None and zoom < DETAIL_ZOOM):
        return ward_aggregates(store, layer, everywhere, total)
    in_view = store.count(layer, flt)
    if in_view <= cap:
        return _collection(store, lay, flt, calendar, complete=False, total=total)
    return ward_aggregates(store, layer, flt, total)


#: Fields timeliness is computed from.
TIMELINESS_FIELDS = ["status", "procedure", "work_category", "received_on", "due_on", "completed_on"]


def read_map_layer(store: Store, layer: str, flt: Filter):
    """The matches with only the fields the map needs (plus those timeliness needs).

    An Arrow table (no Python object per value); ``None`` when nothing matches.
    """
    names = list(MAP_FIELDS[layer])
    if layer == "construction_permits":
        names = list(dict.fromkeys(names + TIMELINESS_FIELDS))
    table = store.read_arrow(layer, flt, fields=names)
    if table is not None and flt.as_of is not None and layer in history.LAYER_KEYS:  # as it was that day
        keys = table.column(history.LAYER_KEYS[layer]).to_pylist()
        table = history.as_of_table(table, layer, history.past_statuses(store, layer, flt.as_of, keys), flt.as_of)
    return table


def _collection(store: Store, lay, flt, calendar, *, complete: bool, total: int) -> bytes:
    batch = read_map_layer(store, lay.name, flt)
    n = 0 if batch is None else len(batch)
    members = {"mode": "features", "complete": complete, "numberMatched": total, "numberReturned": n}
    body = b""
    if n:
        extra = None
        if lay.name == "construction_permits":
            attrs = batch.select(TIMELINESS_FIELDS).to_pandas(date_as_object=False)
            extra = {"timeliness": stats.timeliness(attrs, flt.as_of or store.as_of(), calendar).tolist()}
        body = geojson.batch_json(batch, lay, MAP_FIELDS[lay.name], extra)
    return orjson.dumps({"type": "FeatureCollection", **members})[:-1] + b',"features":[' + body + b"]}"


def ward_aggregates(store: Store, layer: str, flt: Filter, total: int) -> bytes:
    """Per-ward counts of the matches as points (one per ward in force), for zoomed-out views.

    The counts come from one grouped query (:meth:`Store.aggregate`).  With a
    bbox, each ward counts only what lies in the viewport and its point sits
    in the visible part of the ward.
    """
    found = kept.ward_matching(store, layer, flt)
    per_ward = dict(zip(found["ward_code"], found["count"].tolist(), strict=True))
    day = store.as_of()
    wards = store.read("wards", Filter(date_from=day, date_to=day))
    view = geo.bbox_polygon(flt.bbox) if flt.bbox else None
    feats = []
    for code, name, geom in zip(wards["ward_code"], wards["name"], wards.geometry.values):
        n = per_ward.get(code, 0)
        if not n:
            continue
        part = geom if view is None else shapely.intersection(geom, view)
        if part.is_empty:
            continue
        pt = geo.transform([part.representative_point()])[0]
        feats.append({"type": "Feature", "id": code,
                      "geometry": {"type": "Point", "coordinates": [round(pt.x, 6), round(pt.y, 6)]},
                      "properties": {"ward_code": code, "name": name, "count": n}})
    return orjson.dumps({"type": "FeatureCollection", "mode": "aggregate", "complete": False,
                         "numberMatched": total, "features": feats})


def ward_set(store: Store, year: str) -> bytes:
    """The wards in force at the end of ``year`` (a key of :data:`stats.WARD_SETS`) with label points."""
    day = stats.WARD_SETS[year]
    frame = store.read("wards", Filter(date_from=day, date_to=day))
    points = geo.transform(shapely.point_on_surface(np.asarray(frame.geometry.values)))
    extra = {"label_lon": [round(p.x, 6) for p in points], "label_lat": [round(p.y, 6) for p in points]}
    fields = ["ward_code", "name", "valid_from", "valid_to", "successor_code", "approximate"]
    return b"".join(_wards_chunks(frame, fields, extra, year))


def _wards_chunks(frame, fields, extra, year):
    yield b'{"type":"FeatureCollection","set":' + orjson.dumps(year) + b',"features":['
    yield b",".join(geojson.features(frame, LAYERS["wards"], fields, extra))
    yield b"]}"


def popup_detail(detail: stats.PermitDetail, show_personal: bool = True) -> bytes:
    """JSON for a dossier's popup: its fields, timeliness, linked and nearby sidewalk permits.

    Personal fields (owner) are left out unless ``show_personal``.
    """
    rec = detail.record
    personal = {f.name for f in LAYERS["construction_permits"].fields if f.personal}
    names = [k for k in POPUP_FIELDS if show_personal or k not in personal]
    return orjson.dumps({
        "dossier_code": rec["dossier_code"], "site_address": rec.get("site_address"),
        "fields": {k: rec.get(k) for k in names} | {"due_on": detail.due_on},
        "timeliness": detail.timeliness,
        "linked": [s["permit_no"] for s in detail.linked],
        "nearby": [s["permit_no"] for s in detail.nearby],
        "findings": len(detail.findings),
    })


def extent(store: Store, layer: str = "construction_permits") -> tuple[tuple[float, float], tuple[float, float]] | None:
    """((south, west), (north, east)) of a layer in WGS84, or ``None`` when it is empty."""
    for info in store.info():
        if info.name == layer and info.extent:
            box = geo.transform([shapely.box(*info.extent)])[0]
            x1, y1, x2, y2 = box.bounds
            return (y1, x1), (y2, x2)
    return None


# -- folium maps ---------------------------------------------------------------------

class _Script(JSCSSMixin, MacroElement):
    """Calls ``GisappMap.init(map, config)`` once the map and its groups exist; links map.js."""

    _template = Template("""
        {% macro script(this, kwargs) %}
            GisappMap.init({{ this._parent.get_name() }}, {{ this.config_json }});
        {% endmacro %}
    """)

    def __init__(self, config: dict, script_url: str):
        super().__init__()
        self._name = "GisappConfig"
        self.config_json = Markup(htmlsafe_json_dumps(config, dumps=_dumps))
        self.default_js = [("gisapp_map", script_url)]


class OccupancyTool(JSCSSMixin, MacroElement):
    """The officers' "check a sidewalk occupancy" tool: Leaflet.draw (vendored) and ``static/occupancy.js``.

    ``occupancy.js`` adds the drawing control (rectangle and polygon only)
    and drives the panel of the map page (``templates/map.html``): the check
    (``POST /api/processes/occupancy-check/execution``), the clashes
    highlighted on the map, and filing (``POST /occupancy``).
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
            GisappOccupancy.init({{ this._parent.get_name() }}, {{ this.config_json }});
        {% endmacro %}
    """)

    def __init__(self, config: dict, script_url: str):
        super().__init__()
        self._name = "OccupancyTool"
        self.config_json = Markup(htmlsafe_json_dumps(config, dumps=_dumps))
        js, css = assets.plugin_assets("Draw")
        self.default_js = [*js, ("gisapp_occupancy", script_url)]
        self.default_css = css


class Legend(MacroElement):
    """A Leaflet control listing (label, colour, kind) entries; kind is ``fill``, ``line`` or ``dash``."""

    _template = Template("""
        {% macro script(this, kwargs) %}
            (function () {
                var legend = L.control({position: "bottomright"});
                legend.onAdd = function () {
                    var div = L.DomUtil.create("div", "map-legend");
                    div.setAttribute("data-testid", "legend");
                    div.innerHTML = {{ this.html_json }};
                    L.DomEvent.disableClickPropagation(div);
                    return div;
                };
                legend.addTo({{ this._parent.get_name() }});
            })();
        {% endmacro %}
    """)

    def __init__(self, sections: list[tuple[str, list[tuple[str, str, str]]]], *, title: str, open_: bool = True):
        super().__init__()
        self._name = "Legend"
        html = [f"<details{' open' if open_ else ''}><summary>{escape(title)}</summary>"]
        for title, items in sections:
            if title:
                html.append(f"<div class='legend-title'>{escape(title)}</div>")
            for label, color, kind in items:
                html.append(f"<div class='legend-item'><span class='swatch swatch-{escape(kind)}' "
                            f"style='--c:{escape(color)}'></span>{escape(label)}</div>")
        html.append("</details>")
        self.html_json = Markup(htmlsafe_json_dumps("".join(html)))


def _dumps(value, **kw) -> str:
    return orjson.dumps(value, default=str).decode()


def add_basemap(m: folium.Map, tiles: str, lang: str) -> str:
    """Add the configured basemap; returns the CSS class for the map's background.

    ``none``: no tiles, a plain background (the map works with no tile
    server).  ``osm``: OpenStreetMap tiles.  A URL with ``{z}``/``{x}``/``{y}``:
    that tile service.  Any other URL: a WMS service; its ``layers``
    parameter (default ``0``) names the layers.
    """
    tiles = (tiles or "none").strip()
    if tiles.lower() == "none":
        return "basemap-none"
    if tiles.lower() == "osm":
        folium.TileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png", name="OpenStreetMap",
                         attr="© OpenStreetMap contributors", max_zoom=MAX_ZOOM, max_native_zoom=19).add_to(m)
    elif "{z}" in tiles:
        folium.TileLayer(tiles, name=i18n.text("basemap", lang),
                         attr=urlsplit(tiles).netloc or "basemap", max_zoom=MAX_ZOOM).add_to(m)
    else:
        parts = urlsplit(tiles)
        query = dict(parse_qsl(parts.query))
        layers = query.pop("layers", query.pop("LAYERS", "0"))
        base = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))
        folium.WmsTileLayer(base, layers=layers, fmt="image/png", name="WMS", attr=parts.netloc,
                            overlay=False, max_zoom=MAX_ZOOM).add_to(m)
    return "basemap-tiles"


def _new_map(tiles: str, lang: str, center, zoom: int, *, controls: bool = True) -> tuple[folium.Map, str]:
    m = folium.Map(location=list(center), zoom_start=zoom, tiles=None, maxZoom=MAX_ZOOM,
                   prefer_canvas=True, control_scale=True)
    background = add_basemap(m, tiles, lang)
    if controls:
        plugins.Fullscreen(title=i18n.text("fullscreen", lang), title_cancel=i18n.text("fullscreen_exit", lang)
                           ).add_to(m)
        plugins.MeasureControl(primary_length_unit="meters", secondary_length_unit="kilometers",
                               primary_area_unit="sqmeters", secondary_area_unit="hectares").add_to(m)
    return m, background


def _group(m, name: str, show: bool = True) -> folium.FeatureGroup:
    group = folium.FeatureGroup(name=name, show=show)
    group.add_to(m)
    return group


def js_config(lang: str, *, mode: str, root: str = "", **extra) -> dict:
    """The configuration ``map.js`` reads: endpoints, colours, labels (no feature data)."""
    code_sets = ("status", "procedure", "work_category", "channel", "purpose", "kind", "timeliness", "street_class")
    labels = {name: {c.code: c.label(lang) for c in domain.CODE_SETS[name].values()} for name in code_sets}
    colors = {name: {c.code: c.color for c in domain.CODE_SETS[name].values()} for name in code_sets}
    fields: dict[str, str] = {}
    for lay in LAYERS.values():
        for f in lay.fields:
            fields.setdefault(f.name, f.label(lang))
    return {"mode": mode, "lang": lang, "root": root, "labels": labels, "colors": colors, "fields": fields,
            "text": i18n.bundle(lang), "open": sorted(domain.OPEN_STATUSES), "cap": FEATURE_CAP, **extra}


def status_legend(lang: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Legend sections of the permit maps: statuses, overdue, sidewalk permits."""
    t = i18n.translator(lang)
    statuses = [(c.label(lang), c.color, "fill") for c in domain.STATUSES.values()]
    extra = [(t("overdue_open"), domain.TIMELINESS["OVERDUE"].color, "dash"),
             (t("sidewalk_layer"), domain.SIDEWALK_PURPOSES["MATERIALS"].color, "hatch"),
             (t("wards_2022"), "#37474f", "line")]
    return [(t("legend_status"), statuses), ("", extra)]


@dataclass
class MapPage:
    """A rendered map for a page template: head links, the map's div, its script, URLs to preload."""

    header: Markup
    html: Markup
    script: Markup
    background: str
    preload: list[str] = field(default_factory=list)

    def head(self, nonce: str) -> Markup:
        """The head links with ``nonce`` on folium's inline script, for the page's Content-Security-Policy."""
        # str first: Markup.replace would escape the new tag, leaving folium's script as text on the page
        return Markup(str(self.header).replace("<script>", f'<script nonce="{escape(nonce)}">'))


#: Of folium's default assets, the ones these maps use (no jQuery, Bootstrap, Font Awesome, awesome-markers).
MAP_JS = ("leaflet",)
MAP_CSS = ("leaflet_css",)


def render(m: folium.Map, background: str, preload: list[str] | None = None) -> MapPage:
    """Localize ``m`` (no CDN), keep only the assets it uses, and render its parts."""
    assets.localize(m)
    m.default_js = [(name, url) for name, url in m.default_js if name in MAP_JS]
    m.default_css = [(name, url) for name, url in m.default_css if name in MAP_CSS]
    root = m.get_root()
    if not isinstance(root, Figure):  # folium.Map puts itself in a Figure when made
        raise TypeError(f"the map's root is a {type(root).__name__}, not a Figure")
    root.render()
    return MapPage(Markup(root.header.render()), Markup(root.html.render()), Markup(root.script.render()),
                   background, preload or [])


def preload_urls(root: str, params: dict, counts: dict[str, int], cap: int = FEATURE_CAP) -> dict[str, str]:
    """URLs of the layers small enough to fetch whole (at most ``cap`` matches): map.js asks for these first."""
    side = {k: v for k, v in params.items() if k in SIDE_PARAMS}
    layers = {"permits": ("construction_permits", params), "sidewalk": ("sidewalk_permits", side),
              "findings": ("findings", side)}
    out = {}
    for key, (layer, args) in layers.items():
        if key in counts and 0 < counts[key] <= cap:
            query = urlencode(args)
            out[key] = f"{root}/data/{layer}.geojson" + (f"?{query}" if query else "")
    return out


def main_map(*, tiles: str, lang: str, bounds, wards: list[tuple[str, str]], params: dict,
             counts: dict[str, int], root: str = "", script_url: str = "/static/map.js",
             cap: int = FEATURE_CAP, occupancy_url: str | None = None,
             has_findings: bool | None = None) -> MapPage:
    """The map page's map: wards 2022/2025, permits, sidewalk permits, findings, controls, legend.

    ``bounds`` ((south, west), (north, east)) or ``None``; ``params`` the
    current filter's URL parameters; ``counts`` how many features of each
    layer (``permits``, ``sidewalk``, ``findings``) match it: layers within
    ``cap`` are preloaded whole, the others fetched by viewport.
    ``occupancy_url``: the URL of ``occupancy.js`` when the user is an
    officer (the "check a sidewalk occupancy" tool), else ``None``.
    ``has_findings``: whether the findings layer is offered (default: when
    some match; the day slider may move to a day that has some).
    """
    has_findings = counts.get("findings", 0) > 0 if has_findings is None else has_findings
    t = i18n.translator(lang)
    m, background = _new_map(tiles, lang, _center(bounds), 13)
    groups = {
        "wards2022": _group(m, t("wards_2022")),
        "wards2025": _group(m, t("wards_2025"), show=False),
        "sidewalks": _group(m, t("sidewalks_layer")),
        "permits": _group(m, t("permits_layer")),
        "sidewalk": _group(m, t("sidewalk_layer")),
        "findings": _group(m, t("findings_layer"), show=has_findings),
    }
    folium.LayerControl(collapsed=False).add_to(m)
    Legend(status_legend(lang), title=t("legend")).add_to(m)
    preload = preload_urls(root, params, counts, cap)
    config = js_config(lang, mode="main", root=root, params=params, wards=[{"code": c, "name": n} for c, n in wards],
                       hasFindings=has_findings, layers={k: g.get_name() for k, g in groups.items()},
                       preload=preload, bounds=_bounds(bounds))
    _Script(config, script_url).add_to(m)
    if occupancy_url:
        OccupancyTool(occupancy_config(lang, root), occupancy_url).add_to(m)
    return render(m, background, list(preload.values()))


def occupancy_config(lang: str, root: str = "") -> dict:
    """What ``occupancy.js`` reads: endpoints, purposes, verdict colours, texts (the ``occ_`` strings)."""
    return {
        "lang": lang, "root": root,
        "execute": f"{root}/api/processes/occupancy-check/execution", "save": f"{root}/occupancy",
        "frontage": f"{root}/occupancy/frontage/",
        "purposes": [{"code": c.code, "label": c.label(lang)} for c in domain.SIDEWALK_PURPOSES.values()],
        "colors": {"OK": "#2e7d32", "REFER": "#ef6c00", "REFUSE": "#c62828", "clash": "#d50000",
                   "drawn": "#1565c0"},
        "text": i18n.bundle(lang, [k for k in i18n.STRINGS if k.startswith("occ_")]),
    }


def permit_map(*, tiles: str, lang: str, detail: stats.PermitDetail | stats.SidewalkDetail, has_findings: bool,
               root: str = "", script_url: str = "/static/map.js") -> MapPage:
    """The small map of a dossier's or sidewalk permit's page: it, the parcels around, sidewalk permits, findings."""
    if detail.center is None or detail.bbox is None:
        raise ValueError("a permit without geometry has no map")
    t = i18n.translator(lang)
    m, background = _new_map(tiles, lang, detail.center, 18)
    x1, y1, x2, y2 = detail.bbox
    groups = {"wards2022": _group(m, t("wards_2022")), "sidewalks": _group(m, t("sidewalks_layer")),
              "permits": _group(m, t("neighbours")),
              "sidewalk": _group(m, t("sidewalk_layer")), "findings": _group(m, t("findings_layer"))}
    folium.LayerControl(collapsed=True).add_to(m)
    Legend(status_legend(lang), title=t("legend"), open_=False).add_to(m)
    config = js_config(lang, mode="permit", root=root, bounds=[[y1, x1], [y2, x2]],
                       focus=detail.record.get("dossier_code"),
                       hasFindings=has_findings, layers={k: g.get_name() for k, g in groups.items()}, params={})
    _Script(config, script_url).add_to(m)
    return render(m, background)


def choropleth_map(*, tiles: str, lang: str, bounds, ward_set_year: str, values: dict[str, int],
                   colors: dict[str, str], legend: list[tuple[int, int, str]], root: str = "",
                   script_url: str = "/static/map.js") -> MapPage:
    """The dashboard's choropleth: wards coloured by dossiers received; a click opens the filtered map."""
    t = i18n.translator(lang)
    m, background = _new_map(tiles, lang, _center(bounds), 12, controls=False)
    group = _group(m, t("choropleth"))
    items = [(f"{lo}–{hi}" if lo != hi else f"{lo}", color, "fill") for lo, hi, color in legend]
    Legend([(t("received"), items)], title=t("legend")).add_to(m)
    config = js_config(lang, mode="choropleth", root=root, layers={"choropleth": group.get_name()},
                       wardSet=ward_set_year, values=values, fill=colors, params={}, bounds=_bounds(bounds))
    _Script(config, script_url).add_to(m)
    return render(m, background)


def _center(bounds) -> tuple[float, float]:
    if not bounds:
        return DEFAULT_CENTER
    (s, w), (n, e) = bounds
    return (s + n) / 2, (w + e) / 2


def _bounds(bounds) -> list | None:
    """Bounds for map.js to fit without animation.

    (A folium ``fit_bounds`` animates, and its zoom would end after a view taken from the URL.)
    """
    return [list(bounds[0]), list(bounds[1])] if bounds else None


def ward_set_year(as_of: dt.date) -> str:
    """The ward set (a key of :data:`stats.WARD_SETS`) in force on ``as_of``."""
    return "2025" if as_of >= dt.date(2025, 7, 1) else "2022"
