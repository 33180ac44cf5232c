"""The HTML pages: the map ``/``, the ward dashboard ``/wards``, a dossier or sidewalk permit ``/permits/<code>``.

Filters are parsed leniently here: a bad value is dropped and named in a
warning on the page, which still renders.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from flask import Blueprint, current_app, render_template, request, url_for

from gisapp import domain, i18n, privacy
from gisapp.analysis import counts, stats
from gisapp.errors import NotFound
from gisapp.filters import Filter, parse_filter
from gisapp.i18n import fmt, pct
from gisapp.schema import CONSTRUCTION_PERMITS, LAYERS, SIDEWALK_PERMITS
from gisapp.store import Store
from gisapp.web import auth, maps
from gisapp.web.request import get_lang, get_store, known_wards

bp = Blueprint("pages", __name__)

#: Filter parameters of the pages, in the order the form shows them.
PAGE_PARAMS = ("ward", "status", "procedure", "channel", "from", "to", "day", "as_of", "q")


def page_filter() -> tuple[Filter, list[dict]]:
    """The request's filter (bad values dropped, no bbox) and a warning per dropped value."""
    flt, warnings = parse_filter(request.args, "page", known_wards=known_wards(), personal=auth.show_personal())
    return flt.with_(bbox=None), [_warning(w) for w in warnings]


def _warning(text: str) -> dict:
    param, _, message = text.partition(": ")
    lang = get_lang()
    return {"param": param, "label": param_label(param, lang), "message": i18n.filter_message(message, lang)}


def param_label(param: str, lang: str) -> str:
    """The label of a filter parameter in ``lang`` (from the schema where it has one)."""
    if param in ("status", "procedure", "channel"):
        return CONSTRUCTION_PERMITS.field(param).label(lang)
    return i18n.text(param, lang) if param in i18n.STRINGS else param


def map_inputs(store: Store) -> dict:
    """Settings every map shares: basemap, language, the app's root URL and map.js."""
    return {"tiles": current_app.config["BASEMAP"], "lang": get_lang(), "root": request.script_root,
            "script_url": url_for("static", filename="map.js", v=_static_version())}


def _static_version() -> str:
    import os

    path = os.path.join(current_app.static_folder or "", "map.js")
    return str(int(os.path.getmtime(path))) if os.path.exists(path) else "0"


@bp.get("/")
def map_page():
    """The map with the filter form, the matching count and the export link."""
    store = get_store()
    flt, warnings = page_filter()
    page = stats.map_page(store, flt)
    user = auth.current_user()
    officer = user is not None and user.can("officer")
    the_map = maps.main_map(bounds=page["bounds"] or maps.extent(store), wards=page["wards"],
                            params=flt.to_params(),
                            counts=page["counts"], cap=current_app.config.get("MAP_FEATURE_CAP", maps.FEATURE_CAP),
                            has_findings=page["has_findings"],
                            occupancy_url=url_for("static", filename="occupancy.js", v=_static_version())
                            if officer else None, **map_inputs(store))
    return render_template("map.html", map=the_map, occupancy=officer,
                           purposes=[(c.code, c.label(get_lang())) for c in domain.SIDEWALK_PURPOSES.values()],
                           flt=flt, warnings=warnings, query=urlencode(flt.to_params()),
                           ward_options=[(c, f"{c} — {n}") for c, n in page["wards"]], **page)


@bp.get("/wards")
def wards_page():
    """The ward dashboard: table, choropleth and monthly charts for the filter."""
    store = get_store()
    flt, warnings = page_filter()
    periods, bad = _periods()
    warnings += bad
    comparison = stats.compare(store, flt, periods, current_app.config["CALENDAR"]) if periods else None
    board = stats.dashboard(store, flt, current_app.config["CALENDAR"])
    the_map = maps.choropleth_map(bounds=stats.ward_bounds(store, board.as_of),
                                  ward_set_year=maps.ward_set_year(board.as_of),
                                  values={r.code: r.received for r in board.rows}, colors=board.colors,
                                  legend=board.legend, **map_inputs(store))
    return render_template("wards.html", board=board, map=the_map, flt=flt, warnings=warnings,
                           query=urlencode(flt.to_params()), charts=_charts(board), comparison=comparison,
                           compare_text=",".join(periods))


