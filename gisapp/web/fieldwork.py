"""Field work: recording an inspection from a form and its photos, the inspections layer, the BLDS export rows.

No Flask request here: the views pass the form's values and the uploaded
files' streams.  Everything is checked before anything is stored; photos
are processed one at a time (each stream read from the upload's spooled
file, only the resized JPEG kept); the store writes the inspection, its
photos and any ``UNPERMITTED`` finding in one transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import IO

import pandas as pd
import shapely

from gisapp import domain, geo, inspections, photos
from gisapp.filters import Filter
from gisapp.inspections import Inspection, InspectionError
from gisapp.schema import STORE_CRS, WEB_CRS
from gisapp.store import Store


def record(store: Store, *, inspector: str, form: Mapping[str, str], uploads: Sequence[tuple[str, IO[bytes]]],
           now: dt.datetime | None = None) -> Inspection:
    """Check the form and photos, store the inspection; :class:`InspectionError` / :class:`PhotoError` if not.

    ``form``: ``target`` (a dossier code or sidewalk permit number, or
    ``target_layer`` + ``target_key``), ``inspection_type``, ``outcome``,
    ``notes``, ``inspected_at`` (ISO; default now), ``lon``/``lat``, and for
    an unpermitted occupancy ``occupancy`` (GeoJSON polygon) or
    ``width_m``/``length_m``.  ``uploads``: (file name, stream) of each photo.
    """
    now = now or dt.datetime.now(dt.UTC)
    uploads = [(name, stream) for name, stream in uploads if name]
    if len(uploads) > photos.MAX_PHOTOS:
        raise InspectionError("photos", f"tối đa {photos.MAX_PHOTOS} ảnh / at most {photos.MAX_PHOTOS} photos "
                              f"({len(uploads)} sent)")
    kind, outcome, notes = inspections.check_codes(form.get("inspection_type"), form.get("outcome"),
                                                   form.get("notes"))
    code = (form.get("target") or "").strip()
    layer, key = inspections.check_target(
        form.get("target_layer") or (inspections.target_layer_of_code(code) if code else None),
        form.get("target_key") or code)
    at = inspections.parse_time(form.get("inspected_at"), now)
    position = inspections.parse_position(form.get("lon"), form.get("lat"))
    occupancy = inspections.parse_occupancy(form.get("occupancy"), form.get("width_m"), form.get("length_m"),
                                            position)
    if occupancy is not None and layer is not None:
        raise InspectionError("occupancy", "chỉ ghi diện tích cho chiếm dụng không phép / an occupied area is "
                              "recorded only for an occupancy with no permit")
    base = None
    if layer in ("construction_permits", "sidewalk_permits") and store.get(layer, key or "").empty:
        raise InspectionError("target", f"không có giấy phép {key} / unknown permit {key!r}")
    if layer == "inspections":
        found = store.inspections(inspection_id=key)
        if not found or not found[0].unpermitted:
            raise InspectionError("target", f"không có chiếm dụng không phép {key} / no unpermitted occupancy {key!r}")
        base = found[0]
    ward = ward_at(store, occupancy if occupancy is not None else position, at.astimezone(inspections.LOCAL).date())
    stored = [photos.process(stream, name) for name, stream in uploads]  # one at a time
    inspection = Inspection(
        inspection_id=inspections.new_id(now), target_layer=layer, target_key=key, inspector=inspector,
        inspected_at=at, inspection_type=kind, outcome=outcome, notes=notes, position=position,
        occupancy=occupancy, ward_code=ward,
        photos=tuple(inspections.PhotoRef(p.token, p.width, p.height) for p in stored))
    with store.write_lock():  # two follow-ups at once: each sees the other before its finding is written
        findings = None
        if inspection.unpermitted:
            findings = inspections.unpermitted_findings([inspection])
        elif base is not None:
            history = store.inspections(target_layer="inspections", target_key=base.inspection_id)
            findings = inspections.unpermitted_findings([base, *history, inspection])
        store.add_inspection(inspection, stored, findings=findings)
    return inspection


def ward_at(store: Store, shape, day: dt.date) -> str | None:
    """The code of the ward in force on ``day`` holding most of ``shape`` (EPSG:5899); ``None`` outside every ward."""
    minx, miny, maxx, maxy = geo.transform([shapely.box(*shape.bounds)], STORE_CRS, WEB_CRS)[0].bounds
    wards = store.read("wards", Filter(bbox=(minx, miny, maxx, maxy)))
    best, best_size = None, 0.0
    point = shape.representative_point()
    for row in wards.itertuples(index=False):
        start, end = _day(row.valid_from), _day(row.valid_to)
        if row.geometry is None or (start and start > day) or (end and end < day):
            continue
        size = row.geometry.intersection(shape).area if shape.area else float(row.geometry.covers(point))
        if size > best_size:
            best, best_size = row.ward_code, size
    return best


def _day(value) -> dt.date | None:
    if value is None or pd.isna(value):
        return None
    return value.date() if hasattr(value, "date") else value


def layer_geojson(items: list[Inspection], lang: str) -> dict:
    """The inspections as a GeoJSON FeatureCollection (WGS84) for the map: points, and occupied areas."""
    features = []
    for i in items:
        lon, lat = i.lonlat()
        props = {"inspection_id": i.inspection_id, "target": i.target_key, "target_layer": i.target_layer,
                 "inspection_type": i.inspection_type, "outcome": i.outcome,
                 "type_label": domain.label("inspection_type", i.inspection_type, lang),
                 "outcome_label": domain.label("outcome", i.outcome, lang), "day": i.day.isoformat(),
                 "unpermitted": i.unpermitted, "ward_code": i.ward_code, "photos": len(i.photos)}
        point = {"type": "Point", "coordinates": [round(lon, 7), round(lat, 7)]}
        features.append({"type": "Feature", "geometry": point, "properties": props})
        if i.occupancy is not None:
            area = geo.transform([i.occupancy])[0]
            features.append({"type": "Feature", "geometry": shapely.geometry.mapping(area),
                             "properties": {**props, "area": True}})
    return {"type": "FeatureCollection", "features": features}
