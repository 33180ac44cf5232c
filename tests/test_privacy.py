"""Personal data and roles, walked over every route of the app.

Anonymous visitors never see an owner's name or ID number anywhere (pages,
map data, API, exports in every format); signed-in staff do.  Every route
answers each role as the role matrix says.
"""

import functools
import math
import re

import pytest

from gisapp import geo, schema
from gisapp.accounts import Accounts
from gisapp.tiles import mvt as tiles
from gisapp.web.app import create_app

PASSWORD = "correct horse battery"
ROLES = (None, "viewer", "inspector", "officer", "admin")


@pytest.fixture(scope="module")
def app(tmp_path_factory, demo_frames):
    from gisapp.analysis.overlaps import AnalysisParams, find_overlaps
    from gisapp.store.gpkg import GeoPackageStore

    home = tmp_path_factory.mktemp("privacy")
    frames, meta = demo_frames
    store = GeoPackageStore(home / "demo.gpkg", must_exist=False)
    findings = find_overlaps(frames["construction_permits"], frames["sidewalk_permits"], frames["wards"],
                             AnalysisParams()).findings
    store.write({**frames, "findings": findings}, meta=meta)
    accounts = Accounts(home / "acc.sqlite")
    for role in ROLES[1:]:
        accounts.add(f"{role}1", PASSWORD, role)
    return create_app({"STORE": store.url, "ACCOUNTS": str(home / "acc.sqlite"), "UPLOADS": str(home / "up"),
                       "TESTING": True})


