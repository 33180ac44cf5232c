"""The overlap analysis computed in PostGIS, for stores too large to read into memory.

Same findings as :func:`gisapp.analysis.overlaps.find_overlaps` (whose module
docstring defines them) from the layers of a :class:`PostGISStore`.
PostGIS does the work that grows with the data: the candidate pairs come
from ``ST_DWithin`` and ``&&`` joins on the GiST-indexed geometry columns,
with the date conditions (works periods, inclusive overlaps, gaps) in the
same SQL; invalid input is sorted out in SQL.  Python receives only the
candidate findings: it measures each pair's distance or intersection with
shapely (the same GEOS calls as the geopandas path, so values and the texts
rounded from them agree to the last digit), gives the ids
(:func:`gisapp.analysis.overlaps.finding_ids`) and Vietnamese detail texts, and
builds the summary with :func:`gisapp.analysis.overlaps.summarize`.

Wards: the ward of a finding — the ward holding the largest part of its
geometry among those in force on its date (one containing it wins, ties to
the lower key) — is found with the geopandas path's own
:class:`~gisapp.analysis.spatial.WardIndex`, on the geometries Python has
anyway, so the same geometry gets the same ward.  The ward-mismatch check
concerns every dossier, so SQL settles most of them in one set-based join of
the wards, cut into small pieces, against the dossiers' GiST index: a dossier
lying inside a piece of its declared ward, with no lower-keyed ward in force
meeting it, is in its declared ward.  Only the rest (near a boundary, or in
another ward) reach Python.

Everything runs in one REPEATABLE READ transaction, so the three layers are
read as of one moment even while an import commits; its temporary tables
go with it.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import shapely

from gisapp import geo, schema
from gisapp.analysis import overlaps as analysis
from gisapp.analysis.overlaps import KINDS, AnalysisParams, AnalysisResult
from gisapp.analysis.spatial import NAT, WardIndex
from gisapp.passage import occupancy_passages
from gisapp.store.migrations import one
from gisapp.store.postgis import PostGISStore

#: Slack on distance comparisons (as in the geopandas path).
DISTANCE_EPSILON = analysis.DISTANCE_EPSILON
#: An intersection smaller than this (m²) is a touching edge.
AREA_EPSILON = 1e-6

_PREPARE = """
-- Rows whose geometry cannot be analysed: missing, empty or invalid (the store keeps only MultiPolygons).
CREATE TEMP TABLE gisapp_bad ON COMMIT DROP AS
SELECT 'construction_permits'::text AS layer, dossier_code AS id,
       (geom IS NULL OR ST_IsEmpty(geom)) AS empty
  FROM construction_permits WHERE geom IS NULL OR ST_IsEmpty(geom) OR NOT ST_IsValid(geom)
UNION ALL
SELECT 'sidewalk_permits', permit_no, (geom IS NULL OR ST_IsEmpty(geom))
  FROM sidewalk_permits WHERE geom IS NULL OR ST_IsEmpty(geom) OR NOT ST_IsValid(geom)
UNION ALL
SELECT 'wards', ward_key, (geom IS NULL OR ST_IsEmpty(geom))
  FROM wards WHERE geom IS NULL OR ST_IsEmpty(geom) OR NOT ST_IsValid(geom);
CREATE INDEX ON gisapp_bad (layer, id);
ANALYZE gisapp_bad;

-- The wards that take part (ties of overlap go to the lower key).
CREATE TEMP TABLE gisapp_wards ON COMMIT DROP AS
SELECT ward_key, ward_code, name, valid_from, valid_to, geom FROM wards w
 WHERE ward_code IS NOT NULL AND valid_from IS NOT NULL AND (valid_to IS NULL OR valid_to >= valid_from)
   AND NOT EXISTS (SELECT 1 FROM gisapp_bad bad WHERE bad.layer = 'wards' AND bad.id = w.ward_key);
CREATE INDEX ON gisapp_wards USING gist (geom);
ANALYZE gisapp_wards;

