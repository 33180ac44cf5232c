"""The analysis of a whole store: in PostGIS's SQL where the store is PostGIS, else read and computed here."""

from __future__ import annotations

import time

from gisapp.analysis import sql
from gisapp.analysis.overlaps import AnalysisParams, AnalysisResult, find_overlaps
from gisapp.store import Store
from gisapp.store.postgis import PostGISStore

LAYERS = ("construction_permits", "sidewalk_permits", "wards", "sidewalks")


def analyze_store(store: Store, params: AnalysisParams) -> tuple[AnalysisResult, float]:
    """Every finding of ``store``, and the seconds spent reading its layers (0 when nothing was read).

    A PostGIS store computes them itself (:func:`gisapp.analysis.sql.find_overlaps`,
    nothing read into Python); any other store's layers are read and
    analysed by :func:`gisapp.analysis.overlaps.find_overlaps`.  Both give the same findings.
    """
    if isinstance(store, PostGISStore):
        return sql.find_overlaps(store, params), 0.0
    started = time.perf_counter()
    layers = {name: store.read(name) for name in LAYERS}
    read_s = time.perf_counter() - started
    return find_overlaps(layers["construction_permits"], layers["sidewalk_permits"], layers["wards"], params,
                         sidewalks=layers["sidewalks"]), read_s
