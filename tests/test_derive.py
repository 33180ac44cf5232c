"""The load's column-by-column conversions (gisapp.formats.derive, store.base.derived_columns, coerce with
arrow_text) give exactly the values of their value-by-value definitions, on awkward input."""

from __future__ import annotations

import subprocess
import sys
import unicodedata

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

from gisapp import geo, schema
from gisapp.filters import fold
from gisapp.formats import derive, geojson
from gisapp.formats.geojson import geometry_texts
from gisapp.formats.wkb import read_polygons
from gisapp.store import base

TRICKY = [
    "Phường Hòa Thọ Tây", "Đường Nguyễn Hữu Thọ", "đ Đ đđ", "Ở Ừ Ỹ ỵ ả ấ ầ ẩ ẫ ậ",
    unicodedata.normalize("NFD", "Phước Tường Cẩm Lệ Đà Nẵng"), unicodedata.normalize("NFC", "Phước Tường"),
    "\u0301 lone mark", "a\u0323\u0302", "İstanbul", "ΣΊΣΥΦΟΣ σοφός ς", "Ⱥ ⱥ Ȿ", "Ω K Å ß ẞ ǅ ǈ", "ﬁ ﬃ", "",
    "nul\x00inside", "trailing nul\x00", "\x00", "emoji 🏠 𝔘𝔫𝔦", "中文 住所 ２０２２", "한국어", "ǰ ŉ",
    "tab\tnew\nline", "  spaced  ", "\u3000ideographic\u3000", "Ａ Ｂ ｃ", "x" * 3, "ß" * 7,
    "abc" + "Ư" * 5000, "ASCII only 123 ABC xyz !@#", "\ud7ff \ue000 \uffff", "\U0010ffff end",
]


def _rng_texts(n: int, seed: int) -> list[str | None]:
    """Random texts over ASCII, Vietnamese, combining marks, Greek, CJK and astral code points; some None."""
    rng = np.random.default_rng(seed)
    pools = [np.arange(0x20, 0x7F), np.array([ord(c) for c in "ăâđêôơưĂÂĐÊÔƠƯáàảãạếềểễệốồổỗộớờởỡợứừửữự"]),
             np.arange(0x300, 0x370), np.arange(0x370, 0x400), np.arange(0x4E00, 0x4E40),
             np.arange(0x1F300, 0x1F310), np.arange(0x2C00, 0x2C80), np.arange(0x1E00, 0x1F00)]
    out: list[str | None] = []
    for _ in range(n):
        if rng.random() < 0.05:
            out.append(None)
            continue
        size = int(rng.integers(0, 40))
        pool = [pools[int(i)] for i in rng.integers(0, len(pools), size)]
        out.append("".join(chr(int(rng.choice(p))) for p in pool))
    return out


@pytest.fixture(params=[1, 2])
def threads(request, monkeypatch):
    """Run on one thread and on two, in tiny blocks so that every block boundary is crossed."""
    monkeypatch.setattr(derive, "THREADS", request.param)
    monkeypatch.setattr(derive, "BLOCK", 37)
    return request.param


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fold_arrow_equals_fold(threads, seed):
    texts = (TRICKY * 20 + _rng_texts(3000, seed))
    got = derive.fold_arrow(pa.array(texts, pa.string())).to_pylist()
    assert got == [fold(t) for t in texts]


def test_fold_arrow_small_and_odd_inputs(threads):
    assert derive.fold_arrow(pa.array([], pa.string())).to_pylist() == []
    assert derive.fold_arrow(pa.array([None, None], pa.string())).to_pylist() == ["", ""]
    assert derive.fold_arrow(pa.array([""] * 5000, pa.string())).to_pylist() == [""] * 5000
    assert derive.fold_arrow(pa.array(["Đà Nẵng"] * 3, pa.string())).to_pylist() == ["da nang"] * 3
    sliced = pa.array(TRICKY * 100, pa.string()).slice(7, 2500)  # an array with an offset
    assert derive.fold_arrow(sliced).to_pylist() == [fold(t) for t in sliced.to_pylist()]
    chunked = pa.chunked_array([pa.array(TRICKY * 40), pa.array(TRICKY * 40)])
    assert derive.fold_arrow(chunked).to_pylist() == [fold(t) for t in TRICKY * 80]
    arrow_backed = pd.Series(TRICKY * 100, dtype=schema.TEXT_DTYPE)
    assert derive.fold_arrow(arrow_backed).to_pylist() == [fold(t) for t in TRICKY * 100]


