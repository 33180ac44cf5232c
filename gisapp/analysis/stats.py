"""Numbers and records the pages show: the ward dashboard and the permit page.

Counting is done by pure functions over frames (``ward_counts``,
``monthly_counts``, ``classify``, ``monthly_svg``), tested without Flask.
Two orchestrators, :func:`dashboard` and :func:`permit_detail`, read what
they need through the :class:`~gisapp.store.Store` interface — filtered in
the store and streamed in batches, never everything loaded then filtered.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely
from markupsafe import Markup, escape

from gisapp import domain, geo, history
from gisapp.analysis.counts import dossier_counts, matching, per_version, ward_matching
from gisapp.filters import Filter
from gisapp.inspections import LOCAL
from gisapp.store import Store

PERMITS = "construction_permits"
SIDEWALK = "sidewalk_permits"
FINDINGS = "findings"

#: Counters kept per ward; shares are derived from them.
COUNTERS = ("received", "online", "open", "overdue", "closed_timed", "on_time", "late", "resolved")
STATUS_PREFIX = "status_"
#: Year of a ward set → the day whose wards form it (the end of that year).
WARD_SETS = {"2022": dt.date(2022, 12, 31), "2025": dt.date(2025, 12, 31)}


#: Fields of a dossier the dashboard counts with.
DASHBOARD_FIELDS = ["ward_code", "status", "procedure", "work_category", "channel", "received_on", "due_on",
                    "completed_on"]


# -- reading only what is needed --------------------------------------------------

def attribute_batches(store: Store, layer: str, flt: Filter, fields: list[str], batch_size: int = 20000):
    """Frames of ``fields`` of the matches, in batches, Arrow-read (no geometry decoded)."""
    for table in store.iter_arrow(layer, flt, fields=fields, batch_size=batch_size):
        yield table.drop_columns(["geometry"]).to_pandas(date_as_object=False)


def ward_frame(store: Store, on: dt.date) -> pd.DataFrame:
    """``ward_code``, ``name`` and ``geometry`` (EPSG:5899) of the wards in force on ``on``, ordered by code."""
    flt = Filter(date_from=on, date_to=on)
    table = store.read_arrow("wards", flt, fields=["ward_code", "name"])
    if table is None:
        return pd.DataFrame({"ward_code": [], "name": [], "geometry": []})
    frame = pd.DataFrame({"ward_code": table["ward_code"].to_pylist(), "name": table["name"].to_pylist(),
                          "geometry": shapely.from_wkb(table["geometry"].to_numpy(zero_copy_only=False))})
    frame["ward_code"] = frame["ward_code"].astype(str)
    return frame.drop_duplicates("ward_code").sort_values("ward_code").reset_index(drop=True)


# -- per-dossier derived values ---------------------------------------------------

def due_dates(frame: pd.DataFrame, calendar: domain.Calendar) -> pd.Series:
    """The stored ``due_on``, computed from the statutory time where it is missing."""
    due = pd.to_datetime(frame["due_on"]) if "due_on" in frame else pd.Series(pd.NaT, index=frame.index)
    missing = due.isna() & frame["received_on"].notna()
    if missing.any():
        sub = frame[missing]
        due = due.astype("datetime64[ms]")
        due[missing] = domain.due_date(sub["received_on"], sub["procedure"], sub["work_category"], calendar).to_numpy()
    return due


def timeliness(frame: pd.DataFrame, as_of: dt.date, calendar: domain.Calendar) -> pd.Series:
    """Timeliness code of every dossier (EARLY/ON_TIME/LATE, IN_TIME/OVERDUE, None)."""
    if not len(frame):
        return pd.Series([], dtype=object, index=frame.index)
    return domain.timeliness(frame["status"], due_dates(frame, calendar), frame["completed_on"], as_of)


# -- ward dashboard: pure counting --------------------------------------------------

def ward_counts(frame: pd.DataFrame, as_of: dt.date, calendar: domain.Calendar) -> pd.DataFrame:
    """Counters per ``ward_code`` for a frame of construction dossiers.

    Columns: the :data:`COUNTERS` and ``status_<CODE>`` for every status;
    integer values; one row per ward present.  Frames of several batches
    add up with :func:`add_counts`.
    """
    if not len(frame):
        return _counters(frame, pd.Series([], dtype=object), None)
    return _counters(frame, timeliness(frame, as_of, calendar), None)


def _counters(frame: pd.DataFrame, timely: pd.Series, weight: pd.Series | None) -> pd.DataFrame:
    """:func:`ward_counts` of rows with their timeliness, each row counting ``weight`` dossiers (default 1)."""
    columns = list(COUNTERS) + [STATUS_PREFIX + s for s in domain.STATUSES]
    if not len(frame):
        return pd.DataFrame(columns=columns, dtype="int64")
    is_open = frame["status"].isin(domain.OPEN_STATUSES)
    parts = pd.DataFrame({
        "received": 1,
        "online": frame["channel"].eq("ONLINE"),
        "open": is_open,
        "overdue": timely.eq("OVERDUE"),
        "closed_timed": timely.isin(["EARLY", "ON_TIME", "LATE"]),
        "on_time": timely.isin(["EARLY", "ON_TIME"]),
        "late": timely.eq("LATE"),
        "resolved": ~is_open & frame["completed_on"].notna(),
    }, index=frame.index)
    for status in domain.STATUSES:
        parts[STATUS_PREFIX + status] = frame["status"].eq(status)
    parts = parts.astype("int64")
    if weight is not None:
        parts = parts.mul(weight.to_numpy(dtype="int64"), axis=0)
    parts["ward_code"] = frame["ward_code"].fillna("").astype(str)
    return parts.groupby("ward_code").sum().astype("int64")[columns]


def grouped_counts(groups: pd.DataFrame, as_of: dt.date,
                   calendar: domain.Calendar) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """:func:`ward_counts`, :func:`monthly_counts` and the dossiers without history, of
    :meth:`Store.dossier_counts` groups (timeliness from the store where it had a due date, else computed
    here with ``calendar`` at ``as_of``): the same figures as counting the dossiers one by one."""
    if not len(groups):
        return ward_counts(pd.DataFrame(), as_of, calendar), monthly_counts(pd.DataFrame()), 0
    frame = pd.DataFrame({
        "ward_code": groups["ward_code"], "status": groups["status"],
        "channel": groups["online"].map({True: "ONLINE", False: None}),
        # only "is there one" matters to the counters: the resolved month stands for a completion date
        "completed_on": groups["resolved_month"].where(groups["resolved_month"].notna(), groups["completed_on"]),
    })
    timely = groups["timeliness"].astype(object).copy()
    missing = timely.isna().to_numpy()
    if missing.any():  # no stored due date: computed from receipt, procedure and category as the pages do
        sub = groups[missing]
        computed = timeliness(pd.DataFrame({
            "status": sub["status"], "due_on": pd.Series(pd.NaT, index=sub.index, dtype="datetime64[ms]"),
            "received_on": sub["received_on"], "procedure": sub["procedure"],
            "work_category": sub["work_category"], "completed_on": sub["completed_on"]}), as_of, calendar)
        timely[missing] = computed.to_numpy(dtype=object)
    counts = _counters(frame, timely, groups["n"])
    ward = groups["ward_code"].fillna("").astype(str)
    received = pd.DataFrame({"ward_code": ward, "month": groups["received_month"], "n": groups["n"]}).dropna()
    resolved = pd.DataFrame({"ward_code": ward, "month": groups["resolved_month"], "n": groups["n"]}).dropna()
    rec = received.groupby(["ward_code", "month"])["n"].sum().rename("received")
    res = resolved.groupby(["ward_code", "month"])["n"].sum().rename("resolved")
    if not len(rec) and not len(res):
        monthly = monthly_counts(pd.DataFrame())
    else:
        monthly = pd.concat([rec, res], axis=1).fillna(0).astype("int64")
        monthly.index.names = ["ward_code", "month"]
        monthly = monthly.sort_index()
    unknown = int(groups.loc[~groups["known"].to_numpy(dtype=bool), "n"].sum())
    return counts, monthly, unknown


def add_counts(a: pd.DataFrame | None, b: pd.DataFrame) -> pd.DataFrame:
    """Sum of two counter frames (wards in either)."""
    if a is None or not len(a):
        return b
    if not len(b):
        return a
    return a.add(b, fill_value=0).astype("int64")


def monthly_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Dossiers received and resolved per ward and month (``YYYY-MM``).

    Received counts by ``received_on``; resolved counts closed dossiers by
    ``completed_on``.  Index (ward_code, month); columns received, resolved.
    """
    empty = pd.DataFrame(columns=["received", "resolved"], dtype="int64",
                         index=pd.MultiIndex.from_tuples([], names=["ward_code", "month"]))
    if not len(frame):
        return empty
    ward = frame["ward_code"].fillna("").astype(str)
    received = pd.to_datetime(frame["received_on"]).dt.strftime("%Y-%m")
    done = ~frame["status"].isin(domain.OPEN_STATUSES) & frame["completed_on"].notna()
    completed = pd.to_datetime(frame.loc[done, "completed_on"]).dt.strftime("%Y-%m")
    rec = pd.DataFrame({"ward_code": ward, "month": received}).dropna().value_counts().rename("received")
    res = pd.DataFrame({"ward_code": ward[done], "month": completed}).dropna().value_counts().rename("resolved")
    out = pd.concat([rec, res], axis=1).fillna(0).astype("int64")
    out.index.names = ["ward_code", "month"]
    return out.sort_index()


