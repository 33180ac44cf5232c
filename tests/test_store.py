"""The store interface, run against every backend: round trip, filters, bbox, atomicity."""

import datetime as dt
import os
import sqlite3

import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from gisapp import geo, schema
from gisapp.cli import cli
from gisapp.filters import Filter
from gisapp.formats import geojson
from gisapp.store import StoreError, open_store
from gisapp.store.base import GEOJSON_COLUMN
from gisapp.store.gpkg import GeoPackageStore
from tests.helpers import drop_tables_after_schema_5, permits
from tests.stores import BACKENDS, new_store

D = dt.date.fromisoformat
STATUSES = ["PROCESSING", "RETURNED", "REFUSED", "RECEIVED"]
WARDS = ["20260", "20305", "20306"]


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory):
    """The 40 lots of :func:`permits` in a store of each backend, shared by the tests that only read it."""
    s = new_store(request.param, tmp_path_factory.mktemp("store"), request)
    s.write({"construction_permits": permits()}, meta={"as_of": "2022-07-08"})
    return s


@pytest.fixture(params=BACKENDS)
def own_store(request, tmp_path):
    """The same, private to a test that writes to it."""
    s = new_store(request.param, tmp_path, request)
    s.write({"construction_permits": permits()}, meta={"as_of": "2022-07-08"})
    return s


def test_round_trip_keeps_values_and_geometry(store):
    out = store.read("construction_permits")
    src = schema.coerce(schema.CONSTRUCTION_PERMITS, permits())
    assert len(out) == 40 and list(out.columns) == list(src.columns)
    assert out.crs == schema.STORE_CRS
    pd.testing.assert_frame_equal(out.drop(columns="geometry"), src.drop(columns="geometry"), check_dtype=False)
    assert all(shapely.equals(out.geometry.values, geo.to_multipolygons(src.geometry.values)))
    assert out.geometry.iloc[0].geom_type == "MultiPolygon"
    assert store.meta()["as_of"] == "2022-07-08"
    assert store.as_of() == D("2022-07-08")


def test_every_layer_exists_after_the_first_write(store):
    infos = {i.name: i for i in store.info()}
    assert set(infos) == set(schema.LAYERS)
    assert infos["construction_permits"].count == 40 and infos["wards"].count == 0
    x1, y1, x2, y2 = infos["construction_permits"].extent
    assert (x1, y1) == pytest.approx((547900, 1770700)) and x2 == pytest.approx(547900 + 396)
    assert len(store.read("wards")) == 0


@pytest.mark.parametrize(
    "flt, expected",
    [
        (Filter(), 40),
        (Filter(wards=("20260",)), 14),
        (Filter(wards=("20260", "20305")), 27),
        (Filter(statuses=("PROCESSING",)), 10),
        (Filter(statuses=("PROCESSING",), wards=("20260",)), 4),
        (Filter(procedures=("RENOVATION",)), 8),
        (Filter(channels=("ONLINE",)), 20),
        (Filter(date_from=D("2022-01-10")), 33),
        (Filter(date_to=D("2022-01-10")), 8),
        (Filter(date_from=D("2022-01-05"), date_to=D("2022-01-05")), 1),
        (Filter(q="ong ich"), 6),           # accent- and case-blind
        (Filter(q="ÔNG ÍCH ĐƯỜNG"), 6),
        (Filter(q="XD-0001"), 1),
        (Filter(q="100%"), 0),              # LIKE wildcards are literal
        (Filter(q="nguyen van"), 0),        # owner names are not searched...
        (Filter(q="nguyen van", q_personal=True), 40),  # ...except for signed-in staff
        (Filter(q="nguyễn văn 3", q_personal=True), 13),  # each word anywhere: "3" in XD-0003, -0013, -0023, -0030…39
        (Filter(q="ong ich 7", q_personal=True), 1),  # public and personal words: 7 Ông Ích Đường
        (Filter(purposes=("MATERIALS",)), 40),  # a field the layer lacks restricts nothing
    ],
)
def test_filters(store, flt, expected):
    assert store.count("construction_permits", flt) == expected
    got = store.read("construction_permits", flt)
    assert len(got) == expected
    assert list(got["dossier_code"]) == sorted(got["dossier_code"])


