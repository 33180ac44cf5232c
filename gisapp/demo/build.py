"""The Cẩm Lệ demo data set, and a generator of permit data of any size for benchmarks.

:func:`build` gives the three layers ``gisapp seed`` writes: the ward
boundaries (six approximate 2022 wards and the three 2025 wards, see
:mod:`gisapp.demo.wards`), 2,534 construction-permit dossiers received in
the first half of 2022 — the figures of the district's report of
8 July 2022 (``seeds/000_1567039aae9ae34c.txt``): 54.5 % filed online, none
late — and about 400 sidewalk-use permits.  :func:`generate` makes the
dossiers and sidewalk permits for any number of features over any extent.

The data are generated with a fixed seed, so every build is identical.  Some
cases are put in on purpose, for the overlap analysis to find (counts at
scale 1):

- 5 dossiers whose declared ward is not the ward their parcel lies in
  (``WARD_MISMATCH``);
- 108 sidewalk permits for construction materials linked to the dossier of
  the lot they front (``LINKED``), dated from the dossier's issue date on;
- 25 such permits in front of a permitted construction site, dated within
  its works, but not linked (``MERGE_CANDIDATE``);
- 15 pairs of sidewalk permits overlapping in space and time (``CLASH``),
  three of them around one wedding/event permit that overlaps three others;
- 10 pairs at the same place whose periods do not overlap but are at most
  90 days apart (``OPPORTUNITY``);
- 20 permits leaving less than 1.5 m of sidewalk to pedestrians
  (``CLEARANCE``).

Every other sidewalk permit is more than 10 m from any dossier parcel and
overlaps nothing, so the analysis finds exactly these cases.
"""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisapp import domain
from gisapp.demo import lots as demo_lots
from gisapp.demo import names as demo_names
from gisapp.demo import wards as demo_wards
from gisapp.schema import CONSTRUCTION_PERMITS, SIDEWALK_PERMITS, SIDEWALKS, STORE_CRS

AS_OF = dt.date(2022, 7, 8)
PERIOD = (dt.date(2022, 1, 1), dt.date(2022, 6, 30))
#: The report's figures for construction dossiers, first half of 2022.
ARTICLE_DOSSIERS = 2534
ONLINE_SHARE = 0.545
SIDEWALK_PERMITS_PER_HALF_YEAR = 400
SOURCE = ("Cẩm Lệ demo data (generated, fixed seed): dossier counts from the district report of 8 July 2022 "
          "(seeds/000_1567039aae9ae34c.txt); 2022 ward boundaries approximated from OpenStreetMap 2025 wards, "
          "© OpenStreetMap contributors (ODbL 1.0); people, parcels and permits are fictional")

PROCEDURE_MIX = {"NEW_BUILD": 0.62, "RENOVATION": 0.20, "ADJUSTMENT": 0.05, "TERM": 0.04, "EXTENSION": 0.04,
                 "REISSUE": 0.03, "RELOCATION": 0.02}
OTHER_WORKS_SHARE = 0.06
POST_SHARE_OF_OFFLINE = 0.02
MONTH_WEIGHTS = {1: 0.85, 2: 0.7, 3: 1.05, 4: 1.05, 5: 1.15, 6: 1.2}
#: Outcomes of dossiers due by the as-of date; granted ones are RETURNED or RESULT_READY.
CLOSED_MIX = {"GRANTED": 0.91, "REFUSED": 0.03, "NOT_ACCEPTED": 0.035, "WITHDRAWN": 0.025}
OPEN_MIX = {"PROCESSING": 0.55, "RECEIVED": 0.20, "SUPPLEMENT_REQUESTED": 0.15, "FEE_PENDING": 0.10}
ON_DUE_SHARE = 0.08
FLOORS = (np.arange(1, 7), (0.05, 0.22, 0.35, 0.25, 0.09, 0.04))
WARD_MISMATCHES = 5  # per ARTICLE_DOSSIERS dossiers

