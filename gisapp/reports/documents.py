"""The three printed documents, each from a store and a request to PDF bytes: the review report, the dossier
sheet and the map print.  The web views, the CLI and the report jobs call these and nothing else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import numpy as np
import shapely

from gisapp import domain, geo, history, i18n, privacy
from gisapp.analysis import stats
from gisapp.analysis.check import CheckRules, Proposal, check_occupancy
from gisapp.errors import NotFound
from gisapp.filters import Filter
from gisapp.reports import maps, render, review, texts
from gisapp.schema import CONSTRUCTION_PERMITS, LAYERS, SIDEWALK_PERMITS, SIDEWALKS
from gisapp.store import Store

#: The map print draws at most this many dossiers (the first by code); the count says how many match.
MAP_MAX_FEATURES = 200_000


@dataclass(frozen=True)
class Options:
    """How a document is made: language, the app's public URL (links back), personal fields, limits."""

    lang: str = "vi"
    base_url: str = "http://127.0.0.1:5000"
    personal: bool = False
    max_dossiers: int | None = None
    #: The fee table (``GISAPP_FEE_TABLE``'s path) of the occupancy check of the dossier sheet's applications;
    #: ``None``: no fee table.  A path, not the loaded rules: options go to the report processes pickled.
    fee_table: str | None = None


def attribution(meta: dict, lang: str) -> str | None:
    """The ward boundaries' attribution for the maps (the store's ``source`` names OpenStreetMap)."""
    return texts.translator(lang)("attribution_osm") if "OpenStreetMap" in str(meta.get("source", "")) else None


def _common(store_meta: dict, opts: Options) -> dict:
    lang = opts.lang
    return {"t": texts.translator(lang), "fmt": lambda v: i18n.fmt(v, lang), "pct": lambda v: i18n.pct(v, lang),
            "label": lambda f, c: domain.label(f, c, lang), "lang": lang, "generated": render.now(),
            "source": store_meta.get("source"), "codes": domain.CODE_SETS}


def _link(opts: Options, path: str, params: dict) -> str:
    query = urlencode(params)
    return f"{opts.base_url.rstrip('/')}{path}{'?' + query if query else ''}"


def _wards(store: Store, on: dt.date, codes: tuple[str, ...] = ()):
    frame = stats.ward_frame(store, on)
    return frame[frame["ward_code"].isin(codes)].reset_index(drop=True) if codes else frame


def _geoms(store: Store | history.AsOfSource, layer: str, flt: Filter, fields: list[str], limit: int | None = None):
    """``(columns, geometries)`` of the matches: the attribute columns as lists, geometries in EPSG:5899."""
    cols: dict[str, list] = {f: [] for f in fields}
    geoms = []
    for table in store.iter_arrow(layer, flt, fields=fields, batch_size=50000, limit=limit):
        for f in fields:
            cols[f].extend(table[f].to_pylist())
        geoms.append(shapely.from_wkb(table["geometry"].to_numpy(zero_copy_only=False)))
    return cols, (np.concatenate(geoms) if geoms else np.empty(0, dtype=object))


def review_pdf(store: Store, query: review.ReviewQuery, calendar: domain.Calendar, opts: Options) -> bytes:
    """The review report of ``query`` as PDF."""
    render.check()
    rep = review.build_review(store, query, calendar, max_dossiers=opts.max_dossiers)
    return render.pdf("review.html", **review_context(store, rep, opts))


