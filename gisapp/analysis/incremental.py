"""Findings kept current by every write: only those that can involve the written features are recomputed.

A write of *k* features — an occupancy saved or changed on the map
(:mod:`gisapp.web.occupancy`), an upsert import (``gisapp import``, the
upload page: :func:`gisapp.importing.prepare.run_import`), deletes — goes
through :func:`write_with_findings`: under the store's writers' lock it
reads the written features' stored rows (their old geometries and dates),
computes the findings that can involve them (:func:`findings_for_write`)
and writes the data and the findings in ONE :meth:`~gisapp.store.Store.write`
(``mode="upsert"``, the stale findings in ``delete``), so the findings never
reflect half a write and two writers at once both land, one after the other,
each seeing the other.  The result equals a full ``gisapp analyze`` run
afterwards (same ``finding_id``s, same values: tests/test_incremental.py
checks it with random edit sequences on both backends), with the parameters
the stored findings were made with (``meta()["findings"]``).

What a changed feature can touch (every kind of :mod:`gisapp.analysis.overlaps`):

- a dossier (``construction_permits``): its ``MERGE_CANDIDATE``/``LINKED``
  findings with the sidewalk permits within ``distance_m`` of its parcel,
  its ``WARD_MISMATCH`` (the parcel against the wards alone);
- a sidewalk permit: its ``MERGE_CANDIDATE``/``LINKED`` findings with the
  dossiers within ``distance_m``, its ``CLASH``/``OPPORTUNITY`` findings
  with the permits it intersects, its ``CLEARANCE`` — and the ``CLEARANCE``
  of every permit whose free passage counts it: on a mapped sidewalk the
  passage beside a permit counts the permits within the sidewalk's width
  plus :data:`gisapp.passage.REACH` (:func:`gisapp.passage.occupancy_passages`),
  so the permits within that reach of its old and new polygons are judged again;
- ``UNPERMITTED`` findings come from inspections, never from permits: untouched.

The neighbourhoods are read per feature, not as one box around them all
(:meth:`~gisapp.store.Store.read_boxes`: a 1,000-row import scattered over
the city reads what lies near each row), the same analysis
(:func:`gisapp.analysis.overlaps.find_overlaps`) runs on them with the
written rows in place of the stored ones, and of its findings only those
naming a changed feature are kept.  The stale findings are the stored ones
naming a changed feature: every finding lies within its features' boxes
(grown by ``distance_m`` for a dossier's), found through the spatial index
under the old and the new geometries.

A write that changes the analysis as a whole — a layer replaced
(``mode="replace"``), the ``wards`` or ``sidewalks`` layer written, or more
than :data:`FULL_ABOVE` changed features — runs the full analysis on the
layers as they will be (the stored ones with the written rows applied) and
replaces the findings in the same write.  A store never analysed (no
findings, no analysis parameters) is written as it is: ``gisapp analyze``
makes its first findings, and remains the way to change the parameters.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisapp import domain, geo, passage, schema
from gisapp.analysis import run
from gisapp.analysis.overlaps import AnalysisParams, empty_findings, find_overlaps
from gisapp.filters import Filter
from gisapp.progress import SILENT, Progress
from gisapp.schema import STORE_CRS
from gisapp.store import Store
from gisapp.store.base import empty_frame, merge_upsert, store_layer

CONSTRUCTION, SIDEWALK = "construction_permits", "sidewalk_permits"
#: Layers whose change is followed feature by feature.
PERMIT_LAYERS = (CONSTRUCTION, SIDEWALK)
#: Layers whose change makes the full analysis run (every finding's ward, every passage may change).
WHOLE_LAYERS = ("wards", "sidewalks")
#: Kinds whose findings name a sidewalk permit (as ``a_id`` or ``b_id``).
SIDEWALK_KINDS = ("MERGE_CANDIDATE", "LINKED", "CLASH", "OPPORTUNITY", "CLEARANCE")
#: Kinds whose findings name a dossier (as ``a_id``).
CONSTRUCTION_KINDS = ("MERGE_CANDIDATE", "LINKED", "WARD_MISMATCH")
#: The fields each layer's findings depend on, besides the geometry (an upserted row equal in these is unchanged).
ANALYSED_FIELDS = {name: tuple(f for f in run.ANALYSED_FIELDS[name] if f != store_layer(name).key)
                   for name in (CONSTRUCTION, SIDEWALK)}
#: How far (m) around the written permits sidewalks are read first, for the reach of the free passage beside them.
SIDEWALK_LOOK_M = 20.0
#: Slack (m) added to every box read, so that features touching its edge are read.
SLACK_M = 1.0
#: More changed features than this in one write: the full analysis runs instead (it reads every layer once).
FULL_ABOVE = 50_000


@dataclass(frozen=True)
class FindingsChange:
    """What a write does to the findings: the findings to write and the stored ones to remove first.

    ``full``: the findings of a full analysis (with ``mode="replace"`` they
    replace the layer; with ``"upsert"`` ``stale`` holds every other stored one).
    ``permits``: the sidewalk permits whose findings were recomputed;
    ``dossiers``: the dossiers (both empty for a full analysis).
    """

    findings: gpd.GeoDataFrame
    stale: list[str]
    permits: list[str] = field(default_factory=list)
    dossiers: list[str] = field(default_factory=list)
    full: bool = False


def stored_params(store: Store) -> AnalysisParams:
    """The parameters of the store's last analysis (``meta()["findings"]``), else the defaults with its as-of date."""
    meta = store.meta()
    run = meta.get("findings") or {}
    as_of = run.get("as_of") or meta.get("as_of")
    values = {k: run[k] for k in ("distance_m", "gap_days", "min_clearance_m", "works_months") if k in run}
    return AnalysisParams(**values, as_of=dt.date.fromisoformat(as_of) if as_of else None)


