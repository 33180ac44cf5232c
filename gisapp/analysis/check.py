"""The check of a proposed sidewalk occupancy, before it is granted (the merged procedure).

:func:`parse_proposal` turns the inputs of the OGC API – Processes process
``occupancy-check`` (or of ``gisapp check``) into a :class:`Proposal`, or
raises :class:`gisapp.errors.InputError` naming the input.
:func:`check_occupancy` judges a proposal against what lies near it in a
store and returns a JSON-ready report; it reads only the features whose
bounding box is near the proposal (bbox reads through the store
interface) and writes nothing.

Verdict rules (the README says the same):

- ``REFUSE`` when the narrowest free passage left beside the occupancy on
  some day of its period, counting every other occupancy active that day,
  is below the minimum (1.5 m): :mod:`gisapp.passage`.
- else ``REFER`` (an officer must look) when it clashes with another
  sidewalk permit in space and time, lies on no sidewalk or more than 5 %
  of it off the sidewalks, the passage cannot be measured, or the dossier
  named does not front it;
- else ``OK``.

Permits whose status is refused, withdrawn or not accepted occupy nothing
and are ignored.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from gisapp import domain, geo, passage
from gisapp.errors import InputError
from gisapp.fees import FeeTable, load_fee_table
from gisapp.schema import STORE_CRS, WEB_CRS
from gisapp.store import Store

#: The inputs the process takes.
INPUTS = ("geometry", "start", "end", "purpose", "construction_dossier_code")
#: Where coordinates may lie: Vietnam, mainland and islands, as a lon/lat box.
VIETNAM_BOX = (102.1, 6.5, 117.9, 23.4)
#: A self-intersecting polygon is repaired when its area changes by less than this share, else refused.
REPAIR_SHARE = 0.01
#: Statuses of sidewalk permits that occupy nothing.
INACTIVE = frozenset({"REFUSED", "WITHDRAWN", "NOT_ACCEPTED"})
#: Area (m²) below which an overlap with another permit does not count (cm² noise of digitising).
AREA_EPSILON = 0.01
#: A drawn occupancy is "partly off the sidewalk" when more than this share of it (and more than
#: :data:`OFF_MIN_M2`) lies off every sidewalk: a few centimetres over the kerb or the property line are
#: drawing noise, not a reason to refer.
OFF_SHARE = 0.05
OFF_MIN_M2 = 0.1
#: Working days of a sidewalk-use permit with no construction dossier (an assumption: no statute found;
#: the short procedures' period).
SIDEWALK_ONLY_DAYS = domain.SHORT_DAYS
#: Free windows offered at most.
MAX_WINDOWS = 3
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

#: Reason code → (Vietnamese, English) templates.
REASONS = {
    "PASSAGE_TOO_NARROW": ("Lối đi bộ còn lại hẹp nhất {width} m vào ngày {day}, dưới mức tối thiểu {least} m",
                           "The narrowest free passage left is {width} m on {day}, below the minimum of {least} m"),
    "CLASH": ("Chồng lấn với giấy phép {permit_no} trong {days} ngày ({area} m²)",
              "Overlaps permit {permit_no} for {days} days ({area} m²)"),
    "NOT_ON_SIDEWALK": ("Vị trí không nằm trên vỉa hè nào", "The occupancy lies on no sidewalk"),
    "PARTLY_OFF_SIDEWALK": ("{area} m² nằm ngoài vỉa hè", "{area} m² lie off the sidewalk"),
    "PASSAGE_UNKNOWN": ("Không đo được lối đi bộ còn lại trên vỉa hè này",
                        "The free passage could not be measured on this sidewalk"),
    "DOSSIER_NOT_NEAR": ("Hồ sơ xây dựng {code} không ở cạnh vị trí này (cách {distance} m)",
                         "Construction dossier {code} does not front this occupancy ({distance} m away)"),
}


def reason(which: str, /, **values) -> dict:
    """A reason of the report: its code (``which``) and its Vietnamese and English text."""
    vi, en = REASONS[which]
    return {"code": which, "vi": vi.format(**values), "en": en.format(**values)}


@dataclass(frozen=True)
class CheckLimits:
    """What a proposal may be: largest area (m²) and longest period (days), from the settings."""

    max_area_m2: float = 500.0
    max_days: int = 365

    @classmethod
    def from_config(cls, config: dict) -> CheckLimits:
        """From ``GISAPP_CHECK_MAX_AREA_M2`` and ``GISAPP_CHECK_MAX_DAYS``."""
        return cls(float(config["CHECK_MAX_AREA_M2"]), int(config["CHECK_MAX_DAYS"]))


@dataclass(frozen=True)
class CheckRules:
    """How a proposal is judged.

    ``fees``: the fee table; ``calendar``: working days for the due date;
    ``min_passage_m``: the free passage pedestrians keep; ``frontage_m``:
    how far a dossier's parcel may be from the occupancy to front it (the
    analysis's merge distance); ``works_months``: the works period of a
    dossier from its issue (or receipt); ``gap_days``: how far before and
    after the requested dates free windows are looked for;
    ``received_on``: the day the application is received (due dates count
    from it; default today).
    """

    fees: FeeTable | None = None
    calendar: domain.Calendar = field(default_factory=domain.Calendar)
    min_passage_m: float = 1.5
    frontage_m: float = 5.0
    works_months: int = domain.WORKS_MONTHS
    gap_days: int = 90
    received_on: dt.date | None = None

    @classmethod
    def from_config(cls, config: dict, **changes) -> CheckRules:
        """From the settings: the fee table of ``GISAPP_FEE_TABLE`` and the calendar; ``changes`` override."""
        values: dict = {"fees": load_fee_table(config["FEE_TABLE"]), "calendar": config["CALENDAR"]}
        values.update(changes)
        return cls(**values)


@dataclass(frozen=True)
class Proposal:
    """A proposed occupancy: its polygon in EPSG:5899, its period (inclusive), purpose and dossier."""

    geometry: BaseGeometry
    start: dt.date
    end: dt.date
    purpose: str
    construction_dossier_code: str | None = None

    @property
    def days(self) -> int:
        """Days of the period, both ends included."""
        return (self.end - self.start).days + 1


# -- parsing ---------------------------------------------------------------------------


def parse_proposal(inputs: dict, *, limits: CheckLimits) -> Proposal:
    """The :class:`Proposal` of the process inputs, or :class:`InputError` naming the input.

    ``inputs``: ``geometry`` (GeoJSON Polygon or MultiPolygon in WGS84),
    ``start`` and ``end`` (YYYY-MM-DD), ``purpose`` (a sidewalk-use purpose
    code), optionally ``construction_dossier_code``.  A self-intersecting
    polygon is repaired when that changes its area by less than 1 %.
    """
    if not isinstance(inputs, dict):
        raise InputError("inputs", "must be a JSON object with geometry, start, end and purpose")
    unknown = [k for k in inputs if k not in INPUTS]
    if unknown:
        raise InputError(str(unknown[0]), f"unknown input; inputs: {', '.join(INPUTS)}")
    for name in ("geometry", "start", "end", "purpose"):
        if inputs.get(name) is None:
            raise InputError(name, "required input is missing")
    geometry = parse_geometry(inputs["geometry"], limits)
    start, end = _date(inputs, "start"), _date(inputs, "end")
    if end < start:
        raise InputError("end", f"{end.isoformat()} is before the start {start.isoformat()}")
    days = (end - start).days + 1
    if days > limits.max_days:
        raise InputError("end", f"the period is {days} days; at most {limits.max_days} days "
                                "(GISAPP_CHECK_MAX_DAYS)")
    purpose = inputs["purpose"]
    if not isinstance(purpose, str) or purpose not in domain.SIDEWALK_PURPOSES:
        raise InputError("purpose", f"unknown purpose {purpose!r}; codes: {', '.join(domain.SIDEWALK_PURPOSES)}")
    dossier = inputs.get("construction_dossier_code")
    if dossier is not None:
        if not isinstance(dossier, str) or not dossier.strip() or len(dossier) > 100:
            raise InputError("construction_dossier_code", "must be a dossier code (text of 1–100 characters)")
        dossier = dossier.strip()
    return Proposal(geometry, start, end, purpose, dossier)


def _date(inputs: dict, name: str) -> dt.date:
    value = inputs[name]
    if not isinstance(value, str) or not _DATE.match(value):
        raise InputError(name, f"not a date (YYYY-MM-DD): {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(name, f"no such day: {value!r}") from None


def parse_geometry(value, limits: CheckLimits) -> BaseGeometry:
    """A GeoJSON Polygon or MultiPolygon in WGS84 as a valid polygon in EPSG:5899, checked against ``limits``."""
    if not isinstance(value, dict):
        raise InputError("geometry", "must be a GeoJSON geometry object (Polygon or MultiPolygon)")
    kind = value.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        shown = kind if isinstance(kind, str) else repr(kind)
        raise InputError("geometry", f"a {shown} is not an area; draw a Polygon or MultiPolygon")
    coords = value.get("coordinates")
    polygons = [coords] if kind == "Polygon" else coords
    if not isinstance(polygons, (list, tuple)) or not polygons:
        raise InputError("geometry", "coordinates must be a non-empty list")
    shells = []
    for p, rings in enumerate(polygons):
        if not isinstance(rings, (list, tuple)) or not rings:
            raise InputError("geometry", f"polygon {p + 1} has no rings")
        shells.append([_ring(ring, p, r) for r, ring in enumerate(rings)])
    points = np.concatenate([np.concatenate(rings) for rings in shells])
    lon, lat = points[:, 0], points[:, 1]
    x0, y0, x1, y1 = VIETNAM_BOX
    outside = (lon < x0) | (lon > x1) | (lat < y0) | (lat > y1)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        raise InputError("geometry", f"position {lon[i]:.6f}, {lat[i]:.6f} (lon, lat) lies outside Vietnam; "
                                     "coordinates are WGS84 longitude, latitude")
    polys = [shapely.Polygon(rings[0], rings[1:]) for rings in shells]
    shape = polys[0] if kind == "Polygon" else shapely.MultiPolygon(polys)
    shape = geo.transform([shape], WEB_CRS, STORE_CRS)[0]
    shape = _repaired(shape)
    area = float(shapely.area(shape))
    if area <= 0:
        raise InputError("geometry", "the polygon has no area")
    if area > limits.max_area_m2:
        raise InputError("geometry", f"the area is {area:.1f} m²; at most {limits.max_area_m2:g} m² "
                                     "(GISAPP_CHECK_MAX_AREA_M2)")
    return shape


def _ring(ring, p: int, r: int) -> np.ndarray:
    where = f"polygon {p + 1}, ring {r + 1}"
    if not isinstance(ring, (list, tuple)) or not all(isinstance(pt, (list, tuple)) and len(pt) in (2, 3)
                                                      for pt in ring):
        raise InputError("geometry", f"{where}: positions must be [longitude, latitude] pairs")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for pt in ring for v in pt):
        raise InputError("geometry", f"{where}: coordinates must be finite numbers")
    xy = np.array([pt[:2] for pt in ring], dtype=float)
    if len(xy) and not np.array_equal(xy[0], xy[-1]):
        xy = np.vstack([xy, xy[:1]])
    if len(xy) < 4:
        raise InputError("geometry", f"{where}: a ring needs at least 3 distinct positions")
    return xy


def _repaired(shape: BaseGeometry) -> BaseGeometry:
    """``shape`` if valid; else repaired when the area changes by < 1 %, else :class:`InputError` naming why."""
    if shape.is_valid:
        return shape
    why = shapely.is_valid_reason(shape)
    before = abs(float(shapely.area(shape)))
    fixed = shapely.make_valid(shape)
    parts = [p for p in shapely.get_parts(fixed) if shapely.get_type_id(p) in (3, 6)]
    fixed = shapely.union_all(parts) if parts else shapely.Polygon()
    after = float(shapely.area(fixed))
    change = abs(after - before) / max(before, after) if max(before, after) > 0 else 1.0
    if change >= REPAIR_SHARE or fixed.is_empty:
        where = _where(why)
        raise InputError("geometry", f"the polygon is not valid ({why.split('[')[0].strip()}{where}); repairing "
                                     f"it would change its area by {change:.0%}; redraw it without crossing edges")
    return fixed


def _where(why: str) -> str:
    """`` at lon, lat`` of the position in a GEOS validity reason (EPSG:5899 → WGS84), or ``""``."""
    m = re.search(r"\[([-\d.eE+]+)\s+([-\d.eE+]+)\]", why)
    if not m:
        return ""
    lon, lat = geo.transformer(STORE_CRS, WEB_CRS).transform(float(m.group(1)), float(m.group(2)))
    return f" at {lon:.6f}, {lat:.6f}"


# -- checking ----------------------------------------------------------------------------


#: The fields the check reads of each layer near the proposal (personal ones added for staff).
FIELDS = {
    "sidewalks": ["sidewalk_id", "street", "width_m", "street_class"],
    "sidewalk_permits": ["permit_no", "status", "purpose", "start_on", "end_on", "construction_dossier_code"],
    "construction_permits": ["dossier_code", "permit_no", "status", "procedure", "work_category", "site_address",
                             "received_on", "issued_on"],
    "wards": ["ward_code", "valid_from", "valid_to"],
}
PERSONAL_FIELDS = {"sidewalk_permits": ["applicant_name"], "construction_permits": ["owner_name"]}


def _near(store: Store, layer: str, bounds, margin: float, personal: bool = False) -> list[dict]:
    """The features of ``layer`` whose bounding box meets ``bounds`` (EPSG:5899) grown by ``margin`` metres.

    Plain rows (``dict``: the fields of :data:`FIELDS`, dates as dates, and
    ``geometry``), from one query through the store's spatial index
    (:meth:`Store.rows_in_box`).
    """
    x0, y0, x1, y1 = bounds
    fields = FIELDS[layer] + (PERSONAL_FIELDS.get(layer, []) if personal else [])
    rows = store.rows_in_box(layer, (x0 - margin, y0 - margin, x1 + margin, y1 + margin), fields=fields)
    if not rows:
        return []
    geoms = shapely.from_wkb(np.array([None if r[-1] is None else bytes(r[-1]) for r in rows], dtype=object))
    return [{**dict(zip(fields, r[:-1], strict=True)), "geometry": g} for r, g in zip(rows, geoms, strict=True)
            if g is not None and not g.is_empty]


def _day(value) -> dt.date | None:
    """A stored date (a date, datetime64 or timestamp) as a date; ``None`` when missing."""
    if value is None or (not isinstance(value, dt.date) and pd.isna(value)):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else pd.Timestamp(value).date()


def _geoms(rows: list[dict]) -> np.ndarray:
    return np.array([r["geometry"] for r in rows], dtype=object)


def check_occupancy(store: Store, proposal: Proposal, *, rules: CheckRules, personal: bool = False,
                    exclude: str | None = None) -> dict:
    """The report on ``proposal``: verdict, reasons, passage, clashes, free windows, dossier, fee, due date.

    Reads only what lies near the proposal; writes nothing.  Personal
    fields (applicants, owners) only with ``personal``.  An unknown
    ``construction_dossier_code`` is an :class:`InputError` naming it.
    ``exclude``: a stored permit the proposal replaces (an application
    being changed), which neither clashes with it nor narrows its passage.
    """
    geom = proposal.geometry
    shapely.prepare(geom)
    area = float(shapely.area(geom))
    reasons: list[dict] = []

    given = None
    if proposal.construction_dossier_code:
        found = store.get("construction_permits", proposal.construction_dossier_code)
        if found.empty:
            raise InputError("construction_dossier_code", f"no dossier {proposal.construction_dossier_code!r}")
        given = {**{k: _plain(v) for k, v in found.iloc[0].items()}, "geometry": found.geometry.iloc[0]}

    sidewalks = _near(store, "sidewalks", geom.bounds, 0.0)
    if sidewalks:
        shared = shapely.area(shapely.intersection(_geoms(sidewalks), geom))
        sidewalks = [w for w, a in zip(sidewalks, shared, strict=True) if a > AREA_EPSILON]
    on = shapely.union_all(_geoms(sidewalks)) if sidewalks else shapely.Polygon()
    widths = [float(w["width_m"]) for w in sidewalks if w["width_m"] is not None and w["width_m"] > 0]
    width = max(widths) if widths else None
    reach = (width or (passage.sidewalk_width(on) if sidewalks else 0.0)) + passage.REACH
    permits = [p for p in _near(store, "sidewalk_permits", geom.bounds, reach + 1.0, personal)
               if p["status"] not in INACTIVE and p["start_on"] is not None and p["end_on"] is not None
               and not p["geometry"].is_empty and p["permit_no"] != exclude]

    # where: the sidewalks, the part off them, the ward
    off = float(shapely.area(shapely.difference(geom, on))) if sidewalks else area
    if not sidewalks:
        reasons.append(reason("NOT_ON_SIDEWALK"))
    elif off > max(OFF_MIN_M2, OFF_SHARE * area):
        reasons.append(reason("PARTLY_OFF_SIDEWALK", area=f"{off:.2f}"))
    ward_code = _ward(store, geom, proposal.start)

    # the narrowest passage over the period
    others = [passage.Occupancy(p["geometry"], p["start_on"], p["end_on"]) for p in permits]
    width_m = on_day = None
    if sidewalks:
        focus = passage.Occupancy(geom, proposal.start, proposal.end)
        width_m, on_day = passage.narrowest_over_period(on, focus, others, width=width)
        if width_m is None:
            reasons.append(reason("PASSAGE_UNKNOWN"))
        elif width_m < rules.min_passage_m - 1e-9:
            reasons.append(reason("PASSAGE_TOO_NARROW", width=f"{width_m:.2f}", day=str(on_day),
                                  least=f"{rules.min_passage_m:.2f}"))

    overlaps = shapely.area(shapely.intersection(_geoms(permits), geom)) if permits else np.zeros(0)
    clashes, coordination = _clashes(permits, overlaps, proposal, rules, personal)
    for c in clashes:
        reasons.append(reason("CLASH", permit_no=c["permit_no"], days=c["overlap_days"],
                              area=f"{c['overlap_area_m2']:.2f}"))
    narrow = width_m is not None and width_m < rules.min_passage_m - 1e-9
    windows = _free_windows(on, geom, overlaps > AREA_EPSILON, others, proposal, rules, width) \
        if clashes or narrow else []

    dossier = _dossier(store, geom, proposal, rules, given, reasons, personal)
    fee_vnd, fee_note, fee_parts = _fee(rules.fees, sidewalks, geom, proposal)
    due_on, due_basis = _due(rules, dossier)

    codes = {r["code"] for r in reasons}
    verdict = "REFUSE" if "PASSAGE_TOO_NARROW" in codes else "REFER" if codes else "OK"
    return {
        "verdict": verdict,
        "reasons": reasons,
        "ward_code": ward_code,
        "sidewalk_ids": [w["sidewalk_id"] for w in sidewalks],
        "streets": sorted({w["street"] for w in sidewalks if isinstance(w["street"], str)}),
        "area_m2": round(area, 2),
        "off_sidewalk_m2": round(off, 2),
        "start": proposal.start.isoformat(),
        "end": proposal.end.isoformat(),
        "days": proposal.days,
        "purpose": proposal.purpose,
        "narrowest_passage_m": width_m,
        "narrowest_on": on_day.isoformat() if on_day else None,
        "min_passage_m": rules.min_passage_m,
        "clashes": clashes,
        "opportunities": windows,
        "coordination": coordination,
        "construction_dossier_code": dossier["dossier_code"] if dossier else None,
        "construction_dossier": dossier,
        "due_on": due_on.isoformat(),
        "due_basis": due_basis,
        "fee_vnd": fee_vnd,
        "fee_parts": fee_parts,
        "fee_note": fee_note,
        "fee_table": Path(rules.fees.source).name if rules.fees else None,
    }


def _plain(value):
    """A value of a store frame as plain Python: ``None`` for missing, dates as dates."""
    if isinstance(value, pd.Timestamp):
        return value.date()
    if value is None or (not isinstance(value, (str, dt.date, BaseGeometry)) and pd.isna(value)):
        return None
    return value


#: The wards of recently seen store versions: (store url, data version) → rows (a ward layer changes rarely,
#: and its polygons are large: reading them for every check cost a quarter of its time).
_WARDS: dict[tuple[str, str], list[dict]] = {}
_WARDS_LOCK = threading.Lock()


def _store_wards(store: Store, geom: BaseGeometry) -> list[dict]:
    """The wards near ``geom``: all of the store's version, remembered, or (no version known) read near it."""
    version = store.version()
    if version is None:
        return _near(store, "wards", geom.bounds, 0.0)
    key = (store.url, version)
    with _WARDS_LOCK:
        rows = _WARDS.get(key)
    if rows is None:
        table = store.read_arrow("wards", fields=FIELDS["wards"])
        rows = [] if table is None else [
            {**{name: table.column(name)[k].as_py() for name in FIELDS["wards"]},
             "geometry": shapely.from_wkb(table.column("geometry")[k].as_py())} for k in range(table.num_rows)]
        shapely.prepare(_geoms(rows))
        with _WARDS_LOCK:
            if len(_WARDS) >= 4:
                _WARDS.clear()
            _WARDS[key] = rows
    return [w for w in rows if shapely.intersects(w["geometry"], geom)]


