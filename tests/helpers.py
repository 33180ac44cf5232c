"""Helpers several test modules share (fixtures are in ``conftest.py``): sample data and checks of outputs."""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import re
import shutil
import tempfile
from pathlib import Path

import geopandas as gpd
import mapbox_vector_tile
import numpy as np
import orjson
import shapely
from shapely.geometry import shape

from gisapp import schema
from gisapp.schema import LAYERS
from gisapp.tiles import mvt as tiles

D = dt.date.fromisoformat
STATUSES = ["PROCESSING", "RETURNED", "REFUSED", "RECEIVED"]
WARDS = ["20260", "20305", "20306"]


def permits(n=40):
    """``n`` 6 × 18 m lots in a row, cycling wards, statuses and dates."""
    x0, y0 = 547900.0, 1770700.0
    rows = []
    for i in range(n):
        rows.append({
            "dossier_code": f"XD-{i:04d}", "ward_code": WARDS[i % 3], "status": STATUSES[i % 4],
            "procedure": "NEW_BUILD" if i % 5 else "RENOVATION", "work_category": "HOUSE",
            "channel": "ONLINE" if i % 2 else "IN_PERSON",
            "received_on": (D("2022-01-03") + dt.timedelta(days=i)).isoformat(),
            "site_address": f"{i} Ông Ích Đường" if i % 7 == 0 else f"{i} Cách Mạng Tháng Tám",
            "street": "Ông Ích Đường" if i % 7 == 0 else "Cách Mạng Tháng Tám",
            "owner_name": f"Nguyễn Văn {i}", "floors": 1 + i % 4, "plot_area_m2": 108.0,
            "geometry": shapely.box(x0 + 10 * i, y0, x0 + 10 * i + 6, y0 + 18),
        })
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=schema.STORE_CRS)


def assert_error(r, status):
    """The one error shape: ``code``, ``description``, ``status`` and nothing else."""
    assert r.status_code == status
    assert r.content_type.startswith("application/json")
    body = orjson.loads(r.get_data())
    assert set(body) == {"code", "description", "status"}
    assert body["status"] == status and body["code"] and body["description"]
    return body


def check_rfc7946(features):
    """Lon/lat in the demo's range, exterior rings CCW and holes CW, at most 7 decimals."""
    for feat in features:
        geom = feat["geometry"]
        polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
        for rings in polys:
            for i, ring in enumerate(rings):
                xy = np.array(ring)
                assert ((108.1 < xy[:, 0]) & (xy[:, 0] < 108.3)).all()
                assert ((15.9 < xy[:, 1]) & (xy[:, 1] < 16.1)).all()
                ccw = shapely.LinearRing(xy).is_ccw
                assert ccw if i == 0 else not ccw
        text = orjson.dumps(geom).decode()
        assert not re.search(r"\d\.\d{8,}", text)
        assert set(feat) == {"type", "id", "geometry", "properties"}


def decode(body: bytes, layer: str) -> dict[str, dict]:
    """Key → {"geometry": shapely in tile units (y down), "properties": ...} of one decoded layer."""
    if not body:
        return {}
    layers = mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})
    assert list(layers) == [layer]
    assert layers[layer]["extent"] == tiles.EXTENT and layers[layer]["version"] == 2
    key = LAYERS[layer].key
    out = {}
    for f in layers[layer]["features"]:
        out[f["properties"][key]] = {"geometry": shape(f["geometry"]), "properties": f["properties"]}
    assert len(out) == len(layers[layer]["features"]), "a key twice in one tile"
    return out


#: The password of every account the tests make.
PASSWORD = "correct horse battery"


def staff_accounts(path, users) -> Path:
    """An accounts file at ``path`` holding ``users`` (``(name, role)`` pairs, password :data:`PASSWORD`); the
    file's path.

    A copy of one made once per test process for the same users: each password's scrypt hash costs ~0.1 s of
    CPU on purpose, and dozens of tests start from the same accounts.
    """
    shutil.copyfile(_accounts_template(tuple(users)), path)
    return Path(path)


@functools.cache
def _accounts_template(users: tuple[tuple[str, str], ...]) -> Path:
    from gisapp.accounts import Accounts

    folder = Path(tempfile.mkdtemp(prefix="gisapp-test-accounts-"))
    atexit.register(shutil.rmtree, folder, True)
    accounts = Accounts(folder / "acc.sqlite")
    for name, role in users:
        accounts.add(name, PASSWORD, role)
    return accounts.path