def analysed_params(store: Store) -> AnalysisParams | None:
    """The parameters the store's findings were made with; ``None`` when it was never analysed (nothing to keep).

    ``UNPERMITTED`` findings (written with an inspection) do not make a store analysed: a first save there
    would otherwise compute findings near itself only, a partial set standing for the whole.
    """
    if not store.exists():
        return None
    computed = tuple(k for k in domain.FINDING_KINDS if k != "UNPERMITTED")
    if "findings" in store.meta() or store.count("findings", Filter(kinds=computed)) > 0:
        return stored_params(store)
    return None


def write_with_findings(store: Store, frames: dict[str, gpd.GeoDataFrame], *, mode: str = "upsert",
                        delete: dict[str, Collection[str]] | None = None, meta: dict | None = None,
                        history: pd.DataFrame | None = None, progress: Progress = SILENT,
                        params: AnalysisParams | None = None) -> FindingsChange | None:
    """Write ``frames`` (and ``delete``) with the findings they change, in one transaction, under the writers' lock.

    The one path of every writer of permits.  Arguments as
    :meth:`gisapp.store.Store.write`; ``params``: the analysis parameters
    (default: the stored findings'); returns what happened to the findings
    (``None``: none were kept, the store was never analysed or the write
    touches no analysed layer).
    """
    if not store.exists():  # a store created by this write: no findings to keep yet (the write makes its schema)
        store.write(frames, mode=mode, delete=delete, meta=meta, history=history, progress=progress)
        return None
    with store.write_lock():
        change = findings_for_write(store, frames, mode=mode, delete=delete, params=params)
        data = dict(frames)
        removed: dict[str, Collection[str]] = {name: list(keys) for name, keys in (delete or {}).items()}
        if change is not None:
            data["findings"] = change.findings
            if change.stale:
                removed["findings"] = [*removed.get("findings", []), *change.stale]
        store.write(data, mode=mode, delete=removed or None, meta=meta, history=history, progress=progress)
    return change


