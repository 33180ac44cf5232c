"""Synthetic street grids and land lots inside ward polygons, vectorised with numpy and shapely.

Each ward gets a grid of streets turned by its own angle: long streets
``PITCH`` metres apart, cross streets every 90–220 m.  Both sides of every
street are lined with rectangular lots (frontage 4–7.5 m, depth 14–22 m)
behind a sidewalk of 3–6 m.  A block side is kept only when its whole strip
(sidewalk and the deepest possible lot) lies inside the ward, so lots never
leave their ward, and the pitch leaves room for the deepest lots on both
sides of two neighbouring streets, so lots never overlap.

Lots are rows of a DataFrame, not geometries: polygons are built only for
the few lots that are used (:func:`lot_polygons`, :func:`sidewalk_polygons`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from gisapp.demo import names as demo_names

PITCH = 68.0  # metres between the centre lines of neighbouring long streets
CROSS_STREET = 12.0
BLOCK_LENGTH = (90.0, 220.0)
FRONTAGE = (4.0, 7.5)
DEPTH = (14.0, 22.0)
CARRIAGEWAYS = ((5.5, 7.5, 10.5), (0.45, 0.40, 0.15))
SIDEWALKS = (3.0, 3.5, 4.0, 4.5, 5.0, 6.0)
SHEET_SIZE = 500.0  # metres; map sheets (tờ bản đồ) are tiles of this size
#: Lots per km² of ward, roughly (about 4,100 in the demo wards), for sizing extents before building.
LOTS_PER_KM2 = 4000

assert 2 * (max(CARRIAGEWAYS[0]) / 2 + max(SIDEWALKS) + DEPTH[1]) <= PITCH, "lots of facing streets could overlap"


def _rings(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Polygons from (n, 4) corner coordinates, turned counter-clockwise and closed."""
    area2 = np.sum(xs * np.roll(ys, -1, axis=1) - np.roll(xs, -1, axis=1) * ys, axis=1)
    flip = area2 < 0
    xs[flip], ys[flip] = xs[flip, ::-1], ys[flip, ::-1]
    n = len(xs)
    coords = np.empty((n, 5, 2))
    coords[:, :4, 0], coords[:, :4, 1] = xs, ys
    coords[:, 4] = coords[:, 0]
    offsets = (np.arange(0, 5 * n + 1, 5), np.arange(n + 1))
    return shapely.from_ragged_array(shapely.GeometryType.POLYGON, coords.reshape(-1, 2), offsets)


def side_quads(frame: pd.DataFrame, a0, a1, d0, d1) -> np.ndarray:
    """Rectangles on block sides: ``a0``–``a1`` metres along the street from the side's origin,
    ``d0``–``d1`` metres from the property line into the lot (negative: towards the curb).

    Corners are computed as origin + u·a + n·d, so neighbouring lots that
    share an ``a`` and a depth share their corners exactly.
    """
    a0, a1, d0, d1 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (a0, a1, d0, d1)))
    a = np.stack([a0, a1, a1, a0], axis=-1)
    d = np.stack([d0, d0, d1, d1], axis=-1)
    ox, oy, ux, uy, nx, ny = (frame[c].to_numpy()[:, None] for c in ("ox", "oy", "ux", "uy", "nx", "ny"))
    return _rings(ox + ux * a + nx * d, oy + uy * a + ny * d)


def _block_sides(geom, angle: float, rng: np.random.Generator) -> pd.DataFrame:
    """The block sides of one ward's street grid whose strip lies inside ``geom``.

    A side's origin ``ox, oy`` is where its property line starts; ``u``
    points along the street, ``n`` from the street into the lots.
    """
    c = shapely.centroid(geom)
    cx, cy = c.x, c.y
    ux, uy = np.cos(angle), np.sin(angle)
    vx, vy = -uy, ux
    ring = shapely.get_coordinates(geom)
    u = (ring[:, 0] - cx) * ux + (ring[:, 1] - cy) * uy
    v = (ring[:, 0] - cx) * vx + (ring[:, 1] - cy) * vy
    centres = v.min() - rng.uniform(0, PITCH) + PITCH * np.arange(int((v.max() - v.min()) / PITCH) + 3)
    n_blocks = int((u.max() - u.min()) / (BLOCK_LENGTH[0] + CROSS_STREET)) + 3
    lengths = np.round(rng.uniform(*BLOCK_LENGTH, n_blocks), 1)
    starts = u.min() - rng.uniform(0, BLOCK_LENGTH[1]) + np.concatenate([[0], np.cumsum(lengths + CROSS_STREET)[:-1]])
    carriage = rng.choice(CARRIAGEWAYS[0], len(centres), p=CARRIAGEWAYS[1])
    sidewalk = rng.choice(SIDEWALKS, len(centres))
    row, side, block = (a.ravel() for a in np.meshgrid(np.arange(len(centres)), [1, -1], np.arange(n_blocks),
                                                       indexing="ij"))
    front = centres[row] + side * (carriage[row] / 2 + sidewalk[row])
    sides = pd.DataFrame({
        "row": row, "side": side,
        "ox": cx + starts[block] * ux + front * vx, "oy": cy + starts[block] * uy + front * vy,
        "ux": ux, "uy": uy, "nx": side * vx, "ny": side * vy,
        "length": lengths[block], "sidewalk_m": sidewalk[row], "carriage_m": carriage[row],
    })
    strips = side_quads(sides, 0.0, sides["length"], -sides["sidewalk_m"], DEPTH[1])
    shapely.prepare(geom)
    return sides[shapely.contains(geom, strips)].reset_index(drop=True)