-- The same wards cut into pieces of at most 64 vertices: a geometry inside one piece is inside
-- its ward, and a piece's box says which parcels it may meet.
CREATE TEMP TABLE gisapp_ward_parts ON COMMIT DROP AS
SELECT ward_key, ward_code, valid_from, valid_to, ST_Subdivide(geom, 64) AS geom FROM gisapp_wards;
CREATE INDEX ON gisapp_ward_parts USING gist (geom);
ANALYZE gisapp_ward_parts;
"""

#: Usable dossiers with their works period (from issue, or receipt when not issued by the as-of date).
_CONS = """WITH gisapp_cons AS (
SELECT id, declared, received, geom, works_start,
       (works_start + make_interval(months => %(months)s))::date - 1 AS works_end
  FROM (SELECT dossier_code AS id, ward_code AS declared, received_on AS received, geom,
               coalesce(CASE WHEN %(as_of)s::date IS NULL OR issued_on <= %(as_of)s::date THEN issued_on END,
                        received_on) AS works_start
          FROM construction_permits c
         WHERE received_on IS NOT NULL AND (%(as_of)s::date IS NULL OR received_on <= %(as_of)s::date)
           AND NOT EXISTS (SELECT 1 FROM gisapp_bad bad WHERE bad.layer = 'construction_permits'
                                                         AND bad.id = c.dossier_code)) c)"""


def _side_ok(s: str) -> str:
    """The condition for a usable sidewalk permit ``s``: valid geometry and period."""
    return (f"{s}.start_on IS NOT NULL AND {s}.end_on IS NOT NULL AND {s}.end_on >= {s}.start_on "
            f"AND NOT EXISTS (SELECT 1 FROM gisapp_bad bad WHERE bad.layer = 'sidewalk_permits' "
            f"AND bad.id = {s}.permit_no)")


# Queries calling GEOS select their usable features in a subquery fenced with OFFSET 0,
# so that no GEOS function ever sees an invalid geometry.

_NEAR = _CONS + f"""
SELECT f.id, f.permit_no, f.first_day - DATE '1970-01-01', f.last_day - DATE '1970-01-01', f.linked,
       ST_AsBinary(f.geom), ST_AsBinary(f.parcel)
  FROM (SELECT c.id, s.permit_no, s.geom, c.geom AS parcel,
               greatest(c.works_start, s.start_on) AS first_day, least(c.works_end, s.end_on) AS last_day,
               coalesce(s.construction_dossier_code = c.id, false) AS linked
          FROM gisapp_cons c
          JOIN sidewalk_permits s
            ON ST_DWithin(c.geom, s.geom, %(distance)s)
           AND c.works_start <= s.end_on AND s.start_on <= c.works_end
         WHERE {_side_ok("s")}
        OFFSET 0) f
"""

#: Pairs of permits whose boxes meet, at most gap_days apart (shapely decides whether they share ground).
_PAIRS = f"""
SELECT q.a_id, q.b_id, q.gap, q.first_day - DATE '1970-01-01', q.last_day - DATE '1970-01-01',
       ST_AsBinary(q.a_geom), ST_AsBinary(q.b_geom)
  FROM (SELECT a.permit_no AS a_id, b.permit_no AS b_id, a.geom AS a_geom, b.geom AS b_geom,
               greatest(a.start_on, b.start_on) - least(a.end_on, b.end_on) AS gap,
               CASE WHEN greatest(a.start_on, b.start_on) <= least(a.end_on, b.end_on)
                    THEN greatest(a.start_on, b.start_on) ELSE least(a.start_on, b.start_on) END AS first_day,
               CASE WHEN greatest(a.start_on, b.start_on) <= least(a.end_on, b.end_on)
                    THEN least(a.end_on, b.end_on) ELSE greatest(a.end_on, b.end_on) END AS last_day
          FROM sidewalk_permits a
          JOIN sidewalk_permits b
            ON a.geom && b.geom AND a.permit_no < b.permit_no
           AND greatest(a.start_on, b.start_on) - least(a.end_on, b.end_on) <= %(gap_days)s
         WHERE {_side_ok("a")} AND {_side_ok("b")}) q
"""

_CLEARANCE = f"""
SELECT s.permit_no, s.start_on - DATE '1970-01-01', s.end_on - DATE '1970-01-01', s.sidewalk_width_m,
       s.used_width_m, ST_AsBinary(s.geom)
  FROM sidewalk_permits s
 WHERE {_side_ok("s")} AND s.sidewalk_width_m - s.used_width_m < %(min_clearance)s