def month_range(months) -> list[str]:
    """Every month (``YYYY-MM``) from the first to the last of ``months``, in order."""
    months = sorted(set(months))
    if not months:
        return []
    start, end = pd.Period(months[0], "M"), pd.Period(months[-1], "M")
    return [str(p) for p in pd.period_range(start, end, freq="M")]


def share(part: int, whole: int) -> float | None:
    """``part / whole`` or ``None`` when ``whole`` is 0."""
    return part / whole if whole else None


@dataclass
class WardRow:
    """One line of the dashboard: a ward (or the district total)."""

    code: str
    name: str
    counts: dict[str, int]
    sidewalk: int = 0
    findings: int = 0
    unpermitted: int = 0  # unpermitted occupancies still open today (recorded by inspectors)

    def __getattr__(self, name):
        counts = self.__dict__.get("counts", {})
        if name in counts:
            return counts[name]
        raise AttributeError(name)

    @property
    def online_share(self) -> float | None:
        """Share of dossiers filed online."""
        return share(self.counts["online"], self.counts["received"])

    @property
    def on_time_share(self) -> float | None:
        """Share of closed dossiers resolved early or on time."""
        return share(self.counts["on_time"], self.counts["closed_timed"])

    def status(self, code: str) -> int:
        """Dossiers of this ward in status ``code``."""
        return self.counts.get(STATUS_PREFIX + code, 0)


