"""The figures of the review report: a period's dossiers, district-wide or for some wards.

Everything the dashboard shows comes from :func:`gisapp.analysis.stats.dashboard` (one path for both); the
report adds the figures per procedure, the sidewalk section (findings by kind and ward, and the merge
evidence of :func:`gisapp.analysis.overlaps.summarize`) and the lists of overdue dossiers and of clashes.
No Flask here: the web view and the CLI both call :func:`parse_query` then :func:`build_review`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gisapp import domain
from gisapp.analysis import overlaps, stats
from gisapp.errors import RequestError
from gisapp.filters import Filter, KnownWards, parse_filter
from gisapp.store import Store

#: How many overdue dossiers and clashes the report lists (the rest are counted).
LIST_ROWS = 25
#: Fields the overdue list reads beside the dashboard's.
OVERDUE_FIELDS = [*stats.DASHBOARD_FIELDS, "dossier_code", "site_address"]


class ReportTooLarge(RequestError):
    """413: more dossiers match than one report may hold (the limit is named)."""

    def __init__(self, matched: int, limit: int):
        super().__init__(413, "ReportTooLarge",
                         f"{matched:,} hồ sơ khớp bộ lọc, quá giới hạn {limit:,} của một báo cáo "
                         f"(GISAPP_REPORT_MAX_DOSSIERS); hãy chọn khoảng thời gian ngắn hơn hoặc một phường. / "
                         f"{matched:,} dossiers match, more than the {limit:,} one report may hold "
                         f"(GISAPP_REPORT_MAX_DOSSIERS); choose a shorter period or one ward.")


@dataclass(frozen=True)
class ReviewQuery:
    """What a review report covers: the map's filter (wards, dates, …) and the as-of date.

    ``as_of``: the day the figures are counted on, as the dashboard's ``/wards?as_of=`` counts them (the
    dossiers received by then with the status they had then, timeliness and overdue reckoned that day);
    ``None``: the data's own as-of date.  :attr:`filter` is ``flt`` with it, what every figure reads.
    """

    flt: Filter
    as_of: dt.date | None = None

    @property
    def filter(self) -> Filter:
        """The filter every figure reads: ``flt`` with ``as_of`` (when given) in it."""
        return self.flt if self.as_of is None else self.flt.with_(as_of=self.as_of)


def parse_query(args, known_wards: KnownWards = None) -> ReviewQuery:
    """A :class:`ReviewQuery` from request-like ``args`` (``ward``, ``from``, ``to``, the map's other filters).

    A bad value is the one :class:`~gisapp.errors.FilterError` (400) of the map's data, naming the parameter:
    an unknown ward, a date that is not one, ``from`` after ``to``, an ``as_of`` that is not a day.
    """
    flt, _ = parse_filter(args, "map", known_wards=known_wards)
    return ReviewQuery(flt.with_(bbox=None), flt.as_of)


@dataclass
class ProcedureRow:
    """One procedure's line on the cover."""

    code: str
    received: int
    resolved: int
    on_time: int
    late: int
    online: int
    overdue: int


@dataclass
class SidewalkRow:
    """One ward's line of the sidewalk section."""

    code: str
    name: str
    permits: int
    kinds: dict[str, int]
    dossiers: int
    needing: int

    @property
    def needing_share(self) -> float | None:
        """Share of the ward's dossiers whose works needed the sidewalk (linked or merge candidate)."""
        return stats.share(self.needing, self.dossiers)


@dataclass
class Review:
    """Everything the review report prints."""

    query: ReviewQuery
    board: stats.Dashboard
    period: tuple[dt.date | None, dt.date | None]
    procedures: list[ProcedureRow]
    sidewalk: list[SidewalkRow]
    sidewalk_total: SidewalkRow
    overdue: list[dict]
    overdue_total: int
    clashes: list[dict]
    clash_total: int
    meta: dict = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """No dossier in the period (the report still prints, and says so)."""
        return self.board.total.received == 0


def build_review(store: Store, query: ReviewQuery, calendar: domain.Calendar, *, max_dossiers: int | None = None,
                 rows: int = LIST_ROWS, batch_size: int = 50000) -> Review:
    """The review report's figures for ``query``, read from ``store``.

    ``max_dossiers``: refuse (:class:`ReportTooLarge`) when more dossiers match.
    """
    flt = query.filter
    if max_dossiers is not None:
        matched = store.count(stats.PERMITS, flt)
        if matched > max_dossiers:
            raise ReportTooLarge(matched, max_dossiers)
    board = stats.dashboard(store, flt, calendar, batch_size=batch_size)
    as_of = board.as_of
    procedures, overdue, overdue_total, codes = _procedures_and_overdue(store, flt, as_of, calendar, rows,
                                                                        batch_size)
    side, side_total = _sidewalk(store, flt, board, codes)
    clashes, clash_total = _clashes(store, flt, rows)
    period = (flt.date_from, flt.date_to)
    if period == (None, None) and board.months:
        period = (dt.date.fromisoformat(board.months[0] + "-01"), None)
    return Review(query, board, period, procedures, side, side_total, overdue, overdue_total, clashes,
                  clash_total, store.meta())


def _procedures_and_overdue(store: Store, flt: Filter, as_of: dt.date, calendar: domain.Calendar, rows: int,
                            batch_size: int):
    """Counters per procedure (the dashboard's :func:`stats.ward_counts`, keyed by procedure), the first
    ``rows`` overdue dossiers by due date, their count, and every matching dossier code with its ward."""
    counts = None
    overdue: list[pd.DataFrame] = []
    total = 0
    codes: list[pd.DataFrame] = []
    fields = [f for f in OVERDUE_FIELDS if f != "dossier_code"] if flt.as_of else OVERDUE_FIELDS
    for batch in stats.as_of_batches(store, flt, fields, batch_size):  # as the dashboard reads them
        counts = stats.add_counts(counts, stats.ward_counts(batch.assign(ward_code=batch["procedure"]), as_of,
                                                            calendar))
        codes.append(batch[["dossier_code", "ward_code"]])
        late = batch[stats.timeliness(batch, as_of, calendar).eq("OVERDUE")]
        if len(late):
            total += len(late)
            late = late.assign(due_on=stats.due_dates(late, calendar))
            overdue.append(late.sort_values(["due_on", "dossier_code"]).head(rows))
    out = []
    if counts is not None:
        for code in domain.PROCEDURES:
            if code in counts.index:
                c = counts.loc[code]
                out.append(ProcedureRow(code, int(c.received), int(c.resolved), int(c.on_time), int(c.late),
                                        int(c.online), int(c.overdue)))
    first = pd.concat(overdue).sort_values(["due_on", "dossier_code"]).head(rows) if overdue else pd.DataFrame()
    listed = []
    for r in first.itertuples(index=False):
        due = _day(r.due_on)
        listed.append({"dossier_code": r.dossier_code, "ward_code": r.ward_code, "procedure": r.procedure,
                       "site_address": r.site_address, "received_on": _day(r.received_on), "due_on": due,
                       "days_over": (as_of - due).days if due else None})
    frame = pd.concat(codes) if codes else pd.DataFrame({"dossier_code": [], "ward_code": []})
    return out, listed, total, frame


def _day(value) -> dt.date | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date()


def _plain(value):
    """A cell as a plain Python value (dates as dates, NaN/NaT as ``None``)."""
    if isinstance(value, pd.Timestamp | np.datetime64):
        return _day(value)
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT:
        return None
    return value.item() if isinstance(value, np.generic) else value


def _sidewalk(store: Store, flt: Filter, board: stats.Dashboard, dossiers: pd.DataFrame):
    """Per ward: sidewalk permits, findings by kind (in the period), and the period's dossiers whose works
    needed the sidewalk (a LINKED or MERGE_CANDIDATE finding, whenever found) — both counted by
    :func:`overlaps.summarize`, as ``gisapp analyze`` counts them."""
    side = stats.side_filter(flt)
    found = _findings(store, side)
    kinds = overlaps.summarize(found, dossiers.iloc[:0])
    needed = _findings(store, Filter(wards=flt.wards, kinds=overlaps.NEEDED_SIDEWALK))
    # object arrays: pandas' isin over Arrow strings walks the values in Python (1 s per 100,000)
    period = pd.Index(dossiers["dossier_code"].to_numpy(dtype=object)).drop_duplicates()
    needed = needed[period.get_indexer(needed["a_id"].to_numpy(dtype=object)) >= 0]
    needing = overlaps.summarize(needed, dossiers)
    kinds = kinds.set_index("ward_code")
    needing = needing.set_index("ward_code")
    out = []
    for row in board.rows:
        out.append(SidewalkRow(
            row.code, row.name, row.sidewalk,
            {k: int(kinds.at[row.code, k]) if row.code in kinds.index and k in kinds.columns else 0
             for k in domain.FINDING_KINDS},  # UNPERMITTED is not among the analysis' kinds (inspections)
            int(needing.at[row.code, "dossiers"]) if row.code in needing.index else 0,
            int(needing.at[row.code, "dossiers_needing_sidewalk"]) if row.code in needing.index else 0))
    total = SidewalkRow("", "", board.total.sidewalk,
                        {k: int(kinds.at["TOTAL", k]) if k in kinds.columns else 0 for k in domain.FINDING_KINDS},
                        int(needing.at["TOTAL", "dossiers"]), int(needing.at["TOTAL", "dossiers_needing_sidewalk"]))
    return out, total


def _findings(store: Store, flt: Filter) -> pd.DataFrame:
    """``kind``, ``a_id``, ``ward_code`` of the matching findings."""
    parts = list(stats.attribute_batches(store, stats.FINDINGS, flt, ["kind", "a_id", "ward_code"]))
    return pd.concat(parts) if parts else pd.DataFrame({"kind": [], "a_id": [], "ward_code": []}, dtype=object)


def _clashes(store: Store, flt: Filter, rows: int) -> tuple[list[dict], int]:
    """The first ``rows`` clashes of the period (by start of the overlap) and how many there are."""
    side = stats.side_filter(flt).with_(kinds=("CLASH",))
    total = store.count(stats.FINDINGS, side)
    fields = ["finding_id", "a_id", "b_id", "ward_code", "overlap_start", "overlap_end", "overlap_area_m2"]
    parts = list(stats.attribute_batches(store, stats.FINDINGS, side, fields))
    if not parts:
        return [], total
    frame = pd.concat(parts).sort_values(["overlap_start", "finding_id"]).head(rows)
    return [{k: _plain(v) for k, v in zip(fields, r)} for r in frame[fields].itertuples(index=False)], total
