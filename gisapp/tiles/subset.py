"""Filtered vector tiles as a subset of the unfiltered tile: its features taken apart once, selected by the filter.

A filtered tile (a ward, a status, a date range, a ``day``, ``as_of``, a text
search …) holds exactly the features of the unfiltered tile that match the
filter, each encoded as in the unfiltered tile: both stores encode a feature
on its own (``ST_AsMVTGeom`` per row on PostGIS; clipping, rounding and
winding per feature in :mod:`gisapp.tiles.mvt`), so its geometry bytes do not
depend on which other features are in the tile.  So the unfiltered tile
(pre-rendered on disk by :mod:`gisapp.tiles.disk`, or built once) is taken
apart into :class:`TileFeatures` — each feature's encoded geometry (and MVT
id) as a slice of the tile, its properties as columns — and kept in each
server process's memory; a filtered tile is then the features the filter
selects, re-encoded with only the values they use (:meth:`TileFeatures.select`).

Which features match:

* the filter's clauses on fields the tile carries (wards, statuses without
  ``as_of``, procedures, channels, purposes, kinds, ``from``/``to``, ``day``,
  ``as_of`` without a status) are evaluated on the tile's columns, in
  memory (:func:`match`), as :func:`gisapp.store.base.attribute_clauses`
  writes them in SQL (the tests compare the two on both stores);
* a text search ``q`` (the stored search text is not in the tile) and a
  status as of a day (the status history) are evaluated in memory too, on
  the tile's features' search texts (:func:`search_mask`) and status changes,
  taken from the layer's columns each process keeps
  (:mod:`gisapp.tiles.index`: a few ms per z14 tile at 1M, whatever the
  disk); a tile holding a feature those columns lack (taken apart before a
  delete) asks the store once per tile instead
  (:func:`gisapp.tiles.source.tile_texts`, :func:`gisapp.tiles.source.tile_changes`,
  :class:`StatusChanges`), kept in :attr:`TileFeatures.extras`;
* a ``bbox`` filter is built the old way (the exact geometry test is the store's).

Measured (``python -m benchmarks.bench_tiles --filters --sizes 100000``: the
benchmark's city at 100,000 permits per layer, mean over 16 tiles at z14 and
z16, one process, on the 2-core machine shared with other jobs, load ~10),
ms per filtered tile:

=============  =====================  ==================  ==============
filter         store builds it        subset: take apart  subset: tile
               (the way before)       + select            taken apart
=============  =====================  ==================  ==============
ward           196 gpkg / 56 PostGIS  29 / 30             3.4 / 0.6
status         131 / 14               29 / 25             1.5 / 3.6
procedure      1,234 / 60             49 / 32             2.0 / 0.5
channel        751 / 46               36 / 26             2.3 / 0.6
from/to        462 / 97               38 / 56             1.9 / 1.4
day            488 / 95               32 / 46             0.7 / 4.0
as_of          54 / 82                24 / 41             0.8 / 0.4
as_of+status   34 / 44                69 / 101            33 / 31
q (search)     64 / 48                46 / 30             24 / 8.7
=============  =====================  ==================  ==============

The store's own filtered tile is slow on the GeoPackage when SQLite scans an
attribute index of the whole layer instead of the R-tree; ``ST_AsMVT`` with
the filter ("letting PostGIS do it") costs what the unfiltered tile costs.
Pre-rendering per-ward tiles makes a ward's tile a file read (~0.1 ms) but
serves the ward filter only, and multiplies the folder and the render time
by the number of wards (and by every other filter value, if extended).
The subset serves every filter kind: a tile is taken apart once per process
and data version (tens of ms at z14, in memory after), and each filter then
costs a few ms; a search or a status as of a day too, once the process
keeps the layer's search texts and history (:mod:`gisapp.tiles.index`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gisapp import domain, history
from gisapp.filters import Filter, fold
from gisapp.schema import LAYERS
from gisapp.tiles.mvt import TILE_FIELDS, _field_bytes, _interleave, _varints

#: Share of a tile's features above which a subset copies them as written (see :meth:`TileFeatures.select`).
VERBATIM_SHARE = 0.25


class TileFormatError(ValueError):
    """Bytes that are not a one-layer MVT as the stores write them."""


# -- taking a tile apart -------------------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _skip(buf: bytes, pos: int, wire: int) -> int:
    if wire == 0:
        return _varint(buf, pos)[1]
    if wire == 1:
        return pos + 8
    if wire == 2:
        n, pos = _varint(buf, pos)
        return pos + n
    if wire == 5:
        return pos + 4
    raise TileFormatError(f"unsupported protobuf wire type {wire}")


def _packed_varints(data: np.ndarray) -> np.ndarray:
    """Every varint of concatenated packed varints (``uint8``), as ``int64``."""
    if not len(data):
        return np.empty(0, np.int64)
    ends = data < 0x80
    group = np.concatenate([[0], np.cumsum(ends)[:-1]])
    starts = np.flatnonzero(np.concatenate([[True], ends[:-1]]))
    shift = (np.arange(len(data)) - starts[group]) * 7
    parts = (data & 0x7F).astype(np.int64) << shift.astype(np.int64)
    return np.bincount(group, weights=parts, minlength=int(ends.sum())).astype(np.int64)


def _value_text(msg: bytes) -> str | None:
    """The text of an MVT ``Value`` message (a string as is; numbers and booleans as text)."""
    import struct

    pos = 0
    out: str | None = None
    while pos < len(msg):
        tag, pos = _varint(msg, pos)
        number, wire = tag >> 3, tag & 7
        if number == 1 and wire == 2:
            n, pos = _varint(msg, pos)
            out = msg[pos:pos + n].decode()
            pos += n
        elif number == 2 and wire == 5:
            out = repr(struct.unpack("<f", msg[pos:pos + 4])[0])
            pos += 4
        elif number == 3 and wire == 1:
            out = repr(struct.unpack("<d", msg[pos:pos + 8])[0])
            pos += 8
        elif wire == 0 and number in (4, 5, 6, 7):
            v, pos = _varint(msg, pos)
            if number == 4 and v >= 1 << 63:
                v -= 1 << 64
            elif number == 6:
                v = (v >> 1) ^ -(v & 1)
            out = ("true" if v else "false") if number == 7 else str(v)
        else:
            pos = _skip(msg, pos, wire)
    return out


@dataclass
class TileFeatures:
    """One MVT layer taken apart: per feature its geometry bytes, type, id and property codes.

    ``tags[i, k]`` is the index in ``values`` of feature ``i``'s value of
    key ``keys[k]`` (−1: none).  Geometries are slices of ``body`` (the
    tile): ``geom_start``/``geom_len``.  Columns of property texts are made
    on first use (:meth:`column`).
    """

    body: bytes
    name: str
    extent: int
    version: int
    keys: list[str]
    values: list[bytes]  # each Value message as written
    value_start: np.ndarray  # where each value's whole field (tag, length, message) starts in ``body``
    value_len: np.ndarray  # and its length
    tags: np.ndarray  # (n features, n keys) int64
    types: np.ndarray  # int64
    ids: np.ndarray | None  # uint64 per feature (None: no feature has one)
    has_id: np.ndarray | None
    geom_start: np.ndarray
    geom_len: np.ndarray
    keys_bytes: bytes = b""  # the layer's key fields, one per name
    feat_start: np.ndarray | None = None  # where each feature's whole field starts in ``body``
    feat_len: np.ndarray | None = None
    keys_raw: bytes = b""  # the key fields as written (a name may be there twice)
    values_raw: bytes = b""  # the value fields as written
    _texts: pa.Array | None = None
    _columns: dict = field(default_factory=dict)
    #: What the store said of these features beyond the tile's properties, fetched once and kept with them:
    #: ``"search"``/``"search_personal"`` (:func:`aligned_texts`), ``"changes"`` (:class:`StatusChanges`).
    extras: dict = field(default_factory=dict)
    #: Where the layer's kept columns (:mod:`gisapp.tiles.index`) hold these features: ``(base, new, positions)``,
    #: valid while the index finds keys with the same lookups (not counted in :attr:`nbytes`: ~8 bytes a feature).
    located: tuple | None = None
    _own_bytes: int | None = None

    def __len__(self) -> int:
        return len(self.types)

    @property
    def nbytes(self) -> int:
        """Memory it takes, roughly (for the cache's budget); what it holds apart from :attr:`extras` is
        reckoned once (the filtered tiles' view asks at every request)."""
        if self._own_bytes is None:
            arrays = [self.tags, self.types, self.geom_start, self.geom_len]
            if self.ids is not None:
                arrays.append(self.ids)
            self._own_bytes = len(self.body) + sum(a.nbytes for a in arrays) + \
                sum(len(v) + 60 for v in self.values) + 3 * len(self.values) * 8
        extras = sum(e.nbytes if isinstance(e, StatusChanges) else e.get_total_buffer_size()
                     for e in list(self.extras.values()))
        return self._own_bytes + extras

    def keys_column(self, layer: str) -> pa.Array:
        """Each feature's key (null where the tile lacks it)."""
        c = self.column(LAYERS[layer].key)
        return c if c is not None else pa.nulls(len(self), pa.string())

    def column(self, name: str) -> pa.Array | None:
        """The texts of property ``name``, one per feature (null where absent); ``None`` when no key has it."""
        if name in self._columns:
            return self._columns[name]
        if name not in self.keys:
            return None
        if self._texts is None:
            self._texts = pa.array([_value_text(v) for v in self.values], pa.string())
        codes = self.tags[:, self.keys.index(name)]
        col = self._texts.take(pa.array(codes, mask=codes < 0))
        self._columns[name] = col
        return col

    def select(self, mask: np.ndarray) -> bytes:
        """The tile of the features where ``mask`` is true (``b""`` when none).

        Under :data:`VERBATIM_SHARE` of the features, their tags are written
        again with a values table of only the values they use; above it, the
        features are copied as written with the tile's tables (unused values
        cost less than encoding again).
        """
        sel = np.flatnonzero(mask)
        if not len(sel):
            return b""
        if len(sel) == len(self):
            return self.body
        if len(sel) >= VERBATIM_SHARE * len(self) and self.feat_start is not None and self.feat_len is not None:
            # most features: each copied as written, with the whole key and value tables (no re-encoding)
            data = np.frombuffer(self.body, np.uint8)
            return _field_bytes(3, b"".join([
                bytes([0x78]) + _varints(np.array([self.version]))[0].tobytes(), _field_bytes(1, self.name.encode()),
                data[_spans(self.feat_start[sel], self.feat_len[sel])].tobytes(), self.keys_raw, self.values_raw,
                bytes([0x28]) + _varints(np.array([self.extent]))[0].tobytes()]))
        n = len(sel)
        tags = self.tags[sel]
        used = np.unique(tags[tags >= 0])
        data = np.frombuffer(self.body, np.uint8)
        remap = np.full(len(self.values), -1, np.int64)
        remap[used] = np.arange(len(used))
        codes = np.where(tags >= 0, remap[np.maximum(tags, 0)], -1)
        pairs = np.empty((n, 2 * len(self.keys)), np.int64)
        pairs[:, 0::2] = np.arange(len(self.keys))
        pairs[:, 1::2] = codes
        present = np.repeat(codes >= 0, 2, axis=1)
        tag_bytes, nb = _varints(pairs[present])
        per_pair = np.zeros(pairs.shape, np.int64)
        per_pair[present] = nb
        tag_len = per_pair.sum(axis=1)

        starts, lens = self.geom_start[sel], self.geom_len[sel]
        geom = data[_spans(starts, lens)]

        parts = []
        if self.ids is not None and self.has_id is not None:
            has = self.has_id[sel].astype(np.int64)
            id_b, id_nb = _varints(self.ids[sel][self.has_id[sel]])
            id_count = np.zeros(n, np.int64)
            id_count[has > 0] = id_nb
            parts += [(np.full(int(has.sum()), 0x08, np.uint8), has), (id_b, id_count)]
        has_tags = (tag_len > 0).astype(np.int64)
        tlen_b, tlen_nb = _varints(tag_len[tag_len > 0])
        tlen_count = np.zeros(n, np.int64)
        tlen_count[tag_len > 0] = tlen_nb
        type_b, type_nb = _varints(self.types[sel])
        parts += [(np.full(int(has_tags.sum()), 0x12, np.uint8), has_tags), (tlen_b, tlen_count),
                  (tag_bytes, tag_len), (np.full(n, 0x18, np.uint8), np.ones(n, np.int64)), (type_b, type_nb),
                  (np.full(n, 0x22, np.uint8), np.ones(n, np.int64)), _varints(lens), (geom, lens)]
        body, body_len = _interleave(parts)
        features, _ = _interleave([(np.full(n, 0x12, np.uint8), np.ones(n, np.int64)), _varints(body_len),
                                   (body, body_len)])
        layer = b"".join([
            bytes([0x78]) + _varints(np.array([self.version]))[0].tobytes(),
            _field_bytes(1, self.name.encode()), features.tobytes(),
            self.keys_bytes,
            data[_spans(self.value_start[used], self.value_len[used])].tobytes(),
            bytes([0x28]) + _varints(np.array([self.extent]))[0].tobytes()])
        return _field_bytes(3, layer)


def _spans(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The positions of the bytes of the spans ``starts[i]`` … ``starts[i] + lens[i]``, in order."""
    return np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))


def take_apart(body: bytes, name: str) -> TileFeatures:
    """The features of layer ``name`` of an MVT ``body`` (an empty tile: no features).

    The tile's framing is walked in Python (a few fields per feature); the
    packed tags of all features are decoded at once with numpy.  Bytes that
    are not such a tile raise :class:`TileFormatError`.
    """
    try:
        return _take_apart(body, name)
    except TileFormatError:
        raise
    except (IndexError, ValueError) as err:  # cut short, or not a protobuf (UnicodeDecodeError is a ValueError)
        raise TileFormatError(f"not a vector tile: {err}") from None


def _take_apart(body: bytes, name: str) -> TileFeatures:
    empty = np.empty(0, np.int64)
    if not body:
        return TileFeatures(b"", name, 4096, 2, [], [], empty, empty, np.empty((0, 0), np.int64), empty, None, None,
                            empty, empty)
    pos, layer_start, layer_end = 0, -1, -1
    while pos < len(body):
        tag, pos = _varint(body, pos)
        if tag == 0x1A:
            n, pos = _varint(body, pos)
            start, end = pos, pos + n
            lname = _layer_name(body, start, end)
            if lname == name:
                layer_start, layer_end = start, end
            pos = end
        else:
            pos = _skip(body, pos, tag & 7)
    if layer_start < 0:
        raise TileFormatError(f"the tile has no layer {name!r}")
    keys: list[str] = []
    values: list[bytes] = []
    key_fields: list[bytes] = []
    f_start: list[int] = []
    f_len: list[int] = []
    v_start: list[int] = []
    v_len: list[int] = []
    extent, version = 4096, 1
    pos, end, b = layer_start, layer_end, body
    while pos < end:  # the layer's fields: one-byte tags and lengths inline (features are most of them)
        at = pos
        tag = b[pos]
        if tag < 0x80 and tag & 7 == 2:
            n = b[pos + 1]
            pos += 2
            if n >= 0x80:
                n, pos = _varint(b, pos - 1)
            if tag == 0x12:
                f_start.append(at)
                f_len.append(pos + n - at)
            elif tag == 0x22:
                values.append(b[pos:pos + n])
                v_start.append(at)
                v_len.append(pos + n - at)
            elif tag == 0x1A:
                keys.append(b[pos:pos + n].decode())
                key_fields.append(b[at:pos + n])
            pos += n
            continue
        tag, pos = _varint(b, pos)
        if tag == 0x28:
            extent, pos = _varint(b, pos)
        elif tag == 0x78:
            version, pos = _varint(b, pos)
        else:
            pos = _skip(b, pos, tag & 7)
    data = np.frombuffer(body, np.uint8)
    if pos != end or end > len(body):
        raise TileFormatError("a field runs past the end of the tile")
    ids_arr, has_arr, types, gs_arr, gl_arr, ts_arr, tl_arr = _feature_fields(
        data, np.array(f_start, np.int64), np.array(f_len, np.int64))
    n_feat = len(f_start)
    tag_data = data[_spans(ts_arr, tl_arr)]
    flat = _packed_varints(tag_data)
    # a key may be listed twice (PostGIS's ST_AsMVT run in parallel joins the partial layers' keys): one column per name
    names = list(dict.fromkeys(keys))
    column_of = np.array([names.index(k) for k in keys], np.int64)
    tags = np.full((n_feat, len(names)), -1, np.int64)
    if len(flat):
        owner = np.searchsorted(np.cumsum(tl_arr), np.flatnonzero(tag_data < 0x80), side="right")
        tags[owner[0::2], column_of[flat[0::2]]] = flat[1::2]
    keys_raw = b"".join(key_fields)
    keys_bytes = keys_raw if len(names) == len(keys) else b"".join(_field_bytes(3, k.encode()) for k in names)
    keys = names
    values_raw = data[_spans(np.array(v_start, np.int64), np.array(v_len, np.int64))].tobytes()
    has_id = has_arr if has_arr.any() else None
    return TileFeatures(body, name, extent, version, keys, values, np.array(v_start, np.int64),
                        np.array(v_len, np.int64), tags, types, ids_arr if has_id is not None else None, has_id,
                        gs_arr, gl_arr, keys_bytes, np.array(f_start, np.int64), np.array(f_len, np.int64),
                        keys_raw, values_raw)


def _varints_at(data: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The varints starting at positions ``at`` of ``data``: values (``uint64``) and byte counts."""
    window = data[np.minimum(at[:, None] + np.arange(10), len(data) - 1)]
    last = window < 0x80
    if not last.any(axis=1).all():
        raise TileFormatError("a varint runs past ten bytes")
    nb = np.argmax(last, axis=1) + 1
    used = np.arange(10) < nb[:, None]
    parts = np.where(used, (window & 0x7F).astype(np.uint64) << (np.arange(10, dtype=np.uint64) * np.uint64(7)),
                     np.uint64(0))
    return np.bitwise_or.reduce(parts, axis=1), nb


def _feature_fields(data: np.ndarray, f_start: np.ndarray, f_len: np.ndarray):
    """Per feature field (``f_start``, ``f_len``: each whole field): id, has id, type, geometry and tags spans.

    All features at once, one of their fields per step (a feature has four).
    """
    n = len(f_start)
    ids, types = np.zeros(n, np.uint64), np.zeros(n, np.int64)
    has_id = np.zeros(n, bool)
    g_start, g_len, t_start, t_len = (np.zeros(n, np.int64) for _ in range(4))
    if not n:
        return ids, has_id, types, g_start, g_len, t_start, t_len
    _, header = _varints_at(data, f_start + 1)
    cur = f_start + 1 + header.astype(np.int64)
    fend = f_start + f_len
    for _ in range(64):
        idx = np.flatnonzero(cur < fend)
        if not len(idx):
            break
        c = cur[idx]
        tag = data[c].astype(np.int64)
        if (tag >= 0x80).any():
            raise TileFormatError("a feature field number above 15")
        value, nb = _varints_at(data, c + 1)
        after = c + 1 + nb
        wire = tag & 7
        nxt = np.where(wire == 2, after + value.astype(np.int64), np.where(wire == 1, c + 9, np.where(
            wire == 5, c + 5, after)))
        for t, target in ((0x18, types),):
            hit = tag == t
            target[idx[hit]] = value[hit].astype(np.int64)
        hit = tag == 0x08
        ids[idx[hit]], has_id[idx[hit]] = value[hit], True
        for t, starts, lens in ((0x12, t_start, t_len), (0x22, g_start, g_len)):
            hit = tag == t
            starts[idx[hit]], lens[idx[hit]] = after[hit], value[hit].astype(np.int64)
        cur[idx] = nxt
    if (cur != fend).any():
        raise TileFormatError("a feature's fields run past its end")
    return ids, has_id, types, g_start, g_len, t_start, t_len


def _layer_name(body: bytes, start: int, end: int) -> str | None:
    pos = start
    while pos < end:
        tag, pos = _varint(body, pos)
        if tag == 0x0A:
            n, pos = _varint(body, pos)
            return body[pos:pos + n].decode()
        pos = _skip(body, pos, tag & 7)
    return None


# -- which features match --------------------------------------------------------------------

def needs_store(layer: str, flt: Filter) -> bool:
    """Whether ``flt`` has a clause the tile's columns cannot answer: a search, or a status as of a day."""
    lay = LAYERS[layer]
    if flt.q:
        return True
    return bool(flt.as_of and flt.statuses and layer in history.LAYER_KEYS and "status" in lay.field_names)


def match(layer: str, feats: TileFeatures, flt: Filter) -> np.ndarray | None:
    """Which features of the tile match ``flt``'s attribute clauses, evaluated on the tile's columns.

    The same conditions as :func:`gisapp.store.base.attribute_clauses` (SQL
    ``NULL`` never matches a comparison); ``q``, the status as of a day and
    ``bbox`` are left out (:func:`needs_store`, and the caller's).  ``None``
    when a clause names a field the tile does not carry.
    """
    lay = LAYERS[layer]
    names = set(lay.field_names)
    n = len(feats)
    mask = np.ones(n, bool)
    carried = set(TILE_FIELDS[layer])

    def col(name: str) -> pa.Array | None:
        if name not in carried:
            return None
        c = feats.column(name)
        return c if c is not None else pa.nulls(n, pa.string())

    def true(expr) -> np.ndarray:
        return pc.fill_null(expr, False).to_numpy(zero_copy_only=False).astype(bool)

    def any_of(name: str, values) -> bool:
        nonlocal mask
        if not values or name not in names:
            return True
        c = col(name)
        if c is None:
            return False
        mask &= true(pc.is_in(c, value_set=pa.array(list(values), pa.string())))
        return True

    ok = any_of("ward_code", flt.wards)
    if not (flt.as_of and flt.statuses and layer in history.LAYER_KEYS and "status" in names):
        ok &= any_of("status", flt.statuses)
    for name, values in (("procedure", flt.procedures), ("channel", flt.channels), ("purpose", flt.purposes),
                         ("kind", flt.kinds)):
        ok &= any_of(name, values)
    if not ok:
        return None
    start, end = lay.date_field, lay.end_date_field or lay.date_field

    def dates(name: str | None) -> pa.Array | None:
        return None if name is None else col(name)

    def at_most(name, day: dt.date) -> np.ndarray | None:  # name <= day
        c = dates(name)
        return None if c is None else true(pc.less_equal(c, day.isoformat()))

    def at_least(name, day: dt.date, open_end: bool) -> np.ndarray | None:  # name >= day [OR name IS NULL]
        c = dates(name)
        if c is None:
            return None
        hit = true(pc.greater_equal(c, day.isoformat()))
        return hit | true(pc.is_null(c)) if open_end else hit

    conditions: list[np.ndarray | None] = []
    if start and flt.date_to:
        conditions.append(at_most(start, flt.date_to))
    if start and flt.date_from:
        conditions.append(at_least(end, flt.date_from, end != start))
    if start and flt.as_of:
        conditions.append(at_most(start, flt.as_of))
        if end != start and not (flt.date_from or flt.date_to or flt.day):
            conditions.append(at_least(end, flt.as_of, True))
    if flt.day:
        conditions.extend(_day(lay, flt.day, col, at_most, at_least))
    for c in conditions:
        if c is None:
            return None
        mask &= c
    return mask


def _day(lay, day: dt.date, col, at_most, at_least) -> list[np.ndarray | None]:
    """The ``day`` clauses of :func:`gisapp.store.base.day_clauses` on the tile's columns."""
    start, end = lay.date_field, lay.end_date_field
    if lay.works_start_fields:
        columns = [col(f) for f in lay.works_start_fields]
        if any(c is None for c in columns):
            return [None]
        works = pc.coalesce(*columns)
        bound = domain.works_start_bound(day, lay.works_months).isoformat()
        return [pc.fill_null(pc.and_(pc.less_equal(works, day.isoformat()), pc.greater_equal(works, bound)),
                             False).to_numpy(zero_copy_only=False).astype(bool)]
    if not start:
        return []
    if not end:
        c = col(start)
        return [None if c is None else pc.fill_null(pc.equal(c, day.isoformat()), False)
                .to_numpy(zero_copy_only=False).astype(bool)]
    return [at_most(start, day), at_least(end, day, True)]


# -- what the tile does not carry: search texts and status histories, fetched once per tile ----------------

def aligned_texts(feats: TileFeatures, layer: str, keys, texts) -> pa.Array:
    """``texts`` (one per key of ``keys``, any order, a superset of the tile's) as one per feature of ``feats``."""
    at = pc.index_in(feats.keys_column(layer), value_set=pa.array(keys, pa.string()))
    return pa.array(texts, pa.string()).take(at)


def search_mask(flt: Filter, texts: pa.Array, personal: pa.Array | None = None) -> np.ndarray:
    """Which features' search texts hold every word of ``flt.q`` (folded), as the stores' ``LIKE '%word%'``.

    ``personal``: the personal search texts too (a word may be in either), for ``flt.q_personal``.
    """
    mask = np.ones(len(texts), bool)
    for word in fold(flt.q).split():
        hit = pc.fill_null(pc.match_substring(texts, word), False)
        if personal is not None:
            hit = pc.or_(hit, pc.fill_null(pc.match_substring(personal, word), False))
        mask &= hit.to_numpy(zero_copy_only=False).astype(bool)
    return mask


@dataclass
class StatusChanges:
    """The status changes of a tile's features, so that their status as of any day is found in memory.

    Feature ``i``'s changes are rows ``offsets[i]:offsets[i + 1]``, in the
    history's order (day, time, arrival); ``days`` are day ordinals and
    ``codes`` index ``names``.
    """

    offsets: np.ndarray
    days: np.ndarray
    codes: np.ndarray
    names: list[str]

    @property
    def nbytes(self) -> int:
        return self.offsets.nbytes + self.days.nbytes + self.codes.nbytes + 60 * len(self.names)

    @classmethod
    def of(cls, feats: TileFeatures, layer: str, keys, days, statuses) -> StatusChanges:
        """From the history's rows ``(keys[j], days[j], statuses[j])`` in its order (key, day, time, arrival);
        rows of keys the tile lacks are left out."""
        n = len(feats)
        at = pc.index_in(pa.array(keys, pa.string()), value_set=feats.keys_column(layer))
        owner = at.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        order = np.argsort(owner, kind="stable")  # by feature, each feature's rows in the history's order
        order = order[owner[order] >= 0]
        owner = owner[order]
        status = pa.array(statuses, pa.string()).dictionary_encode()
        codes = status.indices.to_numpy(zero_copy_only=False).astype(np.int64)[order]
        day_numbers = np.asarray(days, "datetime64[D]").astype(np.int64)[order]
        offsets = np.searchsorted(owner, np.arange(n + 1))
        return cls(offsets, day_numbers, codes, [str(v) for v in status.dictionary.to_pylist()])

    def status_in(self, feats: TileFeatures, day: dt.date, statuses) -> np.ndarray:
        """Which features' status at the end of ``day`` is one of ``statuses``: their last change by then, else
        their current status (as :func:`gisapp.store.base.status_as_of_sql`)."""
        day_number = np.datetime64(day.isoformat(), "D").astype(np.int64)
        done = np.concatenate([[0], np.cumsum(self.days <= day_number)])
        counts = done[self.offsets[1:]] - done[self.offsets[:-1]]  # changes by then: the first ones of each
        known = counts > 0
        wanted = np.isin(np.arange(len(self.names)), [self.names.index(s) for s in statuses if s in self.names])
        out = np.zeros(len(feats), bool)
        last = (self.offsets[:-1] + counts - 1)[known]
        out[known] = wanted[self.codes[last]] if len(last) else False
        current = feats.column("status")
        if current is not None and (~known).any():
            now = pc.fill_null(pc.is_in(current, value_set=pa.array(list(statuses), pa.string())), False) \
                .to_numpy(zero_copy_only=False).astype(bool)
            out[~known] = now[~known]
        return out