def _periods() -> tuple[list[str], list[dict]]:
    """The dashboard's ``compare`` periods (comma-separated or repeated) and a warning per bad one."""
    good, warnings = [], []
    for item in request.args.getlist("compare"):
        for text in (p.strip() for p in item.split(",")):
            if not text:
                continue
            try:
                stats.parse_period(text)
                good.append(text)
            except ValueError as err:
                warnings.append(_warning(f"compare: {err}"))
    return good[:4], warnings


def _charts(board: stats.Dashboard) -> list:
    t = i18n.translator(get_lang())
    labels = (t("received"), t("resolved"))
    rows = [(t("district_total"), board.total.code)] + [(r.name, r.code) for r in board.rows]
    return [stats.monthly_svg(board.months, board.monthly[code]["received"], board.monthly[code]["resolved"],
                              title=name, labels=labels) for name, code in rows if code in board.monthly]


@bp.get("/permits/<path:code>")
def permit_page(code: str):
    """Every field of a dossier, its small map, sidewalk permits near it and its findings.

    A sidewalk permit number (``VH-…``; dossier codes are ``XD-…``) gets the sidewalk permit's page.
    """
    store = get_store()
    flt, warnings = page_filter()
    detail = stats.permit_detail(store, code, current_app.config["CALENDAR"], as_of=flt.as_of)
    if detail is None:
        return sidewalk_page(store, code, flt.as_of, warnings)
    the_map = maps.permit_map(detail=detail, has_findings=_has_findings(store), **map_inputs(store))
    shown = set(privacy.visible_fields(CONSTRUCTION_PERMITS, auth.show_personal()))
    return render_template("permit.html", d=detail, map=the_map, inspections=_inspections(store, "construction_permits",
                                                                                          code),
                           fields=[f for f in CONSTRUCTION_PERMITS.fields if f.name in shown],
                           sidewalk_fields=LAYERS["sidewalk_permits"].fields, finding_fields=LAYERS["findings"].fields,
                           page_ids=page_ids, warnings=warnings)


def sidewalk_page(store: Store, permit_no: str, as_of: dt.date | None = None, warnings: list | None = None):
    """Every field of a sidewalk permit (personal ones to signed-in staff only), its ward, map and findings."""
    detail = stats.sidewalk_detail(store, permit_no, as_of=as_of)
    if detail is None:
        raise NotFound(i18n.text("not_found_permit", get_lang(), code=permit_no))
    the_map = maps.permit_map(detail=detail, has_findings=_has_findings(store), **map_inputs(store)) \
        if detail.center else None
    shown = set(privacy.visible_fields(SIDEWALK_PERMITS, auth.show_personal()))
    return render_template("sidewalk.html", d=detail, map=the_map,
                           inspections=_inspections(store, "sidewalk_permits", permit_no),
                           fields=[f for f in SIDEWALK_PERMITS.fields if f.name in shown],
                           finding_fields=LAYERS["findings"].fields, page_ids=page_ids, warnings=warnings or [])


def _has_findings(store: Store) -> bool:
    """Whether the store has findings (the permit map offers their layer): counted once per data version, not
    per page (a count of every finding: ~60 ms at 1M on PostGIS)."""
    return counts.layer_count(store, "findings", None) > 0


def _inspections(store: Store, layer: str, key: str) -> list | None:
    """The permit's inspections, oldest first, for signed-in staff (``None``: not shown)."""
    return store.inspections(target_layer=layer, target_key=key) if auth.current_user() else None


def page_ids(finding: dict) -> set[str]:
    """The ids of a finding that have a page under ``/permits/``: dossiers and sidewalk permits (not wards)."""
    ids = {finding.get("a_id")}
    if finding.get("kind") != "WARD_MISMATCH":  # its b_id is a ward's key
        ids.add(finding.get("b_id"))
    return {i for i in ids if i}


@bp.app_context_processor
def _template_helpers() -> dict:
    """Language, translator and formatting helpers for every template (error pages too)."""
    lang = get_lang()
    return {"lang": lang, "t": i18n.translator(lang), "label": lambda f, c: domain.label(f, c, lang),
            "lang_url": _lang_url, "fmt": lambda v: fmt(v, lang), "pct": lambda v: pct(v, lang),
            "codes": domain.CODE_SETS, "param_label": lambda p: param_label(p, lang),
            "options": lambda name: [(c.code, c.label(lang)) for c in domain.CODE_SETS[name].values()]}


def _lang_url(lang: str) -> str:
    args = request.args.to_dict(flat=False)
    args["lang"] = [lang]
    return request.path + "?" + urlencode(args, doseq=True)


