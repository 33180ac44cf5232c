"""Items pages of a box, on both backends: every page, whatever its limit and offset, is the slice of the box's
matches in key order (keys not all ASCII), with the filter's other conditions and as of a day."""

import datetime as dt
import sqlite3
import time

import geopandas as gpd
import markupsafe
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
import shapely

from gisapp import geo, privacy, schema
from gisapp.filters import Filter
from gisapp.formats import geojson
from gisapp.store.gpkg import GeoPackageStore
from gisapp.web.app import create_app
from tests.stores import BACKENDS, new_store

#: A street view (WGS84) in Cẩm Lệ, Đà Nẵng.
VIEW = (108.1990, 16.0050, 108.2095, 16.0130)
FIELDS = ["status", "received_on", "floors", "plot_area_m2", "street"]


def _lots(n: int, seed: int) -> gpd.GeoDataFrame:
    """``n`` small lots in and around the image of :data:`VIEW` (many across its edge), keys not in spatial order
    and not all ASCII (SQLite orders them by their UTF-8 bytes, Python by code point: the same order)."""
    rng = np.random.default_rng(seed)
    x1, y1, x2, y2 = geo.bbox_polygon(VIEW).bounds
    w, h = x2 - x1, y2 - y1
    x = rng.uniform(x1 - 0.2 * w, x2 + 0.2 * w, n)
    y = rng.uniform(y1 - 0.2 * h, y2 + 0.2 * h, n)
    s = rng.uniform(0.5, 40, n)
    prefixes = np.array(["XD", "XĐ", "Xd", "X-", "XD~", "Xđ"])
    keys = [f"{prefixes[i % len(prefixes)]}-{k:06d}" for i, k in enumerate(rng.permutation(n))]
    statuses = np.array(["RECEIVED", "PROCESSING", "RESULT_READY"])
    return gpd.GeoDataFrame({
        "dossier_code": keys, "status": statuses[rng.integers(0, 3, n)],
        "received_on": [dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 400, n)],
        "floors": rng.integers(1, 9, n), "plot_area_m2": np.round(rng.uniform(20, 300, n), 2),
        "street": rng.choice(["Lỗ Giáng 57", "Cách Mạng Tháng 8", None], n),
    }, geometry=shapely.box(x - s, y - s, x + s, y + s), crs=schema.STORE_CRS)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("flt", [Filter(bbox=VIEW), Filter(bbox=VIEW, statuses=("PROCESSING", "RESULT_READY")),
                                 Filter(bbox=VIEW, as_of=dt.date(2024, 6, 30))],
                         ids=["box", "box+status", "box+as_of"])
def test_every_page_is_a_slice_of_the_matches_in_key_order(backend, flt, tmp_path, request):
    store = new_store(backend, tmp_path, request)
    lots = _lots(900, 5)
    store.write({"construction_permits": lots})
    image = geo.bbox_polygon(VIEW)
    want = lots[shapely.intersects(lots.geometry.values, image)]
    if flt.statuses:
        want = want[want["status"].isin(flt.statuses)]
    if flt.as_of:
        want = want[want["received_on"] <= flt.as_of]
    keys = sorted(want["dossier_code"])
    assert 200 < len(keys) < 900
    whole = store.page("construction_permits", flt, fields=FIELDS, limit=5000)
    assert whole.matched == len(keys) and [r[0] for r in whole.rows] == keys
    for limit, offset in [(7, 0), (7, 100), (50, len(keys) - 20), (1000, 0), (300, 150), (10, len(keys)), (3, 5000)]:
        page = store.page("construction_permits", flt, fields=FIELDS, limit=limit, offset=offset)
        assert page.matched == len(keys), (limit, offset)
        assert page.rows == whole.rows[offset:offset + limit], (limit, offset)
        assert page.known == (None if whole.known is None else whole.known[offset:offset + limit])
        assert geojson.rows_collection(page.rows, FIELDS) == \
            geojson.rows_collection(whole.rows[offset:offset + limit], FIELDS)



