"""WKB and GeoPackage geometry blobs: the one reader of polygon coordinates.

:func:`read_polygons` turns an array of blobs into flat coordinate arrays
with ring, polygon and feature offsets (:class:`Polygons`, the GeoArrow
layout of MultiPolygons).  Both the vector tile encoder
(:mod:`gisapp.tiles.mvt`) and the GeoJSON writer (:mod:`gisapp.formats.geojson`)
read geometries through it.  Little-endian 2-D Polygons and MultiPolygons
(what the stores hold) are read with numpy, level by level over all blobs
at once; every other blob (big-endian, 3-D, other types, malformed) is read
by shapely and flattened by :func:`polygons_of`, which is also the way in
for shapely geometries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import shapely

#: Bytes of the envelope in a GeoPackage geometry blob's header, by its envelope indicator (flag bits 1–3).
GPKG_ENVELOPE_BYTES = (0, 32, 48, 48, 64, 0, 0, 0)
#: The "empty geometry" flag of a GeoPackage geometry blob's header.
GPKG_EMPTY = 0x10
_POLYGON, _MULTIPOLYGON = 3, 6


def gpkg_header_bytes(flags):
    """Length of GeoPackage blob headers (magic, version, flags, SRS id, envelope) from their flags byte(s)."""
    return 8 + np.take(GPKG_ENVELOPE_BYTES, (np.asarray(flags) >> 1) & 7)


def gpkg_to_wkb(blob: bytes | None) -> bytes | None:
    """The WKB of a GeoPackage geometry blob; ``None`` when missing."""
    if blob is None:
        return None
    return blob[8 + GPKG_ENVELOPE_BYTES[(blob[3] >> 1) & 7]:]


def u32(buf: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Little-endian uint32 values (as int64) at byte offsets ``at`` of the byte array ``buf``."""
    at = np.asarray(at)
    return buf[at].astype(np.int64) | (buf[at + 1].astype(np.int64) << 8) | (buf[at + 2].astype(np.int64) << 16) \
        | (buf[at + 3].astype(np.int64) << 24)


@dataclass
class Polygons:
    """Polygonal geometries as flat arrays, one entry per feature read.

    ``xy`` (N, 2) holds the coordinates of every ring, ring after ring;
    ``ring_offsets`` (R + 1) index ``xy``, ``polygon_offsets`` (P + 1) index
    the rings (a polygon's exterior first, then its holes) and
    ``feature_offsets`` (F + 1) index the polygons.  Per feature: ``multi``
    says it is a MultiPolygon (else a Polygon, or missing/empty: no
    polygons), ``other`` that it is neither (a point, line or collection;
    only the Polygons directly in a collection are here).  ``fallback``
    lists the features that shapely read (not little-endian 2-D).
    """

    xy: np.ndarray
    ring_offsets: np.ndarray
    polygon_offsets: np.ndarray
    feature_offsets: np.ndarray
    multi: np.ndarray
    other: np.ndarray
    fallback: np.ndarray

    def __len__(self) -> int:
        return len(self.feature_offsets) - 1

    @classmethod
    def empty(cls, n: int) -> Polygons:
        """``n`` features without polygons (missing geometries)."""
        return cls(np.empty((0, 2)), np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(n + 1, np.int64),
                   np.zeros(n, bool), np.zeros(n, bool), np.empty(0, np.int64))

    def ring_features(self) -> np.ndarray:
        """The feature of each ring."""
        per_poly = np.repeat(np.arange(len(self)), np.diff(self.feature_offsets))
        return np.repeat(per_poly, np.diff(self.polygon_offsets))

    def exterior(self) -> np.ndarray:
        """Whether each ring is its polygon's exterior (its first ring)."""
        ext = np.zeros(len(self.ring_offsets) - 1, bool)
        starts = self.polygon_offsets[:-1]
        ext[starts[np.diff(self.polygon_offsets) > 0]] = True
        return ext

    def point_features(self) -> np.ndarray:
        """The feature of each point of ``xy``."""
        return np.repeat(self.ring_features(), np.diff(self.ring_offsets))

    def point_counts(self) -> np.ndarray:
        """The number of points of each feature."""
        return np.diff(self.ring_offsets[self.polygon_offsets[self.feature_offsets]])

    def bounds(self) -> np.ndarray:
        """``(n, 4)`` box (minx, miny, maxx, maxy) of each feature's points, NaN for a feature without any
        (``shapely.bounds``' values)."""
        out = np.full((len(self), 4), np.nan)
        counts = self.point_counts()
        has = np.flatnonzero(counts > 0)
        if len(has):
            starts = self.ring_offsets[self.polygon_offsets[self.feature_offsets[has]]]
            for k, (axis, reduce) in enumerate(((0, np.minimum), (1, np.minimum), (0, np.maximum), (1, np.maximum))):
                out[has, k] = reduce.reduceat(np.ascontiguousarray(self.xy[:, axis]), starts)
        return out

    def take(self, order) -> Polygons:
        """The features at positions ``order``, in that order (``fallback`` renumbered, kept sorted)."""
        order = np.asarray(order, np.int64)
        polys, feature_offsets = _ranges(self.feature_offsets, order)
        rings, polygon_offsets = _ranges(self.polygon_offsets, polys)
        points, ring_offsets = _ranges(self.ring_offsets, rings)
        was = np.zeros(len(self), bool)
        was[self.fallback] = True
        pairs = np.ascontiguousarray(self.xy, np.float64).view(np.complex128)  # a point's 16 bytes as one item:
        xy = pairs[points.reshape(-1, 1)].view(np.float64).reshape(-1, 2)  # gathered 3× faster than rows of two
        return Polygons(xy, ring_offsets, polygon_offsets, feature_offsets, self.multi[order],
                        self.other[order], np.flatnonzero(was[order]))

    @staticmethod
    def concat(parts: list[Polygons]) -> Polygons:
        """The features of ``parts``, one after the other."""
        def joined(name: str, base: np.ndarray) -> np.ndarray:
            arrays = [getattr(p, name)[:-1] + b for p, b in zip(parts, base, strict=True)]
            return np.concatenate([*arrays, [getattr(parts[-1], name)[-1] + base[-1]]]).astype(np.int64)

        points = np.cumsum([0] + [len(p.xy) for p in parts[:-1]])
        rings = np.cumsum([0] + [len(p.ring_offsets) - 1 for p in parts[:-1]])
        polys = np.cumsum([0] + [len(p.polygon_offsets) - 1 for p in parts[:-1]])
        features = np.cumsum([0] + [len(p) for p in parts[:-1]])
        return Polygons(np.concatenate([p.xy for p in parts]), joined("ring_offsets", points),
                        joined("polygon_offsets", rings), joined("feature_offsets", polys),
                        np.concatenate([p.multi for p in parts]), np.concatenate([p.other for p in parts]),
                        np.concatenate([p.fallback + f for p, f in zip(parts, features, strict=True)]).astype(np.int64))


