"""Demo ward boundaries: the three 2025 wards from OpenStreetMap and six 2022 wards derived from them.

No openly licensed shapes of the six 2022 wards of Cẩm Lệ exist, so they are
cut out of the 2025 wards that absorbed them (Nghị quyết 1659/NQ-UBTVQH15):
each 2025 ward is split into bands of the published areas along a compass
direction (:func:`split_bands`).  The results are approximations and say so
(``approximate = 1``).  Everything is measured in EPSG:5899.  See
``seeds/PROVENANCE.md``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisapp import geo
from gisapp.config import ConfigError, resource_dir
from gisapp.schema import STORE_CRS

SEED_DIR = resource_dir("seeds")
OSM_WARDS_2025 = SEED_DIR / "danang_wards_2025_osm.geojson"
OSM_CREDIT = "© OpenStreetMap contributors (ODbL 1.0)"

DISTRICT_2022 = "Cẩm Lệ"
VALID_FROM_2022 = dt.date(2020, 1, 1)  # placeholder: the 2022 wards are older than this
VALID_TO_2022 = dt.date(2025, 6, 30)
VALID_FROM_2025 = dt.date(2025, 7, 1)

NAMES_2025 = {"20260": "Cẩm Lệ", "20305": "An Khê", "20314": "Hòa Xuân"}

#: How each 2025 ward is cut into its former parts: bands of a given area (m²)
#: taken one after the other from the side the azimuth (degrees clockwise from
#: north) points to; the remainder is the last part.  A part whose code is
#: ``None`` lay outside Cẩm Lệ district and is dropped.
DERIVATION: dict[str, tuple[tuple[tuple[str | None, str, float, float], ...], tuple[str | None, str]]] = {
    "20260": ((("20260", "Khuê Trung", 2.6e6, 30.0),
               ("20312", "Hòa Thọ Đông", 2.8e6, 100.0)),
              ("20311", "Hòa Thọ Tây")),
    "20305": (((None, "An Khê (quận Thanh Khê)", 1.5e6, 0.0),
               ("20306", "Hòa An", 2.7e6, 0.0)),
              ("20305", "Hòa Phát")),
    "20314": ((("20314", "Hòa Xuân", 9.0e6, 0.0),),
              (None, "xã Hòa Châu + xã Hòa Phước (huyện Hòa Vang)")),
}

#: Order of the 2022 wards in the layer (GSO order).
ORDER_2022 = ("20260", "20305", "20306", "20311", "20312", "20314")


def read_wards_2025(path: Path | str = OSM_WARDS_2025) -> gpd.GeoDataFrame:
    """The three 2025 wards from the OSM GeoJSON, reprojected to EPSG:5899 by EPSG code."""
    if not Path(path).is_file():
        raise ConfigError(f"seed file {path} is missing (gisapp's demo data; reinstall gisapp)")
    raw = gpd.read_file(path)
    geoms = geo.transform(raw.geometry.values, "EPSG:4326", STORE_CRS)
    return gpd.GeoDataFrame({"ward_code": raw["gso_code_2025"].astype(str).to_numpy(),
                             "osm_id": raw["osm_id"].to_numpy()},
                            geometry=geoms, crs=STORE_CRS)


def _half_plane(bounds, azimuth: float, offset: float) -> shapely.Polygon:
    """The half-plane beyond ``offset`` along ``azimuth`` from the bounds' centre, as a big box."""
    x0, y0, x1, y1 = bounds
    d = np.array([np.sin(np.radians(azimuth)), np.cos(np.radians(azimuth))])
    n = np.array([-d[1], d[0]])
    reach = (x1 - x0) + (y1 - y0) + 1000.0
    o = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) + d * offset
    return shapely.Polygon([o - n * reach, o + n * reach, o + n * reach + d * reach, o - n * reach + d * reach])