MATERIALS_SHARE = 0.45
LINKED_SHARE = 0.6  # of the materials permits
#: Deliberate cases per SIDEWALK_PERMITS_PER_HALF_YEAR sidewalk permits.
CASES = {"merge_candidates": 25, "clash_pairs": 15, "opportunity_pairs": 10, "clearance": 20}
HUB_CLASHES = 3  # one permit overlapping this many others
OTHER_PURPOSES = {"BUSINESS": 0.4, "PARKING": 0.25, "WEDDING_FUNERAL": 0.2, "EVENT": 0.15}
DURATION_DAYS = {"MATERIALS": (7, 60), "BUSINESS": (30, 180), "PARKING": (30, 180),
                 "WEDDING_FUNERAL": (1, 3), "EVENT": (1, 5)}
MIN_CLEARANCE = 1.5
FAR_FROM_SITES = 10.0  # metres between an unrelated sidewalk permit and any dossier parcel
EDGE = 0.1  # metres a permit keeps from the side lines of its lot
MAX_OCCUPANCY = 0.6  # largest share of the lots that dossiers (and sidewalk permits) may take


def build(calendar: domain.Calendar | None = None, *, seed: int = 2022, scale: float = 1.0):
    """The demo layers and metadata: ``(frames, meta)``.

    ``frames`` maps ``wards``, ``construction_permits`` and
    ``sidewalk_permits`` to GeoDataFrames in EPSG:5899 with the schema's
    columns; ``scale`` multiplies the numbers of dossiers and permits
    (1.0: exactly the report's figures).
    """
    wards = demo_wards.wards_frame()
    w2022 = _set_2022(wards)
    frames = generate(_count(ARTICLE_DOSSIERS * scale), _count(SIDEWALK_PERMITS_PER_HALF_YEAR * scale),
                      wards=w2022, extent_km2=float(w2022.area.sum()) / 1e6, seed=seed, calendar=calendar)
    frames["wards"] = wards
    meta = {"as_of": AS_OF.isoformat(), "demo": True, "source": SOURCE}
    return {name: frames[name] for name in ("wards", "construction_permits", "sidewalk_permits", "sidewalks")}, meta


def generate(n_permits: int, n_sidewalk: int = 0, *, wards: gpd.GeoDataFrame | None = None,
             extent_km2: float | None = None, seed: int = 2022, calendar: domain.Calendar | None = None,
             period: tuple[dt.date, dt.date] = PERIOD, as_of: dt.date = AS_OF) -> dict[str, gpd.GeoDataFrame]:
    """``n_permits`` dossiers and ``n_sidewalk`` sidewalk permits on a synthetic street grid.

    ``wards`` (``ward_code``, ``name``, polygons in EPSG:5899; default: the
    six 2022 demo wards) is scaled about its centre to cover
    ``extent_km2``; by default it keeps its real size unless the parcels
    need more room (dossiers and sidewalk permits take at most
    :data:`MAX_OCCUPANCY` of the lots).
    Dossiers are received on working days of ``period`` and checked at
    ``as_of``.  Returns ``wards`` (as used), ``construction_permits`` and
    ``sidewalk_permits`` and ``sidewalks`` (both sides of every street of
    the grid, one per block side, see :func:`sidewalks_frame`).
    Vectorised: a million dossiers take about 20 s.
    """
    calendar = calendar or domain.Calendar()
    if wards is None:
        wards = _set_2022(demo_wards.wards_frame())
    area_km2 = float(wards.area.sum()) / 1e6
    needed_km2 = 1.15 * (n_permits + n_sidewalk) / (demo_lots.LOTS_PER_KM2 * MAX_OCCUPANCY)
    target_km2 = max(area_km2, needed_km2) if extent_km2 is None else extent_km2
    if not np.isclose(target_km2, area_km2):
        wards = scale_wards(wards, np.sqrt(target_km2 / area_km2))
    rng = np.random.default_rng(seed)
    lots = demo_lots.make_lots(wards, rng)
    if n_permits > MAX_OCCUPANCY * len(lots):
        raise ValueError(f"{n_permits} parcels do not fit in {target_km2:.1f} km² ({len(lots)} lots); "
                         f"use generate() with extent_km2 of at least {needed_km2:.0f}")
    permits, site_lots, mismatched = _dossiers(lots, wards, n_permits, rng, calendar, period, as_of)
    sidewalk = _sidewalk_permits(lots, wards, permits, site_lots, mismatched, n_sidewalk, rng, as_of)
    return {"wards": wards, "construction_permits": permits, "sidewalk_permits": sidewalk,
            "sidewalks": sidewalks_frame(lots, wards)}