def _ranges(offsets: np.ndarray, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The items of the segments ``sel`` of ``offsets`` (concatenated), and the new offsets."""
    starts = offsets[sel]
    sizes = offsets[sel + 1] - starts
    new = np.zeros(len(sel) + 1, np.int64)
    np.cumsum(sizes, out=new[1:])
    if len(sizes) and (sizes == sizes[0]).all():  # (one polygon, one ring, five points each: most layers)
        return (starts[:, None] + np.arange(sizes[0])).ravel(), new
    return np.repeat(starts - new[:-1], sizes) + np.arange(new[-1]), new


def _offsets(sizes) -> np.ndarray:
    out = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=out[1:])
    return out


def polygons_of(geoms) -> Polygons:
    """:class:`Polygons` of shapely geometries (Z and M dropped; missing ones have no polygons)."""
    geoms = np.asarray(geoms, dtype=object)
    types = shapely.get_type_id(geoms)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    keep = shapely.get_type_id(parts) == _POLYGON
    parts, owner = parts[keep], owner[keep]
    if len(parts):
        _, xy, (ring_offsets, polygon_offsets) = shapely.to_ragged_array(parts)
        xy = np.ascontiguousarray(xy[:, :2])
    else:
        xy, ring_offsets, polygon_offsets = np.empty((0, 2)), np.zeros(1), np.zeros(1)
    return Polygons(xy, np.asarray(ring_offsets, np.int64), np.asarray(polygon_offsets, np.int64),
                    _offsets(np.bincount(owner, minlength=len(geoms))), types == _MULTIPOLYGON,
                    ~np.isin(types, (-1, _POLYGON, _MULTIPOLYGON)), np.empty(0, np.int64))


def binary_array(blobs) -> pa.BinaryArray:
    """``blobs`` (bytes, ``None``; a list, numpy or Arrow array) as one Arrow binary array."""
    arr = blobs if isinstance(blobs, (pa.Array, pa.ChunkedArray)) else pa.array(blobs, pa.binary(), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if arr.type == pa.binary() else arr.cast(pa.binary())


def read_polygons(blobs, *, gpkg: bool = False) -> Polygons:
    """The polygons of WKB blobs (GeoPackage geometry blobs when ``gpkg``), one feature per blob.

    Missing blobs and GeoPackage blobs flagged empty have no polygons.
    Little-endian 2-D (Multi)Polygons are walked with numpy; the others,
    and any blob whose walk does not end exactly at its last byte, are read
    by shapely (which raises on malformed WKB, as ``shapely.from_wkb`` does).
    """
    arr = binary_array(blobs)
    n = len(arr)
    if n == 0 or arr.null_count == n or arr.buffers()[2] is None:
        return Polygons.empty(n)
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset:arr.offset + n + 1].astype(np.int64)
    buf = np.frombuffer(arr.buffers()[2], np.uint8)
    start, end = offsets[:-1].copy(), offsets[1:]
    present = end > start
    if arr.null_count:
        present &= arr.is_valid().to_numpy(zero_copy_only=False)
    if gpkg:
        idx = np.flatnonzero(present & (end - start >= 8))
        flags = buf[start[idx] + 3]
        start[idx] += gpkg_header_bytes(flags)
        present[idx[(flags & GPKG_EMPTY) > 0]] = False
    cand = np.flatnonzero(present & (end - start >= 9))
    at = start[cand]
    typ = u32(buf, at + 1)
    plain = (buf[at] == 1) & ((typ == _POLYGON) | (typ == _MULTIPOLYGON))
    cand, at, typ = cand[plain], at[plain], typ[plain]
    multi = typ == _MULTIPOLYGON
    good, found = _walk(buf, at, end[cand], multi)
    if not good.all():  # walk the well-formed ones again, on their own
        cand, at, multi = cand[good], at[good], multi[good]
        _, found = _walk(buf, at, end[cand], multi)
    polys = _assemble(buf, cand, multi, n, *found)
    is_slow = present.copy()
    is_slow[cand] = False
    if not is_slow.any():
        return polys
    slow = np.flatnonzero(is_slow)
    blobs = arr.take(pa.array(slow)).to_pylist()
    rest = polygons_of(shapely.from_wkb(np.asarray([gpkg_to_wkb(b) for b in blobs] if gpkg else blobs, object)))
    rest.fallback = np.arange(len(rest))
    order = np.arange(n)
    order[slow] = n + np.arange(len(slow))
    return Polygons.concat([polys, rest]).take(order)


def _walk(buf: np.ndarray, at: np.ndarray, end: np.ndarray, multi: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Walk the little-endian (Multi)Polygons at byte offsets ``at`` of ``buf``, each ending at ``end``.

    Polygon after polygon (the k-th of every blob at once), ring after
    ring.  Returns which blobs are well-formed (every header and ring
    within ``end``, every part a little-endian Polygon, nothing left after
    the last one) and what was found: per polygon its blob and part number,
    per ring (in lists, one entry per step) its polygon, number, the byte
    offset of its coordinates and its point count.
    """
    good = np.ones(len(at), bool)
    fin = np.where(multi, at + 9, at)  # where each blob's last polygon ends
    parts_left = np.where(multi, u32(buf, at + 5), 1)
    cur = fin.copy()  # the header (order, type) of each blob's next polygon
    pos = np.arange(len(at))
    poly_pos: list[np.ndarray] = []
    poly_part: list[int] = []
    rings: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]] = []
    n_polys = 0
    while True:
        go = parts_left > 0
        if not go.all():
            pos, cur, parts_left = pos[go], cur[go], parts_left[go]
        if not len(pos):
            break
        ok = cur + 9 <= end[pos]
        ok[ok] = (buf[cur[ok]] == 1) & (u32(buf, cur[ok] + 1) == _POLYGON)
        if not ok.all():
            good[pos[~ok]] = False
            pos, cur, parts_left = pos[ok], cur[ok], parts_left[ok]
        poly_pos.append(pos)
        poly_part.append(len(poly_part))
        rings_left = u32(buf, cur + 5)
        cur = cur + 9
        live, k = np.arange(len(pos)), 0
        while True:
            go = rings_left[live] > 0
            if not go.all():
                live = live[go]
            if not len(live):
                break
            here = cur[live]
            limit = end[pos[live]]
            ok = here + 4 <= limit
            npts = u32(buf, np.where(ok, here, 0))
            ok &= here + 4 + 16 * npts <= limit
            if not ok.all():
                good[pos[live[~ok]]] = False
                rings_left[live[~ok]] = 0
                live, here, npts = live[ok], here[ok], npts[ok]
            rings.append((n_polys + live, k, here + 4, npts))
            cur[live] = here + 4 + 16 * npts
            rings_left[live] -= 1
            k += 1
        n_polys += len(pos)
        fin[pos] = cur
        parts_left = parts_left - 1
    good &= fin == end
    return good, (poly_pos, poly_part, rings)


