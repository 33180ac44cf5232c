"""The printed reports as PDF: ``/reports/review.pdf``, ``/reports/map.pdf`` and ``/permits/<code>.pdf``.

Each view parses the request (the map's filter, strictly: a bad value is the one 400), then hands a
:class:`gisapp.reports.jobs.Job` to the app's report runner (child processes), and answers the PDF.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, request

from gisapp.filters import parse_as_of, parse_filter, refuse_unknown
from gisapp.reports import documents, jobs, review
from gisapp.web import auth
from gisapp.web.request import get_lang, known_wards, public_root

bp = Blueprint("reports", __name__)


def runner() -> jobs.Runner:
    """The app's report runner (created with the app's settings on the first report)."""
    found = current_app.extensions.get("gisapp_reports")
    if found is None:
        cfg = current_app.config
        found = jobs.Runner(cfg["REPORT_WORKERS"], cfg["REPORT_MEMORY_MB"], cfg["REPORT_SECONDS"],
                            cfg["REPORT_QUEUE"])
        current_app.extensions["gisapp_reports"] = found
    return found


def _job(kind: str, **fields) -> jobs.Job:
    cfg = current_app.config
    calendar = cfg["CALENDAR"]
    opts = documents.Options(lang=get_lang(), base_url=public_root(), personal=auth.show_personal(),
                             max_dossiers=cfg["REPORT_MAX_DOSSIERS"], fee_table=str(cfg["FEE_TABLE"]))
    return jobs.Job(kind, str(cfg["STORE"]), opts=opts, weekend=calendar.weekend, holidays=calendar.holidays,
                    **fields)


def _pdf(body: bytes, name: str) -> Response:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return Response(body, mimetype="application/pdf", headers={"Content-Disposition": f'inline; filename="{safe}"'})


@bp.get("/reports/review.pdf")
def review_report():
    """The review report of a period: ``from``, ``to``, ``ward`` (and the map's other filters)."""
    query = review.parse_query(request.args, known_wards())
    body = runner().run(_job("review", flt=query.flt, as_of=query.as_of))
    flt = query.flt
    name = "-".join(["bao-cao", *flt.wards, *(d.isoformat() for d in (flt.date_from, flt.date_to) if d),
                     *([f"den-ngay-{query.as_of.isoformat()}"] if query.as_of else [])])
    return _pdf(body, name + ".pdf")


@bp.get("/reports/map.pdf")
def map_report():
    """The map's view printed: its filter (``bbox`` too), legend, scale bar, count and the filter in words."""
    flt, _ = parse_filter(request.args, "map", known_wards=known_wards(), personal=auth.show_personal())
    return _pdf(runner().run(_job("map", flt=flt)), "ban-do.pdf")


@bp.get("/permits/<path:code>.pdf")
def dossier_sheet(code: str):
    """One dossier on one A4 page (personal fields only to signed-in staff), ``as_of`` a day when asked;
    404 for an unknown code, 400 for a bad ``as_of`` or any other parameter."""
    refuse_unknown(request.args, ("as_of", "lang"))
    text = request.args.get("as_of")
    as_of = parse_as_of(text) if text else None
    return _pdf(runner().run(_job("dossier", code=code, as_of=as_of)), f"{code}.pdf")
