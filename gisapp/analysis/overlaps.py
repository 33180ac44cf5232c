"""Overlap analysis: sidewalk-use permits against construction sites and each other.

Pure geopandas/shapely/numpy: no Flask, no store.  :func:`find_overlaps`
takes the three layers as GeoDataFrames and returns the findings (the
``findings`` layer of :mod:`gisapp.schema`), the features it had to skip
and why, and a per-ward summary (:func:`summarize`, which also works on a
stored findings layer).  Everything is measured in EPSG:5899 and date
ranges are inclusive: a permit ending on the day another starts overlaps
it by one day.

Finding kinds (``a_id`` / ``b_id``):

``MERGE_CANDIDATE`` (dossier / sidewalk permit)
    The permit lies within ``distance_m`` of the parcel (exactly
    ``distance_m`` counts), its period overlaps the works period — from
    ``issued_on``, or ``received_on`` when not issued, for ``works_months``
    calendar months — and it is not linked to that dossier.  Geometry: the
    sidewalk permit's polygon; ``distance_m``: parcel to permit.
``LINKED`` (dossier / sidewalk permit)
    The same, where the permit's ``construction_dossier_code`` already
    names the dossier (the merged procedure in use).
``CLASH`` (permit / permit, smaller number first)
    Two sidewalk permits intersecting with positive area (touching edges
    do not count) whose periods overlap.  Geometry: the intersection.
``OPPORTUNITY`` (permit / permit)
    The same intersection; the periods do not overlap but the later one
    starts at most ``gap_days`` after the earlier one ends.  Dates: from
    the first start to the last end; ``overlap_days`` 0.
``CLEARANCE`` (permit / -)
    When a ``sidewalks`` layer is given and the permit lies on it: the
    narrowest free passage beside the permit on some day of its period,
    counting every other permit on those days, is below
    ``min_clearance_m`` (:func:`gisapp.passage.occupancy_passages`).
    Otherwise (no sidewalks, or a permit on none):
    ``sidewalk_width_m - used_width_m`` is below ``min_clearance_m``.
    Geometry: the permit's polygon; dates: the permit's period.
``WARD_MISMATCH`` (dossier / ward key)
    The declared ``ward_code`` differs from the ward holding the largest
    part of the parcel among the wards in force on ``received_on``
    (``b_id`` empty when the parcel lies outside them all).  Dossiers
    received on a day no ward is in force are not judged.

The ward of every finding is the ward holding the largest part of its
geometry among the wards in force on ``overlap_start``.

Speed: candidate pairs come from a numpy grid join of bounding boxes
(grown by the distance), are cut by numpy date masks, and only the
survivors meet a shapely predicate; intersections are computed only for
pairs that truly intersect.  Convex quadrilaterals (what nearly every
parcel and strip is) are checked valid, bounded, measured apart and tested
for overlap in numpy (:mod:`gisapp.analysis.convex`), with the same answers
as GEOS: GEOS takes the other shapes and the cases numpy cannot decide
beyond doubt.  Given as WKB, the parcels and permits become shapely
objects only for those, the overlays and the findings' own geometry (a
finding on a permit's polygon takes the MultiPolygon WKB of the permit's
WKB).  There is no Python loop over pairs, and no Python string per
finding: ids, codes and detail texts are Arrow strings (the ids taken from
the layers', each distinct detail text formatted once), compared and
gathered by Arrow or by compiled loops over Arrow's buffers
(:mod:`gisapp.analysis.keys`), which, like GEOS and most of numpy, release
the GIL.  The
layers are prepared side by side, the kinds of findings are found side by
side (the construction findings, the longest, start as soon as both layers
are ready; what only later stages need is read meanwhile) and each block is
finished (wards, MultiPolygon WKB, ids) in the thread that made it; long
GEOS calls (validity, distance, overlay) are split over threads too.  Within
a kind, the row order follows the pair search (deterministic for the same
input).  The findings come out as Arrow columns and WKB
(:attr:`AnalysisResult.rows`), which the stores write as they are; their
objects are made only when asked for (:attr:`AnalysisResult.findings`).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from gisapp import domain, geo, schema
from gisapp.analysis import convex
from gisapp.analysis.geoms import BoxTree, Geometries
from gisapp.analysis.keys import arrow_texts, equal_at, gather, siphash
from gisapp.analysis.spatial import AREA_EPSILON, NAT, WardIndex, bbox_pairs, is_valid
from gisapp.formats import derive
from gisapp.passage import occupancy_passages, split_over_cpus
from gisapp.schema import FINDINGS, STORE_CRS

__all__ = [
    "KINDS",
    "TOTAL",
    "AnalysisParams",
    "AnalysisResult",
    "empty_findings",
    "find_overlaps",
    "finding_ids",
    "findings_frame",
    "findings_rows",
    "summarize",
]

#: Finding kinds in report order.
#: (``UNPERMITTED`` findings are not computed here: they come from inspections, :mod:`gisapp.inspections`.)
KINDS: tuple[str, ...] = tuple(k for k in domain.FINDING_KINDS if k != "UNPERMITTED")
#: Every kind the findings layer holds, computed or recorded: the per-ward summary counts each.
SUMMARY_KINDS: tuple[str, ...] = tuple(domain.FINDING_KINDS)
#: Prefix of the finding id of each kind.
ID_PREFIX = {"MERGE_CANDIDATE": "MC", "LINKED": "LK", "CLASH": "CL",
             "OPPORTUNITY": "OP", "CLEARANCE": "CR", "WARD_MISMATCH": "WM"}
#: Kinds whose dossiers "needed the sidewalk".
NEEDED_SIDEWALK = ("LINKED", "MERGE_CANDIDATE")
#: Label of the district total row of the summary.
TOTAL = "TOTAL"
#: Slack (m) on distance comparisons, so that exactly *d* apart is within *d*.
DISTANCE_EPSILON = 1e-6
#: Decimals kept of what the analysis measures, as much as the data supports: areas to the cm² (m², 4
#: decimals), distances to the mm (m, 3).  Rounded where measured (both paths), so the stored findings,
#: their texts, the API, the exports and the tiles agree, without float noise (3.864000000154709, 4.41e-11).
AREA_DECIMALS = 4
DISTANCE_DECIMALS = 3
#: Layer names as used in ``skipped``.
CONSTRUCTION, SIDEWALK, WARDS = "construction_permits", "sidewalk_permits", "wards"
#: Key of the SipHash behind finding ids (16 bytes; changing it changes every id).
_HASH_KEY = "gisapp-finding-1"
#: Below this many items a vectorised shapely call is not split over threads.
_PARALLEL_MIN = 20_000
#: Threads for independent stages and for splitting long shapely calls.
_WORKERS = max(2, min(os.cpu_count() or 1, 4))
_TEXT = np.dtypes.StringDType()
#: Convex quadrilaterals are checked and measured in numpy (:mod:`gisapp.analysis.convex`); False: GEOS for all
#: (the exact path the numpy one is tested against).
_QUADS = True


@dataclass(frozen=True)
class AnalysisParams:
    """Parameters of an analysis run.

    ``as_of``: the data's as-of date.  When set, dossiers received after it
    are skipped (and reported) and an ``issued_on`` after it counts as not
    issued yet.
    """

    distance_m: float = 5.0
    gap_days: int = 90
    min_clearance_m: float = 1.5
    works_months: int = domain.WORKS_MONTHS
    as_of: dt.date | None = None

    def __post_init__(self):
        """Reject parameters that make no sense, naming the parameter."""
        for name in ("distance_m", "gap_days", "min_clearance_m", "works_months"):
            value = getattr(self, name)
            if value is None or not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")
        for name in ("gap_days", "works_months"):
            if int(getattr(self, name)) != getattr(self, name):
                raise ValueError(f"{name} must be a whole number, not {getattr(self, name)!r}")

    def as_meta(self) -> dict:
        """The parameters as JSON-ready values (dates as ISO text)."""
        out = asdict(self)
        out["as_of"] = self.as_of.isoformat() if self.as_of else None
        return out


@dataclass(frozen=True)
class AnalysisResult:
    """What :func:`find_overlaps` returns.

    ``rows``: the findings layer (grouped by kind in :data:`KINDS` order;
    the same input gives the same rows in the same order) without a Python
    object per value, as :meth:`gisapp.store.base.Store.write` takes it
    (what ``gisapp analyze`` stores): a plain frame of the layer's columns,
    texts Arrow-backed (:data:`gisapp.schema.TEXT_DTYPE`, missing as null),
    dates datetime64[ms], ``overlap_days`` Int64, and ``geometry`` the WKB
    of each finding's geometry (EPSG:5899) in an Arrow binary column: a
    computed finding's is the little-endian MultiPolygon WKB the stores
    write (:func:`findings_rows` makes such rows of a GeoDataFrame of
    findings); ``findings``: the same rows as a
    GeoDataFrame (texts as ``str``, ``None`` where missing; shapely
    geometries: MultiPolygons for the computed findings), made on first use
    (:func:`findings_frame`); ``skipped``: one row per feature left out or
    only partly analysed (``layer``, ``id``, ``ward_code`` as declared,
    ``reason``); ``summary``: see :func:`summarize`; ``timings``: seconds
    per stage.
    """

    rows: pd.DataFrame
    skipped: pd.DataFrame
    summary: pd.DataFrame
    params: AnalysisParams
    timings: dict = field(default_factory=dict)

    @functools.cached_property
    def findings(self) -> gpd.GeoDataFrame:
        """:attr:`rows` as a GeoDataFrame of objects (:func:`findings_frame`), made once, on first use."""
        return findings_frame(self.rows)


@dataclass(frozen=True)
class _Features:
    """The usable features of a layer as aligned numpy arrays."""

    hashes: np.ndarray  # uint64 hash of each id
    geoms: Geometries  # the geometries (shapely objects made where asked)
    bounds: np.ndarray  # (n, 4)
    start: np.ndarray  # int64 days since 1970 (NAT when missing)
    end: np.ndarray  # int64 days, inclusive
    extra: dict  # column name -> ndarray
    quad: np.ndarray  # bool: a strictly convex quadrilateral (:func:`convex.quads`)
    xy: np.ndarray  # (n, 4, 2) its corners (NaN for the other rows)
    names: pa.Array  # the ids as Arrow large strings (null where missing): the findings' ``a_id`` and ``b_id``

    def __len__(self) -> int:
        """Number of features."""
        return len(self.hashes)


# -- public API ----------------------------------------------------------------------


def find_overlaps(construction: gpd.GeoDataFrame, sidewalk: gpd.GeoDataFrame,
                  wards: gpd.GeoDataFrame, params: AnalysisParams | None = None,
                  sidewalks: gpd.GeoDataFrame | None = None) -> AnalysisResult:
    """Every finding between construction dossiers, sidewalk permits and wards.

    Parameters
    ----------
    construction, sidewalk, wards:
        Frames with (at least) the analysed columns of the
        ``construction_permits``, ``sidewalk_permits`` and ``wards`` layers.
        Dates may be datetime64, dates or ISO text.  A frame whose CRS is
        not EPSG:5899 is reprojected; one without a CRS is taken as EPSG:5899.
        The geometries may also come as WKB in EPSG:5899, a plain frame's
        Arrow binary ``geometry`` column (what
        :func:`gisapp.analysis.run.read_layer` gives with ``wkb``): the
        convex quadrilaterals' corners are then read from the WKB, and
        shapely objects made only for the rows GEOS must see
        (:class:`gisapp.analysis.geoms.Geometries`); the findings are the same.
    params:
        :class:`AnalysisParams` (the defaults when ``None``).
    sidewalks:
        The ``sidewalks`` layer (``width_m``, polygons), if any: clearance
        is then measured from geometry where a permit lies on a sidewalk.

    Returns
    -------
    AnalysisResult
        Bad features never raise: they are listed in ``skipped``.
    """
    params = params or AnalysisParams()
    clock = _Clock()
    # independent stages run side by side: GEOS and numpy release the GIL for most of their work
    with ThreadPoolExecutor(_WORKERS) as pool:
        cons_job = pool.submit(_prepare_construction, construction, params)
        side, measure = _prepare_sidewalk(sidewalk, sidewalks)
        ward, skip_w = _prepare_wards(wards)

        def finished(make, *args) -> dict:
            """The block ``make(*args)``, finished (wards, MultiPolygon WKB, ids) in the same thread."""
            return _finish(make(*args), ward, side)

        # the construction findings, the longest block, start once both layers are ready: what only later stages
        # need (the codes the permits name, the dossiers' declared wards, the passages) is made here meanwhile
        pairs = pool.submit(finished, _sidewalk_pair_findings, side, params, ward)
        cons, skip_c = cons_job.result()
        links: Future = Future()
        construction_job = pool.submit(finished, _construction_findings, cons, side, params, links)
        try:
            links.set_result(_take(_names(_column(sidewalk, "construction_dossier_code")), side.extra["row"]))
        except BaseException as error:
            links.set_exception(error)
            raise
        declared = _column(construction, "ward_code")
        cons.extra["declared"] = declared  # (read as text where needed)
        skip_s = measure()
        skipped = pd.concat([skip_c, skip_s, skip_w], ignore_index=True)
        clock.lap("prepare")
        declared_text = _strings(declared)
        labels = _factorize_labels(ward.extra["code"], _text(declared) if declared_text is None else declared_text,
                                   skipped["ward_code"].to_numpy(dtype=object))
        clearance = finished(_clearance_findings, side, params)
        mismatch = finished(_ward_mismatch_findings, cons, ward, labels)
        blocks = [construction_job.result(), pairs.result(), clearance, mismatch]  # in KINDS order
    clock.lap("findings")
    rows, cols = _assemble(blocks)
    clock.lap("assemble")
    names, (w_lab, d_lab, s_lab) = labels
    names, none = _none_label(names)
    f_lab = np.where(cols["ward_index"] >= 0, w_lab[np.maximum(cols["ward_index"], 0)] if len(w_lab) else none, none)
    needed = _used(cols["dossier_row"][np.isin(cols["kind"], _ranks(NEEDED_SIDEWALK))], len(d_lab))[0]
    summary = _summary_table(names, f_lab, cols["kind"], d_lab, d_lab[needed], s_lab, len(skipped))
    clock.lap("summary")
    return AnalysisResult(rows, skipped, summary, params, clock.laps)


def summarize(findings: pd.DataFrame, construction: pd.DataFrame,
              skipped: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-ward summary of a findings frame, with a district ``TOTAL`` row last.

    Needs only the findings (``kind``, ``a_id``, ``ward_code``) and the
    construction dossiers (``dossier_code``, ``ward_code``), so the CLI, the
    dashboard and anything reading the stored layers count the same way.
    Columns:

    - ``ward_code``: the ward (``None``: findings outside every ward), or ``TOTAL``;
    - one count per finding kind, and ``findings`` (all kinds), by the
      finding's ``ward_code``;
    - ``dossiers``: construction dossiers, by their declared ``ward_code``;
    - ``dossiers_needing_sidewalk``: distinct dossiers with a ``LINKED`` or
      ``MERGE_CANDIDATE`` finding, by the dossier's declared ``ward_code``;
    - ``share_needing_sidewalk``: their ratio (NaN without dossiers);
    - ``skipped``: features the analysis skipped, by declared ward when
      ``skipped`` has a ``ward_code`` column (all of them on ``TOTAL``).
    """
    s_ward = np.empty(0, dtype=object)
    if skipped is not None and "ward_code" in skipped.columns:
        s_ward = _text(skipped["ward_code"])
    names, (f_lab, d_lab, s_lab) = _factorize_labels(
        _text(findings["ward_code"]), _text(construction["ward_code"]), s_ward)
    rank = _ranks(_text(findings["kind"]), SUMMARY_KINDS)
    d_code = _text(construction["dossier_code"])
    a_id = _text(findings["a_id"])[np.isin(rank, _ranks(NEEDED_SIDEWALK, SUMMARY_KINDS))]
    # the declared ward of each needed dossier (its first row), vectorised
    codes, uniques = pd.factorize(np.concatenate([d_code, a_id]).astype(object))
    names, none = _none_label(names)
    ward_of = np.full(len(uniques) + 1, none, dtype=np.int64)  # [-1]: dossiers not in the layer
    ward_of[codes[: len(d_code)][::-1]] = d_lab[::-1]
    n_lab = ward_of[np.unique(codes[len(d_code):])]
    return _summary_table(names, f_lab, rank, d_lab, n_lab, s_lab, 0 if skipped is None else len(skipped))


