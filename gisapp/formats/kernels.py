"""Compiled loops of the write's derived columns (numba): the stored GeoJSON written from the coordinates, the
search texts folded on their UTF-8 bytes.

Each kernel is a pure function of numpy arrays, compiled on first use and cached (``cache=True``, where
:func:`cache_location` says), run without the interpreter lock (``nogil``), so the blocks of
:func:`gisapp.formats.derive.run_blocks` run them side by side.  They write the bytes the Arrow code they replace
writes, byte for byte, and leave to it whatever they cannot match (a flag per value).

Importing this module imports numba (~0.3 s): the modules that use it import it where they call it, not at their
own import (the command line's help and the web server start without it).
"""

from __future__ import annotations

import os
import tempfile

import numba
import numpy as np
from numba import njit

from gisapp.folders import private_folder

__all__ = ["fold_utf8", "geojson_polygons"]


def cache_location(probe) -> None:
    """Give numba a cache folder where it has none it can write to for the module of ``probe`` (a function of
    that module, never called: only decorated, to ask numba where it would cache).

    numba keeps compiled code where ``NUMBA_CACHE_DIR`` says, else beside
    the module, else in the user's cache (``~/.cache/numba``); where none can
    be written (a read-only install run by a service user without a home),
    it refuses to load a module with cached kernels at all.  Then the code is kept in this
    user's private folder in the system's temporary folder
    (:func:`gisapp.folders.private_folder`: made by this user, closed to
    others, since numba loads what it finds there as code).
    """
    try:
        njit(cache=True)(probe)
    except RuntimeError:
        folder = private_folder(os.path.join(tempfile.gettempdir(), f"gisapp-numba-{os.getuid()}"))
        numba.config.CACHE_DIR = str(folder)  # type: ignore[attr-defined]  # (numba sets its settings at run time)


def _probe():  # pragma: no cover - never called (:func:`cache_location`)
    return 0


cache_location(_probe)

#: Coordinates are written with this many decimals (:data:`gisapp.formats.geojson.PRECISION`).
_SCALE = 1e7
_FRACTION = 10_000_000
#: The largest ``|rint(v · 10⁷)|`` written here: below it a value's ulp is far below 10⁻⁷, so the decimal of
#: ``k / 10⁷`` is the shortest text that reads back as that double (Arrow's text), and Arrow writes it without an
#: exponent (it does from 10⁻⁶ up to 10¹⁰).
_MAX_UNITS = 10.0 ** 15


@njit(cache=True, nogil=True, error_model="numpy")
def _units(v):
    """``rint(v · 10⁷)`` (numpy's ``round(v, 7)`` times 10⁷) and whether the kernel writes it: finite, below
    :data:`_MAX_UNITS`, and zero or at least 10 (Arrow writes ``1e-7`` … ``9e-7`` with an exponent)."""
    k = np.rint(v * _SCALE)
    a = abs(k)
    return k, a < _MAX_UNITS and (a == 0.0 or a >= 10.0)


@njit(cache=True, nogil=True, error_model="numpy")
def _write_number(out, at, k):
    """Write the text of ``k / 10⁷`` (:func:`_number_size` bytes) at ``out[at]``; the position after it."""
    if k < 0.0 or (k == 0.0 and np.signbit(k)):
        out[at] = 45  # -
        at += 1
    units = np.int64(abs(k))
    whole, frac = units // _FRACTION, units % _FRACTION
    digits = 1
    w = whole
    while w >= 10:
        w //= 10
        digits += 1
    for d in range(digits - 1, -1, -1):
        out[at + d] = 48 + whole % 10
        whole //= 10
    at += digits
    if frac:
        places = 7
        while frac % 10 == 0:
            frac //= 10
            places -= 1
        out[at] = 46  # .
        for d in range(places, 0, -1):
            out[at + d] = 48 + frac % 10
            frac //= 10
        at += 1 + places
    return at


@njit(cache=True, nogil=True, error_model="numpy")
def _put(out, at, text):
    for j in range(len(text)):
        out[at + j] = text[j]
    return at + len(text)


@njit(cache=True, nogil=True, error_model="numpy")
def _feature_rings(f, feat_off, poly_off, multi):
    """The polygons ``[p0, p1)`` of feature ``f`` written (a Polygon: its first only) and its rings in all."""
    p0, p1 = feat_off[f], feat_off[f + 1]
    rings = poly_off[p1] - poly_off[p0]
    if not multi[f] and p1 > p0:
        p1 = p0 + 1
    return p0, p1, rings