def test_bbox_uses_exact_geometry(store):
    lots = store.read("construction_permits")
    # A WGS84 box around lots 3..5 only.
    target = lots.geometry.iloc[3:6].union_all().buffer(1)
    box = geo.transform([target], schema.STORE_CRS, schema.WEB_CRS)[0].bounds
    got = store.read("construction_permits", Filter(bbox=box))
    assert list(got["dossier_code"]) == ["XD-0003", "XD-0004", "XD-0005"]
    assert store.count("construction_permits", Filter(bbox=box, statuses=("RETURNED",))) == 1
    far = (108.0, 15.0, 108.01, 15.01)
    assert store.count("construction_permits", Filter(bbox=far)) == 0


def test_paging_is_stable_and_complete(store):
    pages = [store.read("construction_permits", limit=7, offset=o)["dossier_code"].tolist() for o in range(0, 42, 7)]
    flat = [c for p in pages for c in p]
    assert flat == sorted(flat) and len(flat) == len(set(flat)) == 40
    lots = store.read("construction_permits")
    box = geo.transform([lots.geometry.iloc[0:10].union_all()], schema.STORE_CRS, schema.WEB_CRS)[0].bounds
    paged = store.read("construction_permits", Filter(bbox=box), limit=4, offset=4)
    assert list(paged["dossier_code"]) == ["XD-0004", "XD-0005", "XD-0006", "XD-0007"]
    batches = list(store.iter_batches("construction_permits", Filter(wards=("20260",)), batch_size=5))
    assert [len(b) for b in batches] == [5, 5, 4]


@pytest.mark.parametrize("bbox", [False, True])
@pytest.mark.parametrize("limit, offset", [(7, 0), (7, 35), (100, 0), (5, 40), (5, 1000)])
def test_page_is_the_count_and_the_rows_of_read(store, bbox, limit, offset):
    lots = store.read("construction_permits")
    flt = Filter(statuses=("PROCESSING", "RETURNED"))
    if bbox:  # lots 0..29 and a bit (the count and the rows come from one query on PostGIS)
        box = geo.transform([lots.geometry.iloc[0:30].union_all()], schema.STORE_CRS, schema.WEB_CRS)[0].bounds
        flt = Filter(statuses=("PROCESSING", "RETURNED"), bbox=box)
    fields = ["status", "received_on", "floors", "plot_area_m2", "owner_name"]
    page = store.page("construction_permits", flt, fields=fields, limit=limit, offset=offset)
    expected = store.read("construction_permits", flt, limit=limit, offset=offset)
    assert page.matched == store.count("construction_permits", flt)
    assert page.matched == 20 if not bbox else 14 <= page.matched < 20
    assert [r[0] for r in page.rows] == expected["dossier_code"].tolist()
    assert all(len(r) == 2 + len(fields) for r in page.rows)
    for row, (_, want) in zip(page.rows, expected.iterrows()):
        status, received, floors, area, owner = row[1:-1]
        assert (status, str(received), floors, area, owner) == (
            want["status"], want["received_on"].date().isoformat(), want["floors"], want["plot_area_m2"],
            want["owner_name"])
        assert row[-1] == geojson.geometry_json([want.geometry])[0]  # the stored GeoJSON text (WGS84)
    with pytest.raises(StoreError, match="no field 'nope'"):
        store.page("construction_permits", flt, fields=["nope"], limit=1)