def token_of(page: str) -> str:
    """The CSRF token of a page's form."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def signed_in(app, name: str):
    """A test client of ``app`` signed in as ``name`` (whose password is :data:`PASSWORD`)."""
    client = app.test_client()
    csrf = token_of(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": csrf}).status_code == 302
    return client


def occupancy_inputs(geom, start: str, end: str, purpose: str = "MATERIALS", **more) -> dict:
    """The process inputs of an occupancy ``geom`` (shapely, EPSG:5899) as a client sends them (WGS84 GeoJSON)."""
    from gisapp import geo
    from gisapp.schema import WEB_CRS

    wgs84 = geo.transform([geom], schema.STORE_CRS, WEB_CRS)[0]
    return {"geometry": orjson.loads(orjson.dumps(shapely.geometry.mapping(wgs84), option=orjson.OPT_SERIALIZE_NUMPY)),
            "start": start, "end": end, "purpose": purpose, **more}


# -- sample proposals of the occupancy check on the demo (tests/data/proposals/) ---------------

#: The sample proposals' files: verdict → path, each a GeoJSON Feature whose properties carry start, end, purpose.
PROPOSAL_FILES = {verdict: f"tests/data/proposals/{verdict.lower()}.geojson" for verdict in ("OK", "REFER", "REFUSE")}


def _frontage_strip(parcel, sidewalk, depth: float):
    """A strip ``depth`` metres deep on ``sidewalk`` along the parcel's front, 0.3 m short of its side lines."""
    front = shapely.line_merge(shapely.intersection(parcel.boundary, sidewalk.boundary))
    length = front.length
    front = shapely.ops.substring(front, 0.3, length - 0.3)
    return shapely.intersection(shapely.buffer(front, depth, cap_style="flat"), sidewalk)


def sample_proposals(frames) -> dict[str, dict]:
    """Three proposals on the demo with known verdicts, as GeoJSON Features (WGS84, 7 decimals).

    ``OK``: a 1 m strip in front of a permitted dossier's parcel during its
    works, nothing else near (the dossier is found: the merged procedure);
    ``REFUSE``: the same in front of another dossier but leaving 1.0 m of
    sidewalk; ``REFER``: the place and days of a demo sidewalk permit (a clash).
    """
    import shapely.ops  # noqa: F401 - substring

    from gisapp import geo

    cp, sw, walks = frames["construction_permits"], frames["sidewalk_permits"], frames["sidewalks"]
    tree = shapely.STRtree(np.asarray(walks.geometry.array, dtype=object))
    permits_tree = shapely.STRtree(np.asarray(sw.geometry.array, dtype=object))
    cons_tree = shapely.STRtree(np.asarray(cp.geometry.array, dtype=object))
    issued = cp[cp["issued_on"].notna() & (cp["issued_on"] >= "2022-05-01")].sort_values("dossier_code")
    picked = []
    for _, row in issued.iterrows():
        hits = tree.query(row.geometry, predicate="intersects")
        touching = [h for h in hits if shapely.intersection(row.geometry.boundary,
                                                            walks.geometry.iloc[h].boundary).length > 3]
        if len(touching) != 1 or len(permits_tree.query(row.geometry.buffer(15))) or \
                len(cons_tree.query(row.geometry.buffer(8))) != 1:
            continue
        picked.append((row, walks.iloc[touching[0]]))
        if len(picked) == 2:
            break
    out = {}
    for verdict, (row, walk) in zip(("OK", "REFUSE"), picked, strict=True):
        depth = 1.0 if verdict == "OK" else float(walk["width_m"]) - 1.0
        strip = _frontage_strip(row.geometry, walk.geometry, depth)
        start = row["issued_on"].date() + dt.timedelta(days=10)
        out[verdict] = (strip, start, start + dt.timedelta(days=13), "MATERIALS")
    plain = sw[(sw["sidewalk_width_m"] - sw["used_width_m"] >= 1.6) & (sw["status"] == "RETURNED")
               & sw["construction_dossier_code"].isna()].sort_values("permit_no")
    for _, row in plain.iterrows():
        if len(permits_tree.query(row.geometry.buffer(10))) == 1 and not len(cons_tree.query(row.geometry.buffer(10))):
            out["REFER"] = (row.geometry, row["start_on"].date(), row["end_on"].date(), row["purpose"])
            break
    features = {}
    for verdict, (geom, start, end, purpose) in out.items():
        lonlat = geo.transform([shapely.set_precision(geom, 0)], schema.STORE_CRS, schema.WEB_CRS)[0]
        lonlat = shapely.set_precision(lonlat, 1e-7)
        features[verdict] = {"type": "Feature", "geometry": shapely.geometry.mapping(lonlat),
                             "properties": {"start": start.isoformat(), "end": end.isoformat(),
                                            "purpose": purpose, "expected_verdict": verdict}}
    return features


