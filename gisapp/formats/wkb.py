"""Byte-level helpers for WKB and GeoPackage geometry blobs, shared by the vectorised readers
(:mod:`gisapp.formats.geojson`, :mod:`gisapp.tiles.mvt`) and the GeoPackage store."""

from __future__ import annotations

import numpy as np

#: Bytes of the envelope in a GeoPackage geometry blob's header, by its envelope indicator (flag bits 1–3).
GPKG_ENVELOPE_BYTES = (0, 32, 48, 48, 64, 0, 0, 0)
#: The "empty geometry" flag of a GeoPackage geometry blob's header.
GPKG_EMPTY = 0x10


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
    b = buf[np.asarray(at)[:, None] + np.arange(4)].astype(np.int64)
    return b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)