def _ward(store: Store, geom: BaseGeometry, day: dt.date) -> str | None:
    """The code of the ward in force on ``day`` holding the largest part of ``geom``."""
    wards = [w for w in _store_wards(store, geom)
             if (w["valid_from"] is None or w["valid_from"] <= day) and (w["valid_to"] is None or w["valid_to"] >= day)]
    if not wards:
        return None
    share = shapely.area(shapely.intersection(_geoms(wards), geom))
    best = int(np.argmax(share))
    return str(wards[best]["ward_code"]) if share[best] > 0 else None


def _clashes(permits: list[dict], overlaps: np.ndarray, proposal: Proposal, rules: CheckRules, personal: bool):
    """Permits overlapping the proposal in space and time, and those in space only within the gap."""
    clashes: list[dict] = []
    coordination: list[dict] = []
    for k in np.flatnonzero(overlaps > AREA_EPSILON):
        row = permits[k]
        s, e = row["start_on"], row["end_on"]
        first, last = max(s, proposal.start), min(e, proposal.end)
        entry = {"permit_no": row["permit_no"], "overlap_area_m2": round(float(overlaps[k]), 4),
                 "status": row["status"], "purpose": row["purpose"], "start": s.isoformat(), "end": e.isoformat(),
                 "construction_dossier_code": row["construction_dossier_code"]}
        if personal:
            entry["applicant_name"] = row["applicant_name"]
        if first <= last:
            clashes.append({**entry, "overlap_days": (last - first).days + 1, "overlap_start": first.isoformat(),
                            "overlap_end": last.isoformat()})
        else:
            gap = (first - last).days
            if gap <= rules.gap_days:
                coordination.append({**entry, "gap_days": gap})
    clashes.sort(key=lambda c: (c["overlap_start"], c["permit_no"]))
    coordination.sort(key=lambda c: (c["gap_days"], c["permit_no"]))
    return clashes, coordination


