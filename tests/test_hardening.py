"""Hardening found by an independent attack, on both stores (GeoPackage and PostGIS).

- Keys containing ``/`` reach the dossier page and its popup data.
"""

from __future__ import annotations

import math
import re
from urllib.parse import quote

import pytest

from gisapp import create_app, geo, schema
from gisapp.accounts import Accounts
from tests.browser_util import sample_frames
from tests.stores import BACKENDS, new_store

PASSWORD = "correct horse battery"
SLASH_CODE = "XD/2022/000005"
PERMITS = "construction_permits"


@pytest.fixture(scope="module")
def frames():
    """The sample layers, one dossier's code holding slashes."""
    frames, meta = sample_frames(120)
    frames[PERMITS].loc[5, "dossier_code"] = SLASH_CODE
    return frames, meta


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, frames, tmp_path_factory):
    s = new_store(request.param, tmp_path_factory.mktemp("hardening"), request)
    s.write(frames[0], meta=frames[1])
    return s


def store_url(store) -> str:
    """The URL an app opens ``store`` with (PostGIS: with its password)."""
    return getattr(store, "_url", store.url)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    path = tmp_path_factory.mktemp("hardening-home")
    Accounts(path / "acc.sqlite").add("viewer1", PASSWORD, "viewer")
    return path


def make_app(store, home, **config):
    return create_app({"STORE": store_url(store), "ACCOUNTS": str(home / "acc.sqlite"),
                       "UPLOADS": str(home / "up"), "TESTING": True, **config})


@pytest.fixture(scope="module")
def app(store, home):
    return make_app(store, home)


def signed_in(app):
    """A test client signed in as a viewer (who sees personal data)."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    r = client.post("/login", data={"username": "viewer1", "password": PASSWORD, "csrf_token": csrf})
    assert r.status_code == 302
    return client


def tile_path(store, layer: str = PERMITS, z: int = 16) -> str:
    """The tile at zoom ``z`` holding the layer's first feature."""
    first = store.read(layer, limit=1)
    shape = geo.transform(first.geometry.values, schema.STORE_CRS, schema.WEB_CRS)[0]
    lon, lat = shape.representative_point().coords[0]
    n = 1 << z
    x, y = int((lon + 180) / 360 * n), int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return f"/tiles/{layer}/{z}/{x}/{y}.mvt"


# -- keys with '/' --------------------------------------------------------------------------

@pytest.mark.parametrize("encode", [True, False])
def test_a_dossier_code_with_slashes_reaches_its_page_and_popup(app, encode):
    code = quote(SLASH_CODE, safe="") if encode else SLASH_CODE
    client = app.test_client()
    page = client.get(f"/permits/{code}")
    assert page.status_code == 200, page.data[:300]
    assert f'data-testid="dossier-code">{SLASH_CODE}<' in page.get_data(as_text=True)
    popup = client.get(f"/data/construction_permits/{code}.json")
    assert popup.status_code == 200 and popup.get_json()["dossier_code"] == SLASH_CODE
    item = client.get(f"/api/collections/{PERMITS}/items/{code}")
    assert item.status_code == 200 and item.get_json()["id"] == SLASH_CODE
    assert client.get(f"/permits/{code}x").status_code == 404
    assert client.get(f"/data/construction_permits/{code}x.json").get_json()["code"] == "NotFound"