def test_page_rows_carry_missing_values_as_none(own_store):
    lots = permits(3)
    lots.loc[1, ["received_on", "floors", "plot_area_m2", "street"]] = [None, None, float("nan"), None]
    lots.loc[2, "geometry"] = None
    own_store.write({"construction_permits": lots}, meta={"as_of": "2022-07-08"})
    page = own_store.page("construction_permits", fields=["received_on", "floors", "plot_area_m2", "street"], limit=10)
    assert page.matched == 3
    assert page.rows[1][:-1] == ("XD-0001", None, None, None, None)
    assert page.rows[0][2:4] == (1, 108.0) and str(page.rows[0][1]) == "2022-01-03"
    assert page.rows[2][-1] == "null" and page.rows[0][-1].startswith('{"type":"MultiPolygon"')


def _forget_stored_geojson(store, key: str) -> None:
    """Make one row look written before the GeoJSON column existed (column gone, or NULL at schema 5)."""
    if isinstance(store, GeoPackageStore):
        with sqlite3.connect(store.path) as con:
            con.execute(f"ALTER TABLE construction_permits DROP COLUMN {GEOJSON_COLUMN}")
    else:
        with store.connection() as con:
            con.execute(f"ALTER TABLE construction_permits ALTER COLUMN {GEOJSON_COLUMN} DROP NOT NULL")
            con.execute(f"UPDATE construction_permits SET {GEOJSON_COLUMN} = NULL WHERE dossier_code = %s", [key])
            drop_tables_after_schema_5(con)


def test_rows_without_stored_geojson_get_it_once_and_pages_are_the_same(own_store):
    fields = ["status", "received_on"]
    before = own_store.page("construction_permits", fields=fields, limit=5)
    _forget_stored_geojson(own_store, "XD-0001")
    if isinstance(own_store, GeoPackageStore):
        own_store = GeoPackageStore(own_store.path)  # opening the file fills the column
    else:
        own_store.upgrade()  # 'gisapp db upgrade': migration 6
    after = own_store.page("construction_permits", fields=fields, limit=5)
    assert after == before and isinstance(after.rows[1][-1], str)
    assert geojson.rows_collection(after.rows, fields) == geojson.rows_collection(before.rows, fields)


def test_get_by_key(store):
    one = store.get("construction_permits", "XD-0007")
    assert len(one) == 1 and one["owner_name"].iloc[0] == "Nguyễn Văn 7"
    assert len(store.get("construction_permits", "nope")) == 0


def test_upsert_replaces_by_key_and_adds(own_store):
    changed = permits(2)
    changed["status"] = "RETURNED"
    extra = permits(42).iloc[41:]
    own_store.write({"construction_permits": pd.concat([changed, extra])}, mode="upsert")
    out = own_store.read("construction_permits")
    assert len(out) == 41
    assert out.set_index("dossier_code").loc[["XD-0000", "XD-0001"], "status"].tolist() == ["RETURNED"] * 2
    own_store.write({"construction_permits": permits(3)}, mode="replace")
    assert own_store.count("construction_permits") == 3


def test_unknown_layer_and_mode(own_store):
    with pytest.raises(StoreError, match="unknown layer 'parcels'"):
        own_store.read("parcels")
    with pytest.raises(StoreError, match="unknown write mode"):
        own_store.write({"construction_permits": permits(1)}, mode="append")


def test_failed_write_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "s.gpkg"
    store = GeoPackageStore(path, must_exist=False)
    store.write({"construction_permits": permits()}, meta={"as_of": "2022-07-08"})
    before = path.read_bytes()

    import gisapp.store.gpkg as gpkg

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(gpkg, "_finish", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        store.write({"construction_permits": permits(3)}, meta={"as_of": "x"})
    assert path.read_bytes() == before
    assert store.count("construction_permits") == 40 and store.meta()["as_of"] == "2022-07-08"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".gpkg")] == ["s.gpkg"]


