"""The findings of a few written sidewalk permits, without a full analysis run.

When an officer saves or edits a sidewalk permit, only the findings that
involve it can change: its ``MERGE_CANDIDATE``/``LINKED`` findings with
dossiers within ``distance_m``, its ``CLASH``/``OPPORTUNITY`` findings with
permits it intersects, its ``CLEARANCE``.  :func:`refresh_findings` reads
what lies near the written permits (their neighbours in space; the dates
are judged by the analysis itself), runs the same analysis
(:func:`gisapp.analysis.overlaps.find_overlaps`) on that neighbourhood and
returns the findings involving the permits, and the stored findings
involving them, to be replaced in one write
(``store.write({"findings": frame}, mode="upsert", delete={"findings": stale})``).
The result is the one a full ``gisapp analyze`` run gives afterwards
(tests/test_occupancy_save.py checks it on both backends).

Every finding involving a permit lies within the permit's bounding box
(its polygon, or an intersection with it), so the stored ones are found
through the spatial index, under the permit's old geometry (an edit) and
its new one.  A permit's ``CLEARANCE`` on a mapped sidewalk counts every
permit beside it there (the free passage, :mod:`gisapp.passage`): the
permits within that reach of the written ones (the widest sidewalk near
plus :data:`gisapp.passage.REACH`) are recomputed too, with everything
within reach of them read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisapp import geo, passage
from gisapp.analysis.overlaps import AnalysisParams, empty_findings, find_overlaps
from gisapp.filters import Filter
from gisapp.schema import STORE_CRS, WEB_CRS
from gisapp.store import Store

#: Kinds whose findings name a sidewalk permit (as ``a_id`` or ``b_id``).
SIDEWALK_KINDS = ("MERGE_CANDIDATE", "LINKED", "CLASH", "OPPORTUNITY", "CLEARANCE")
#: How far (m) around the written permits sidewalks are read, for the reach of the free passage beside them.
SIDEWALK_LOOK_M = 20.0
#: Slack (m) added to every box read, so that features touching its edge are read.
SLACK_M = 1.0


@dataclass(frozen=True)
class FindingsChange:
    """What :func:`refresh_findings` found: the findings to write and the stored ones to remove first."""

    findings: gpd.GeoDataFrame
    stale: list[str]
    permits: list[str]  # the permits whose findings were recomputed

    def write_args(self) -> tuple[dict, dict]:
        """``frames`` and ``delete`` of :meth:`gisapp.store.Store.write` (mode ``upsert``)."""
        return {"findings": self.findings}, {"findings": self.stale}


def stored_params(store: Store) -> AnalysisParams:
    """The parameters of the store's last analysis (``meta()["findings"]``), else the defaults with its as-of date."""
    meta = store.meta()
    run = meta.get("findings") or {}
    as_of = run.get("as_of") or meta.get("as_of")
    values = {k: run[k] for k in ("distance_m", "gap_days", "min_clearance_m", "works_months") if k in run}
    return AnalysisParams(**values, as_of=dt.date.fromisoformat(as_of) if as_of else None)


def _wgs84_filter(bounds: Sequence[float], margin: float) -> Filter:
    """A filter on the WGS84 box covering ``bounds`` (EPSG:5899) grown by ``margin`` metres."""
    x0, y0, x1, y1 = bounds
    box = shapely.segmentize(shapely.box(x0 - margin, y0 - margin, x1 + margin, y1 + margin), 50.0)
    lon0, lat0, lon1, lat1 = geo.transform([box], STORE_CRS, WEB_CRS)[0].bounds
    return Filter(bbox=(lon0, lat0, lon1, lat1))


def _bounds(geoms: Collection) -> tuple[float, float, float, float] | None:
    arr = np.array([g for g in geoms if g is not None and not shapely.is_empty(g)], dtype=object)
    if not len(arr):
        return None
    b = shapely.bounds(arr)
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


def _involving(findings: pd.DataFrame, ids: set[str]) -> np.ndarray:
    """Rows of sidewalk-permit kinds naming one of ``ids``."""
    if not len(findings):
        return np.zeros(0, dtype=bool)
    kinds = findings["kind"].isin(SIDEWALK_KINDS).to_numpy()
    a = findings["a_id"].isin(ids).to_numpy()
    b = findings["b_id"].isin(ids).to_numpy()
    return kinds & (a | b)


