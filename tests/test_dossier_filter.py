"""A dossier's page by exact match: the sidewalk permits naming a dossier (``Filter.dossiers``, the API's
``construction_dossier_code``) and the findings naming a feature (``Filter.involving``), on both backends:
what they select, the indexes their queries are planned on, PostGIS migration 17 and older GeoPackage files,
and the dossier's page, popup and API answers."""

import sqlite3

import geopandas as gpd
import orjson
import pytest
import shapely

from gisapp import domain, schema
from gisapp.analysis import stats
from gisapp.errors import FilterError
from gisapp.filters import EXACT_MAX, Filter, parse_filter
from gisapp.store import StoreError, migrations, postgis
from gisapp.store.gpkg import GeoPackageStore
from gisapp.web.app import create_app
from tests.helpers import assert_error, permits
from tests.stores import BACKENDS, new_store

SIDEWALK, FINDINGS = "sidewalk_permits", "findings"
X0, Y0 = 547900.0, 1770700.0
#: Dossier codes that are substrings of one another (a search for the first finds all three).
CODES = ("XD-1", "XD-12", "XD-123")
#: Sidewalk permits naming each code (by permit number), crafted below; the others name ``XD-00nn`` or none.
NAMING = {"XD-1": ["VH-0001", "VH-0002", "VH-0300"], "XD-12": ["VH-0003"], "XD-123": []}
INDEXES = {SIDEWALK: ["ix_sidewalk_permits_construction_dossier_code"], FINDINGS: ["ix_findings_a_id",
                                                                                   "ix_findings_b_id"]}


def dossiers():
    """40 dossiers, three of them with the codes of :data:`CODES` (next to each other on the street)."""
    frame = permits(40)
    frame.loc[:2, "dossier_code"] = list(CODES)
    return frame


def sidewalk_permits(n=400):
    """``n`` permits, a quarter naming a dossier ``XD-00nn``, and the crafted ones: those of :data:`NAMING`, one
    whose address (a searched text) holds ``XD-1``, one naming ``xd-1`` (another code: codes are exact)."""
    rows = []
    for i in range(n):
        rows.append({
            "permit_no": f"VH-{i:04d}", "ward_code": "20260", "purpose": "BUSINESS", "status": "RETURNED",
            "start_on": "2022-03-01", "end_on": "2022-03-10", "sidewalk_width_m": 4.0, "used_width_m": 1.0,
            "address": f"{i} Cách Mạng Tháng Tám",
            "construction_dossier_code": f"XD-{i % 40:04d}" if i % 4 == 0 else None,
            "geometry": shapely.box(X0 + 10 * i, Y0 - 4, X0 + 10 * i + 5, Y0 - 1)})
    frame = gpd.GeoDataFrame(rows, geometry="geometry", crs=schema.STORE_CRS)
    for code, numbers in NAMING.items():
        frame.loc[frame["permit_no"].isin(numbers), "construction_dossier_code"] = code
    frame.loc[frame["permit_no"] == "VH-0005", "address"] = "Trước công trình XD-1, Cách Mạng Tháng Tám"
    frame.loc[frame["permit_no"] == "VH-0006", "construction_dossier_code"] = "xd-1"
    return frame


def findings():
    """Findings naming the crafted codes and permits as ``a_id`` or ``b_id`` (and ids that hold them as text)."""
    rows = [("LK-1", "LINKED", "XD-1", "VH-0001"), ("LK-2", "LINKED", "XD-1", "VH-0002"),
            ("MC-1", "MERGE_CANDIDATE", "XD-12", "VH-0003"), ("MC-2", "MERGE_CANDIDATE", "VH-0009", "XD-1"),
            ("CL-1", "CLASH", "VH-0001", "VH-0002"), ("CL-2", "CLASH", "VH-0002", "VH-0012"),
            ("WM-1", "WARD_MISMATCH", "XD-123", "20260"), ("UP-1", "UNPERMITTED", "I-XD-1", None),
            ("CR-1", "CLEARANCE", "VH-0010", None)]
    rows += [(f"CL-{i:03d}", "CLASH", f"VH-{i + 100:04d}", f"VH-{i + 101:04d}") for i in range(300)]
    return gpd.GeoDataFrame(
        [{"finding_id": f, "kind": k, "a_id": a, "b_id": b, "ward_code": "20260", "overlap_start": "2022-03-01",
          "overlap_end": "2022-03-10", "geometry": shapely.box(X0, Y0 - 4, X0 + 5, Y0 - 1)} for f, k, a, b in rows],
        geometry="geometry", crs=schema.STORE_CRS)


