"""The app factory, the health check and the error shapes."""

import pytest

from gisapp.config import load_config
from gisapp.store.gpkg import GeoPackageStore
from gisapp.web.app import create_app
from tests.helpers import permits


@pytest.fixture
def client(tmp_path):
    GeoPackageStore(tmp_path / "s.gpkg", must_exist=False).write({"construction_permits": permits(5)})
    return create_app({"STORE": str(tmp_path / "s.gpkg"), "TESTING": True}).test_client()


def test_factory_creates_independent_apps(tmp_path):
    a = create_app({"STORE": str(tmp_path / "a.gpkg")})
    b = create_app({"STORE": str(tmp_path / "b.gpkg")})
    assert a.config["STORE"] != b.config["STORE"]


def test_healthz_reports_layer_counts(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.get_json()["layers"]["construction_permits"] == 5


def test_healthz_when_store_is_broken(tmp_path):
    (tmp_path / "bad.gpkg").write_bytes(b"garbage")
    r = create_app({"STORE": str(tmp_path / "bad.gpkg")}).test_client().get("/healthz")
    assert r.status_code == 503
    assert r.get_json() == {"code": "StoreUnavailable", "status": 503,
                            "description": f"store {tmp_path / 'bad.gpkg'} is not a GeoPackage "
                                           "(file is not a database)"}
    assert b"Traceback" not in r.data


def test_unknown_page_is_an_html_404(client):
    r = client.get("/no/such/page")
    assert r.status_code == 404 and r.mimetype == "text/html"
    assert b"404" in r.data


def test_readme_test_command_is_what_ci_runs():
    from gisapp.config import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line.strip() for line in ci.splitlines() if line.startswith("python3 -m venv"))
    assert command.replace("-q ", "") in readme


def test_readme_lists_every_setting():
    from gisapp.config import ROOT, SETTINGS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [var for var, _, _ in SETTINGS.values() if f"| `{var}` |" not in readme]
    assert not missing, f"README's settings table lacks {missing}"


def test_basemap_setting_and_its_former_name(caplog):
    """GISAPP_BASEMAP picks the basemap; GISAPP_TILES, its former name, still works with a warning, and loses to it."""
    assert load_config(environ={"GISAPP_BASEMAP": "osm"})["BASEMAP"] == "osm"
    assert not caplog.records
    with caplog.at_level("WARNING", logger="gisapp"):
        assert load_config(environ={"GISAPP_TILES": "osm"})["BASEMAP"] == "osm"
    assert "GISAPP_TILES is deprecated" in caplog.text
    caplog.clear()
    assert load_config(environ={"GISAPP_TILES": "osm", "GISAPP_BASEMAP": "none"})["BASEMAP"] == "none"
    assert load_config(environ={})["BASEMAP"] == "none"