def empty_findings() -> gpd.GeoDataFrame:
    """An empty findings frame with the layer's typed columns."""
    return findings_frame(_findings_rows(_stack([]), pa.array([], pa.binary())))


def findings_frame(rows: pd.DataFrame) -> gpd.GeoDataFrame:
    """Findings as :attr:`AnalysisResult.rows` holds them as a GeoDataFrame (EPSG:5899) of the layer's columns:
    texts as ``str`` objects (``None`` where missing), the geometries as shapely objects made from the WKB."""
    data = {}
    for f in FINDINGS.fields:
        column = rows[f.name]
        if f.type == "text":
            data[f.name] = pd.Series(derive.arrow_strings(column.array).to_numpy(zero_copy_only=False), dtype=object,
                                     copy=False)
        else:
            data[f.name] = column.array
    frame = pd.DataFrame(data, copy=False)
    return gpd.GeoDataFrame(frame, geometry=derive.geometry_objects(rows["geometry"].array), crs=STORE_CRS,
                            copy=False)


def findings_rows(frame: gpd.GeoDataFrame) -> pd.DataFrame:
    """Findings of a GeoDataFrame typed as the layer's (:func:`findings_frame`'s) as :attr:`AnalysisResult.rows`
    holds them (the geometries as their WKB, a Polygon's as the Polygon's)."""
    texts = {f.name: _large_strings(frame[f.name]) for f in FINDINGS.fields if f.type == "text"}
    wkb = pa.array(shapely.to_wkb(np.asarray(frame.geometry.values, dtype=object), byte_order=1), pa.binary(),
                   from_pandas=True)
    return _rows_frame({f.name: texts[f.name] if f.name in texts else frame[f.name].array for f in FINDINGS.fields},
                       wkb)


def _rows_frame(columns: dict, wkb: pa.Array) -> pd.DataFrame:
    """:attr:`AnalysisResult.rows` of the layer's columns (texts as Arrow large strings) and the geometry's WKB."""
    data = {name: pd.array(values, dtype=schema.TEXT_DTYPE) if isinstance(values, pa.Array) else values
            for name, values in columns.items()}
    data["geometry"] = pd.arrays.ArrowExtensionArray(wkb)
    return pd.DataFrame(data, copy=False)