@njit(cache=True, nogil=True, error_model="numpy")
def geojson_polygons(x, y, ring_off, poly_off, feat_off, multi, reverse, multi_head, polygon_head):
    """The GeoJSON geometry texts of (Multi)Polygons from WGS84 coordinates: ``(offsets, data, bad)``, an Arrow
    string array's offsets (int64) and UTF-8 bytes, and the features whose text is not there (empty: left to the
    caller) because a coordinate is one :func:`_units` does not write.

    ``x``/``y`` are the points ring after ring (``ring_off``), rings per polygon (``poly_off``), polygons per
    feature (``feat_off``), the layout of :class:`gisapp.formats.wkb.Polygons`; ``reverse`` says which rings are
    written last point first.  A feature is ``multi_head`` then ``[`` its polygons ``]`` then ``}``, or for a
    Polygon ``polygon_head``, its first polygon, ``}``; a polygon is ``[`` its rings ``]``, a ring ``[`` its
    points ``]``, a point ``[x,y]``, each coordinate ``round(v, 7)`` as Arrow casts it to text; a feature
    without rings is ``null``.  (What :func:`gisapp.formats.geojson.polygon_texts` joins in Arrow.)
    """
    n = len(feat_off) - 1
    # at most 17 bytes a number (sign, 8 digits, point, 7 decimals), 38 a point with its brackets and comma
    points, rings, polygons = ring_off[-1] - ring_off[0], len(ring_off) - 1, len(poly_off) - 1
    out = np.empty(38 * points + 3 * (rings + polygons) + (len(multi_head) + 4) * n, dtype=np.uint8)
    offsets = np.zeros(n + 1, dtype=np.int64)
    bad = np.zeros(n, dtype=np.bool_)
    null = np.array([110, 117, 108, 108], dtype=np.uint8)
    at = 0
    for f in range(n):
        start = at
        p0, p1, rings = _feature_rings(f, feat_off, poly_off, multi)
        if rings == 0:
            at = _put(out, at, null)
            offsets[f + 1] = at
            continue
        if multi[f]:
            at = _put(out, at, multi_head)
            out[at] = 91  # [
            at += 1
        else:
            at = _put(out, at, polygon_head)
        ok = True
        for p in range(p0, p1):
            if p > p0:
                out[at] = 44  # ,
                at += 1
            out[at] = 91
            at += 1
            for r in range(poly_off[p], poly_off[p + 1]):
                if r > poly_off[p]:
                    out[at] = 44
                    at += 1
                out[at] = 91
                at += 1
                first, last = ring_off[r], ring_off[r + 1] - 1
                for i in range(first, last + 1):
                    j = first + last - i if reverse[r] else i
                    kx, okx = _units(x[j])
                    ky, oky = _units(y[j])
                    if not (okx and oky):
                        ok = False
                        break
                    if i > first:
                        out[at] = 44
                        at += 1
                    out[at] = 91
                    at = _write_number(out, at + 1, kx)
                    out[at] = 44
                    at = _write_number(out, at + 1, ky)
                    out[at] = 93  # ]
                    at += 1
                if not ok:
                    break
                out[at] = 93
                at += 1
            if not ok:
                break
            out[at] = 93
            at += 1
        if not ok:
            bad[f] = True
            at = start
        else:
            if multi[f]:
                out[at] = 93
                at += 1
            out[at] = 125  # }
            at += 1
        offsets[f + 1] = at
    return offsets, out[:at], bad


@njit(cache=True, nogil=True, error_model="numpy")
def fold_utf8(data, offsets, table, ascii_table):
    """The folded UTF-8 texts of an Arrow string array's bytes (``data``, value ``r`` at
    ``offsets[r]:offsets[r + 1]``): ``(offsets, data, odd)`` of the folded texts, ``odd`` the values left to
    ``fold`` itself (their bytes here are not their fold).

    An ASCII byte goes through ``ascii_table``; a character beyond ASCII is decoded, mapped through ``table``
    (:func:`gisapp.formats.derive.fold_codes`) and written in UTF-8 again; a value with NUL, or with a
    character the table maps to nothing (0) or beyond it, or to a wider one than itself, is odd.  What
    :func:`gisapp.formats.derive._fold_block` computes in numpy, in one pass.
    """
    n = len(offsets) - 1
    out = np.empty(len(data), dtype=np.uint8)
    new = np.zeros(n + 1, dtype=np.int64)
    odd = np.zeros(n, dtype=np.bool_)
    codes = len(table)
    at = 0
    for r in range(n):
        i, end = offsets[r], offsets[r + 1]
        while i < end:
            b0 = np.int32(data[i])
            if b0 < 0x80:
                if b0 == 0:
                    odd[r] = True
                out[at] = ascii_table[b0]
                at += 1
                i += 1
                continue
            if b0 < 0xC0:  # a continuation byte without its lead (not in valid UTF-8): dropped
                i += 1
                continue
            size = 2 if b0 < 0xE0 else (3 if b0 < 0xF0 else 4)
            if i + size > end:  # (a character cut short: not in valid UTF-8)
                odd[r] = True
                for k in range(end - i):
                    out[at + k] = data[i + k]
                at += end - i
                break
            if size == 2:
                code = ((b0 & 0x1F) << 6) | (np.int32(data[i + 1]) & 0x3F)
            elif size == 3:
                code = ((b0 & 0x0F) << 12) | ((np.int32(data[i + 1]) & 0x3F) << 6) | (np.int32(data[i + 2]) & 0x3F)
            else:
                code = ((b0 & 0x07) << 18) | ((np.int32(data[i + 1]) & 0x3F) << 12) \
                    | ((np.int32(data[i + 2]) & 0x3F) << 6) | (np.int32(data[i + 3]) & 0x3F)
            m = table[code] if code < codes else 0
            width = 1 if m < 0x80 else (2 if m < 0x800 else (3 if m < 0x10000 else 4))
            if m == 0 or width > size:  # left as it is: the value is folded by ``fold``
                odd[r] = True
                for k in range(size):
                    out[at + k] = data[i + k]
                at += size
            elif width == 1:
                out[at] = m
                at += 1
            elif width == 2:
                out[at] = 0xC0 | (m >> 6)
                out[at + 1] = 0x80 | (m & 0x3F)
                at += 2
            elif width == 3:
                out[at] = 0xE0 | (m >> 12)
                out[at + 1] = 0x80 | ((m >> 6) & 0x3F)
                out[at + 2] = 0x80 | (m & 0x3F)
                at += 3
            else:
                out[at] = 0xF0 | (m >> 18)
                out[at + 1] = 0x80 | ((m >> 12) & 0x3F)
                out[at + 2] = 0x80 | ((m >> 6) & 0x3F)
                out[at + 3] = 0x80 | (m & 0x3F)
                at += 4
            i += size
        new[r + 1] = at
    return new, out[:at], odd

