"""How many API feature pages one server process builds at once: the store's ``page_slots`` (one on a
GeoPackage, two on PostGIS, where a page mostly waits for the database's process), or ``API_CONCURRENCY``."""

from __future__ import annotations

import pytest

from gisapp.web.app import create_app
from tests.helpers import permits
from tests.stores import BACKENDS, new_store


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("setting", [None, 3])
def test_the_pages_built_at_once_per_process(backend, setting, tmp_path, request):
    store = new_store(backend, tmp_path, request)
    store.write({"construction_permits": permits(5)}, meta={"as_of": "2022-07-08"})
    app = create_app({"STORE": store.url, "TESTING": True, **({"API_CONCURRENCY": setting} if setting else {})})
    r = app.test_client().get("/api/collections/construction_permits/items?f=json&as_of=2022-06-30")
    assert r.status_code == 200 and r.get_json()["numberReturned"] > 0
    slots = app.extensions["gisapp.api_slots"]
    expected = setting or {"gpkg": 1, "postgis": 2}[backend]
    assert store.page_slots == {"gpkg": 1, "postgis": 2}[backend]
    held = [slots.acquire(blocking=False) for _ in range(expected + 1)]
    assert held == [True] * expected + [False]
