"""Items pages of a box, on both backends: every page, whatever its limit and offset, is the slice of the box's
matches in key order (keys not all ASCII), with the filter's other conditions and as of a day."""

import datetime as dt
import time

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gisapp import geo, schema
from gisapp.filters import Filter
from gisapp.formats import geojson
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