def _free_windows(on, geom, overlapping: np.ndarray, others: list[passage.Occupancy], proposal: Proposal,
                  rules: CheckRules, width) -> list[dict]:
    """Periods as long as the requested one, within ``gap_days`` of it, free of clashes and wide enough.

    A day is free when no active permit overlaps the proposal and the free
    passage beside it is at least the minimum.  Up to :data:`MAX_WINDOWS`
    windows, the closest to the requested start first.
    """
    first = proposal.start - dt.timedelta(days=rules.gap_days)
    last = proposal.end + dt.timedelta(days=rules.gap_days)
    days = passage.change_days(first, last, others)
    free_from: list[tuple[dt.date, bool]] = []
    seen: dict[frozenset, bool] = {}
    for day in days:
        active = frozenset(i for i, o in enumerate(others) if o.start <= day <= o.end)
        if active not in seen:
            if any(overlapping[i] for i in active):
                seen[active] = False
            elif on.is_empty:
                seen[active] = True
            else:
                w = passage.passage_width(on, geom, [others[i].geometry for i in sorted(active)], width=width)
                seen[active] = w is None or w >= rules.min_passage_m - 1e-9
        free_from.append((day, seen[active]))
    # runs of free days: [run start, run end]
    runs: list[list[dt.date]] = []
    for k, (day, free) in enumerate(free_from):
        if not free:
            continue
        end = free_from[k + 1][0] - dt.timedelta(days=1) if k + 1 < len(free_from) else last
        if runs and runs[-1][1] + dt.timedelta(days=1) == day:
            runs[-1][1] = end
        else:
            runs.append([day, end])
    length = dt.timedelta(days=proposal.days - 1)
    windows: list[dict] = []
    for a, b in runs:
        if b - a < length:
            continue
        best = min(max(proposal.start, a), b - length)  # the start closest to the requested one within the run
        windows.append({"start": best.isoformat(), "end": (best + length).isoformat(),
                        "shift_days": (best - proposal.start).days})
    windows = [w for w in windows if w["shift_days"] != 0]
    windows.sort(key=lambda w: (abs(int(w["shift_days"])), int(w["shift_days"])))
    return windows[:MAX_WINDOWS]


