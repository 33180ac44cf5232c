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
#: Most rows read per layer around one spot.
MAX_ROWS = 200


def _box(point, metres: float) -> tuple[float, float, float, float]:
    """The WGS84 box of ``metres`` around ``point`` (EPSG:5899)."""
    grown = shapely.box(point.x - metres, point.y - metres, point.x + metres, point.y + metres)
    minx, miny, maxx, maxy = geo.transform([grown], STORE_CRS, WEB_CRS)[0].bounds
    return float(minx), float(miny), float(maxx), float(maxy)


def permitted_here(store: Store, lon: float, lat: float, day: dt.date, lang: str = "vi",
                   works_months: int = domain.WORKS_MONTHS) -> dict:
    """What is permitted at ``lon``/``lat`` on ``day``: ``{"construction": [...], "sidewalk": [...]}``.

    Each item: its key, status (code and label), start and end dates (ISO),
    and the distance from the spot in metres; nearest first.  Rows come from
    :meth:`Store.page` (plain rows, the stored GeoJSON: no frame is built),
    at most :data:`MAX_ROWS` per layer.
    """
    point = geo.transform([shapely.Point(lon, lat)], WEB_CRS, STORE_CRS)[0]
    out: dict = {"lon": lon, "lat": lat, "day": day.isoformat(), "construction": [], "sidewalk": []}
    side_fields = ["purpose", "status", "start_on", "end_on"]
    side = store.page("sidewalk_permits", Filter(bbox=_box(point, COVER_M + 1), date_from=day, date_to=day),
                      fields=side_fields, limit=MAX_ROWS)
    for (key, purpose, status, start, end), dist in zip((r[:-1] for r in side.rows), _distances(side.rows, point)):
        if dist is None or dist > COVER_M:
            continue
        out["sidewalk"].append({
            "permit_no": key, "purpose": purpose, "purpose_label": domain.label("purpose", purpose, lang),
            "status": status, "status_label": domain.label("status", status, lang),
            "start_on": _iso(start), "end_on": _iso(end), "distance_m": round(dist, 1), "covers": dist == 0.0})
    works_fields = ["permit_no", "status", "issued_on", "received_on", "site_address"]
    works = store.page("construction_permits", Filter(bbox=_box(point, FRONTAGE_M + 1)), fields=works_fields,
                       limit=MAX_ROWS)
    for (key, permit_no, status, issued, received, address), dist in zip((r[:-1] for r in works.rows),
                                                                          _distances(works.rows, point)):
        if dist is None or dist > FRONTAGE_M or status in NOT_PERMITTED:
            continue
        begin = _date(issued) or _date(received)
        if begin is None or begin > day:
            continue
        finish = domain.works_end(begin, works_months)
        if finish < day:
            continue
        out["construction"].append({
            "dossier_code": key, "permit_no": permit_no, "status": status,
            "status_label": domain.label("status", status, lang), "issued": _date(issued) is not None,
            "start_on": begin.isoformat(), "end_on": finish.isoformat(), "distance_m": round(dist, 1),
            "address": address})
    for items in (out["sidewalk"], out["construction"]):
        items.sort(key=lambda item: item["distance_m"])
    return out


def _distances(rows: list[tuple], point) -> list[float | None]:
    """Metres from ``point`` (EPSG:5899) to each row's geometry (its stored WGS84 GeoJSON, the row's last value)."""
    if not rows:
        return []
    geoms = shapely.from_geojson([r[-1] if r[-1] and r[-1] != "null" else '{"type":"Point","coordinates":[]}'
                                  for r in rows])
    local = geo.transform(geoms, WEB_CRS, STORE_CRS)
    return [None if g is None or g.is_empty else float(shapely.distance(g, point)) for g in local]


def _date(value) -> dt.date | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value.date() if isinstance(value, dt.datetime) else value


def _iso(value) -> str | None:
    d = _date(value)
    return None if d is None else d.isoformat()