def review_context(store: Store, rep: review.Review, opts: Options) -> dict:
    """What ``review.html`` prints: the figures, the maps and the words."""
    lang = opts.lang
    t = texts.translator(lang)
    board = rep.board
    flt = rep.query.filter
    wards = _wards(store, board.as_of, flt.wards)
    names = dict(zip(wards["ward_code"], wards["name"].astype(str)))
    credit = attribution(rep.meta, lang)
    legend = [maps.LegendItem(f"{lo:,}–{hi:,}".replace(",", ".") if lo != hi else f"{lo:,}".replace(",", "."), c)
              for lo, hi, c in board.legend]
    choropleth = maps.ward_map(wards, colors=board.colors, lang=lang, attribution=credit, legend=legend,
                               legend_title=t("legend_received"),
                               labels={r.code: i18n.fmt(r.received, lang) for r in board.rows})
    total = board.monthly.get("", {"received": [], "resolved": []})
    chart = maps.monthly_chart(board.months, total["received"], total["resolved"],
                               labels=(i18n.text("received", lang), i18n.text("resolved", lang))) \
        if board.months else None
    side = stats.side_filter(flt)
    cols, geoms = _geoms(store, stats.FINDINGS, side, ["kind"])
    kinds = np.asarray(cols["kind"], dtype=object)
    points, finding_legend = [], []
    for code, entry in domain.FINDING_KINDS.items():
        sel = kinds == code
        if sel.any():
            points.append((list(shapely.centroid(geoms[sel])), entry.color))
            finding_legend.append(maps.LegendItem(f"{entry.label(lang)} ({int(sel.sum())})", entry.color, "point"))
    findings_map = maps.ward_map(wards, colors={}, lang=lang, attribution=credit, legend=finding_legend,
                                 legend_title=t("legend_findings"), points=points, height_mm=120)
    scope = t("ward_scope", names=", ".join(names.get(c, c) for c in flt.wards)) if flt.wards \
        else t("district_scope")
    return {**_common(rep.meta, opts), "r": rep, "board": board, "scope": scope,
            "period": texts.period_words(*rep.period, lang), "filter": texts.filter_words(flt, names, lang),
            "link": _link(opts, "/wards", flt.to_params()), "choropleth": choropleth, "chart": chart,
            "findings_map": findings_map, "title": t("review_title"), "ward_names": names}


def dossier_pdf(store: Store, code: str, calendar: domain.Calendar, opts: Options,
                as_of: dt.date | None = None) -> bytes:
    """The one-page sheet of dossier ``code`` as PDF (:class:`NotFound` when there is none); with ``as_of``,
    its status and timeliness at the end of that day, as the permit page shows them."""
    render.check()
    detail = stats.permit_detail(store, code, calendar, as_of=as_of)
    if detail is None:
        raise NotFound(f"Không có hồ sơ {code!r}. / No dossier {code!r}.")
    return render.pdf("dossier.html", **dossier_context(store, detail, opts, calendar))


def dossier_context(store: Store, d: stats.PermitDetail, opts: Options,
                    calendar: domain.Calendar | None = None) -> dict:
    """What ``dossier.html`` prints: the visible fields, timeliness, the large-scale map."""
    lang = opts.lang
    t = texts.translator(lang)
    code = d.record["dossier_code"]
    parcel = store.get(stats.PERMITS, code).geometry.iloc[0]
    around = Filter(bbox=d.bbox)
    ncols, neighbours = _geoms(store, stats.PERMITS, around, ["dossier_code", "parcel_no"])
    mine = np.asarray(ncols["dossier_code"], dtype=object) == code
    scols, sgeoms = _geoms(store, stats.SIDEWALK, around, ["permit_no"])
    linked_ids = {r["permit_no"] for r in d.linked}
    nearby_ids = {r["permit_no"] for r in d.nearby}
    sids = np.asarray(scols["permit_no"], dtype=object)
    fcols, fgeoms = _geoms(store, stats.FINDINGS, around, ["finding_id"])
    fids = {r["finding_id"] for r in d.findings}
    _, walks = _geoms(store, SIDEWALKS.name, around, [SIDEWALKS.key])
    legend = [maps.LegendItem(t("the_parcel"), "#90caf9", edge="#0d47a1"),
              maps.LegendItem(t("neighbours"), "#f5f5f5", edge="#777777"),
              maps.LegendItem(t("sidewalk"), maps.SIDEWALK_FACE, edge=maps.SIDEWALK_EDGE),
              maps.LegendItem(t("linked_permits"), "#c8e6c9", edge="#2e7d32"),
              maps.LegendItem(t("nearby_permits"), "#ffe0b2", edge="#ef6c00"),
              maps.LegendItem(t("findings_outline"), "none", edge="#d50000")]
    svg, scale = maps.parcel_map(
        parcel, neighbours=list(neighbours[~mine]), linked=list(sgeoms[np.isin(sids, list(linked_ids))]),
        nearby=list(sgeoms[np.isin(sids, list(nearby_ids))]),
        findings=list(fgeoms[np.isin(np.asarray(fcols["finding_id"], dtype=object), list(fids))]),
        sidewalks=list(walks), labels=list(zip(neighbours, ncols["parcel_no"])), lang=lang,
        attribution=attribution(store.meta(), lang),
        legend=legend, legend_title=t("legend"), scale_label=t("scale"))
    shown = set(privacy.visible_fields(CONSTRUCTION_PERMITS, opts.personal))
    # due_on: the stored date, else the one computed from the statutory time (as the permit page shows it)
    fields = [(f.label(lang), _value(f, d.due_on if f.name == "due_on" else d.record.get(f.name), lang))
              for f in CONSTRUCTION_PERMITS.fields if f.name in shown]
    return {**_common(store.meta(), opts), "d": d, "fields": fields, "map": svg, "scale": scale,
            "applications": applications(store, d, opts, calendar or domain.Calendar()),
            "personal": opts.personal, "title": t("sheet_title"), "as_of": d.as_of or store.as_of(),
            "link": f"{opts.base_url.rstrip('/')}/permits/{quote(code, safe='/')}"
                    + (f"?as_of={d.as_of.isoformat()}" if d.as_of else ""),
            "finding_fields": LAYERS["findings"].fields}