def _overlay(stored: gpd.GeoDataFrame, permits: gpd.GeoDataFrame, box: Filter) -> gpd.GeoDataFrame:
    """``stored`` with ``permits`` in place of the rows with their keys, those of them in ``box`` added."""
    kept = stored[~stored["permit_no"].isin(list(permits["permit_no"]))]
    if box.bbox is not None and len(permits):
        lon0, lat0, lon1, lat1 = box.bbox
        frame = geo.transform([shapely.box(lon0, lat0, lon1, lat1)], WEB_CRS, STORE_CRS)[0]
        permits = permits[shapely.intersects(permits.geometry.values, frame)]
    merged = pd.concat([kept, permits[list(stored.columns)]], ignore_index=True) if len(kept) else \
        permits[list(stored.columns)].reset_index(drop=True)
    return gpd.GeoDataFrame(merged, geometry="geometry", crs=STORE_CRS)


def refresh_findings(store: Store, permits: gpd.GeoDataFrame, *, old_geometries: Collection = (),
                     params: AnalysisParams | None = None) -> FindingsChange:
    """The findings of the sidewalk permits ``permits`` and the stale stored findings that name them.

    ``permits``: sidewalk permit rows (the layer's columns, EPSG:5899) as
    they are about to be written, or were just written: they stand in for
    the stored rows with the same ``permit_no``, so the permits and their
    findings can be written in one transaction.  ``old_geometries``: where
    edited permits were before, so that findings left there are removed.
    ``params``: the analysis parameters (default: the store's last
    analysis's).  Writes nothing; call it under ``store.write_lock()`` so
    that no other writer slips in between it and the write.
    """
    params = params or stored_params(store)
    ids = {str(p) for p in permits["permit_no"]}
    written = list(permits.geometry.values)
    where = _bounds([*written, *old_geometries])
    if where is None:
        return FindingsChange(empty_findings(), [], sorted(ids))
    neighbours = _passage_reach(store.read("sidewalks", _wgs84_filter(where, SIDEWALK_LOOK_M)))
    box = _wgs84_filter(where, neighbours + SLACK_M)
    near = _overlay(store.read("sidewalk_permits", box), permits, box)
    if neighbours > 0 and len(near):  # permits whose clearance counts what lies beside them on the sidewalk
        zone = shapely.buffer(shapely.union_all([*written, *old_geometries]), neighbours)
        ids |= set(near["permit_no"][shapely.intersects(near.geometry.values, zone)])
    focus = near[near["permit_no"].isin(list(ids))]
    focus_bounds = _bounds(focus.geometry.values) or where
    context = _wgs84_filter(focus_bounds, max(params.distance_m, neighbours) + SLACK_M)
    sidewalk = _overlay(store.read("sidewalk_permits", context), permits, context)
    construction = store.read("construction_permits", context)
    walks = store.read("sidewalks", context)
    result = find_overlaps(construction, sidewalk, store.read("wards"), params, sidewalks=walks)
    fresh = result.findings[_involving(result.findings, ids)].reset_index(drop=True)
    stale_box = _bounds([*focus.geometry.values, *old_geometries]) or where
    stored = store.read("findings", _wgs84_filter(stale_box, SLACK_M))
    stale = sorted(set(stored["finding_id"][_involving(stored, ids)]) - set(fresh["finding_id"]))
    return FindingsChange(gpd.GeoDataFrame(fresh, geometry="geometry", crs=STORE_CRS), stale, sorted(ids))


def _passage_reach(sidewalks: gpd.GeoDataFrame) -> float:
    """How far (m) the free passage beside a permit looks for other permits, on the widest of ``sidewalks``.

    :func:`gisapp.passage.occupancy_passages` counts the permits within the
    sidewalk's width plus :data:`gisapp.passage.REACH` of an occupancy; 0
    without sidewalks (the clearance is then the attribute rule of each
    permit alone).
    """
    if not len(sidewalks):
        return 0.0
    widths = pd.to_numeric(sidewalks["width_m"], errors="coerce").to_numpy(dtype=float)
    missing = ~(widths > 0)
    if missing.any():
        widths[missing] = [passage.sidewalk_width(g) for g in sidewalks.geometry.values[missing]]
    return float(np.nanmax(widths)) + passage.REACH + SLACK_M
