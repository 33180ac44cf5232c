"""The overlap analysis computed in PostGIS, for stores too large to read into memory.

Same findings as :func:`gisapp.analysis.find_overlaps` (whose module
docstring defines them) from the layers of a :class:`PostGISStore`.
PostGIS does the work that grows with the data: the candidate pairs come
from ``ST_DWithin`` and ``&&`` + ``ST_Intersects`` joins on the GiST-indexed
geometry columns, with the date conditions (works periods, inclusive
overlaps, gaps) in the same SQL; the ward of each finding — the ward holding
the largest part of it among those in force on its date — is found in SQL
too, through wards cut into small pieces; invalid input is sorted out in
SQL.  Python receives only the findings: it measures each pair's distance
or intersection with shapely (the same GEOS calls as the geopandas path, so
values and the texts rounded from them agree to the last digit; the partial
area of a ward mismatch is PostGIS's, equal to rounding), gives the
ids (:func:`gisapp.analysis.finding_ids`) and Vietnamese detail texts, and
builds the summary with :func:`gisapp.analysis.summarize`.

Everything runs in one REPEATABLE READ transaction, so the three layers are
read as of one moment even while an import commits; its temporary tables
go with it.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import shapely

from gisapp import analysis, geo, schema
from gisapp.analysis import KINDS, AnalysisParams, AnalysisResult

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
-- its ward, which settles most look-ups without testing a whole (detailed) ward boundary.
CREATE TEMP TABLE gisapp_ward_parts ON COMMIT DROP AS
SELECT ward_key, valid_from, valid_to, ST_Subdivide(geom, 64) AS geom FROM gisapp_wards;
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


def _ward_of(geom: str, day: str) -> str:
    """LATERAL joins giving ``w``: ``ward_key, ward_code, name, inside, part`` of the ward of ``geom`` on ``day``.

    The ward holding the largest part of the geometry among those in force
    on the day: one containing it wins (the lowest key among several),
    otherwise the largest intersection above :data:`AREA_EPSILON`, ties to
    the lower key.  ``geom`` must be valid (GEOS computes the parts).

    Fast path: the lowest-keyed ward with a piece (``gisapp_ward_parts``)
    containing the geometry, when no ward with a lower key comes near it —
    then no other ward can win.  Otherwise the exact comparison on whole
    wards (a one-time filter skips it when the fast path answered).
    """
    in_force = f"{{t}}.valid_from <= {day} AND ({{t}}.valid_to IS NULL OR {day} <= {{t}}.valid_to)"
    return f"""LEFT JOIN LATERAL (
        SELECT wq.ward_key, wq.ward_code, wq.name
          FROM (SELECT min(pp.ward_key) AS ward_key FROM gisapp_ward_parts pp
                 WHERE pp.geom && {geom} AND {in_force.format(t="pp")} AND ST_Contains(pp.geom, {geom})) wk
          JOIN gisapp_wards wq ON wq.ward_key = wk.ward_key
         WHERE NOT EXISTS (SELECT 1 FROM gisapp_wards wl
                            WHERE wl.geom && {geom} AND wl.ward_key < wk.ward_key AND {in_force.format(t="wl")})
        ) wf ON true
      LEFT JOIN LATERAL (
        SELECT * FROM (
            SELECT wc.ward_key, wc.ward_code, wc.name, wc.inside,
                   CASE WHEN wc.inside THEN NULL ELSE ST_Area(ST_Intersection(wc.geom, {geom})) END AS part
              FROM (SELECT wa.*, ST_Contains(wa.geom, {geom}) AS inside FROM gisapp_wards wa
                     WHERE wa.geom && {geom} AND {in_force.format(t="wa")}) wc
             WHERE wf.ward_key IS NULL
             ORDER BY wc.inside DESC, part DESC, wc.ward_key
             LIMIT 1) wb
         WHERE wb.inside OR wb.part > {AREA_EPSILON}) ws ON true
      CROSS JOIN LATERAL (
        SELECT coalesce(wf.ward_key, ws.ward_key) AS ward_key, coalesce(wf.ward_code, ws.ward_code) AS ward_code,
               CASE WHEN wf.ward_key IS NOT NULL THEN wf.name ELSE ws.name END AS name,
               wf.ward_key IS NOT NULL OR coalesce(ws.inside, false) AS inside, ws.part) w"""


# Each query selects its usable features in a subquery fenced with OFFSET 0, so that
# no GEOS function (ward look-up, intersection) ever sees an invalid geometry.

_NEAR = _CONS + f"""
SELECT f.id, f.permit_no, f.first_day, f.last_day, f.linked, w.ward_code, ST_AsBinary(f.geom),
       ST_AsBinary(f.parcel)
  FROM (SELECT c.id, s.permit_no, s.geom, c.geom AS parcel,
               greatest(c.works_start, s.start_on) AS first_day, least(c.works_end, s.end_on) AS last_day,
               coalesce(s.construction_dossier_code = c.id, false) AS linked
          FROM gisapp_cons c
          JOIN sidewalk_permits s
            ON ST_DWithin(c.geom, s.geom, %(distance)s)
           AND c.works_start <= s.end_on AND s.start_on <= c.works_end
         WHERE {_side_ok("s")}
        OFFSET 0) f
  {_ward_of("f.geom", "f.first_day")}
