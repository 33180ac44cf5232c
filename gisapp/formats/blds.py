"""BLDS (Building & Land Development Specification, permitdata.org) 1.x open-data files: pure mapping and CSV.

Two datasets, each a CSV in UTF-8 (no byte-order mark), dates ``YYYY-MM-DD``,
text that a spreadsheet would run as a formula made inert
(:mod:`gisapp.formulas`), never a personal field (owner or applicant names,
ID numbers):

- ``permits``: the Core Permits dataset, one row per construction dossier
  (``PermitNum`` = ``dossier_code``) and per sidewalk-use permit
  (``permit_no``), columns :data:`PERMIT_COLUMNS`;
- ``status_changes``: the Permit Status Change dataset, one row per earlier
  status of a permit (every history row but the last of each permit, whose
  status is the permits file's ``StatusCurrent``), columns
  :data:`STATUS_CHANGE_COLUMNS`.

:data:`DATASETS` lists them by name with the function that builds each from
a store; another dataset (inspections) is one more entry.  Our status codes
map to BLDS's ``StatusCurrentMapped`` values by :data:`STATUS_MAPPED` (the
README prints it).  Vietnam has no state and the data no ZIP codes:
``OriginalState`` and ``OriginalZip`` are empty; nor fees: ``Fee`` is empty.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely

from gisapp import domain, geo
from gisapp.formulas import defuse

#: Core Permits: the required fields, then the recommended ones the data has (in the issue's order).
PERMIT_COLUMNS = ("PermitNum", "Description", "AppliedDate", "IssuedDate", "CompletedDate", "StatusCurrent",
                  "OriginalAddress1", "OriginalCity", "OriginalState", "OriginalZip",
                  "PermitClass", "PermitType", "StatusCurrentMapped", "StatusDate", "Latitude", "Longitude",
                  "PIN", "Link", "Fee")
#: The Permit Status Change dataset.
STATUS_CHANGE_COLUMNS = ("PermitNum", "StatusPrevious", "StatusPreviousDate", "StatusPreviousMapped")

#: Our status codes → BLDS ``StatusCurrentMapped`` (the specification's fixed list of values).
STATUS_MAPPED = {
    "NEW": "Application Accepted",
    "RECEIVED": "Application Accepted",
    "NOT_ACCEPTED": "Permit Cancelled",
    "PROCESSING": "In Review",
    "SUPPLEMENT_REQUESTED": "In Review",
    "FEE_PENDING": "Fees/Payment",
    "RESULT_READY": "Permit Issued",
    "REFUSED": "Permit Cancelled",
    "WITHDRAWN": "Permit Cancelled",
    "SUSPENDED": "In Review",
    "RETURNED": "Permit Issued",
}
#: Every value BLDS 1.x allows in ``StatusCurrentMapped``.
BLDS_MAPPED_VALUES = ("Application Accepted", "Fees/Payment", "In Review", "Permit Issued", "Inspection Phase",
                      "Permit Finaled", "Permit Finaled with Conditions", "Occupancy", "Appeal", "Permit Cancelled")
#: The city every address lies in (BLDS ``OriginalCity``).
CITY = "Đà Nẵng"
PERMITS_LAYER, SIDEWALK_LAYER = "construction_permits", "sidewalk_permits"
#: Fields read from the store (never a personal one).
_PERMIT_FIELDS = ["dossier_code", "ward_code", "status", "procedure", "work_category", "received_on",
                  "completed_on", "issued_on", "site_address", "map_sheet_no", "parcel_no", "floors",
                  "floor_area_m2"]
_SIDEWALK_FIELDS = ["permit_no", "ward_code", "purpose", "status", "address", "start_on", "end_on",
                    "used_width_m", "sidewalk_width_m", "used_area_m2"]


class BLDSSource(Protocol):
    """What the BLDS files are read from: a store (:class:`gisapp.store.Store`; this room cannot import it)."""

    def read_arrow(self, layer: str, flt=None, *, fields: list[str] | None = None, limit: int | None = None,
                   offset: int = 0) -> pa.Table | None:
        """Matching features in one Arrow table with WKB ``geometry`` (:meth:`gisapp.store.Store.read_arrow`)."""

    def status_history(self, layer: str, keys: list[str] | None = None) -> pd.DataFrame:
        """The stored status changes of a layer (:meth:`gisapp.store.Store.status_history`)."""


def mapped(statuses) -> np.ndarray:
    """``StatusCurrentMapped`` of our status codes (empty text for an unknown one)."""
    return np.array([STATUS_MAPPED.get(s, "") if isinstance(s, str) else "" for s in statuses], dtype=object)


def _iso(values) -> np.ndarray:
    """Dates as ``YYYY-MM-DD`` text, ``""`` where missing."""
    days = pd.to_datetime(pd.Series(values))
    return days.dt.strftime("%Y-%m-%d").fillna("").to_numpy(dtype=object)


def _text(values) -> np.ndarray:
    return pd.Series(values, dtype=object).map(lambda v: "" if v is None or v is pd.NA or
                                               (isinstance(v, float) and np.isnan(v)) else str(v)).to_numpy()


def _lon_lat(wkb) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 longitude and latitude (7 decimals) of a point inside each EPSG:5899 geometry (NaN when none)."""
    geoms = shapely.from_wkb(np.asarray(wkb, dtype=object))
    points = shapely.point_on_surface(geoms)
    present = ~(shapely.is_missing(points) | shapely.is_empty(points))
    lon, lat = np.full(len(points), np.nan), np.full(len(points), np.nan)
    if present.any():
        moved = geo.transform(points[present])
        lon[present], lat[present] = np.round(shapely.get_x(moved), 7), np.round(shapely.get_y(moved), 7)
    return lon, lat


