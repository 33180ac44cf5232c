"""Importing an office's own data into a store, validated, with nothing lost.

The core of ``gisapp import`` and, later, of an upload page; it knows
nothing of click or Flask.  :func:`run_import` reads a file, checks every
row and writes the accepted ones; :func:`prepare_import` does the checking
alone, as a pure function of the rows read and the store's wards.

Every row read is either accepted or rejected with a reason (one of
:data:`REASONS`), so ``accepted + rejected == read`` always.  Rejected rows
keep their original columns plus ``row`` (the row number in the source
file, see :mod:`gisapp.importing.read`), ``reason`` (the first of the
row's problems, in the order of :data:`REASONS`) and ``detail`` (all of
them).  A declared ward that disagrees with the ward the geometry lies in
is kept and flagged (a warning), not rejected.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from gisapp import domain, geo, history, schema
from gisapp.analysis.incremental import write_with_findings
from gisapp.formulas import defuse
from gisapp.importing.read import NO_LIMITS, ImportFailure, ReadLimits, Source, load_mapping, read_source
from gisapp.importing.values import (
    PARCEL_FIELDS,
    WardRecords,
    WardRefs,
    field_aliases,
    known_header_keys,
    match_columns,
    parcel_aliases,
    parcel_key,
    parse_codes,
    parse_dates,
    parse_numbers,
    resolve_wards,
    to_text,
)
from gisapp.progress import SILENT, Progress
from gisapp.schema import STORE_CRS, Layer
from gisapp.store import Store

__all__ = [
    "IMPORTABLE_LAYERS", "REASONS", "ImportFailure", "ImportReport", "ReadLimits", "prepare_import",
    "rejects_path", "run_import", "write_rejects",
]

#: Layers an office can import.
IMPORTABLE_LAYERS = ("wards", "construction_permits", "sidewalk_permits", "sidewalks")
#: Steps of the checks that :func:`prepare_import` reports (fields, geometries, wards, computed fields, summary).
CHECK_STEPS = 6

MISSING = "missing required field"
UNKNOWN_CODE = "unknown code or label"
BAD_DATE = "unparseable date"
BAD_NUMBER = "not a valid number"
END_BEFORE_START = "end before start"
DUPLICATE = "duplicate key within the file"
NO_PARCEL = "no matching parcel"
GEOMETRY_EMPTY = "geometry empty"
NOT_POLYGON = "geometry not a polygon"
INVALID_GEOMETRY = "geometry invalid beyond repair"
OUTSIDE_WARDS = "outside every ward"
INVALID_VALUE = "invalid value"

#: Every reason a row can be rejected for, in the order that picks a row's ``reason``.
REASONS = (MISSING, UNKNOWN_CODE, BAD_DATE, BAD_NUMBER, END_BEFORE_START, DUPLICATE, NO_PARCEL,
           GEOMETRY_EMPTY, NOT_POLYGON, INVALID_GEOMETRY, OUTSIDE_WARDS, INVALID_VALUE,
           # a status history's rows (gisapp/importing/statuses.py)
           history.UNKNOWN_KEY, history.BEFORE_RECEIPT, history.SAME_TIME)
_RANK = {reason: i for i, reason in enumerate(REASONS)}

#: A polygon is repaired with ``make_valid`` when its area changes by less than this fraction.
REPAIR_TOLERANCE = 0.01
#: Geometries compared for "unchanged" on re-import within this many metres.
_SAME_GEOMETRY_M = 1e-6


@dataclass(frozen=True)
class ImportReport:
    """What an import read, accepted, repaired and rejected, and why.

    ``frame`` holds the accepted rows with the layer's columns in
    EPSG:5899, indexed by source row number; ``rejects`` the rejected rows
    with their original columns plus ``row``, ``reason`` and ``detail``.
    ``changes`` counts ``new``, ``updated``, ``unchanged`` and ``removed``
    features against the store (filled by :func:`run_import`).
    """

    layer: str
    source: str
    detail: str
    read: int
    accepted: int
    repaired: int
    rejected: int
    rejected_by_reason: dict[str, int]
    warnings: tuple[str, ...]
    columns: dict[str, str]
    frame: gpd.GeoDataFrame
    rejects: pd.DataFrame
    ward_mismatches: pd.DataFrame
    mode: str = "upsert"
    dry_run: bool = False
    written: bool = False
    changes: dict[str, int] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        """The report as lines of text, for the command line or a page."""
        what = f"{self.source}" + (f" ({self.detail})" if self.detail else "")
        lines = [f"import {self.layer} from {what}"]
        if self.columns:
            lines.append("columns: " + ", ".join(f"{c!r} → {f}" for f, c in self.columns.items()))
        lines.append(f"read {self.read}, accepted {self.accepted} ({self.repaired} repaired), "
                     f"rejected {self.rejected}")
        if self.rejected_by_reason:
            lines.append("rejected by reason:")
            lines += [f"  {reason}: {n}" for reason, n in self.rejected_by_reason.items()]
        if self.warnings:
            lines.append("warnings:")
            lines += [f"  - {w}" for w in self.warnings]
        if self.changes:
            c = self.changes
            change = f"{c.get('new', 0)} new, {c.get('updated', 0)} updated, {c.get('unchanged', 0)} unchanged"
            if self.mode == "replace":
                change += f", {c.get('removed', 0)} removed"
            if self.dry_run:
                lines.append(f"dry run ({self.mode}): would be {change}; the store was not changed")
            elif self.written:
                lines.append(f"store updated ({self.mode}): {change}")
            else:
                lines.append(f"store not changed ({self.mode}): {change}")
        return lines

    def as_dict(self) -> dict:
        """The counts, reasons and warnings as plain data (for JSON)."""
        return {
            "layer": self.layer, "source": self.source, "detail": self.detail, "read": self.read,
            "accepted": self.accepted, "repaired": self.repaired, "rejected": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason), "warnings": list(self.warnings),
            "columns": dict(self.columns), "mode": self.mode, "dry_run": self.dry_run,
            "written": self.written, "changes": dict(self.changes),
            "ward_mismatches": int(len(self.ward_mismatches)),
        }


class _Problems:
    """Problems found so far in one import: (row positions, reason, detail texts) entries."""

    def __init__(self, n: int):
        """Room for ``n`` rows."""
        self.n = n
        self.parts: list[tuple[np.ndarray, str, list[str]]] = []
        self.fields: dict[str, np.ndarray] = {}

    def add(self, mask, reason: str, field_name: str, values=None, message: str = "", details=None) -> None:
        """Record ``reason`` for the rows in ``mask``.

        The detail text names the field, the row's value (from ``values``,
        aligned with all rows) and ``message``, or the row's own text from
        ``details`` (also aligned with all rows).
        """
        mask = np.asarray(mask, dtype=bool)
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        if details is not None:
            texts = [f"{field_name}: {t}" for t in np.asarray(details, dtype=object)[idx]]
        else:
            if values is None:
                shown = [""] * len(idx)
            else:
                picked = np.asarray(pd.Series(values).reset_index(drop=True).to_numpy(dtype=object))[idx]
                shown = [f" {_show(v)}" for v in picked]
            texts = [f"{field_name}{v}: {message or reason}" for v in shown]
        self.parts.append((idx, reason, texts))
        self.cover(mask, field_name)

    def cover(self, mask, field_name: str) -> None:
        """Mark ``field_name`` as dealt with in the rows of ``mask`` (later checks skip it)."""
        current = self.fields.get(field_name)
        mask = np.asarray(mask, dtype=bool)
        self.fields[field_name] = mask.copy() if current is None else (current | mask)

    def covered(self, field_name: str) -> np.ndarray:
        """Rows where ``field_name`` already has a problem."""
        return self.fields.get(field_name, np.zeros(self.n, dtype=bool))

    def table(self) -> pd.DataFrame:
        """One line per rejected row position: ``pos``, ``reason`` (the first) and ``detail``."""
        if not self.parts:
            return pd.DataFrame({"pos": pd.Series(dtype="int64"), "reason": pd.Series(dtype=object),
                                 "detail": pd.Series(dtype=object)})
        frames = [pd.DataFrame({"pos": idx, "rank": _RANK[reason], "reason": reason, "text": texts})
                  for idx, reason, texts in self.parts]
        all_ = pd.concat(frames, ignore_index=True).sort_values(["pos", "rank"], kind="stable")
        grouped = all_.groupby("pos", sort=True)
        return pd.DataFrame({
            "pos": grouped["pos"].first().to_numpy(),
            "reason": grouped["reason"].first().to_numpy(),
            "detail": grouped["text"].agg("; ".join).to_numpy(),
        })


def _show(value) -> str:
    """A value for a problem's detail text."""
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return "(empty)"
    if hasattr(value, "isoformat"):
        return repr(value.isoformat()[:10] if getattr(value, "hour", 0) == 0 else value.isoformat())
    if hasattr(value, "geom_type"):
        return value.geom_type
    return repr(value.item() if isinstance(value, np.generic) else value)


