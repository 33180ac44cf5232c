"""One error class from the core to every surface: :class:`gisapp.errors.RequestError`.

The core (filters, tiles), the OGC API's core and the views raise it or a
subclass; ``gisapp/web/errors.py`` only renders it, as the one JSON shape or
the HTML error page.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from gisapp.errors import FilterError, NotFound, RequestError
from gisapp.tiles import mvt as tiles
from gisapp.web.app import create_app


def test_the_error_classes():
    err = RequestError(503, "StoreUnavailable", "the store cannot be read")
    assert err.body() == {"code": "StoreUnavailable", "description": "the store cannot be read", "status": 503}
    bad = FilterError("ward", "unknown ward code '99999'")
    assert isinstance(bad, RequestError) and isinstance(bad, ValueError)
    assert bad.body() == {"code": "InvalidParameterValue", "description": "ward: unknown ward code '99999'",
                          "status": 400}
    assert (bad.param, bad.message, str(bad)) == ("ward", "unknown ward code '99999'", bad.description)
    assert NotFound("no such thing").body() == {"code": "NotFound", "description": "no such thing", "status": 404}
    with pytest.raises(RequestError) as caught:
        tiles.check_tile(23, 0, 0)
    assert (caught.value.status, caught.value.code, caught.value.param) == (400, "InvalidParameterValue", "z")


def test_the_core_and_the_api_core_raise_it_without_flask():
    code = ("import sys, gisapp.errors, gisapp.filters, gisapp.api.features, gisapp.tiles.mvt; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture
def client(demo_store):
    return create_app({"STORE": demo_store.url, "TESTING": True, "BASEMAP": "none"}).test_client()


@pytest.mark.parametrize("url, mentions", [
    ("/api/collections/nope/items", "no collection 'nope'"),  # the API's core
    ("/api/collections/construction_permits/items/NOPE", "no feature 'NOPE'"),
    ("/data/parcels.geojson", "no map layer 'parcels'"),  # the views
    ("/data/construction_permits/NOPE.json", "no dossier with code 'NOPE'"),
    ("/export/parcels.csv", "no layer 'parcels'"),
    ("/export/construction_permits.shp", "no export format 'shp'"),
    ("/tiles/wards.json", "no vector tiles for layer 'wards'"),
])
def test_every_not_found_is_the_one_json_shape(client, url, mentions):
    r = client.get(url)
    assert r.status_code == 404 and r.mimetype == "application/json"
    body = r.get_json()
    assert body == {"code": "NotFound", "description": body["description"], "status": 404}
    assert mentions in body["description"]


def test_a_page_renders_it_as_the_error_page(client):
    r = client.get("/permits/VH-0000-NOPE?lang=en")
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert "VH-0000-NOPE" in r.get_data(as_text=True)
    r = client.get("/api/collections/nope?f=html")
    assert r.status_code == 404 and r.mimetype == "text/html" and "nope" in r.get_data(as_text=True)
