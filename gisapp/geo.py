"""Coordinate helpers: VN-2000 / TM-3 107-45 (EPSG:5899) ↔ WGS84, by EPSG code.

Never from proj4 strings: without ``+towgs84`` they are ~225 m off.
PROJ picks the EPSG:6960 datum shift for EPSG:5899 → EPSG:4326.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
from pyproj import Transformer

from gisapp.schema import STORE_CRS, WEB_CRS


@lru_cache(maxsize=8)
def transformer(src: str, dst: str) -> Transformer:
    """A cached, thread-safe-to-share ``always_xy`` transformer between two CRSs."""
    return Transformer.from_crs(src, dst, always_xy=True)


def transform(geoms, src: str = STORE_CRS, dst: str = WEB_CRS):
    """Transform an array of shapely geometries (vectorised over coordinates)."""
    t = transformer(src, dst)
    return shapely.transform(np.asarray(geoms, dtype=object),
                             lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


#: Where EPSG:5899 (VN-2000 / TM-3 107-45) may be used, widened by a margin: lon/lat.
AREA_5899 = (100.0, 6.0, 115.0, 26.0)


def bbox_polygon(bbox, src: str = WEB_CRS, dst: str = STORE_CRS, densify: int = 16):
    """The WGS84 ``bbox`` (minlon, minlat, maxlon, maxlat) as a polygon in ``dst``.

    Edges are densified so the curved image of the box is followed closely.  A lon/lat box whose west
    edge is greater than its east edge crosses the antimeridian (OGC API bbox): the union of its halves.
    """
    x1, y1, x2, y2 = bbox
    if x1 > x2 and src == WEB_CRS:
        halves = [bbox_polygon(half, src, dst, densify) for half in ((x1, y1, 180.0, y2), (-180.0, y1, x2, y2))]
        halves = [h for h in halves if not h.is_empty]
        return shapely.MultiPolygon(halves) if len(halves) == 2 else (halves[0] if halves else shapely.Polygon())
    if src == WEB_CRS and dst == STORE_CRS:
        # Clamp to where the projection is defined (its area of use, with a margin): a whole-world box
        # means "everything", not an invalid polygon. Nothing of the store lies outside it.
        x1, y1, x2, y2 = max(x1, AREA_5899[0]), max(y1, AREA_5899[1]), min(x2, AREA_5899[2]), min(y2, AREA_5899[3])
        if x1 > x2 or y1 > y2:
            return shapely.Polygon()
    if x2 - x1 < 1e-9 or y2 - y1 < 1e-9:  # a point or a line: widen to ~0.1 mm so it stays a polygon
        x1, y1, x2, y2 = x1 - 1e-9, y1 - 1e-9, max(x2, x1 + 1e-9) + 1e-9, max(y2, y1 + 1e-9) + 1e-9
    box = shapely.box(x1, y1, x2, y2)
    box = shapely.segmentize(box, max(x2 - x1, y2 - y1) / densify)
    return transform([box], src, dst)[0]


def to_multipolygons(geoms) -> np.ndarray:
    """Polygons promoted to MultiPolygons (vectorised); other geometries unchanged."""
    out = np.asarray(geoms, dtype=object).copy()
    single = np.flatnonzero(shapely.get_type_id(out) == 3)
    if len(single):
        out[single] = shapely.multipolygons(out[single].reshape(-1, 1))  # one per row
    return out


def polygonal_parts(geoms) -> np.ndarray:
    """MultiPolygons: polygons wrapped, anything else (overlay results) cut to its polygonal parts."""
    out = to_multipolygons(geoms)
    other = np.flatnonzero(~np.isin(shapely.get_type_id(out), (6, -1)))
    if len(other):
        parts, owner = shapely.get_parts(out[other], return_index=True)
        poly = shapely.get_type_id(parts) == 3
        if poly.any():
            out[other] = shapely.multipolygons(parts[poly], indices=owner[poly], out_size=len(other))
        else:  # shapely returns no array at all for no parts, whatever out_size says
            out[other] = [shapely.MultiPolygon() for _ in other]
    return out