def frames():
    return {"construction_permits": dossiers(), SIDEWALK: sidewalk_permits(), FINDINGS: findings()}


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory):
    """The layers of :func:`frames` in a store of each backend, shared by the module's tests: they only read."""
    s = new_store(request.param, tmp_path_factory.mktemp("dossier-filter"), request)
    s.write(frames(), meta={"as_of": "2022-07-08"})
    return s


def backend_of(store) -> str:
    return "gpkg" if isinstance(store, GeoPackageStore) else "postgis"


def old_linked(store, code: str) -> list[str]:
    """The linked permits as the dossier's page found them before: a search for the code, then the exact ones."""
    found = store.read(SIDEWALK, Filter(q=code))
    return found[found["construction_dossier_code"] == code]["permit_no"].tolist()


def old_findings(store, key: str) -> list[str]:
    found = store.read(FINDINGS, Filter(q=key))
    return found[(found["a_id"] == key) | (found["b_id"] == key)]["finding_id"].tolist()


# -- what the filters select ------------------------------------------------------------

@pytest.mark.parametrize("codes", [("XD-1",), ("XD-12",), ("XD-123",), ("XD-9999",), ("xd-1",), ("XD",),
                                   ("XD-1", "XD-123", "XD-0004"), ("",)])
def test_the_dossier_filter_selects_exactly_the_permits_naming_the_codes(store, codes):
    frame = sidewalk_permits()
    expected = sorted(frame.loc[frame["construction_dossier_code"].isin(codes), "permit_no"])
    flt = Filter(dossiers=codes)
    got = store.read(SIDEWALK, flt)
    assert got["permit_no"].tolist() == expected
    assert (got["construction_dossier_code"].isin(codes)).all()
    assert store.count(SIDEWALK, flt) == len(expected)
    page = store.page(SIDEWALK, flt, fields=["construction_dossier_code"], limit=2, offset=1)
    assert page.matched == len(expected) and [r[0] for r in page.rows] == expected[1:3]
    if codes == ("XD-1",):  # a search finds more (XD-12, XD-123, xd-1, the address); the exact match only these
        assert expected == NAMING["XD-1"] and store.count(SIDEWALK, Filter(q="XD-1")) > len(expected) + 2
    if len(codes) == 1:
        assert expected == old_linked(store, codes[0])


def test_the_dossier_filter_leaves_other_layers_alone(store):
    # a field the layer lacks restricts nothing, as for the other filters (the API refuses the parameter there)
    assert store.count("construction_permits", Filter(dossiers=("XD-1",))) == 40
    assert store.count(FINDINGS, Filter(dossiers=("XD-1",))) == len(findings())
    assert store.count(SIDEWALK, Filter(involving=("VH-0001",))) == len(sidewalk_permits())


@pytest.mark.parametrize("ids", [("XD-1",), ("XD-12",), ("XD-123",), ("VH-0001",), ("VH-0002",), ("VH-0010",),
                                 ("20260",), ("I-XD-1",), ("XD-9999",), ("VH-0001", "XD-12")])
def test_the_involving_filter_selects_the_findings_naming_the_ids(store, ids):
    frame = findings()
    expected = sorted(frame.loc[frame["a_id"].isin(ids) | frame["b_id"].isin(ids), "finding_id"])
    flt = Filter(involving=ids)
    got = store.read(FINDINGS, flt)
    assert got["finding_id"].tolist() == expected
    assert store.count(FINDINGS, flt) == len(expected)
    assert store.page(FINDINGS, flt, fields=["kind"], limit=100).matched == len(expected)
    if len(ids) == 1:
        assert expected == old_findings(store, ids[0])
    if ids == ("XD-1",):  # as a_id and as b_id, not within "I-XD-1"
        assert expected == ["LK-1", "LK-2", "MC-2"]


def test_the_api_parameter_is_read_exactly_and_only_where_the_property_is():
    side = schema.LAYERS[SIDEWALK]
    flt, _ = parse_filter({"construction_dossier_code": ["XD-1, XD-12,XD-1", "xd-1"]}, "api", layer=side)
    assert flt == Filter(dossiers=("XD-1", "XD-12", "xd-1"))  # as given, once each, in order: codes are exact
    assert parse_filter({"construction_dossier_code": ""}, "api", layer=side)[0] == Filter()
    with pytest.raises(FilterError, match="construction_dossier_code: unknown parameter"):
        parse_filter({"construction_dossier_code": "XD-1"}, "api", layer=schema.LAYERS[FINDINGS])
    with pytest.raises(FilterError, match="construction_dossier_code: unknown parameter"):
        parse_filter({"construction_dossier_code": "XD-1"}, "tiles")  # the map's surfaces have no such filter
    assert parse_filter({"construction_dossier_code": "XD-1"}, "page")[0] == Filter()