def test_geopackage_box_search_in_key_order_with_and_without_its_kept_key_order(tmp_path, monkeypatch):
    """A GeoPackage's box search puts its matches in key order from the key order it keeps per version of the
    file once read (in the background), by SQL before: the same pages either way, and after a write the
    new version's order (an older version's never)."""
    from gisapp.store import gpkg

    monkeypatch.setattr(gpkg, "RANKS_WAIT", 0.0)  # the first search does not wait for the order it starts reading
    store = new_store("gpkg", tmp_path)
    lots = _lots(900, 8)
    store.write({"construction_permits": lots})
    flt = Filter(bbox=VIEW)
    image = geo.bbox_polygon(VIEW)

    def expected(frame):
        return sorted(frame[shapely.intersects(frame.geometry.values, image)]["dossier_code"])

    def kept_order():
        layer = schema.LAYERS["construction_permits"]
        for _ in range(500):
            signature = store._signature()
            found = store._key_ranks(layer, gpkg._file_cache(store.path, signature), signature)
            if found is not None:
                return found
            time.sleep(0.01)
        raise AssertionError("the key order was not read")

    gpkg._FILE_CACHE.clear()
    by_sql = store.page("construction_permits", flt, fields=FIELDS, limit=5000)
    assert [r[0] for r in by_sql.rows] == expected(lots)
    ranks = kept_order()
    assert len(ranks) > 0
    gpkg._FILE_CACHE.pop((str(store.path), store._signature()), {}).clear()  # forget the matches, not the order
    gpkg._file_cache(store.path, store._signature())[("key_ranks", "construction_permits")] = ranks
    by_ranks = store.page("construction_permits", flt, fields=FIELDS, limit=5000)
    assert by_ranks == by_sql
    assert store.page("construction_permits", flt, fields=FIELDS, limit=50, offset=100).rows == by_sql.rows[100:150]
    # new features whose keys fall between the old ones: the next version's order is read again
    more = _lots(300, 9)
    more["dossier_code"] = [f"XD-{k:06d}a" for k in range(300)]
    store.write({"construction_permits": more}, mode="upsert")
    both = expected(gpd.pd.concat([lots, more]))
    assert [r[0] for r in store.page("construction_permits", flt, fields=FIELDS, limit=5000).rows] == both
    kept_order()
    assert [r[0] for r in store.page("construction_permits", Filter(bbox=VIEW), fields=FIELDS, limit=5000).rows] \
        == both


# -- the stored properties' texts (PostGIS migration 15) ------------------------------------------------------

def _awkward(demo_frames) -> dict:
    """Dossiers and sidewalk permits of the demo with values whose JSON is easy to get wrong: NULLs among dates
    and numbers, whole, tiny, huge and negative-zero floats, empty texts, quotes, backslashes, control characters,
    text beyond ASCII; personal fields empty in some rows."""
    frames, _ = demo_frames
    cons = frames["construction_permits"].head(60).copy().reset_index(drop=True)
    cons.loc[0, "received_on"] = pd.Timestamp("1899-12-31")
    cons.loc[1, ["due_on", "completed_on", "issued_on"]] = pd.NaT
    cons.loc[2, ["plot_area_m2", "floors"]] = [np.nan, np.nan]
    cons.loc[3, ["plot_area_m2", "footprint_m2", "height_m", "floor_area_m2"]] = [-1.5e-300, 1e300, -0.0, 120.0]
    cons.loc[4, ["site_address", "owner_name", "owner_id_no"]] = ["", None, None]
    cons.loc[5, ["site_address", "owner_name"]] = [None, 'Ngô Thị 🏠 "Ánh"\t\\N\x01']
    cons.loc[6, "street"] = 'Đường "Hoàng Diệu", kiệt\n12 ,"site_address":'
    cons.loc[7, "owner_id_no"] = ',"site_address":"x"'
    cons.loc[8, ["plot_area_m2", "height_m"]] = [1e20, 1.5e-7]
    side = frames["sidewalk_permits"].head(40).copy().reset_index(drop=True)
    side.loc[0, "applicant_name"] = None
    side.loc[1, ["applicant_name", "address"]] = ['A "B" \\ C', "\u2028\x7f"]
    side.loc[2, ["used_width_m", "end_on"]] = [np.nan, pd.NaT]
    return {"construction_permits": cons, "sidewalk_permits": side}


def _awkward_store(backend: str, demo_frames, tmp_path, request, **write) -> tuple:
    """A new store of ``backend`` holding :func:`_awkward`'s frames, and the frames."""
    store = new_store(backend, tmp_path, request)
    frames = _awkward(demo_frames)
    store.write(frames, **write)
    return store, frames


def _field_lists(frames: dict):
    """(layer name, layer, signed in, its fields) of each layer of ``frames``, anonymous and signed in."""
    for layer in frames:
        lay = schema.get_layer(layer)
        for personal in (False, True):
            yield layer, lay, personal, privacy.visible_fields(lay, personal)


def _both(store, layer: str, flt, fields: list[str], **paging) -> tuple:
    """A page read with the stored texts and the same page read from the fields."""
    return (store.page(layer, flt, fields=fields, texts=True, **paging),
            store.page(layer, flt, fields=fields, **paging))


