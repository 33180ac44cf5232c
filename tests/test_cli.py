"""The command line: help everywhere, clear one-line errors, ``layers``."""

import geopandas as gpd
import pytest
import shapely
from click.testing import CliRunner

from gisapp.cli import cli
from gisapp.store.gpkg import GeoPackageStore


def all_commands(group=cli, prefix=()):
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [(), *all_commands()], ids=lambda p: " ".join(p) or "gisapp")
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "--help" in result.output


def test_layers_lists_counts_and_as_of(tmp_path):
    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    lot = shapely.box(547900, 1770700, 547906, 1770718)
    wards = gpd.GeoDataFrame([{"ward_key": "20260-2020-01-01", "ward_code": "20260", "name": "Khuê Trung",
                               "valid_from": "2020-01-01", "geometry": lot.buffer(100)}], crs="EPSG:5899")
    store.write({"wards": wards}, meta={"as_of": "2022-07-08"})
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "s.gpkg"), "layers"])
    assert result.exit_code == 0, result.output
    assert "as of: 2022-07-08" in result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("wards"))
    assert line.split()[1:3] == ["1", "EPSG:5899"]


@pytest.mark.parametrize(
    "setup, message",
    [
        (None, "does not exist"),
        (b"not a geopackage", "is not a GeoPackage"),
    ],
)
def test_bad_store_is_one_line_and_nonzero(tmp_path, setup, message):
    path = tmp_path / "s.gpkg"
    if setup is not None:
        path.write_bytes(setup)
    for args in (["layers"], ["serve", "--port", "1"]):
        result = CliRunner().invoke(cli, ["--store", str(path), *args])
        assert result.exit_code == 2
        assert result.output.strip().count("\n") == 0 and message in result.output
        assert "Traceback" not in result.output


def test_store_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GISAPP_STORE", str(tmp_path / "env.gpkg"))
    result = CliRunner().invoke(cli, ["layers"])
    assert result.exit_code == 2 and "env.gpkg does not exist" in result.output


def test_layers_schema_doc_matches_the_code():
    from gisapp.config import ROOT

    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert (ROOT / "layers" / "SCHEMA.md").read_text(encoding="utf-8") == result.output, \
        "layers/SCHEMA.md is stale: run `gisapp schema > layers/SCHEMA.md`"


def test_production_mode_needs_a_secret_key(tmp_path, monkeypatch):
    monkeypatch.setenv("GISAPP_ENV", "production")
    monkeypatch.delenv("GISAPP_SECRET_KEY", raising=False)
    result = CliRunner().invoke(cli, ["--store", str(tmp_path / "s.gpkg"), "serve"])
    assert result.exit_code == 2
    assert "GISAPP_SECRET_KEY must be set when GISAPP_ENV=production" in result.output
