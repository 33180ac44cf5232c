"""The occupancy check and the filing of an occupancy as a sidewalk-use permit application (no Flask request).

:func:`check` runs :func:`gisapp.analysis.check.check_occupancy` with the
app's settings (what ``POST /api/processes/occupancy-check/execution`` and
the map's tool answer).  :func:`save` files a checked occupancy as a new
sidewalk-use permit application, or changes one (its geometry, dates,
purpose) and checks it again:

- the row goes through the import's own checks
  (:func:`gisapp.importing.prepare.prepare_import`: codes, dates, geometry,
  ward), so a saved application is one an import would accept;
- status ``NEW`` (``Mới đăng ký``); ``construction_dossier_code`` is the
  dossier the check found or was given (the merged procedure);
- the permit and the findings that involve it
  (:func:`gisapp.analysis.incremental.write_with_findings`, the one path of
  every writer of permits) are written in one store transaction, under the store's writers' lock: two officers saving
  overlapping occupancies at once are both saved, one after the other, and
  the second one's findings hold the clash with the first;
- the permit number is ``VH-<year>-N<6 letters and digits>`` (random, checked
  unused under the lock): ``N`` for applications filed in the app, beside
  the offices' own sequence ``VH-<year>-<number>``.

Editing is for applications still ``NEW``; another status is a 409.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from gisapp import geo
from gisapp.analysis import incremental
from gisapp.analysis.check import CheckLimits, CheckRules, Proposal, check_occupancy, parse_proposal
from gisapp.errors import InputError, NotFound, RequestError
from gisapp.filters import Filter
from gisapp.importing.prepare import prepare_import
from gisapp.importing.read import Source
from gisapp.schema import STORE_CRS, WEB_CRS
from gisapp.store import Store

#: Status of a filed application.
NEW = "NEW"
#: Letters and digits of the random part of a permit number (no 0/O, 1/I).
_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
#: What the save form may add to the check's inputs.
EXTRA_FIELDS = ("applicant_name", "address", "channel", "sidewalk_width_m")
CHANNELS = ("IN_PERSON", "ONLINE", "POST")


def limits(config: dict) -> CheckLimits:
    """The check's limits from the settings."""
    return CheckLimits.from_config(config)


_RULES: dict[tuple, CheckRules] = {}


def rules(config: dict) -> CheckRules:
    """The check's rules from the settings; the fee table read again when its file changes."""
    path = Path(config["FEE_TABLE"])
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    key = (str(path), stamp, id(config["CALENDAR"]))
    found = _RULES.get(key)
    if found is None:
        found = CheckRules.from_config(config)
        _RULES.clear()
        _RULES[key] = found
    return found


def check(store: Store, inputs: dict, config: dict, *, personal: bool) -> dict:
    """The check's report on the process ``inputs`` (:class:`InputError` naming a bad input)."""
    proposal = parse_proposal(inputs, limits=limits(config))
    return check_occupancy(store, proposal, rules=rules(config), personal=personal)


@dataclass(frozen=True)
class Saved:
    """A filed (or changed) application: its number, the check's report, what happened to the findings."""

    permit_no: str
    created: bool
    report: dict
    findings_written: int
    findings_removed: int
    clashes: list[str]


def new_permit_no(store: Store, year: int) -> str:
    """An unused permit number ``VH-<year>-N<6 characters>`` (call it under the writers' lock)."""
    while True:
        number = f"VH-{year}-N" + "".join(secrets.choice(_ALPHABET) for _ in range(6))
        if store.get("sidewalk_permits", number).empty:
            return number


def used_width(geom) -> float:
    """How far the occupancy reaches across the sidewalk: the short side of its minimum rotated rectangle (m)."""
    rect = shapely.minimum_rotated_rectangle(geom)
    xy = np.asarray(shapely.get_coordinates(rect))
    if len(xy) < 4:
        return 0.0
    sides = np.hypot(*(xy[1:3] - xy[0:2]).T)
    return round(float(sides.min()), 2)


def _split(body: dict) -> tuple[dict, dict]:
    """The process inputs and the extra fields of a save request body ``{"inputs": …, <extra>: …}``."""
    if not isinstance(body, dict):
        raise InputError("body", 'must be a JSON object {"inputs": {...}}')
    unknown = [k for k in body if k != "inputs" and k not in EXTRA_FIELDS]
    if unknown:
        raise InputError(str(unknown[0]), f"unknown field; fields: inputs, {', '.join(EXTRA_FIELDS)}")
    inputs = body.get("inputs")
    if not isinstance(inputs, dict):
        raise InputError("inputs", "required (an object with geometry, start, end, purpose)")
    extra = {k: body[k] for k in EXTRA_FIELDS if body.get(k) not in (None, "")}
    for name in ("applicant_name", "address"):
        if name in extra and (not isinstance(extra[name], str) or len(extra[name]) > 200):
            raise InputError(name, "must be text of at most 200 characters")
    if "channel" in extra and extra["channel"] not in CHANNELS:
        raise InputError("channel", f"unknown channel {extra['channel']!r}; codes: {', '.join(CHANNELS)}")
    return inputs, extra


def _sidewalk_width(store: Store, report: dict, extra: dict) -> float:
    """The nominal width of the sidewalk the occupancy lies on (the widest one touched), else the form's."""
    widths = []
    for sid in report.get("sidewalk_ids") or []:
        found = store.get("sidewalks", sid)
        if len(found) and pd.notna(found["width_m"].iloc[0]):
            widths.append(float(found["width_m"].iloc[0]))
    if widths:
        return max(widths)
    value = extra.get("sidewalk_width_m")
    try:
        width = float(value) if value is not None else None
    except (TypeError, ValueError):
        width = None
    if width is None or not np.isfinite(width) or width <= 0:
        raise InputError("sidewalk_width_m", "the occupancy lies on no mapped sidewalk: give the sidewalk's "
                                             "width in metres")
    return width