def findings_for_write(store: Store, frames: dict[str, gpd.GeoDataFrame], *, mode: str = "upsert",
                       delete: dict[str, Collection[str]] | None = None,
                       params: AnalysisParams | None = None) -> FindingsChange | None:
    """The findings a write of ``frames`` (and ``delete``) changes; writes nothing.

    Call it under ``store.write_lock()`` and write its result in the same
    :meth:`~gisapp.store.Store.write` as the data (:func:`write_with_findings`
    does both), so that no other writer slips in between.  ``None`` when
    there is nothing to keep current (see :func:`write_with_findings`).
    """
    deleted = {name: sorted({str(k) for k in keys}) for name, keys in (delete or {}).items() if keys}
    touched = {n for n in frames if n != "findings"} | set(deleted)
    if not touched & {*PERMIT_LAYERS, *WHOLE_LAYERS}:
        return None
    params = params or analysed_params(store)
    if params is None:
        return None
    rows = sum(len(frames.get(n, ())) + len(deleted.get(n, ())) for n in PERMIT_LAYERS)
    if mode == "replace" or touched & set(WHOLE_LAYERS) or rows > FULL_ABOVE:
        return full_findings(store, frames, mode=mode, delete=deleted, params=params)
    new = {n: _typed(n, frames.get(n)) for n in PERMIT_LAYERS}
    return _incremental(store, new, {n: deleted.get(n, []) for n in PERMIT_LAYERS}, params)


def refresh_findings(store: Store, permits: gpd.GeoDataFrame, *, params: AnalysisParams | None = None
                     ) -> FindingsChange:
    """The findings a write of the sidewalk permits ``permits`` changes (under ``store.write_lock()``)."""
    change = findings_for_write(store, {SIDEWALK: permits}, params=params or stored_params(store))
    return change if change is not None else FindingsChange(empty_findings(), [])


# -- the full analysis in a write -------------------------------------------------------------------------------------


def full_findings(store: Store, frames: dict[str, gpd.GeoDataFrame], *, mode: str,
                  delete: dict[str, list[str]], params: AnalysisParams) -> FindingsChange:
    """Every finding of the layers as the write leaves them (stored rows with ``frames`` and ``delete`` applied).

    The stored layers are read as the full analysis reads them (:func:`gisapp.analysis.run.read_layer`: the
    analysed columns only, through Arrow), the written rows cut to the same columns.
    """
    from gisapp.analysis.run import ANALYSED_FIELDS, LAYERS, read_layer, with_unpermitted

    layers = {}
    for name in LAYERS:
        lay = schema.get_layer(name)
        columns = [*ANALYSED_FIELDS[name], "geometry"]
        written = _typed(name, frames.get(name))[columns] if name in frames else None
        if mode == "replace" and written is not None:
            layers[name] = written
            continue
        stored = read_layer(store, name)
        if written is not None or delete.get(name):
            stored = merge_upsert(lay, stored, written if written is not None else empty_frame(lay)[columns],
                                  delete.get(name, ()))
        layers[name] = stored
    result = with_unpermitted(find_overlaps(layers[CONSTRUCTION], layers[SIDEWALK], layers["wards"], params,
                                            sidewalks=layers["sidewalks"]), store)
    findings = result.findings
    stale: list[str] = []
    if mode != "replace":
        table = store.read_arrow("findings", fields=["finding_id"])
        ids = set() if table is None else set(table.column("finding_id").to_pylist())
        stale = sorted(ids - set(findings["finding_id"]))
    return FindingsChange(findings, stale, full=True)


# -- the incremental path ---------------------------------------------------------------------------------------------