def test_fold_table_is_what_fold_makes_of_each_character():
    table = derive.fold_codes()
    for code in [0x41, 0xC0, 0x110, 0x111, 0x1B0, 0x1EA0, 0x130, 0x3A3, 0x3C2, 0x23A, 0x2126, 0x301]:
        out = fold(chr(code))
        assert table[code] == (ord(out) if len(out) == 1 and code not in (0x3A3, 0x3C3, 0x3C2) else 0)


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    texts = _rng_texts(rows * 4, seed)
    layer = schema.CONSTRUCTION_PERMITS
    frame = pd.DataFrame({name: pd.Series(texts[i * rows:(i + 1) * rows], dtype=object)
                          for i, name in enumerate(["dossier_code", "site_address", "owner_name", "street"])})
    frame["permit_no"] = [None if v % 7 == 0 else f" GP-{v} " for v in rng.integers(0, 1000, rows)]
    frame["owner_id_no"] = pd.Series([None] * rows, dtype=object)
    for name in layer.field_names:
        if name not in frame:
            frame[name] = None
    return frame


@pytest.mark.parametrize("arrow_text", [False, True])
def test_search_texts_equal_the_definition(threads, arrow_text):
    layer = schema.CONSTRUCTION_PERMITS
    frame = schema.coerce(layer, _frame(2500, 5).assign(geometry=None), arrow_text=arrow_text)
    for personal, names in ((False, layer.text_fields), (True, layer.personal_text_fields)):
        want = [fold(" ".join("" if pd.isna(v) else str(v) for v in row))
                for row in frame[list(names)].itertuples(index=False)]
        assert derive.search_texts(layer, frame, personal).to_pylist() == want
        assert base.search_text(layer, frame, personal).tolist() == want


def test_search_text_of_columns_that_are_not_text():
    layer = schema.SIDEWALKS
    frame = pd.DataFrame({"sidewalk_id": [1, 2, None] * 1000, "street": [3.5, None, "Đường"] * 1000})
    want = [fold(f"{'' if pd.isna(a) else a} {'' if pd.isna(b) else b}")
                    for a, b in zip(frame["sidewalk_id"].astype(object), frame["street"], strict=True)]
    assert derive.search_texts(layer, frame).to_pylist() == want
    assert derive.search_texts(layer, frame.drop(columns=["sidewalk_id", "street"])).to_pylist() == [""] * 3000


BLANKS = ["", " ", "\t", "\u3000", "\xa0", "\x1c", "\u2028", "\u200b", " a ", "\u3000b\u3000", "c\n", "\u200bd",
          None, np.nan, "Đ", "x\x00 ", " \x00"]


