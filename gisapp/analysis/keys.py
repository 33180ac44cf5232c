"""Text columns (ids, codes) as the overlap analysis reads them: through Arrow, hashed in numpy.

A million ids as Python strings cost the interpreter lock at every step:
``pd.isna``, comparisons with ``''``, pandas' SipHash (one Python object at
a time).  Here the column is converted to an Arrow string array once
(~40 ms a million, the only step that holds the lock), and what the
analysis needs of it comes from Arrow's buffers in numpy or a compiled loop,
which release the lock to the other threads:

- :func:`arrow_texts`: the Python strings of a column as an Arrow array, a
  slice at a time;
- :func:`gather`: values at given rows (Arrow's ``take``, by a compiled loop:
  ~1.4x faster on short ids), WKB made MultiPolygons on the way if asked;
  :func:`equal_at`: values of two arrays compared at given rows, without taking them;
- :func:`siphash`: each value's ``pandas.util.hash_array(...,
  categorize=False)`` (SipHash-2-4 of the UTF-8 bytes, then pandas' 64-bit
  mix), the same bits, computed over the Arrow buffers
  (:func:`gisapp.analysis.kernels.text_hashes`).

Columns that are not all text (numbers, mixed types) are left to the
caller's general path.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["arrow_texts", "equal_at", "gather", "siphash"]



#: Python objects converted to Arrow per call (~3 ms holding the interpreter lock; :func:`arrow_texts`).
ARROW_SLICE = 100_000


def arrow_texts(objects: np.ndarray) -> pa.Array:
    """``pa.array(objects, from_pandas=True)`` converted a slice at a time, then joined (a large string array
    when the slices' inferred types differ only as strings, large strings and nulls differ).

    A conversion reads every object, holding the interpreter lock throughout (~30-60 ms a million texts): in
    slices, the other threads' numpy, GEOS and compiled calls take it between two of them (at their switch
    interval) instead of waiting for the whole column (~30 ms less wall time per run at 1M).  Raises as
    ``pa.array`` does on values it cannot convert; a slice inferred as another type (bytes, numbers) makes the
    result that slice's, for the caller to refuse.
    """
    parts = [pa.array(objects[k:k + ARROW_SLICE], from_pandas=True) for k in range(0, len(objects), ARROW_SLICE)]
    if len(parts) <= 1:
        return parts[0] if parts else pa.array(objects, from_pandas=True)
    for part in parts:
        if not (pa.types.is_string(part.type) or pa.types.is_large_string(part.type) or pa.types.is_null(part.type)):
            return part
    return pa.concat_arrays([part.cast(pa.large_string()) for part in parts])


def siphash(strings: pa.Array, key: str) -> np.ndarray:
    """``pandas.util.hash_array(values, hash_key=key, categorize=False)`` of Arrow strings; 0 where null.

    SipHash-2-4 of each value's UTF-8 bytes with the 16-byte ``key``, then
    pandas' mix of the 64 bits: the same value as pandas gives each Python
    string, computed by a compiled loop over the Arrow buffers (no Python
    object per value, without the interpreter lock).
    """
    from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

    k = key.encode("utf8")
    if len(k) != 16:
        raise ValueError("the key must be 16 bytes")
    k0, k1 = (np.uint64(int.from_bytes(k[a:a + 8], "little")) for a in (0, 8))
    n = len(strings)
    if not n or strings.null_count == n:
        return np.zeros(n, dtype=np.uint64)
    out = kernels.text_hashes(*_buffers(strings), k0, k1)
    if strings.null_count:
        out[strings.is_null().to_numpy(zero_copy_only=False)] = 0
    return out


def _one(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``values`` as one array (a chunked array's chunks joined, unless it has one)."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    return values


def _buffers(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The offsets and bytes of an Arrow string or binary array (value ``r`` is
    ``data[offsets[r]:offsets[r + 1]]``; its own rows of a slice), as numpy views."""
    _, offsets_buf, data_buf = values.buffers()
    wide = pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type)
    kind = np.int64 if wide else np.int32
    if offsets_buf is None:  # (an empty or all-null array may come without)
        return np.zeros(len(values) + 1, dtype=kind), np.zeros(0, dtype=np.uint8)
    offsets = np.frombuffer(offsets_buf, dtype=kind)[values.offset:values.offset + len(values) + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def equal_at(a: pa.Array, rows_a: np.ndarray, b: pa.Array, rows_b: np.ndarray) -> np.ndarray:
    """``pc.equal(a.take(rows_a), b.take(rows_b))`` of Arrow strings (false where either is null), by a compiled
    loop over both arrays' bytes (no take, without the interpreter lock)."""
    from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

    a, b = _one(a), _one(b)
    rows_a, rows_b = np.asarray(rows_a, dtype=np.int64), np.asarray(rows_b, dtype=np.int64)
    out = kernels.equal_values(*_buffers(a), rows_a, *_buffers(b), rows_b)
    for values, rows in ((a, rows_a), (b, rows_b)):
        if values.null_count:
            out &= values.is_valid().to_numpy(zero_copy_only=False)[rows]
    return out


def gather(values: pa.Array | pa.ChunkedArray, rows: np.ndarray, missing: np.ndarray | None = None,
           multipolygons: bool = False) -> tuple[pa.Array, np.ndarray]:
    """``values.take(rows)`` of Arrow strings or binaries (null too where ``missing``), as large strings or large
    binaries, by a compiled loop without the interpreter lock; and where it is sure.

    With ``multipolygons`` the values are WKB, each written as the MultiPolygon WKB the stores write
    (:func:`gisapp.formats.derive.wkb_multipolygons`: a 2-D little-endian Polygon behind a MultiPolygon's head)
    on the way; the mask returned (all true otherwise) is false where a value is not such a Polygon nor
    MultiPolygon (nor missing): taken as it is, for the caller to convert.
    """
    from gisapp.analysis import kernels  # (numba: imported where the analysis runs)

    values = _one(values)
    rows = np.asarray(rows, dtype=np.int64)
    text = pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    offsets, data, ok = kernels.take_values(*_buffers(values), rows, multipolygons)
    valid = np.ones(len(rows), dtype=bool)
    if values.null_count:
        valid &= values.is_valid().to_numpy(zero_copy_only=False)[rows]
    if missing is not None:
        valid &= ~np.asarray(missing, dtype=bool)
    nulls = len(rows) - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    out = pa.Array.from_buffers(pa.large_string() if text else pa.large_binary(), len(rows),
                                [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)], null_count=nulls)
    return out, ok | ~valid
