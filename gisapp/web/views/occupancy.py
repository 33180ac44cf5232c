"""``/occupancy``: officers file a checked sidewalk occupancy as a permit application, or change one (JSON).

Thin views over :mod:`gisapp.web.occupancy`; the map's "check a sidewalk
occupancy" tool calls them with the page's CSRF token (``X-CSRFToken``).
Errors are the API's one JSON shape.
"""

from __future__ import annotations

import orjson
import shapely
from flask import Blueprint, Response, current_app, url_for

from gisapp import geo
from gisapp.api import processes
from gisapp.errors import FilterError, RequestError
from gisapp.schema import STORE_CRS, WEB_CRS
from gisapp.web import auth, occupancy
from gisapp.web.request import get_store, read_body

bp = Blueprint("occupancy", __name__)


def _officer() -> str:
    """The signed-in officer's name; 401 when signed out, 403 without the officer role."""
    user = auth.current_user()
    if user is None:
        raise RequestError(401, "Unauthorized", "sign in as an officer to file an occupancy")
    if not user.can("officer"):
        raise RequestError(403, "Forbidden", "filing an occupancy needs the officer role")
    return user.username


def _body() -> dict:
    """The request's JSON object (at most 1 MB), or a 400/413 naming ``body``."""
    data = read_body(processes.MAX_BODY)
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        raise FilterError("body", f"not valid JSON ({err})") from None
    if not isinstance(body, dict):
        raise FilterError("body", 'must be a JSON object {"inputs": {...}}')
    return body


def _answer(saved: occupancy.Saved, status: int) -> Response:
    doc = {"permit_no": saved.permit_no, "status": occupancy.NEW, "created": saved.created,
           "url": url_for("pages.permit_page", code=saved.permit_no),
           "findings": {"written": saved.findings_written, "removed": saved.findings_removed,
                        "clashes": saved.clashes},
           "report": saved.report}
    return Response(orjson.dumps(doc), status=status, mimetype="application/json")


def _audit(officer: str, action: str, saved: occupancy.Saved) -> None:
    r = saved.report
    auth.get_accounts().audit(
        officer, action, "sidewalk_permits", 1,
        f"{saved.permit_no}: {r['start']}–{r['end']} {r['purpose']}, {r['area_m2']} m², verdict {r['verdict']}, "
        f"dossier {r.get('construction_dossier_code') or '—'}; findings {saved.findings_written} written, "
        f"{saved.findings_removed} removed" + (f"; clashes {', '.join(saved.clashes)}" if saved.clashes else ""))


@bp.get("/occupancy/frontage/<path:dossier_code>")
def frontage(dossier_code: str):
    """A starting occupancy in front of a dossier's parcel: ``{"geometry": <GeoJSON, WGS84>}``."""
    _officer()
    geom = occupancy.frontage(get_store(), dossier_code)
    wgs84 = geo.transform([geom], STORE_CRS, WEB_CRS)[0]
    return Response(orjson.dumps({"dossier_code": dossier_code, "geometry": shapely.geometry.mapping(wgs84)},
                                 option=orjson.OPT_SERIALIZE_NUMPY), mimetype="application/json")


@bp.post("/occupancy")
def file_new():
    """File a new sidewalk-use permit application (status NEW) from a checked occupancy: 201 with its number."""
    officer = _officer()
    saved = occupancy.save(get_store(), _body(), current_app.config)
    _audit(officer, "occupancy_filed", saved)
    return _answer(saved, 201)


@bp.post("/occupancy/<path:permit_no>")
def change(permit_no: str):
    """Change a NEW application's geometry, dates or purpose: checked again, its findings recomputed."""
    officer = _officer()
    saved = occupancy.save(get_store(), _body(), current_app.config, permit_no=permit_no)
    _audit(officer, "occupancy_changed", saved)
    return _answer(saved, 200)
