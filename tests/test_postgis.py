"""PostGIS-specific: migrations, indexes and plans, transactions, errors, the CLI,
and equality with the GeoPackage store on the same data.

The shared behaviour is in ``tests/test_store.py`` (both backends).  Every
test here runs against a fresh database on the private server of
``tests/pg_server.py``.
"""

import datetime as dt
import threading
import uuid

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pyogrio
import pytest
import shapely
from click.testing import CliRunner

from gisapp import domain, geo, schema
from gisapp.analysis import overlaps as analysis
from gisapp.analysis.run import analyze_store
from gisapp.cli import cli
from gisapp.filters import Filter
from gisapp.formats import derive, geojson
from gisapp.importing.prepare import run_import
from gisapp.store import StoreError, migrations, open_store, postgis
from gisapp.store.gpkg import GeoPackageStore
from gisapp.store.postgis import HASHED_LAYERS, PostGISStore
from gisapp.web import maps
from tests.helpers import SCHEMA_5_LAYERS, drop_tables_after_schema_5
from tests.pg_server import free_port
from tests.stores import new_store

pytestmark = pytest.mark.postgis

D = dt.date.fromisoformat
WARDS = ["20260", "20305", "20306", "20311", "20312", "20314"]
STREETS = ["Cách Mạng Tháng Tám", "Ông Ích Đường", "Nguyễn Hữu Thọ", "Trường Chinh", "Lê Đại Hành",
           "Phạm Hùng", "Đường 100% mới", "Kiệt_12"]


# -- generated data -------------------------------------------------------------

def _lots(rng, n, size=(6, 18), spread=600.0):
    """``n`` lots near the Cẩm Lệ test point: boxes, some rotated, with holes, or in two parts."""
    x0, y0 = 547600.0, 1770400.0
    xs = x0 + rng.random(n) * spread
    ys = y0 + rng.random(n) * spread
    w = size[0] * (0.5 + rng.random(n))
    h = size[1] * (0.5 + rng.random(n))
    geoms = shapely.box(xs, ys, xs + w, ys + h)
    out = np.empty(n, dtype=object)
    for i, g in enumerate(geoms):
        shape = i % 10
        if shape == 1:
            g = shapely.affinity.rotate(g, rng.random() * 90)
        elif shape == 2:
            g = g.difference(g.centroid.buffer(min(w[i], h[i]) / 5, 4))
        elif shape == 3:
            g = shapely.MultiPolygon([g, shapely.affinity.translate(g, w[i] + 3, 0)])
        out[i] = g
    return out


def _maybe(rng, values, p_none=0.1):
    values = np.asarray(values, dtype=object)
    values[rng.random(len(values)) < p_none] = None
    return values


def construction(n=300, seed=1):
    """Construction permits with every field type, nulls, Vietnamese text and LIKE wildcards."""
    rng = np.random.default_rng(seed)
    received = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 180, n), unit="D")
    street = rng.choice(STREETS, n)
    frame = pd.DataFrame({
        "dossier_code": [f"XD-{i:05d}" for i in rng.permutation(n)],
        "permit_no": _maybe(rng, [f"{i}/GPXD" for i in range(n)]),
        "ward_code": rng.choice(WARDS, n),
        "status": rng.choice(list(domain.CODE_SETS["status"]), n),
        "procedure": rng.choice(list(domain.CODE_SETS["procedure"]), n),
        "work_category": rng.choice(["HOUSE", "OTHER"], n),
        "channel": rng.choice(list(domain.CODE_SETS["channel"]), n),
        "received_on": received,
        "due_on": received + pd.to_timedelta(21, unit="D"),
        "completed_on": pd.Series(received + pd.to_timedelta(rng.integers(5, 40, n), unit="D")).where(
            rng.random(n) < 0.7),
        "owner_name": [f"Nguyễn Văn {i}" for i in range(n)],
        "site_address": [f"{rng.integers(1, 400)} {s}" for s in street],
        "street": _maybe(rng, street),
        "map_sheet_no": rng.integers(1, 60, n).astype(str),
        "parcel_no": rng.integers(1, 900, n).astype(str),
        "plot_area_m2": np.where(rng.random(n) < 0.1, np.nan, rng.random(n) * 300),
        "floors": pd.array(np.where(rng.random(n) < 0.1, -1, rng.integers(1, 8, n)), dtype="Int64"),
        "height_m": rng.random(n) * 25 + 1 / 3,
    })
    frame["floors"] = frame["floors"].mask(frame["floors"] < 0)
    return gpd.GeoDataFrame(frame, geometry=_lots(rng, n), crs=schema.STORE_CRS)