@dataclass
class Dashboard:
    """Everything the ward dashboard shows."""

    rows: list[WardRow]
    total: WardRow
    statuses: list[str]
    months: list[str]
    monthly: dict[str, dict[str, list[int]]]
    as_of: dt.date
    colors: dict[str, str] = field(default_factory=dict)
    legend: list[tuple[int, int, str]] = field(default_factory=list)
    without_history: int = 0  # dossiers shown with their current status: no history on or before ``as_of``
    historical: bool = False  # ``as_of`` was asked for (statuses from the history)


def build_rows(counts: pd.DataFrame, wards: list[tuple[str, str]],
               sidewalk: dict[str, int], findings: dict[str, int]) -> tuple[list[WardRow], WardRow]:
    """Dashboard rows for ``wards`` (code, name) in order, then wards only the data knows, and the total."""
    zero = {c: 0 for c in [*COUNTERS, *(STATUS_PREFIX + s for s in domain.STATUSES)]}
    names = dict(wards)
    codes = [c for c, _ in wards] + [c for c in counts.index if c not in names]
    rows = []
    for code in codes:
        values = {**zero, **(counts.loc[code].to_dict() if code in counts.index else {})}
        rows.append(WardRow(code, names.get(code) or str(code), {k: int(v) for k, v in values.items()},
                            sidewalk.get(code, 0), findings.get(code, 0)))
    total_counts = {k: int(counts[k].sum()) if k in counts else 0 for k in zero}
    total = WardRow("", "", total_counts, sum(sidewalk.values()), sum(findings.values()))
    return rows, total