@pytest.mark.parametrize("dtype", [object, "str"])
def test_coerce_arrow_text_keeps_the_values(dtype):
    layer = schema.SIDEWALKS
    n = len(BLANKS) * 50
    frame = pd.DataFrame({
        "sidewalk_id": pd.Series([f"S{i}" for i in range(n)], dtype=dtype),
        "street": pd.Series(BLANKS * 50, dtype=dtype),
        "ward_code": pd.Series([None] * n, dtype=object),  # all missing
        "street_class": pd.Series([1, "A", 2.5, None] * (n // 4) + [None] * (n % 4), dtype=object),  # not text
        "width_m": ["3.5", None, "x"] * (n // 3) + ["1"] * (n % 3),
    }, index=np.arange(n) * 3 + 10).assign(geometry=None)
    old, new = schema.coerce(layer, frame), schema.coerce(layer, frame, arrow_text=True)
    assert list(new.columns) == list(old.columns) and new.index.equals(old.index)
    for f in layer.fields:
        if f.type != "text":
            pd.testing.assert_series_equal(new[f.name], old[f.name])
            continue
        assert new[f.name].dtype == schema.TEXT_DTYPE
        x, y = old[f.name].to_numpy(dtype=object), new[f.name].to_numpy(dtype=object)
        assert (pd.isna(x) == pd.isna(y)).all()
        assert list(x[~pd.isna(x)]) == list(y[~pd.isna(y)])
    assert schema.coerce(layer, frame.drop(columns=["street"]), arrow_text=True)["street"].isna().all()


def _geometries() -> np.ndarray:
    square = shapely.box(0, 0, 10, 10)
    holed = shapely.Polygon([(0, 0), (20, 0), (20, 20), (0, 20)], [[(5, 5), (5, 10), (10, 10), (10, 5)]])
    big = shapely.box(5e5, 1.7e6, 5e5 + 12.5, 1.7e6 + 7.25)  # the city's own coordinates
    huge = shapely.box(-1e15, -1e15, 1e15, 1e15)
    signed = shapely.Polygon([(-0.0, 0.0), (0.0, 1.0), (1.0, -0.0), (-0.0, 0.0)])
    open_zero = shapely.Polygon([(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (-0.0, 0.0)])  # closed only by ==
    multi = shapely.MultiPolygon([square, shapely.box(20, 20, 30, 30)])
    multi_holed = shapely.MultiPolygon([holed, big])
    z = shapely.Polygon([(0, 0, 1), (1, 0, 2), (1, 1, 3), (0, 0, 1)])
    return np.array([square, holed, big, huge, signed, open_zero, multi, multi_holed, None, shapely.Polygon(),
                     shapely.MultiPolygon(), z, shapely.Point(1, 2), shapely.LineString([(0, 0), (1, 1)]),
                     shapely.GeometryCollection([square, shapely.Point(0, 0)]),
                     shapely.Polygon([(0, 0), (1, 0), (0, 1), (0, 0)],
                                     [[(0.1, 0.1), (0.2, 0.1), (0.1, 0.2), (0.1, 0.1)]] * 3),
                     ] * 13, dtype=object)


def test_multipolygon_wkb_equals_shapely(threads):
    geoms = _geometries()
    want = pa.array(shapely.to_wkb(geo.to_multipolygons(geoms), byte_order=1), pa.binary(), from_pandas=True)
    assert derive.multipolygon_wkb(geoms).equals(want)
    assert derive.geometry_wkb(geoms, multi=False).equals(
        pa.array(shapely.to_wkb(geoms, byte_order=1), pa.binary(), from_pandas=True))
    assert len(derive.multipolygon_wkb(np.array([], dtype=object))) == 0


def test_multipolygon_wkb_of_plain_polygons_from_their_points(threads):
    # a layer of 2-D polygons without holes (every parcel and strip): the bytes come from the points, not from
    # shapely's writer; any other geometry among them sends its block to shapely
    kinds = _geometries()[:16]
    plain = [g for g in kinds if shapely.get_type_id(g) == 3 and not shapely.is_empty(g)
             and not shapely.has_z(g) and shapely.get_num_interior_rings(g) == 0]
    rng = np.random.default_rng(3)
    lots = shapely.buffer(shapely.points(rng.uniform(5e5, 5.1e5, 300), rng.uniform(1.77e6, 1.78e6, 300)),
                          rng.uniform(1, 30, 300), quad_segs=int(rng.integers(1, 5)))
    geoms = np.array([*plain * 20, *lots], dtype=object)
    assert len(plain) == 5 and derive._ragged_multipolygon_wkb(geoms) is not None
    want = pa.array(shapely.to_wkb(geo.to_multipolygons(geoms), byte_order=1), pa.binary(), from_pandas=True)
    assert derive.multipolygon_wkb(geoms).equals(want)
    for other in kinds:
        if not any(other is g for g in plain):
            mixed = np.array([*geoms[:50], other], dtype=object)
            assert derive._ragged_multipolygon_wkb(mixed) is None
            assert derive.multipolygon_wkb(mixed).equals(
                pa.array(shapely.to_wkb(geo.to_multipolygons(mixed), byte_order=1), pa.binary(), from_pandas=True))


def test_geojson_of_wkb_equals_the_stored_text(threads):
    geoms = _geometries()
    rng = np.random.default_rng(9)
    lots = shapely.buffer(shapely.points(rng.uniform(5e5, 5.1e5, 400), rng.uniform(1.77e6, 1.78e6, 400)),
                          rng.uniform(1, 30, 400), quad_segs=int(rng.integers(1, 5)))
    geoms = np.concatenate([geoms, lots, shapely.difference(lots, shapely.buffer(lots, -0.5))])
    multi = geo.to_multipolygons(geoms)
    want = base.geojson_texts(multi).to_pylist()
    got = derive.geojson_of_wkb(derive.multipolygon_wkb(geoms)).to_pylist()
    assert got == want
    # the closing point copied, not transformed again: the same text as transforming every point
    texts = geometry_texts(derive.multipolygon_wkb(lots)).to_pylist()
    t = geo.transformer(schema.STORE_CRS, schema.WEB_CRS)
    for geom, text in zip(geo.to_multipolygons(lots)[:20], texts[:20], strict=True):
        web = shapely.transform(shapely.orient_polygons(geom, exterior_cw=False),
                                lambda xy: np.round(np.column_stack(t.transform(xy[:, 0], xy[:, 1])), 7))
        assert text == shapely.to_geojson(web)


def _polygon_wkb(x: np.ndarray, y: np.ndarray) -> pa.BinaryArray:
    """Little-endian WKB of a Polygon (one ring) per row of the corner arrays ``x``, ``y`` (rows of points,
    closed), written by hand so that any double may be a coordinate (NaN, infinities, -0.0)."""
    n, k = x.shape
    head = np.frombuffer(b"\x01\x03\x00\x00\x00\x01\x00\x00\x00" + k.to_bytes(4, "little"), np.uint8)
    points = np.stack([x, y], axis=-1).astype("<f8").view(np.uint8).reshape(n, -1)
    rows = np.concatenate([np.broadcast_to(head, (n, len(head))), points], axis=1)
    return pa.array([bytes(r) for r in rows], pa.binary())


def test_compiled_geojson_writes_arrows_text_of_every_number(monkeypatch):
    """The compiled GeoJSON writer (:func:`gisapp.formats.kernels.geojson_polygons`) gives Arrow's text of
    ``round(v, 7)`` for every double: random values of every magnitude, ones with few decimals, halves of the
    seventh, and the awkward ones (-0.0, below 10⁻⁶, from 10⁸, huge, infinite, NaN) it leaves to Arrow.  The
    values are fed in as WGS84 (PROJ left out: it would not give these)."""
    monkeypatch.setattr(geojson, "_web_xy", lambda xy, ring_off: (xy[:, 0].copy(), xy[:, 1].copy()))
    rng = np.random.default_rng(17)
    n = 6000
    awkward = np.array([0.0, -0.0, 1e-7, -1e-7, 9e-7, 9.4e-7, 1e-6, -1e-6, 5e-8, -5e-8, 4.9e-8, 1.05e-6, 123.00000005,
                        99999999.99999995, 99999999.9999999, 1e8, -1e8, 1e10, 1e15, 1e300, np.inf, -np.inf, np.nan,
                        16.0, 108.5, -108.25, 2.5e-7, 1e-5])
    decimals = rng.integers(0, 9, n)
    few_decimals = np.round(rng.uniform(-200, 200, n) * 10.0 ** decimals) / 10.0 ** decimals
    sets = [rng.uniform(100, 110, n), rng.uniform(8, 23, n), rng.uniform(-2e8, 2e8, n), rng.uniform(-3e-6, 3e-6, n),
            10.0 ** rng.uniform(-8, 9, n) * rng.choice([-1, 1], n), few_decimals,
            rng.integers(-10**6, 10**6, n) * 0.5e-7, rng.integers(-10**9, 10**9, n).astype(float),
            rng.choice(awkward, n)]
    for a in sets:
        for b in (sets[0], rng.choice(awkward, n)):
            x = np.stack([a, a + 1e-3, a + 1e-3, a], axis=1)
            y = np.stack([b, b, b + 1e-3, b], axis=1)
            polys = read_polygons(_polygon_wkb(x, y))
            for multi in (False, True):
                polys.multi[:] = multi
                want = geojson.polygon_texts(polys, compiled=False).to_pylist()
                assert geojson.polygon_texts(polys).to_pylist() == want
    # holes, several parts, clockwise rings, missing and empty ones among them
    discs = shapely.buffer(shapely.points(rng.uniform(0, 50, 3000), rng.uniform(0, 50, 3000)),
                           rng.uniform(0.5, 3, 3000), quad_segs=2)
    geoms = np.array([*_geometries()[:11], *discs], dtype=object)
    geoms[11::7] = shapely.orient_polygons(geoms[11::7], exterior_cw=True)
    polys = read_polygons(derive.multipolygon_wkb(geoms))
    polys = polys.take(np.flatnonzero(~polys.other))
    assert geojson.polygon_texts(polys).to_pylist() == geojson.polygon_texts(polys, compiled=False).to_pylist()


@pytest.mark.parametrize("count", [1, 2])
def test_plain_polygons_give_the_stored_wkb_and_geojson(monkeypatch, count):
    """Plain polygons (every parcel and strip): the WKB and GeoJSON made from their points, in blocks large
    enough for the compiled writer, are shapely's WKB of the MultiPolygon and the GeoJSON Arrow's joins write of
    that WKB (as before the compiled writer)."""
    monkeypatch.setattr(derive, "THREADS", count)
    monkeypatch.setattr(derive, "BLOCK", 2500)
    rng = np.random.default_rng(23)
    lots = shapely.buffer(shapely.points(rng.uniform(5e5, 5.1e5, 6000), rng.uniform(1.77e6, 1.78e6, 6000)),
                          rng.uniform(1, 30, 6000), quad_segs=int(rng.integers(1, 5)))
    lots[::5] = shapely.orient_polygons(lots[::5], exterior_cw=True)
    polygons = derive.plain_polygons(lots)
    assert polygons is not None and derive.plain_polygons(_geometries()) is None
    want_wkb = pa.array(shapely.to_wkb(geo.to_multipolygons(lots), byte_order=1), pa.binary())
    want = geojson.polygon_texts(read_polygons(want_wkb), compiled=False).to_pylist()
    for given in (None, polygons):
        wkb, texts = derive.geometry_columns(lots, True, given)
        assert wkb.equals(want_wkb)
        assert texts.to_pylist() == want
    # a layer's rows taken in another order from the points read once (as a PostGIS load takes them)
    order = rng.permutation(len(lots))
    wkb, texts = derive.geometry_columns(lots[order], True, polygons.take(order))
    assert wkb.equals(want_wkb.take(pa.array(order)))
    assert texts.to_pylist() == [want[i] for i in order]


def test_derived_columns_equal_the_functions_they_replace(threads):
    layer = schema.CONSTRUCTION_PERMITS
    frame = _frame(len(_geometries()), 11)
    typed = schema.coerce(layer, gpd.GeoDataFrame(frame, geometry=list(_geometries()), crs=schema.STORE_CRS),
                          arrow_text=True)
    got = base.derived_columns(layer, typed)
    multi = geo.to_multipolygons(typed.geometry.values)
    for column, names in ((base.SEARCH_COLUMN, layer.text_fields), (base.PERSONAL_SEARCH_COLUMN,
                                                                    layer.personal_text_fields)):
        # the definition, value by value: the fields' texts ("" when missing) joined by a space, folded
        rows = zip(*(["" if pd.isna(v) else str(v) for v in typed[n].to_numpy(dtype=object)] for n in names))
        assert got[column].to_pylist() == [fold(" ".join(row)) for row in rows]
    assert base.search_text(layer, typed).tolist() == got[base.SEARCH_COLUMN].to_pylist()
    assert got[base.GEOJSON_COLUMN].equals(base.geojson_texts(multi))
    assert got["wkb"].equals(pa.array(shapely.to_wkb(multi, byte_order=1), pa.binary(), from_pandas=True))
    assert derive.arrow_strings(typed["street"]).to_pylist() == [
        None if pd.isna(v) else v for v in typed["street"].to_numpy(dtype=object)]


def test_a_forked_child_derives_with_threads_of_its_own(monkeypatch):
    """A process forked after the pool started (a server's worker, an import's child) must not wait on threads
    it does not have."""
    import multiprocessing

    monkeypatch.setattr(derive, "THREADS", 2)
    texts = pa.array(TRICKY * 100, pa.string())
    assert derive.fold_arrow(texts).to_pylist() == [fold(t) for t in TRICKY * 100]  # the pool exists now
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        got = pool.apply_async(_fold_in_child, (TRICKY * 100,)).get(timeout=60)
    assert got == [fold(t) for t in TRICKY * 100]


def test_a_process_with_limited_memory_derives_on_its_own_thread():
    """An import's child runs under an address-space limit, which each pool thread's stack and malloc arena
    would eat into: there the blocks run on the calling thread."""
    code = ("import resource, threading, time; from gisapp.formats import derive; "
            "derive.THREADS = 2; derive.BLOCK = 37; seen = set(); "
            "f = lambda s, e: (seen.add(threading.get_ident()), time.sleep(0.005)); "
            "derive.run_blocks(f, 1000); before = len(seen); "
            "seen.clear(); resource.setrlimit(resource.RLIMIT_AS, (1 << 40, 1 << 40)); "
            "derive.run_blocks(f, 1000); print(before, len(seen), seen == {threading.get_ident()})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["2", "1", "True"]


def _fold_in_child(texts: list[str]) -> list[str]:
    derive.THREADS = 2
    return derive.fold_arrow(pa.array(texts, pa.string())).to_pylist()


@pytest.mark.parametrize("seed", [4, 5])
def test_coerce_arrow_text_strips_as_python_does(seed):
    """Random texts starting and ending with every white space ``str.strip`` knows, and with characters of one
    to four UTF-8 bytes that are not white space (ẩ, ờ, U+2029's neighbours, astral)."""
    rng = np.random.default_rng(seed)
    spaces = [chr(c) for c in range(0x3001) if chr(c).isspace()]
    others = ["a", "ẩ", "ờ", "Đ", "\u202a", "\u2027", "\u1681", "\u3001", "\u00a1", "\x84", "\x86", "🏠", "x\x00"]
    pool = spaces + others
    texts = ["".join(str(rng.choice(pool)) for _ in range(int(rng.integers(0, 5)))) for _ in range(4000)]
    texts = [None if i % 17 == 0 else t for i, t in enumerate(texts)]
    frame = pd.DataFrame({"sidewalk_id": pd.Series(texts, dtype=object), "street": pd.Series(texts, dtype="str")})
    old = schema.coerce(schema.SIDEWALKS, frame.assign(geometry=None))
    new = schema.coerce(schema.SIDEWALKS, frame.assign(geometry=None), arrow_text=True)
    for name in ("sidewalk_id", "street"):
        x, y = old[name].to_numpy(dtype=object), new[name].to_numpy(dtype=object)
        assert (pd.isna(x) == pd.isna(y)).all()
        assert list(x[~pd.isna(x)]) == list(y[~pd.isna(y)])
        assert [None if t is None else (t.strip() or None) for t in texts] == \
            [None if pd.isna(v) else v for v in y]


def test_cores_reserved_for_a_child_are_left_to_it(monkeypatch):
    """While a layer's child process writes, deriving leaves it a core (at least one thread stays); the reserve
    ends with its block, and blocks of rows follow the threads left."""
    monkeypatch.setattr(derive, "THREADS", 3)
    if derive.threads() == 1:
        pytest.skip("this process's address space is limited: one thread anyway")
    assert derive.threads() == 3
    with derive.reserve_cores(1):
        assert derive.threads() == 2
        assert len(derive.blocks(10)) == 2
        with derive.reserve_cores(5):
            assert derive.threads() == 1
            assert derive.run_blocks(lambda s, e: (s, e), 10) == [(0, 10)]
        assert derive.threads() == 2
    assert derive.threads() == 3