def _large_strings(values) -> pa.Array:
    """Texts (Arrow, or ``str`` objects with ``None`` where missing) as an Arrow large string array."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(pa.large_string())
    return pa.array(np.asarray(values, dtype=object), type=pa.large_string(), from_pandas=True)


def finding_ids(kinds, a_ids, b_ids) -> np.ndarray:
    """The finding id of each (kind, a, b): ``<prefix>-<16 hex digits>``.

    The same for the same kind and ids in any order, in any run.
    """
    rank = _ranks(np.asarray(kinds, dtype=object))
    if (rank < 0).any():
        raise ValueError(f"unknown finding kind; expected one of {', '.join(KINDS)}")
    return _id_text(rank, _hash_ids(a_ids), _hash_ids(b_ids))


# -- summary ---------------------------------------------------------------------------


def _ranks(kinds, order: tuple[str, ...] = KINDS) -> np.ndarray:
    """Position of each kind in ``order`` (default :data:`KINDS`; -1 when unknown)."""
    return pd.Categorical(np.asarray(kinds, dtype=object), categories=list(order)).codes.astype(np.int64)


def _factorize_labels(*arrays) -> tuple[np.ndarray, list[np.ndarray]]:
    """Ward codes of several arrays as one sorted label set ('' for missing, last) and label arrays.

    The arrays: text (object arrays, ``None`` for missing) or Arrow string arrays (null for missing), which
    Arrow encodes without the interpreter lock (a million dossiers' codes: ~15 ms).
    """
    try:
        strings = pa.concat_arrays([a.cast(pa.large_string()) if isinstance(a, pa.Array)
                                    else pa.array(np.asarray(a, dtype=object), type=pa.large_string(),
                                                  from_pandas=True) for a in arrays])
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all text: the general way
        return _factorize_objects(*arrays)
    encoded = pc.dictionary_encode(pc.fill_null(strings, ""))
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return _sorted_labels(encoded.dictionary.to_numpy(zero_copy_only=False), codes, [len(a) for a in arrays])


def _factorize_objects(*arrays) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`_factorize_labels` of arrays of any values (pandas' factorize)."""
    parts = [np.asarray(a, dtype=object) for a in arrays]
    joined = np.concatenate(parts) if parts else np.empty(0, dtype=object)
    joined = np.where(pd.isna(joined), "", joined)
    codes, names = pd.factorize(joined)
    return _sorted_labels(names, codes, [len(p) for p in parts])


def _sorted_labels(names, codes: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct codes ``names`` sorted ('' last) and ``codes`` (positions in ``names``) cut into ``sizes``."""
    names = np.asarray(names, dtype=object)
    order = sorted(range(len(names)), key=lambda k: (names[k] == "", str(names[k])))
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    codes = rank[codes]
    cut = np.cumsum([0, *sizes])
    return names[order], [codes[cut[k]:cut[k + 1]] for k in range(len(sizes))]


def _none_label(names: np.ndarray) -> tuple[np.ndarray, int]:
    """The label set with '' (no ward) present, and the position of ''."""
    blank = np.flatnonzero(names == "")
    if len(blank):
        return names, int(blank[0])
    return np.append(names, ""), len(names)


def _summary_table(names, f_lab, f_rank, d_lab, n_lab, s_lab, n_skipped) -> pd.DataFrame:
    """The table of :func:`summarize` from integer ward labels into ``names`` ('' = no ward)."""
    def tally(lab) -> np.ndarray:
        """Occurrences of each ward among the labels ``lab``."""
        return np.bincount(np.asarray(lab, dtype=np.int64), minlength=len(names)).astype(np.int64)

    table = pd.DataFrame(index=pd.RangeIndex(len(names)))
    for r, kind in enumerate(SUMMARY_KINDS):
        table[kind] = tally(f_lab[f_rank == r])
    table["findings"] = tally(f_lab)
    table["dossiers"] = tally(d_lab)
    table["dossiers_needing_sidewalk"] = tally(n_lab)
    table["skipped"] = tally(s_lab)
    table = table[table.to_numpy().any(axis=1)]  # wards that occur nowhere have no row
    ward_code = np.asarray(names, dtype=object)[table.index.to_numpy()]
    total = table.sum(axis=0).to_frame().T.astype(np.int64)
    total["skipped"] = n_skipped
    table = pd.concat([table, total], ignore_index=True)
    dossiers = table["dossiers"].to_numpy()
    table["share_needing_sidewalk"] = np.divide(table["dossiers_needing_sidewalk"].to_numpy(), dossiers,
                                                out=np.full(len(table), np.nan), where=dossiers > 0)
    ward_code = np.append(np.where(ward_code == "", None, ward_code), TOTAL)
    table.insert(0, "ward_code", pd.Series(ward_code, dtype=object))
    return table[["ward_code", *SUMMARY_KINDS, "findings", "dossiers", "dossiers_needing_sidewalk",
                  "share_needing_sidewalk", "skipped"]]


# -- preparing the inputs ----------------------------------------------------------------


class _Clock:
    """Seconds spent per stage (wall clock)."""

    def __init__(self):
        """Start the clock."""
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        """Record the time since the previous lap under ``name``."""
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now


def _column(frame: pd.DataFrame, name: str):
    """Column ``name`` of ``frame``, or an all-null object array when absent."""
    if name in frame.columns:
        return frame[name]
    return np.full(len(frame), None, dtype=object)


def _text(values, rows: np.ndarray | None = None) -> np.ndarray:
    """A column as an object array of strings, ``None`` where missing or blank (``rows``: those rows only).

    Text is taken as given (the store strips it); other values become text
    (whether the column is text is judged on the whole column, so the rows
    get the values the whole would have).  Vectorised, except for columns
    that are not text at all.
    """
    def objects(values) -> np.ndarray:
        """The values as a new object array (``None`` where an Arrow column is null)."""
        if isinstance(values, (pd.Series, pd.Index)) and isinstance(values.dtype, pd.ArrowDtype):
            return values.to_numpy(dtype=object, na_value=None)  # (not pd.NA, which compares to NA)
        if isinstance(values, (pd.Series, pd.Index)):
            return values.to_numpy(dtype=object, copy=True)
        return np.array(values, dtype=object)

    def is_text(arr) -> bool:
        """Whether the values are all text (or missing)."""
        return pd.api.types.infer_dtype(arr, skipna=True) in ("string", "empty")

    if rows is None:
        arr = objects(values)
    else:
        arr = objects(values.iloc[rows] if isinstance(values, pd.Series) else np.asarray(values, dtype=object)[rows])
    missing = pd.isna(arr)
    text = is_text(arr)
    if text and rows is not None and any(v != v.strip() for v in arr[~missing]):
        # only then does it matter whether the whole column is text (a look at every value)
        text = is_text(objects(values))
    if not text:
        arr = np.array([None if m else str(v).strip() for v, m in zip(arr, missing)], dtype=object)
    arr[missing | (arr == "")] = None
    return arr


def _days(values) -> np.ndarray:
    """Dates (datetime64, dates or ISO text) as int64 days since 1970; missing → ``NAT``.

    A column of ``datetime.date`` objects (what GDAL gives for a date field)
    is converted by Arrow at once (~50 ns a value; numpy's ``astype`` takes
    ~900 ns, :func:`schema.to_dates` several µs).
    """
    arr = values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else np.asarray(values)
    if arr.dtype.kind == "M":  # naive datetime64: the day (floored, as ``to_dates``' normalize), NaT → NAT
        return arr.astype("datetime64[D]").astype(np.int64)
    if arr.dtype == object and len(arr) and pd.api.types.infer_dtype(arr, skipna=True) == "date":
        try:
            days = pa.array(arr, type=pa.date32(), from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError):  # e.g. datetimes among the dates: the general way
            pass
        else:
            out = days.cast(pa.int32()).fill_null(0).to_numpy().astype(np.int64)
            out[days.is_null().to_numpy(zero_copy_only=False)] = NAT
            return out
    return schema.to_dates(values).to_numpy().astype("datetime64[D]").astype(np.int64)


def _geometries(frame) -> Geometries:
    """The frame's geometries in EPSG:5899.

    A GeoDataFrame's shapely geometries, or a plain frame's ``geometry``
    column: shapely geometries, or WKB in EPSG:5899 as an Arrow binary
    column (:func:`gisapp.analysis.run.read_layer`; objects are then made
    only for the rows the analysis hands to GEOS).
    """
    if isinstance(frame, gpd.GeoDataFrame):
        if frame.crs is not None and not frame.crs.equals(STORE_CRS):
            frame = frame.to_crs(STORE_CRS)
        return Geometries.of_objects(frame.geometry.values)
    column = frame["geometry"]
    if isinstance(column.dtype, pd.ArrowDtype) and (pa.types.is_binary(column.dtype.pyarrow_dtype)
                                                    or pa.types.is_large_binary(column.dtype.pyarrow_dtype)):
        return Geometries.of_wkb(pa.array(column.array))
    return Geometries.of_objects(column.to_numpy(dtype=object))


def _keys(values) -> tuple[np.ndarray, pa.Array]:
    """Each key's hash (:func:`_hash_ids`: 0 where missing or blank) and the keys as :func:`_names` gives them.

    A text column is hashed over its Arrow strings (:func:`keys.siphash`: no Python object per key, the same
    bits as :func:`_hash_ids`); others take :func:`_text`'s general path.
    """
    strings = _strings(values)
    if strings is None:
        ids = _text(values)
        return _hash_ids(ids, ids == None), _large_strings(ids)  # noqa: E711 - numpy: element-wise
    return siphash(strings, _HASH_KEY), strings


def _ids_at(names: pa.Array, rows: np.ndarray) -> np.ndarray:
    """The keys ``names`` (Arrow strings) at ``rows`` (positions) as an object array, ``None`` where missing."""
    return names.take(pa.array(rows, type=pa.int64())).to_numpy(zero_copy_only=False)


def _names(values) -> pa.Array:
    """A key column as Arrow large strings (null where missing or blank), without an object array."""
    strings = _strings(values)
    return _large_strings(_text(values)) if strings is None else strings


def _strings(values) -> pa.Array | None:
    """A column of text as Arrow large strings (null where missing or blank; other values as given), made without
    a Python object; ``None`` when the values are not all text (or missing).

    Arrow infers the type as it converts, which is the check: text alone gives strings (bytes give binary,
    other values fail), missing values alone nulls.  (On a million codes, 80% missing, ~3x faster than a
    typed conversion after pandas' look at every value.)
    """
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.ArrowDtype):
        strings = pa.chunked_array(values.array._pa_array).combine_chunks()
    else:
        objects = values.to_numpy(dtype=object) if isinstance(values, (pd.Series, pd.Index)) \
            else np.asarray(values, dtype=object)
        try:
            strings = arrow_texts(objects)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
    if not (pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type)
            or pa.types.is_null(strings.type)):
        return None
    strings = strings.cast(pa.large_string())
    return pc.if_else(pc.equal(pc.binary_length(strings), 0), pa.scalar(None, pa.large_string()), strings)


def _hash_ids(ids, missing: np.ndarray | None = None) -> np.ndarray:
    """uint64 SipHash of each id; 0 for a missing id (``missing``: the mask, when known)."""
    arr = np.asarray(ids, dtype=object)
    missing = pd.isna(arr) if missing is None else missing
    if len(arr) == 0:
        return np.empty(0, dtype=np.uint64)
    out = pd.util.hash_array(np.where(missing, "", arr), hash_key=_HASH_KEY, categorize=False)
    out[missing] = 0
    return out


class _Reasons:
    """Why rows of a layer are skipped, gathered sparsely: no text is made for good rows."""

    def __init__(self, n: int):
        """Reasons for ``n`` rows (none yet)."""
        self.n = n
        self._rows: list[np.ndarray] = []
        self._texts: list[np.ndarray] = []

    def add(self, where, text) -> None:
        """Give the rows ``where`` (a mask or row numbers) the reason ``text`` (one, or one per row)."""
        rows = np.flatnonzero(where) if np.asarray(where).dtype == bool else np.asarray(where, dtype=np.int64)
        if len(rows):
            self._rows.append(rows)
            self._texts.append(np.broadcast_to(np.asarray(text, dtype=object), rows.shape))

    def mask(self) -> np.ndarray:
        """Rows with at least one reason."""
        out = np.zeros(self.n, dtype=bool)
        for rows in self._rows:
            out[rows] = True
        return out

    def joined(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, reasons): each row with a reason once, its reasons joined by '; ' in the order given."""
        if not self._rows:
            return np.empty(0, np.int64), np.empty(0, dtype=object)
        rows = np.concatenate(self._rows)
        texts = np.concatenate(self._texts)
        order = np.argsort(rows, kind="stable")
        rows, texts = rows[order], texts[order]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        groups = np.split(texts, starts[1:])
        return rows[starts], np.array(["; ".join(g) for g in groups], dtype=object)


def _quads(geoms: Geometries) -> tuple[np.ndarray, np.ndarray]:
    """The convex quadrilaterals among ``geoms`` (:meth:`Geometries.quads`: the mask and the corners; none when
    not :data:`_QUADS`)."""
    if _QUADS:
        return geoms.quads()
    return np.zeros(len(geoms), dtype=bool), np.full((len(geoms), 4, 2), np.nan)


def _check_geometries(geoms: Geometries, reasons: _Reasons,
                      quads: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Add the reasons why geometries cannot be analysed: missing, empty, not polygonal, invalid.

    Returns the convex quadrilaterals among them (:func:`_quads`, or ``quads`` when found already), which are
    valid without asking GEOS (nor made into shapely objects).
    """
    quad, xy = _quads(geoms) if quads is None else quads
    rest = np.flatnonzero(~quad)
    other = geoms[rest]
    types = shapely.get_type_id(other)
    empty = types == -1
    empty[~empty] = shapely.is_empty(other[~empty])
    reasons.add(rest[empty], "geometry is empty or missing")
    wrong = np.flatnonzero(~empty & (types != 3) & (types != 6))
    reasons.add(rest[wrong], [f"geometry is not a polygon ({g.geom_type})" for g in other[wrong]])
    check = np.flatnonzero(~empty & ((types == 3) | (types == 6)))
    bad = check[~_parallel(is_valid, other[check])]
    reasons.add(rest[bad], [f"invalid geometry: {r}" for r in shapely.is_valid_reason(other[bad])])
    return quad, xy


def _check_keys(names: pa.Array, hashes: np.ndarray, key: str, reasons: _Reasons) -> None:
    """Add 'missing <key>' and 'duplicate <key>' (rows after the first of a key; missing ids hash to 0; ``names``:
    the keys as :func:`_names` gives them, read at those rows only)."""
    from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

    missing = hashes == 0
    zero = np.flatnonzero(missing)
    missing[zero] = pd.isna(_ids_at(names, zero))
    reasons.add(missing, f"missing {key}")
    maybe = np.flatnonzero(kernels.repeated_values(np.asarray(hashes, dtype=np.uint64), missing))
    if len(maybe):  # confirm on the text: a hash collision is not a duplicate
        reasons.add(maybe[pd.Series(_ids_at(names, maybe), dtype=object).duplicated(keep="first").to_numpy()],
                    f"duplicate {key}")


def _skipped_frame(layer: str, names: pa.Array, wards, reasons: _Reasons) -> pd.DataFrame:
    """The rows of one layer with a reason, as ``layer, id, ward_code, reason`` (``names``: the ids as
    :func:`_names` gives them; ``wards``: the declared ward of every row as :func:`_text` gives it, or the column,
    then read at those rows only)."""
    rows, text = reasons.joined()
    return pd.DataFrame({
        "layer": np.full(len(rows), layer, dtype=object),
        "id": _ids_at(names, rows),
        "ward_code": np.asarray(wards, dtype=object)[rows] if isinstance(wards, np.ndarray) else _text(wards, rows),
        "reason": text,
    }, dtype=object)


def _features(hashes, names: pa.Array, geoms: Geometries, start, end, keep, shapes, **extra) -> _Features:
    """The kept rows as :class:`_Features` (``names``: the ids as Arrow strings; ``shapes``: the quads' mask and
    corners of every row)."""
    def kept(values) -> np.ndarray:
        """The kept rows of ``values`` (the array itself, not a copy, when every row is kept)."""
        values = np.asarray(values)
        return values if every else values[keep]

    every = bool(keep.all())
    g = geoms if every else geoms.take(keep)
    quad, xy = kept(shapes[0]), kept(shapes[1])
    bounds = convex.bounds(xy)  # the quads' (in numpy, without the GIL); NaN for the other rows
    rest = np.flatnonzero(~quad)
    bounds[rest] = shapely.bounds(g[rest]).reshape(-1, 4)
    return _Features(hashes=kept(hashes), geoms=g, bounds=bounds, start=kept(start), end=kept(end),
                     extra={name: kept(values) for name, values in extra.items()}, quad=quad, xy=xy,
                     names=names if every else names.filter(pa.array(keep)))


def _prepare_construction(frame: gpd.GeoDataFrame, params: AnalysisParams):
    """Usable dossiers with their works period, and the skipped ones.

    The declared ward of every dossier (``extra["declared"]``: the column, by input row) is the caller's to
    add: only the ward mismatches need it (read as text there and for the summary's labels, while the other
    findings are looked for).
    """
    hashes, names = _keys(_column(frame, "dossier_code"))
    geoms = _geometries(frame)
    received = _days(_column(frame, "received_on"))
    issued = _days(_column(frame, "issued_on"))
    reasons = _Reasons(len(hashes))
    _check_keys(names, hashes, "dossier_code", reasons)
    shapes = _check_geometries(geoms, reasons)
    reasons.add(received == NAT, "missing received_on")
    if params.as_of is not None:
        as_of = np.datetime64(params.as_of, "D").astype(np.int64)
        reasons.add((received != NAT) & (received > as_of),
                    f"received after the as-of date {params.as_of.isoformat()}")
        issued = np.where(issued > as_of, NAT, issued)
    works_start = np.where(issued != NAT, issued, received)
    works_end = np.where(works_start == NAT, NAT, _add_months(works_start, int(params.works_months)) - 1)
    cons = _features(hashes, names, geoms, works_start, works_end, ~reasons.mask(), shapes,
                     received=received, row=np.arange(len(hashes)))
    return cons, _skipped_frame(CONSTRUCTION, names, _column(frame, "ward_code"), reasons)


def _prepare_sidewalk(frame: gpd.GeoDataFrame, sidewalks: gpd.GeoDataFrame | None = None
                      ) -> tuple[_Features, Callable[[], pd.DataFrame]]:
    """Usable sidewalk permits, and a function that measures their passages and returns the skipped ones.

    The passages (``free``, ``free_day`` in the features' ``extra``, which only
    the clearance findings read) come second, so that other findings can be
    looked for while they are measured.  A permit without widths (and on no
    sidewalk of ``sidewalks``) stays in the spatial analysis; only its
    clearance is not checked, and that is reported as a skip reason.
    """
    # the quads first: read by a compiled loop (without the interpreter lock) while the dossiers' ids, in the
    # other thread, become Arrow strings (holding it); then the other way round
    geoms = _geometries(frame)
    quads = _quads(geoms)
    start = _days(_column(frame, "start_on"))
    end = _days(_column(frame, "end_on"))
    hashes, names = _keys(_column(frame, "permit_no"))
    declared = _column(frame, "ward_code")  # (read for the skipped permits only)
    width = pd.to_numeric(pd.Series(_column(frame, "sidewalk_width_m")), errors="coerce").to_numpy(dtype=float)
    used = pd.to_numeric(pd.Series(_column(frame, "used_width_m")), errors="coerce").to_numpy(dtype=float)
    reasons = _Reasons(len(hashes))
    _check_keys(names, hashes, "permit_no", reasons)
    shapes = _check_geometries(geoms, reasons, quads)
    reasons.add((start == NAT) & (end != NAT), "missing start_on")
    reasons.add((start != NAT) & (end == NAT), "missing end_on")
    reasons.add((start == NAT) & (end == NAT), "missing start_on and end_on")
    reasons.add((start != NAT) & (end != NAT) & (end < start), "end_on before start_on")
    keep = ~reasons.mask()
    side = _features(hashes, names, geoms, start, end, keep, shapes, width=width, used=used,
                     row=np.arange(len(hashes)))

    def measure() -> pd.DataFrame:
        """The passages (``side.extra``'s ``free`` and ``free_day``), then the skipped permits."""
        free, free_day = passages(side, sidewalks)
        unmeasured = np.ones(len(hashes), dtype=bool)
        unmeasured[np.flatnonzero(keep)[~np.isnan(free)]] = False
        reasons.add((np.isnan(width) | np.isnan(used)) & unmeasured,
                    "clearance not checked: missing sidewalk_width_m or used_width_m")
        side.extra["free"], side.extra["free_day"] = free, free_day
        return _skipped_frame(SIDEWALK, names, declared, reasons)

    return side, measure


def passages(side: _Features, sidewalks: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
    """The narrowest free passage (m) beside each sidewalk permit and its day, NaN / NAT where not measured.

    Measured from the geometry of ``sidewalks`` (none: nothing measured),
    with the permits' corners and boxes known (their objects are made only
    where GEOS must measure).
    """
    free, day = np.full(len(side), np.nan), np.full(len(side), NAT, dtype=np.int64)
    if sidewalks is None or not len(sidewalks) or not len(side):
        return free, day
    walk = _geometries(sidewalks)[:]
    usable = ~shapely.is_missing(walk)
    usable[usable] = shapely.is_valid(walk[usable]) & ~shapely.is_empty(walk[usable])
    widths = pd.to_numeric(pd.Series(_column(sidewalks, "width_m")), errors="coerce").to_numpy(dtype=float)
    value, when = occupancy_passages(side.geoms, side.start, side.end, walk[usable], widths[usable],
                                     quads=(side.quad, side.xy), tree=BoxTree(side.geoms, side.bounds))
    return value, np.where(when >= 0, when, NAT)


def _prepare_wards(frame: gpd.GeoDataFrame) -> tuple[_Features, pd.DataFrame]:
    """Usable wards sorted by key (so ties resolve the same way every run), and the skipped ones.

    The geometries are copied before being prepared, leaving the caller's
    objects untouched.
    """
    codes = _text(_column(frame, "ward_code"))
    keys = _text(_column(frame, "ward_key"))
    start = _days(_column(frame, "valid_from"))
    end = _days(_column(frame, "valid_to"))
    missing_key = pd.isna(keys)
    keys[missing_key] = [f"{c}-{d}" for c, d in zip(codes[missing_key], start[missing_key].astype("datetime64[D]"))]
    hashes, names = _hash_ids(keys), _large_strings(keys)
    geoms = _geometries(frame)
    reasons = _Reasons(len(keys))
    _check_keys(names, hashes, "ward_key", reasons)
    reasons.add(pd.isna(codes), "missing ward_code")
    _check_geometries(geoms, reasons)
    reasons.add(start == NAT, "missing valid_from")
    reasons.add((start != NAT) & (end != NAT) & (end < start), "valid_to before valid_from")
    rows = np.flatnonzero(~reasons.mask())
    rows = rows[np.argsort(keys[rows].astype(str), kind="stable")]
    own = shapely.from_wkb(shapely.to_wkb(geoms[rows])) if len(rows) else geoms[rows]
    shapely.prepare(own)
    ward = _Features(hashes=hashes[rows], geoms=Geometries.of_objects(own),
                     bounds=shapely.bounds(own).reshape(-1, 4),
                     start=start[rows], end=end[rows], quad=np.zeros(len(rows), dtype=bool),
                     xy=np.full((len(rows), 4, 2), np.nan), names=_large_strings(keys[rows]),
                     extra={"code": codes[rows], "name": _text(_column(frame, "name"))[rows],
                            "index": WardIndex.build(own, start[rows], end[rows])})
    return ward, _skipped_frame(WARDS, names, codes, reasons)


def _add_months(days: np.ndarray, months: int) -> np.ndarray:
    """``days`` plus ``months`` calendar months (clamped to the month's end); NAT stays NAT."""
    missing = days == NAT
    if len(days) > 1000 and not missing.all():
        # dates repeat (a few years of days): each distinct day once, from a table of the span
        known = days[~missing]
        first, last = int(known.min()), int(known.max())
        if last - first < len(days) // 2:
            table = _add_months(np.arange(first, last + 1, dtype=np.int64), months)
            return np.where(missing, NAT, table[np.where(missing, first, days) - first])
    d = np.where(missing, 0, days).astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    day_of_month = (d - month.astype("datetime64[D]")).astype(np.int64)
    target = month + months
    length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(np.int64)
    out = (target.astype("datetime64[D]") + np.minimum(day_of_month, length - 1)).astype(np.int64)
    return np.where(missing, NAT, out)


def _parallel(func, *arrays):
    """``func(*arrays)`` split over the CPUs for long arrays (GEOS overlay and distance release the GIL)."""
    return split_over_cpus(func, *arrays, workers=_WORKERS, minimum=_PARALLEL_MIN)


# -- findings ------------------------------------------------------------------------------

_BLOCK_COLUMNS = {
    "kind": np.int64, "dossier_row": np.int64, "a_id": object, "b_id": object, "a_hash": np.uint64, "b_hash": np.uint64,
    "geometry": object, "source": np.int64, "overlap_area_m2": float, "distance_m": float,
    "overlap_start": np.int64, "overlap_end": np.int64, "overlap_days": np.int64,
    "detail": object, "ward_index": np.int64,
}
_BLOCK_DEFAULTS = {"overlap_area_m2": np.nan, "distance_m": np.nan, "overlap_start": NAT, "overlap_end": NAT,
                   "overlap_days": NAT, "ward_index": -2, "source": -1, "dossier_row": -1, "a_hash": 0, "b_hash": 0,
                   "detail": ""}


def _block(kind: str | np.ndarray, n: int, **columns) -> dict:
    """``n`` findings (of one kind, or of the kinds ``kind`` gives) as column arrays; absent columns get their null.

    ``kind`` is stored as its position in :data:`KINDS` (or given so, one per finding); ``source``: row
    of the sidewalk permit whose polygon is the geometry (-1: the finding's
    own); ``dossier_row``: the dossier's row in the input (-1: none);
    ``ward_index`` -2: to be found.
    """
    out = {}
    for name, dtype in _BLOCK_COLUMNS.items():
        value: Any
        if name == "kind":
            value = kind if isinstance(kind, np.ndarray) else KINDS.index(kind) if kind else -1
        else:
            value = columns.get(name)
        if isinstance(value, (pa.Array, _Later, Geometries)):  # ids taken from the features' Arrow strings, a
            # layer's geometries (made into objects only where asked): kept so
            out[name] = value
            continue
        if value is None or np.ndim(value) == 0:
            value = np.full(n, _BLOCK_DEFAULTS.get(name) if value is None else value, dtype=dtype)
        out[name] = np.asarray(value, dtype=dtype)
    return out


def _stack(blocks: list[dict]) -> dict:
    """Blocks of findings concatenated column by column."""
    if not blocks:
        return _block("", 0)
    return {name: _joined([b[name] for b in blocks]) for name in _BLOCK_COLUMNS}


def _joined(parts: list) -> np.ndarray | pa.Array:
    """Columns of blocks one after the other: numpy arrays, or Arrow arrays (texts given as objects made Arrow
    strings to join them)."""
    if not any(isinstance(p, pa.Array) for p in parts):
        return np.concatenate(parts)
    if all(isinstance(p, pa.Array) for p in parts):
        return pa.concat_arrays(parts)
    return pa.concat_arrays([_large_strings(p) for p in parts])


def _take(names: pa.Array, rows: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """The Arrow strings ``names`` at ``rows`` (null where ``missing``), without a Python object per value
    (:func:`gisapp.analysis.keys.gather`)."""
    return gather(names, rows, missing)[0]


@dataclass(frozen=True)
class _Later:
    """A block's text column of ``size`` values made by ``make`` when the block is finished: in the thread that
    makes its WKB and ids, beside its ward look-up (:func:`_finish`), off the path of the block's own thread."""

    make: Callable[[], pa.Array]
    size: int

    @classmethod
    def take(cls, names: pa.Array, rows: np.ndarray) -> _Later:
        """The strings ``names`` at ``rows`` (:func:`_take`), later."""
        return cls(functools.partial(_take, names, rows), len(rows))

    def __len__(self) -> int:
        """Number of values."""
        return self.size

    def taken(self) -> pa.Array:
        """The strings."""
        return self.make()


def _construction_findings(cons: _Features, side: _Features, params: AnalysisParams, links: Future) -> dict:
    """MERGE_CANDIDATE and LINKED findings: sidewalk permits near works in progress.

    ``links``: the dossier code each permit names (``construction_dossier_code`` of ``side``'s rows, Arrow
    strings), to come: it is waited for only when the pairs are known.
    """
    d = float(params.distance_m)
    i, j = bbox_pairs(cons.bounds, side.bounds, d + DISTANCE_EPSILON)
    i, j, dist = _near_pairs(cons, i, side, j, d + DISTANCE_EPSILON)
    dist = np.round(dist, DISTANCE_DECIMALS)
    start = np.maximum(cons.start[i], side.start[j])
    end = np.minimum(cons.end[i], side.end[j])
    days = end - start + 1
    # linked: the permit names the dossier (the texts compared byte for byte, for the pairs whose permit names one)
    link = links.result()
    linked = np.zeros(len(i), dtype=bool)
    named = np.flatnonzero(link.is_valid().to_numpy(zero_copy_only=False)[j])
    linked[named] = equal_at(link, j[named], cons.names, i[named])
    # the merge candidates, then the linked permits, each in pair order: one gather per column (no block per kind
    # to concatenate after)
    order = np.concatenate([np.flatnonzero(~linked), np.flatnonzero(linked)])
    merge = len(order) - int(np.count_nonzero(linked))
    a, b, dist, start, end, days = (v[order] for v in (i, j, dist, start, end, days))
    kind = np.full(len(order), KINDS.index("LINKED"), dtype=np.int64)
    kind[:merge] = KINDS.index("MERGE_CANDIDATE")
    tenths = _tenths(dist)

    def detail() -> pa.Array:
        """The findings' detail texts."""
        return pa.concat_arrays([_texts(_merge_text, tenths[:merge], days[:merge]),
                                 _texts(_linked_text, tenths[merge:], days[merge:])])

    return _block(kind, len(a), a_id=_Later.take(cons.names, a), b_id=_Later.take(side.names, b),
                  a_hash=cons.hashes[a], dossier_row=cons.extra["row"][a], b_hash=side.hashes[b], source=b,
                  distance_m=dist, overlap_start=start, overlap_end=end, overlap_days=days,
                  detail=_Later(detail, len(a)))


def _periods(f: _Features) -> np.ndarray:
    """``(n, 2)`` start and end day of each feature."""
    return np.column_stack([f.start, f.end])


def _near_pairs(p: _Features, i: np.ndarray, q: _Features, j: np.ndarray, cut: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate pairs ``(i, j)`` of ``p`` and ``q`` whose periods meet and whose geometries lie within ``cut``
    (``shapely.distance``), in their order, and that distance; the pairs of quads measured by a compiled loop.

    One pass over the pairs (:func:`gisapp.analysis.kernels.near_pairs`, a share per thread): the periods
    compared, pairs of convex quads measured as :func:`convex.distances` measures them; GEOS measures the
    others, those numpy is not sure of, and those whose distance lies within a hair of a rounding step (mm) or
    of ``cut`` (the search distance), so that rounding and the cut never hang on the last bit.  The values are
    GEOS' but for quads that numpy cannot tell touching from a hair apart (a strip drawn against its parcel)
    while a corner of one lies nearer the other than half a millimetre and ``cut``: 0, as GEOS' value rounds to
    the mm (and within ``cut`` either way).
    """
    from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

    touch = min(0.5 * 10**-DISTANCE_DECIMALS, cut) - 1e-6
    args = (i, j, _periods(p), _periods(q), p.quad, q.quad, p.xy, q.xy, float(cut), touch, float(10**DISTANCE_DECIMALS))
    m = len(i)
    workers = _WORKERS if m >= _PARALLEL_MIN else 1
    cuts = [m * k // workers for k in range(workers + 1)]
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda lo, hi: kernels.near_pairs(*args, lo, hi), cuts[:-1], cuts[1:]))
    i, j, dist, sure = (np.concatenate(col) for col in zip(*parts))
    rest = np.flatnonzero(~sure)
    dist[rest] = _parallel(shapely.distance, p.geoms[i[rest]], q.geoms[j[rest]])
    near = np.flatnonzero(dist <= cut)
    return i[near], j[near], dist[near]


def _intersecting(f: _Features, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``shapely.intersects`` of ``f.geoms[i]`` and ``f.geoms[j]``; pairs of quads by the separating axes.

    Pairs of quads clearly apart or clearly overlapping are settled in
    numpy (:func:`convex.separation`); GEOS answers the rest (those that
    nearly touch, and every other shape).
    """
    out = np.zeros(len(i), dtype=bool)
    both = np.flatnonzero(f.quad[i] & f.quad[j])
    gap = convex.split_pairs(convex.separation, f.xy[i[both]], f.xy[j[both]])[0]
    out[both] = gap < 0
    sure = np.zeros(len(i), dtype=bool)
    sure[both] = np.abs(gap) > convex.EPSILON
    rest = np.flatnonzero(~sure)
    out[rest] = _parallel(shapely.intersects, f.geoms[i[rest]], f.geoms[j[rest]])
    return out


def _overlays(f: _Features, i: np.ndarray, j: np.ndarray) -> tuple[Geometries, pa.Array, np.ndarray, np.ndarray]:
    """``shapely.intersection`` of ``f.geoms[i]`` and ``f.geoms[j]``: ``(geoms, wkb, area, bounds)``; pairs of quads
    without GEOS.

    Pairs of quads crossing cleanly are cut in numpy (:func:`convex.intersections`: the polygon GEOS makes,
    its ring possibly starting at another corner) and written as WKB by a compiled loop
    (:func:`gisapp.analysis.kernels.polygon_wkb`: objects made only where asked, as for the layers); GEOS cuts
    the others, the pairs numpy is not sure of, and those whose area lies within a hair of a rounding step or
    of :data:`AREA_EPSILON`, so that the rounded area never hangs on the last bit.  ``geoms``: the
    intersections (:class:`Geometries`), ``wkb``: their polygonal parts' MultiPolygon WKB as the stores write
    it (:func:`_polygonal_wkb`), ``bounds``: their ``(m, 4)`` boxes.
    """
    from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

    area, bounds = np.empty(len(i)), np.empty((len(i), 4))
    both = np.flatnonzero(f.quad[i] & f.quad[j])
    xy, count, part, sure = convex.split_pairs(convex.intersections, f.xy[i[both]], f.xy[j[both]])
    step = part * 10**AREA_DECIMALS
    sure &= (np.abs(step - np.floor(step) - 0.5) > 1e-6) & (np.abs(part - AREA_EPSILON) > 1e-9)
    done = np.zeros(len(i), dtype=bool)
    done[both[sure]] = True
    offsets, data, bounds[done] = kernels.polygon_wkb(xy[sure], count[sure])
    area[done] = part[sure]
    rest = np.flatnonzero(~done)
    inter = _parallel(shapely.intersection, f.geoms[i[rest]], f.geoms[j[rest]])
    area[rest], bounds[rest] = shapely.area(inter), shapely.bounds(inter).reshape(-1, 4)
    polygons = pa.Array.from_buffers(pa.large_binary(), len(offsets) - 1,
                                     [None, pa.py_buffer(offsets), pa.py_buffer(data)]).cast(pa.binary())
    wkb = _interleaved(done, derive.multipolygon_wkb(polygons), _polygonal_wkb(inter))
    # the WKB of the numpy ones, the objects of the others (null WKB)
    geoms = Geometries.of_wkb(_interleaved(done, polygons, pa.nulls(len(rest), pa.binary())), rest, inter)
    return geoms, wkb, area, bounds


def _sidewalk_pair_findings(side: _Features, params: AnalysisParams, ward: _Features) -> dict:
    """CLASH and OPPORTUNITY findings: sidewalk permits sharing ground, at the same time or close in time.

    Their geometry, the intersection, is found its ward here (no other block has it) and kept as WKB.
    """
    i, j = bbox_pairs(side.bounds, side.bounds, strict=True, same=True)
    period = _periods(side)
    pi, pj = period[i], period[j]
    gap = np.maximum(pi[:, 0], pj[:, 0]) - np.minimum(pi[:, 1], pj[:, 1])
    soon = gap <= params.gap_days  # <= 0: the periods overlap
    i, j, gap = i[soon], j[soon], gap[soon]
    hit = _intersecting(side, i, j)
    i, j, gap = i[hit], j[hit], gap[hit]
    inter, wkb, area, bounds = _overlays(side, i, j)
    # the smaller permit number first (Arrow compares the UTF-8 bytes: the order of the code points, as ``str``'s)
    swap = pc.greater(side.names.take(i), side.names.take(j)).to_numpy(zero_copy_only=False)
    i, j = np.where(swap, j, i), np.where(swap, i, j)
    # the solid ones, the clashes then the opportunities, each in pair order
    clash = gap <= 0
    solid = area > AREA_EPSILON
    order = np.concatenate([np.flatnonzero(solid & clash), np.flatnonzero(solid & ~clash)])
    n_clash = int(np.count_nonzero(solid & clash))
    a, b, gap, area = i[order], j[order], gap[order], np.round(area[order], AREA_DECIMALS)
    kind = np.full(len(order), KINDS.index("OPPORTUNITY"), dtype=np.int64)
    kind[:n_clash] = KINDS.index("CLASH")
    both = np.arange(len(order)) < n_clash
    start = np.where(both, np.maximum(side.start[a], side.start[b]), np.minimum(side.start[a], side.start[b]))
    end = np.where(both, np.minimum(side.end[a], side.end[b]), np.maximum(side.end[a], side.end[b]))
    days = np.where(both, end - start + 1, 0)
    detail = pa.concat_arrays([_texts(_clash_text, _tenths(area[:n_clash]), days[:n_clash]),
                               _texts(_opportunity_text, _tenths(area[n_clash:]), gap[n_clash:])])
    ward_idx = ward.extra["index"].assign(inter.take(order), start, bounds[order])[0] if len(ward) \
        else np.full(len(order), -1, dtype=np.int64)
    block = _block(kind, len(a), a_id=_take(side.names, a), b_id=_take(side.names, b), a_hash=side.hashes[a],
                   b_hash=side.hashes[b], overlap_area_m2=area, distance_m=0.0, overlap_start=start,
                   overlap_end=end, overlap_days=days, detail=detail, ward_index=ward_idx)
    block["wkb"] = wkb.take(pa.array(order))  # (the geometry, as :func:`_finish` gives the others')
    return block


def _clearance_findings(side: _Features, params: AnalysisParams) -> dict:
    """CLEARANCE findings: less pedestrian width left than the minimum (measured, else from the attributes)."""
    width, used = side.extra["width"], side.extra["used"]
    free, free_day = side.extra["free"], side.extra["free_day"]
    measured = ~np.isnan(free)
    with np.errstate(invalid="ignore"):
        left = width - used
        low_measured = measured & (free < params.min_clearance_m - 1e-9)
        low = np.flatnonzero(low_measured | (~measured & (left < params.min_clearance_m - 1e-9)))
    least = round(params.min_clearance_m * 100)
    on = measured[low]
    a, b = low[on], low[~on]
    detail = _interleaved(on, _texts(_passage_text, np.round(free[a] * 100), free_day[a], np.full(len(a), least)),
                          _texts(_clearance_text, np.round(width[b] * 100), np.round(used[b] * 100),
                                 np.full(len(b), least)))
    return _block("CLEARANCE", len(low), a_id=_take(side.names, low), a_hash=side.hashes[low], source=low,
                  overlap_start=side.start[low], overlap_end=side.end[low],
                  overlap_days=side.end[low] - side.start[low] + 1, detail=detail)


def _ward_mismatch_findings(cons: _Features, ward: _Features, labels=None) -> dict:
    """WARD_MISMATCH findings: declared ward ≠ the ward holding the parcel on the received date.

    ``labels``: :func:`_factorize_labels` of (the wards' codes, every dossier's declared code, …), if at
    hand: codes are then compared as integer labels instead of as text.
    """
    if len(ward) == 0 or len(cons) == 0:
        return _block("WARD_MISMATCH", 0)
    index: WardIndex = ward.extra["index"]
    received = cons.extra["received"]
    idx, part = index.assign(cons.geoms, received, cons.bounds, corners=lambda rows: (cons.quad[rows], cons.xy[rows]),
                             decimals=AREA_DECIMALS)
    found = idx >= 0
    declared = cons.extra["declared"]  # every dossier's column, by input row
    if labels is None:
        code = np.where(found, ward.extra["code"][np.maximum(idx, 0)], np.array(None, dtype=object))
        differs = code != _text(declared, cons.extra["row"])
    else:  # a missing code is the label of '' (codes are never blank: blank text is missing)
        names, (w_lab, d_lab, *_) = labels
        blank = np.flatnonzero(names == "")
        none = int(blank[0]) if len(blank) else -1
        differs = np.where(found, w_lab[np.maximum(idx, 0)] if len(w_lab) else none, none) != d_lab[cons.extra["row"]]
    wrong = np.flatnonzero(index.any_in_force(received) & differs)
    idx, part, found = idx[wrong], part[wrong], found[wrong]
    whole = np.flatnonzero(np.isnan(part))  # (the parcel wholly in its ward, or in none: its own area)
    part[whole] = _areas(cons, wrong[whole])
    area = np.round(part, AREA_DECIMALS)
    # the texts repeat (declared ward, ward found, day): each made once, from the first finding that has it
    declared = _text(declared, cons.extra["row"][wrong])
    declared_key = pd.factorize(declared)[0] if labels is None else d_lab[cons.extra["row"][wrong]]
    (*_, day), back = _distinct([declared_key, idx, received[wrong]]) if len(wrong) else ([np.empty(0, np.int64)] * 3,
                                                                                         np.empty(0, np.int64))
    first = np.empty(len(day), dtype=np.int64)
    first[back[::-1]] = np.arange(len(back))[::-1]
    return _block("WARD_MISMATCH", len(wrong), a_id=_take(cons.names, wrong), a_hash=cons.hashes[wrong],
                  b_id=_take(ward.names, np.maximum(idx, 0), missing=~found),
                  b_hash=np.where(found, ward.hashes[np.maximum(idx, 0)], 0),
                  geometry=cons.geoms.take(wrong), overlap_area_m2=np.where(found, area, np.nan),
                  overlap_start=received[wrong], ward_index=idx,
                  detail=_take(_mismatch_text(declared[first], idx[first], day, ward), back))


def _areas(f: _Features, rows: np.ndarray) -> np.ndarray:
    """``shapely.area`` of ``f.geoms[rows]`` as the findings keep it (rounded to :data:`AREA_DECIMALS`): the quads'
    by the shoelace from their corners (no object made), but those within a hair of a rounding step (GEOS').

    The shoelace is taken relative to the first corner (small numbers: its rounding, ~1e-12 m², is far
    below the hair), so the rounded area is GEOS' own.
    """
    out = np.empty(len(rows))
    quad = f.quad[rows]
    xy = f.xy[rows[quad]]
    rx, ry = xy[:, :, 0] - xy[:, :1, 0], xy[:, :, 1] - xy[:, :1, 1]
    area = np.abs((rx * np.roll(ry, -1, axis=1) - np.roll(rx, -1, axis=1) * ry).sum(axis=1)) / 2.0
    step = area * 10**AREA_DECIMALS
    sure = np.abs(step - np.floor(step) - 0.5) > 1e-6
    done = np.flatnonzero(quad)[sure]
    out[done] = area[sure]
    rest = np.ones(len(rows), dtype=bool)
    rest[done] = False
    out[rest] = shapely.area(f.geoms[rows[rest]])
    return out


def _mismatch_text(declared: np.ndarray, idx: np.ndarray, day: np.ndarray, ward: _Features) -> pa.Array:
    """Detail of a ward mismatch: the declared ward (text), the ward found (row, -1: none) and the day."""
    found = idx >= 0
    code = np.where(found, ward.extra["code"][np.maximum(idx, 0)], np.array(None, dtype=object))
    date_txt = day.astype("datetime64[D]").astype(_TEXT)
    declared_txt = _concat(np.where(pd.isna(declared), "(trống)", declared).astype(_TEXT))
    name = ward.extra["name"][np.maximum(idx, 0)] if len(ward) else np.empty(0, dtype=object)
    name = np.where(pd.isna(name), "", name)
    inside = _concat("Khai phường ", declared_txt, ", thửa đất thuộc phường ", np.where(found, code, "").astype(_TEXT),
                     " ", name.astype(_TEXT), " theo ranh giới ngày ", date_txt)
    outside = _concat("Khai phường ", declared_txt, ", thửa đất nằm ngoài các phường theo ranh giới ngày ", date_txt)
    return _arrow_text(np.where(found, inside, outside))


def _finish(block: dict, ward: _Features, side: _Features) -> dict:
    """A block of findings made ready for the layer: wards found, MultiPolygon WKB, finding ids.

    Adds ``ward_code``, ``wkb`` (the geometry as the MultiPolygon WKB the
    stores write, an Arrow binary array) and ``finding_id`` (Arrow
    strings).  A sidewalk permit's polygon is converted, and its ward found,
    once per permit (and period of wards) in the block: a permit given as
    WKB from its own bytes, without a shapely object (:meth:`Geometries.multipolygon_wkb`).
    Blocks are finished by the thread that made them (GEOS, Arrow and most
    of numpy release the GIL); a long block's WKB, and its ids, are made in
    threads of their own meanwhile (and the texts made late: :class:`_Later`).
    """
    cols = dict(block)
    n = len(cols["kind"])
    source, geoms = cols["source"], cols["geometry"]
    own = source < 0

    def multipolygons() -> pa.Array:
        """The findings' geometry as MultiPolygon WKB."""
        if not own.any():  # permits' polygons only
            return side.geoms.multipolygon_wkb(source)
        # a block's own WKB, if made; a layer's geometries' from their own WKB, if given so
        mine = block["wkb"] if "wkb" in block else geoms.multipolygon_wkb(np.flatnonzero(own)) \
            if isinstance(geoms, Geometries) else _polygonal_wkb(geoms[own])
        return mine if own.all() else _interleaved(own, mine, side.geoms.multipolygon_wkb(source[~own]))

    def ids_texts() -> tuple[pa.Array, dict]:
        """The findings' ids and the texts still to take (:class:`_Later`)."""
        rank = cols["kind"]
        return _id_strings(rank, cols["a_hash"], cols["b_hash"]), \
            {name: cols[name].taken() for name in _TEXT_COLUMNS if isinstance(cols[name], _Later)}

    with ThreadPoolExecutor(2) as helper:  # (a long block's WKB, and its ids and texts, beside its wards)
        jobs = (helper.submit(multipolygons), helper.submit(ids_texts)) if n >= _PARALLEL_MIN else None
        ward_idx = _finish_wards(cols, ward, side)
        wkb, (finding_id, texts) = (multipolygons(), ids_texts()) if jobs is None else (jobs[0].result(),
                                                                                         jobs[1].result())
    cols.update(texts)
    codes = _large_strings(ward.extra["code"] if len(ward) else np.empty(0, dtype=object))
    ward_code = _take(codes, np.maximum(ward_idx, 0), ward_idx < 0) if len(codes) \
        else pa.nulls(n, pa.large_string())
    # the texts are Arrow strings already (ids taken from the features', details by :func:`_texts`): no
    # ``str`` object per finding, whose conversion would hold the interpreter lock
    for name in _TEXT_COLUMNS:
        cols[name] = _large_strings(cols[name])
    cols["ward_code"], cols["ward_index"], cols["wkb"], cols["finding_id"] = ward_code, ward_idx, wkb, finding_id
    return cols


#: The text columns of a block, as Arrow strings once it is finished (:func:`_finish`).
_TEXT_COLUMNS = ("a_id", "b_id", "detail")


def _polygonal_wkb(geoms: np.ndarray) -> pa.Array:
    """The MultiPolygon WKB the stores write of :func:`gisapp.geo.polygonal_parts` of ``geoms`` (an overlay's
    other parts dropped; :func:`gisapp.formats.derive.multipolygon_wkb`)."""
    geoms = np.asarray(geoms, dtype=object)
    other = np.flatnonzero(~np.isin(shapely.get_type_id(geoms), (3, 6, -1)))
    if len(other):
        geoms = geoms.copy()
        geoms[other] = geo.polygonal_parts(geoms[other])
    return derive.multipolygon_wkb(geoms)


def _finish_wards(cols: dict, ward: _Features, side: _Features) -> np.ndarray:
    """The ward (row in ``ward``, -1: none) of each finding of a block (:func:`_finish`)."""
    source, geoms = cols["source"], cols["geometry"]
    ward_idx = cols["ward_index"].copy()
    todo = ward_idx == -2
    if len(ward) and todo.any():
        index: WardIndex = ward.extra["index"]
        # each finding looked up (a permit in several findings too: the grid settles nearly all at ~50 ns each, less
        # than finding the distinct (permit, period of wards) first)
        rows = np.flatnonzero(todo)
        mine = source[rows] < 0
        permit = np.maximum(source[rows], 0)
        bounds = np.take(side.bounds, permit, axis=0)  # (~5x faster than indexing the rows, or through a mask)
        if mine.any():
            bounds[mine] = shapely.bounds(geoms[rows[mine]]).reshape(-1, 4)
        shapes: Geometries | np.ndarray
        if not mine.any():  # permits' polygons only: objects made only for those the ward grid cannot settle
            shapes = side.geoms.take(source[rows])
        else:
            shapes = np.empty(len(rows), dtype=object)
            shapes[mine] = geoms[rows[mine]]
            shapes[~mine] = side.geoms[source[rows[~mine]]]
        ward_idx[rows] = index.assign(shapes, cols["overlap_start"][rows], bounds,
                                      corners=lambda r: (side.quad[permit[r]] & ~mine[r], side.xy[permit[r]]))[0]
    ward_idx[ward_idx == -2] = -1
    return ward_idx


def _assemble(blocks: list[dict]) -> tuple[pd.DataFrame, dict]:
    """Finished blocks (:func:`_finish`) as the findings layer's rows (:attr:`AnalysisResult.rows`), and their
    columns."""
    # the long columns first, joined side by side (Arrow copies them without the interpreter lock: ~100 MB, most
    # of it fresh pages, at 1M)
    names = ("wkb", "detail", "finding_id", "a_id", "b_id", "ward_code",
             *(name for name in _BLOCK_COLUMNS if name not in ("geometry", "detail", "a_id", "b_id")))
    with ThreadPoolExecutor(_WORKERS) as pool:
        cols = dict(zip(names, pool.map(lambda name: _joined([b[name] for b in blocks]), names)))
    return _findings_rows(cols, cols["wkb"]), cols


def _used(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values (all in ``range(size)``), sorted, and each value's position among them."""
    seen = np.zeros(size, dtype=bool)
    seen[values] = True
    used = np.flatnonzero(seen)
    position = np.zeros(size, dtype=np.int64)
    position[used] = np.arange(len(used))
    return used, position[values]


def _findings_rows(cols: dict, wkb: pa.Array) -> pd.DataFrame:
    """The typed findings rows (:attr:`AnalysisResult.rows`) of block columns and the geometries' WKB; rows as
    the columns come (grouped by kind)."""
    rank = cols["kind"]
    if "finding_id" not in cols:
        cols = {**cols, "finding_id": _id_strings(rank, cols["a_hash"], cols["b_hash"])}

    def dates(values):
        """Int days as datetime64[ms] (NaT where missing)."""
        return np.asarray(values, dtype=np.int64).astype("datetime64[D]").astype("datetime64[ms]")

    days = np.asarray(cols["overlap_days"], dtype=np.int64)
    overlap_days = pd.array(np.where(days == NAT, 0, days), dtype="Int64")
    overlap_days[days == NAT] = pd.NA
    data = {
        "finding_id": _large_strings(cols["finding_id"]),
        "kind": pa.array(KINDS + ("",), pa.large_string()).take(pa.array(rank % (len(KINDS) + 1))),
        "a_id": _large_strings(cols["a_id"]), "b_id": _large_strings(cols["b_id"]),
        "ward_code": _large_strings(cols.get("ward_code", np.full(len(rank), None, dtype=object))),
        "overlap_area_m2": np.asarray(cols["overlap_area_m2"], dtype=float),
        "distance_m": np.asarray(cols["distance_m"], dtype=float),
        "overlap_start": dates(cols["overlap_start"]), "overlap_end": dates(cols["overlap_end"]),
        "overlap_days": overlap_days,
        "detail": _large_strings(cols["detail"]),
    }
    return _rows_frame({name: data[name] for name in FINDINGS.field_names}, wkb)  # the layer's order


# -- ids and text -----------------------------------------------------------------------------


@functools.cache
def _id_constants() -> tuple[np.ndarray, np.ndarray]:
    """The kinds' hashes (:func:`_hash_ids` of :data:`KINDS`) and their id prefixes as ``(kinds, 2)`` ASCII."""
    prefix = np.frombuffer("".join(ID_PREFIX[k] for k in KINDS).encode(), dtype=np.uint8).reshape(-1, 2)
    return _hash_ids(np.array(KINDS, dtype=object)), prefix.copy()


def _id_bytes(rank: np.ndarray, a_hash: np.ndarray, b_hash: np.ndarray, width: int) -> np.ndarray:
    """``<prefix>-<16 hex digits>`` for each finding as ``(n, width)`` ASCII bytes (19 of them, then
    ``width - 19`` left to the caller): the digits of a 64-bit hash of (kind, {a, b}) from the kinds' ranks and
    the ids' hashes, the order of a, b irrelevant (:func:`gisapp.analysis.kernels.finding_ids`, one compiled pass)."""
    from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

    rank = np.asarray(rank, dtype=np.int64)
    out = np.empty((len(rank), width), dtype=np.uint8)
    kernels.finding_ids(rank, np.asarray(a_hash, dtype=np.uint64), np.asarray(b_hash, dtype=np.uint64),
                        *_id_constants(), out)
    return out


def _id_strings(rank: np.ndarray, a_hash: np.ndarray, b_hash: np.ndarray) -> pa.Array:
    """:func:`_id_text` as an Arrow large string array, its bytes those built (no Python string per id)."""
    out = _id_bytes(rank, a_hash, b_hash, 19)
    offsets = np.arange(len(out) + 1, dtype=np.int64) * 19
    return pa.LargeStringArray.from_buffers(len(out), pa.py_buffer(offsets), pa.py_buffer(out.tobytes()))


def _id_text(rank: np.ndarray, a_hash: np.ndarray, b_hash: np.ndarray) -> np.ndarray:
    """``<prefix>-<16 hex digits>`` for each finding (:func:`_id_bytes`); object array of str."""
    out = _id_bytes(rank, a_hash, b_hash, 20)
    # one line per id, decoded and split at once: ~3x faster than numpy's str conversions (each holds the GIL)
    out[:, 19] = ord("\n")
    lines = out.tobytes().decode("ascii").split("\n")
    lines.pop()
    ids = np.empty(len(out), dtype=object)
    ids[:] = lines
    return ids


def _distinct(columns: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct rows of int64 columns, and for each row the index of its distinct row (vectorised)."""
    cols = [np.asarray(c, dtype=np.int64) for c in columns]
    if float(np.prod([float(c.max() - c.min()) + 1 for c in cols])) >= 2.0**62:
        uniq, back = np.unique(np.column_stack(cols), axis=0, return_inverse=True)
        return list(uniq.T), back.ravel()
    low = [int(c.min()) for c in cols]
    span = [int(c.max()) - m + 1 for c, m in zip(cols, low)]
    key = np.zeros(len(cols[0]), dtype=np.int64)
    for c, m, w in zip(cols, low, span):
        key = key * w + (c - m)
    total = int(np.prod(span))
    if total <= max(4 * len(key), 1 << 16):
        used, back = _used(key, total)
    else:
        used, back = np.unique(key, return_inverse=True)
    out = []
    for m, w in zip(reversed(low), reversed(span)):  # decode the mixed-radix keys, last column first
        out.append(used % w + m)
        used = used // w
    return out[::-1], back.ravel()


def _texts(make, *columns) -> pa.Array:
    """``make(*columns)`` (numpy strings) computed once per distinct row of the int columns, as Arrow strings.

    Detail texts repeat (the same distance and days, the same widths), so
    the distinct ones are formatted (a few thousand ``str`` objects) and
    Arrow copies each to the rows that share it (a take: no Python object
    per finding, and without the interpreter lock).
    """
    if len(columns[0]) == 0:
        return pa.array([], pa.large_string())
    uniq, back = _distinct(list(columns))
    return _take(_arrow_text(make(*uniq)), back)


def _arrow_text(values: np.ndarray) -> pa.Array:
    """Numpy strings as an Arrow large string array (Arrow does not read numpy's StringDType)."""
    return pa.array(np.asarray(values, dtype=_TEXT).astype(object), pa.large_string())


def _interleaved(first: np.ndarray, a: pa.Array, b: pa.Array) -> pa.Array:
    """The values of ``a`` at the rows where ``first`` holds and those of ``b`` at the others, in order."""
    at = np.empty(len(first), dtype=np.int64)
    at[first] = np.arange(len(a))
    at[~first] = len(a) + np.arange(len(b))
    return gather(pa.concat_arrays([a, b]), at)[0].cast(a.type)


def _merge_text(tenths_m: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Detail of a merge candidate: distance (in tenths of a metre) and days of overlap."""
    return _concat("Vỉa hè cách công trình ", _number(tenths_m / 10, 1), " m, trùng thời gian thi công ",
                   days.astype(_TEXT), " ngày; chưa gộp thủ tục")


def _linked_text(tenths_m: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Detail of a linked permit: distance (in tenths of a metre) and days of overlap."""
    return _concat("Đã gộp thủ tục; vỉa hè cách công trình ", _number(tenths_m / 10, 1),
                   " m, trùng thời gian thi công ", days.astype(_TEXT), " ngày")


def _clash_text(tenths_m2: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Detail of a clash: shared area (in tenths of a m²) and days."""
    return _concat("Chồng lấn ", _number(tenths_m2 / 10, 1), " m² trong ", days.astype(_TEXT), " ngày")


def _opportunity_text(tenths_m2: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """Detail of an opportunity: shared area (in tenths of a m²) and days between the permits."""
    return _concat("Chồng lấn ", _number(tenths_m2 / 10, 1), " m², hai giấy phép cách nhau ",
                   gap.astype(_TEXT), " ngày")


def _clearance_text(width_cm: np.ndarray, used_cm: np.ndarray, least_cm: np.ndarray) -> np.ndarray:
    """Detail of a clearance finding, from widths in centimetres."""
    return _concat("Lối đi bộ còn ", _number((width_cm - used_cm) / 100, 2), " m, dưới mức tối thiểu ",
                   _number(least_cm / 100, 2), " m (vỉa hè ", _number(width_cm / 100, 2), " m, sử dụng ",
                   _number(used_cm / 100, 2), " m)")


def _passage_text(free_cm: np.ndarray, days: np.ndarray, least_cm: np.ndarray) -> np.ndarray:
    """Detail of a clearance finding measured on the sidewalk: the passage (cm) and the day it is narrowest."""
    day = np.datetime_as_string(days.astype("datetime64[D]")).astype(_TEXT)
    return _concat("Lối đi bộ còn ", _number(free_cm / 100, 2), " m (đo trên vỉa hè, ngày ", day,
                   "), dưới mức tối thiểu ", _number(least_cm / 100, 2), " m")


def _tenths(values: np.ndarray) -> np.ndarray:
    """Values rounded to tenths, as int64 tenths."""
    return np.round(np.asarray(values, dtype=float) * 10).astype(np.int64)


def _number(values: np.ndarray, decimals: int) -> np.ndarray:
    """Numbers as text with a decimal comma (Vietnamese style), vectorised."""
    values = np.asarray(values, dtype=float)
    scale = 10 ** decimals
    q = np.round(np.nan_to_num(values) * scale).astype(np.int64)
    sign = np.where(q < 0, "-", "").astype(_TEXT)
    q = np.abs(q)
    frac = (q % scale + scale).astype(_TEXT)  # "1xx": keeps the leading zeros
    return _concat(sign, (q // scale).astype(_TEXT), ",", np.strings.slice(frac, 1, None))


def _concat(*parts) -> np.ndarray:
    """Element-wise concatenation of strings and string arrays (numpy StringDType)."""
    out = np.asarray(parts[0], dtype=_TEXT)
    for p in parts[1:]:
        out = np.strings.add(out, np.asarray(p, dtype=_TEXT))
    return out