def _last_changes(history: pd.DataFrame) -> pd.DataFrame:
    """The last change of each key (``key``, ``changed_on``) and the first (``first_on``) of a history frame."""
    if not len(history):
        return pd.DataFrame({"key": [], "changed_on": [], "first_on": [], "issued_on": []})
    ordered = history.sort_values(["key", "changed_on", "changed_at", "seq"], kind="stable")
    last = ordered.drop_duplicates("key", keep="last")[["key", "changed_on"]]
    first = ordered.drop_duplicates("key", keep="first")[["key", "changed_on"]]
    first = first.rename(columns={"changed_on": "first_on"})
    granted = ordered[ordered["status"].isin(["RESULT_READY", "RETURNED"])].drop_duplicates("key", keep="first")
    issued = granted[["key", "changed_on"]].rename(columns={"changed_on": "issued_on"})
    return last.merge(first, on="key", how="left").merge(issued, on="key", how="left")


def dossier_permits(table: pa.Table, history: pd.DataFrame, link: Callable[[str], str]) -> pd.DataFrame:
    """BLDS permit rows of construction dossiers (an Arrow table of :data:`_PERMIT_FIELDS` and ``geometry``)."""
    frame = table.drop_columns(["geometry"]).to_pandas(date_as_object=False)
    lon, lat = _lon_lat(table.column("geometry").to_numpy(zero_copy_only=False))
    last = _last_changes(history).set_index("key")
    code = frame["dossier_code"].astype(str)
    status_date = code.map(last["changed_on"]) if len(last) else pd.Series(pd.NaT, index=frame.index)
    fallback = frame["completed_on"].where(frame["completed_on"].notna(), frame["received_on"])
    floors = frame["floors"].astype("Float64")
    area = frame["floor_area_m2"].astype("Float64")
    description = [
        ", ".join(p for p in (domain.label("procedure", proc, "en"), domain.label("work_category", cat, "en").lower(),
                              f"{int(f)} floors" if pd.notna(f) else "",
                              f"{a:g} m² floor area" if pd.notna(a) else "") if p)
        for proc, cat, f, a in zip(frame["procedure"], frame["work_category"], floors, area, strict=True)]
    sheet, parcel = _text(frame["map_sheet_no"]), _text(frame["parcel_no"])
    pin = np.where((sheet != "") & (parcel != ""), _text(frame["ward_code"]) + "-" + sheet + "-" + parcel, "")
    return pd.DataFrame({
        "PermitNum": code.to_numpy(dtype=object),
        "Description": np.array(description, dtype=object),
        "AppliedDate": _iso(frame["received_on"]),
        "IssuedDate": _iso(frame["issued_on"]),
        "CompletedDate": _iso(frame["completed_on"]),
        "StatusCurrent": _text(frame["status"]),
        "OriginalAddress1": _text(frame["site_address"]),
        "OriginalCity": CITY, "OriginalState": "", "OriginalZip": "",
        "PermitClass": np.array([domain.label("work_category", c, "en") for c in frame["work_category"]], object),
        "PermitType": np.array([domain.label("procedure", p, "en") for p in frame["procedure"]], dtype=object),
        "StatusCurrentMapped": mapped(frame["status"]),
        "StatusDate": _iso(status_date.where(status_date.notna(), fallback)),
        "Latitude": lat, "Longitude": lon,
        "PIN": pin,
        "Link": np.array([link(c) for c in code], dtype=object),
        "Fee": "",
    }, columns=list(PERMIT_COLUMNS))