"""

_PAIRS = f"""
SELECT p.a_id, p.b_id, p.gap, p.first_day, p.last_day, w.ward_code, ST_AsBinary(p.a_geom), ST_AsBinary(p.b_geom)
  FROM (SELECT q.*, ST_Intersection(q.a_geom, q.b_geom) AS inter
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
                 WHERE {_side_ok("a")} AND {_side_ok("b")}
                OFFSET 0) q
         WHERE ST_Intersects(q.a_geom, q.b_geom)
        OFFSET 0) p
  {_ward_of("p.inter", "p.first_day")}
 WHERE ST_Area(p.inter) > {AREA_EPSILON / 2}
"""

_CLEARANCE = f"""
SELECT s.permit_no, s.start_on, s.end_on, s.sidewalk_width_m, s.used_width_m, w.ward_code, ST_AsBinary(s.geom)
  FROM (SELECT * FROM sidewalk_permits s
         WHERE {_side_ok("s")} AND s.sidewalk_width_m - s.used_width_m < %(min_clearance)s
        OFFSET 0) s
  {_ward_of("s.geom", "s.start_on")}
"""

_WARD_MISMATCH = _CONS + f"""
SELECT c.id, c.declared, c.received, w.ward_key, w.ward_code, w.name,
       w.inside, w.part, ST_AsBinary(c.geom)
  FROM (SELECT * FROM gisapp_cons c
         WHERE EXISTS (SELECT 1 FROM gisapp_wards f WHERE f.valid_from <= c.received
                                                     AND (f.valid_to IS NULL OR c.received <= f.valid_to))
        OFFSET 0) c
  {_ward_of("c.geom", "c.received")}
 WHERE w.ward_code IS DISTINCT FROM c.declared
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


def find_overlaps(store, params: AnalysisParams | None = None) -> AnalysisResult:
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
        As :func:`gisapp.analysis.find_overlaps` returns it: findings
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
        rows = {}
        for name, query in (("near", _NEAR), ("pairs", _PAIRS), ("clearance", _CLEARANCE),
                            ("wards", _WARD_MISMATCH)):
            rows[name] = con.cursor(binary=True).execute(query, values).fetchall()
            lap(f"sql_{name}")
        skipped_rows = {layer: con.cursor(binary=True).execute(query, values).fetchall()
                        for layer, query in _SKIPPED.items()}
        register = con.execute("SELECT dossier_code, ward_code FROM construction_permits "
                               "ORDER BY dossier_code").fetchall()
        lap("sql_skipped")
    laps["sql"] = time.perf_counter() - started
    findings = _findings(rows, params)
    skipped = _skipped(skipped_rows, params)
    register = pd.DataFrame(register, columns=["dossier_code", "ward_code"], dtype=object)
    summary = analysis.summarize(findings, register, skipped)
    laps["assemble"] = time.perf_counter() - started - laps["sql"]
    return AnalysisResult(findings, skipped, summary, params, laps)