def sidewalk(n=300, seed=2):
    """Sidewalk-use permits with periods, widths and links to construction dossiers."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 180, n), unit="D")
    frame = pd.DataFrame({
        "permit_no": [f"VH-{i:05d}" for i in range(n)],
        "ward_code": rng.choice(WARDS, n),
        "purpose": rng.choice(list(domain.CODE_SETS["purpose"]), n),
        "status": rng.choice(["RETURNED", "PROCESSING"], n),
        "channel": _maybe(rng, rng.choice(list(domain.CODE_SETS["channel"]), n)),
        "address": [f"{i} {s}" for i, s in enumerate(rng.choice(STREETS, n))],
        "street": rng.choice(STREETS, n),
        "start_on": start,
        "end_on": start + pd.to_timedelta(rng.integers(0, 60, n), unit="D"),
        "sidewalk_width_m": 3 + rng.random(n) * 3,
        "used_width_m": rng.random(n) * 2.5,
        "construction_dossier_code": _maybe(rng, [f"XD-{i:05d}" for i in rng.integers(0, n, n)], 0.5),
    })
    return gpd.GeoDataFrame(frame, geometry=_lots(rng, n, size=(2, 8)), crs=schema.STORE_CRS)


def wards():
    """Six ward rectangles covering the lots, one with an end of validity."""
    rows = []
    for i, code in enumerate(WARDS):
        x = 547600.0 + 100 * i
        rows.append({"ward_key": f"{code}-2020-01-01", "ward_code": code, "name": f"Phường {i}",
                     "valid_from": "2020-01-01", "valid_to": "2025-06-30" if i == 0 else None,
                     "approximate": i % 2, "geometry": shapely.box(x, 1770400, x + 100, 1771000)})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=schema.STORE_CRS)


def frames():
    return {"wards": wards(), "construction_permits": construction(), "sidewalk_permits": sidewalk()}


def web_bbox(x1, y1, x2, y2):
    """The WGS84 bounds of an EPSG:5899 box."""
    return geo.transform([shapely.box(x1, y1, x2, y2)], schema.STORE_CRS, schema.WEB_CRS)[0].bounds


@pytest.fixture
def pg(pg_url):
    """An empty PostGIS store in a fresh database."""
    return PostGISStore(pg_url, must_exist=False)


def _both(pg, path):
    gpkg = GeoPackageStore(path, must_exist=False)
    meta = {"as_of": "2022-07-08", "params": {"distance_m": 5.0, "min_clear_m": 1.5}}
    for store in (gpkg, pg):
        store.write(frames(), meta=meta)
    return gpkg, pg


@pytest.fixture
def both(pg, tmp_path):
    """A GeoPackage and a PostGIS store holding the same generated data."""
    return _both(pg, tmp_path / "s.gpkg")


@pytest.fixture(scope="module")
def both_readonly(pg_server, tmp_path_factory):
    """Like ``both``, shared by the tests of this module that only read."""
    name = pg_server.create_database()
    yield _both(PostGISStore(pg_server.url(name), must_exist=False), tmp_path_factory.mktemp("both") / "s.gpkg")
    postgis.close_pool(pg_server.url(name))
    pg_server.drop_database(name)


# -- migrations ---------------------------------------------------------------------

def test_upgrade_from_empty_then_idempotent(pg):
    assert pg.schema_version() == 0
    with pytest.raises(StoreError, match="has no gisapp schema; run 'gisapp db upgrade'"):
        pg.info()
    with pytest.raises(StoreError, match="has no gisapp schema"):
        open_store(pg.url)
    applied = pg.upgrade()
    assert [m.version for m in applied] == [m.version for m in migrations.MIGRATIONS]
    assert pg.schema_version() == migrations.LATEST
    assert pg.upgrade() == []
    assert {i.name: i.count for i in pg.info()} == dict.fromkeys(schema.LAYERS, 0)
    assert all(i.extent is None and i.crs == "EPSG:5899" for i in pg.info())
    with pg.connection() as con:
        rows = con.execute("SELECT version, description FROM schema_version ORDER BY version").fetchall()
    assert rows == [(m.version, m.description) for m in migrations.MIGRATIONS]


def test_upgrade_step_by_step_and_no_downgrade(pg):
    assert [m.version for m in pg.upgrade(1)] == [1]
    with pytest.raises(StoreError, match=f"schema version 1, this gisapp needs {migrations.LATEST}"):
        pg.read("wards")
    assert [m.version for m in pg.upgrade()] == [m.version for m in migrations.MIGRATIONS[1:]]
    assert len(pg.read("wards")) == 0
    with pytest.raises(StoreError, match="downgrading to 1 is not supported"):
        pg.upgrade(1)
    with pytest.raises(StoreError, match="unknown schema version 99"):
        pg.upgrade(99)


def test_concurrent_upgrades_apply_each_migration_once(pg_url):
    errors = []

    def run():
        try:
            PostGISStore(pg_url, must_exist=False).upgrade()
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert PostGISStore(pg_url, must_exist=False).schema_version() == migrations.LATEST


def test_first_write_creates_the_schema(pg):
    pg.write({"wards": wards()}, meta={"as_of": "2022-07-08"})
    assert pg.schema_version() == migrations.LATEST
    assert pg.count("wards") == 6 and pg.meta() == {"as_of": "2022-07-08"}


_PG_TYPES = {"text": "text", "int": "integer", "float": "double precision", "date": "date"}


def test_migrated_tables_match_the_layer_schema(pg):
    """A field added to gisapp/schema.py without a migration fails here."""
    pg.upgrade()
    with pg.connection() as con:
        for name, layer in schema.LAYERS.items():
            cols = con.execute(
                "SELECT column_name, data_type, udt_name, collation_name FROM information_schema.columns "
                "WHERE table_name = %s ORDER BY ordinal_position", [name]).fetchall()
            hashed = ["row_hash"] if name in HASHED_LAYERS else []
            assert [c[0] for c in cols] == [*layer.field_names, "search_text", "geom", "search_personal",
                                            "geometry_geojson", *hashed, "properties_json",
                                            "properties_personal"], name
            for (col, data_type, _, collation), f in zip(cols, layer.fields):
                assert data_type == _PG_TYPES[f.type], (name, col)
                assert collation == ("C" if f.type == "text" else None), (name, col)
            geom = con.execute("SELECT srid, type FROM geometry_columns WHERE f_table_name = %s", [name]).fetchone()
            assert geom == (5899, layer.geometry.upper())


def test_upgrade_to_6_fills_the_stored_geojson_as_a_fresh_write_does(pg, pg_url):
    """Schema 5, rows lacking their GeoJSON; upgraded, API pages and exports give the bytes of a fresh write."""
    from gisapp.formats import exports

    pg.write(frames(), meta={"as_of": "2022-07-08"})
    flt = Filter(statuses=("PROCESSING", "RETURNED"))
    layers = ["wards", "construction_permits", "sidewalk_permits"]
    fields = {name: schema.LAYERS[name].field_names for name in layers}

    def served():
        return {name: (pg.page(name, flt if name != "wards" else None, fields=fields[name][1:], limit=1000),
                       b"".join(exports.geojson_chunks(pg, name, flt if name != "wards" else None, fields[name])))
                for name in layers}

    fresh = served()
    with pg.connection() as con:
        drop_tables_after_schema_5(con)
        for name in SCHEMA_5_LAYERS:  # the column nullable, empty in rows written before it
            con.execute(f"ALTER TABLE {name} ALTER COLUMN geometry_geojson DROP NOT NULL")
            con.execute(f"UPDATE {name} SET geometry_geojson = NULL")
    postgis.close_pool(pg_url)
    with pytest.raises(StoreError, match=f"schema version 5, this gisapp needs {migrations.LATEST}; run 'gisapp db"):
        PostGISStore(pg_url)
    assert [m.version for m in pg.upgrade()] == [m.version for m in migrations.MIGRATIONS if m.version > 5]
    assert served() == fresh
    with pg.connection() as con:
        nullable = con.execute("SELECT DISTINCT is_nullable FROM information_schema.columns "
                               "WHERE column_name = 'geometry_geojson'").fetchall()
        assert nullable == [("NO",)]  # and a row without it is refused from now on


# -- indexes and plans ----------------------------------------------------------------

def _indexes(con, table):
    return dict(con.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table]).fetchall())


@pytest.mark.parametrize("written", [False, True], ids=["migrated", "after-replace"])
def test_gist_and_btree_indexes_exist(pg, written):
    pg.upgrade()
    if written:
        pg.write(frames())
        pg.write(frames())
    with pg.connection() as con:
        for name, layer in schema.LAYERS.items():
            ix = _indexes(con, name)
            assert "USING gist (geom)" in ix[f"ix_{name}_geom"]
            assert ix[f"ix_{name}_{layer.key}"].startswith("CREATE UNIQUE INDEX")
            assert f"USING btree ({layer.key})" in ix[f"ix_{name}_{layer.key}"]
            for col in ("ward_code", "status", "procedure", "channel", "purpose", "kind",
                        "received_on", "start_on", "end_on", "overlap_start"):
                if col in layer.field_names:
                    assert f"USING btree ({col})" in ix[f"ix_{name}_{col}"], (name, col)
        assert not con.execute("SELECT 1 FROM pg_class WHERE relname LIKE '%%\\_\\_load%%'").fetchall()


def _plan(store, layer, flt, **kw):
    lay = schema.get_layer(layer)
    where, params = store.where(lay, flt)
    query = f"EXPLAIN SELECT * FROM {layer}{where} ORDER BY {lay.key} LIMIT 1000"
    with store.connection() as con:
        return "\n".join(r[0] for r in con.execute(query, params))


def test_bbox_query_uses_the_gist_index_and_get_the_key_index(pg):
    big = construction(20_000, seed=7)
    big["geometry"] = _lots(np.random.default_rng(7), 20_000, spread=5000.0)
    pg.write({"construction_permits": big})
    bbox = web_bbox(548000, 1771000, 548100, 1771100)
    plan = _plan(pg, "construction_permits", Filter(bbox=bbox))
    assert "ix_construction_permits_geom" in plan, plan
    plan = _plan(pg, "construction_permits", Filter(bbox=bbox, wards=("20260",), q="ong ich"))
    assert "ix_construction_permits_geom" in plan, plan
    with pg.connection() as con:
        plan = "\n".join(r[0] for r in con.execute(
            "EXPLAIN SELECT * FROM construction_permits WHERE dossier_code = %s", ["XD-00001"]))
    assert "ix_construction_permits_dossier_code" in plan
    got = pg.read("construction_permits", Filter(bbox=bbox))
    expected = big[shapely.intersects(big.geometry.values, geo.bbox_polygon(bbox))]
    assert sorted(got["dossier_code"]) == sorted(expected["dossier_code"]) and len(got) > 0


# -- transactions -----------------------------------------------------------------------

def _snapshot(store):
    return ({i.name: (i.count, i.extent) for i in store.info()}, store.meta(),
            store.read("construction_permits")["dossier_code"].tolist(),
            store.read("sidewalk_permits")["status"].tolist())


@pytest.mark.parametrize("mode", ["replace", "upsert"])
def test_failed_write_changes_nothing(pg, monkeypatch, mode):
    pg.write(frames(), meta={"as_of": "2022-07-08"})
    before = _snapshot(pg)

    def boom(con, layer):
        if layer.name == "sidewalk_permits":  # the second layer of the write
            raise RuntimeError("disk full")

    monkeypatch.setattr(postgis, "_before_swap", boom)
    changed = sidewalk(50, seed=9).assign(status="REFUSED")
    with pytest.raises(RuntimeError, match="disk full"):
        pg.write({"construction_permits": construction(10, seed=3), "sidewalk_permits": changed},
                 mode=mode, meta={"as_of": "2099-01-01"})
    assert _snapshot(pg) == before
    with pg.connection() as con:
        assert not con.execute("SELECT relname FROM pg_class WHERE relname LIKE '%%load%%' "
                               "OR relname LIKE 'gisapp_upsert%%'").fetchall()
    monkeypatch.undo()
    pg.write({"sidewalk_permits": changed}, mode=mode)  # the connection is usable again
    assert (pg.read("sidewalk_permits", Filter(statuses=("REFUSED",))).shape[0] == 50)


def test_database_errors_are_store_errors_and_change_nothing(pg):
    pg.write(frames())
    dup = pd.concat([sidewalk(5), sidewalk(5)])
    with pytest.raises(StoreError, match="nothing was changed"):
        pg.write({"construction_permits": construction(3), "sidewalk_permits": dup}, mode="upsert")
    assert pg.count("construction_permits") == 300


def test_readers_see_the_old_data_until_the_commit(pg, monkeypatch):
    pg.write(frames())
    loaded, release = threading.Event(), threading.Event()

    def pause(con, layer):
        loaded.set()
        assert release.wait(30)

    monkeypatch.setattr(postgis, "_before_swap", pause)
    writer = threading.Thread(target=pg.write, args=({"construction_permits": construction(7, seed=5)},))
    writer.start()
    try:
        assert loaded.wait(30)
        reader = PostGISStore(pg.url)
        assert reader.count("construction_permits") == 300          # not blocked, old data
        assert len(reader.read("construction_permits", limit=5)) == 5
    finally:
        release.set()
        writer.join(30)
    assert pg.count("construction_permits") == 7
    assert {i.name: i.count for i in pg.info()}["construction_permits"] == 7


def test_replace_keeps_privileges(pg, pg_server):
    pg.write(frames())
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with pg.connection() as con:
        con.execute(f"CREATE ROLE {role} LOGIN")
        con.execute(f"GRANT SELECT ON construction_permits TO {role}")
    pg.write({"construction_permits": construction(5)})
    with pg.connection() as con:
        ok = con.execute("SELECT has_table_privilege(%s, 'construction_permits', 'SELECT'),"
                         " has_table_privilege(%s, 'construction_permits', 'INSERT')", [role, role]).fetchone()
    assert ok == (True, False)


# -- errors -----------------------------------------------------------------------------

def test_unreachable_server_is_one_clear_line():
    url = f"postgresql://gisapp:secret@127.0.0.1:{free_port()}/gisapp"
    with pytest.raises(StoreError, match=r"cannot connect to the PostGIS store postgresql://gisapp:\*\*\*@127") as err:
        open_store(url).info()
    assert "secret" not in str(err.value)
    for args in (["layers"], ["serve", "--port", "1"], ["db", "version"]):
        result = CliRunner().invoke(cli, ["--store", url, *args])
        assert result.exit_code == 2 and "cannot connect" in result.output and "Connection refused" in result.output
        assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
        assert "secret" not in result.output


def test_postgis_missing_and_not_creatable(pg_server):
    name = pg_server.create_database("nogis", postgis=False)
    role = f"app_{uuid.uuid4().hex[:8]}"
    with pg_server.connect() as con:
        con.execute(f"CREATE ROLE {role} LOGIN")
        con.execute(f"GRANT ALL ON DATABASE {name} TO {role}")
    url = pg_server.url(name).replace("postgres@", f"{role}@")
    try:
        with pytest.raises(StoreError, match=f"lacks the postgis extension and user '{role}' may not create it"):
            PostGISStore(url, must_exist=False).upgrade()
        admin = PostGISStore(pg_server.url(name), must_exist=False)  # a superuser creates the extension itself
        assert admin.upgrade() and admin.schema_version() == migrations.LATEST
    finally:
        postgis.close_pool(url)
        postgis.close_pool(pg_server.url(name))
        pg_server.drop_database(name)


def test_unknown_database_is_a_store_error(pg_server):
    with pytest.raises(StoreError, match="cannot connect.*does not exist"):
        PostGISStore(pg_server.url("no_such_db")).read("wards")


# -- same results as the GeoPackage store ---------------------------------------------------

FILTERS = [
    Filter(),
    Filter(wards=("20260", "20314")),
    Filter(statuses=("PROCESSING", "RETURNED"), channels=("ONLINE",)),
    Filter(procedures=("RENOVATION",)),
    Filter(purposes=("MATERIALS",)),
    Filter(date_from=D("2022-03-01")),
    Filter(date_to=D("2022-03-01")),
    Filter(date_from=D("2022-02-10"), date_to=D("2022-02-10")),
    Filter(date_from=D("2022-02-01"), date_to=D("2022-04-30"), wards=("20305",)),
    Filter(q="ong ich"),
    Filter(q="ĐƯỜNG"),
    Filter(q="100%"),
    Filter(q="kiet_1"),
    Filter(q="_"),
    Filter(q="xd-000"),
    Filter(q="vh-0001 thang"),
    Filter(q="nguyen van"),
    Filter(bbox=web_bbox(547700, 1770500, 547800, 1770600)),
    Filter(bbox=web_bbox(547600, 1770400, 548200, 1771000), statuses=("RETURNED",), q="truong"),
    Filter(bbox=(108.0, 15.0, 108.01, 15.01)),
]


def _same(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame):
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a.drop(columns="geometry").reset_index(drop=True),
                                  b.drop(columns="geometry").reset_index(drop=True), check_dtype=True)
    assert a.crs == b.crs
    assert list(shapely.to_wkb(a.geometry.values)) == list(shapely.to_wkb(b.geometry.values))


@pytest.mark.parametrize("layer", ["construction_permits", "sidewalk_permits", "wards"])
@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: "&".join(f"{k}={v}" for k, v in f.to_params().items()) or "all")
def test_same_features_and_geojson_as_geopackage(both_readonly, layer, flt):
    gpkg, pg = both_readonly
    a, b = gpkg.read(layer, flt), pg.read(layer, flt)
    _same(a, b)
    assert gpkg.count(layer, flt) == pg.count(layer, flt) == len(a)
    lay = schema.get_layer(layer)
    assert geojson.dumps_collection(a, lay) == geojson.dumps_collection(b, lay)
    _same(gpkg.read(layer, flt, limit=17, offset=5), pg.read(layer, flt, limit=17, offset=5))
    batches = list(pg.iter_batches(layer, flt, batch_size=40))
    expected = list(gpkg.iter_batches(layer, flt, batch_size=40))
    assert [len(x) for x in batches] == [len(x) for x in expected]
    for got, want in zip(batches, expected):
        _same(got, want)
    ta, tb = gpkg.read_arrow(layer, flt), pg.read_arrow(layer, flt)
    assert (ta is None) == (tb is None) == (len(a) == 0)
    if ta is not None:
        assert ta.schema.names == tb.schema.names and ta.schema.types == tb.schema.types
        assert ta.to_pydict() == tb.to_pydict()
    fields = [lay.key, lay.field_names[-1]]
    streamed = [b"".join(geojson.collection_chunks(store.iter_arrow(layer, flt, fields=fields, batch_size=33,
                                                                    limit=70, offset=3), lay, fields))
                for store in (gpkg, pg)]
    assert streamed[0] == streamed[1]


def test_same_info_meta_and_get(both_readonly):
    gpkg, pg = both_readonly
    for i, j in zip(gpkg.info(), pg.info()):
        assert (i.name, i.count, i.crs) == (j.name, j.count, j.crs)
        assert (i.extent is None) == (j.extent is None)
        if i.extent:
            assert i.extent == pytest.approx(j.extent, abs=0.25)  # the R-tree keeps float32 bounds
    assert gpkg.meta() == pg.meta()
    _same(gpkg.get("construction_permits", "XD-00042"), pg.get("construction_permits", "XD-00042"))
    _same(gpkg.get("wards", "nope"), pg.get("wards", "nope"))
    for layer in schema.LAYERS:
        assert gpkg.date_range(layer) == pg.date_range(layer)
    with pytest.raises(StoreError, match="has no field 'nope'"):
        next(pg.iter_arrow("wards", fields=["nope"]))


def test_same_after_upsert(both):
    gpkg, pg = both
    update = sidewalk(40, seed=11)
    update["permit_no"] = [f"VH-{i:05d}" for i in range(280, 320)]  # 20 replaced, 20 new
    for store in both:
        store.write({"sidewalk_permits": update}, mode="upsert", meta={"as_of": "2022-08-01"})
    _same(gpkg.read("sidewalk_permits"), pg.read("sidewalk_permits"))
    assert pg.count("sidewalk_permits") == 320 and gpkg.meta() == pg.meta()


@pytest.mark.parametrize("layer", ["construction_permits", "sidewalk_permits", "wards"])
@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: "&".join(f"{k}={v}" for k, v in f.to_params().items()) or "all")
def test_same_aggregates_as_geopackage(both_readonly, layer, flt):
    gpkg, pg = both_readonly
    for cell_m in (None, 7.0, 100.0):
        pd.testing.assert_frame_equal(gpkg.aggregate(layer, flt, cell_m=cell_m),
                                      pg.aggregate(layer, flt, cell_m=cell_m))


def test_same_ward_counts_on_the_map_as_geopackage(both_readonly):
    gpkg, pg = both_readonly
    for flt in (Filter(), Filter(bbox=web_bbox(547650, 1770400, 547950, 1770700)), Filter(wards=("20305", "20311"))):
        for layer in ("construction_permits", "sidewalk_permits"):
            assert maps.ward_aggregates(gpkg, layer, flt, 1) == maps.ward_aggregates(pg, layer, flt, 1)


def test_aggregate_puts_features_without_a_ward_last(both):
    findings = gpd.GeoDataFrame({
        "finding_id": ["F1", "F2", "F3", "F4"], "kind": ["CLASH"] * 4, "a_id": ["a"] * 4,
        "ward_code": [None, "20305", None, "20260"]},
        geometry=[shapely.box(547700 + 10 * i, 1770500, 547705 + 10 * i, 1770505) for i in range(4)],
        crs=schema.STORE_CRS)
    for store in both:
        store.write({"findings": findings})
    got = [store.aggregate("findings") for store in both]
    pd.testing.assert_frame_equal(*got)
    assert got[0]["ward_code"].tolist()[:2] == ["20260", "20305"] and pd.isna(got[0]["ward_code"].iloc[2])
    assert got[0]["count"].tolist() == [1, 1, 2]


def test_exists_is_the_schema_and_an_unreachable_server_is_an_error(pg):
    assert pg.exists() is False
    pg.upgrade()
    assert pg.exists() is True  # created (``gisapp db upgrade``), though still without data
    with pytest.raises(StoreError, match="cannot connect"):
        PostGISStore(f"postgresql://gisapp@127.0.0.1:{free_port()}/gisapp", must_exist=False).exists()


def test_seed_if_missing_never_seeds_over_a_store_that_needs_an_upgrade(pg):
    pg.upgrade(1)
    with pg.connection(check_schema=False) as con:
        con.execute("INSERT INTO wards (ward_key, ward_code, name, valid_from) VALUES ('k', '1', 'n', '2020-01-01')")
    result = CliRunner().invoke(cli, ["--store", pg.url, "seed", "--if-missing", "--no-analyze"])
    assert result.exit_code == 0, result.output
    assert "already exists; not seeding" in result.output
    assert pg.schema_version() == 1


def test_import_creates_a_new_store_and_asks_an_old_one_for_an_upgrade(pg, tmp_path, request):
    path = tmp_path / "wards.geojson"
    pyogrio.write_dataframe(wards().drop(columns=["ward_key"]), path)
    report = run_import(pg, "wards", path, calendar=domain.Calendar())
    assert report.written and pg.count("wards") == 6
    old = new_store("postgis", tmp_path, request)
    old.upgrade(1)
    with pytest.raises(StoreError, match="run 'gisapp db upgrade'"):
        run_import(old, "wards", path, calendar=domain.Calendar())


# -- metadata, aggregates -----------------------------------------------------------------

def test_meta_values_round_trip_and_merge(pg):
    meta = {"as_of": "2022-07-08", "nested": {"a": [1, 2.5, None, "Đà Nẵng"]}, "flag": True}
    pg.write({"wards": wards()}, meta=meta)
    pg.write({"wards": wards()}, meta={"flag": False, "when": D("2022-01-02")})
    assert pg.meta() == {**meta, "flag": False, "when": "2022-01-02"}


def test_aggregates_by_ward_and_grid(pg):
    pg.write(frames())
    flt = Filter(statuses=("RETURNED", "PROCESSING"))
    by_ward = pg.aggregate("construction_permits", flt)
    expected = pg.read("construction_permits", flt).groupby("ward_code").size()
    assert dict(zip(by_ward["ward_code"], by_ward["count"])) == expected.to_dict()
    grid = pg.aggregate("construction_permits", flt, cell_m=100)
    assert grid["count"].sum() == pg.count("construction_permits", flt)
    assert ((grid["x"] - 50) % 100 == 0).all() and ((grid["y"] - 50) % 100 == 0).all()
    bbox = web_bbox(547700, 1770500, 547800, 1770600)
    assert pg.aggregate("sidewalk_permits", Filter(bbox=bbox), cell_m=50)["count"].sum() == \
        pg.count("sidewalk_permits", Filter(bbox=bbox))
    with pytest.raises(StoreError, match="cell_m must be positive"):
        pg.aggregate("sidewalk_permits", cell_m=0)


# -- the command line ------------------------------------------------------------------------

def test_db_upgrade_and_version_commands(pg_url, tmp_path):
    run = lambda *args: CliRunner().invoke(cli, ["--store", pg_url, *args])  # noqa: E731
    result = run("db", "version")
    assert result.exit_code == 0 and f"schema version 0, latest {migrations.LATEST}" in result.output
    result = run("db", "upgrade", "--to", "1")
    assert result.exit_code == 0 and "applied 1:" in result.output
    assert f"(latest is {migrations.LATEST})" in result.output
    result = run("db", "upgrade")
    assert result.exit_code == 0 and f"applied {migrations.LATEST}:" in result.output
    result = run("db", "upgrade")
    assert result.exit_code == 0 and "already up to date" in result.output
    assert "up to date" in run("db", "version").output
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "s.gpkg"), "db", "version"])
    assert result.exit_code == 2 and "manages PostGIS stores" in result.output


def test_layers_command_against_postgis(pg):
    pg.write(frames(), meta={"as_of": "2022-07-08"})
    result = CliRunner().invoke(cli, ["--store", pg.url, "layers"])
    assert result.exit_code == 0, result.output
    assert "as of: 2022-07-08" in result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("construction_permits"))
    assert line.split()[1:3] == ["300", "EPSG:5899"]


def test_open_store_routes_postgresql_urls(pg_url):
    for url in (pg_url, pg_url.replace("postgresql://", "postgresql+psycopg://")):
        store = open_store(url, must_exist=False)
        assert isinstance(store, PostGISStore)
        assert store.schema_version() == 0
        postgis.close_pool(url)


def test_connections_are_pooled_and_survive_errors(pg):
    pg.write({"wards": wards()})
    with pg.connection() as con:
        first = con.info.backend_pid
    with pytest.raises(psycopg.errors.UndefinedTable):
        with pg.connection() as con:
            con.execute("SELECT * FROM no_such_table")
    with pg.connection() as con:
        assert con.info.backend_pid == first
    assert pg.count("wards") == 6


# -- the fast paths of a load ------------------------------------------------------------------

def test_ewkb_equals_shapely():
    geoms = geo.to_multipolygons(_lots(np.random.default_rng(4), 500))
    geoms[[3, 77]] = None
    geoms[5] = shapely.from_wkt("MULTIPOLYGON EMPTY")
    for part in (geoms, geoms[10:300], shapely.force_3d(geoms[:20]), np.array([None], dtype=object)):
        expected = shapely.to_wkb(shapely.set_srid(part, 5899), include_srid=True)
        assert postgis._ewkb(derive.geometry_wkb(part, multi=False)).to_pylist() == list(expected)


def test_a_load_stores_every_awkward_value_as_written(pg, demo_frames):
    """The binary COPY of a load: NULLs among a run of dates and numbers (first, middle, last field), empty
    texts apart from NULL ones, dates before 2000 and far ahead, negative and tiny floats, an integer NULL,
    texts beyond ASCII, a Polygon and no geometry, each stored as a row inserted value by value would store it."""
    frames_, meta = demo_frames
    cons = frames_["construction_permits"].head(40).copy().reset_index(drop=True)
    cons.loc[0, "received_on"] = pd.Timestamp("1970-01-01")
    cons.loc[1, "received_on"] = pd.Timestamp("1899-12-31")
    cons.loc[2, "due_on"] = pd.Timestamp("2999-06-30")
    cons.loc[3, ["due_on", "completed_on", "issued_on"]] = pd.NaT
    cons.loc[4, ["plot_area_m2", "floors"]] = [np.nan, np.nan]
    cons.loc[5, "height_m"] = np.nan
    cons.loc[6, ["plot_area_m2", "footprint_m2", "height_m"]] = [-1.5e-300, 1e300, -0.0]
    cons.loc[7, "site_address"] = ""
    cons.loc[8, ["site_address", "owner_name", "permit_no"]] = [None, "Ngô Thị 🏠 Ánh\t\\N", None]
    cons.loc[9, "street"] = "Đường \"Hoàng Diệu\", kiệt\n12"
    cons.loc[10, "geometry"] = shapely.Polygon([(547600, 1770400), (547610, 1770400), (547610, 1770410)])
    cons.loc[11, "geometry"] = None
    pg.write({"construction_permits": cons}, meta=meta)
    lay = schema.get_layer("construction_permits")
    got = pg.read("construction_permits").set_index("dossier_code").loc[cons["dossier_code"]].reset_index()
    want = schema.coerce(lay, cons)
    for f in lay.fields:
        a, b = got[f.name], want[f.name]
        assert (a.isna() == b.isna()).all(), f.name
        assert a[a.notna()].astype(str).tolist() == b[b.notna()].astype(str).tolist(), f.name
    assert list(shapely.to_wkb(got.geometry.values)) == list(shapely.to_wkb(geo.to_multipolygons(want.geometry.values)))
    with pg.connection() as con:
        stored = dict(con.execute("SELECT dossier_code, (search_text, search_personal, geometry_geojson, "
                                  "ST_SRID(geom))::text FROM construction_permits").fetchall())
        # the same row as an INSERT of its values, one by one
        con.execute("CREATE TEMP TABLE one_by_one (LIKE construction_permits)")
        texts = postgis._arrow_table(lay, want).to_pylist()
        columns = postgis._copy_columns(lay)
        marks = ", ".join("ST_GeomFromEWKB(%s)" if c == "geom" else "%s" for c in columns)
        for row in texts:
            con.execute(f"INSERT INTO one_by_one ({', '.join(columns)}) VALUES ({marks})", list(row.values()))
        differ = con.execute("SELECT count(*) FROM (SELECT * FROM construction_permits EXCEPT "
                             "SELECT * FROM one_by_one) d").fetchone()[0]
    assert differ == 0
    assert all(v.endswith(",5899)") for k, v in stored.items() if k != cons.loc[11, "dossier_code"])


# -- the overlap analysis of a PostGIS store (its layers read by COPY) --------------------------------

def _bowtie(x, y):
    return shapely.Polygon([(x, y), (x + 5, y + 5), (x + 5, y), (x, y + 5)])


def _shapes(rng, n, extent, size, x0=547600.0, y0=1770400.0):
    """Boxes, rotated boxes, boxes with holes, two-part MultiPolygons and triangles, densely packed."""
    xs, ys = x0 + rng.random(n) * extent, y0 + rng.random(n) * extent
    w, h = size * (0.3 + rng.random(n)), size * (0.3 + rng.random(n))
    out = np.empty(n, dtype=object)
    for i in range(n):
        g = shapely.box(xs[i], ys[i], xs[i] + w[i], ys[i] + h[i])
        k = i % 12
        if k == 1:
            g = shapely.affinity.rotate(g, rng.random() * 90)
        elif k == 2:
            g = g.difference(g.centroid.buffer(min(w[i], h[i]) / 4, 4))
        elif k == 3:
            g = shapely.MultiPolygon([g, shapely.affinity.translate(g, w[i] + 2, 1)])
        elif k == 4:
            g = shapely.Polygon(shapely.affinity.rotate(g, 30).exterior.coords[:4])
        out[i] = g
    return out


def analysis_case(seed=1, n_cons=250, n_side=400, extent=250.0):
    """Crowded dossiers and permits with every kind of finding and of bad input, and two ward periods.

    Wards: five Voronoi cells until 2023-06-30, two from 2023-07-01 (cutting
    parcels, so the largest part decides), plus wards without a code, with
    their period backwards and with an invalid polygon.  Dossiers: missing
    receipt dates, issue dates, declared wards (some blank), a bow-tie, a
    missing geometry.  Permits: links to the nearest parcel, missing or
    backwards periods, missing widths, a bow-tie, an empty polygon, two
    permits touching along an edge, one exactly 10 m from a parcel.
    """
    x0, y0 = 547600.0, 1770400.0
    rng = np.random.default_rng(seed)
    day0 = pd.Timestamp("2023-01-01")
    received = day0 + pd.to_timedelta(rng.integers(0, 365, n_cons), "D")
    issued = pd.Series(received + pd.to_timedelta(rng.integers(0, 40, n_cons), "D")).where(rng.random(n_cons) < 0.6)
    cons = gpd.GeoDataFrame({
        "dossier_code": [f"XD-{k:04d}" for k in rng.permutation(n_cons)],
        "ward_code": rng.choice(["W01", "W02", "W03", "W04", "N1", "N2", None], n_cons),
        "status": "PROCESSING", "procedure": "NEW_BUILD", "work_category": "HOUSE", "channel": "ONLINE",
        "received_on": pd.Series(received).where(rng.random(n_cons) > 0.02), "issued_on": issued,
    }, geometry=_shapes(rng, n_cons, extent, 16.0), crs=schema.STORE_CRS)
    cons.loc[cons.index[5], "geometry"] = _bowtie(x0 + 10, y0 + 10)
    cons.loc[cons.index[6], "geometry"] = None
    start = day0 + pd.to_timedelta(rng.integers(0, 400, n_side), "D")
    end = pd.Series(start + pd.to_timedelta(rng.integers(-3, 60, n_side), "D"))
    side = gpd.GeoDataFrame({
        "permit_no": [f"VH-{k:04d}" for k in range(n_side)],
        "ward_code": rng.choice(["W01", "W02", "N1"], n_side), "purpose": "MATERIALS", "status": "RETURNED",
        "start_on": pd.Series(start).where(rng.random(n_side) > 0.02), "end_on": end.where(rng.random(n_side) > 0.02),
        "sidewalk_width_m": np.where(rng.random(n_side) < 0.03, np.nan, np.round(2 + rng.random(n_side) * 3, 2)),
        "used_width_m": np.round(rng.random(n_side) * 3, 3), "construction_dossier_code": None,
    }, geometry=_shapes(rng, n_side, extent, 7.0), crs=schema.STORE_CRS)
    nearest = shapely.STRtree(cons.geometry.values[cons.geometry.notna()]).nearest(side.geometry.values)
    link = rng.random(n_side) < 0.4
    side.loc[link, "construction_dossier_code"] = cons["dossier_code"][cons.geometry.notna()].to_numpy()[nearest[link]]
    side.loc[side.index[7], "geometry"] = _bowtie(x0 + 50, y0 + 50)
    side.loc[side.index[8], "geometry"] = shapely.from_wkt("MULTIPOLYGON EMPTY")
    side.loc[side.index[9], "geometry"] = shapely.box(x0 + 300, y0, x0 + 305, y0 + 5)
    side.loc[side.index[10], "geometry"] = shapely.box(x0 + 305, y0, x0 + 310, y0 + 5)
    side.loc[side.index[9:11], ["start_on", "end_on"]] = [pd.Timestamp("2023-03-01"), pd.Timestamp("2023-03-10")]
    cons.loc[cons.index[11], "geometry"] = shapely.box(x0 + 300, y0 + 15, x0 + 310, y0 + 30)
    cons.loc[cons.index[11], ["received_on", "issued_on"]] = [pd.Timestamp("2023-02-01"), pd.NaT]
    frame = shapely.box(x0 - 20, y0 - 20, x0 + extent + 80, y0 + extent + 40)
    rows = []
    for prefix, count, valid_from, valid_to in (("W0", 5, "2000-01-01", "2023-06-30"), ("N", 2, "2023-07-01", None)):
        seeds = shapely.multipoints(np.column_stack([x0 + rng.uniform(0, extent, count),
                                                     y0 + rng.uniform(0, extent, count)]))
        for i, cell in enumerate(shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=frame))):
            code = f"{prefix}{i + 1}"
            rows.append({"ward_key": f"{code}-{valid_from}", "ward_code": code, "name": f"Phường {code}",
                         "valid_from": valid_from, "valid_to": valid_to, "geometry": shapely.intersection(cell, frame)})
    rows[-1]["name"] = None
    rows += [{"ward_key": "X9-2020", "ward_code": None, "valid_from": "2020-01-01", "geometry": frame},
             {"ward_key": "X8-2020", "ward_code": "X8", "valid_from": "2020-01-01", "valid_to": "2019-01-01",
              "geometry": frame},
             {"ward_key": "X7-2020", "ward_code": "X7", "valid_from": "2020-01-01", "geometry": _bowtie(x0, y0)}]
    wards_ = gpd.GeoDataFrame(rows, geometry="geometry", crs=schema.STORE_CRS)
    return {"wards": wards_, "construction_permits": cons, "sidewalk_permits": side}


def _geopandas_path(store, params):
    layers = {name: store.read(name) for name in ("construction_permits", "sidewalk_permits", "wards", "sidewalks")}
    return analysis.find_overlaps(layers["construction_permits"], layers["sidewalk_permits"], layers["wards"],
                                  params, sidewalks=layers["sidewalks"])


def assert_same_result(ref, got):
    """Same findings (ids, kinds, pairs, wards, dates, texts; areas and distances within 1e-6), skips, summary."""
    a = ref.findings.sort_values("finding_id").reset_index(drop=True)
    b = got.findings.sort_values("finding_id").reset_index(drop=True)
    assert list(a.columns) == list(b.columns) and a.dtypes.equals(b.dtypes) and b.crs == a.crs
    assert a["finding_id"].tolist() == b["finding_id"].tolist()
    close = ["overlap_area_m2", "distance_m"]
    pd.testing.assert_frame_equal(a.drop(columns=["geometry", *close]), b.drop(columns=["geometry", *close]))
    for name in close:
        np.testing.assert_allclose(b[name].to_numpy(float), a[name].to_numpy(float), rtol=1e-6, atol=1e-9)
    assert set(shapely.get_type_id(b.geometry.values)) <= {6}
    diff = shapely.area(shapely.symmetric_difference(a.geometry.values, b.geometry.values))
    assert (diff <= 1e-6 * np.maximum(shapely.area(a.geometry.values), 1.0)).all()
    # grouped by kind in KINDS order, as the geopandas path returns them
    ranks = got.findings["kind"].map({k: i for i, k in enumerate(analysis.KINDS)}).to_numpy()
    assert (np.diff(ranks) >= 0).all()
    pd.testing.assert_frame_equal(ref.skipped, got.skipped)
    pd.testing.assert_frame_equal(ref.summary, got.summary)


def test_store_analysis_equals_geopandas_on_the_demo(pg, demo_frames):
    frames_, meta = demo_frames
    pg.write(frames_, meta=meta)
    params = analysis.AnalysisParams(as_of=pg.as_of())
    ref, got = _geopandas_path(pg, params), analyze_store(pg, params)[0]
    assert set(got.findings["kind"]) == set(analysis.KINDS)
    assert_same_result(ref, got)


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("params", [
    dict(),
    dict(as_of=D("2023-09-01"), distance_m=3.0, gap_days=20, works_months=2, min_clearance_m=1.2),
    dict(distance_m=0.0, gap_days=0, works_months=0, min_clearance_m=0.0),
], ids=["defaults", "tight", "zeros"])
def test_store_analysis_equals_geopandas_on_generated_data(pg, seed, params):
    pg.write(analysis_case(seed))
    params = analysis.AnalysisParams(**params)
    ref, got = _geopandas_path(pg, params), analyze_store(pg, params)[0]
    if params.distance_m:
        assert {"MERGE_CANDIDATE", "LINKED", "CLASH", "OPPORTUNITY", "CLEARANCE", "WARD_MISMATCH"} <= \
            set(got.findings["kind"])
    assert len(got.skipped) > 10
    assert_same_result(ref, got)


def test_a_whole_layer_read_by_copy_keeps_line_breaks_quotes_and_dates(pg, demo_frames):
    """The analysis's read (one COPY as CSV, over 1 MB so that Arrow reads it in blocks): texts typed on two lines,
    with quotes and commas, come back as written (it fails without Arrow's ``newlines_in_values``)."""
    frames_, meta = demo_frames
    cons = frames_["construction_permits"].copy()
    cons["site_address"] = [f'Tổ {i},\nkiệt "K12"\r\n' + " ".join(["Hòa Thọ Tây"] * 40) for i in range(len(cons))]
    pg.write({"construction_permits": cons}, meta=meta)
    whole = pg.read_arrow("construction_permits", fields=["dossier_code", "site_address", "received_on"])
    want = cons.sort_values("dossier_code")
    assert whole.column("dossier_code").to_pylist() == want["dossier_code"].tolist()
    assert whole.column("site_address").to_pylist() == want["site_address"].tolist()
    assert whole.column("received_on").to_pylist() == [d.date() for d in want["received_on"]]


def test_store_analysis_of_an_empty_store(pg):
    pg.upgrade()
    ref, got = _geopandas_path(pg, analysis.AnalysisParams()), analyze_store(pg, analysis.AnalysisParams())[0]
    assert len(got.findings) == 0
    assert_same_result(ref, got)


def test_store_analysis_overlapping_wards_lower_key_wins(pg):
    """Two wards in force at once, B inside A: a parcel inside B is A's (both contain it, A has the lower key).

    Read by COPY (hex WKB decoded by numpy) and analysed as the layers read by ``store.read`` are.
    """
    x0, y0 = 547600.0, 1770400.0
    wards_ = gpd.GeoDataFrame({
        "ward_key": ["A-2020", "B-2020"], "ward_code": ["A1", "B1"], "name": ["Phường A", "Phường B"],
        "valid_from": ["2020-01-01", "2020-01-01"]},
        geometry=[shapely.box(x0, y0, x0 + 400, y0 + 400), shapely.box(x0 + 100, y0 + 100, x0 + 200, y0 + 200)],
        crs=schema.STORE_CRS)
    parcels = [shapely.box(x0 + 120, y0 + 120, x0 + 130, y0 + 130),  # in B (and A), declared B1: A1 wins
               shapely.box(x0 + 140, y0 + 140, x0 + 150, y0 + 150),  # in B (and A), declared A1: right
               shapely.box(x0 + 300, y0 + 300, x0 + 310, y0 + 310)]  # in A only, declared A1: right
    cons = gpd.GeoDataFrame({
        "dossier_code": ["XD-1", "XD-2", "XD-3"], "ward_code": ["B1", "A1", "A1"], "status": "PROCESSING",
        "procedure": "NEW_BUILD", "work_category": "HOUSE", "channel": "ONLINE",
        "received_on": pd.Timestamp("2023-01-01")}, geometry=parcels, crs=schema.STORE_CRS)
    side = gpd.GeoDataFrame({
        "permit_no": ["VH-1"], "ward_code": ["B1"], "purpose": "MATERIALS", "status": "RETURNED",
        "start_on": pd.Timestamp("2023-01-05"), "end_on": pd.Timestamp("2023-01-20"),
        "sidewalk_width_m": 3.0, "used_width_m": 2.0},
        geometry=[shapely.box(x0 + 120, y0 + 131, x0 + 125, y0 + 133)], crs=schema.STORE_CRS)
    pg.write({"wards": wards_, "construction_permits": cons, "sidewalk_permits": side})
    params = analysis.AnalysisParams()
    ref, got = _geopandas_path(pg, params), analyze_store(pg, params)[0]
    mismatch = got.findings[got.findings["kind"] == "WARD_MISMATCH"]
    assert mismatch[["a_id", "b_id", "ward_code"]].values.tolist() == [["XD-1", "A-2020", "A1"]]
    assert set(got.findings["ward_code"]) == {"A1"}
    assert_same_result(ref, got)


def test_cli_against_postgis_seed_layers_analyze_export(pg, tmp_path, demo_frames):
    run = lambda *args: CliRunner().invoke(cli, ["--store", pg.url, *args])  # noqa: E731
    result = run("seed")
    assert result.exit_code == 0, result.output
    frames_, _ = demo_frames
    counts = {i.name: i.count for i in pg.info()}
    assert counts["construction_permits"] == len(frames_["construction_permits"])
    pg.write({"findings": analysis.empty_findings()})  # 'seed' may analyse too: start from none
    result = run("layers")
    assert result.exit_code == 0 and "construction_permits" in result.output
    result = run("analyze")
    assert result.exit_code == 0, result.output
    assert "reading " in result.output  # read (one COPY per layer) and analysed in Python, as a GeoPackage is
    stored = pg.read("findings")
    params = analysis.AnalysisParams(as_of=pg.as_of())
    assert sorted(stored["finding_id"]) == sorted(_geopandas_path(pg, params).findings["finding_id"])
    assert pg.meta()["findings"]["counts"]["LINKED"] == (stored["kind"] == "LINKED").sum()
    out = tmp_path / "x.geojson"
    result = run("export", "construction_permits", "-o", str(out), "--ward", "20260")
    assert result.exit_code == 0, result.output
    gpkg = GeoPackageStore(tmp_path / "same.gpkg", must_exist=False)
    gpkg.write({name: pg.read(name) for name in schema.LAYERS}, meta=pg.meta())
    out2 = tmp_path / "y.geojson"
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "same.gpkg"), "export", "construction_permits",
                                      "-o", str(out2), "--ward", "20260"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == out2.read_bytes() and b'"FeatureCollection"' in out.read_bytes()