"""

#: Every usable sidewalk permit, when the store has sidewalks: their free passage is measured in Python
#: (:func:`gisapp.passage.occupancy_passages`, as the geopandas path measures it).
_PASSAGE_PERMITS = f"""
SELECT s.permit_no, s.start_on - DATE '1970-01-01', s.end_on - DATE '1970-01-01', ST_AsBinary(s.geom)
  FROM sidewalk_permits s
 WHERE {_side_ok("s")}
 ORDER BY s.permit_no
"""
_SIDEWALKS = """
SELECT ST_AsBinary(w.geom), w.width_m FROM sidewalks w
 WHERE w.geom IS NOT NULL AND NOT ST_IsEmpty(w.geom) AND ST_IsValid(w.geom)
"""

#: Dossiers settled in SQL as lying in their declared ward: a piece of a ward in force on the received
#: date, with the declared code, contains the parcel (``holds``), and no ward in force with a lower key
#: meets it (``meets``: a piece of it intersects the parcel), so that ward wins (containing beats partly
#: holding, ties to the lower key).  One join of the few ward pieces against the GiST index of the
#: dossiers, piece by piece, so that GEOS prepares each piece once; invalid parcels are left out first.
_SETTLED = """
CREATE TEMP TABLE gisapp_settled ON COMMIT DROP AS
SELECT h.id FROM (
    SELECT h.id, h.ward_key, h.holds, NOT h.holds AND ST_Intersects(h.piece, h.geom) AS meets FROM (
        SELECT c.id, c.geom, pp.ward_key, pp.geom AS piece,
               pp.ward_code = c.declared AND pp.geom ~ c.geom AND ST_Contains(pp.geom, c.geom) AS holds
          FROM gisapp_ward_parts pp
         CROSS JOIN LATERAL (
               SELECT c.dossier_code AS id, c.ward_code AS declared, c.geom FROM construction_permits c
                WHERE c.geom && pp.geom AND pp.valid_from <= c.received_on
                  AND (pp.valid_to IS NULL OR c.received_on <= pp.valid_to)
                  AND c.dossier_code NOT IN (SELECT bad.id FROM gisapp_bad bad  -- hashed (keys are not null)
                                              WHERE bad.layer = 'construction_permits')
               OFFSET 0) c
        OFFSET 0) h
    OFFSET 0) h
 GROUP BY h.id
HAVING min(h.ward_key) FILTER (WHERE h.holds) IS NOT NULL
   AND NOT coalesce(min(h.ward_key) FILTER (WHERE h.meets) < min(h.ward_key) FILTER (WHERE h.holds), false);
ANALYZE gisapp_settled
"""

#: The dossiers that may be in the wrong ward: those judged (a ward in force on the received date) and
#: not settled.  Their ward is found in Python.
_WARD_MISMATCH = _CONS + """
SELECT c.id, c.declared, c.received - DATE '1970-01-01', ST_AsBinary(c.geom)
  FROM gisapp_cons c
 WHERE EXISTS (SELECT 1 FROM gisapp_wards f WHERE f.valid_from <= c.received
                                             AND (f.valid_to IS NULL OR c.received <= f.valid_to))
   AND NOT EXISTS (SELECT 1 FROM gisapp_settled s WHERE s.id = c.id)
"""

_SKIPPED = {
    "construction_permits": """
SELECT c.dossier_code, c.ward_code, b.empty, c.received_on IS NULL,
       %(as_of)s::date IS NOT NULL AND c.received_on > %(as_of)s::date,
       CASE WHEN b.empty = false THEN ST_AsBinary(c.geom) END
  FROM construction_permits c
  LEFT JOIN gisapp_bad b ON b.layer = 'construction_permits' AND b.id = c.dossier_code
 WHERE b.id IS NOT NULL OR c.received_on IS NULL OR c.received_on > %(as_of)s::date
 ORDER BY c.dossier_code""",
    "sidewalk_permits": """
