"""The analysis' text columns through Arrow: the same ids, blanks and hashes as the pandas way."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gisapp.analysis.keys import siphash
from gisapp.analysis.overlaps import _HASH_KEY, _hash_ids, _ids_at, _keys, _names, _text


def _words(n: int, seed: int = 3) -> np.ndarray:
    """``n`` strings of 1-40 characters, Vietnamese, CJK and emoji among them (1-4 UTF-8 bytes each)."""
    rng = np.random.default_rng(seed)
    alphabet = list("abcXYZ019-/ .ạếđƯỗ中😀")
    return np.array(["".join(rng.choice(alphabet, k)) for k in rng.integers(1, 41, n)], dtype=object)


def test_siphash_is_pandas_hash_of_each_string():
    words = _words(3000)
    expected = pd.util.hash_array(words, hash_key=_HASH_KEY, categorize=False)
    assert (siphash(pa.array(words, pa.large_string()), _HASH_KEY) == expected).all()
    # a slice of a (32-bit offsets) string array: the buffers are read from its offset
    assert (siphash(pa.array(words, pa.string()).slice(7), _HASH_KEY) == expected[7:]).all()


def test_siphash_of_nulls_is_zero():
    got = siphash(pa.array(["XD-1", None, "VH-2"], pa.large_string()), _HASH_KEY)
    assert got[1] == 0 and got[0] != 0 and got[2] != 0
    assert got[0] == pd.util.hash_array(np.array(["XD-1"], dtype=object), hash_key=_HASH_KEY, categorize=False)[0]


def test_key_names_blanks_and_missing_become_none():
    values = pd.Series(["A", "", None, np.nan, " B ", pd.NA], dtype=object)
    names = _names(values)
    assert names.to_pylist() == ["A", None, None, None, " B ", None] and names.type == pa.large_string()
    assert list(_ids_at(names, np.array([4, 1, 0]))) == [" B ", None, "A"]
    assert values.iloc[1] == ""  # the caller's column is left as it was


def test_keys_match_the_general_path():
    words = _words(500)
    words[[3, 40]] = None
    words[7] = ""
    words[9] = words[10]
    for column in (pd.Series(words, dtype=object), pd.Series(words, dtype=pd.ArrowDtype(pa.string()))):
        hashes, names = _keys(column)
        expected = _text(pd.Series(words, dtype=object))
        assert list(expected) == names.to_pylist() and names.type == pa.large_string()
        assert (hashes == _hash_ids(expected, expected == None)).all()  # noqa: E711 - numpy: element-wise
    # not text: numbers as text, the general way
    hashes, names = _keys(pd.Series([12, "12", None], dtype=object))
    assert names.to_pylist() == ["12", "12", None] and hashes[0] == hashes[1] != 0 and hashes[2] == 0


def test_arrow_strings_of_a_column_are_the_texts_of_the_general_path():
    # _strings / _names read codes without objects (Arrow infers the type); text or not, the same strings result
    import datetime as dt

    from gisapp.analysis.overlaps import _large_strings, _names, _strings

    words = _words(500)
    columns = [pd.Series(["a", "", None, np.nan, " b ", pd.NA, *words], dtype=object),
               pd.Series([b"x", "y"], dtype=object), pd.Series([b"x", b"y"], dtype=object),
               pd.Series([None, None], dtype=object), pd.Series([np.nan, np.nan]), pd.Series([1, "a"], dtype=object),
               pd.Series([1, 2]), pd.Series([np.str_("a"), "b"], dtype=object), pd.Series(["a", 1.5], dtype=object),
               pd.Series([dt.date(2020, 1, 1), "a"], dtype=object), pd.Series([True, "a"], dtype=object),
               pd.Series(["Đ", "", None], dtype="str"), pd.Series(["a", "", None], dtype=pd.ArrowDtype(pa.string())),
               pd.Series([1, None], dtype=pd.ArrowDtype(pa.int64())), pd.Series([], dtype=object),
               np.array(["a", None, ""], dtype=object)]
    for values in columns:
        plain = np.array([None if pd.isna(v) else v for v in values], dtype=object)
        expected = _large_strings(_text(plain))  # the general path: an object per value
        assert _names(values).equals(expected), values
        got = _strings(values)
        assert got is None or got.equals(expected), values
    assert _strings(columns[1]) is None and _names(columns[1]).to_pylist() == ["b'x'", "y"]  # bytes: made text
    assert _strings(columns[0]).to_pylist()[:6] == ["a", None, None, None, " b ", None]


# -- repeated hashes, gathers (compiled loops) ----------------------------------------------------------------


def test_repeated_values_mark_every_occurrence_of_a_value_seen_twice():
    from gisapp.analysis.kernels import repeated_values

    def reference(values, skip):
        kept = values[~skip]
        seen, counts = np.unique(kept, return_counts=True)
        return ~skip & np.isin(values, seen[counts > 1])

    assert len(repeated_values(np.empty(0, np.uint64), np.empty(0, bool))) == 0
    widest = np.array([0, 2**64 - 1, 2**63, 2**64 - 1, 0, 1], dtype=np.uint64)
    assert repeated_values(widest, np.zeros(6, bool)).tolist() == [True, True, False, True, True, False]
    # skipped rows (missing ids) count for nothing, on either side
    assert repeated_values(widest, np.array([True, False, False, True, False, False])).tolist() == [False] * 6
    assert repeated_values(widest, np.ones(6, bool)).tolist() == [False] * 6
    rng = np.random.default_rng(11)
    for values in (rng.integers(0, 50, 3000).astype(np.uint64),  # few values: long probe chains
                   rng.integers(0, 2**63, 5000, dtype=np.uint64) << np.uint64(1),  # low bits alike
                   np.arange(4096, dtype=np.uint64) << np.uint64(32)):  # high bits only: spread by the fold
        values = np.concatenate([values, values[:7]])
        skip = rng.random(len(values)) < 0.1
        np.testing.assert_array_equal(repeated_values(values, skip), reference(values, skip))


def test_gather_is_arrows_take_of_texts_and_binaries():
    from gisapp.analysis.keys import gather

    words = list(_words(400))
    words[3], words[9] = None, ""
    rng = np.random.default_rng(4)
    rows = rng.integers(0, len(words), 900)
    missing = rng.random(len(rows)) < 0.2
    for values in (pa.array(words, pa.large_string()), pa.array(words, pa.string()), pa.array(words).slice(5, 300),
                   pa.chunked_array([pa.array(words[:100]), pa.array(words[100:])]),
                   pa.array([w.encode() if w is not None else None for w in words], pa.binary())):
        n = len(values)
        got, ok = gather(values, rows % n)
        want = values.take(pa.array(rows % n))
        assert got.to_pylist() == want.to_pylist() and ok.all()
        assert got.type == (pa.large_binary() if pa.types.is_binary(values.type) else pa.large_string())
        got, ok = gather(values, rows % n, missing)
        assert got.to_pylist() == values.take(pa.array(rows % n, mask=missing)).to_pylist() and ok.all()
        assert got.null_count == sum(v is None for v in got.to_pylist())
        assert gather(values, np.empty(0, np.int64))[0].to_pylist() == []
    assert gather(pa.array(["ạ", "😀"]), np.array([1, 1, 0]))[0].to_pylist() == ["😀", "😀", "ạ"]
    assert gather(pa.array([None, None], pa.string()), np.array([1, 0]))[0].to_pylist() == [None, None]


def test_gather_makes_multipolygons_of_polygon_wkb_and_leaves_the_others_to_the_caller():
    import shapely

    from gisapp.analysis.geoms import Geometries
    from gisapp.analysis.keys import gather
    from gisapp.formats import derive

    square = shapely.box(0, 0, 1, 1)
    holed = square.buffer(2).difference(square)
    multi = shapely.MultiPolygon([square, shapely.box(5, 5, 6, 6)])
    geoms = [square, holed, multi, shapely.Polygon(), shapely.Point(1, 2), shapely.box(0, 0, 1, 1).exterior, None]
    wkb = [None if g is None else shapely.to_wkb(g, byte_order=1) for g in geoms]
    wkb.append(shapely.to_wkb(square, byte_order=0))  # big-endian
    wkb.append(shapely.to_wkb(shapely.Polygon([(0, 0, 1), (1, 0, 1), (1, 1, 1)]), byte_order=1))  # 3-D
    values = pa.array(wkb, pa.binary())
    rows = np.array([0, 1, 2, 0, 3, 4, 5, 6, 7, 8, 2])
    got, ok = gather(values, rows, multipolygons=True)
    assert ok.tolist() == [True, True, True, True, False, False, False, True, False, False, True]
    want = derive.wkb_multipolygons(values.take(pa.array(rows)))
    assert got.filter(pa.array(ok)).to_pylist() == want.filter(pa.array(ok)).to_pylist()
    assert got[7].as_py() is None
    # the layer's geometries, a row asked twice, the others converted by shapely: what derive writes
    from_wkb = Geometries.of_wkb(values[:7]).multipolygon_wkb(rows[rows < 7])
    from_objects = Geometries.of_objects(np.array(geoms, dtype=object)).multipolygon_wkb(rows[rows < 7])
    expected = derive.multipolygon_wkb(np.array(geoms, dtype=object)[rows[rows < 7]])
    assert from_wkb.type == from_objects.type == pa.binary()
    assert from_wkb.to_pylist() == from_objects.to_pylist() == expected.to_pylist()


def test_texts_converted_in_slices_are_the_whole_columns(monkeypatch):
    from gisapp.analysis import keys
    from gisapp.analysis.overlaps import _strings

    words = list(_words(60))
    columns = [words[:20] + [None] * 20 + words[20:40] + [""] * 5,  # a slice of nulls only, blanks
               [None] * 45, words[:30] + [b"x"] * 15, words[:30] + [1] * 15, words[:30] + [np.nan] * 15]
    whole = [_strings(np.array(c, dtype=object)) for c in columns]
    monkeypatch.setattr(keys, "ARROW_SLICE", 15)
    for column, strings in zip(columns, whole):
        sliced = _strings(np.array(column, dtype=object))
        assert (sliced is None and strings is None) or sliced.equals(strings), column
    assert whole[0].null_count == 25 and whole[1].null_count == 45 and whole[2] is None
    assert whole[3] is None and whole[4].null_count == 15
    assert len(keys.arrow_texts(np.empty(0, dtype=object))) == 0


def test_equal_at_compares_two_arrays_values_as_arrow_does():
    from gisapp.analysis.keys import equal_at

    words = list(_words(300))
    words[5], words[6] = None, ""
    other = [w if k % 3 else (None if k % 2 else (w or "") + "x") for k, w in enumerate(words)]
    rng = np.random.default_rng(8)
    rows_a, rows_b = rng.integers(0, 300, 2000), rng.integers(0, 300, 2000)
    rows_b[:500] = rows_a[:500]  # equal texts too
    for a, b in ((pa.array(words, pa.large_string()), pa.array(other, pa.string())),
                 (pa.array(words).slice(0, 300), pa.chunked_array([pa.array(other[:100]), pa.array(other[100:])]))):
        want = pc.equal(a.take(pa.array(rows_a)), pa.chunked_array([b]).combine_chunks().take(pa.array(rows_b)))
        got = equal_at(a, rows_a, b, rows_b)
        np.testing.assert_array_equal(got, want.fill_null(False).to_numpy(zero_copy_only=False))
        assert got[:500].sum() > 100 and not got[500:].all()
    assert len(equal_at(pa.array(["a"]), np.empty(0, np.int64), pa.array(["a"]), np.empty(0, np.int64))) == 0
    got = equal_at(pa.array(["ạ", "ab"]), np.array([0, 1, 1]), pa.array(["ab", "ạ", "a"]), np.array([1, 0, 2]))
    assert got.tolist() == [True, True, False]


def test_finding_ids_of_the_compiled_pass_are_the_numpy_ones():
    from gisapp.analysis.overlaps import KINDS, _id_constants, _id_strings, finding_ids

    def mix(x):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))

    def reference(rank, a_hash, b_hash):  # the numpy code the kernel replaced
        kind_hash, prefix = _id_constants()
        digest = mix(mix(mix(kind_hash[rank]) ^ np.minimum(a_hash, b_hash)) ^ np.maximum(a_hash, b_hash))
        return [prefix[r].tobytes().decode() + "-" + f"{int(d):016x}" for r, d in zip(rank, digest)]

    rng = np.random.default_rng(2)
    n = 3000
    rank = rng.integers(0, len(KINDS), n)
    a_hash = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    b_hash = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    a_hash[:4], b_hash[:4] = [0, 2**64 - 1, 0, 2**64 - 1], [0, 0, 2**64 - 1, 2**64 - 1]  # missing ids, the widest
    b_hash[4:50] = 0  # no second id
    got = _id_strings(rank, a_hash, b_hash)
    assert got.to_pylist() == reference(rank, a_hash, b_hash)
    assert _id_strings(rank, b_hash, a_hash).equals(got)  # a, b in any order
    assert len(_id_strings(np.empty(0, np.int64), np.empty(0, np.uint64), np.empty(0, np.uint64))) == 0
    # ids of earlier runs stay the same (computed by the numpy code)
    kinds = ["CLASH", "MERGE_CANDIDATE", "WARD_MISMATCH", "CLEARANCE"]
    assert list(finding_ids(kinds, ["VH-2", "XD-1", "XD-Đ", "VH-9"], ["VH-1", "VH-7", None, None])) == [
        "CL-655fc574dccb8684", "MC-f743361a12d62265", "WM-8c8d71a3a7279077", "CR-35cb7da13251079a"]


def test_text_of_an_arrow_column_is_the_text_of_its_objects():
    # `gisapp analyze` hands the analysis its text columns in Arrow: a skipped row's missing ward is None, as from
    # objects (not pandas' NA, which no comparison can decide)
    values = ["a", None, "", " b ", None]
    arrow, plain = pd.Series(values, dtype=pd.ArrowDtype(pa.string())), pd.Series(values, dtype=object)
    assert list(_text(arrow)) == list(_text(plain)) == ["a", None, None, " b ", None]
    rows = np.array([1, 3, 4])
    assert list(_text(arrow, rows)) == list(_text(plain, rows)) == [None, " b ", None]