# -- plans and indexes -----------------------------------------------------------------

def _plan(store, layer: str, flt: Filter) -> str:
    """The plans of the store's read and page queries of ``layer`` with ``flt`` (their WHERE, key order)."""
    lay = schema.LAYERS[layer]
    if isinstance(store, GeoPackageStore):
        with sqlite3.connect(store.path) as con:
            where, params = store._where(con, lay, flt)
            plans = [" ".join(r[-1] for r in con.execute(f'EXPLAIN QUERY PLAN SELECT * FROM "{layer}"{where} '
                                                          f"ORDER BY {lay.key}{tail}", [*params, *more]))
                     for tail, more in (("", []), (" LIMIT ? OFFSET ?", [100, 0]))]
            plans.append(" ".join(r[-1] for r in con.execute(
                f'EXPLAIN QUERY PLAN SELECT count(*) FROM "{layer}"{where}', params)))
        return "\n".join(plans)
    with store.connection() as con, con.transaction():
        con.execute("SET LOCAL enable_seqscan = off")  # a few hundred rows: the planner would read them all
        query, params = store._query(lay, lay.field_names, flt)
        return "\n".join(r[0] for r in con.execute(f"EXPLAIN {query}", params))


def _index_sql(store, name: str) -> str | None:
    if isinstance(store, GeoPackageStore):
        with sqlite3.connect(store.path) as con:
            row = con.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", [name]).fetchone()
    else:
        with store.connection(check_schema=False) as con:
            row = con.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name]).fetchone()
    return None if row is None else row[0]


def test_the_filters_are_planned_on_their_indexes(store):
    plan = _plan(store, SIDEWALK, Filter(dossiers=("XD-1",)))
    for part in plan.split("\n") if backend_of(store) == "gpkg" else [plan]:
        assert "ix_sidewalk_permits_construction_dossier_code" in part, plan
    plan = _plan(store, FINDINGS, Filter(involving=("XD-1",)))
    for part in plan.split("\n") if backend_of(store) == "gpkg" else [plan]:
        assert "ix_findings_a_id" in part and "ix_findings_b_id" in part, plan
    # the dossier code's index holds only the permits naming a dossier
    assert "WHERE" in _index_sql(store, "ix_sidewalk_permits_construction_dossier_code")
    assert "IS NOT NULL" in _index_sql(store, "ix_sidewalk_permits_construction_dossier_code")


@pytest.mark.parametrize("replace", [False, True], ids=["new-file", "replace-in-place"])
def test_geopackage_layers_written_by_gdal_children_get_the_indexes(tmp_path, monkeypatch, replace):
    # the load's path: large layers written by GDAL in child processes that build their indexes, moved in
    from gisapp.store import gpkg as gpkg_store

    monkeypatch.setattr(gpkg_store, "CHILD_ROWS", 1)
    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write(frames())
    if replace:
        store.write({SIDEWALK: sidewalk_permits(), FINDINGS: findings().iloc[::-1]})
    assert "IS NOT NULL" in _index_sql(store, INDEXES[SIDEWALK][0])
    assert "ix_sidewalk_permits_construction_dossier_code" in _plan(store, SIDEWALK, Filter(dossiers=("XD-1",)))
    assert "ix_findings_b_id" in _plan(store, FINDINGS, Filter(involving=("XD-1",)))
    assert store.read(SIDEWALK, Filter(dossiers=("XD-1",)))["permit_no"].tolist() == NAMING["XD-1"]
    assert store.read(FINDINGS, Filter(involving=("XD-1",)))["finding_id"].tolist() == ["LK-1", "LK-2", "MC-2"]


