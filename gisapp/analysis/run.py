"""The analysis of a whole store: in PostGIS's SQL where the store is PostGIS, else read and computed here."""

from __future__ import annotations

import dataclasses
import time

import geopandas as gpd
import pandas as pd

from gisapp.analysis import sql
from gisapp.analysis.overlaps import AnalysisParams, AnalysisResult, find_overlaps
from gisapp.inspections import unpermitted_findings
from gisapp.schema import STORE_CRS
from gisapp.store import Store
from gisapp.store.postgis import PostGISStore

LAYERS = ("construction_permits", "sidewalk_permits", "wards", "sidewalks")


def analyze_store(store: Store, params: AnalysisParams) -> tuple[AnalysisResult, float]:
    """Every finding of ``store``, and the seconds spent reading its layers (0 when nothing was read).

    A PostGIS store computes them itself (:func:`gisapp.analysis.sql.find_overlaps`,
    nothing read into Python); any other store's layers are read and
    analysed by :func:`gisapp.analysis.overlaps.find_overlaps`.  Both give the same findings.
    The ``UNPERMITTED`` findings come from the store's inspections
    (:func:`with_unpermitted`), so a new analysis keeps them.
    """
    if isinstance(store, PostGISStore):
        return with_unpermitted(sql.find_overlaps(store, params), store), 0.0
    started = time.perf_counter()
    layers = {name: store.read(name) for name in LAYERS}
    read_s = time.perf_counter() - started
    result = find_overlaps(layers["construction_permits"], layers["sidewalk_permits"], layers["wards"], params,
                           sidewalks=layers["sidewalks"])
    return with_unpermitted(result, store), read_s


def with_unpermitted(result: AnalysisResult, store: Store) -> AnalysisResult:
    """``result`` with the ``UNPERMITTED`` findings of the store's inspections added (the summary counts the
    computed kinds only)."""
    extra = unpermitted_findings(store.inspections())
    if not len(extra):
        return result
    findings = gpd.GeoDataFrame(pd.concat([result.findings, extra.astype(result.findings.dtypes.to_dict(),
                                                                        errors="ignore")], ignore_index=True),
                                geometry="geometry", crs=STORE_CRS)
    return dataclasses.replace(result, findings=findings)