def _row(permit_no: str, proposal: Proposal, report: dict, extra: dict, width: float,
         previous: pd.Series | None) -> dict:
    def kept(name: str):
        if name in extra:
            return extra[name]
        return None if previous is None or pd.isna(previous[name]) else previous[name]

    streets = report.get("streets") or []
    return {
        "permit_no": permit_no,
        "ward_code": report.get("ward_code"),
        "purpose": proposal.purpose,
        "status": NEW,
        "channel": kept("channel") or "IN_PERSON",
        "applicant_name": kept("applicant_name"),
        "address": kept("address") or (", ".join(streets) if streets else None),
        "street": streets[0] if streets else None,
        "start_on": proposal.start.isoformat(),
        "end_on": proposal.end.isoformat(),
        "sidewalk_width_m": width,
        "used_width_m": used_width(proposal.geometry),
        "construction_dossier_code": report.get("construction_dossier_code"),
    }


def _validated(store: Store, row: dict, geom, config: dict) -> gpd.GeoDataFrame:
    """The row checked as an import checks it: the accepted frame, or :class:`InputError` with the reason."""
    source = Source(path=Path("occupancy.geojson"), kind="vector", frame=pd.DataFrame([row]),
                    rows=np.array([1]), geometry=np.array([geom], dtype=object), crs=CRS.from_user_input(STORE_CRS))
    checked = prepare_import("sidewalk_permits", source, calendar=config["CALENDAR"], wards=store.read("wards"))
    if checked.rejected:
        reject = checked.rejects.iloc[0]
        raise InputError("inputs", f"the application cannot be filed: {reject['reason']} ({reject['detail']})")
    return checked.frame.reset_index(drop=True)


def save(store: Store, body: dict, config: dict, *, permit_no: str | None = None,
         today: dt.date | None = None) -> Saved:
    """File the occupancy of ``body`` as a new application, or change application ``permit_no`` (still NEW).

    The check runs again under the writers' lock, so its clashes include
    every permit saved before; the permit and its findings are then written
    in one transaction.
    """
    inputs, extra = _split(body)
    proposal = parse_proposal(inputs, limits=limits(config))
    with store.write_lock():
        previous = None
        if permit_no is not None:
            found = store.get("sidewalk_permits", permit_no)
            if found.empty:
                raise NotFound(f"no sidewalk permit {permit_no!r}")
            previous = found.iloc[0]
            if previous["status"] != NEW:
                raise RequestError(409, "NotEditable", f"permit {permit_no} has status {previous['status']}; "
                                   "only applications with status NEW are changed here")
        report = check_occupancy(store, proposal, rules=rules(config), personal=True, exclude=permit_no)
        number = permit_no or new_permit_no(store, (today or dt.date.today()).year)
        row = _row(number, proposal, report, extra, _sidewalk_width(store, report, extra), previous)
        frame = _validated(store, row, proposal.geometry, config)
        change = incremental.write_with_findings(store, {"sidewalk_permits": frame}) or \
            incremental.FindingsChange(incremental.empty_findings(), [])
        # the permit's clashes as stored now (a finding written before and unchanged is not in ``change``)
        near = store.read_boxes("findings", np.asarray([shapely.bounds(proposal.geometry)]))
    near = near[(near["kind"] == "CLASH") & ((near["a_id"] == number) | (near["b_id"] == number))]
    clashes = sorted({str(b) if a == number else str(a) for a, b in zip(near["a_id"], near["b_id"], strict=True)})
    return Saved(number, permit_no is None, report, len(change.findings), len(change.stale), clashes)


#: How deep (m) the strip offered in front of a parcel reaches into the sidewalk.
FRONTAGE_DEPTH_M = 1.5
#: How far (m) from a parcel sidewalks are looked for.
FRONTAGE_REACH_M = 10.0


def frontage(store: Store, dossier_code: str, depth: float = FRONTAGE_DEPTH_M):
    """A starting occupancy for dossier ``dossier_code``: the sidewalk within ``depth`` of its parcel (EPSG:5899).

    The largest such piece when the parcel fronts several sidewalks;
    :class:`NotFound` when the dossier is unknown or fronts no sidewalk.
    """
    found = store.get("construction_permits", dossier_code)
    if found.empty or found.geometry.iloc[0] is None or found.geometry.iloc[0].is_empty:
        raise NotFound(f"no dossier {dossier_code!r} with a parcel")
    parcel = found.geometry.iloc[0]
    x0, y0, x1, y1 = parcel.bounds
    box = shapely.box(x0 - FRONTAGE_REACH_M, y0 - FRONTAGE_REACH_M, x1 + FRONTAGE_REACH_M, y1 + FRONTAGE_REACH_M)
    lon0, lat0, lon1, lat1 = geo.transform([box], STORE_CRS, WEB_CRS)[0].bounds
    sidewalks = store.read("sidewalks", Filter(bbox=(lon0, lat0, lon1, lat1)))
    if not len(sidewalks):
        raise NotFound(f"dossier {dossier_code!r}: no sidewalk within {FRONTAGE_REACH_M:g} m of its parcel")
    strip = shapely.difference(shapely.intersection(shapely.union_all(sidewalks.geometry.values),
                                                    shapely.buffer(parcel, depth, join_style="mitre")), parcel)
    parts = [p for p in shapely.get_parts(strip) if shapely.area(p) > 0.01]
    if not parts:
        raise NotFound(f"dossier {dossier_code!r}: its parcel fronts no sidewalk")
    return max(parts, key=shapely.area)
