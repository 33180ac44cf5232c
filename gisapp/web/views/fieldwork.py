"""Field work: record an inspection (with photos), see one, its photos, the inspections layer, "here, today",
and the BLDS Inspections export.

Inspections are staff data: anyone not signed in gets 404 from every route
here except "here, today" (what is permitted is public, as the map is).
"""

from __future__ import annotations

import datetime as dt

from flask import (
    Blueprint,
    Response,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)

from gisapp import domain, inspections, photos
from gisapp.analysis.here import permitted_here
from gisapp.errors import FilterError, NotFound
from gisapp.filters import parse_as_of
from gisapp.formats import blds_inspections
from gisapp.web import auth, fieldwork
from gisapp.web.request import get_lang, get_store

bp = Blueprint("fieldwork", __name__)
#: The form's fields kept when it is shown again with an error.
FORM_FIELDS = ("target", "target_layer", "target_key", "inspection_type", "outcome", "notes", "inspected_at",
               "lon", "lat", "occupancy", "width_m", "length_m")


def _staff():
    """The signed-in user, or 404 (inspections and their photos do not exist for anyone else)."""
    user = auth.current_user()
    if user is None:
        abort(404)
    return user


def _form(values: dict, error: str | None = None, status: int = 200):
    return render_template("inspection_form.html", values=values, error=error,
                           types=domain.INSPECTION_TYPES, outcomes=domain.INSPECTION_OUTCOMES,
                           max_photos=photos.MAX_PHOTOS, max_mb=photos.MAX_BYTES // (1024 * 1024)), status


@bp.get("/inspections/new")
@auth.require("inspector")
def new():
    """The form: for a permit (``?target=``), a follow-up (``?target_layer=inspections&target_key=``) or an
    occupancy nobody permitted (no target); ``?lon=&lat=`` fill the position."""
    values = {k: request.args.get(k, "") for k in FORM_FIELDS}
    if not values["inspection_type"]:
        values["inspection_type"] = "FOLLOW_UP" if values["target_layer"] == "inspections" else \
            ("SITE_CHECK" if values["target"] else "OCCUPANCY_CHECK")
    return _form(values)


@bp.post("/inspections")
@auth.require("inspector")
def create():
    """Record an inspection; refused with the reason (and nothing stored) when any input is wrong."""
    user = auth.signed_in_user()
    files = [f for f in request.files.getlist("photos") if f.filename]
    values = {k: request.form.get(k, "") for k in FORM_FIELDS}
    try:
        record = fieldwork.record(get_store(), inspector=user.username, form=values,
                                  uploads=[(f.filename or "photo", f.stream) for f in files])
    except (inspections.InspectionError, photos.PhotoError) as err:
        if request.accept_mimetypes.best == "application/json":
            return jsonify({"code": "InvalidParameterValue", "description": str(err), "status": 400}), 400
        return _form(values, str(err), 400)
    finally:
        for f in files:
            f.close()
    get_accounts_audit(user.username, record)
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"inspection_id": record.inspection_id,
                        "url": url_for("fieldwork.show", inspection_id=record.inspection_id)}), 201
    return redirect(url_for("fieldwork.show", inspection_id=record.inspection_id), 303)


def get_accounts_audit(username: str, record: inspections.Inspection) -> None:
    """The audit log's line for a recorded inspection."""
    auth.get_accounts().audit(username, "inspection", layer=record.target_layer, rows=len(record.photos),
                              detail=f"{record.inspection_id} {record.target_key or ''} {record.outcome}".strip())


@bp.get("/inspections/<inspection_id>")
def show(inspection_id: str):
    """One inspection: its fields, photos and (for an unpermitted occupancy) its follow-ups."""
    _staff()
    store = get_store()
    found = store.inspections(inspection_id=inspection_id)
    if not found:
        raise NotFound(f"no inspection {inspection_id!r}")
    record = found[0]
    follow_ups = store.inspections(target_layer="inspections", target_key=inspection_id) if record.unpermitted \
        else []
    return render_template("inspection.html", i=record, follow_ups=follow_ups)


@bp.get("/inspections/photos/<token>.jpg")
def photo(token: str):
    """A photo, to signed-in staff only (404 otherwise, as for a token that does not exist)."""
    _staff()
    data = get_store().inspection_photo(token)
    if data is None:
        abort(404)
    return Response(data, mimetype="image/jpeg", headers={"Cache-Control": "private, no-store",
                                                          "Content-Disposition": f'inline; filename="{token}.jpg"'})


@bp.get("/inspections.geojson")
def layer():
    """Every inspection as GeoJSON for the map's inspections layer (signed-in staff only)."""
    _staff()
    return jsonify(fieldwork.layer_geojson(get_store().inspections(), get_lang()))


@bp.get("/data/here")
def here():
    """What is permitted at ``lon``/``lat`` on ``day`` (default: today in the district): JSON."""
    try:
        lon, lat = float(request.args.get("lon", "")), float(request.args.get("lat", ""))
    except ValueError:
        raise FilterError("lon", "lon và lat phải là số / lon and lat must be numbers") from None
    w, s, e, n = inspections.VIETNAM_BBOX
    if not (w <= lon <= e and s <= lat <= n):
        raise FilterError("lon", "vị trí ngoài lãnh thổ Việt Nam / the position is outside Vietnam")
    text = request.args.get("day") or ""
    day = parse_as_of(text, "day") if text else dt.datetime.now(inspections.LOCAL).date()
    unknown = sorted(set(request.args) - {"lon", "lat", "day", "lang"})
    if unknown:
        raise FilterError(unknown[0], "tham số không hợp lệ / unknown parameter")
    return jsonify(permitted_here(get_store(), lon, lat, day, get_lang()))


@bp.get("/export/blds/inspections.csv")
def blds():
    """The BLDS Inspections file (signed-in staff only): no photo, no name."""
    _staff()
    items = get_store().inspections()
    name = f"blds-inspections-{dt.date.today().isoformat()}.csv"
    return Response(stream_with_context(blds_inspections.csv_chunks(items)), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@bp.app_context_processor
def _helpers() -> dict:
    """The district's time zone, for showing inspection times."""
    return {"local_tz": inspections.LOCAL}