def _works(row: dict, rules: CheckRules) -> tuple[dt.date | None, dt.date | None]:
    """A dossier's works period: from its issue (else receipt) for ``works_months`` months."""
    start = _day(row["issued_on"]) or _day(row["received_on"])
    if start is None:
        return None, None
    return start, domain.works_end(start, rules.works_months)


def _dossier(store: Store, geom, proposal: Proposal, rules: CheckRules, given: dict | None,
             reasons: list[dict], personal: bool) -> dict | None:
    """The construction dossier of the occupancy: the one given, else the nearest fronting parcel in works."""
    if given is not None:
        distance = float(shapely.distance(given["geometry"], geom))
        if distance > rules.frontage_m + 1e-6:
            reasons.append(reason("DOSSIER_NOT_NEAR", code=given["dossier_code"], distance=f"{distance:.1f}"))
        return _dossier_entry(given, distance, "given", rules, personal)
    best = None
    for row in _near(store, "construction_permits", geom.bounds, rules.frontage_m + 0.01, personal):
        if row["geometry"] is None or row["geometry"].is_empty:
            continue
        distance = float(shapely.distance(row["geometry"], geom))
        start, end = _works(row, rules)
        if distance > rules.frontage_m + 1e-6 or start is None or end is None or start > proposal.end \
                or end < proposal.start:
            continue
        if best is None or (distance, row["dossier_code"]) < best[0]:
            best = ((distance, row["dossier_code"]), row)
    if best is None:
        return None
    return _dossier_entry(best[1], best[0][0], "found", rules, personal)