# -- coordinates -----------------------------------------------------------


def parse_crs(text) -> CRS:
    """A CRS from ``EPSG:N`` (or just ``N``); anything else is refused (no proj4 strings)."""
    match = re.fullmatch(r"\s*(?:epsg:)?(\d{4,6})\s*", str(text), flags=re.IGNORECASE)
    if not match:
        raise ImportFailure("import_crs_not_epsg", text=str(text))
    try:
        return CRS.from_epsg(int(match.group(1)))
    except CRSError:
        raise ImportFailure("import_crs_unknown", text=str(text), code=match.group(1)) from None


def to_store_crs(geoms: np.ndarray, crs: CRS | None, user_crs: CRS | None,
                 name: str) -> tuple[np.ndarray, str, list[str]]:
    """Geometries moved from the file's CRS (or ``user_crs`` when it has none) to EPSG:5899.

    The source CRS is identified by its EPSG code and the transformation
    is made between EPSG codes, so PROJ applies the EPSG:6960 datum shift.
    Returns the geometries, a note on the CRS used, and warnings.
    """
    warnings: list[str] = []
    if crs is None:
        if user_crs is None:
            raise ImportFailure("import_no_crs", name=name)
        source, note = f"EPSG:{user_crs.to_epsg()}", f"EPSG:{user_crs.to_epsg()} from --crs"
    else:
        code = crs.to_epsg(min_confidence=70)
        if user_crs is not None and code != user_crs.to_epsg():
            warnings.append(f"{name} declares its own CRS ({f'EPSG:{code}' if code else crs.name}); "
                            "the CRS given was ignored")
        if code:
            source, note = f"EPSG:{code}", f"EPSG:{code}"
        else:
            source, note = crs.to_wkt(), crs.name
            warnings.append(f"{name}: CRS {crs.name!r} has no EPSG code; transformed from its definition, "
                            "which may lack the VN-2000 datum shift (then ~225 m off)")
    geoms = shapely.force_2d(np.asarray(geoms, dtype=object))
    if CRS.from_user_input(source) != CRS.from_epsg(5899):
        geoms = geo.transform(geoms, source, STORE_CRS)
    outside = _outside_area_of_use(geoms)
    if outside:
        warnings.append(f"{name}: {outside} features lie outside the area of use of EPSG:5899 "
                        f"(VN-2000 / TM-3 107-45); is the file's CRS right?")
    return geoms, note, warnings


def _outside_area_of_use(geoms: np.ndarray) -> int:
    """How many geometries lie outside EPSG:5899's area of use (with a 50 km margin)."""
    present = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not present.any():
        return 0
    area = CRS.from_epsg(5899).area_of_use
    if area is None:  # PROJ's database gives EPSG:5899 one; without it the check cannot be made
        raise RuntimeError("PROJ's database has no area of use for EPSG:5899")
    lon1, lat1, lon2, lat2 = area.bounds
    box = geo.transform([shapely.segmentize(shapely.box(lon1, lat1, lon2, lat2), 0.1)], "EPSG:4326", STORE_CRS)[0]
    box = shapely.buffer(shapely.envelope(box), 50_000)
    bounds = shapely.bounds(geoms[present])
    inside = shapely.contains_xy(box, bounds[:, 0], bounds[:, 1]) & shapely.contains_xy(box, bounds[:, 2], bounds[:, 3])
    return int((~inside).sum())