def _typed(name: str, frame: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame:
    """``frame`` with the layer's typed columns, as the store writes it (an empty frame for ``None``)."""
    lay = schema.get_layer(name)
    if frame is None or not len(frame):
        return _empty(name)
    typed = schema.coerce(lay, frame)
    typed = gpd.GeoDataFrame(typed[[*lay.field_names, "geometry"]], geometry="geometry", crs=STORE_CRS)
    if frame.crs is not None and not frame.crs.equals(STORE_CRS):
        typed = typed.set_crs(frame.crs, allow_override=True).to_crs(STORE_CRS)
    return typed.reset_index(drop=True)


def _changed(name: str, new: gpd.GeoDataFrame, old: gpd.GeoDataFrame) -> np.ndarray:
    """Rows of ``new`` that differ from their stored row ``old`` (by key) in what the analysis reads."""
    key = schema.get_layer(name).key
    if not len(new):
        return np.zeros(0, dtype=bool)
    position = pd.Index(old[key]).get_indexer(new[key]) if len(old) else np.full(len(new), -1)
    found = position >= 0
    same = found.copy()
    fi, oi = np.flatnonzero(found), position[found]
    for f in ANALYSED_FIELDS[name]:
        a, b = new[f].iloc[fi], old[f].iloc[oi]
        an, bn = a.isna().to_numpy(), b.isna().to_numpy()
        eq = an & bn
        both = ~an & ~bn
        eq[both] = a.to_numpy(dtype=object)[both] == b.to_numpy(dtype=object)[both]
        same[fi] &= eq
    if len(fi):
        ga = geo.to_multipolygons(np.asarray(new.geometry.values, dtype=object)[fi])
        gb = geo.to_multipolygons(np.asarray(old.geometry.values, dtype=object)[oi])
        same[fi] &= shapely.equals_exact(ga, gb, tolerance=0.0)
    return ~same


def _geoms(*frames: gpd.GeoDataFrame) -> np.ndarray:
    """The non-empty geometries of ``frames``, as one object array."""
    parts = [np.asarray(f.geometry.values, dtype=object) for f in frames if len(f)]
    arr = np.concatenate(parts) if parts else np.empty(0, dtype=object)
    if not len(arr):
        return arr
    ok = ~shapely.is_missing(arr)
    ok[ok] = ~shapely.is_empty(arr[ok])
    return arr[ok]


def _boxes(geoms: np.ndarray, grow: float) -> np.ndarray:
    """The bounding boxes of ``geoms`` grown by ``grow`` metres, as an (n, 4) array."""
    if not len(geoms):
        return np.empty((0, 4))
    b = shapely.bounds(geoms).reshape(-1, 4)
    return b + np.array([-grow, -grow, grow, grow])


def _read(store: Store, layer: str, boxes: np.ndarray) -> gpd.GeoDataFrame:
    """``layer``'s features meeting any of ``boxes`` (none read for no boxes), each once, in key order.

    Many boxes (an import scattered over the city) are read in up to
    :data:`READ_THREADS` parts at once, each through the spatial index on its
    own connection: at 1M per layer such a read waits mostly on pages of the
    file or table that are not in memory, and several at once keep the disk
    (and PostGIS's two cores) busy.
    """
    if not len(boxes):
        return _empty(layer)
    parts = min(READ_THREADS, len(boxes) // READ_PART)
    if parts < 2:
        return store.read_boxes(layer, boxes)
    boxes = boxes[np.argsort(boxes[:, 0] + boxes[:, 2], kind="stable")]  # west to east: parts overlap little
    frames = list(_pool().map(lambda part: store.read_boxes(layer, part), np.array_split(boxes, parts)))
    key = schema.get_layer(layer).key
    out = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    out = out.drop_duplicates(subset=key).sort_values(key, kind="stable").reset_index(drop=True)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=STORE_CRS)


#: Boxes per part of a neighbourhood read, and most parts read at once (:func:`_read`).
READ_PART, READ_THREADS = 200, 4
_POOL: list[ThreadPoolExecutor] = []
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The threads of the parallel reads (:func:`_read`), kept for the process."""
    with _POOL_LOCK:
        if not _POOL:
            _POOL.append(ThreadPoolExecutor(READ_THREADS + 1, thread_name_prefix="gisapp-incremental"))
        return _POOL[0]


def _overlay(name: str, stored: gpd.GeoDataFrame, written: gpd.GeoDataFrame, gone: Collection[str]
             ) -> gpd.GeoDataFrame:
    """``stored`` as the write leaves it: rows of written or deleted keys out, the written rows in."""
    key = schema.get_layer(name).key
    kept = stored[~stored[key].isin([*written[key], *gone])]
    if not len(written):
        return kept.reset_index(drop=True)
    if not len(kept):
        return written.reset_index(drop=True)
    return gpd.GeoDataFrame(pd.concat([kept, written], ignore_index=True), geometry="geometry", crs=STORE_CRS)


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


def _naming(findings: pd.DataFrame, kinds: Collection[str], ids: Collection[str], *, b: bool) -> np.ndarray:
    """Rows of ``kinds`` whose ``a_id`` (and, with ``b``, ``b_id``) is one of ``ids``."""
    if not len(findings) or not ids:
        return np.zeros(len(findings), dtype=bool)
    ids = list(ids)
    named = findings["a_id"].isin(ids).to_numpy().copy()
    if b:
        named |= findings["b_id"].isin(ids).to_numpy()
    return findings["kind"].isin(list(kinds)).to_numpy() & named


def _involving(findings: pd.DataFrame, dossiers: Collection[str], permits: Collection[str],
               passages: Collection[str]) -> np.ndarray:
    """Findings naming one of ``dossiers`` or ``permits`` (any kind), or the ``CLEARANCE`` of one of ``passages``."""
    if not len(findings):
        return np.zeros(0, dtype=bool)
    out = _naming(findings, CONSTRUCTION_KINDS, dossiers, b=False).copy()
    out |= _naming(findings, SIDEWALK_KINDS, permits, b=True)
    out |= _naming(findings, ("CLEARANCE",), passages, b=False)
    return out


def _incremental(store: Store, new: dict[str, gpd.GeoDataFrame], gone: dict[str, list[str]],
                 params: AnalysisParams) -> FindingsChange:
    """The findings that can involve the written rows ``new`` and the deleted keys ``gone`` (see the module notes).

    A few reads, each through the keys or the spatial index, per layer for
    all the changed features at once: the stored rows of the written keys,
    the sidewalks, sidewalk permits and dossiers near the changed features,
    the wards, the stored findings there.  A neighbour's ``CLEARANCE`` is
    judged again only when it shares a day with a moved permit's old or new
    period (the passage counts only the permits active with it), and the
    analysis sees only what the findings of the focus count.
    """
    keys = {n: schema.get_layer(n).key for n in PERMIT_LAYERS}
    wanted = {n: [*new[n][keys[n]], *gone[n]] for n in PERMIT_LAYERS}
    old = {n: store.read_keys(n, wanted[n]) if wanted[n] else _empty(n) for n in PERMIT_LAYERS}
    for n in PERMIT_LAYERS:  # rows written again unchanged (a re-import) change no finding
        new[n] = new[n][_changed(n, new[n], old[n])].reset_index(drop=True)
    changed = {n: set(new[n][keys[n]]) | (set(gone[n]) & set(old[n][keys[n]])) for n in PERMIT_LAYERS}
    old = {n: old[n][old[n][keys[n]].isin(list(changed[n]))] for n in PERMIT_LAYERS}
    if not changed[CONSTRUCTION] and not changed[SIDEWALK]:
        return FindingsChange(empty_findings(), [])
    gone_all = {n: sorted(changed[n] - set(new[n][keys[n]])) for n in PERMIT_LAYERS}
    d = float(params.distance_m) + SLACK_M
    moved_s = _geoms(new[SIDEWALK], old[SIDEWALK])  # where sidewalk permits were and are
    cons_geoms = _geoms(new[CONSTRUCTION])
    # the dossiers within distance of the written permits, read meanwhile
    near_dossiers = _pool().submit(_read, store, CONSTRUCTION, _boxes(_geoms(new[SIDEWALK]), d))
    # the sidewalks there: the reach of the free passage beside the moved permits, and under their neighbours
    reach, walks = 0.0, _empty("sidewalks")
    if len(moved_s):
        look = SIDEWALK_LOOK_M
        while True:
            walks = _read(store, "sidewalks", _boxes(moved_s, 2 * look))
            near_walks = walks[_meets(walks, _boxes(moved_s, look))]
            reach = _passage_reach(near_walks)
            if reach <= look:
                break
            look = reach
    # the sidewalk permits: within reach of the moved ones (whose passage counts them), and within reach of those;
    # within distance of the written dossiers
    s_boxes = np.concatenate([_boxes(moved_s, 2 * max(reach, SLACK_M) + SLACK_M), _boxes(cons_geoms, d)])
    sidewalk = _overlay(SIDEWALK, _read(store, SIDEWALK, s_boxes), new[SIDEWALK], gone_all[SIDEWALK])
    neighbours: list[str] = []
    ids = sidewalk[keys[SIDEWALK]].to_numpy(dtype=object)
    geoms = np.asarray(sidewalk.geometry.values, dtype=object)
    if reach > 0 and len(sidewalk):
        # beside a moved permit (its old or new place) on some day of its old or new period: the passage counts it
        where, first, last = _periods(new[SIDEWALK], old[SIDEWALK])
        p, q = shapely.STRtree(where).query(geoms, predicate="dwithin", distance=reach)
        start, end = _days(sidewalk)
        same_days = (start[p] <= last[q]) & (first[q] <= end[p])
        neighbours = sorted(set(ids[np.unique(p[same_days])]) - changed[SIDEWALK])
    focus = sidewalk[sidewalk[keys[SIDEWALK]].isin([*new[SIDEWALK][keys[SIDEWALK]], *neighbours])]
    if len(sidewalk):  # only what the findings of the focus and of the written dossiers count is analysed
        tree = shapely.STRtree(geoms)
        used = [tree.query(_geoms(focus), predicate="dwithin", distance=max(reach, SLACK_M))[1],
                tree.query(cons_geoms, predicate="dwithin", distance=d)[1]]
        sidewalk = sidewalk.iloc[np.unique(np.concatenate(used))].reset_index(drop=True)
    focus_s = _geoms(focus)
    if len(focus_s) and not _meets(focus, _boxes(moved_s, 2 * SIDEWALK_LOOK_M), inside=True).all():
        walks = _read(store, "sidewalks", _boxes(focus_s, SLACK_M))  # a neighbour beyond what was read
    construction = _overlay(CONSTRUCTION, near_dossiers.result(), new[CONSTRUCTION], gone_all[CONSTRUCTION])
    # the wards where the analysed features lie (through the spatial index: never the layer whole)
    analysed = _geoms(construction, sidewalk)
    wards = _read(store, "wards", _boxes(np.array([shapely.box(*shapely.total_bounds(analysed))]), SLACK_M)
                  if len(analysed) else np.empty((0, 4)))
    result = find_overlaps(construction, sidewalk, wards, params, sidewalks=walks)
    dossiers, permits = set(new[CONSTRUCTION][keys[CONSTRUCTION]]), set(new[SIDEWALK][keys[SIDEWALK]])
    fresh = result.findings[_involving(result.findings, dossiers, permits, neighbours)].reset_index(drop=True)
    # the stored findings naming a changed feature lie within its old (or new) box
    stale_boxes = np.concatenate([
        _boxes(_geoms(old[CONSTRUCTION], new[CONSTRUCTION]), d),
        _boxes(_geoms(old[SIDEWALK], focus), SLACK_M)])
    stored = _read(store, "findings", stale_boxes)
    named = _involving(stored, changed[CONSTRUCTION], changed[SIDEWALK], neighbours)
    stale = sorted(set(stored["finding_id"][named]) - set(fresh["finding_id"]))
    fresh = fresh[~_stored_as_is(fresh, stored)].reset_index(drop=True)  # not written again: no change logged
    return FindingsChange(gpd.GeoDataFrame(fresh, geometry="geometry", crs=STORE_CRS), stale,
                          permits=sorted(permits | set(neighbours)), dossiers=sorted(dossiers))


def _stored_as_is(fresh: pd.DataFrame, stored: pd.DataFrame) -> np.ndarray:
    """Rows of ``fresh`` findings stored exactly so already (every field, the same shape, to the bit)."""
    same = np.zeros(len(fresh), dtype=bool)
    if not len(fresh) or not len(stored):
        return same
    position = pd.Index(stored["finding_id"]).get_indexer(fresh["finding_id"])
    fi, si = np.flatnonzero(position >= 0), position[position >= 0]
    equal = np.ones(len(fi), dtype=bool)
    for name in schema.FINDINGS.field_names:
        a, b = fresh[name].iloc[fi], stored[name].iloc[si]
        an, bn = a.isna().to_numpy(), b.isna().to_numpy()
        both = ~an & ~bn
        eq = an & bn
        eq[both] = a.to_numpy(dtype=object)[both] == b.to_numpy(dtype=object)[both]
        equal &= eq
    ga = np.asarray(fresh.geometry.values, dtype=object)[fi]
    gb = np.asarray(stored.geometry.values, dtype=object)[si]
    equal &= shapely.equals_exact(ga, gb, tolerance=0.0)
    same[fi[equal]] = True
    return same


def _days(frame: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """First and last day of each sidewalk permit of ``frame`` (int days; a missing date: open that way)."""
    out = []
    for name, missing in (("start_on", np.iinfo(np.int64).min), ("end_on", np.iinfo(np.int64).max)):
        values = schema.to_dates(frame[name]).to_numpy().astype("datetime64[D]")
        out.append(np.where(np.isnat(values), missing, values.astype(np.int64)))
    return out[0], out[1]


def _periods(*frames: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-empty geometries of sidewalk-permit ``frames`` (as :func:`_geoms`) and their first and last days."""
    parts = [f for f in frames if len(f)]
    if not parts:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    geoms = np.concatenate([np.asarray(f.geometry.values, dtype=object) for f in parts])
    first = np.concatenate([_days(f)[0] for f in parts])
    last = np.concatenate([_days(f)[1] for f in parts])
    ok = ~shapely.is_missing(geoms)
    ok[ok] = ~shapely.is_empty(geoms[ok])
    return geoms[ok], first[ok], last[ok]


def _meets(frame: gpd.GeoDataFrame, boxes: np.ndarray, *, inside: bool = False) -> np.ndarray:
    """Rows of ``frame`` whose bounding box meets one of ``boxes`` (``inside``: lies within one of them)."""
    if not len(frame) or not len(boxes):
        return np.zeros(len(frame), dtype=bool)
    rows, _ = shapely.STRtree(shapely.box(*boxes.T)).query(shapely.box(*shapely.bounds(
        np.asarray(frame.geometry.values, dtype=object)).T), predicate="within" if inside else "intersects")
    out = np.zeros(len(frame), dtype=bool)
    out[rows] = True
    return out


@functools.cache
def _empty_cached(layer: str) -> gpd.GeoDataFrame:
    return empty_frame(schema.get_layer(layer))


def _empty(layer: str) -> gpd.GeoDataFrame:
    """An empty frame of ``layer`` (built once: building one costs tens of ms of pandas)."""
    return _empty_cached(layer).copy()