def _dossier_entry(row: dict, distance: float, how: str, rules: CheckRules, personal: bool) -> dict:
    start, end = _works(row, rules)
    entry = {"dossier_code": row["dossier_code"], "how": how, "distance_m": round(distance, 3),
             "status": row["status"], "procedure": row["procedure"], "work_category": row["work_category"],
             "site_address": row["site_address"], "permit_no": row["permit_no"],
             "works_start": start.isoformat() if start else None, "works_end": end.isoformat() if end else None}
    if personal:
        entry["owner_name"] = row["owner_name"]
    return entry


def _fee(fees: FeeTable | None, sidewalks: list[dict], geom, proposal: Proposal):
    """The fee in VND (whole), its notice (``vi``/``en`` or ``None``) and its parts per sidewalk.

    The area on each sidewalk is charged at its street class's rate; the
    area off the sidewalks at the rate of the sidewalk holding most of it.
    """
    if fees is None:
        return None, {"vi": "Chưa có biểu phí", "en": "No fee table"}, []
    note = fees.note()
    if not sidewalks:
        missing = {"vi": "Không tính được phí: vị trí không nằm trên vỉa hè nào",
                   "en": "No fee: the occupancy lies on no sidewalk"}
        return None, _joined(missing, note), []
    shares = shapely.area(shapely.intersection(_geoms(sidewalks), geom))
    total_area = float(shapely.area(geom))
    shares = shares * (total_area / shares.sum()) if shares.sum() > 0 else shares
    parts, total = [], 0.0
    for walk, share in zip(sidewalks, shares, strict=True):
        cls = walk["street_class"]
        value = fees.fee(cls, proposal.purpose, float(share), proposal.start, proposal.end) \
            if isinstance(cls, str) else None
        parts.append({"sidewalk_id": walk["sidewalk_id"], "street_class": cls, "area_m2": round(float(share), 2),
                      "fee_vnd": None if value is None else round(value)})
        if value is None:
            missing = {"vi": f"Không có mức phí cho loại đường {cls} và mục đích {proposal.purpose}",
                       "en": f"No rate for street class {cls} and purpose {proposal.purpose}"}
            return None, _joined(missing, note), parts
        total += value
    return round(total), note, parts


def _joined(first: dict, second: dict | None) -> dict:
    return first if not second else {k: f"{first[k]} {second[k]}" for k in first}


def _due(rules: CheckRules, dossier: dict | None) -> tuple[dt.date, dict]:
    """The decision's due date: the construction permit's statutory period when merged with a dossier."""
    received = rules.received_on or dt.date.today()
    if dossier:
        days = int(domain.statutory_days(dossier["procedure"], dossier["work_category"]))
        basis = {"received_on": received.isoformat(), "working_days": days,
                 "rule": "construction permit's statutory period (merged procedure)"}
    else:
        days = SIDEWALK_ONLY_DAYS
        basis = {"received_on": received.isoformat(), "working_days": days,
                 "rule": "sidewalk-use permit alone (assumed; no statutory period found)"}
    return rules.calendar.add_working_days(received, days), basis