def test_migration_17_adds_the_indexes_to_an_existing_database(tmp_path, request):
    pg = new_store("postgis", tmp_path, request)
    pg.write(frames(), meta={"as_of": "2022-07-08"})
    before = {code: pg.read(SIDEWALK, Filter(dossiers=(code,)))["permit_no"].tolist() for code in CODES}
    with pg.connection() as con:  # a database of schema 16: migration 16 had dropped the dossier code's index
        for names in INDEXES.values():
            for name in names:
                con.execute(f"DROP INDEX {name}")
        con.execute("DELETE FROM schema_version WHERE version = 17")
    postgis.close_pool(pg.url)
    assert _index_sql(pg, INDEXES[SIDEWALK][0]) is None
    with pytest.raises(StoreError, match=f"schema version 16, this gisapp needs {migrations.LATEST}"):
        pg.read(SIDEWALK)
    assert [m.version for m in pg.upgrade()] == [17]
    for names in INDEXES.values():
        assert all(_index_sql(pg, name) for name in names)
    assert "WHERE (construction_dossier_code IS NOT NULL)" in _index_sql(pg, INDEXES[SIDEWALK][0])
    assert "ix_sidewalk_permits_construction_dossier_code" in _plan(pg, SIDEWALK, Filter(dossiers=("XD-1",)))
    assert {code: pg.read(SIDEWALK, Filter(dossiers=(code,)))["permit_no"].tolist() for code in CODES} == before
    # a replace of the layers keeps them (the load builds the old table's indexes on the new one)
    pg.write({SIDEWALK: sidewalk_permits(), FINDINGS: findings()})
    assert "WHERE (construction_dossier_code IS NOT NULL)" in _index_sql(pg, INDEXES[SIDEWALK][0])
    assert _index_sql(pg, "ix_findings_a_id") and _index_sql(pg, "ix_findings_b_id")


def test_an_older_geopackage_gets_the_indexes_when_its_layers_are_written_again(tmp_path):
    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write(frames())
    with sqlite3.connect(store.path) as con:  # as the ninth session's gisapp wrote it: none of the three
        for names in INDEXES.values():
            for name in names:
                con.execute(f'DROP INDEX "{name}"')
    without = GeoPackageStore(store.path)
    assert without.read(SIDEWALK, Filter(dossiers=("XD-1",)))["permit_no"].tolist() == NAMING["XD-1"]
    assert without.read(FINDINGS, Filter(involving=("XD-1",)))["finding_id"].tolist() == ["LK-1", "LK-2", "MC-2"]
    assert "ix_sidewalk_permits_construction_dossier_code" not in _plan(without, SIDEWALK, Filter(dossiers=("XD-1",)))
    without.write({SIDEWALK: sidewalk_permits(), FINDINGS: findings()})
    for names in INDEXES.values():
        assert all(_index_sql(without, name) for name in names)
    assert without.read(SIDEWALK, Filter(dossiers=("XD-1",)))["permit_no"].tolist() == NAMING["XD-1"]
    with sqlite3.connect(store.path) as con:  # a file from before the ninth session: the index of every code
        con.execute('DROP INDEX "ix_sidewalk_permits_construction_dossier_code"')
        con.execute('CREATE INDEX "ix_sidewalk_permits_construction_dossier_code" ON "sidewalk_permits" '
                    "(construction_dossier_code)")
    old = GeoPackageStore(store.path)
    assert "ix_sidewalk_permits_construction_dossier_code" in _plan(old, SIDEWALK, Filter(dossiers=("XD-1",)))
    assert old.read(SIDEWALK, Filter(dossiers=("XD-1",)))["permit_no"].tolist() == NAMING["XD-1"]


def test_an_older_geopackage_gets_the_indexes_with_its_next_write_in_place(tmp_path, monkeypatch):
    """An office's file gets the indexes with its next save or findings update (a patch of a few rows), not
    only when a layer is written whole."""
    from gisapp.store import base

    monkeypatch.setattr(base, "REPLACE_DETAIL_MAX", 20)  # the 309 findings count as large: a change is a patch
    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write(frames())
    with sqlite3.connect(store.path) as con:
        for names in INDEXES.values():
            for name in names:
                con.execute(f'DROP INDEX "{name}"')
    one = sidewalk_permits().iloc[[7]].assign(address="7 Cách Mạng Tháng Tám (sửa)")
    GeoPackageStore(store.path).write({SIDEWALK: one}, mode="upsert")  # an officer's save
    saved = GeoPackageStore(store.path)
    assert _index_sql(saved, INDEXES[SIDEWALK][0]) and not any(_index_sql(saved, n) for n in INDEXES[FINDINGS])
    assert "ix_sidewalk_permits_construction_dossier_code" in _plan(saved, SIDEWALK, Filter(dossiers=("XD-1",)))
    changed = findings()
    changed.loc[changed["finding_id"] == "CR-1", "overlap_end"] = "2022-03-11"
    saved.write({FINDINGS: changed}, mode="replace")  # an analysis that changed one finding
    updated = GeoPackageStore(store.path)
    assert all(_index_sql(updated, name) for name in INDEXES[FINDINGS])
    assert updated.read(FINDINGS, Filter(involving=("XD-1",)))["finding_id"].tolist() == ["LK-1", "LK-2", "MC-2"]
    assert updated.read(SIDEWALK, Filter(dossiers=("XD-1",)))["permit_no"].tolist() == NAMING["XD-1"]