def _assemble(buf: np.ndarray, feat: np.ndarray, multi: np.ndarray, n: int, poly_pos_steps: list[np.ndarray],
              poly_part: list[int], rings: list[tuple[np.ndarray, int, np.ndarray, np.ndarray]]) -> Polygons:
    """:class:`Polygons` of ``n`` features from what :func:`_walk` found in the blobs of features ``feat``."""
    out = Polygons.empty(n)
    out.multi[feat] = multi
    if not poly_pos_steps:
        return out
    counts = [len(p) for p in poly_pos_steps]
    poly_pos = np.concatenate(poly_pos_steps)
    out.feature_offsets = _offsets(np.bincount(feat[poly_pos], minlength=n))
    if not rings:
        out.polygon_offsets = np.zeros(len(poly_pos) + 1, np.int64)
        return out
    r_poly = np.concatenate([r[0] for r in rings])
    r_at = np.concatenate([r[2] for r in rings])
    r_n = np.concatenate([r[3] for r in rings])
    if len(counts) > 1:  # polygons in (feature, part) order
        order = np.lexsort((np.repeat(poly_part, counts), poly_pos))
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        r_poly = rank[r_poly]
    if len(rings) > 1:  # rings in (polygon, ring number) order
        order = np.lexsort((np.repeat([r[1] for r in rings], [len(r[0]) for r in rings]), r_poly))
        r_poly, r_at, r_n = r_poly[order], r_at[order], r_n[order]
    out.polygon_offsets = _offsets(np.bincount(r_poly, minlength=len(poly_pos)))
    out.ring_offsets = _offsets(r_n)
    out.xy = _doubles(buf, r_at, 2 * r_n).reshape(-1, 2)
    return out