# -- geometry checks -------------------------------------------------------


@dataclass(frozen=True)
class GeometryCheck:
    """Geometries after repair, and masks of what was wrong with them."""

    geoms: np.ndarray
    empty: np.ndarray
    not_polygon: np.ndarray
    beyond_repair: np.ndarray
    repaired: np.ndarray
    why: dict[int, str]

    @property
    def bad(self) -> np.ndarray:
        """Rows whose geometry cannot be used."""
        return self.empty | self.not_polygon | self.beyond_repair


def check_geometries(geoms: np.ndarray, tolerance: float = REPAIR_TOLERANCE) -> GeometryCheck:
    """Sort geometries into usable, repaired and rejected.

    Empty or missing geometries and non-polygons are flagged; invalid
    polygons are repaired with ``make_valid`` (structure method) when the
    result is a valid polygon whose area differs by less than ``tolerance``
    (a fraction) from the original, else flagged as beyond repair.
    Collections made only of polygons count as multipolygons.
    """
    g = shapely.force_2d(np.asarray(geoms, dtype=object)).copy()
    n = len(g)
    empty = shapely.is_missing(g) | shapely.is_empty(g)
    types = shapely.get_type_id(g)
    for i in np.flatnonzero((types == 7) & ~empty):
        parts = shapely.get_parts(g[i])
        if len(parts) and np.isin(shapely.get_type_id(parts), (3, 6)).all():
            g[i] = shapely.multipolygons(shapely.get_parts(parts))
    types = shapely.get_type_id(g)
    not_polygon = ~empty & ~np.isin(types, (3, 6))
    candidates = ~empty & ~not_polygon
    valid = np.zeros(n, dtype=bool)
    valid[candidates] = shapely.is_valid(g[candidates])
    invalid = candidates & ~valid
    repaired = np.zeros(n, dtype=bool)
    beyond = np.zeros(n, dtype=bool)
    why: dict[int, str] = {}
    idx = np.flatnonzero(invalid)
    if len(idx):
        before = shapely.area(g[idx])
        fixed = np.array([_polygonal(f) for f in shapely.make_valid(g[idx], method="structure",
                                                                    keep_collapsed=False)], dtype=object)
        after = shapely.area(fixed)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.where(before > 0, np.abs(after - before) / before, np.inf)
        ok = ~shapely.is_missing(fixed) & ~shapely.is_empty(fixed) & shapely.is_valid(fixed) & (change < tolerance)
        for j, i in enumerate(idx):
            if ok[j]:
                g[i] = fixed[j]
                repaired[i] = True
            else:
                beyond[i] = True
                pct = "∞" if not np.isfinite(change[j]) else f"{change[j]:.1%}"
                why[int(i)] = f"{shapely.is_valid_reason(geoms[i])}; make_valid changes the area by {pct}"
    return GeometryCheck(g, empty, not_polygon, beyond, repaired, why)


def _polygonal(geom):
    """The polygonal part of a geometry (a MultiPolygon), or None when it has none."""
    if geom is None:
        return None
    if shapely.get_type_id(geom) in (3, 6):
        return geom
    parts = shapely.get_parts(shapely.get_parts(geom))
    polys = parts[np.isin(shapely.get_type_id(parts), (3,))] if len(parts) else parts
    return shapely.multipolygons(polys) if len(polys) else None


# -- wards -----------------------------------------------------------------