def test_a_geopackage_replace_is_written_in_the_file_and_stays_a_valid_geopackage(tmp_path, monkeypatch):
    """A replace of existing layers goes into the file itself (no copy of the store): GDAL and the R-tree
    read the new rows, the indexes and triggers are there, the metadata counts the new rows."""
    import pyogrio

    import gisapp.store.gpkg as gpkg

    path = tmp_path / "s.gpkg"
    store = GeoPackageStore(path, must_exist=False)
    store.write({"construction_permits": permits()}, meta={"as_of": "2022-07-08"})
    inode = os.stat(path).st_ino

    def no_copy(*args, **kwargs):
        raise AssertionError("the store was copied")

    monkeypatch.setattr(gpkg, "_copy", no_copy)
    new = permits(12)
    new["geometry"] = new.geometry.translate(1000, 0)
    store.write({"construction_permits": new}, meta={"as_of": "2022-07-09"})
    assert os.stat(path).st_ino == inode
    assert store.count("construction_permits") == 12 and store.meta()["as_of"] == "2022-07-09"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".gpkg")] == ["s.gpkg"]
    info = pyogrio.read_info(path, layer="construction_permits")
    assert info["features"] == 12 and info["geometry_type"] == "MultiPolygon"
    x1, y1, x2, y2 = new.total_bounds
    assert len(pyogrio.read_dataframe(path, layer="construction_permits", bbox=(x1, y1, x2, y2))) == 12
    con = sqlite3.connect(path)
    assert con.execute("SELECT rtreecheck('rtree_construction_permits_geom')").fetchone() == ("ok",)
    assert con.execute("SELECT count(*) FROM rtree_construction_permits_geom").fetchone() == (12,)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    assert {"ix_construction_permits_status", "rtree_construction_permits_geom_insert"} <= names
    extent = con.execute("SELECT min_x, max_x FROM gpkg_contents WHERE table_name = 'construction_permits'").fetchone()
    assert extent[0] == pytest.approx(x1) and extent[1] == pytest.approx(x2)
    con.close()
    # a feature written later goes through the copied triggers into the R-tree
    store.write({"construction_permits": permits(13).iloc[12:]}, mode="upsert")
    assert store.count("construction_permits", Filter(bbox=None)) == 13
    with sqlite3.connect(path) as con:
        assert con.execute("SELECT count(*) FROM rtree_construction_permits_geom").fetchone() == (13,)