def _polygonal(geom):
    """The polygonal part of an overlay result (drops stray lines and points)."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > 0]
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def split_bands(polygon, areas, azimuths, *, tolerance: float = 1.0) -> list:
    """Cut ``polygon`` into bands of the given ``areas`` (m²), then the remainder.

    Band *i* is the part of what is left beyond a straight line
    perpendicular to ``azimuths[i]`` (degrees clockwise from north), the
    line found by bisection so that the band has ``areas[i]`` within
    ``tolerance`` m².  Returns ``len(areas) + 1`` non-overlapping pieces.
    """
    rest = polygon
    out = []
    for area, azimuth in zip(areas, azimuths):
        if not 0 < area < rest.area:
            raise ValueError(f"cannot cut {area:.0f} m² out of {rest.area:.0f} m²")
        bounds = rest.bounds
        lo, hi = -max(bounds[2] - bounds[0], bounds[3] - bounds[1]), max(bounds[2] - bounds[0], bounds[3] - bounds[1])
        while True:
            mid = (lo + hi) / 2
            got = shapely.intersection(rest, _half_plane(bounds, azimuth, mid)).area
            if abs(got - area) <= tolerance or hi - lo < 1e-6:
                break
            lo, hi = (mid, hi) if got > area else (lo, mid)
        cut = _half_plane(bounds, azimuth, mid)
        out.append(_polygonal(shapely.intersection(rest, cut)))
        rest = _polygonal(shapely.difference(rest, cut))
    return [*out, rest]


def _source(text: str) -> str:
    """A ward's source note, always with the OSM credit."""
    return f"{text}; {OSM_CREDIT}"


def wards_2022(w2025: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The six 2022 wards of Cẩm Lệ, approximated by splitting the 2025 wards."""
    rows = []
    for parent, (bands, (rest_code, rest_name)) in DERIVATION.items():
        geom = w2025.geometry[w2025["ward_code"] == parent].iloc[0]
        pieces = split_bands(geom, [b[2] for b in bands], [b[3] for b in bands])
        named = [(b[0], b[1]) for b in bands] + [(rest_code, rest_name)]
        how = ", ".join(f"{name} {area / 1e6:.1f} km² from azimuth {azimuth:.0f}°" for _, name, area, azimuth in bands)
        for (code, name), piece in zip(named, pieces):
            if code is None:
                continue
            rows.append({
                "ward_code": code, "name": name, "district": DISTRICT_2022,
                "valid_from": VALID_FROM_2022, "valid_to": VALID_TO_2022,
                "successor_code": parent, "approximate": 1,
                "source": _source(f"approximation cut from 2025 ward {parent} (OSM relation "
                                  f"{int(w2025['osm_id'][w2025['ward_code'] == parent].iloc[0])}) by bands ({how}; "
                                  "rest to the last ward); valid_from is a placeholder"),
                "geometry": piece,
            })
    frame = pd.DataFrame(rows).set_index("ward_code", drop=False).loc[list(ORDER_2022)].reset_index(drop=True)
    return _finish(frame)


def wards_2025_set(w2025: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The three 2025 wards as a ward layer set (exact OSM shapes)."""
    frame = pd.DataFrame({
        "ward_code": w2025["ward_code"].to_numpy(),
        "name": [NAMES_2025[c] for c in w2025["ward_code"]],
        "district": None,
        "valid_from": VALID_FROM_2025, "valid_to": None, "successor_code": None, "approximate": 0,
        "source": [_source(f"OSM relation {int(i)} via Nominatim, Nghị quyết 1659/NQ-UBTVQH15")
                   for i in w2025["osm_id"]],
        "geometry": w2025.geometry.to_numpy(),
    }).sort_values("ward_code", ignore_index=True)
    return _finish(frame)


def _finish(frame: pd.DataFrame) -> gpd.GeoDataFrame:
    """Typed dates, the computed ``ward_key`` first, as a GeoDataFrame in EPSG:5899."""
    frame = frame.copy()
    for name in ("valid_from", "valid_to"):
        frame[name] = pd.to_datetime(frame[name]).astype("datetime64[ms]")
    frame.insert(0, "ward_key", frame["ward_code"] + "-" + frame["valid_from"].dt.strftime("%Y-%m-%d"))
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=STORE_CRS)


def wards_frame(path: Path | str = OSM_WARDS_2025) -> gpd.GeoDataFrame:
    """Both ward sets (six 2022 wards, three 2025 wards) as one ``wards`` layer frame."""
    w2025 = read_wards_2025(path)
    both = pd.concat([wards_2022(w2025), wards_2025_set(w2025)], ignore_index=True)
    return gpd.GeoDataFrame(both, geometry="geometry", crs=STORE_CRS)