def derive_wards(geoms: np.ndarray, dates: np.ndarray | None, index: WardRecords) -> np.ndarray:
    """The ward code of each geometry: the ward in force at its date that it overlaps most.

    ``None`` where a geometry is missing or overlaps no ward in force (a
    mere touch does not count).  Vectorised: an R-tree query, then exact
    intersection areas only for geometries that cross a ward boundary.
    """
    geoms = np.asarray(geoms, dtype=object)
    out = np.full(len(geoms), None, dtype=object)
    if not len(index) or not len(geoms):
        return out
    present = np.flatnonzero(~(shapely.is_missing(geoms) | shapely.is_empty(geoms)))
    if not len(present):
        return out
    tree = shapely.STRtree(index.geoms)
    q, w = tree.query(geoms[present], predicate="intersects")
    rows = present[q]
    if dates is not None:
        dates = np.asarray(dates).astype("datetime64[D]")
        keep = np.zeros(len(rows), dtype=bool)
        for r in np.unique(w):
            m = w == r
            keep[m] = index.in_force(int(r), dates[rows[m]])
        rows, w = rows[keep], w[keep]
    area = np.zeros(len(rows))
    for r in np.unique(w):
        m = np.flatnonzero(w == r)
        ward = index.geoms[r]
        shapely.prepare(ward)
        parts = geoms[rows[m]]
        inside = shapely.contains_properly(ward, parts)
        a = shapely.area(parts)
        cross = np.flatnonzero(~inside)
        if len(cross):
            a[cross] = shapely.area(shapely.intersection(parts[cross], ward))
        area[m] = a
    order = np.lexsort((-area, rows))
    rows_sorted = rows[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = rows_sorted[1:] != rows_sorted[:-1]
    best = order[first]
    best = best[area[best] > 0]
    out[rows[best]] = index.codes[w[best]]
    return out


def _ward_names(codes: np.ndarray, index: WardRecords) -> np.ndarray:
    """Folded ward names of ``codes`` (None where unknown)."""
    by_code: dict = {}
    for c, nm in zip(index.codes, index.names):
        by_code.setdefault(c, nm)
    return np.array([by_code.get(c) if c is not None else None for c in codes], dtype=object)


# -- parcels ---------------------------------------------------------------


@dataclass(frozen=True)
class ParcelTable:
    """Parcel polygons (EPSG:5899) with their ward reference, map sheet and parcel keys."""

    sheet: np.ndarray
    parcel: np.ndarray
    wards: WardRefs
    has_ward: bool
    geoms: np.ndarray
    warnings: tuple[str, ...]

    def __len__(self) -> int:
        """Number of parcels."""
        return len(self.sheet)


def build_parcels(source: Source, index: WardRecords, user_crs: CRS | None,
                  mapping: dict[str, str] | None = None) -> ParcelTable:
    """The parcels of a vector file, keyed by ward + map sheet + parcel number.

    Columns are recognised like a dossier list's (``Tờ bản đồ số``,
    ``map_sheet_``, ``SoHieuToBanDo``…).  A ward column is optional: without
    it each parcel's ward comes from its geometry.  Parcels listed twice
    under the same key are merged into one polygon.
    """
    name = source.path.name
    if source.geometry is None:
        raise ImportFailure("import_parcels_no_geometry", name=name)
    match = match_columns(source.frame.columns, parcel_aliases(schema.CONSTRUCTION_PERMITS),
                          {k: v for k, v in (mapping or {}).items() if v in PARCEL_FIELDS})
    missing = [f for f in ("map_sheet_no", "parcel_no") if f not in match.columns]
    if missing:
        raise ImportFailure("import_parcels_no_column", name=name, fields=" and ".join(missing),
                            columns=", ".join(map(str, source.frame.columns)))
    geoms, _, warnings = to_store_crs(source.geometry, source.crs, user_crs, name)
    sheet = parcel_key(source.frame[match.columns["map_sheet_no"]]).to_numpy(dtype=object)
    parcel = parcel_key(source.frame[match.columns["parcel_no"]]).to_numpy(dtype=object)
    has_ward = "ward_code" in match.columns
    if has_ward:
        refs = resolve_wards(source.frame[match.columns["ward_code"]], index)
    else:
        none = np.full(len(sheet), None, dtype=object)
        refs = WardRefs(none, none.copy(), np.zeros(len(sheet), bool), np.zeros(len(sheet), bool))
    if has_ward:
        ident = pd.Series(np.where(pd.notna(refs.codes), refs.codes, refs.names), dtype=object)
        keys = pd.DataFrame({"w": ident.fillna(""), "s": sheet, "p": parcel})
        dup = keys.duplicated(keep=False).to_numpy() & pd.notna(ident).to_numpy()
        if dup.any():
            groups = keys[dup].groupby(["w", "s", "p"], sort=False).indices
            drop = []
            for members in groups.values():
                pos = np.flatnonzero(dup)[members]
                geoms[pos[0]] = shapely.union_all(geoms[pos])
                drop.extend(pos[1:])
            keep = np.setdiff1d(np.arange(len(sheet)), drop)
            warnings.append(f"parcels file {name}: {len(groups)} parcel numbers appear more than once "
                            "in the same ward and sheet; their polygons were merged")
            sheet, parcel, geoms = sheet[keep], parcel[keep], geoms[keep]
            refs = WardRefs(refs.codes[keep], refs.names[keep], refs.present[keep], refs.unresolved[keep])
    return ParcelTable(sheet, parcel, refs, has_ward, geoms, tuple(warnings + list(match.warnings)))


def join_parcels(refs: WardRefs, sheet: np.ndarray, parcel: np.ndarray, dates: np.ndarray,
                 parcels: ParcelTable, index: WardRecords) -> tuple[np.ndarray, np.ndarray]:
    """The parcel polygon of each dossier, by ward + map sheet + parcel number.

    Candidates share sheet and parcel; the ward then decides (by code, else
    by name; parcels without a ward column take the ward their polygon lies
    in at the dossier's date).  A dossier without a ward takes the parcel
    when only one has its sheet and number.  Returns the geometries (None
    where no single parcel fits) and, for those, why.
    """
    n = len(sheet)
    geoms = np.full(n, None, dtype=object)
    why = np.full(n, None, dtype=object)
    has_keys = pd.notna(sheet) & pd.notna(parcel)
    why[~has_keys] = "no map sheet or parcel number to look the parcel up by"
    d = pd.DataFrame({"pos": np.flatnonzero(has_keys), "s": sheet[has_keys], "p": parcel[has_keys]})
    p = pd.DataFrame({"pidx": np.arange(len(parcels)), "s": parcels.sheet, "p": parcels.parcel}).dropna()
    cand = d.merge(p, on=["s", "p"], how="inner")
    pos = cand["pos"].to_numpy()
    pidx = cand["pidx"].to_numpy()
    dcode, dname = refs.codes[pos], refs.names[pos]
    if parcels.has_ward:
        pcode, pname = parcels.wards.codes[pidx], parcels.wards.names[pidx]
    else:
        pcode = derive_wards(parcels.geoms[pidx], dates[pos] if dates is not None else None, index)
        pname = _ward_names(pcode, index)
    both = pd.notna(dcode) & pd.notna(pcode)
    names = pd.notna(dname) & pd.notna(pname)
    same = np.where(both, dcode == pcode, np.where(names, dname == pname, True)).astype(bool)
    count = np.bincount(pos[same], minlength=n)
    candidates = np.bincount(pos, minlength=n)
    single = same & (count[pos] == 1)
    geoms[pos[single]] = parcels.geoms[pidx[single]]
    looked = has_keys & (count != 1)
    for i in np.flatnonzero(looked):
        where = f"sheet {sheet[i]}, parcel {parcel[i]}"
        if candidates[i] == 0:
            why[i] = f"no parcel with {where} in the parcels file"
        elif count[i] == 0:
            why[i] = f"{candidates[i]} parcels with {where}, none in the dossier's ward"
        else:
            why[i] = f"{count[i]} parcels with {where}; the ward does not tell them apart"
    return geoms, why


# -- the import ------------------------------------------------------------


def importable_layer(name: str) -> Layer:
    """The layer ``name`` if it can be imported, else :class:`ImportFailure`."""
    if name not in IMPORTABLE_LAYERS:
        raise ImportFailure("import_unknown_layer", layer=str(name), layers=", ".join(IMPORTABLE_LAYERS))
    return schema.get_layer(name)


def _check_mapping(layer: Layer, mapping: dict[str, str]) -> None:
    """Refuse a mapping that names a field the layer does not have."""
    allowed = set(layer.field_names) | set(PARCEL_FIELDS)
    bad = sorted({v for v in mapping.values() if v and v not in allowed})
    if bad:
        raise ImportFailure("import_mapping_unknown_field", fields=", ".join(map(repr, bad)), layer=layer.name,
                            known=", ".join(layer.field_names))


def _reason_of(message: str) -> str:
    """The rejection reason of a :func:`gisapp.schema.validate` message."""
    rules = (("required", MISSING), ("not a number", BAD_NUMBER), ("not a whole number", BAD_NUMBER),
             ("must not be negative", BAD_NUMBER), ("not a date", BAD_DATE), ("unknown code", UNKNOWN_CODE),
             ("duplicate", DUPLICATE), ("end date before", END_BEFORE_START),
             ("geometry is empty", GEOMETRY_EMPTY), ("geometry is not a polygon", NOT_POLYGON),
             ("invalid geometry", INVALID_GEOMETRY))
    return next((reason for prefix, reason in rules if message.startswith(prefix)), INVALID_VALUE)


def _rows_text(rows: np.ndarray, limit: int = 10) -> str:
    """``"rows 3, 7, 9"`` with at most ``limit`` numbers."""
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return f"row{'s' if len(rows) > 1 else ''} {shown}{', …' if len(rows) > limit else ''}"


def prepare_import(layer: str, source: Source, *, calendar: domain.Calendar, parcels: Source | None = None,
                   wards=None, crs=None, mapping=None, progress: Progress = SILENT) -> ImportReport:
    """Check the rows of ``source`` for ``layer``: accepted, repaired, rejected (pure).

    ``wards`` is the store's wards layer (a frame or a
    :class:`~gisapp.importing.values.WardRecords`), used to resolve ward names
    and derive wards from geometry; ``parcels`` a vector source of parcel
    polygons for a table of dossiers; ``crs`` an EPSG code for files that
    have no CRS; ``mapping`` a ``{source column: field}`` dict or file.
    ``progress`` hears ``("check", step, CHECK_STEPS, "steps")``: the checks
    are vectorised over all rows, so they advance by step, not by row.
    """
    lay = importable_layer(layer)
    mapping = load_mapping(mapping)
    _check_mapping(lay, mapping)
    user_crs = parse_crs(crs) if crs else None
    index = wards if isinstance(wards, WardRecords) else WardRecords.from_frame(wards)
    n = len(source)
    frame = source.frame.reset_index(drop=True)
    match = match_columns(frame.columns, field_aliases(lay), mapping)
    warnings = [*source.warnings, *match.warnings, *_absent_columns(lay, match, frame)]
    problems = _Problems(n)
    progress("check", 0, CHECK_STEPS, "steps")
    values = _parse_fields(lay, frame, match, problems)
    progress("check", 1, CHECK_STEPS, "steps")
    dates = values[lay.date_field].to_numpy() if lay.date_field in values \
        else np.full(n, np.datetime64("NaT"), dtype="datetime64[ms]")
    ward_col = frame[match.columns["ward_code"]] if "ward_code" in match.columns and lay.name != "wards" \
        else pd.Series([None] * n, dtype=object)
    refs = resolve_wards(ward_col, index, dates)

    if source.geometry is not None:  # a vector source (kind "vector")
        geoms, note, crs_warnings = to_store_crs(source.geometry, source.crs, user_crs, source.path.name)
        warnings += crs_warnings
        detail = ", ".join(x for x in (source.detail, f"CRS {note}") if x)
        has_geometry = np.ones(n, dtype=bool)
    else:
        parcel_source = _parcels_for(lay, source, parcels)
        geoms, has_geometry, join_warnings = _parcel_geometries(lay, frame, match, parcel_source, refs, dates,
                                                                index, user_crs, mapping, problems)
        warnings += join_warnings
        detail = ", ".join(x for x in (source.detail, f"parcels from {parcel_source.path.name}") if x)

    progress("check", 2, CHECK_STEPS, "steps")
    check = check_geometries(geoms)
    geoms = check.geoms
    progress("check", 3, CHECK_STEPS, "steps")
    problems.add(has_geometry & check.empty, GEOMETRY_EMPTY, "geometry", None, "geometry is empty or missing")
    type_names = np.full(n, None, dtype=object)
    type_names[check.not_polygon] = [_geometry_type_name(t) for t in shapely.get_type_id(geoms[check.not_polygon])]
    problems.add(has_geometry & check.not_polygon, NOT_POLYGON, "geometry", type_names, "not a polygon")
    whys = np.full(n, None, dtype=object)
    for i, text in check.why.items():
        whys[i] = text
    problems.add(has_geometry & check.beyond_repair, INVALID_GEOMETRY, "geometry", details=whys)
    usable = has_geometry & ~check.bad

    mismatches = pd.DataFrame(columns=["pos", "row", "key", "declared", "derived"])
    if lay.name != "wards":
        mismatches, ward_warnings = _settle_wards(lay, values, refs, ward_col, geoms, usable, dates, index,
                                                  source.rows, problems)
        warnings += ward_warnings
    progress("check", 4, CHECK_STEPS, "steps")
    warnings += _computed_fields(lay, values, frame, match, geoms, usable, calendar, source.rows, problems)
    _duplicates(lay, values, source.rows, problems)
    checked = _schema_checks(lay, values, geoms, problems)
    progress("check", 5, CHECK_STEPS, "steps")

    table = problems.table()
    accepted_mask = np.ones(n, dtype=bool)
    accepted_mask[table["pos"].to_numpy(dtype=int)] = False
    accepted = checked[accepted_mask].drop(columns="row")
    accepted.index = pd.Index(source.rows[accepted_mask], name="row")
    mismatches = mismatches[accepted_mask[mismatches["pos"].to_numpy(dtype=int)]].drop(columns="pos")
    if len(mismatches):
        warnings.append(f"{len(mismatches)} rows declare a ward other than the one their geometry lies in; "
                        f"kept as declared and flagged ({_rows_text(mismatches['row'].to_numpy())})")
    by_reason = table["reason"].value_counts()
    progress("check", CHECK_STEPS, CHECK_STEPS, "steps")
    return ImportReport(
        layer=lay.name, source=source.path.name, detail=detail, read=n, accepted=int(accepted_mask.sum()),
        repaired=int((check.repaired & accepted_mask).sum()), rejected=len(table),
        rejected_by_reason={r: int(by_reason[r]) for r in REASONS if r in by_reason.index},
        warnings=tuple(warnings), columns=dict(match.columns), frame=accepted,
        rejects=_rejects_frame(source, table), ward_mismatches=mismatches.reset_index(drop=True),
    )


def _absent_columns(layer: Layer, match, frame: pd.DataFrame) -> list[str]:
    """A warning naming the required fields no column was found for (the ward can be derived)."""
    absent = [f for f in layer.fields if f.required and not f.computed and f.name not in match.columns
              and not (f.name == "ward_code" and layer.name != "wards")]
    if not absent or not len(frame):
        return []
    names = ", ".join(f"{f.name} ({f.vi})" for f in absent)
    return [f"no column for required {names}; columns in the file: {', '.join(map(str, frame.columns))} "
            "— rename the file's columns to match"]


def _parse_fields(layer: Layer, frame: pd.DataFrame, match, problems: _Problems) -> dict[str, pd.Series]:
    """Each input field parsed by its type (codes, dates, numbers, text); bad values recorded."""
    values: dict[str, pd.Series] = {}
    for f in layer.fields:
        if f.name not in match.columns or f.computed or (f.name == "ward_code" and layer.name != "wards"):
            continue
        col = frame[match.columns[f.name]]
        if f.codes:
            parsed, bad = parse_codes(col, f.codes)
            problems.add(bad, UNKNOWN_CODE, f.name, col, f"not a known {f.name} code or label")
        elif f.type == "date":
            parsed, bad = parse_dates(col)
            problems.add(bad, BAD_DATE, f.name, col, "not a date (YYYY-MM-DD or dd/mm/yyyy)")
        elif f.type in ("int", "float"):
            parsed, bad = parse_numbers(col)
            problems.add(bad, BAD_NUMBER, f.name, col, "not a number")
            if f.type == "int":
                fraction = (parsed % 1 != 0).to_numpy() & parsed.notna().to_numpy()
                problems.add(fraction, BAD_NUMBER, f.name, col, "not a whole number")
        else:
            parsed = to_text(col)
        values[f.name] = parsed.reset_index(drop=True)
    return values


def _parcels_for(layer: Layer, source: Source, parcels: Source | None) -> Source:
    """The parcels file a table ``source`` needs for its polygons; refused for other layers or when missing."""
    if layer.name != "construction_permits":
        raise ImportFailure("import_needs_polygons", layer=layer.name, name=source.path.name)
    if parcels is None:
        raise ImportFailure("import_needs_parcels", name=source.path.name)
    return parcels


def _parcel_geometries(layer: Layer, frame: pd.DataFrame, match, parcels: Source,
                       refs: WardRefs, dates: np.ndarray, index: WardRecords, user_crs, mapping,
                       problems: _Problems) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Polygons of a table's rows from the parcels they name; rows without one are recorded.

    Returns the geometries, the mask of rows that got one, and warnings.
    """
    n = len(frame)
    table = build_parcels(parcels, index, user_crs, mapping)
    warnings = list(table.warnings)
    keys = {}
    for f in ("map_sheet_no", "parcel_no"):
        if f in match.columns:
            keys[f] = parcel_key(frame[match.columns[f]]).to_numpy(dtype=object)
        else:
            keys[f] = np.full(n, None, dtype=object)
            if n:
                warnings.append(f"no column for {f} ({layer.field(f).vi}): dossiers cannot be joined to parcels")
    geoms, why = join_parcels(refs, keys["map_sheet_no"], keys["parcel_no"], dates, table, index)
    no_parcel = pd.notna(why)
    problems.add(no_parcel, NO_PARCEL, "parcel", details=why)
    problems.cover(no_parcel, "geometry")
    return geoms, ~no_parcel, warnings


def _settle_wards(layer: Layer, values: dict, refs: WardRefs, ward_col: pd.Series, geoms: np.ndarray,
                  usable: np.ndarray, dates: np.ndarray, index: WardRecords, rows: np.ndarray,
                  problems: _Problems) -> tuple[pd.DataFrame, list[str]]:
    """Set ``values["ward_code"]``: the declared ward, else the one the geometry lies in.

    Rows outside every ward in force are recorded; a declared ward the
    store does not know gives way to the derived one; declared wards that
    differ from the derived ones are returned (``pos``, ``row``, ``key``,
    ``declared``, ``derived``) to be flagged.
    """
    n = len(geoms)
    warnings = []
    derived = derive_wards(np.where(usable, geoms, np.array(None, dtype=object)), dates, index)
    declared = refs.codes
    if len(index):
        problems.add(usable & pd.isna(derived), OUTSIDE_WARDS, "ward_code", None,
                     "the geometry lies in no ward in force at the row's date")
        taken = refs.unresolved & pd.notna(derived)
        if taken.any():
            example = to_text(ward_col)[taken].iloc[0]
            warnings.append(f"{int(taken.sum())} rows name a ward the store does not know (e.g. {example!r}); "
                            f"their ward was taken from the geometry ({_rows_text(rows[taken])})")
        unknown = refs.unresolved & pd.isna(derived) & ~problems.covered("ward_code")
    else:
        if n:
            warnings.append("the store has no wards: wards were neither derived from geometry nor checked "
                            "(import the wards layer first)")
        unknown = refs.unresolved
    problems.add(unknown & usable, UNKNOWN_CODE, "ward_code", ward_col, "not a known ward code or name")
    problems.cover(~usable, "ward_code")
    values["ward_code"] = pd.Series(np.where(pd.notna(declared), declared, derived), dtype=object)
    differ = pd.notna(declared) & pd.notna(derived) & (declared != derived)
    key_values = values.get(layer.key, pd.Series([None] * n)).to_numpy(dtype=object)
    mismatches = pd.DataFrame({"pos": np.flatnonzero(differ), "row": rows[differ], "key": key_values[differ],
                               "declared": declared[differ], "derived": derived[differ]})
    return mismatches, warnings


def _computed_fields(layer: Layer, values: dict, frame: pd.DataFrame, match, geoms: np.ndarray,
                     usable: np.ndarray, calendar: domain.Calendar, rows: np.ndarray,
                     problems: _Problems) -> list[str]:
    """Fill the computed fields (``ward_key``, ``due_on``, ``used_area_m2``); warnings."""
    n = len(geoms)
    warnings = []
    nat = pd.Series([pd.NaT] * n, dtype="datetime64[ms]")
    nothing = pd.Series([None] * n, dtype=object)
    if layer.name == "wards":
        vf = values.get("valid_from", nat)
        code = values.get("ward_code", nothing)
        ward_key = code.astype(object) + "-" + vf.dt.strftime("%Y-%m-%d")
        values["ward_key"] = _none_where(ward_key, code.isna() | vf.isna())
    elif layer.name == "construction_permits":
        received = values.get("received_on", nat)
        due = domain.due_date(received, values.get("procedure", nothing), values.get("work_category", nothing),
                              calendar).reset_index(drop=True)
        values["due_on"] = due
        if "due_on" in match.columns:
            given, _ = parse_dates(frame[match.columns["due_on"]])
            differs = (given.notna() & due.notna() & (given != due)).to_numpy()
            if differs.any():
                warnings.append(f"{int(differs.sum())} rows give a due date other than the statutory one; "
                                f"it was recomputed ({_rows_text(rows[differs])})")
        if "completed_on" in values:
            early = (values["completed_on"] < received).to_numpy()
            problems.add(early & ~problems.covered("completed_on"), END_BEFORE_START, "completed_on",
                         frame[match.columns["completed_on"]], "completed before it was received")
    elif layer.name == "sidewalk_permits":
        areas = np.where(usable, shapely.area(np.where(usable, geoms, np.array(None, dtype=object))), np.nan)
        values["used_area_m2"] = pd.Series(np.round(areas.astype(float), 2))
    return warnings


def _duplicates(layer: Layer, values: dict, rows: np.ndarray, problems: _Problems) -> None:
    """Record every copy of a key that appears more than once in the file."""
    key_col = values.get(layer.key)
    if key_col is None:
        return
    dup = (key_col.notna() & key_col.duplicated(keep=False)).to_numpy()
    if not dup.any():
        return
    keys = key_col[dup].to_numpy()
    rows_of = pd.Series(rows[dup]).groupby(keys).agg(list)
    details = np.full(len(key_col), None, dtype=object)
    details[dup] = [f"{_show(k)} also on row {', '.join(str(r) for r in rows_of[k] if r != own)}"
                    for k, own in zip(keys, rows[dup])]
    problems.add(dup, DUPLICATE, layer.key, details=details)


def _schema_checks(layer: Layer, values: dict, geoms: np.ndarray, problems: _Problems) -> gpd.GeoDataFrame:
    """The typed frame of all rows, after :func:`gisapp.schema.validate` found what the steps above did not."""
    n = len(geoms)
    columns = {f.name: _typed(f.type, values.get(f.name), n) for f in layer.fields}
    checked = gpd.GeoDataFrame({**columns, "geometry": geoms, "row": np.arange(n)}, geometry="geometry",
                               crs=STORE_CRS)
    groups: dict[tuple[str, str], list] = {}
    for p in schema.validate(layer, checked):  # ``row`` is the position here
        groups.setdefault((p.field, p.message), []).append(p)
    for (field_name, message), found in groups.items():
        pos = np.array([p.row for p in found], dtype=int)
        mask = np.zeros(n, dtype=bool)
        mask[pos[~problems.covered(field_name)[pos]]] = True
        details = np.full(n, None, dtype=object)
        details[pos] = [message if p.value is None else f"{_show(p.value)}: {message}" for p in found]
        problems.add(mask, _reason_of(message), field_name, details=details)
    return checked


def _typed(kind: str, values: pd.Series | None, n: int) -> pd.Series:
    """A parsed column with the dtype :func:`gisapp.schema.coerce` gives its type (cheaper than coercing)."""
    if kind == "date":
        return pd.Series([pd.NaT] * n if values is None else values, dtype="datetime64[ms]")
    if kind == "float":
        return pd.Series(np.nan if values is None else values, index=range(n), dtype="float64")
    if kind == "int":
        number = pd.Series(np.nan if values is None else values, index=range(n), dtype="float64")
        return number.where(number % 1 == 0).round().astype("Int64")
    return pd.Series([None] * n if values is None else values, dtype=object)


def _geometry_type_name(type_id) -> str:
    """The geometry type called by its shapely type id."""
    names = ("Point", "LineString", "LinearRing", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon",
             "GeometryCollection")
    return names[type_id] if 0 <= type_id < len(names) else "none"


def _none_where(series: pd.Series, mask) -> pd.Series:
    """An object Series with ``None`` where ``mask`` holds."""
    values = series.to_numpy(dtype=object, copy=True)
    values[np.asarray(mask, dtype=bool)] = None
    return pd.Series(values, dtype=object)


def _rejects_frame(source: Source, table: pd.DataFrame) -> pd.DataFrame:
    """The rejected rows: original columns, the geometry as WKT, then ``row``, ``reason``, ``detail``."""
    pos = table["pos"].to_numpy(dtype=int)
    out = source.frame.iloc[pos].reset_index(drop=True).copy()
    if source.geometry is not None:
        out["geometry_wkt"] = shapely.to_wkt(np.asarray(source.geometry, dtype=object)[pos], rounding_precision=-1)
    extra = {"row": source.rows[pos] if len(pos) else np.array([], dtype=int),
             "reason": table["reason"].to_numpy(dtype=object), "detail": table["detail"].to_numpy(dtype=object)}
    for name, column in extra.items():
        label = name if name not in out.columns else f"{name} (import)"
        out[label] = column
    return out


# -- writing ---------------------------------------------------------------


def diff_counts(layer: Layer, existing: gpd.GeoDataFrame, frame: gpd.GeoDataFrame, mode: str) -> dict[str, int]:
    """How ``frame`` would change the stored layer: new, updated, unchanged, removed features."""
    if not len(existing):
        return {"new": len(frame), "updated": 0, "unchanged": 0, "removed": 0}
    new = schema.coerce(layer, frame).reset_index(drop=True)
    old = existing.reset_index(drop=True)
    position = pd.Index(old[layer.key]).get_indexer(new[layer.key])
    found = position >= 0
    same = found.copy()
    fi, oi = np.flatnonzero(found), position[found]
    for f in layer.field_names:
        same[fi] &= _same_values(new[f].iloc[fi], old[f].iloc[oi])
    if len(fi):
        a = geo.to_multipolygons(np.asarray(new.geometry.values, dtype=object)[fi])
        b = geo.to_multipolygons(np.asarray(old.geometry.values, dtype=object)[oi])
        same[fi] &= shapely.equals_exact(a, b, tolerance=_SAME_GEOMETRY_M)
    unchanged = int(same.sum())
    return {"new": int((~found).sum()), "updated": int(found.sum()) - unchanged, "unchanged": unchanged,
            "removed": int(len(old) - found.sum()) if mode == "replace" else 0}


def _same_values(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise equality where two nulls are equal."""
    an, bn = a.isna().to_numpy(), b.isna().to_numpy()
    av, bv = a.to_numpy(dtype=object), b.to_numpy(dtype=object)
    eq = an & bn
    both = ~an & ~bn
    eq[both] = av[both] == bv[both]
    return eq


def run_import(store: Store, layer: str, path, *, calendar: domain.Calendar, parcels=None, crs=None, mapping=None,
               mode: str = "upsert", dry_run: bool = False, sheet: str | None = None,
               allow_any_driver: bool = False, limits: ReadLimits = NO_LIMITS,
               progress: Progress = SILENT) -> ImportReport:
    """Import ``path`` into ``layer`` of ``store``; write the accepted rows unless ``dry_run``.

    ``mode="upsert"`` replaces features with the same key (``dossier_code``,
    ``permit_no`` or ``ward_key``) and adds the others; ``"replace"`` swaps
    the whole layer.  Nothing is written when no row was accepted or when
    the store already holds exactly these features (a re-import is a
    no-op).  The store's write is atomic and carries the findings the
    written rows change (:func:`gisapp.analysis.incremental.write_with_findings`:
    those near the rows for an upsert, the full analysis for a replace), so
    the findings stay those of a full analysis; a store that does not exist
    yet is created.  Raises :class:`ImportFailure` for a file that cannot be
    imported at all.  Files are read only as their format
    (:func:`gisapp.importing.read.read_source`) unless ``allow_any_driver``,
    and within ``limits`` (an upload's).  ``progress`` hears the stages
    ``read`` (rows), ``check`` (steps, :func:`prepare_import`), ``compare``
    (with the stored layer) and ``write`` (rows, the store's).
    """
    if mode not in ("upsert", "replace"):
        raise ImportFailure("import_unknown_mode", mode=str(mode))
    lay = importable_layer(layer)
    exists = store.exists()
    wards = store.read("wards") if exists else None
    header_keys = known_header_keys(field_aliases(lay))
    progress("read", None, None, "rows")
    source = read_source(path, sheet=sheet, header_keys=header_keys, prefer_layer=lay.name,
                         allow_any_driver=allow_any_driver, limits=limits)
    parcel_source = None
    if parcels is not None:
        parcel_keys = known_header_keys(parcel_aliases(schema.CONSTRUCTION_PERMITS))
        parcel_source = read_source(parcels, header_keys=parcel_keys, prefer_layer="parcels",
                                    allow_any_driver=allow_any_driver, limits=limits)
    progress("read", len(source), len(source), "rows")
    report = prepare_import(lay.name, source, calendar=calendar, parcels=parcel_source, wards=wards, crs=crs,
                            mapping=mapping, progress=progress)
    progress("compare", None, None, "rows")
    if not exists:
        existing = report.frame.iloc[:0]
    elif mode == "upsert":  # only the stored rows of the keys written can change (the key's index, not a scan)
        existing = store.read_keys(lay.name, [str(k) for k in report.frame[lay.key]])
    else:
        existing = store.read(lay.name)
    changes = diff_counts(lay, existing, report.frame, mode)
    changed = changes["new"] + changes["updated"] + changes["removed"] > 0
    write = not dry_run and report.accepted > 0 and changed
    if write:  # with the findings it changes, in the same transaction (a never analysed store: the data alone)
        write_with_findings(store, {lay.name: report.frame}, mode=mode, progress=progress)
    return dataclasses.replace(report, mode=mode, dry_run=dry_run, written=write, changes=changes)


def rejects_path(path) -> Path:
    """Where the rejects of ``path`` go: ``<stem>.rejects.csv`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rejects.csv")


def write_rejects(report: ImportReport, path) -> Path:
    """Write the rejected rows to ``path`` as CSV in UTF-8 with a BOM (opens right in Excel).

    Text that a spreadsheet would run as a formula, in the values and the
    column names, is made inert as in the CSV export (:mod:`gisapp.formulas`).
    """
    path = Path(path)
    out = report.rejects.copy()
    for name in out.columns:
        if name != "row" and not pd.api.types.is_numeric_dtype(out[name]):
            out[name] = _inert(to_text(out[name]))
    out.columns = _inert(pd.Series([str(c) for c in out.columns], dtype=object)).tolist()
    out.to_csv(path, index=False, encoding="utf-8-sig")
    return path


def _inert(texts: pd.Series) -> pd.Series:
    """Text values (or ``None``) with formulas made inert by :func:`gisapp.formulas.defuse`."""
    arr = defuse(pa.array(texts.to_numpy(dtype=object), pa.string(), from_pandas=True))
    return pd.Series(arr.to_pylist(), index=texts.index, dtype=object)
