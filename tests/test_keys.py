"""The analysis' text columns through Arrow: the same ids, blanks and hashes as the pandas way."""

import numpy as np
import pandas as pd
import pyarrow as pa

from gisapp.analysis.keys import siphash, text_column
from gisapp.analysis.overlaps import _HASH_KEY, _hash_ids, _keys, _text


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


def test_text_column_blanks_and_missing_become_none():
    values = pd.Series(["A", "", None, np.nan, " B ", pd.NA], dtype=object)
    objects, strings = text_column(values)
    assert list(objects) == ["A", None, None, None, " B ", None]
    assert strings.to_pylist() == ["A", None, None, None, " B ", None]
    assert values.iloc[1] == ""  # the caller's column is left as it was


def test_keys_match_the_general_path():
    words = _words(500)
    words[[3, 40]] = None
    words[7] = ""
    words[9] = words[10]
    for column in (pd.Series(words, dtype=object), pd.Series(words, dtype=pd.ArrowDtype(pa.string()))):
        ids, hashes, names = _keys(column)
        expected = _text(pd.Series(words, dtype=object))
        assert list(ids) == list(expected) == names.to_pylist() and names.type == pa.large_string()
        assert (hashes == _hash_ids(expected, expected == None)).all()  # noqa: E711 - numpy: element-wise
    # not text: numbers as text, the general way
    ids, hashes, names = _keys(pd.Series([12, "12", None], dtype=object))
    assert list(ids) == ["12", "12", None] == names.to_pylist() and hashes[0] == hashes[1] != 0 and hashes[2] == 0


def test_arrow_strings_of_a_column_are_the_texts_of_the_general_path():
    # _strings / _names read codes without objects (Arrow infers the type); text or not, the same strings result
    import datetime as dt

    from gisapp.analysis.overlaps import _large_strings, _names, _strings, _text_and_arrow

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
        objects, strings = _text_and_arrow(values)
        expected = _large_strings(objects if strings is None else strings)
        assert _names(values).equals(expected), values
        got = _strings(values)
        assert got is None or got.equals(expected), values
    assert _strings(columns[1]) is None and _names(columns[1]).to_pylist() == ["b'x'", "y"]  # bytes: made text
    assert _strings(columns[0]).to_pylist()[:6] == ["a", None, None, None, " b ", None]