SELECT s.permit_no, s.ward_code, b.empty, s.start_on IS NULL, s.end_on IS NULL, s.end_on < s.start_on,
       s.sidewalk_width_m IS NULL OR s.used_width_m IS NULL, CASE WHEN b.empty = false THEN ST_AsBinary(s.geom) END
  FROM sidewalk_permits s
  LEFT JOIN gisapp_bad b ON b.layer = 'sidewalk_permits' AND b.id = s.permit_no
 WHERE b.id IS NOT NULL OR s.start_on IS NULL OR s.end_on IS NULL OR s.end_on < s.start_on
    OR s.sidewalk_width_m IS NULL OR s.used_width_m IS NULL
 ORDER BY s.permit_no""",
    "wards": """
SELECT w.ward_key, w.ward_code, b.empty, w.valid_from IS NULL, w.valid_to < w.valid_from,
       CASE WHEN b.empty = false THEN ST_AsBinary(w.geom) END
  FROM wards w
  LEFT JOIN gisapp_bad b ON b.layer = 'wards' AND b.id = w.ward_key
 WHERE b.id IS NOT NULL OR w.ward_code IS NULL OR w.valid_from IS NULL OR w.valid_to < w.valid_from
 ORDER BY w.ward_key""",
}


def find_overlaps(store: PostGISStore, params: AnalysisParams | None = None) -> AnalysisResult:
    """Every finding between the store's dossiers, sidewalk permits and wards, computed in PostGIS.

    Parameters
    ----------
    store:
        A :class:`gisapp.store.postgis.PostGISStore`.
    params:
        :class:`AnalysisParams` (the defaults when ``None``).

    Returns
    -------
    AnalysisResult
        As :func:`gisapp.analysis.overlaps.find_overlaps` returns it: findings
        grouped by kind (in :data:`KINDS` order, by id within a kind),
        skipped features with their reasons, the per-ward summary, and the
        seconds spent (``sql``, ``assemble``).
    """
    params = params or AnalysisParams()
    values = {"as_of": params.as_of, "months": int(params.works_months),
              "distance": float(params.distance_m) + 2 * DISTANCE_EPSILON, "gap_days": int(params.gap_days),
              "min_clearance": float(params.min_clearance_m) - 1e-9}
    laps, started = {}, time.perf_counter()
    last = [started]

    def lap(name: str) -> None:
        now = time.perf_counter()
        laps[name], last[0] = now - last[0], now
    with store.connection() as con, con.transaction():
        con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        con.execute("SET LOCAL client_min_messages = warning")  # ST_IsValid notices
        con.execute("SET LOCAL jit = off")  # compiling these plans costs more than running them
        for statement in _statements(_PREPARE):
            con.execute(statement, values)
        lap("sql_prepare")
        wards = _WardTable(con.cursor(binary=True).execute(_WARDS).fetchall())
        rows = {}
        for name, query in (("near", _NEAR), ("pairs", _PAIRS), ("clearance", _CLEARANCE),
                            ("wards", _WARD_MISMATCH)):
            if name == "wards":
                for statement in _statements(_SETTLED):
                    con.execute(statement, values)
            rows[name] = con.cursor(binary=True).execute(query, values).fetchall()
            lap(f"sql_{name}")
        rows["passage"], rows["sidewalks"] = [], []
        if one(con.execute("SELECT count FROM gisapp_layers WHERE name = 'sidewalks'"))[0]:
            rows["passage"] = con.cursor(binary=True).execute(_PASSAGE_PERMITS, values).fetchall()
            rows["sidewalks"] = con.cursor(binary=True).execute(_SIDEWALKS, values).fetchall()
            lap("sql_passage")
        skipped_rows = {layer: con.cursor(binary=True).execute(query, values).fetchall()
                        for layer, query in _SKIPPED.items()}
        register = con.execute("SELECT dossier_code, ward_code FROM construction_permits "
                               "ORDER BY dossier_code").fetchall()
        lap("sql_skipped")
    laps["sql"] = time.perf_counter() - started
    measured = _passages(rows["passage"], rows["sidewalks"])
    findings = _findings(rows, params, wards, measured)
    skipped = _skipped(skipped_rows, params, set(measured["a_id"]) if measured else set())
    register = pd.DataFrame(register, columns=["dossier_code", "ward_code"], dtype=object)
    summary = analysis.summarize(findings, register, skipped)
    laps["assemble"] = time.perf_counter() - started - laps["sql"]
    return AnalysisResult(findings, skipped, summary, params, laps)


def _statements(script: str) -> list[str]:
    """The statements of a script (no ``;`` inside them), for one execute each (parameters allowed)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