def _statements(script: str) -> list[str]:
    """The statements of a script (no ``;`` inside them), for one execute each (parameters allowed)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


# -- findings ------------------------------------------------------------------------------

def _findings(rows: dict, params: AnalysisParams):
    """The findings frame from the rows of the four queries."""
    parts = [_near(rows["near"], params), _pairs(rows["pairs"]), _clearance(rows["clearance"], params),
             _ward_mismatch(rows["wards"])]
    frame = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else None
    if frame is None:
        return analysis.empty_findings()
    frame.insert(0, "finding_id", analysis.finding_ids(frame["kind"], frame["a_id"], frame["b_id"]))
    rank = frame["kind"].map({k: i for i, k in enumerate(KINDS)})
    frame = frame.assign(_rank=rank).sort_values(["_rank", "finding_id"], kind="stable").drop(columns="_rank")
    geometry = shapely.from_wkb(frame.pop("wkb").to_numpy(dtype=object))
    return _typed(frame.reset_index(drop=True), geometry)


def _typed(frame: pd.DataFrame, geometry: np.ndarray):
    """The findings layer's typed columns, as the geopandas path types them (text: ``None`` where missing)."""
    import geopandas as gpd

    out = {}
    for f in schema.FINDINGS.fields:
        col = frame[f.name]
        if f.type == "text":
            values = col.to_numpy(dtype=object, copy=True)
            values[pd.isna(values)] = None
            out[f.name] = pd.Series(values, dtype=object)
        elif f.type == "float":
            out[f.name] = pd.Series(pd.to_numeric(col, errors="coerce").to_numpy(dtype=float))
        elif f.type == "int":
            out[f.name] = pd.Series(pd.array(pd.to_numeric(col, errors="coerce"), dtype="Int64"))
        else:
            values = col.to_numpy(dtype=object, copy=True)
            values[pd.isna(values)] = None
            out[f.name] = pd.Series(np.array(values, dtype="datetime64[D]").astype("datetime64[ms]"))
    return gpd.GeoDataFrame(pd.DataFrame(out), geometry=np.asarray(geometry, dtype=object), crs=schema.STORE_CRS)


def _columns(rows: list[tuple], names: list[str]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows, columns=names) if rows else pd.DataFrame(columns=names)


def _near(rows, params: AnalysisParams) -> pd.DataFrame:
    """MERGE_CANDIDATE and LINKED.

    PostGIS found the pairs within the distance (``ST_DWithin`` with a hair
    of slack); the distance itself is measured with shapely/GEOS, as the
    geopandas path measures it, so values, texts and the cut-off agree to
    the last digit.
    """
    f = _columns(rows, ["a_id", "b_id", "first", "last", "linked", "ward_code", "wkb", "parcel"])
    if f.empty:
        return f
    dist = shapely.distance(shapely.from_wkb(f.pop("parcel").to_numpy(dtype=object)),
                            shapely.from_wkb(f["wkb"].to_numpy(dtype=object)))
    f = f[dist <= params.distance_m + DISTANCE_EPSILON].reset_index(drop=True)
    dist = dist[dist <= params.distance_m + DISTANCE_EPSILON]
    days = _day_numbers(f["last"]) - _day_numbers(f["first"]) + 1
    text = _number(_tenths(dist) / 10, 1)
    linked = f["linked"].to_numpy(dtype=bool)
    detail = [(f"Đã gộp thủ tục; vỉa hè cách công trình {d} m, trùng thời gian thi công {n} ngày" if link else
               f"Vỉa hè cách công trình {d} m, trùng thời gian thi công {n} ngày; chưa gộp thủ tục")
              for d, n, link in zip(text, days, linked)]
    return pd.DataFrame({
        "kind": np.where(linked, "LINKED", "MERGE_CANDIDATE").astype(object), "a_id": f["a_id"], "b_id": f["b_id"],
        "ward_code": f["ward_code"], "overlap_area_m2": np.nan, "distance_m": dist,
        "overlap_start": f["first"], "overlap_end": f["last"], "overlap_days": days, "detail": detail,
        "wkb": f["wkb"]})


def _pairs(rows) -> pd.DataFrame:
    """CLASH and OPPORTUNITY.

    PostGIS found the intersecting pairs (and the ward of each
    intersection); the intersection kept and its area are computed with
    shapely/GEOS from the two permits, exactly as the geopandas path does.
    """
    f = _columns(rows, ["a_id", "b_id", "gap", "first", "last", "ward_code", "a_wkb", "b_wkb"])
    if f.empty:
        return f
    inter = shapely.intersection(shapely.from_wkb(f["a_wkb"].to_numpy(dtype=object)),
                                 shapely.from_wkb(f["b_wkb"].to_numpy(dtype=object)))
    area = shapely.area(inter)
    solid = area > AREA_EPSILON
    f, inter, area = f[solid].reset_index(drop=True), inter[solid], area[solid]
    gap = f["gap"].to_numpy(dtype=np.int64)
    clash = gap <= 0
    days = np.where(clash, _day_numbers(f["last"]) - _day_numbers(f["first"]) + 1, 0)
    text = _number(_tenths(area) / 10, 1)
    detail = [f"Chồng lấn {a} m² trong {n} ngày" if c else f"Chồng lấn {a} m², hai giấy phép cách nhau {g} ngày"
              for a, n, g, c in zip(text, days, gap, clash)]
    return pd.DataFrame({
        "kind": np.where(clash, "CLASH", "OPPORTUNITY").astype(object), "a_id": f["a_id"], "b_id": f["b_id"],
        "ward_code": f["ward_code"], "overlap_area_m2": area, "distance_m": 0.0,
        "overlap_start": f["first"], "overlap_end": f["last"], "overlap_days": days, "detail": detail,
        "wkb": shapely.to_wkb(geo.polygonal_parts(inter))})