def applications(store: Store, d: stats.PermitDetail, opts: Options, calendar: domain.Calendar) -> list[dict]:
    """The dossier's linked sidewalk-use applications still ``NEW``, each with the occupancy check's report
    (:func:`check_occupancy`, the map tool's and the process's own check, the application itself excluded
    so that it neither clashes with itself nor narrows its own passage): ``permit``, ``report`` (``None``
    when the application has no place or no dates to check)."""
    rules = None
    visible = set(privacy.visible_fields(SIDEWALK_PERMITS, opts.personal))
    out = []
    for permit in d.linked:
        if permit.get("status") != "NEW":
            continue
        found = store.get(stats.SIDEWALK, permit["permit_no"])
        geom = found.geometry.iloc[0] if len(found) else None
        report = None
        if geom is not None and not geom.is_empty and permit.get("start_on") and permit.get("end_on"):
            if rules is None:  # as the app's check has them (gisapp.web.occupancy.rules)
                rules = CheckRules.from_config({"FEE_TABLE": opts.fee_table, "CALENDAR": calendar}) \
                    if opts.fee_table else CheckRules(calendar=calendar)
            proposal = Proposal(geom, permit["start_on"], permit["end_on"], permit.get("purpose") or "",
                                construction_dossier_code=d.record["dossier_code"])
            report = check_occupancy(store, proposal, rules=rules, personal=opts.personal,
                                     exclude=permit["permit_no"])
            on = report["narrowest_on"]
            report = {**report, "narrowest_on": dt.date.fromisoformat(on) if on else None}
        out.append({"permit": {k: v for k, v in permit.items() if k in visible}, "report": report})
    return out


def _value(field, value, lang: str) -> str:
    if value is not None and field.codes:
        return domain.label(field.codes, value, lang)
    return i18n.fmt(value, lang)


def map_pdf(store: Store, flt: Filter, opts: Options) -> bytes:
    """The map's current view (its filter, and its box when given) as one printed page."""
    render.check()
    return render.pdf("map.html", **map_context(store, flt, opts))


def map_context(store: Store, flt: Filter, opts: Options) -> dict:
    """What ``map.html`` prints: the dossiers of the filter by status, the count and the filter in words."""
    lang = opts.lang
    t = texts.translator(lang)
    meta = store.meta()
    as_of = flt.as_of or store.as_of()
    count = store.count(stats.PERMITS, flt)
    wards = _wards(store, as_of)
    names = dict(zip(wards["ward_code"], wards["name"].astype(str)))
    source = history.AsOfSource(store, flt.as_of) if flt.as_of else store  # the statuses of that day
    cols, geoms = _geoms(source, stats.PERMITS, flt, ["dossier_code", "status"], limit=MAP_MAX_FEATURES)
    status = np.asarray(cols["status"], dtype=object)
    layers, legend = [], []
    for code, entry in domain.STATUSES.items():
        sel = status == code
        if sel.any():
            layers.append((list(geoms[sel]), entry.color))
            legend.append(maps.LegendItem(f"{entry.label(lang)} ({int(sel.sum()):,})".replace(",", "."),
                                          entry.color))
    if flt.bbox:
        bounds = geo.bbox_polygon(flt.bbox).bounds
    elif len(geoms) and flt.wards:
        bounds = shapely.total_bounds(geoms)
    else:
        shown = wards[wards["ward_code"].isin(flt.wards)] if flt.wards else wards
        bounds = shapely.total_bounds(np.asarray(shown["geometry"])) if len(shown) else \
            (shapely.total_bounds(geoms) if len(geoms) else None)
    svg = maps.features_map(wards, layers, bounds=bounds, lang=lang, attribution=attribution(meta, lang),
                            legend=legend, legend_title=t("legend_status"))
    return {**_common(meta, opts), "svg": svg, "count": count, "drawn": len(geoms), "as_of": as_of,
            "filter": texts.filter_words(flt, names, lang), "title": t("map_title"),
            "link": _link(opts, "/", flt.to_params())}
