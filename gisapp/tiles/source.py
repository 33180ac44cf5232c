"""Where a vector tile comes from: each store's fastest way, beside the store rather than inside it.

:func:`tile` is the one entry point: PostGIS builds the tile in one query
(``ST_AsMVT``); the GeoPackage store hands over the rows its R-tree finds
and :func:`gisapp.tiles.mvt.render` encodes them; any other store is read
with :meth:`gisapp.store.Store.read_arrow` and encoded the same way.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import shapely

from gisapp import geo
from gisapp.filters import Filter
from gisapp.formats.wkb import gpkg_to_wkb
from gisapp.schema import get_layer
from gisapp.store import Store
from gisapp.store.base import PERSONAL_SEARCH_COLUMN, SEARCH_COLUMN
from gisapp.store.gpkg import GeoPackageStore
from gisapp.store.postgis import SRID, PostGISStore
from gisapp.tiles import index, subset
from gisapp.tiles import mvt as tiles

#: Largest error (tile units) of the per-tile affine map to EPSG:3857 that tiles accept instead of ST_Transform.
AFFINE_MAX_ERROR = 0.25


def tile(store: Store, layer: str, z: int, x: int, y: int, flt: Filter | None = None) -> bytes:
    """The Mapbox Vector Tile of ``layer``'s features matching ``flt`` in tile ``z/x/y``.

    WebMercatorQuad grid (EPSG:3857, XYZ), one MVT layer named ``layer``
    with the properties of :data:`gisapp.tiles.mvt.TILE_FIELDS` (never personal
    ones); ``b""`` when no feature is in the tile.  Raises
    :class:`gisapp.tiles.mvt.TileError` for a bad layer or tile address.
    """
    tiles.tile_layer(layer)
    z, x, y = tiles.check_tile(z, x, y)
    if isinstance(store, PostGISStore):
        return _postgis(store, layer, z, x, y, flt)
    box = tiles.intersect_bbox(tiles.lonlat_bounds(z, x, y, tiles.BUFFER), flt.bbox if flt else None)
    if box is None:
        return b""
    if isinstance(store, GeoPackageStore):
        return _gpkg(store, layer, z, x, y, flt, box)
    return _from_arrow(store, layer, z, x, y, flt, box)


def subset_tile(store: Store, layer: str, z: int, x: int, y: int, flt: Filter,
                feats: subset.TileFeatures) -> bytes | None:
    """The filtered tile ``z/x/y`` as the features of the unfiltered tile ``feats`` that match ``flt``.

    Equal to :func:`tile` with ``flt`` (same features, same encoding of
    each; see :mod:`gisapp.tiles.subset`).  Clauses on the tile's own
    properties are evaluated in memory; so are a search and a status as of
    a day, on the layer's search texts and status history kept in the
    process's memory (:mod:`gisapp.tiles.index`), or, for a tile whose
    features are not all there, on what the store says of them once (their
    search texts: :func:`tile_texts`; their status changes:
    :func:`tile_changes`), kept with ``feats``.  ``None`` when the filter
    needs the old way (a ``bbox``, or a clause on a field the tile lacks).
    """
    if flt.bbox is not None:
        return None
    mask = subset.match(layer, feats, flt)
    if mask is None:
        return None
    if (flt.q or subset.needs_store(layer, flt.with_(q=None))) and mask.any():
        kept = _from_index(store, layer, flt, feats)
        if kept is not None:
            return feats.select(mask & kept)
    if flt.q and mask.any():
        texts = tile_texts(store, layer, z, x, y, feats, personal=False)
        personal = tile_texts(store, layer, z, x, y, feats, personal=True) if flt.q_personal else None
        if texts is None or (flt.q_personal and personal is None):
            return None
        mask &= subset.search_mask(flt, texts, personal)
    if subset.needs_store(layer, flt.with_(q=None)) and mask.any():
        assert flt.as_of is not None
        changes = tile_changes(store, layer, feats)
        mask &= changes.status_in(feats, flt.as_of, flt.statuses)
    return feats.select(mask)


def _from_index(store: Store, layer: str, flt: Filter, feats: subset.TileFeatures):
    """Which features of ``feats`` match ``flt``'s search and status as of a day, from the process's columns of
    the layer (:mod:`gisapp.tiles.index`); ``None`` when a feature of the tile is not in them (the tile and
    the store disagree: the store is asked)."""
    personal = index.personal_column(layer) if flt.q and flt.q_personal else None
    if flt.q and flt.q_personal and personal is None:
        return None
    as_of_status = subset.needs_store(layer, flt.with_(q=None))
    found = index.index(store, layer, *([personal] if personal else []), with_history=as_of_status)
    located = feats.located
    if located is not None and located[0] is found.base and located[1] is found.new:
        pos = located[2]  # the same keys' lookups as when this tile was last located: the same positions
    else:
        pos = found.positions(feats.keys_column(layer))
        if pos is None:
            return None
        feats.located = (found.base, found.new, pos)
    mask = np.ones(len(feats), bool)
    if flt.q:
        mask &= subset.search_mask(flt, found.texts_at(SEARCH_COLUMN, pos),
                                   found.texts_at(personal, pos) if personal else None)
    if as_of_status and mask.any():
        assert flt.as_of is not None and found.history is not None
        mask &= found.history.status_in(pos, feats.column("status"), flt.as_of, flt.statuses)
    return mask


def tile_texts(store: Store, layer: str, z: int, x: int, y: int, feats: subset.TileFeatures, *,
               personal: bool) -> pa.Array | None:
    """The search text of each feature of the tile ``feats`` (the personal one with ``personal``), from the
    store once (the spatial index: the rows whose boxes meet the buffered tile), then kept in ``feats``.

    ``None`` for ``personal`` on a layer without personal texts.
    """
    lay = get_layer(layer)
    column = PERSONAL_SEARCH_COLUMN if personal else SEARCH_COLUMN
    if personal and not lay.personal_text_fields:
        return None
    kept = feats.extras.get(column)
    if kept is not None:
        return kept
    rows = store.box_texts(layer, tiles.store_box(z, x, y), column)
    texts = subset.aligned_texts(feats, layer, [r[0] for r in rows], [r[1] for r in rows])
    feats.extras[column] = texts
    return texts


def tile_changes(store: Store, layer: str, feats: subset.TileFeatures) -> subset.StatusChanges:
    """The status changes of the tile's features (:meth:`gisapp.store.Store.status_history` of their keys),
    from the store once, then kept in ``feats``."""
    kept = feats.extras.get("changes")
    if kept is not None:
        return kept
    keys = [k for k in feats.keys_column(layer).to_pylist() if k is not None]
    rows = store.status_history(layer, keys)
    changes = subset.StatusChanges.of(feats, layer, rows["key"].astype(str).tolist(),
                                      rows["changed_on"].to_numpy().astype("datetime64[D]"),
                                      rows["status"].astype(str).tolist())
    feats.extras["changes"] = changes
    return changes


def tile_from_arrow(store: Store, layer: str, z: int, x: int, y: int, flt: Filter | None = None) -> bytes:
    """:func:`tile` the plain way, for any store: the reference the fast paths are tested against."""
    tiles.tile_layer(layer)
    z, x, y = tiles.check_tile(z, x, y)
    box = tiles.intersect_bbox(tiles.lonlat_bounds(z, x, y, tiles.BUFFER), flt.bbox if flt else None)
    return b"" if box is None else _from_arrow(store, layer, z, x, y, flt, box)


def _from_arrow(store: Store, layer: str, z: int, x: int, y: int, flt: Filter | None, box) -> bytes:
    """The features meeting ``box`` read with :meth:`Store.read_arrow`, encoded in Python."""
    fields = tiles.TILE_FIELDS[layer]
    table = store.read_arrow(layer, (flt or Filter()).with_(bbox=box), fields=fields)
    if table is None:
        return b""
    return tiles.render(layer, table.column("geometry"), {f: table.column(f) for f in fields}, z, x, y)


def _gpkg(store: GeoPackageStore, layer: str, z: int, x: int, y: int, flt: Filter | None, box) -> bytes:
    """A GeoPackage tile: the rows whose R-tree boxes meet the buffered tile, clipped and encoded in Python.

    Features that only come near the tile are clipped away by
    :func:`gisapp.tiles.mvt.render`; a filter's own ``bbox`` is applied
    exactly to the geometries here.
    """
    fields = tiles.TILE_FIELDS[layer]
    rows = store.box_rows(layer, tiles.store_box(z, x, y), flt, fields)
    if rows and flt is not None and flt.bbox is not None:
        geoms = shapely.from_wkb([gpkg_to_wkb(r[-1]) for r in rows])
        rows = [r for r, hit in zip(rows, shapely.intersects(geoms, geo.bbox_polygon(box))) if hit]
    if not rows:
        return b""
    values = list(zip(*rows))
    return tiles.render(layer, values[-1], dict(zip(fields, values)), z, x, y, gpkg=True)


def _postgis(store: PostGISStore, layer: str, z: int, x: int, y: int, flt: Filter | None) -> bytes:
    """The Mapbox Vector Tile of ``layer`` in tile ``z/x/y`` built by PostGIS in one query.

    Rows are selected by ``geom && <the buffered tile's box in EPSG:5899>``
    (the GiST index) and the filter's clauses, brought to EPSG:3857 and
    encoded by ``ST_AsMVTGeom``/``ST_AsMVT`` with the extent and buffer of
    :mod:`gisapp.tiles.mvt`; dates as ISO text; each feature's MVT id is
    :data:`gisapp.tiles.mvt.FEATURE_ID_SQL` of its key (what the Python encoder
    gives).  ``ST_AsMVTGeom`` snaps to the grid and makes the result valid
    itself (PostGIS 3 with GEOS ≥ 3.9: snap-rounding), as the Python encoder's
    repair does; ``tests/test_tiles.py`` checks both on a ring rounding breaks.

    To EPSG:3857: ``ST_Transform(geom, 3857)`` costs ~17 µs per parcel
    here (PROJ weighs its candidate operations point by point), over half
    of a z14 tile's time.  Over one tile the transformation is affine to
    within 0.12 tile unit at z14 (less at higher zooms), so the query
    applies ``ST_Affine`` with the coefficients of
    :func:`gisapp.tiles.mvt.mercator_affine`, fitted to PROJ by EPSG code (the
    EPSG:6960 datum shift included); tiles too large for that (error over
    :data:`AFFINE_MAX_ERROR` tile unit, below z13) use ``ST_Transform``.
    """
    lay = get_layer(layer)
    where, params = store.where(lay, flt)
    where += (" AND " if where else " WHERE ") + f"geom && ST_MakeEnvelope(%s, %s, %s, %s, {SRID})"
    props = ", ".join(f"to_char({f}, 'YYYY-MM-DD') AS {f}" if lay.field(f).type == "date" else f
                      for f in tiles.TILE_FIELDS[layer])
    coefficients, error = tiles.mercator_affine(z, x, y)
    if error <= AFFINE_MAX_ERROR:
        to_mercator, to_params = "ST_SetSRID(ST_Affine(geom, %s, %s, %s, %s, %s, %s), 3857)", list(coefficients)
    else:
        to_mercator, to_params = "ST_Transform(geom, 3857)", []
    mvt_id = tiles.FEATURE_ID_SQL.format(key=lay.key)  # the MVT id, as the Python encoder makes it
    query = (f"SELECT ST_AsMVT(t, %s, {tiles.EXTENT}, 'geom', 'mvt_id') FROM (SELECT {props}, {mvt_id} AS mvt_id, "
             f"ST_AsMVTGeom({to_mercator}, ST_MakeEnvelope(%s, %s, %s, %s, 3857), "
             f"{tiles.EXTENT}, {tiles.BUFFER}, true) AS geom FROM {lay.name}{where}) t WHERE geom IS NOT NULL")
    with store.connection() as con:
        row = con.execute(query, [layer, *to_params, *tiles.tile_bounds(z, x, y), *params,
                                  *tiles.store_box(z, x, y)]).fetchone()
    return bytes(row[0]) if row and row[0] else b""