def test_a_writer_killed_in_an_in_place_replace_leaves_the_old_data_readable(tmp_path):
    """A process killed inside the replace's transaction, its pages already spilled into the file, leaves a
    hot journal: the next read rolls it back (read-only connections alone could not) and sees the data as it was."""
    import subprocess
    import sys

    path = tmp_path / "s.gpkg"
    store = GeoPackageStore(path, must_exist=False)
    store.write({"construction_permits": permits()}, meta={"as_of": "2022-07-08"})
    code = (
        "import os, sys\n"
        "import gisapp.store.gpkg as g\n"
        "from tests.helpers import permits\n"
        "real = g._changes_into\n"
        "def die(con, entries):\n"
        "    real(con, entries)\n"
        "    os._exit(3)\n"
        "g._changes_into = die\n"
        "g._IN_PLACE_CACHE_KIB = 1\n"  # a cache that spills: the file itself is half written
        f"g.GeoPackageStore({str(path)!r}).write({{'construction_permits': permits(5)}})\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(os.path.dirname(__file__)), check=False)
    assert done.returncode == 3
    assert path.with_name(path.name + "-journal").exists()  # the killed writer's, hot
    reader = GeoPackageStore(path)
    assert reader.count("construction_permits") == 40 and reader.meta()["as_of"] == "2022-07-08"
    assert len(reader.read_arrow("construction_permits", fields=["dossier_code"])) == 40


def test_geopackage_has_spatial_index_and_filter_indexes(tmp_path):
    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write({"construction_permits": permits()})
    con = sqlite3.connect(tmp_path / "s.gpkg")
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    assert "rtree_construction_permits_geom" in names
    assert {"ix_construction_permits_ward_dates", "ix_construction_permits_status"} <= names
    plan = " ".join(str(r) for r in con.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM construction_permits WHERE status = ?", ["X"]))
    assert "ix_construction_permits_status" in plan
    # the ward filter through (ward_code, dates): no index on ward_code alone (it would not be used)
    assert "ix_construction_permits_ward_code" not in names
    plan = " ".join(str(r) for r in con.execute(
        "EXPLAIN QUERY PLAN SELECT fid FROM construction_permits WHERE ward_code IN (?, ?)", ["A", "B"]))
    assert "ix_construction_permits_ward_dates (ward_code=?)" in plan
    cols = dict(con.execute("SELECT name, type FROM pragma_table_info('construction_permits')").fetchall())
    assert cols["received_on"] == "DATE" and cols["floors"] in ("MEDIUMINT", "INTEGER")


@pytest.mark.parametrize("content", [b"", b"hello, not a database", b"SQLite format 3\x00" + b"\x00" * 200])
def test_not_a_geopackage(tmp_path, content):
    path = tmp_path / "bad.gpkg"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not a GeoPackage"):
        open_store(str(path))


def test_missing_store_and_bad_urls(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        open_store(str(tmp_path / "none.gpkg"))
    with pytest.raises(StoreError, match="neither a .gpkg file"):
        open_store(str(tmp_path / "x.shp"))
    with pytest.raises(StoreError, match="no store configured"):
        open_store("")


def test_a_point_bbox_is_a_tiny_box_not_an_error(store):
    lots = store.read("construction_permits")
    x, y = geo.transform([lots.geometry.iloc[2].centroid], schema.STORE_CRS, schema.WEB_CRS)[0].coords[0]
    assert list(store.read("construction_permits", Filter(bbox=(x, y, x, y)))["dossier_code"]) == ["XD-0002"]
    assert store.count("construction_permits", Filter(bbox=(0.0, 0.0, 0.0, 0.0))) == 0


@pytest.mark.parametrize("bbox, expected", [((-180.0, -90.0, 180.0, 90.0), 40), ((-10.0, -10.0, 150.0, 60.0), 40),
                                            ((-10.0, -10.0, 10.0, 10.0), 0)])
def test_boxes_far_beyond_the_projection_still_work(store, bbox, expected):
    """A whole-world box (QGIS asks for one) means everything; a box on the other side of the world, nothing."""
    assert store.count("construction_permits", Filter(bbox=bbox)) == expected
    assert len(store.read("construction_permits", Filter(bbox=bbox))) == expected


def test_a_geopackage_batch_stream_survives_a_write_in_its_thread(tmp_path):
    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write({"construction_permits": permits()})
    batches = store.iter_batches("construction_permits", batch_size=10)
    first = next(batches)
    store.write({"construction_permits": permits(5)})  # replaces the file: this thread's kept reader is renewed
    assert store.count("construction_permits") == 5
    rest = list(batches)  # still the version the stream began on
    assert len(first) + sum(len(b) for b in rest) == 40


def test_geopackage_bbox_search_with_and_without_the_old_fid_key_index(tmp_path):
    # New files have no (fid, key) index (a bbox search orders its matches by the key order kept per file version);
    # a file written before keeps it, and its searches find the same features in the same order.
    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write({"construction_permits": permits()})
    lots = store.read("construction_permits")
    box = geo.transform([lots.geometry.iloc[5:25].union_all()], schema.STORE_CRS, schema.WEB_CRS)[0].bounds
    flt = Filter(bbox=box)
    with sqlite3.connect(store.path) as con:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "ix_construction_permits_fid_key" not in names and "ix_construction_permits_dossier_code" in names
    without = store.page("construction_permits", flt, fields=["status"], limit=100)
    with sqlite3.connect(store.path) as con:  # a file written before the index was left out
        con.execute("CREATE INDEX ix_construction_permits_fid_key ON construction_permits (fid, dossier_code)")
    with_index = store.page("construction_permits", flt, fields=["status"], limit=100)
    assert with_index == without and with_index.matched >= 20
    assert [r[0] for r in without.rows] == sorted(r[0] for r in without.rows)


#: Filters of the items pages and the index each one's count is planned on, per backend (the index audit of
#: issue 15: each index kept earns its place by a plan like these; PostGIS's planner is told to avoid a scan of
#: the table, which on a few rows it would prefer, so the plan says which index serves the filter).
PLANNED = [
    (Filter(wards=("20260",)), {"gpkg": "ix_construction_permits_ward_dates",
                                "postgis": "ix_construction_permits_ward_code"}),
    (Filter(statuses=("REFUSED",)), "ix_construction_permits_status"),
    (Filter(procedures=("RENOVATION",)), "ix_construction_permits_procedure"),
    (Filter(channels=("ONLINE",)), "ix_construction_permits_channel"),
    (Filter(date_from=dt.date(2022, 1, 5), date_to=dt.date(2022, 1, 9)), "ix_construction_permits_received_on"),
    (Filter(day=dt.date(2022, 1, 9)), "ix_construction_permits_works_start"),
    (Filter(wards=("20260",), date_from=dt.date(2022, 1, 5), date_to=dt.date(2022, 1, 9)),
     {"gpkg": "ix_construction_permits_ward_dates", "postgis": "ix_construction_permits_received_on"}),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("flt", "index"), PLANNED, ids=[str(i) for i in range(len(PLANNED))])
def test_the_filters_counts_are_planned_on_their_indexes(backend, flt, index, tmp_path, request):
    store = new_store(backend, tmp_path, request)
    store.write({"construction_permits": permits()})
    lay = schema.LAYERS["construction_permits"]
    index = index[backend] if isinstance(index, dict) else index
    if backend == "gpkg":
        with sqlite3.connect(store.path) as con:
            where, params = store._where(con, lay, flt)
            plan = " ".join(r[-1] for r in con.execute(
                f'EXPLAIN QUERY PLAN SELECT count(*) FROM "{lay.name}"{where}', params))
    else:
        with store.connection() as con, con.transaction():
            con.execute("SET LOCAL enable_seqscan = off")
            where, params = store.where(lay, flt)
            plan = " ".join(r[0] for r in con.execute(f"EXPLAIN SELECT count(*) FROM {lay.name}{where}", params))
    assert index in plan, plan


# -- existence and aggregates --------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_a_store_exists_once_written(backend, tmp_path, request):
    fresh = new_store(backend, tmp_path, request)
    assert fresh.exists() is False
    fresh.write({"construction_permits": permits(3)})
    assert fresh.exists() is True


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_if_missing_leaves_an_existing_store_alone(backend, tmp_path, request):
    existing = new_store(backend, tmp_path, request)
    existing.write({"construction_permits": permits(3)})
    result = CliRunner().invoke(cli, ["--store", existing.url, "seed", "--if-missing", "--no-analyze"])
    assert result.exit_code == 0, result.output
    assert "already exists; not seeding" in result.output and existing.count("construction_permits") == 3


def test_a_geopackage_in_a_missing_folder_does_not_exist(tmp_path):
    assert GeoPackageStore(tmp_path / "no" / "such.gpkg", must_exist=False).exists() is False


def _grid_counts(frame, cell_m: float) -> pd.DataFrame:
    """Counts per ``cell_m`` grid cell of the centres of the features' bounding boxes, from their geometries."""
    bounds = shapely.bounds(frame.geometry.values)
    cx, cy = (bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2
    cells = pd.DataFrame({"x": (np.floor(cx / cell_m) + 0.5) * cell_m, "y": (np.floor(cy / cell_m) + 0.5) * cell_m})
    return cells.groupby(["x", "y"]).size().rename("count").reset_index().astype({"count": "int64"})


@pytest.mark.parametrize("flt", [Filter(), Filter(statuses=("RETURNED", "PROCESSING")), Filter(wards=("20305",))])
def test_aggregate_counts_by_ward_and_by_grid_cell(store, flt):
    rows = store.read("construction_permits", flt)
    by_ward = store.aggregate("construction_permits", flt)
    expected = rows.groupby("ward_code").size().rename("count").reset_index().astype({"count": "int64"})
    pd.testing.assert_frame_equal(by_ward, expected)
    for cell_m in (7.0, 50.0, 100.0):
        pd.testing.assert_frame_equal(store.aggregate("construction_permits", flt, cell_m=cell_m),
                                      _grid_counts(rows, cell_m))


def test_aggregate_with_a_bbox_counts_what_count_counts(store):
    lots = store.read("construction_permits")
    box = geo.transform([lots.geometry.iloc[3:9].union_all().buffer(1)], schema.STORE_CRS, schema.WEB_CRS)[0].bounds
    flt = Filter(bbox=box)
    assert store.aggregate("construction_permits", flt)["count"].sum() == store.count("construction_permits", flt) == 6
    pd.testing.assert_frame_equal(store.aggregate("construction_permits", flt, cell_m=10),
                                  _grid_counts(store.read("construction_permits", flt), 10))


def test_aggregate_of_nothing_and_bad_cells(store):
    none = Filter(q="no such text")
    by_ward, grid = store.aggregate("construction_permits", none), store.aggregate("wards", cell_m=10)
    assert list(by_ward.columns) == ["ward_code", "count"] and len(by_ward) == 0
    assert list(grid.columns) == ["x", "y", "count"] and len(grid) == 0
    assert [str(t) for t in grid.dtypes] == ["float64", "float64", "int64"]
    with pytest.raises(StoreError, match="cell_m must be positive"):
        store.aggregate("construction_permits", cell_m=0)


# -- small upserts with deletes, the writers' lock (filing an occupancy with its findings) ------------------------

def test_upsert_with_delete_in_one_write(own_store):
    frame = permits(3)
    frame["dossier_code"] = ["NEW-1", "NEW-2", "XD-0003"]
    frame["status"] = "RECEIVED"
    frame["geometry"] = [shapely.box(548500, 1770700, 548506, 1770718), shapely.box(548510, 1770700, 548516, 1770718),
                         shapely.box(547930, 1770700, 547936, 1770718)]
    version = own_store.version()
    own_store.write({"construction_permits": frame}, mode="upsert",
                delete={"construction_permits": ["XD-0000", "XD-0001", "NOT-STORED"]}, meta={"note": "x"})
    out = own_store.read("construction_permits")
    codes = set(out["dossier_code"])
    assert len(out) == 40 - 2 + 2 and {"NEW-1", "NEW-2", "XD-0003"} <= codes and not {"XD-0000", "XD-0001"} & codes
    assert own_store.get("construction_permits", "XD-0003")["status"].iloc[0] == "RECEIVED"
    assert own_store.version() != version
    assert own_store.meta()["note"] == "x" and own_store.meta()["as_of"] == "2022-07-08"
    # the spatial index, the counts and the search text follow
    box = geo.transform([shapely.box(548499, 1770699, 548507, 1770719)], schema.STORE_CRS, schema.WEB_CRS)[0]
    assert list(own_store.read("construction_permits", Filter(bbox=box.bounds))["dossier_code"]) == ["NEW-1"]
    assert own_store.count("construction_permits") == 40
    assert {i.name: i.count for i in own_store.info()}["construction_permits"] == 40
    assert list(own_store.read("construction_permits", Filter(q="NEW-2"))["dossier_code"]) == ["NEW-2"]
    # a delete alone
    own_store.write({}, mode="upsert", delete={"construction_permits": ["NEW-1"]})
    assert own_store.get("construction_permits", "NEW-1").empty
    with pytest.raises(StoreError, match="upsert"):
        own_store.write({"construction_permits": frame}, mode="replace", delete={"construction_permits": ["NEW-2"]})


def test_write_lock_keeps_other_writers_out_until_released(own_store):
    import threading

    order: list[str] = []
    started = threading.Event()

    def other_writer():
        other = open_store(own_store.url)
        started.set()
        row = permits(1).assign(dossier_code="OTHER")
        other.write({"construction_permits": row}, mode="upsert")
        order.append("other wrote")

    with own_store.write_lock():
        thread = threading.Thread(target=other_writer)
        thread.start()
        started.wait()
        thread.join(timeout=1.0)
        assert thread.is_alive()  # waiting for the lock
        assert own_store.get("construction_permits", "OTHER").empty
        own_store.write({"construction_permits": permits(1).assign(dossier_code="MINE")}, mode="upsert")  # re-entrant
        order.append("mine wrote")
    thread.join(timeout=60)
    assert order == ["mine wrote", "other wrote"]
    assert not own_store.get("construction_permits", "OTHER").empty
    assert not own_store.get("construction_permits", "MINE").empty


def test_rows_in_box_reads_a_neighbourhood_through_the_index(store):
    # lots i are 547900 + 10 i … + 6 wide, 1770700 … 1770718 high: the box meets lots 3 and 4
    rows = store.rows_in_box("construction_permits", (547935.0, 1770710.0, 547941.0, 1770711.0),
                             fields=["dossier_code", "received_on", "floors"])
    assert sorted(r[0] for r in rows) == ["XD-0003", "XD-0004"]
    code, received, floors, wkb = sorted(rows)[0]
    assert received == D("2022-01-06") and floors == 4
    assert shapely.equals(shapely.from_wkb(bytes(wkb)), shapely.box(547930, 1770700, 547936, 1770718))
    assert store.rows_in_box("construction_permits", (0.0, 0.0, 1.0, 1.0), fields=["dossier_code"]) == []
    assert store.rows_in_box("sidewalks", (547935.0, 1770710.0, 547941.0, 1770711.0), fields=["sidewalk_id"]) == []


def _held_deleted_files(path) -> list[str]:
    """This process's open files that are ``path``'s replaced (deleted) versions (Linux ``/proc/self/fd``)."""
    import os

    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path)) and target.endswith("(deleted)"):
            held.append(target)
    return held


def test_gpkg_readers_release_a_replaced_file(tmp_path):
    """Idle read connections of any thread let go of a file a write replaced: its space is freed."""
    import os
    import shutil
    import threading

    from gisapp.store import gpkg

    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write({"construction_permits": permits()})
    # readers in other threads, now idle, each holding a connection to this version of the file
    threads = [threading.Thread(target=lambda: store.count("construction_permits")) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gpkg._READERS.open_count(store.path) >= 1 and not _held_deleted_files(store.path)
    # a write by this process: the old file is let go at once, no read needed
    store.write({"construction_permits": permits().iloc[:3]})
    assert _held_deleted_files(store.path) == []
    assert store.count("construction_permits") == 3
    # a write by another process (here: a copy moved over the file, as its write ends): the next read, in any
    # thread, closes every idle connection to the old file
    copy = tmp_path / "copy.gpkg"
    shutil.copy(store.path, copy)
    other = GeoPackageStore(copy)
    other.write({"construction_permits": permits().iloc[:2]})
    gpkg._READERS.release(copy)
    inode = os.stat(store.path).st_ino
    os.replace(copy, store.path)
    assert os.stat(store.path).st_ino != inode
    assert _held_deleted_files(store.path)  # the idle connection still holds the old inode ...
    assert store.count("construction_permits") == 2
    assert _held_deleted_files(store.path) == []  # ... until a read sees the new file


def test_gpkg_version_changes_with_an_in_place_write_in_the_same_clock_tick(demo_store):
    """Two small upserts written in place within one tick of the clock may leave the file's time and size as they
    were: the version still changes (SQLite's file change counter), so tiles and caches keyed by it do not go stale."""
    row = demo_store.read("construction_permits", limit=1)
    before, stat = demo_store.version(), demo_store.path.stat()
    demo_store.write({"construction_permits": row.assign(site_address="X" * len(str(row["site_address"].iloc[0])))},
                     mode="upsert")
    os.utime(demo_store.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as if within the same tick
    assert demo_store.path.stat().st_ino == stat.st_ino  # written in place, not replaced
    assert demo_store.version() != before