def _doubles(buf: np.ndarray, at: np.ndarray, count: np.ndarray) -> np.ndarray:
    """The little-endian doubles of runs of ``count`` values starting at byte offsets ``at``, concatenated.

    A WKB value need not be 8-byte aligned: the buffer is viewed as doubles from each of the eight byte
    offsets a run may start at (unaligned views, no copy), and each run is gathered from the view of its start.
    """
    total = int(count.sum())
    out = np.empty(total, "<f8")
    if not total:
        return out
    first = np.cumsum(count) - count  # each run's first value in ``out``
    phase = at % 8
    for k in np.unique(phase[count > 0]):
        runs = np.flatnonzero((phase == k) & (count > 0))
        n = count[runs]
        view = buf[k:k + (len(buf) - k) // 8 * 8].view("<f8")
        step = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)  # the value's place in its run
        out[np.repeat(first[runs], n) + step] = view[np.repeat((at[runs] - k) // 8, n) + step]
    return out


def to_gpkg(geoms, srs_id: int) -> list[bytes | None]:
    """GeoPackage geometry blobs of shapely geometries (little-endian, xy envelope; empty flagged), ``None`` kept."""
    import struct

    out: list[bytes | None] = []
    wkbs = shapely.to_wkb(np.asarray(geoms, dtype=object), byte_order=1)
    bounds = shapely.bounds(np.asarray(geoms, dtype=object)).reshape(-1, 4)
    for geom, wkb, (x0, y0, x1, y1) in zip(geoms, wkbs, bounds, strict=True):
        if geom is None:
            out.append(None)
        elif shapely.is_empty(geom):
            out.append(b"GP\x00" + bytes([0x01 | GPKG_EMPTY]) + struct.pack("<i", srs_id) + wkb)
        else:
            out.append(b"GP\x00\x03" + struct.pack("<i4d", srs_id, x0, x1, y0, y1) + wkb)
    return out


def gpkg_envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """(minx, maxx, miny, maxy) of a GeoPackage geometry blob: its header's envelope, else its WKB's; ``None``
    when missing or empty (what GeoPackage's R-tree triggers ask through ``ST_MinX`` … ``ST_MaxY``)."""
    import struct

    if blob is None or len(blob) < 8 or blob[3] & GPKG_EMPTY:
        return None
    if (blob[3] >> 1) & 7:
        order = "<" if blob[3] & 1 else ">"
        x0, x1, y0, y1 = struct.unpack(order + "4d", blob[8:40])
        return x0, x1, y0, y1
    geom = shapely.from_wkb(gpkg_to_wkb(blob))
    if geom is None or geom.is_empty:
        return None
    a, b, c, d = geom.bounds
    return a, c, b, d