def _clearance(rows, params: AnalysisParams) -> pd.DataFrame:
    """CLEARANCE."""
    f = _columns(rows, ["a_id", "first", "last", "width", "used", "ward_code", "wkb"])
    if f.empty:
        return f
    width_cm = np.round(f["width"].to_numpy(dtype=float) * 100).astype(np.int64)
    used_cm = np.round(f["used"].to_numpy(dtype=float) * 100).astype(np.int64)
    least = _number(np.array([round(params.min_clearance_m * 100)]) / 100, 2)[0]
    left, w, u = _number((width_cm - used_cm) / 100, 2), _number(width_cm / 100, 2), _number(used_cm / 100, 2)
    detail = [f"Lối đi bộ còn {a} m, dưới mức tối thiểu {least} m (vỉa hè {b} m, sử dụng {c} m)"
              for a, b, c in zip(left, w, u)]
    return pd.DataFrame({
        "kind": "CLEARANCE", "a_id": f["a_id"], "b_id": None, "ward_code": f["ward_code"],
        "overlap_area_m2": np.nan, "distance_m": np.nan, "overlap_start": f["first"], "overlap_end": f["last"],
        "overlap_days": _day_numbers(f["last"]) - _day_numbers(f["first"]) + 1, "detail": detail, "wkb": f["wkb"]})


def _ward_mismatch(rows) -> pd.DataFrame:
    """WARD_MISMATCH: the parcel's ward on the received date is not the declared one."""
    f = _columns(rows, ["a_id", "declared", "received", "ward_key", "ward_code", "name", "inside", "part", "wkb"])
    if f.empty:
        return f
    detail = []
    for declared, received, code, name in zip(f["declared"], f["received"], f["ward_code"], f["name"]):
        said = "(trống)" if pd.isna(declared) else declared
        day = received.isoformat()
        detail.append(f"Khai phường {said}, thửa đất nằm ngoài các phường theo ranh giới ngày {day}" if pd.isna(code)
                      else f"Khai phường {said}, thửa đất thuộc phường {code} {'' if pd.isna(name) else name} "
                           f"theo ranh giới ngày {day}")
    found = f["ward_key"].notna().to_numpy()
    inside = f["inside"].fillna(False).to_numpy(dtype=bool)
    area = f["part"].to_numpy(dtype=float, na_value=np.nan, copy=True)
    if inside.any():  # wholly in its ward: the parcel's own area, measured as the geopandas path does
        area[inside] = shapely.area(shapely.from_wkb(f["wkb"].to_numpy(dtype=object)[inside]))
    return pd.DataFrame({
        "kind": "WARD_MISMATCH", "a_id": f["a_id"], "b_id": f["ward_key"], "ward_code": f["ward_code"],
        "overlap_area_m2": np.where(found, area, np.nan), "distance_m": np.nan,
        "overlap_start": f["received"], "overlap_end": None, "overlap_days": None, "detail": detail,
        "wkb": f["wkb"]})


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


def _skipped(rows: dict, params: AnalysisParams) -> pd.DataFrame:
    """One row per feature left out or only partly analysed, with its reasons in the geopandas path's words."""
    out = []
    for code, ward, empty, no_received, late, wkb in rows["construction_permits"]:
        reasons = [_geometry_reason(empty, wkb), "missing received_on" if no_received else None,
                   f"received after the as-of date {params.as_of.isoformat()}" if late else None]
        out.append(("construction_permits", code, ward, reasons))
    for number, ward, empty, no_start, no_end, backwards, no_width, wkb in rows["sidewalk_permits"]:
        reasons = [_geometry_reason(empty, wkb),
                   "missing start_on" if no_start and not no_end else None,
                   "missing end_on" if no_end and not no_start else None,
                   "missing start_on and end_on" if no_start and no_end else None,
                   "end_on before start_on" if backwards else None,
                   "clearance not checked: missing sidewalk_width_m or used_width_m" if no_width else None]
        out.append(("sidewalk_permits", number, ward, reasons))
    for key, code, empty, no_start, backwards, wkb in rows["wards"]:
        reasons = ["missing ward_code" if code is None else None, _geometry_reason(empty, wkb),
                   "missing valid_from" if no_start else None, "valid_to before valid_from" if backwards else None]
        out.append(("wards", key, code, reasons))
    records = [(layer, key, ward, "; ".join(r for r in reasons if r)) for layer, key, ward, reasons in out]
    return pd.DataFrame(records, columns=["layer", "id", "ward_code", "reason"], dtype=object)
