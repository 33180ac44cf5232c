"""Inspection records: what an inspector saw, where and when; checked here, stored by the stores.

An inspection belongs to a construction dossier (``construction_permits``),
a sidewalk permit (``sidewalk_permits``), an earlier inspection
(``inspections``: a follow-up of an unpermitted occupancy) or to nothing.
An inspection of nothing with an occupied area is an *unpermitted
occupancy*: it becomes a finding of kind ``UNPERMITTED``
(:func:`unpermitted_findings`), open until a follow-up inspection of it
passes.  Pure: no Flask, no store.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from gisapp import domain, geo
from gisapp.schema import FINDINGS, STORE_CRS, WEB_CRS

#: What an inspection may be about.
TARGET_LAYERS = ("construction_permits", "sidewalk_permits", "inspections")
#: Vietnam's extent, mainland and islands (lon/lat): positions outside it are refused.
VIETNAM_BBOX = (102.1, 6.0, 117.9, 23.4)
#: Clock difference tolerated between a phone and the server before a time counts as "in the future".
CLOCK_SKEW = dt.timedelta(minutes=5)
#: The district's time zone (UTC+7 all year).
LOCAL = dt.timezone(dt.timedelta(hours=7))
#: Largest occupancy recorded (m²) and longest side of one given by its size.
MAX_OCCUPANCY_M2 = 2000.0
MAX_NOTES = 4000


class InspectionError(ValueError):
    """An inspection that cannot be recorded: ``field`` names the input, the message says why."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class PhotoRef:
    """A stored photo of an inspection: its token (its URL) and size in pixels."""

    token: str
    width: int
    height: int


@dataclass(frozen=True)
class Inspection:
    """One inspection.  ``position`` and ``occupancy`` are in EPSG:5899; ``inspected_at`` is timezone-aware."""

    inspection_id: str
    target_layer: str | None
    target_key: str | None
    inspector: str
    inspected_at: dt.datetime
    inspection_type: str
    outcome: str
    notes: str
    position: BaseGeometry
    occupancy: BaseGeometry | None = None
    ward_code: str | None = None
    photos: tuple[PhotoRef, ...] = field(default_factory=tuple)

    @property
    def unpermitted(self) -> bool:
        """Whether this records an occupancy nobody permitted (no target, an occupied area)."""
        return self.target_layer is None and self.occupancy is not None

    @property
    def day(self) -> dt.date:
        """The local day (UTC+7) of the inspection."""
        return self.inspected_at.astimezone(LOCAL).date()

    def lonlat(self) -> tuple[float, float]:
        """The position in WGS84."""
        point = geo.transform([self.position])[0]
        return float(point.x), float(point.y)


def new_id(now: dt.datetime) -> str:
    """A new inspection id: ``KT-`` (kiểm tra), the local date and 8 random hex digits."""
    return f"KT-{now.astimezone(LOCAL):%Y%m%d}-{secrets.token_hex(4)}"


def parse_time(text: str | None, now: dt.datetime) -> dt.datetime:
    """The inspection time: ISO 8601 (without an offset: local time, UTC+7), default ``now``; never in the future."""
    if not text:
        return now
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InspectionError("inspected_at", f"không phải thời điểm ISO 8601 / not an ISO 8601 time: {text!r}") \
            from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=LOCAL)
    if value > now + CLOCK_SKEW:
        raise InspectionError("inspected_at", "thời điểm ở tương lai / the time is in the future")
    return value


def parse_position(lon: str | float | None, lat: str | float | None) -> BaseGeometry:
    """The point (EPSG:5899) at WGS84 ``lon``/``lat``, which must lie in Vietnam."""
    try:
        x, y = float(lon), float(lat)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InspectionError("position", "thiếu hoặc sai kinh độ/vĩ độ / longitude and latitude are missing "
                              "or not numbers") from None
    w, s, e, n = VIETNAM_BBOX
    if not (w <= x <= e and s <= y <= n):
        raise InspectionError("position", f"vị trí ngoài lãnh thổ Việt Nam / the position ({x}, {y}) is "
                              "outside Vietnam")
    return geo.transform([shapely.Point(x, y)], WEB_CRS, STORE_CRS)[0]