def _set_2022(wards: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The 2022 set of the demo wards (the one with an end date)."""
    return wards[wards["valid_to"].notna()].reset_index(drop=True)


def scale_wards(wards: gpd.GeoDataFrame, factor: float) -> gpd.GeoDataFrame:
    """``wards`` enlarged ``factor`` times (linear) about the centre of their bounds."""
    x0, y0, x1, y1 = wards.total_bounds
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    out = wards.copy()
    out.geometry = shapely.transform(wards.geometry.values, lambda xy: centre + (xy - centre) * factor)
    return out


def _count(x: float) -> int:
    """``x`` rounded half up (Python's ``round`` rounds half to even)."""
    return int(np.floor(x + 0.5))


def _choice(rng: np.random.Generator, mix: dict, n: int) -> np.ndarray:
    """``n`` codes drawn from a ``{code: weight}`` mix."""
    p = np.array(list(mix.values()), dtype=float)
    return rng.choice(np.array(list(mix), dtype=object), n, p=p / p.sum())


def _received_dates(n: int, rng: np.random.Generator, calendar: domain.Calendar, period) -> np.ndarray:
    """``n`` sorted receipt dates on the working days of ``period``, busier from March."""
    days = [d.date() for d in pd.date_range(*period) if calendar.is_working_day(d.date())]
    weights = np.array([MONTH_WEIGHTS.get(d.month, 1.0) for d in days])
    return np.sort(rng.choice(np.array(days, dtype="datetime64[D]"), n, p=weights / weights.sum()))


def _format_days(days: np.ndarray, fmt: str) -> np.ndarray:
    """``strftime`` of many dates, formatting each distinct date once."""
    uniq, inverse = np.unique(days, return_inverse=True)
    labels = np.array([pd.Timestamp(d).strftime(fmt) for d in uniq], dtype=object)
    return labels[inverse]


def _numbered(prefix: np.ndarray | str, numbers: np.ndarray, width: int = 4) -> np.ndarray:
    """``prefix`` + zero-padded ``numbers`` (vectorised)."""
    return prefix + pd.Series(numbers.astype(str)).str.zfill(width).to_numpy(dtype=object)


def _dossiers(lots, wards, n, rng, calendar, period, as_of):
    """The construction-permit dossiers, the lot of each, and which ones declare a wrong ward."""
    site_lots = rng.choice(len(lots), n, replace=False)
    site = lots.iloc[site_lots].reset_index(drop=True)
    received = _received_dates(n, rng, calendar, period)
    procedure = _choice(rng, PROCEDURE_MIX, n)
    category = np.where(rng.random(n) < OTHER_WORKS_SHARE, "OTHER", "HOUSE").astype(object)
    handling = _handling(received, procedure, category, rng, calendar, as_of)
    channel = _channels(n, rng)

    ward_idx = site["ward"].to_numpy().copy()
    mismatched = np.zeros(n, dtype=bool)
    if len(wards) > 1:
        picked = rng.choice(n, min(n, _count(WARD_MISMATCHES * n / ARTICLE_DOSSIERS)), replace=False)
        mismatched[picked] = True
        ward_idx[picked] = (ward_idx[picked] + rng.integers(1, len(wards), len(picked))) % len(wards)
    ward_codes = wards["ward_code"].astype(str).to_numpy(dtype=object)
    ward_names = wards["name"].astype(str).to_numpy(dtype=object)

    geometry = demo_lots.lot_polygons(site)
    plot_area = shapely.area(geometry)
    floors = rng.choice(FLOORS[0], n, p=FLOORS[1])
    footprint = np.round(plot_area * rng.uniform(0.65, 0.95, n), 1)
    owner, owner_id = demo_names.people(rng, n)
    frame = pd.DataFrame({
        "dossier_code": _numbered("XD-" + _format_days(received, "%y%m%d") + "-", np.arange(1, n + 1)),
        "ward_code": ward_codes[ward_idx],
        "procedure": procedure,
        "work_category": category,
        "channel": channel,
        "received_on": received.astype("datetime64[ms]"),
        **handling,
        "owner_name": owner,
        "owner_id_no": owner_id,
        "site_address": _address(site, ward_names[ward_idx]),
        "street": site["street"].to_numpy(dtype=object),
        "map_sheet_no": site["map_sheet_no"].astype(str).to_numpy(dtype=object),
        "parcel_no": site["parcel_no"].astype(str).to_numpy(dtype=object),
        "plot_area_m2": plot_area,
        "footprint_m2": footprint,
        "floor_area_m2": np.round(footprint * (1 + (floors - 1) * rng.uniform(0.85, 1.0, n)), 1),
        "floors": floors,
        "height_m": np.round(floors * 3.5 + rng.uniform(0.3, 1.5, n), 1),
    })
    frame = gpd.GeoDataFrame(frame[CONSTRUCTION_PERMITS.field_names], geometry=geometry, crs=STORE_CRS)
    return frame, site_lots, mismatched


def _handling(received, procedure, category, rng, calendar, as_of) -> dict[str, np.ndarray]:
    """Status, due/completed/issued dates and permit numbers of dossiers as at ``as_of``.

    Every dossier due by ``as_of`` is closed on or before its due date
    (mostly early); the others are still open.  So nothing is late.
    """
    n = len(received)
    received_s = pd.Series(received.astype("datetime64[ms]"))
    proc_s, cat_s = pd.Series(procedure), pd.Series(category)
    due = domain.due_date(received_s, proc_s, cat_s, calendar).to_numpy().astype("datetime64[D]")
    days = domain.statutory_days(proc_s, cat_s).to_numpy()
    as_of_d = np.datetime64(as_of, "D")
    closed = due <= as_of_d
    outcome = np.where(closed, _choice(rng, CLOSED_MIX, n), np.array(None, dtype=object))
    steps = np.where(rng.random(n) < ON_DUE_SHARE, days, rng.integers(np.ceil(days * 0.3).astype(int), days))
    steps = np.where(outcome == "WITHDRAWN", rng.integers(1, days), steps)
    steps = np.where(outcome == "NOT_ACCEPTED", 0, steps)
    completed = calendar.add_working_days(received_s, steps).to_numpy().astype("datetime64[D]")
    completed = np.where(closed, completed, np.datetime64("NaT"))
    granted = outcome == "GRANTED"
    recent = completed > as_of_d - np.timedelta64(14, "D")
    status = np.where(granted, np.where(recent & (rng.random(n) < 0.5), "RESULT_READY", "RETURNED"), outcome)
    issued = np.where(granted, completed, np.datetime64("NaT"))
    permit_no = np.full(n, None, dtype=object)
    order = np.flatnonzero(granted)[np.argsort(issued[granted], kind="stable")]
    permit_no[order] = np.arange(1, len(order) + 1).astype(str).astype(object) + "/GPXD"
    return {
        "permit_no": permit_no,
        "status": np.where(closed, status, _choice(rng, OPEN_MIX, n)).astype(object),
        "due_on": due.astype("datetime64[ms]"),
        "completed_on": completed.astype("datetime64[ms]"),
        "issued_on": issued.astype("datetime64[ms]"),
    }


def _channels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Exactly :data:`ONLINE_SHARE` online (rounded), a few by post, the rest in person."""
    channel = np.full(n, "IN_PERSON", dtype=object)
    shuffled = rng.permutation(n)
    n_online = _count(n * ONLINE_SHARE)
    channel[shuffled[:n_online]] = "ONLINE"
    channel[shuffled[n_online:n_online + _count((n - n_online) * POST_SHARE_OF_OFFLINE)]] = "POST"
    return channel


def _plan(n: int) -> dict[str, int]:
    """How many sidewalk permits play each role among ``n``."""
    r = n / SIDEWALK_PERMITS_PER_HALF_YEAR
    materials = _count(n * MATERIALS_SHARE)
    linked = _count(materials * LINKED_SHARE)
    clashes = _count(CASES["clash_pairs"] * r)
    hubs = 1 if clashes >= HUB_CLASHES else 0
    plan = {"materials": materials, "linked": linked,
            "merge": min(_count(CASES["merge_candidates"] * r), materials - linked),
            "hub": hubs, "clash_pairs": clashes - HUB_CLASHES * hubs,
            "opportunity_pairs": _count(CASES["opportunity_pairs"] * r), "clearance": _count(CASES["clearance"] * r)}
    plan["others"] = ((1 + HUB_CLASHES) * hubs + 2 * plan["clash_pairs"] + 2 * plan["opportunity_pairs"]
                      + plan["clearance"])
    if plan["linked"] + plan["merge"] + plan["others"] > n:
        raise ValueError(f"{n} sidewalk permits are too few for the planned cases")
    return plan


def _far_first(candidates: np.ndarray, strips: np.ndarray, sites: shapely.STRtree, allowed: int = 0):
    """``candidates`` with those whose strip has at most ``allowed`` dossier parcels within
    :data:`FAR_FROM_SITES` first (judged by bounding boxes: a strip called far is far)."""
    x0, y0, x1, y1 = shapely.bounds(strips).T
    boxes = shapely.box(x0 - FAR_FROM_SITES, y0 - FAR_FROM_SITES, x1 + FAR_FROM_SITES, y1 + FAR_FROM_SITES)
    near = np.bincount(sites.query(boxes)[0], minlength=len(candidates)) > allowed
    return candidates[np.argsort(near, kind="stable")]


def _sidewalk_permits(lots, wards, permits, site_lots, mismatched, n, rng, as_of):
    """The sidewalk-use permits, with the deliberate cases of :data:`CASES` (see the module notes)."""
    if n == 0:
        return _sidewalk_frame(lots, wards, pd.DataFrame(columns=_PART_COLUMNS), rng, as_of)
    plan = _plan(n)
    sites = shapely.STRtree(permits.geometry.values)
    full = lots["sidewalk_m"].to_numpy()

    # Lots of granted, correctly declared dossiers with no other dossier parcel nearby.
    eligible = np.flatnonzero(permits["issued_on"].notna().to_numpy() & ~mismatched)
    eligible = eligible[rng.permutation(len(eligible))[:3 * (plan["linked"] + plan["merge"]) + 100]]
    e_lots = lots.iloc[site_lots[eligible]]
    strips = demo_lots.sidewalk_polygons(e_lots, e_lots["a0"], e_lots["a1"], full[site_lots[eligible]])
    dossier_rows = _far_first(eligible, strips, sites, allowed=1)[:plan["linked"] + plan["merge"]]

    # Free lots: every fourth lot of a block side, with the next two on the same side, none a dossier's.
    taken = np.zeros(len(lots), dtype=bool)
    taken[site_lots] = True
    side_id, pos = lots["side_id"].to_numpy(), lots["pos"].to_numpy()
    spaced = np.zeros(len(lots), dtype=bool)
    spaced[:-2] = (pos[:-2] % 4 == 0) & (side_id[2:] == side_id[:-2]) & ~taken[:-2] & ~taken[1:-1] & ~taken[2:]
    free = np.flatnonzero(spaced)
    need = n - len(dossier_rows)
    free = free[rng.permutation(len(free))[:3 * need + 100]]
    f_lots, f_next = lots.iloc[free], lots.iloc[free + 2]
    strips = demo_lots.sidewalk_polygons(f_lots, f_lots["a0"].to_numpy(), f_next["a1"].to_numpy(), full[free])
    free = _far_first(free, strips, sites)[:need]
    if len(free) < need:  # a crowded extent (benchmarks): any other lot, but none beside the hub
        taken[free] = True
        if plan["hub"] and len(free):
            taken[free[0] + np.arange(HUB_CLASHES)] = True
        rest = np.flatnonzero(~taken)
        free = np.concatenate([free, rest[rng.permutation(len(rest))[:need - len(free)]]])
    if len(free) < need:
        raise ValueError(f"not enough free lots for {n} sidewalk permits; use generate() with a larger extent_km2")

    # Hand the free lots and the purposes out to the roles, in this order.
    n_plain = need - plan["others"]  # fewer dossiers to front leave more plain permits
    hub, clash, opportunity, clearance, plain, _ = np.split(free, np.cumsum(
        [plan["hub"], plan["clash_pairs"], plan["opportunity_pairs"], plan["clearance"], n_plain]))
    counts = [HUB_CLASHES * plan["hub"], *[plan["clash_pairs"]] * 2, *[plan["opportunity_pairs"]] * 2,
              plan["clearance"], n_plain]
    purposes = _choice(rng, OTHER_PURPOSES, sum(counts))
    extra = min(len(purposes), plan["materials"] - len(dossier_rows))
    purposes[rng.choice(len(purposes), extra, replace=False)] = "MATERIALS"
    p_hub, p_clash_a, p_clash_b, p_opp_a, p_opp_b, p_clearance, p_plain = np.split(purposes, np.cumsum(counts)[:-1])
    p = _Permits(lots, rng, as_of)
    parts = [
        p.at_sites(site_lots[dossier_rows], permits.iloc[dossier_rows], np.arange(len(dossier_rows)) < plan["linked"]),
        *[p.hub(lot, p_hub) for lot in hub],
        p.clash_pairs(clash, p_clash_a, p_clash_b),
        p.opportunity_pairs(opportunity, p_opp_a, p_opp_b),
        p.singles(clearance, p_clearance, clearance=True),
        p.singles(plain, p_plain, clearance=False).assign(plain=True),
    ]
    return _sidewalk_frame(lots, wards, pd.concat(parts, ignore_index=True), rng, as_of)


_PART_COLUMNS = ["lot", "a0", "a1", "used", "purpose", "start", "end", "dossier", "applicant", "plain"]


class _Permits:
    """Sidewalk permits of each role, as rows (lot, span, used width, purpose, dates), vectorised."""

    def __init__(self, lots: pd.DataFrame, rng: np.random.Generator, as_of: dt.date):
        """Permits on ``lots``, dated in the year of ``as_of``."""
        self.lots, self.rng = lots, rng
        self.as_of = np.datetime64(as_of, "D")
        self.first_day = np.datetime64(f"{as_of.year}-01-04", "D")
        self.last_day = np.datetime64(f"{as_of.year}-12-31", "D")

    def _span(self, lot, first: float = 0.0, last: float = 1.0):
        """Stretches of the lots' frontages, fractions ``first``–``last``, kept off their side lines."""
        a0, a1 = self.lots["a0"].to_numpy()[lot], self.lots["a1"].to_numpy()[lot]
        w = a1 - a0
        return np.maximum(a0 + first * w, a0 + EDGE), np.minimum(a0 + last * w, a1 - EDGE)

    def _used(self, lot) -> np.ndarray:
        """Used widths leaving at least the minimum pedestrian width."""
        sidewalk = self.lots["sidewalk_m"].to_numpy()[lot]
        return np.round(self.rng.uniform(1.0, sidewalk - MIN_CLEARANCE), 1)

    def _days(self, k: int, low: int, high: int) -> np.ndarray:
        """``k`` random whole days in ``low``–``high``."""
        return self.rng.integers(low, high + 1, k).astype("timedelta64[D]")

    def _starts(self, k: int, latest=None) -> np.ndarray:
        """Start days between early January and ``latest`` (default: three weeks after the as-of date)."""
        latest = self.as_of + np.timedelta64(23, "D") if latest is None else latest
        return self.first_day + self._days(k, 0, int((latest - self.first_day).astype(int)))

    def _ends(self, purpose, start, cap: int | None = None) -> np.ndarray:
        """Last days of permits for ``purpose`` starting on ``start``, within the year."""
        low = np.array([DURATION_DAYS[p][0] for p in purpose], dtype=np.int64)
        high = np.array([DURATION_DAYS[p][1] for p in purpose], dtype=np.int64)
        days = self.rng.integers(low, high + 1) if len(purpose) else low
        days = np.minimum(days, cap) if cap else days
        return np.minimum(start + (days - 1).astype("timedelta64[D]"), self.last_day)

    def _part(self, lot, span, used, purpose, start, end, **extra) -> pd.DataFrame:
        """Rows of permits."""
        return pd.DataFrame({"lot": lot, "a0": span[0], "a1": span[1], "used": used,
                             "purpose": np.asarray(purpose, dtype=object), "start": start, "end": end, **extra})

    def at_sites(self, lot, dossiers: pd.DataFrame, linked) -> pd.DataFrame:
        """Materials permits in front of dossiers' parcels during their works, linked or not."""
        start = dossiers["issued_on"].to_numpy().astype("datetime64[D]") + self._days(len(lot), 0, 40)
        purpose = np.full(len(lot), "MATERIALS", dtype=object)
        return self._part(lot, self._span(lot), self._used(lot), purpose, start, self._ends(purpose, start),
                          dossier=np.where(linked, dossiers["dossier_code"].to_numpy(), None),
                          applicant=dossiers["owner_name"].to_numpy())

    def singles(self, lot, purpose, *, clearance: bool) -> pd.DataFrame:
        """Permits alone in front of free lots; ``clearance`` leaves less than the minimum to pedestrians."""
        if clearance:
            used = np.round(self.lots["sidewalk_m"].to_numpy()[lot] - self.rng.uniform(0.3, 1.4, len(lot)), 1)
        else:
            used = self._used(lot)
        start = self._starts(len(lot))
        return self._part(lot, self._span(lot), used, purpose, start, self._ends(purpose, start))

    def clash_pairs(self, lot, first, second) -> pd.DataFrame:
        """Two permits per lot overlapping in space and time."""
        start = self._starts(len(lot))
        end = self._ends(first, start)
        start2 = start + (self.rng.random(len(lot)) * ((end - start).astype(int) + 1)).astype("timedelta64[D]")
        return pd.concat([
            self._part(lot, self._span(lot, 0.0, 0.7), self._used(lot), first, start, end),
            self._part(lot, self._span(lot, 0.35, 1.0), self._used(lot), second, start2, self._ends(second, start2)),
        ])

    def opportunity_pairs(self, lot, first, second) -> pd.DataFrame:
        """Two permits per lot at the same place, the second starting 5–85 days after the first ends."""
        start = self._starts(len(lot), np.datetime64(f"{self.last_day.astype(object).year}-05-31", "D"))
        end = self._ends(first, start, cap=90)
        start2 = end + self._days(len(lot), 5, 85)
        return pd.concat([
            self._part(lot, self._span(lot), self._used(lot), first, start, end),
            self._part(lot, self._span(lot, 0.2, 0.8), self._used(lot), second, start2, self._ends(second, start2)),
        ])

    def hub(self, lot: int, purposes) -> pd.DataFrame:
        """A wedding/event permit along :data:`HUB_CLASHES` lots, each with its own permit at the time."""
        day = self._starts(1)
        subs = lot + np.arange(HUB_CLASHES)
        purpose = self.rng.choice(np.array(["WEDDING_FUNERAL", "EVENT"], dtype=object), 1)
        span = (self._span(subs[:1])[0], self._span(subs[-1:])[1])
        return pd.concat([
            self._part([lot], span, self._used([lot]), purpose, day, day + self._days(1, 0, 2)),
            self._part(subs, self._span(subs), self._used(subs), purposes,
                       day - self._days(HUB_CLASHES, 0, 20),
                       np.minimum(day + self._days(HUB_CLASHES, 0, 30), self.last_day)),
        ])


def _sidewalk_frame(lots, wards, rows: pd.DataFrame, rng, as_of) -> gpd.GeoDataFrame:
    """The sidewalk-permit layer frame of the permit rows, numbered by start date."""
    rows = rows.reindex(columns=_PART_COLUMNS)
    n = len(rows)
    at = lots.iloc[rows["lot"].to_numpy(dtype=np.int64)].reset_index(drop=True)
    geometry = demo_lots.sidewalk_polygons(at, rows["a0"], rows["a1"], rows["used"])
    start = rows["start"].to_numpy().astype("datetime64[D]")
    plain = rows["plain"].fillna(False).to_numpy(dtype=bool)
    as_of_d = np.datetime64(as_of, "D")
    status = np.where(start > as_of_d, _choice(rng, {"RETURNED": 0.6, "PROCESSING": 0.25, "RECEIVED": 0.15}, n),
                      _choice(rng, {"RETURNED": 0.95, "REFUSED": 0.03, "WITHDRAWN": 0.02}, n))
    applicant = rows["applicant"].to_numpy(dtype=object)
    names, _ = demo_names.people(rng, n)
    order = np.lexsort((rng.random(n), start))
    number = np.empty(n, dtype=np.int64)
    number[order] = np.arange(1, n + 1)
    ward_names = wards["name"].astype(str).to_numpy().astype(object)
    frame = pd.DataFrame({
        "permit_no": _numbered(f"VH-{as_of.year}-", number),
        "ward_code": wards["ward_code"].astype(str).to_numpy(dtype=object)[at["ward"].to_numpy()],
        "purpose": rows["purpose"].to_numpy(dtype=object),
        "status": np.where(plain, status, "RETURNED").astype(object),
        "channel": _choice(rng, {"ONLINE": 0.45, "IN_PERSON": 0.52, "POST": 0.03}, n),
        "applicant_name": np.where(pd.isna(applicant), names, applicant),
        "address": _address(at, ward_names[at["ward"].to_numpy()]),
        "street": at["street"].to_numpy(dtype=object),
        "start_on": start.astype("datetime64[ms]"),
        "end_on": rows["end"].to_numpy().astype("datetime64[D]").astype("datetime64[ms]"),
        "sidewalk_width_m": at["sidewalk_m"].to_numpy(dtype=float),
        "used_width_m": rows["used"].to_numpy(dtype=float),
        "used_area_m2": shapely.area(geometry),
        "construction_dossier_code": rows["dossier"].to_numpy(dtype=object),
    })
    frame = gpd.GeoDataFrame(frame[SIDEWALK_PERMITS.field_names], geometry=geometry, crs=STORE_CRS)
    return frame.sort_values("permit_no", ignore_index=True)


#: Street class of a street by its carriageway width (metres): wide streets are main streets.
STREET_CLASS_BY_CARRIAGEWAY = {10.5: "MAIN", 7.5: "SECONDARY", 5.5: "LANE"}


def sidewalks_frame(lots: pd.DataFrame, wards: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The ``sidewalks`` layer of the street grid: one sidewalk per block side, in front of its lots.

    ``sidewalk_id`` is ``SW-<ward code>-<number>`` (numbered along the
    grid), ``width_m`` the sidewalk's width, ``street_class`` from the
    carriageway's width (:data:`STREET_CLASS_BY_CARRIAGEWAY`).
    """
    sides, geometry = demo_lots.block_sidewalks(lots)
    codes = wards["ward_code"].astype(str).to_numpy(dtype=object)[sides["ward"].to_numpy()]
    number = sides.groupby("ward").cumcount().to_numpy() + 1
    classes = np.array([STREET_CLASS_BY_CARRIAGEWAY[float(c)] for c in sides["carriage_m"]], dtype=object) \
        if len(sides) else np.array([], dtype=object)
    frame = pd.DataFrame({
        "sidewalk_id": _numbered("SW-" + codes + "-", number),
        "ward_code": codes,
        "street": sides["street"].to_numpy(dtype=object),
        "width_m": sides["sidewalk_m"].to_numpy(dtype=float),
        "street_class": classes,
    })
    frame = gpd.GeoDataFrame(frame[SIDEWALKS.field_names], geometry=geometry, crs=STORE_CRS)
    return frame.sort_values("sidewalk_id", ignore_index=True)


def _address(at: pd.DataFrame, ward_names: np.ndarray) -> np.ndarray:
    """"<house no> <street>, phường <ward>" for lots."""
    house = at["house_no"].to_numpy().astype(str).astype(object)
    return house + " " + at["street"].to_numpy(dtype=object) + ", phường " + ward_names