def client_for(app, role):
    client = app.test_client()
    if role:
        page = client.get("/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        r = client.post("/login", data={"username": f"{role}1", "password": PASSWORD, "csrf_token": csrf})
        assert r.status_code == 302
    return client


def urls(app):
    """A GET URL for every route of the app, with real values for its variables."""
    from gisapp.store import open_store

    store = open_store(app.config["STORE"])
    code = store.read("construction_permits", limit=1)["dossier_code"].iloc[0]
    out = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        path = rule.rule
        if "<token>" in path or "<inspection_id>" in path or "<job_id>" in path:
            continue  # uploads, inspections, photos: through their flows (test_upload, test_inspections); no jobs
        if path == "/data/here":
            path += "?lon=108.2&lat=16.01&day=2022-03-15"
        path = path.replace("<process_id>", "occupancy-check")
        if "<collection_id>" in path or "<layer>" in path:
            for name in schema.LAYERS:
                key = store.read(name, limit=1)
                if path.startswith("/tiles/") and name not in tiles.TILE_FIELDS:
                    continue  # vector tiles: the map layers only
                p = path.replace("<collection_id>", name).replace("<layer>", name)
                if "<z>" in p:
                    if len(key):  # the z16 tile holding the layer's first feature
                        lon, lat = geo.transform(key.geometry.values, schema.STORE_CRS, schema.WEB_CRS)[0] \
                            .representative_point().coords[0]
                        n = 1 << 16
                        x = int((lon + 180) / 360 * n)
                        y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
                        out.append(p.replace("<z>", "16").replace("<x>", str(x)).replace("<y>", str(y)))
                    continue
                if "<path:feature_id>" in p:
                    if len(key):
                        out.append(p.replace("<path:feature_id>", str(key[schema.LAYERS[name].key].iloc[0])))
                    continue
                if "<fmt>" in p:
                    out += [p.replace("<fmt>", fmt) for fmt in ("geojson", "csv", "gpkg")]
                    continue
                out.append(p)
            continue
        path = path.replace("/export/blds/<name>", "/export/blds/permits")  # BLDS files: one of them
        out.append(re.sub(r"<(?:path:)?(?:dossier_)?code>", code, path))  # codes may hold '/' (tests/test_hardening.py)
    extras = ["/api/collections/construction_permits/items?limit=10000",
              "/api/collections/construction_permits/items?f=html&limit=50",
              f"/api/collections/construction_permits/items/{code}?f=html",
              "/data/construction_permits.geojson?bbox=108.15,15.95,108.25,16.05&zoom=18",
              "/?q=" + code, "/wards?ward=20305"]
    return sorted(set(out + extras))


@pytest.fixture(scope="module")
def personal(app):
    """Every owner name and ID number in the store."""
    from gisapp.store import open_store

    frame = open_store(app.config["STORE"]).read("construction_permits")
    names = tuple(sorted(set(frame["owner_name"].dropna()), key=len, reverse=True))
    ids = set(frame["owner_id_no"].dropna())
    assert len(names) > 1000 and len(ids) > 1000
    return names, ids


def leaks(body: bytes, names, ids) -> list[str]:
    text = body.decode("utf-8", "replace")
    found = [i for i in set(re.findall(r"\d{12}", text)) if i in ids]
    if any_of(names).search(text):  # one pass over the text finds whether any name is in it; then which ones
        found += [n for n in names if n in text]
    return found


@functools.cache
def any_of(words: tuple[str, ...]) -> re.Pattern:
    """A regular expression matching any of ``words`` anywhere: their trie, so a text is read once for them all
    (not once per word: thousands of names in every answer of every route)."""
    trie: dict = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def alternatives(node: dict) -> str:
        parts = [re.escape(char) + alternatives(child) for char, child in sorted(node.items()) if char]
        if not parts:
            return ""
        if len(parts) == 1 and "" not in node:
            return parts[0]
        return "(?:" + "|".join(parts) + ")" + ("?" if "" in node else "")

    return re.compile(alternatives(trie))


@pytest.mark.slow
def test_anonymous_sees_no_personal_data_anywhere(app, personal):
    names, ids = personal
    client = client_for(app, None)
    walked = urls(app)
    assert len(walked) > 30
    for url in walked:
        r = client.get(url)
        if url.startswith(tuple(NEEDS_JSON)):
            assert r.status_code == 401, url  # officers only (a geometry, no personal field)
            continue
        assert r.status_code in ((404,) if url in STAFF_ONLY else (200, 302)), (url, r.status_code)
        assert not leaks(r.data, names, ids), url
        if r.mimetype != "text/html":  # pages may carry the field labels; data must not carry the fields
            assert b"owner_name" not in r.data and b"owner_id_no" not in r.data, url


def test_signed_in_staff_see_owners(app, personal):
    names, ids = personal
    client = client_for(app, "viewer")
    for url in ("/export/construction_permits.csv", "/api/collections/construction_permits/items?limit=50"):
        r = client.get(url)
        assert leaks(r.data, names, ids), url


def test_owner_names_are_searched_for_staff_only(app, personal):
    names, _ = personal
    name = next(n for n in names if "<" not in n)
    for role, found in ((None, False), ("viewer", True)):
        client = client_for(app, role)
        count = client.get("/data/count", query_string={"q": name}).get_json()["count"]
        items = client.get("/api/collections/construction_permits/items", query_string={"q": name}).get_json()
        assert (count > 0) is found and (items["numberMatched"] > 0) is found, role


#: Routes that need a role; every other GET route is open to anonymous visitors.
NEEDS = {"/admin": "admin", "/upload": "officer", "/inspections/new": "inspector"}
#: JSON routes that need a role (anonymous visitors get 401, not the sign-in page), by prefix.
NEEDS_JSON = {"/occupancy/": "officer"}
#: Routes that do not exist for anyone not signed in (404), and answer every signed-in role.
STAFF_ONLY = {"/inspections.geojson", "/export/blds/inspections.csv"}


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r or "anonymous")
def test_role_matrix(app, role):
    client = client_for(app, role)
    rank = {None: -1, "viewer": 0, "inspector": 1, "officer": 2, "admin": 3}
    for url in urls(app):
        need = NEEDS.get(url.split("?")[0])
        status = client.get(url).status_code
        json_need = next((r for prefix, r in NEEDS_JSON.items() if url.startswith(prefix)), None)
        if url in STAFF_ONLY:
            assert status == (404 if role is None else 200), (role, url, status)
        elif json_need is not None:
            wanted = (401,) if role is None else (200, 404) if rank[role] >= rank[json_need] else (403,)
            assert status in wanted, (role, url, status)  # 404: a parcel that fronts no sidewalk
        elif need is None:
            assert status == 200, (role, url, status)
        elif role is None:
            assert status == 302, (role, url, status)
        else:
            assert status == (200 if rank[role] >= rank[need] else 403), (role, url, status)
    # Writing needs the officer role: the upload form posts are refused below it.
    r = client.post("/upload/" + "x" * 32 + "/confirm", data={})
    assert r.status_code in ({None: (302, 400), "viewer": (400, 403), "inspector": (400, 403)}.get(role, (400,)))