def phone_jpeg(width: int = 4000, height: int = 3000, *, quality: int = 92, noise: bool = False) -> bytes:
    """A JPEG as a phone writes it: EXIF with the time, GPS position, camera make, owner and serial number."""
    import io

    from PIL import Image

    if noise:  # photo-like detail, so the file is as large as a phone's (~4 MB at 4000 × 3000)
        img = Image.frombytes("RGB", (width, height), np.random.default_rng(1).integers(
            0, 255, width * height * 3, dtype=np.uint8).tobytes())
    else:
        img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    exif = Image.Exif()
    exif[0x0132] = "2026:01:02 10:00:00"  # DateTime
    exif[0x010F] = "ACME Phones"  # Make
    exif[0x013B] = "Nguyen Van A"  # Artist: personal
    exif[0x0112] = 1  # Orientation
    exif.get_ifd(0x8769).update({0x9003: "2026:01:02 10:00:00", 0xA431: "SN-12345"})  # DateTimeOriginal, serial
    exif.get_ifd(0x8825).update({1: "N", 2: (16.0, 1.0, 30.0), 3: "E", 4: (108.0, 12.0, 0.0)})
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, exif=exif.tobytes())
    return out.getvalue()


#: The layer tables of PostGIS schema version 5.
SCHEMA_5_LAYERS = ("wards", "construction_permits", "sidewalk_permits", "findings")


def drop_tables_after_schema_5(con) -> None:
    """Drop every table a PostGIS migration after version 5 made, and forget those versions (a schema-5 database)."""
    later = [t for (t,) in con.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> ALL(%s)",
        [[*SCHEMA_5_LAYERS, "gisapp_meta", "gisapp_layers", "gisapp_version", "schema_version",
          "spatial_ref_sys"]]).fetchall()]
    for table in later:
        con.execute(f'DROP TABLE "{table}" CASCADE')
    con.execute("DELETE FROM gisapp_layers WHERE name <> ALL(%s)", [list(SCHEMA_5_LAYERS)])
    con.execute("DROP INDEX IF EXISTS ix_construction_permits_works_start")  # version 10's, on a version-1 table
    con.execute("ALTER TABLE findings DROP COLUMN IF EXISTS row_hash")  # version 13's, on a version-1 table
    for table in SCHEMA_5_LAYERS:  # version 15's, on version-1 tables
        con.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS properties_json, "
                    "DROP COLUMN IF EXISTS properties_personal")
    con.execute("DELETE FROM schema_version WHERE version > 5")


#: The findings' columns compared by :func:`assert_findings_current` (besides the id and the geometry).
FINDING_COLUMNS = ["kind", "a_id", "b_id", "ward_code", "overlap_area_m2", "distance_m", "overlap_start",
                   "overlap_end", "overlap_days", "detail"]


def assert_findings_current(store) -> None:
    """The stored findings are exactly those of a full analysis run now (same ids, values and shapes)."""
    import pandas as pd

    from gisapp.analysis.incremental import stored_params
    from gisapp.analysis.run import analyze_store

    stored = store.read("findings").sort_values("finding_id").reset_index(drop=True)
    full = analyze_store(store, stored_params(store))[0].findings.sort_values("finding_id").reset_index(drop=True)
    have, want = set(stored["finding_id"]), set(full["finding_id"])
    extra, missing = have - want, want - have
    assert not extra and not missing, (sorted(extra)[:5], sorted(missing)[:5])
    for col in FINDING_COLUMNS:
        a, b = stored[col], full[col]
        same = (a == b) | (a.isna() & b.isna())
        assert same.all(), (col, pd.concat([stored[~same][["finding_id", col]], b[~same]], axis=1).head())
    # the same shapes (a ring may start at another vertex: the written permit's own rings vs the stored ones)
    same = shapely.equals_exact(shapely.normalize(stored.geometry.values), shapely.normalize(full.geometry.values),
                                tolerance=1e-3)
    assert same.all(), list(stored["finding_id"][~same])


def fail_writes_after_logging(store, monkeypatch) -> None:
    """Make ``store``'s next write fail with ``OSError("disk full")`` after its change-log rows are written
    (PostGIS: before the swap; GeoPackage: right after the log's rows, in place or into the copy)."""
    from gisapp.store import gpkg as gpkg_store
    from gisapp.store import postgis as postgis_store

    def fail(*args, **kwargs):
        raise OSError("disk full")

    if isinstance(store, postgis_store.PostGISStore):
        monkeypatch.setattr(postgis_store, "_before_swap", fail)
    else:
        real = gpkg_store._changes_into

        def fail_after(con, entries):
            real(con, entries)
            raise OSError("disk full")

        monkeypatch.setattr(gpkg_store, "_changes_into", fail_after)
