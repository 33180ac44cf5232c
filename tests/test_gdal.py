"""GDAL as an outside client: ogrinfo/ogr2ogr read the exports and the OGC API over real HTTP."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pyogrio
import pytest
import shapely

from gisapp.filters import Filter
from gisapp.schema import LAYERS
from gisapp.web.app import create_app
from tests.browser_util import live_server

pytestmark = pytest.mark.gdal
BBOX = (108.17, 15.98, 108.21, 16.03)


@pytest.fixture(scope="module", autouse=True)
def _gdal_tools():
    missing = [tool for tool in ("ogrinfo", "ogr2ogr") if shutil.which(tool) is None]
    if missing:
        reason = f"GDAL's {', '.join(missing)} not installed (Debian package gdal-bin)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def server(demo_store):
    """The app on a real HTTP server on 127.0.0.1 and a random port."""
    with live_server(create_app({"STORE": demo_store.url, "BASEMAP": "none"})) as base:
        yield base


def run(*args: str) -> str:
    env = {**os.environ, "GDAL_HTTP_TIMEOUT": "60", "CPL_DEBUG": "OFF"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def feature_counts(output: str) -> dict[str, int]:
    """``Layer name → Feature Count`` from ``ogrinfo -so`` output."""
    names = re.findall(r"^Layer name: (\S+)", output, re.M)
    counts = [int(n) for n in re.findall(r"^Feature Count: (-?\d+)", output, re.M)]
    assert len(names) == len(counts), output
    return dict(zip(names, counts))


def fetch(url: str, path) -> None:
    import urllib.request

    with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as fh:
        shutil.copyfileobj(resp, fh)


@pytest.mark.parametrize("fmt", ["geojson", "csv", "gpkg"])
def test_ogrinfo_reads_every_export(server, demo_store, tmp_path, fmt):
    for layer in LAYERS:
        path = tmp_path / f"{layer}.{fmt}"
        fetch(f"{server}/export/{layer}.{fmt}", path)
        source = [f"CSV:{path}", "-oo", "GEOM_POSSIBLE_NAMES=wkt", "-oo", "KEEP_GEOM_COLUMNS=NO"] \
            if fmt == "csv" else [str(path)]
        counts = feature_counts(run("ogrinfo", "-ro", "-so", "-al", *source))
        assert list(counts.values()) == [demo_store.count(layer)], (layer, counts)


def test_ogrinfo_reads_a_filtered_export(server, demo_store, tmp_path):
    path = tmp_path / "processing.gpkg"
    fetch(f"{server}/export/construction_permits.gpkg?status=PROCESSING&bbox={','.join(map(str, BBOX))}", path)
    expected = demo_store.count("construction_permits", Filter(statuses=("PROCESSING",), bbox=BBOX))
    assert feature_counts(run("ogrinfo", "-ro", "-so", "-al", str(path))) == {"construction_permits": expected}
    assert expected > 0


def test_oapif_lists_every_collection_with_the_stores_counts(server, demo_store):
    counts = feature_counts(run("ogrinfo", "-ro", "-so", "-al", f"OAPIF:{server}/api"))
    assert counts == {name: demo_store.count(name) for name in LAYERS}


def test_oapif_bbox_and_attribute_filter(server, demo_store):
    src = f"OAPIF:{server}/api"
    out = run("ogrinfo", "-ro", "-so", "-oo", "PAGE_SIZE=1000", src, "construction_permits",
              "-spat", *map(str, BBOX))
    expected = demo_store.count("construction_permits", Filter(bbox=BBOX))
    assert feature_counts(out) == {"construction_permits": expected} and expected > 0
    out = run("ogrinfo", "-ro", "-so", "-oo", "PAGE_SIZE=1000", src, "construction_permits",
              "-where", "status = 'PROCESSING'")
    expected = demo_store.count("construction_permits", Filter(statuses=("PROCESSING",)))
    assert feature_counts(out) == {"construction_permits": expected} and expected > 0
    out = run("ogrinfo", "-ro", "-so", "-oo", "PAGE_SIZE=1000", src, "sidewalk_permits",
              "-where", "status = 'PROCESSING'", "-spat", *map(str, BBOX))
    expected = demo_store.count("sidewalk_permits", Filter(statuses=("PROCESSING",), bbox=BBOX))
    assert feature_counts(out) == {"sidewalk_permits": expected}


@pytest.mark.parametrize("layer", ["construction_permits", "sidewalk_permits", "wards"])
def test_ogr2ogr_copy_matches_the_store_within_a_centimetre(server, demo_store, tmp_path, layer):
    out = tmp_path / f"{layer}.gpkg"
    run("ogr2ogr", "-f", "GPKG", "-t_srs", "EPSG:5899", "-oo", "PAGE_SIZE=1000", str(out),
        f"OAPIF:{server}/api", layer)
    copied = pyogrio.read_dataframe(out)
    stored = demo_store.read(layer)
    key = LAYERS[layer].key
    assert len(copied) == len(stored) > 0
    copied = copied.set_index(key).loc[stored[key]]
    distance = shapely.hausdorff_distance(np.asarray(copied.geometry.values), stored.geometry.values)
    assert np.max(distance) < 0.01, np.max(distance)