def make_lots(wards, rng: np.random.Generator) -> pd.DataFrame:
    """Every lot of a synthetic street grid in each ward of ``wards`` (``ward_code``, geometry).

    One row per lot: ``ward`` (position in ``wards``), ``side_id`` and
    ``pos`` (block side and position along it), the side's frame
    (``row``, ``side``, ``ox, oy, ux, uy, nx, ny``, see :func:`side_quads`), the lot's
    span ``a0``–``a1`` along the side and its ``depth`` (the same for a
    whole block side), ``side_length`` (the block side's), ``sidewalk_m``,
    ``carriage_m`` (the street's carriageway), ``street``, ``house_no``,
    ``map_sheet_no`` and ``parcel_no`` (numbers; a pair unique within the ward).
    """
    parts = []
    for i, (code, geom) in enumerate(zip(wards["ward_code"], wards.geometry)):
        sides = _block_sides(geom, np.radians(rng.uniform(-35, 35)), rng)
        row = sides["row"].to_numpy()
        names = demo_names.street_names(code, int(row.max()) + 1 if len(row) else 0)
        parts.append(sides.assign(street=names[rng.permutation(len(names))][row], ward=i))
    sides = pd.concat(parts, ignore_index=True)
    sides["street"] = sides["street"].astype("category")  # cheap to copy to millions of lots
    sides["depth"] = np.round(rng.uniform(*DEPTH, len(sides)), 1)
    k = int(np.ceil(BLOCK_LENGTH[1] / FRONTAGE[0])) + 1
    end = np.cumsum(np.round(rng.uniform(*FRONTAGE, (len(sides), k)), 1), axis=1)
    start = np.zeros_like(end)
    start[:, 1:] = end[:, :-1]
    side_id, pos = np.nonzero(end <= sides["length"].to_numpy()[:, None])
    lots = sides.iloc[side_id].reset_index(drop=True)
    lots = lots.rename(columns={"length": "side_length"}).assign(side_id=side_id, pos=pos, a0=start[side_id, pos],
                                                                 a1=end[side_id, pos])
    lots["house_no"] = 2 * lots.groupby(["ward", "row", "side"]).cumcount() + np.where(lots["side"] > 0, 1, 2)
    mid_a, mid_d = (lots["a0"] + lots["a1"]) / 2, lots["depth"] / 2
    cx = lots["ox"] + lots["ux"] * mid_a + lots["nx"] * mid_d
    cy = lots["oy"] + lots["uy"] * mid_a + lots["ny"] * mid_d
    tile = np.floor(cx / SHEET_SIZE).astype(np.int64) * 100_000 + np.floor(cy / SHEET_SIZE).astype(np.int64)
    groups = lots.assign(tile=tile).groupby(["ward", "tile"])
    sheet = groups.ngroup()
    lots["map_sheet_no"] = sheet - sheet.groupby(lots["ward"]).transform("min") + 1
    lots["parcel_no"] = groups.cumcount() + 1
    return lots


def lot_polygons(lots: pd.DataFrame) -> np.ndarray:
    """The lots' polygons."""
    return side_quads(lots, lots["a0"], lots["a1"], 0.0, lots["depth"])


def block_sidewalks(lots: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per block side (its first lot's row) and the polygon of its whole sidewalk.

    The sidewalk runs the block side's length, from the property line (which
    the lots front) ``sidewalk_m`` out to the kerb; blocks end at cross
    streets, so each sidewalk is one side of one street between two cross streets.
    """
    first = lots.drop_duplicates("side_id").reset_index(drop=True)
    return first, side_quads(first, 0.0, first["side_length"], -first["sidewalk_m"], 0.0)


def sidewalk_polygons(lots: pd.DataFrame, a0, a1, used_width) -> np.ndarray:
    """Strips on the sidewalk in front of ``lots``, from ``a0`` to ``a1`` along the block side,
    ``used_width`` metres out from the property line towards the curb."""
    return side_quads(lots, a0, a1, -np.asarray(used_width, dtype=float), 0.0)