def sidewalk_permits(table: pa.Table, history: pd.DataFrame, link: Callable[[str], str]) -> pd.DataFrame:
    """BLDS permit rows of sidewalk-use permits: applied and issued dates from their history."""
    frame = table.drop_columns(["geometry"]).to_pandas(date_as_object=False)
    lon, lat = _lon_lat(table.column("geometry").to_numpy(zero_copy_only=False))
    last = _last_changes(history).set_index("key")
    key = frame["permit_no"].astype(str)

    def of(column):
        return key.map(last[column]) if len(last) else pd.Series(pd.NaT, index=frame.index)

    description = [
        f"Temporary use of part of the sidewalk: {domain.label('purpose', p, 'en').lower()}, "
        f"{start:%Y-%m-%d} to {end:%Y-%m-%d}" + (f", {u:g} m of {w:g} m wide" if pd.notna(u) and pd.notna(w) else "")
        for p, start, end, u, w in zip(frame["purpose"], frame["start_on"], frame["end_on"], frame["used_width_m"],
                                       frame["sidewalk_width_m"], strict=True)]
    return pd.DataFrame({
        "PermitNum": key.to_numpy(dtype=object),
        "Description": np.array(description, dtype=object),
        "AppliedDate": _iso(of("first_on")),
        "IssuedDate": _iso(of("issued_on")),
        "CompletedDate": "",
        "StatusCurrent": _text(frame["status"]),
        "OriginalAddress1": _text(frame["address"]),
        "OriginalCity": CITY, "OriginalState": "", "OriginalZip": "",
        "PermitClass": "Sidewalk use",
        "PermitType": np.array([domain.label("purpose", p, "en") for p in frame["purpose"]], dtype=object),
        "StatusCurrentMapped": mapped(frame["status"]),
        "StatusDate": _iso(of("changed_on")),
        "Latitude": lat, "Longitude": lon,
        "PIN": "",
        "Link": np.array([link(c) for c in key], dtype=object),
        "Fee": "",
    }, columns=list(PERMIT_COLUMNS))


def status_changes(history: pd.DataFrame) -> pd.DataFrame:
    """Permit Status Change rows: every history row but the last of each permit (that one is current)."""
    if not len(history):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in STATUS_CHANGE_COLUMNS})
    ordered = history.sort_values(["layer", "key", "changed_on", "changed_at", "seq"], kind="stable")
    earlier = ordered[ordered.duplicated(["layer", "key"], keep="last")]
    return pd.DataFrame({
        "PermitNum": _text(earlier["key"]),
        "StatusPrevious": _text(earlier["status"]),
        "StatusPreviousDate": _iso(earlier["changed_on"]),
        "StatusPreviousMapped": mapped(earlier["status"]),
    }, columns=list(STATUS_CHANGE_COLUMNS))


def _layer_permits(store: BLDSSource, layer: str, link: Callable[[str], str]) -> pd.DataFrame | None:
    fields = _PERMIT_FIELDS if layer == PERMITS_LAYER else _SIDEWALK_FIELDS
    table = store.read_arrow(layer, fields=fields)
    if table is None:
        return None
    build = dossier_permits if layer == PERMITS_LAYER else sidewalk_permits
    return build(table, store.status_history(layer), link)


def permits(store: BLDSSource, link: Callable[[str], str]) -> pd.DataFrame:
    """The Core Permits dataset of a store: dossiers, then sidewalk permits (``link(key)``: each one's page)."""
    parts = [p for p in (_layer_permits(store, name, link) for name in (PERMITS_LAYER, SIDEWALK_LAYER))
             if p is not None]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(PERMIT_COLUMNS))


def permit_status_changes(store: BLDSSource, link: Callable[[str], str]) -> pd.DataFrame:
    """The Permit Status Change dataset of a store."""
    return status_changes(pd.concat([store.status_history(PERMITS_LAYER), store.status_history(SIDEWALK_LAYER)],
                                    ignore_index=True))


#: The BLDS datasets gisapp publishes: file name (without ``.csv``) → (its builder, its columns).
DATASETS: dict[str, tuple[Callable[[BLDSSource, Callable[[str], str]], pd.DataFrame], tuple[str, ...]]] = {
    "permits": (permits, PERMIT_COLUMNS),
    "status_changes": (permit_status_changes, STATUS_CHANGE_COLUMNS),
}


def to_csv(frame: pd.DataFrame) -> bytes:
    """A BLDS dataset as CSV bytes: UTF-8, a header, text made inert for spreadsheets (numbers as they are)."""
    out = frame.copy()
    for name in out.columns:
        if not pd.api.types.is_numeric_dtype(out[name]):
            out[name] = defuse(pa.array(_text(out[name]), pa.string())).to_pylist()
    buf = io.StringIO()
    out.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def dataset_csv(store: BLDSSource, name: str, link: Callable[[str], str]) -> bytes:
    """The CSV bytes of the dataset ``name`` (:data:`DATASETS`) of a store."""
    build, columns = DATASETS[name]
    frame = build(store, link)
    return to_csv(frame[list(columns)])