# -- findings ------------------------------------------------------------------------------

class _WardTable:
    """The wards taking part, in tie-break order, with the geopandas path's own :class:`WardIndex`.

    The ward of a finding is found on its geometry as fetched (or measured
    by shapely) by the very code the geopandas path runs, so the same
    geometry on the same date gets the same ward.
    """

    def __init__(self, rows: list[tuple]):
        """From rows of :data:`_WARDS`: key, code, name, valid_from, valid_to, WKB."""
        rows = sorted(rows, key=lambda r: str(r[0]))  # as the geopandas path sorts the keys
        self.keys = np.array([r[0] for r in rows], dtype=object)
        self.codes = np.array([r[1] for r in rows], dtype=object)
        self.names = np.array([None if r[2] in (None, "") else r[2] for r in rows], dtype=object)
        geoms = shapely.from_wkb(np.array([r[5] for r in rows], dtype=object))
        shapely.prepare(geoms)
        self.index = WardIndex.build(geoms, _day_numbers(r[3] for r in rows), _day_numbers(r[4] for r in rows))

    def assign(self, geoms: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row of the ward of each geometry on its day (-1: none) and the part's area (NaN: all of it)."""
        return self.index.assign(geoms, days)

    def code(self, idx: np.ndarray) -> np.ndarray:
        """Ward codes of rows ``idx`` (``None`` where -1)."""
        out = np.full(len(idx), None, dtype=object)
        out[idx >= 0] = self.codes[idx[idx >= 0]]
        return out


_WARDS = "SELECT ward_key, ward_code, name, valid_from, valid_to, ST_AsBinary(geom) FROM gisapp_wards"


def _passages(permits: list[tuple], sidewalks: list[tuple]) -> dict | None:
    """The permits whose free passage was measured on the sidewalks: id, days, geometry, passage (m), its day."""
    f = _columns(permits, ["a_id", "first", "last", "wkb"])
    if f is None or not sidewalks:
        return None
    geoms = _geoms(f["wkb"])
    first, last = _ints(f["first"]), _ints(f["last"])
    walks = shapely.from_wkb(np.array([r[0] for r in sidewalks], dtype=object))
    widths = np.array([np.nan if r[1] is None else r[1] for r in sidewalks], dtype=float)
    free, day = occupancy_passages(geoms, first, last, walks, widths)
    ok = ~np.isnan(free)
    return {"a_id": f["a_id"][ok], "first": first[ok], "last": last[ok], "geometry": geoms[ok], "free": free[ok],
            "day": day[ok]}


def _findings(rows: dict, params: AnalysisParams, wards: _WardTable, measured: dict | None = None):
    """The findings frame from the rows of the four queries: grouped by kind in :data:`KINDS` order, by id within."""
    parts = [_near(rows["near"], params, wards), _pairs(rows["pairs"], wards),
             _clearance(rows["clearance"], params, wards, measured), _measured_clearance(measured, params, wards),
             _ward_mismatch(rows["wards"], wards)]
    found = [p for p in parts if p is not None and len(p["kind"])]
    if not found:
        return analysis.empty_findings()
    cols = {name: np.concatenate([p[name] for p in found]) for name in found[0]}
    cols["finding_id"] = analysis.finding_ids(cols["kind"], cols["a_id"], cols["b_id"])
    rank = pd.Categorical(cols["kind"], categories=list(KINDS)).codes
    order = np.lexsort((cols["finding_id"].astype(str), rank))  # ids are ASCII, of one length within a kind
    return _typed({name: values[order] for name, values in cols.items()})


def _typed(cols: dict):
    """The findings layer from column arrays, typed as the geopandas path types it (text: ``None`` where missing)."""
    import geopandas as gpd

    out = {}
    for f in schema.FINDINGS.fields:
        values = cols[f.name]
        if f.type == "text":  # str or None already; NaN (the only value unequal to itself) becomes None
            values = values.astype(object)
            values[np.not_equal(values, values)] = None
            out[f.name] = pd.Series(values, dtype=object)
        elif f.type == "float":
            out[f.name] = pd.Series(values.astype(float))
        elif f.type == "int":  # NAT where missing
            out[f.name] = pd.Series(pd.arrays.IntegerArray(np.where(values == NAT, 0, values), values == NAT))
        else:  # days since 1970, NAT where missing
            out[f.name] = pd.Series(values.astype(np.int64).astype("datetime64[D]").astype("datetime64[ms]"))
    return gpd.GeoDataFrame(pd.DataFrame(out), geometry=np.asarray(cols["geometry"], dtype=object),
                            crs=schema.STORE_CRS)


def _columns(rows: list[tuple], names: list[str]) -> dict | None:
    """The rows as one object array per named column (``None`` when there are no rows)."""
    if not rows:
        return None
    return {name: np.array(values, dtype=object) for name, values in zip(names, zip(*rows))}


def _keep(f: dict, mask: np.ndarray) -> dict:
    return {name: values[mask] for name, values in f.items()}


def _block(kind, n: int, **columns) -> dict:
    """``n`` findings as column arrays (scalars repeated), with the columns every kind has."""
    columns = {"kind": kind, "b_id": None, "overlap_area_m2": np.nan, "distance_m": np.nan,
               "overlap_end": NAT, "overlap_days": NAT, **columns}
    out = {}
    for name, value in columns.items():
        arr = np.asarray(value, dtype=object if value is None or isinstance(value, str) else None)
        out[name] = np.full(n, value, dtype=arr.dtype) if arr.ndim == 0 else arr
    return out


def _geoms(values: np.ndarray) -> np.ndarray:
    return shapely.from_wkb(values)


def _near(rows, params: AnalysisParams, wards: _WardTable) -> dict | None:
    """MERGE_CANDIDATE and LINKED.

    PostGIS found the pairs within the distance (``ST_DWithin`` with a hair
    of slack); the distance itself is measured with shapely/GEOS, as the
    geopandas path measures it, so values, texts and the cut-off agree to
    the last digit.
    """
    f = _columns(rows, ["a_id", "b_id", "first", "last", "linked", "wkb", "parcel"])
    if f is None:
        return None
    geoms = _geoms(f["wkb"])
    dist = shapely.distance(_geoms(f["parcel"]), geoms)
    near = dist <= params.distance_m + DISTANCE_EPSILON
    f, geoms, dist = _keep(f, near), geoms[near], np.round(dist[near], analysis.DISTANCE_DECIMALS)
    first, last = _ints(f["first"]), _ints(f["last"])
    days = last - first + 1
    text = _number(_tenths(dist) / 10, 1)
    linked = f["linked"].astype(bool)
    detail = [(f"Đã gộp thủ tục; vỉa hè cách công trình {d} m, trùng thời gian thi công {n} ngày" if link else
               f"Vỉa hè cách công trình {d} m, trùng thời gian thi công {n} ngày; chưa gộp thủ tục")
              for d, n, link in zip(text, days.tolist(), linked.tolist())]
    return _block(np.where(linked, "LINKED", "MERGE_CANDIDATE").astype(object), len(dist), a_id=f["a_id"],
                  b_id=f["b_id"], ward_code=wards.code(wards.assign(geoms, first)[0]), distance_m=dist,
                  overlap_start=first, overlap_end=last, overlap_days=days, detail=np.array(detail, dtype=object),
                  geometry=geoms)


def _pairs(rows, wards: _WardTable) -> dict | None:
    """CLASH and OPPORTUNITY.

    PostGIS found the pairs whose boxes meet, at most ``gap_days`` apart;
    whether they intersect, the intersection kept and its area are decided
    with shapely/GEOS, exactly as the geopandas path does.
    """
    f = _columns(rows, ["a_id", "b_id", "gap", "first", "last", "a_wkb", "b_wkb"])
    if f is None:
        return None
    a, b = _geoms(f["a_wkb"]), _geoms(f["b_wkb"])
    hit = shapely.intersects(a, b)
    f, a, b = _keep(f, hit), a[hit], b[hit]
    inter = shapely.intersection(a, b)
    area = shapely.area(inter)
    solid = area > AREA_EPSILON
    f, inter, area = _keep(f, solid), inter[solid], np.round(area[solid], analysis.AREA_DECIMALS)
    gap = _ints(f["gap"])
    clash = gap <= 0
    first, last = _ints(f["first"]), _ints(f["last"])
    days = np.where(clash, last - first + 1, 0)
    text = _number(_tenths(area) / 10, 1)
    detail = [f"Chồng lấn {a} m² trong {n} ngày" if c else f"Chồng lấn {a} m², hai giấy phép cách nhau {g} ngày"
              for a, n, g, c in zip(text, days.tolist(), gap.tolist(), clash.tolist())]
    return _block(np.where(clash, "CLASH", "OPPORTUNITY").astype(object), len(area), a_id=f["a_id"], b_id=f["b_id"],
                  ward_code=wards.code(wards.assign(inter, first)[0]), overlap_area_m2=area, distance_m=0.0,
                  overlap_start=first, overlap_end=last, overlap_days=days, detail=np.array(detail, dtype=object),
                  geometry=geo.polygonal_parts(inter))


def _measured_clearance(measured: dict | None, params: AnalysisParams, wards: _WardTable) -> dict | None:
    """CLEARANCE of the permits measured on the sidewalks: their passage below the minimum."""
    if not measured:
        return None
    low = measured["free"] < params.min_clearance_m - 1e-9
    f = {name: values[low] for name, values in measured.items()}
    geoms, first, last = f["geometry"], f["first"], f["last"]
    least = _number(np.array([round(params.min_clearance_m * 100)]) / 100, 2)[0]
    days = np.datetime_as_string(f["day"].astype("datetime64[D]")).tolist()
    detail = [f"Lối đi bộ còn {a} m (đo trên vỉa hè, ngày {d}), dưới mức tối thiểu {least} m"
              for a, d in zip(_number(f["free"], 2), days)]
    return _block("CLEARANCE", len(geoms), a_id=f["a_id"], ward_code=wards.code(wards.assign(geoms, first)[0]),
                  overlap_start=first, overlap_end=last, overlap_days=last - first + 1,
                  detail=np.array(detail, dtype=object), geometry=geoms)


def _clearance(rows, params: AnalysisParams, wards: _WardTable, measured: dict | None = None) -> dict | None:
    """CLEARANCE by the attributes, of the permits not measured on the sidewalks."""
    f = _columns(rows, ["a_id", "first", "last", "width", "used", "wkb"])
    if f is None:
        return None
    if measured:
        f = _keep(f, ~np.isin(f["a_id"], measured["a_id"]))
    geoms = _geoms(f["wkb"])
    first, last = _ints(f["first"]), _ints(f["last"])
    width_cm = np.round(f["width"].astype(float) * 100).astype(np.int64)
    used_cm = np.round(f["used"].astype(float) * 100).astype(np.int64)
    least = _number(np.array([round(params.min_clearance_m * 100)]) / 100, 2)[0]
    left, w, u = _number((width_cm - used_cm) / 100, 2), _number(width_cm / 100, 2), _number(used_cm / 100, 2)
    detail = [f"Lối đi bộ còn {a} m, dưới mức tối thiểu {least} m (vỉa hè {b} m, sử dụng {c} m)"
              for a, b, c in zip(left, w, u)]
    return _block("CLEARANCE", len(geoms), a_id=f["a_id"], ward_code=wards.code(wards.assign(geoms, first)[0]),
                  overlap_start=first, overlap_end=last, overlap_days=last - first + 1,
                  detail=np.array(detail, dtype=object), geometry=geoms)


def _ward_mismatch(rows, wards: _WardTable) -> dict | None:
    """WARD_MISMATCH: the parcel's ward on the received date is not the declared one.

    ``rows``: the dossiers SQL could not settle as lying in their declared ward.
    """
    f = _columns(rows, ["a_id", "declared", "received", "wkb"])
    if f is None:
        return None
    geoms = _geoms(f["wkb"])
    received = _ints(f["received"])
    idx, part = wards.assign(geoms, received)
    code = wards.code(idx)
    wrong = code != f["declared"]
    f, geoms, idx, part, code, received = _keep(f, wrong), geoms[wrong], idx[wrong], part[wrong], code[wrong], \
        received[wrong]
    found = idx >= 0
    days = np.datetime_as_string(received.astype("datetime64[D]"))
    detail = []
    for declared, day, c, k in zip(f["declared"], days, code, idx):
        said = "(trống)" if pd.isna(declared) else declared
        name = wards.names[k] if k >= 0 and wards.names[k] is not None else ""
        detail.append(f"Khai phường {said}, thửa đất nằm ngoài các phường theo ranh giới ngày {day}" if k < 0
                      else f"Khai phường {said}, thửa đất thuộc phường {c} {name} theo ranh giới ngày {day}")
    area = np.where(np.isnan(part), shapely.area(geoms), part)  # wholly in its ward: the parcel's area
    area = np.round(area, analysis.AREA_DECIMALS)
    return _block("WARD_MISMATCH", len(geoms), a_id=f["a_id"],
                  b_id=np.where(found, wards.keys[np.maximum(idx, 0)] if len(wards.keys) else None, None),
                  ward_code=code, overlap_area_m2=np.where(found, area, np.nan), overlap_start=received,
                  detail=np.array(detail, dtype=object), geometry=geoms)


def _ints(values: np.ndarray) -> np.ndarray:
    """A column of whole numbers (days since 1970 from SQL, never missing) as int64."""
    return values.astype(np.int64)


def _day_numbers(values) -> np.ndarray:
    """Dates as int64 days since 1970."""
    return np.array(list(values), dtype="datetime64[D]").astype(np.int64)


def _tenths(values) -> np.ndarray:
    """Values rounded (half to even) to tenths, as int64 tenths."""
    return np.round(np.asarray(values, dtype=float) * 10).astype(np.int64)


def _number(values, decimals: int) -> list[str]:
    """Numbers as text with a decimal comma, rounded half to even (as the geopandas path writes them)."""
    scale = 10 ** decimals
    q = np.round(np.nan_to_num(np.asarray(values, dtype=float)) * scale).astype(np.int64)
    return [f"{'-' if v < 0 else ''}{abs(v) // scale},{abs(v) % scale:0{decimals}d}" for v in q.tolist()]


# -- skipped features -----------------------------------------------------------------------

def _geometry_reason(empty, wkb) -> str | None:
    if empty is None:
        return None
    if empty:
        return "geometry is empty or missing"
    return f"invalid geometry: {shapely.is_valid_reason(shapely.from_wkb(wkb))}"


def _skipped(rows: dict, params: AnalysisParams, measured: set | None = None) -> pd.DataFrame:
    """One row per feature left out or only partly analysed, with its reasons in the geopandas path's words.

    ``measured``: permits whose passage was measured on the sidewalks (their widths are not needed).
    """
    measured = measured or set()
    out = []
    for code, ward, empty, no_received, late, wkb in rows["construction_permits"]:
        reasons = [_geometry_reason(empty, wkb), "missing received_on" if no_received else None,
                   f"received after the as-of date {params.as_of}" if late else None]
        out.append(("construction_permits", code, ward, reasons))
    for number, ward, empty, no_start, no_end, backwards, no_width, wkb in rows["sidewalk_permits"]:
        reasons = [_geometry_reason(empty, wkb),
                   "missing start_on" if no_start and not no_end else None,
                   "missing end_on" if no_end and not no_start else None,
                   "missing start_on and end_on" if no_start and no_end else None,
                   "end_on before start_on" if backwards else None,
                   "clearance not checked: missing sidewalk_width_m or used_width_m"
                   if no_width and number not in measured else None]
        out.append(("sidewalk_permits", number, ward, reasons))
    for key, code, empty, no_start, backwards, wkb in rows["wards"]:
        reasons = ["missing ward_code" if code is None else None, _geometry_reason(empty, wkb),
                   "missing valid_from" if no_start else None, "valid_to before valid_from" if backwards else None]
        out.append(("wards", key, code, reasons))
    records = [(layer, key, ward, "; ".join(r for r in reasons if r)) for layer, key, ward, reasons in out]
    return pd.DataFrame(records, columns=["layer", "id", "ward_code", "reason"], dtype=object)
