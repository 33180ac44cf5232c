"""Text columns (ids, codes) as the overlap analysis reads them: through Arrow, hashed in numpy.

A million ids as Python strings cost the interpreter lock at every step:
``pd.isna``, comparisons with ``''``, pandas' SipHash (one Python object at
a time).  Here the column is converted to an Arrow string array once
(~40 ms a million, the only step that holds the lock), and what the
analysis needs of it comes from Arrow's buffers in numpy, which releases the
lock to the other threads:

- :func:`text_column`: the values as an object array, ``None`` where missing
  or blank (the analysis' text rule), and the Arrow array;
- :func:`siphash`: each value's ``pandas.util.hash_array(...,
  categorize=False)`` (SipHash-2-4 of the UTF-8 bytes, then pandas' 64-bit
  mix), the same bits, computed over the Arrow buffers a length at a time.

Columns that are not all text (numbers, mixed types) are left to the
caller's general path (``None`` from :func:`text_column`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["mix", "siphash", "text_column"]

#: Rows gathered at once when reading the values' bytes (bounds the index arrays' memory).
_GATHER_ROWS = 1 << 16


def text_column(values) -> tuple[np.ndarray, pa.Array] | None:
    """``values`` (a Series or array of text) as an object array and an Arrow string array.

    The object array holds the values as given, ``None`` where missing or
    ``''`` (the array itself when nothing is missing: read only); the Arrow
    array is null at the same rows.  ``None`` when the values are not all
    text (or missing): the caller then takes its general path.
    """
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.ArrowDtype):
        if not (pa.types.is_string(values.dtype.pyarrow_dtype) or pa.types.is_large_string(values.dtype.pyarrow_dtype)):
            return None
        strings = pa.chunked_array(values.array._pa_array).combine_chunks()
        objects = strings.to_numpy(zero_copy_only=False)
    else:
        objects = values.to_numpy(dtype=object) if isinstance(values, (pd.Series, pd.Index)) \
            else np.asarray(values, dtype=object)
        if objects.ndim != 1:
            return None
        try:
            strings = pa.array(objects, type=pa.large_string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
    blank = pc.equal(pc.binary_length(strings), 0)
    if strings.null_count or pc.any(blank).as_py():
        gone = pc.or_kleene(strings.is_null(), blank).fill_null(True).to_numpy(zero_copy_only=False)
        objects = objects.copy()
        objects[gone] = None
        strings = pc.if_else(gone, pa.scalar(None, pa.large_string()), strings)
    return objects, strings


def siphash(strings: pa.Array, key: str) -> np.ndarray:
    """``pandas.util.hash_array(values, hash_key=key, categorize=False)`` of Arrow strings, in numpy; 0 where null.

    SipHash-2-4 of each value's UTF-8 bytes with the 16-byte ``key``, then
    pandas' mix of the 64 bits: the same value as pandas gives each Python
    string.  Values are hashed a length at a time (few lengths: ids and
    codes), eight bytes a step, whole columns per numpy call.
    """
    k = key.encode("utf8")
    if len(k) != 16:
        raise ValueError("the key must be 16 bytes")
    k0, k1 = (np.uint64(int.from_bytes(k[a:a + 8], "little")) for a in (0, 8))
    strings = strings.cast(pa.large_string()) if not pa.types.is_large_string(strings.type) else strings
    n = len(strings)
    out = np.zeros(n, dtype=np.uint64)
    if not n or strings.null_count == n:
        return out
    _, offsets_buf, data_buf = strings.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[strings.offset:strings.offset + n + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
    start, length = offsets[:-1], np.diff(offsets)
    valid = ~strings.is_null().to_numpy(zero_copy_only=False) if strings.null_count else np.ones(n, dtype=bool)
    rows = np.flatnonzero(valid)
    lengths = length[rows]
    order = np.argsort(lengths, kind="stable")
    rows, lengths = rows[order], lengths[order]
    cuts = np.flatnonzero(np.r_[True, lengths[1:] != lengths[:-1], True])
    for a, b in zip(cuts[:-1], cuts[1:]):
        size = int(lengths[a])
        group = rows[a:b]
        for lo in range(0, len(group), _GATHER_ROWS):
            part = group[lo:lo + _GATHER_ROWS]
            out[part] = _siphash_fixed(data, start[part], size, k0, k1)
    # pandas' mix of the 64 bits
    out[rows] = mix(out[rows])
    return out


def mix(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (a bijective 64-bit mix), vectorised: what pandas applies to every hash."""
    x = np.asarray(x, dtype=np.uint64)
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _rotl(x: np.ndarray, r: int, tmp: np.ndarray) -> None:
    """``x`` rotated left by ``r`` bits in place (uint64; ``tmp`` a scratch array like it)."""
    np.right_shift(x, np.uint64(64 - r), out=tmp)
    np.left_shift(x, np.uint64(r), out=x)
    np.bitwise_or(x, tmp, out=x)


def _rounds(v0: np.ndarray, v1: np.ndarray, v2: np.ndarray, v3: np.ndarray, count: int, tmp: np.ndarray) -> None:
    """``count`` SipRounds on the state ``v0 .. v3`` (in place, no temporaries)."""
    for _ in range(count):
        np.add(v0, v1, out=v0)
        _rotl(v1, 13, tmp)
        np.bitwise_xor(v1, v0, out=v1)
        _rotl(v0, 32, tmp)
        np.add(v2, v3, out=v2)
        _rotl(v3, 16, tmp)
        np.bitwise_xor(v3, v2, out=v3)
        np.add(v0, v3, out=v0)
        _rotl(v3, 21, tmp)
        np.bitwise_xor(v3, v0, out=v3)
        np.add(v2, v1, out=v2)
        _rotl(v1, 17, tmp)
        np.bitwise_xor(v1, v2, out=v1)
        _rotl(v2, 32, tmp)


def _siphash_fixed(data: np.ndarray, start: np.ndarray, size: int, k0: np.uint64, k1: np.uint64) -> np.ndarray:
    """SipHash-2-4 of the ``size``-byte values of ``data`` starting at ``start`` (one row each)."""
    m = len(start)
    blocks = size // 8 + 1
    raw = np.zeros((m, blocks * 8), dtype=np.uint8)
    if size:
        raw[:, :size] = data[start[:, None] + np.arange(size)]
    raw[:, -1] = size & 0xFF  # the last block ends with the length's low byte
    words = raw.view("<u8")
    v0, v1 = np.full(m, k0 ^ np.uint64(0x736F6D6570736575)), np.full(m, k1 ^ np.uint64(0x646F72616E646F6D))
    v2, v3 = np.full(m, k0 ^ np.uint64(0x6C7967656E657261)), np.full(m, k1 ^ np.uint64(0x7465646279746573))
    tmp = np.empty(m, dtype=np.uint64)
    for b in range(blocks):
        word = np.ascontiguousarray(words[:, b])
        v3 ^= word
        _rounds(v0, v1, v2, v3, 2, tmp)
        v0 ^= word
    v2 ^= np.uint64(0xFF)
    _rounds(v0, v1, v2, v3, 4, tmp)
    return v0 ^ v1 ^ v2 ^ v3
