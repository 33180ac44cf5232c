""""Here, today": what is permitted at one spot on one day, read from the store near that spot only.

Construction works whose parcel fronts the spot (within :data:`FRONTAGE_M`
metres of it) and sidewalk permits that cover it (within
:data:`COVER_M`, a phone's position being a few metres off), active on the
day.  Both layers are read with a small box around the spot (the stores'
spatial indexes), then measured exactly in EPSG:5899.

Activity on a day: a sidewalk permit from ``start_on`` to ``end_on``
(inclusive, an open end runs on); a dossier's works from its issue date
(``issued_on``, else received) for ``works_months`` months, as the overlap
analysis counts them, and only for a dossier whose permit was issued or is
still being handled (not refused, withdrawn or not accepted).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import shapely

from gisapp import domain, geo
from gisapp.filters import Filter
from gisapp.schema import STORE_CRS, WEB_CRS
from gisapp.store import Store

#: A parcel "fronts" the spot when its boundary is this close (m).
FRONTAGE_M = 5.0
#: A sidewalk permit "covers" the spot when its polygon is this close (m): a phone's position is a few metres off.
COVER_M = 3.0
#: Dossier statuses whose works are not permitted.
NOT_PERMITTED = frozenset({"REFUSED", "WITHDRAWN", "NOT_ACCEPTED"})
WORKS_MONTHS = 12


def _box(point, metres: float) -> tuple[float, float, float, float]:
    """The WGS84 box of ``metres`` around ``point`` (EPSG:5899)."""
    grown = shapely.box(point.x - metres, point.y - metres, point.x + metres, point.y + metres)
    minx, miny, maxx, maxy = geo.transform([grown], STORE_CRS, WEB_CRS)[0].bounds
    return float(minx), float(miny), float(maxx), float(maxy)


def works_end(start: dt.date, months: int = WORKS_MONTHS) -> dt.date:
    """The last day of works begun on ``start`` lasting ``months`` months."""
    return (pd.Timestamp(start) + pd.DateOffset(months=months) - pd.Timedelta(days=1)).date()


def permitted_here(store: Store, lon: float, lat: float, day: dt.date, lang: str = "vi",
                   works_months: int = WORKS_MONTHS) -> dict:
    """What is permitted at ``lon``/``lat`` on ``day``: ``{"construction": [...], "sidewalk": [...]}``.

    Each item: its key, status (code and label), start and end dates (ISO),
    and the distance from the spot in metres; nearest first.
    """
    point = geo.transform([shapely.Point(lon, lat)], WEB_CRS, STORE_CRS)[0]
    out: dict = {"lon": lon, "lat": lat, "day": day.isoformat(), "construction": [], "sidewalk": []}
    side = store.read("sidewalk_permits", Filter(bbox=_box(point, COVER_M + 1), date_from=day, date_to=day))
    for row in side.itertuples(index=False):
        dist = float(row.geometry.distance(point)) if row.geometry is not None else None
        if dist is None or dist > COVER_M:
            continue
        out["sidewalk"].append({
            "permit_no": row.permit_no, "purpose": row.purpose,
            "purpose_label": domain.label("purpose", row.purpose, lang),
            "status": row.status, "status_label": domain.label("status", row.status, lang),
            "start_on": _iso(row.start_on), "end_on": _iso(row.end_on), "distance_m": round(dist, 1),
            "covers": dist == 0.0})
    works = store.read("construction_permits", Filter(bbox=_box(point, FRONTAGE_M + 1)))
    for row in works.itertuples(index=False):
        if row.geometry is None or row.status in NOT_PERMITTED:
            continue
        dist = float(row.geometry.distance(point))
        if dist > FRONTAGE_M:
            continue
        start = _date(row.issued_on) or _date(row.received_on)
        if start is None or start > day:
            continue
        end = works_end(start, works_months)
        if end < day:
            continue
        out["construction"].append({
            "dossier_code": row.dossier_code, "permit_no": row.permit_no, "status": row.status,
            "status_label": domain.label("status", row.status, lang), "issued": _date(row.issued_on) is not None,
            "start_on": start.isoformat(), "end_on": end.isoformat(), "distance_m": round(dist, 1),
            "address": row.site_address})
    for items in (out["sidewalk"], out["construction"]):
        items.sort(key=lambda item: item["distance_m"])
    return out


def _date(value) -> dt.date | None:
    if value is None or pd.isna(value):
        return None
    return value.date() if hasattr(value, "date") else value


def _iso(value) -> str | None:
    d = _date(value)
    return None if d is None else d.isoformat()