def _same_page(texts, fields_page, fields: list[str]) -> None:
    """The page of stored texts is the page of the fields, as the items page writes it (byte for byte), and
    as the HTML page shows it."""
    assert texts.texts and not fields_page.texts
    assert texts.matched == fields_page.matched and [r[0] for r in texts.rows] == [r[0] for r in fields_page.rows]
    members = {"numberMatched": texts.matched}
    assert geojson.texts_collection(texts.rows, members) == geojson.rows_collection(fields_page.rows, fields, members)
    n = len(fields)
    assert [orjson.loads(r[1]) for r in texts.rows] == [
        {f: (v.isoformat() if isinstance(v, dt.date) else v) for f, v in zip(fields, r[1:n + 1])}
        for r in fields_page.rows]


@pytest.mark.parametrize("backend", BACKENDS)
def test_stored_properties_are_the_page_of_the_fields_public_and_personal(backend, demo_frames, tmp_path, request):
    store, frames = _awkward_store(backend, demo_frames, tmp_path, request)
    for layer, lay, personal, fields in _field_lists(frames):
        texts, plain = _both(store, layer, None, fields, limit=1000)
        assert len(texts.rows) == len(frames[layer])
        _same_page(texts, plain, fields)
        if personal:
            assert any(p in texts.rows[0][1] for p in (b'"owner_name":', b'"applicant_name":'))
        else:
            assert all(f'"{f.name}"'.encode() not in r[1] for r in texts.rows for f in lay.fields if f.personal)
    for layer in frames:
        lay = schema.get_layer(layer)
        box = Filter(bbox=tuple(geo.transform([shapely.box(*frames[layer].total_bounds)], schema.STORE_CRS,
                                              schema.WEB_CRS)[0].bounds))
        texts, plain = _both(store, layer, box, privacy.visible_fields(lay, False), limit=7, offset=5)
        assert len(texts.rows) == 7
        _same_page(texts, plain, privacy.visible_fields(lay, False))
    # other fields than the public or all: read from the fields
    assert not store.page("construction_permits", fields=FIELDS, limit=5, texts=True).texts


@pytest.mark.parametrize("backend", BACKENDS)
def test_stored_properties_follow_upserts_deletes_and_as_of_pages_read_the_fields(backend, demo_frames, tmp_path,
                                                                                 request):
    store, frames = _awkward_store(backend, demo_frames, tmp_path, request, meta={"as_of": "2024-01-01"})
    cons = frames["construction_permits"]
    changed = cons.head(5).copy()
    changed["status"] = "RESULT_READY"
    changed["owner_name"] = ["Trần \"Mới\"", None, "Lê", "Phạm\\", "Võ"]
    changed["floors"] = [1, None, 3, 4, 5]
    changed.loc[0, "plot_area_m2"] = 0.1 + 0.2
    added = cons.tail(1).copy()
    added["dossier_code"] = "XD-NEW-1"
    store.write({"construction_permits": pd.concat([changed, added])}, mode="upsert",
                delete={"construction_permits": [cons["dossier_code"].iloc[10]]})
    lay = schema.get_layer("construction_permits")
    for personal in (False, True):
        fields = privacy.visible_fields(lay, personal)
        texts, plain = _both(store, "construction_permits", None, fields, limit=1000)
        _same_page(texts, plain, fields)
        by_key = {r[0]: orjson.loads(r[1]) for r in texts.rows}
        assert cons["dossier_code"].iloc[10] not in by_key and "XD-NEW-1" in by_key
        first = by_key[cons["dossier_code"].iloc[0]]
        assert first["status"] == "RESULT_READY" and first["plot_area_m2"] == 0.1 + 0.2
        assert by_key[cons["dossier_code"].iloc[1]]["floors"] is None
        assert ("owner_name" in first) == personal and first.get("owner_name", 'Trần "Mới"') == 'Trần "Mới"'
    # as of a day the status and dates are that day's, not the stored ones: read from the fields
    as_of = Filter(as_of=dt.date(2025, 1, 1))
    page = store.page("construction_permits", as_of, fields=privacy.visible_fields(lay, False), limit=1000,
                      texts=True)
    assert not page.texts and page.known is not None
    assert page == store.page("construction_permits", as_of, fields=privacy.visible_fields(lay, False), limit=1000)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_without_stored_properties_are_read_from_their_fields(backend, demo_frames, tmp_path, request):
    """A store written before the texts existed: a GeoPackage layer without their columns (written by an older
    gisapp; an upsert in the file itself still works), PostGIS rows with them NULL (loaded before migration 15)."""
    store, frames = _awkward_store(backend, demo_frames, tmp_path, request)
    lay = schema.get_layer("construction_permits")
    key = frames["construction_permits"]["dossier_code"].iloc[3]
    if backend == "gpkg":
        with sqlite3.connect(store.path) as con:
            con.execute("ALTER TABLE construction_permits DROP COLUMN properties_json")
            con.execute("ALTER TABLE construction_permits DROP COLUMN properties_personal")
        store = GeoPackageStore(store.path)
    else:
        with store.connection() as con:
            con.execute("UPDATE construction_permits SET properties_json = NULL WHERE dossier_code = %s", [key])
    for personal in (False, True):
        fields = privacy.visible_fields(lay, personal)
        page = store.page("construction_permits", fields=fields, limit=1000, texts=True)
        assert not page.texts and page == store.page("construction_permits", fields=fields, limit=1000)
    if backend == "postgis":  # the next pages read the fields at once, until the texts are tried again
        from gisapp.store import postgis

        pool = postgis._pool(store._url)
        assert pool.untexted["construction_permits"] == postgis.TEXTS_RETRY - 1
        pool.untexted["construction_permits"] = 2
        store.write({"construction_permits": frames["construction_permits"]}, mode="upsert")  # every text again
        texts = [store.page("construction_permits", fields=lay.field_names, limit=5, texts=True).texts
                 for _ in range(3)]
        assert texts == [False, False, True] and not pool.untexted["construction_permits"]
    one = frames["construction_permits"].head(1).copy()
    one["street"] = "Mới"
    store.write({"construction_permits": one}, mode="upsert")
    page = store.page("construction_permits", fields=lay.field_names, limit=1000)
    assert dict((r[0], r[1 + lay.field_names.index("street")]) for r in page.rows)[one["dossier_code"].iloc[0]] \
        == "Mới"