# -- the dossier's page, its popup and the API -----------------------------------------------

@pytest.fixture
def client(store):
    return create_app({"STORE": store.url, "TESTING": True, "BASEMAP": "none"}).test_client()


@pytest.mark.parametrize("code", [*CODES, "XD-0004", "XD-0005"])
def test_the_dossier_page_shows_the_same_linked_permits_and_findings(store, client, code):
    detail = stats.permit_detail(store, code, domain.Calendar())
    linked = [s["permit_no"] for s in detail.linked]
    found = [f["finding_id"] for f in detail.findings]
    assert linked == old_linked(store, code) and found == old_findings(store, code)
    frame = sidewalk_permits()
    assert linked == sorted(frame.loc[frame["construction_dossier_code"] == code, "permit_no"])
    assert not set(linked) & {s["permit_no"] for s in detail.nearby}
    popup = orjson.loads(client.get(f"/data/construction_permits/{code}.json").get_data())
    assert popup["linked"] == linked and popup["findings"] == len(found)
    page = client.get(f"/permits/{code}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert all(f"/permits/{no}" in html for no in linked) and all(f in html for f in found)
    if code == "XD-1":
        assert linked == NAMING["XD-1"] and found == ["LK-1", "LK-2", "MC-2"]


def test_the_sidewalk_permit_page_shows_the_same_findings(store, client):
    for number in ("VH-0001", "VH-0002", "VH-0010", "VH-0399"):
        detail = stats.sidewalk_detail(store, number)
        assert [f["finding_id"] for f in detail.findings] == old_findings(store, number)
    assert [f["finding_id"] for f in stats.sidewalk_detail(store, "VH-0002").findings] == ["CL-1", "CL-2", "LK-2"]
    assert client.get("/permits/VH-0002").status_code == 200


def test_the_api_selects_sidewalk_permits_by_their_dossier_code(store, client):
    items = "/api/collections/sidewalk_permits/items"
    fc = orjson.loads(client.get(f"{items}?construction_dossier_code=XD-1&limit=1000").get_data())
    assert [f["id"] for f in fc["features"]] == NAMING["XD-1"] and fc["numberMatched"] == 3
    assert {f["properties"]["construction_dossier_code"] for f in fc["features"]} == {"XD-1"}
    fc = orjson.loads(client.get(f"{items}?construction_dossier_code=XD-12,XD-123&limit=1000").get_data())
    assert [f["id"] for f in fc["features"]] == NAMING["XD-12"]
    fc = orjson.loads(client.get(f"{items}?construction_dossier_code=XD-9999").get_data())
    assert fc["numberMatched"] == 0 and fc["features"] == []
    fc = orjson.loads(client.get(f"{items}?construction_dossier_code=XD-1&construction_dossier_code=XD-12"
                                 "&limit=1").get_data())
    assert fc["numberMatched"] == 4 and [f["id"] for f in fc["features"]] == ["VH-0001"]
    nxt = next(link["href"] for link in fc["links"] if link["rel"] == "next")
    assert "construction_dossier_code=XD-1" in nxt and "construction_dossier_code=XD-12" in nxt
    # only where the property is: elsewhere an unknown parameter, never taken for no filter
    body = assert_error(client.get("/api/collections/construction_permits/items?construction_dossier_code=XD-1"),
                        400)
    assert "construction_dossier_code" in body["description"]
    many = ",".join(f"XD-{i}" for i in range(EXACT_MAX + 1))
    assert "construction_dossier_code" in assert_error(client.get(f"{items}?construction_dossier_code={many}"),
                                                       400)["description"]
    queryables = orjson.loads(client.get("/api/collections/sidewalk_permits/queryables").get_data())
    assert queryables["properties"]["construction_dossier_code"]["type"] == "string"
    openapi = orjson.loads(client.get("/api/openapi").get_data())
    declared = {p["$ref"].rsplit("/", 1)[-1] for p in openapi["paths"]["/collections/sidewalk_permits/items"]["get"]
                ["parameters"]}
    assert "construction_dossier_code" in declared
    assert "construction_dossier_code" not in {
        p["$ref"].rsplit("/", 1)[-1] for p in openapi["paths"]["/collections/findings/items"]["get"]["parameters"]}
    assert openapi["components"]["parameters"]["construction_dossier_code"]["schema"]["items"] == {"type": "string"}