#: Sequential palette for the choropleth (light → dark).
CHOROPLETH_COLORS = ("#eff3ff", "#bdd7e7", "#6baed6", "#3182bd", "#08519c")


def classify(values: dict[str, int], colors=CHOROPLETH_COLORS) -> tuple[dict[str, str], list[tuple[int, int, str]]]:
    """Equal-interval classes of ``values``: a colour per key and the legend (low, high, colour)."""
    if not values:
        return {}, []
    lo, hi = min(values.values()), max(values.values())
    n = len(colors)
    if hi == lo:
        return {k: colors[-1] for k in values}, [(lo, hi, colors[-1])]
    step = (hi - lo) / n
    # class i holds lo + i·step <= v < lo + (i+1)·step (the last one includes hi)
    bounds = [(int(np.ceil(lo + i * step)), int(np.ceil(lo + (i + 1) * step)) - 1 if i < n - 1 else hi)
              for i in range(n)]
    out = {}
    for key, v in values.items():
        idx = min(int((v - lo) / step), n - 1)
        out[key] = colors[idx]
    legend = [(a, b, c) for (a, b), c in zip(bounds, colors) if a <= b]
    return out, legend


def monthly_svg(months: list[str], received: list[int], resolved: list[int], *, title: str,
                labels: tuple[str, str], width: int = 380, height: int = 150) -> Markup:
    """A grouped bar chart (received, resolved per month) as inline SVG markup."""
    left, bottom, top = 30, 22, 18
    plot_w, plot_h = width - left - 6, height - bottom - top
    peak = max([*received, *resolved, 1])
    n = max(len(months), 1)
    slot = plot_w / n
    bar = max(min(slot * 0.38, 18), 1)
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
             f'<text x="{left}" y="12" class="chart-title">{escape(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 6}" y2="{top + plot_h}" class="axis"/>',
             f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" class="tick">{peak}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" class="tick">0</text>']
    for i, month in enumerate(months):
        x = left + i * slot + (slot - 2 * bar) / 2
        for j, (series, cls) in enumerate(((received, "received"), (resolved, "resolved"))):
            v = series[i] if i < len(series) else 0
            h = plot_h * v / peak
            parts.append(f'<rect class="bar-{cls}" x="{x + j * bar:.1f}" y="{top + plot_h - h:.1f}" '
                         f'width="{bar:.1f}" height="{h:.1f}"><title>{escape(labels[j])} {escape(month)}: '
                         f'{v}</title></rect>')
        parts.append(f'<text x="{left + (i + 0.5) * slot:.1f}" y="{height - 8}" text-anchor="middle" '
                     f'class="tick">{escape(month[5:])}/{escape(month[2:4])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


# -- orchestrators over a store -------------------------------------------------------

def wards_in_force(store: Store, on: dt.date) -> list[tuple[str, str]]:
    """(code, name) of the wards in force on ``on``, ordered by code."""
    frame = ward_frame(store, on)
    return list(zip(frame["ward_code"], frame["name"].astype(str)))


def ward_bounds(store: Store, on: dt.date) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """((south, west), (north, east)) in WGS84 of the wards in force on ``on``; ``None`` without wards."""
    frame = ward_frame(store, on)
    if not len(frame):
        return None
    box = geo.transform([shapely.box(*shapely.total_bounds(np.asarray(frame["geometry"])))])[0]
    x1, y1, x2, y2 = box.bounds
    return (y1, x1), (y2, x2)


def side_filter(flt: Filter) -> Filter:
    """The part of a dossier filter that applies to sidewalk permits and findings: wards, dates, day, as of."""
    return Filter(wards=flt.wards, date_from=flt.date_from, date_to=flt.date_to, day=flt.day, as_of=flt.as_of)


def as_of_batches(store: Store, flt: Filter, fields: list[str], batch_size: int = 20000):
    """Frames of ``fields`` of the dossiers matching ``flt``, as they were on ``flt.as_of`` when it is set.

    The store's filter already drops dossiers received after that day (and
    matches a status filter against the status of that day); each batch then
    gets the statuses of that day from one history query for all dossiers
    (:meth:`Store.statuses_as_of`), and loses completion dates after it
    (:func:`gisapp.history.as_of_view`).  ``status_known`` says which rows
    had a history by then.
    """
    if flt.as_of is None:
        yield from attribute_batches(store, PERMITS, flt, fields, batch_size)
        return
    past = history.PastStatuses(store.statuses_as_of(PERMITS, flt.as_of))
    for batch in attribute_batches(store, PERMITS, flt, ["dossier_code", *fields], batch_size):
        yield history.as_of_view(batch, past, flt.as_of)


def ward_totals(store: Store, layer: str, flt: Filter, codes: list[str]) -> dict[str, int]:
    """Matches of ``flt`` in ``layer`` per ward of ``codes``, from one grouped query (not one count per ward)."""
    counts = store.aggregate(layer, flt)
    found = dict(zip(counts["ward_code"].astype(object), counts["count"].astype(int), strict=True))
    return {c: int(found.get(c, 0)) for c in codes}


def dashboard(store: Store, flt: Filter, calendar: domain.Calendar, batch_size: int = 20000) -> Dashboard:
    """The ward dashboard for the dossiers matching ``flt``, streamed from ``store``.

    With ``flt.as_of``: the dossiers received by that day with the status
    they had then, timeliness and overdue reckoned at that day, the wards in
    force then and the sidewalk permits active that day.
    """
    as_of = flt.as_of or store.as_of()
    wards = wards_in_force(store, as_of)
    if flt.wards:
        wards = [w for w in wards if w[0] in flt.wards]
    # the dossiers counted in groups over arrays kept in memory (else in one grouped query in the store), then
    # per group
    counts, monthly, unknown = grouped_counts(dossier_counts(store, flt, as_of), as_of, calendar)
    side = side_filter(flt)
    codes = [c for c, _ in wards] + [c for c in counts.index if c not in dict(wards)]
    sidewalk = ward_totals(store, SIDEWALK, side, codes)
    findings = ward_totals(store, FINDINGS, side, codes)
    rows, total = build_rows(counts, wards, sidewalk, findings)
    open_now = Filter(kinds=("UNPERMITTED",), date_from=dt.datetime.now(LOCAL).date() + dt.timedelta(days=1))
    unpermitted = ward_totals(store, FINDINGS, open_now, [row.code for row in rows])  # one grouped query
    for row in rows:
        row.unpermitted = unpermitted[row.code]
    total.unpermitted = store.count(FINDINGS, open_now.with_(wards=flt.wards))
    months = month_range(monthly.index.get_level_values("month"))
    series = {}
    for row in [*rows, total]:
        sub = monthly.xs(row.code, level="ward_code") if row.code and row.code in monthly.index.get_level_values(0) \
            else (monthly.groupby(level="month").sum() if not row.code else None)
        series[row.code] = {k: [int(sub[k].get(m, 0)) if sub is not None else 0 for m in months]
                            for k in ("received", "resolved")}
    statuses = [s for s in domain.STATUSES if total.status(s)]
    colors, legend = classify({r.code: r.received for r in rows})
    return Dashboard(rows, total, statuses, months, series, as_of, colors, legend, unknown, flt.as_of is not None)


#: Named periods: ``2022`` (the year), ``2022-H1``/``H2`` (half-years), ``2022-Q1``…``Q4`` (quarters).
_PERIOD = re.compile(r"^(\d{4})(?:-(H[12]|Q[1-4]))?$")


def parse_period(text: str) -> tuple[dt.date, dt.date]:
    """A period to compare: ``2022``, ``2022-H1``, ``2022-Q3`` or ``YYYY-MM-DD/YYYY-MM-DD`` (else ValueError)."""
    text = text.strip()
    m = _PERIOD.match(text.upper())
    if m:
        year, part = int(m.group(1)), m.group(2)
        first, months = (1, 12) if part is None else ((int(part[1]) - 1) * 6 + 1, 6) if part[0] == "H" \
            else ((int(part[1]) - 1) * 3 + 1, 3)
        start = dt.date(year, first, 1)
        end_month = first + months - 1
        end = dt.date(year, 12, 31) if end_month == 12 else dt.date(year, end_month + 1, 1) - dt.timedelta(days=1)
        return start, end
    a, sep, b = text.partition("/")
    try:
        start, end = dt.date.fromisoformat(a), dt.date.fromisoformat(b)
    except ValueError:
        raise ValueError(f"{text!r} is not a period (2022, 2022-H1, 2022-Q3 or YYYY-MM-DD/YYYY-MM-DD)") from None
    if not sep or start > end:
        raise ValueError(f"{text!r}: the period's start is after its end")
    return start, end


@dataclass
class Comparison:
    """The dashboard's figures for several periods side by side: dossiers received in each, as of its end."""

    periods: list[tuple[str, dt.date, dt.date]]  # label, first day, last day
    boards: list[Dashboard]

    @property
    def rows(self) -> list[tuple[str, str, list[WardRow]]]:
        """(code, name, that ward's row in each period), wards of every period, then the total (code ``""``)."""
        names: dict[str, str] = {}
        for board in self.boards:
            for r in board.rows:
                names.setdefault(r.code, r.name)
        out = []
        for code, name in names.items():
            rows = [next((r for r in b.rows if r.code == code), None) for b in self.boards]
            out.append((code, name, [r or WardRow(code, name, dict.fromkeys(b.total.counts, 0))
                                     for r, b in zip(rows, self.boards, strict=True)]))
        out.append(("", "", [b.total for b in self.boards]))
        return out


def compare(store: Store, flt: Filter, periods: list[str], calendar: domain.Calendar,
            today: dt.date | None = None) -> Comparison:
    """The dashboard of each period (``parse_period`` texts): dossiers received in it, as of its last day.

    A period that ends after today (or after the data's as-of date, when
    earlier) is counted as of that day instead.
    """
    parsed = [(p, *parse_period(p)) for p in periods]
    latest = min(today or dt.date.today(), store.as_of())
    boards = [dashboard(store, flt.with_(date_from=a, date_to=b, as_of=min(b, max(latest, a))), calendar)
              for _, a, b in parsed]
    return Comparison(parsed, boards)


@dataclass
class PermitDetail:
    """What the permit page shows about one dossier."""

    record: dict
    timeliness: str | None
    due_on: dt.date | None
    center: tuple[float, float]  # lat, lon
    bbox: tuple[float, float, float, float]  # WGS84 around the parcel and its neighbours
    linked: list[dict]
    nearby: list[dict]
    findings: list[dict]
    history: list[dict] = field(default_factory=list)  # its status changes, in order
    as_of: dt.date | None = None  # the day asked for (``as_of``); None: today's data
    status_then: str | None = None  # its status at the end of ``as_of`` (None: not yet received)
    received_then: bool = True  # it had been received by ``as_of``
    status_known: bool = True  # ``status_then`` comes from the history (else it is the current status)


def _records(frame: pd.DataFrame, extra: dict | None = None) -> list[dict]:
    out = []
    cols = [c for c in frame.columns if c != "geometry"]
    for i, row in enumerate(frame[cols].itertuples(index=False)):
        rec = {k: _plain(v) for k, v in zip(cols, row)}
        for k, values in (extra or {}).items():
            rec[k] = values[i]
        out.append(rec)
    return out


def _plain(value):
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if value is pd.NA:
        return None
    return value.item() if isinstance(value, np.generic) else value


def history_records(store: Store, layer: str, key: str) -> list[dict]:
    """The status changes of one feature, oldest first, as plain dicts (``changed_on`` a date)."""
    rows = store.status_history(layer, [key])
    return [{"status": r.status, "changed_on": r.changed_on.date(), "changed_at": r.changed_at, "note": r.note}
            for r in rows.itertuples(index=False)]


def permit_detail(store: Store, code: str, calendar: domain.Calendar, nearby_m: float = 20.0,
                  neighbours_m: float = 60.0, as_of: dt.date | None = None) -> PermitDetail | None:
    """The dossier ``code`` with its timeliness, linked and nearby sidewalk permits, findings and history.

    Nearby means within ``nearby_m`` metres (EPSG:5899) of the parcel.
    With ``as_of``: its status at the end of that day and its timeliness
    then.  ``None`` when no dossier has that code.
    """
    frame = store.get(PERMITS, code)
    if not len(frame):
        return None
    changes = history_records(store, PERMITS, code)
    status_then, known, received_then = None, True, True
    if as_of is not None:
        past = store.statuses_as_of(PERMITS, as_of, [code])
        view = history.as_of_view(frame, past, as_of)
        received_then = bool(len(view))
        if received_then:
            frame = view.drop(columns="status_known")
            status_then, known = view["status"].iloc[0], bool(view["status_known"].iloc[0])
        else:
            frame = frame.assign(completed_on=pd.NaT, issued_on=pd.NaT)
    day = as_of or store.as_of()
    timely = timeliness(frame, day, calendar).iloc[0] if received_then else None
    due = due_dates(frame, calendar).iloc[0]
    parcel = frame.geometry.iloc[0]
    # sidewalk permits: those naming the dossier, and those within nearby_m of the parcel
    linked_frame = store.read(SIDEWALK, Filter(dossiers=(code,)))
    around = _wgs84_bbox(parcel, nearby_m)
    near = store.read(SIDEWALK, Filter(bbox=around))
    if len(near):
        dist = shapely.distance(np.asarray(near.geometry.values), parcel)
        near = near.assign(distance_m=np.round(dist, 1))
        near = near[(near["distance_m"] <= nearby_m) & ~near["permit_no"].isin(linked_frame["permit_no"])]
    found = store.read(FINDINGS, Filter(involving=(code,)))
    center = geo.transform([parcel.representative_point()])[0]
    record = _records(frame)[0]
    return PermitDetail(
        record=record, timeliness=timely, due_on=None if pd.isna(due) else pd.Timestamp(due).date(),
        center=(center.y, center.x), bbox=_wgs84_bbox(parcel, neighbours_m),
        linked=_records(linked_frame), nearby=_records(near.sort_values("distance_m")) if len(near) else [],
        findings=_records(found), history=changes, as_of=as_of, status_then=status_then,
        received_then=received_then, status_known=known,
    )


@dataclass
class SidewalkDetail:
    """What the sidewalk permit page shows about one permit."""

    record: dict
    ward_name: str | None  # of its ward code among the wards in force on its first day
    center: tuple[float, float] | None  # lat, lon (None: the permit has no geometry)
    bbox: tuple[float, float, float, float] | None  # WGS84 around the permit and its neighbours
    dossier_exists: bool  # its construction dossier (if it names one) is in the store
    findings: list[dict]
    history: list[dict] = field(default_factory=list)  # its status changes, in order
    as_of: dt.date | None = None  # the day asked for (``as_of``)
    status_then: str | None = None  # its status at the end of ``as_of`` (its current one without history)
    status_known: bool = True  # ``status_then`` comes from the history
    active_then: bool = False  # ``as_of`` lies in its period


def sidewalk_detail(store: Store, permit_no: str, neighbours_m: float = 60.0,
                    as_of: dt.date | None = None) -> SidewalkDetail | None:
    """The sidewalk permit ``permit_no`` with its ward's name and the findings naming it (``None``: no such permit)."""
    frame = store.get(SIDEWALK, permit_no)
    if not len(frame):
        return None
    record = _records(frame)[0]
    geom = frame.geometry.iloc[0]
    found = store.read(FINDINGS, Filter(involving=(permit_no,)))
    names = dict(wards_in_force(store, record["start_on"])) if record.get("start_on") else {}
    dossier = record.get("construction_dossier_code")
    center = geo.transform([geom.representative_point()])[0] if geom is not None and not geom.is_empty else None
    return SidewalkDetail(
        record=record, ward_name=names.get(record.get("ward_code") or ""),
        center=(center.y, center.x) if center is not None else None,
        bbox=_wgs84_bbox(geom, neighbours_m) if center is not None else None,
        dossier_exists=bool(dossier and len(store.get(PERMITS, dossier)) > 0),
        findings=_records(found), history=history_records(store, SIDEWALK, permit_no), as_of=as_of,
        **_sidewalk_then(store, record, as_of),
    )


def _sidewalk_then(store: Store, record: dict, as_of: dt.date | None) -> dict:
    """A sidewalk permit's status on ``as_of`` and whether that day lies in its period."""
    if as_of is None:
        return {}
    past = store.statuses_as_of(SIDEWALK, as_of, [record["permit_no"]])
    start, end = record.get("start_on"), record.get("end_on")
    return {"status_then": past["status"].iloc[0] if len(past) else record.get("status"),
            "status_known": bool(len(past)),
            "active_then": bool(start and start <= as_of and (end is None or as_of <= end))}


def _wgs84_bbox(geom, buffer_m: float) -> tuple[float, float, float, float]:
    """WGS84 bounds of ``geom`` (EPSG:5899) grown by ``buffer_m`` metres."""
    box = shapely.box(*geom.buffer(buffer_m).bounds)
    minx, miny, maxx, maxy = (float(v) for v in geo.transform([box])[0].bounds)
    return minx, miny, maxx, maxy


def map_page(store: Store, flt: Filter) -> dict:
    """What the map page shows beside the map.

    Matching and total dossiers, the wards in force and their bounds, the
    as-of date, and ``counts`` of the features each map layer will hold.
    """
    as_of = flt.as_of or store.as_of()
    count = matching(store, flt)  # as of a day: from the kept arrays, not a join to the history
    side = side_filter(flt)
    # the sidewalk permits and findings as their layers' first view will group them per ward (kept per data
    # version: one scan of each layer for the page and its map, not two or three)
    counts = {"permits": count, **{name: int(ward_matching(store, layer, side)["count"].sum())
                                   for name, layer in (("sidewalk", SIDEWALK), ("findings", FINDINGS))}}
    # the findings layer is offered when some day of the slider has findings, not only the day shown
    has_findings = counts["findings"] > 0 or (flt.day is not None and store.count(FINDINGS, side.with_(day=None)) > 0)
    # every dossier and the slider's days: from the arrays, or the store's answers kept per data version
    return {"count": count, "total": matching(store, Filter()), "as_of": as_of,
            "wards": wards_in_force(store, as_of), "counts": counts, "bounds": ward_bounds(store, as_of),
            "day_range": per_version(store, ("day_range",), lambda: day_range(store)), "has_findings": has_findings}


def day_range(store: Store) -> tuple[dt.date, dt.date] | None:
    """The days the map's day slider spans: from the first dossier received or sidewalk permit started to
    the last sidewalk permit's end or the last dossier received (the as-of date when a permit is open-ended);
    ``None`` without data."""
    firsts, lasts = [], []
    for layer in (PERMITS, SIDEWALK):
        first, last = store.date_range(layer)
        if first:
            firsts.append(dt.date.fromisoformat(first))
            lasts.append(dt.date.fromisoformat(last) if last else store.as_of())
    return (min(firsts), max(lasts)) if firsts else None
