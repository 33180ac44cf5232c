"""CLEARANCE measured on a sidewalks layer (geometry), the attribute rule as fallback, on both backends."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from gisapp.analysis.overlaps import AnalysisParams
from gisapp.analysis.run import analyze_store
from tests.stores import BACKENDS, new_store

X0, Y0 = 547_000.0, 1_770_000.0


def box(x0, y0, x1, y1):
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def frames() -> dict:
    """A 3 m sidewalk; two facing 1 m permits (same days, each fine by its attributes), one permit off it
    judged by its attributes, one of half the width."""
    walks = gpd.GeoDataFrame({"sidewalk_id": ["SW-1"], "ward_code": ["20305"], "street": ["Ông Ích Đường"],
                              "width_m": [3.0], "street_class": ["MAIN"]},
                             geometry=[box(0, 0, 60, 3)], crs="EPSG:5899")
    rows = [  # number, geometry, start, end, sidewalk width, used width
        ("VH-1", box(10, 0, 15, 1), "2022-03-01", "2022-03-31", 3.0, 1.0),
        ("VH-2", box(11, 2, 14, 3), "2022-03-10", "2022-03-12", 3.0, 1.0),
        ("VH-3", box(40, 0, 45, 1.5), "2022-03-01", "2022-03-05", 3.0, 2.0),  # the attributes say 1.0 m
        ("VH-4", box(10, 50, 15, 52), "2022-03-01", "2022-03-05", 3.0, 2.0),  # on no sidewalk: 1.0 m
    ]
    permits = gpd.GeoDataFrame(
        pd.DataFrame([{"permit_no": n, "ward_code": "20305", "purpose": "BUSINESS", "status": "RETURNED",
                       "start_on": s, "end_on": e, "sidewalk_width_m": w, "used_width_m": u}
                      for n, _, s, e, w, u in rows]),
        geometry=[r[1] for r in rows], crs="EPSG:5899")
    wards = gpd.GeoDataFrame({"ward_key": ["20305-2000"], "ward_code": ["20305"], "name": ["Hòa Phát"],
                              "valid_from": ["2000-01-01"]}, geometry=[box(-1000, -1000, 1000, 1000)],
                             crs="EPSG:5899")
    return {"sidewalks": walks, "sidewalk_permits": permits, "wards": wards}


@pytest.mark.parametrize("backend", BACKENDS)
def test_clearance_is_measured_on_the_sidewalks(backend, tmp_path, request):
    store = new_store(backend, tmp_path, request)
    store.write(frames())
    result, _ = analyze_store(store, AnalysisParams())
    found = result.findings[result.findings["kind"] == "CLEARANCE"].set_index("a_id")
    assert sorted(found.index) == ["VH-1", "VH-2", "VH-4"]
    assert found.loc["VH-1", "detail"] == ("Lối đi bộ còn 1,00 m (đo trên vỉa hè, ngày 2022-03-10), "
                                           "dưới mức tối thiểu 1,50 m")
    assert found.loc["VH-2", "detail"].startswith("Lối đi bộ còn 1,00 m (đo trên vỉa hè, ngày 2022-03-10)")
    # off the sidewalks the attributes judge
    assert found.loc["VH-4", "detail"] == ("Lối đi bộ còn 1,00 m, dưới mức tối thiểu 1,50 m "
                                           "(vỉa hè 3,00 m, sử dụng 2,00 m)")
    assert result.skipped.empty


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_sidewalks_the_attributes_judge(backend, tmp_path, request):
    store = new_store(backend, tmp_path, request)
    data = frames()
    del data["sidewalks"]
    store.write(data)
    result, _ = analyze_store(store, AnalysisParams())
    found = result.findings[result.findings["kind"] == "CLEARANCE"]
    assert sorted(found["a_id"]) == ["VH-3", "VH-4"]


def test_a_permit_without_widths_on_a_sidewalk_is_still_measured(tmp_path):
    store = new_store("gpkg", tmp_path)
    data = frames()
    data["sidewalk_permits"].loc[0, ["sidewalk_width_m", "used_width_m"]] = None
    store.write(data)
    result, _ = analyze_store(store, AnalysisParams())
    assert "VH-1" in set(result.findings.loc[result.findings["kind"] == "CLEARANCE", "a_id"])
    assert result.skipped.empty  # its clearance was checked, from the geometry