def parse_occupancy(geojson: str | None, width_m: str | float | None, length_m: str | float | None,
                    position: BaseGeometry) -> BaseGeometry | None:
    """The occupied area (EPSG:5899): a drawn GeoJSON polygon (WGS84), or a rectangle of the size given
    centred on ``position``; ``None`` when neither is given."""
    if geojson:
        try:
            shape = shapely.from_geojson(geojson)
        except Exception:  # noqa: BLE001 - shapely raises GEOSException or ValueError for bad text
            raise InspectionError("occupancy", "không phải đa giác GeoJSON / not a GeoJSON polygon") from None
        if shape.geom_type not in ("Polygon", "MultiPolygon") or shape.is_empty:
            raise InspectionError("occupancy", "không phải đa giác GeoJSON / not a GeoJSON polygon")
        w, s, e, n = VIETNAM_BBOX
        minx, miny, maxx, maxy = shape.bounds
        if not (w <= minx and maxx <= e and s <= miny and maxy <= n):
            raise InspectionError("occupancy", "đa giác ngoài lãnh thổ Việt Nam / the polygon is outside Vietnam")
        area = shapely.make_valid(geo.transform([shape], WEB_CRS, STORE_CRS)[0])
    elif width_m not in (None, "") or length_m not in (None, ""):
        try:
            width, length = float(width_m), float(length_m)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InspectionError("size", "chiều rộng và chiều dài phải là số mét / width and length must be "
                                  "numbers of metres") from None
        if not (0 < width <= 100 and 0 < length <= 100):
            raise InspectionError("size", "chiều rộng và chiều dài phải từ 0 đến 100 m / width and length must "
                                  "be between 0 and 100 m")
        area = shapely.box(position.x - length / 2, position.y - width / 2,
                           position.x + length / 2, position.y + width / 2)
    else:
        return None
    if not area.area > 0:
        raise InspectionError("occupancy", "diện tích bằng 0 / the area is zero")
    if area.area > MAX_OCCUPANCY_M2:
        raise InspectionError("occupancy", f"diện tích quá lớn / the area is larger than {MAX_OCCUPANCY_M2:g} m²")
    return area


def check_codes(inspection_type: str | None, outcome: str | None, notes: str | None) -> tuple[str, str, str]:
    """The type and outcome codes (known ones only) and the notes (trimmed, bounded)."""
    if inspection_type not in domain.INSPECTION_TYPES:
        raise InspectionError("inspection_type", f"loại không hợp lệ / unknown type {inspection_type!r}; "
                              f"one of {', '.join(domain.INSPECTION_TYPES)}")
    if outcome not in domain.INSPECTION_OUTCOMES:
        raise InspectionError("outcome", f"kết quả không hợp lệ / unknown outcome {outcome!r}; "
                              f"one of {', '.join(domain.INSPECTION_OUTCOMES)}")
    text = (notes or "").strip()
    if len(text) > MAX_NOTES:
        raise InspectionError("notes", f"ghi chú quá dài / the notes are longer than {MAX_NOTES} characters")
    return inspection_type, outcome, text


def check_target(target_layer: str | None, target_key: str | None) -> tuple[str | None, str | None]:
    """The target as stored: both given (a known layer) or neither."""
    layer = (target_layer or "").strip() or None
    key = (target_key or "").strip() or None
    if layer is None and key is None:
        return None, None
    if layer not in TARGET_LAYERS or key is None:
        raise InspectionError("target", f"đối tượng không hợp lệ / unknown target {layer!r} {key!r}")
    return layer, key


def closing_days(inspections: list[Inspection]) -> dict[str, dt.date]:
    """For each unpermitted occupancy closed by a passed follow-up, the day of the first such follow-up."""
    closed: dict[str, dt.date] = {}
    for i in sorted(inspections, key=lambda r: r.inspected_at):
        if i.target_layer == "inspections" and i.target_key and i.outcome == "PASSED":
            closed.setdefault(i.target_key, i.day)
    return closed


def unpermitted_findings(inspections: list[Inspection]) -> gpd.GeoDataFrame:
    """The ``UNPERMITTED`` findings of the unpermitted occupancies among ``inspections``.

    One per occupancy: ``finding_id`` ``UP-<inspection id>``, ``a_id`` the
    inspection, its ward, area (m², 4 decimals), ``overlap_start`` the day
    it was seen and ``overlap_end`` the day a follow-up found it gone
    (empty while open).
    """
    closed = closing_days(inspections)
    rows = []
    for i in inspections:
        if not i.unpermitted or i.occupancy is None:
            continue
        end = closed.get(i.inspection_id)
        rows.append({
            "finding_id": f"UP-{i.inspection_id}", "kind": "UNPERMITTED", "a_id": i.inspection_id, "b_id": None,
            "ward_code": i.ward_code, "overlap_area_m2": round(float(i.occupancy.area), 4), "distance_m": None,
            "overlap_start": pd.Timestamp(i.day), "overlap_end": pd.Timestamp(end) if end else pd.NaT,
            "overlap_days": (end - i.day).days + 1 if end else None,
            "detail": ("closed " + end.isoformat()) if end else "open", "geometry": i.occupancy,
        })
    columns = [*FINDINGS.field_names, "geometry"]
    frame = pd.DataFrame(rows, columns=columns)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=STORE_CRS)


def target_layer_of_code(code: str) -> str:
    """The layer a permit code names: sidewalk permits are ``VH-…``, dossiers the rest."""
    return "sidewalk_permits" if code.upper().startswith("VH-") else "construction_permits"