@pytest.mark.parametrize("backend", BACKENDS)
def test_items_api_answers_as_from_the_fields_anonymous_and_signed_in(backend, demo_frames, tmp_path, request):
    store, frames = _awkward_store(backend, demo_frames, tmp_path, request)
    for layer, lay, personal, fields in _field_lists(frames):
        app = create_app({"STORE": store.url if backend == "gpkg" else store._url, "TESTING": True,
                          "BASEMAP": "none", "SHOW_PERSONAL_DATA": personal})
        client = app.test_client()
        plain = store.page(layer, None, fields=fields, limit=20, offset=3)
        got = orjson.loads(client.get(f"/api/collections/{layer}/items?limit=20&offset=3&f=json").get_data())
        want = orjson.loads(geojson.rows_collection(plain.rows, fields))
        assert got["features"] == want["features"] and got["numberReturned"] == 20
        html = client.get(f"/api/collections/{layer}/items?limit=20&offset=3&f=html").get_data(as_text=True)
        personal_value = next((v for r in plain.rows for f, v in zip(fields, r[1:]) if lay.field(f).personal and v),
                              None)
        assert (personal_value is not None) == personal
        if personal_value is not None:
            assert str(markupsafe.escape(personal_value)) in html


@pytest.mark.parametrize("order, run", [
    ("kPpq", (["P", "p"], "q")), ("kqPp", (["P", "p"], None)), ("kPqp", None), ("Pkq", None), ("kq", None)])
def test_personal_members_go_back_where_the_fields_are(order, run):
    """A layer's personal fields in one run after a public one (before another, or last) are spliced back into
    the public text where they belong, whatever the values hold; spread or first, they are not stored apart."""
    field = {"k": schema.Field("k", "text", "k", "k"), "q": schema.Field("q", "float", "q", "q"),
             "P": schema.Field("P", "text", "P", "P", personal=True),
             "p": schema.Field("p", "date", "p", "p", personal=True)}
    lay = schema.Layer("t", "t", "t", "k", tuple(field[c] for c in order))
    assert geojson.personal_run(lay) == run
    if run is None:
        return
    values = {"k": pa.array(['a,"q":1', "b"]), "q": pa.array([1.0, None]), "P": pa.array([',"q":', None]),
              "p": pa.array([dt.date(2024, 1, 2), None], pa.date32())}
    public, personal = geojson.properties_texts(lay, values)
    rows = [{c: values[c][i].as_py() for c in order} for i in range(2)]
    for i, row in enumerate(rows):
        row["p"] = row["p"] and row["p"].isoformat()
        assert public[i].as_py().encode() == orjson.dumps({c: v for c, v in row.items() if c not in "Pp"})
        assert geojson.with_personal(public[i].as_py().encode(), personal[i].as_py().encode(), run[1]) \
            == orjson.dumps(row)