# -- pages: filter first or the key order, the same rows; loads frozen -------------------------------------------

@pytest.mark.parametrize("flt", [Filter(statuses=("PROCESSING",)), Filter(wards=("20260",), statuses=("RETURNED",)),
                                 Filter(procedures=("NEW_BUILD", "RENOVATION")), Filter(q="ong ich")])
@pytest.mark.parametrize("limit, offset", [(7, 0), (7, 14), (1000, 0), (5, 10_000)])
def test_a_page_read_filter_first_is_the_page_of_the_key_order(both_readonly, monkeypatch, flt, limit, offset):
    gpkg, pg = both_readonly
    fields = ["status", "ward_code", "received_on"]
    pages = {}
    for first in (True, False):  # every filter is "selective" / none is
        monkeypatch.setattr(postgis, "FILTER_FIRST_MAX_ROWS", float("inf") if first else -1)
        pages[first] = pg.page("construction_permits", flt, fields=fields, limit=limit, offset=offset)
    expected = gpkg.page("construction_permits", flt, fields=fields, limit=limit, offset=offset)
    assert expected.matched > 0
    for page in pages.values():
        assert page.matched == expected.matched
        assert [(*r[:3], str(r[3])) for r in page.rows] == [(*r[:3], str(r[3])) for r in expected.rows]


def test_a_replaced_layer_is_loaded_frozen(both_readonly):
    _, pg = both_readonly
    with pg.connection() as con:  # ANALYZE (in the write) counted the all-visible pages of the visibility map
        for name in ("construction_permits", "sidewalk_permits"):
            pages, visible = con.execute("SELECT relpages, relallvisible FROM pg_class WHERE relname = %s",
                                         [name]).fetchone()
            assert pages > 0 and visible == pages, (name, pages, visible)
