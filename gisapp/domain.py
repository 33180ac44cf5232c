"""The permit domain: codes and labels, statutory deadlines, working-day calendar.

Everything here is pure: no Flask, no store.  Codes are the exact strings
used in data files, URLs and the API; labels are Vietnamese (``vi``) and
English (``en``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Code:
    """One value of a coded field, with its labels and map colour."""

    code: str
    vi: str
    en: str
    color: str = "#777777"

    def label(self, lang: str = "vi") -> str:
        """The label in ``lang`` (``vi`` or ``en``)."""
        return self.en if lang == "en" else self.vi


def _codes(*items: Code) -> dict[str, Code]:
    return {c.code: c for c in items}


STATUSES = _codes(
    Code("NEW", "Mới đăng ký", "New", "#9e9e9e"),
    Code("RECEIVED", "Đã tiếp nhận", "Received", "#42a5f5"),
    Code("NOT_ACCEPTED", "Không được tiếp nhận", "Not accepted", "#795548"),
    Code("PROCESSING", "Đang xử lý", "Processing", "#1e88e5"),
    Code("SUPPLEMENT_REQUESTED", "Yêu cầu bổ sung hồ sơ", "Supplement requested", "#fb8c00"),
    Code("FEE_PENDING", "Chờ thực hiện nghĩa vụ tài chính", "Fee pending", "#fdd835"),
    Code("RESULT_READY", "Đã có kết quả", "Result ready", "#66bb6a"),
    Code("REFUSED", "Từ chối cấp phép", "Refused", "#e53935"),
    Code("WITHDRAWN", "Rút hồ sơ", "Withdrawn", "#8d6e63"),
    Code("SUSPENDED", "Dừng xử lý", "Suspended", "#6d4c41"),
    Code("RETURNED", "Đã trả kết quả", "Result returned", "#2e7d32"),
)

#: Statuses of a dossier still being handled: the statutory clock runs.
OPEN_STATUSES = frozenset(
    {"NEW", "RECEIVED", "PROCESSING", "SUPPLEMENT_REQUESTED", "FEE_PENDING"}
)

PROCEDURES = _codes(
    Code("NEW_BUILD", "Cấp mới", "New construction", "#1565c0"),
    Code("RENOVATION", "Sửa chữa, cải tạo", "Repair / renovation", "#6a1b9a"),
    Code("RELOCATION", "Di dời công trình", "Relocation", "#00838f"),
    Code("TERM", "Cấp phép có thời hạn", "Permit with a term", "#ef6c00"),
    Code("ADJUSTMENT", "Điều chỉnh giấy phép", "Adjustment", "#558b2f"),
    Code("EXTENSION", "Gia hạn giấy phép", "Extension", "#ad1457"),
    Code("REISSUE", "Cấp lại giấy phép", "Re-issue", "#4e342e"),
)

WORK_CATEGORIES = _codes(
    Code("HOUSE", "Nhà ở riêng lẻ", "Individual house"),
    Code("OTHER", "Công trình khác", "Other works"),
)

CHANNELS = _codes(
    Code("IN_PERSON", "Trực tiếp", "In person", "#5c6bc0"),
    Code("ONLINE", "Trực tuyến", "Online", "#26a69a"),
    Code("POST", "Bưu chính", "Post", "#ffa726"),
)

SIDEWALK_PURPOSES = _codes(
    Code("MATERIALS", "Tập kết vật liệu xây dựng", "Construction materials", "#f4511e"),
    Code("BUSINESS", "Kinh doanh, buôn bán", "Business", "#8e24aa"),
    Code("PARKING", "Trông giữ xe", "Vehicle parking", "#3949ab"),
    Code("WEDDING_FUNERAL", "Việc cưới, việc tang", "Wedding / funeral", "#6d4c41"),
    Code("EVENT", "Sự kiện, lễ hội", "Event", "#00897b"),
)

#: Classes of streets, for sidewalk-use fees (the fee table is per class and purpose).
STREET_CLASSES = _codes(
    Code("MAIN", "Đường chính", "Main street", "#b71c1c"),
    Code("SECONDARY", "Đường nhánh", "Secondary street", "#ef6c00"),
    Code("LANE", "Đường kiệt, hẻm", "Lane", "#9e9d24"),
)

TIMELINESS = _codes(
    Code("EARLY", "Trước hạn", "Early", "#2e7d32"),
    Code("ON_TIME", "Đúng hạn", "On time", "#66bb6a"),
    Code("LATE", "Trễ hạn", "Late", "#c62828"),
    Code("IN_TIME", "Trong hạn", "Within time", "#42a5f5"),
    Code("OVERDUE", "Quá hạn", "Overdue", "#d50000"),
)

FINDING_KINDS = _codes(
    Code("MERGE_CANDIDATE", "Đề xuất gộp thủ tục", "Merge candidate", "#ff6f00"),
    Code("LINKED", "Đã gộp thủ tục", "Linked (merged procedure)", "#2e7d32"),
    Code("CLASH", "Chồng lấn vỉa hè", "Clash", "#d50000"),
    Code("OPPORTUNITY", "Cơ hội phối hợp", "Coordination opportunity", "#1e88e5"),
    Code("CLEARANCE", "Thiếu lối đi bộ", "Pedestrian clearance", "#aa00ff"),
    Code("WARD_MISMATCH", "Sai phường", "Ward mismatch", "#6d4c41"),
    Code("UNPERMITTED", "Chiếm dụng không phép", "Unpermitted occupancy", "#b71c1c"),
)

#: Kinds of inspection (after UK Street Manager's live-site, reinstatement and follow-up inspections).
INSPECTION_TYPES = _codes(
    Code("SITE_CHECK", "Kiểm tra công trình", "Site check", "#1e88e5"),
    Code("OCCUPANCY_CHECK", "Kiểm tra chiếm dụng vỉa hè", "Occupancy check", "#8e24aa"),
    Code("FOLLOW_UP", "Kiểm tra lại", "Follow-up", "#fb8c00"),
    Code("FINAL", "Kiểm tra hoàn thành", "Final inspection", "#2e7d32"),
)

#: What an inspection found.
INSPECTION_OUTCOMES = _codes(
    Code("PASSED", "Đạt", "Passed", "#2e7d32"),
    Code("FAILED", "Không đạt", "Failed", "#c62828"),
    Code("UNABLE", "Không thực hiện được", "Unable to complete", "#757575"),
)

#: Statutory processing time in working days (Luật Xây dựng art. 102).
STATUTORY_DAYS = {"HOUSE": 15, "OTHER": 20}
SHORT_PROCEDURES = frozenset({"EXTENSION", "REISSUE"})
SHORT_DAYS = 5

#: Vietnamese public holidays (days off for civil servants), 2021-2026.
VN_HOLIDAYS = tuple(
    dt.date.fromisoformat(d)
    for d in (
        "2021-01-01", "2021-02-10", "2021-02-11", "2021-02-12", "2021-02-15",
        "2021-02-16", "2021-04-21", "2021-04-30", "2021-05-03", "2021-09-02",
        "2021-09-03",
        "2022-01-03", "2022-01-31", "2022-02-01", "2022-02-02", "2022-02-03",
        "2022-02-04", "2022-04-11", "2022-05-02", "2022-05-03", "2022-09-01",
        "2022-09-02",
        "2023-01-02", "2023-01-20", "2023-01-23", "2023-01-24", "2023-01-25",
        "2023-01-26", "2023-05-01", "2023-05-02", "2023-05-03", "2023-09-01",
        "2023-09-04",
        "2024-01-01", "2024-02-08", "2024-02-09", "2024-02-12", "2024-02-13",
        "2024-02-14", "2024-04-18", "2024-04-29", "2024-04-30", "2024-05-01",
        "2024-09-02", "2024-09-03",
        "2025-01-01", "2025-01-27", "2025-01-28", "2025-01-29", "2025-01-30",
        "2025-01-31", "2025-04-07", "2025-04-30", "2025-05-01", "2025-05-02",
        "2025-09-01", "2025-09-02",
        "2026-01-01", "2026-02-16", "2026-02-17", "2026-02-18", "2026-02-19",
        "2026-02-20", "2026-04-27", "2026-04-30", "2026-05-01", "2026-08-31",
        "2026-09-01", "2026-09-02",
    )
)

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class Calendar:
    """Working days: a set of weekend days and a list of holidays."""

    weekend: tuple[str, ...] = ("Sat", "Sun")
    holidays: tuple[dt.date, ...] = VN_HOLIDAYS
    _np: np.busdaycalendar = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        bad = [d for d in self.weekend if d not in _WEEKDAYS]
        if bad:
            raise ValueError(f"unknown weekday {bad[0]!r}; use one of {', '.join(_WEEKDAYS)}")
        mask = [0 if d in self.weekend else 1 for d in _WEEKDAYS]
        cal = np.busdaycalendar(weekmask=mask, holidays=np.array(self.holidays, dtype="datetime64[D]"))
        object.__setattr__(self, "_np", cal)

    @classmethod
    def from_settings(cls, weekend: str | None = None, holidays: str | None = None) -> Calendar:
        """Build from ``GISAPP_WEEKEND`` ("Sat,Sun") and ``GISAPP_HOLIDAYS``.

        ``holidays`` is a comma-separated list of ISO dates, or a path to a
        text file with one ISO date per line; empty keeps the built-in list.
        """
        days = tuple(d.strip() for d in weekend.split(",") if d.strip()) if weekend else ("Sat", "Sun")
        if not holidays:
            return cls(days)
        text = holidays
        if "," not in holidays and not _looks_like_date(holidays):
            with open(holidays, encoding="utf-8") as fh:
                text = fh.read().replace("\n", ",")
        parsed = []
        for item in text.split(","):
            item = item.split("#")[0].strip()
            if item:
                try:
                    parsed.append(dt.date.fromisoformat(item))
                except ValueError:
                    raise ValueError(f"holiday {item!r} is not an ISO date (YYYY-MM-DD)") from None
        return cls(days, tuple(parsed))

    def is_working_day(self, day: dt.date) -> bool:
        """True when ``day`` is neither a weekend day nor a holiday."""
        return bool(np.is_busday(np.datetime64(day, "D"), busdaycal=self._np))

    def add_working_days(self, start, days):
        """The date ``days`` working days after ``start`` (vectorised).

        The day of receipt does not count: a dossier received on Friday with
        one working day is due on Monday.  Accepts a date or an array/Series
        of datetime64; returns the same kind.
        """
        if isinstance(start, dt.date):
            d = np.datetime64(start, "D")
            rolled = np.busday_offset(d, 0, roll="backward", busdaycal=self._np)
            return np.busday_offset(rolled, int(days), roll="forward", busdaycal=self._np).astype(dt.date)
        values = pd.to_datetime(pd.Series(start)).to_numpy().astype("datetime64[D]")
        missing = np.isnat(values)
        safe = np.where(missing, np.datetime64("2000-01-03"), values)
        steps = np.broadcast_to(np.asarray(days, dtype="int64"), safe.shape)
        base = np.busday_offset(safe, 0, roll="backward", busdaycal=self._np)
        out = np.busday_offset(base, steps, roll="forward", busdaycal=self._np)
        out = np.where(missing, np.datetime64("NaT"), out).astype("datetime64[ms]")
        return pd.Series(out, index=getattr(start, "index", None))


def _looks_like_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text.strip())
        return True
    except ValueError:
        return False


def statutory_days(procedure, work_category):
    """Working days allowed for a dossier: 5 for extension/re-issue, else 15/20.

    Works on scalars and on pandas Series alike.
    """
    if isinstance(procedure, pd.Series):
        by_cat = np.where(pd.Series(work_category, index=procedure.index).eq("OTHER"), 20, 15)
        return pd.Series(np.where(procedure.isin(SHORT_PROCEDURES), SHORT_DAYS, by_cat), index=procedure.index)
    if procedure in SHORT_PROCEDURES:
        return SHORT_DAYS
    return STATUTORY_DAYS["OTHER" if work_category == "OTHER" else "HOUSE"]


def due_date(received_on, procedure, work_category, calendar: Calendar):
    """Statutory due date (scalar or vectorised over Series)."""
    return calendar.add_working_days(received_on, statutory_days(procedure, work_category))


def timeliness(status, due_on, completed_on, as_of):
    """Timeliness code of a dossier against its due date and the as-of date.

    Closed dossiers: EARLY (completed before the due date), ON_TIME (on it),
    LATE (after it).  Open dossiers: IN_TIME, or OVERDUE once ``as_of`` has
    passed the due date.  ``None`` where the due date is unknown.
    Works on scalars and, vectorised, on pandas Series.
    """
    if isinstance(status, pd.Series):
        due = pd.to_datetime(due_on)
        done = pd.to_datetime(completed_on)
        ref = pd.Timestamp(as_of)
        is_open = status.isin(OPEN_STATUSES) | done.isna()
        closed = np.select([(done < due).to_numpy(), (done == due).to_numpy(), (done > due).to_numpy()],
                           [np.array("EARLY", dtype=object), np.array("ON_TIME", dtype=object),
                            np.array("LATE", dtype=object)], default=np.array(None, dtype=object))
        opened = np.where(ref > due, "OVERDUE", "IN_TIME")
        out = np.where(is_open, opened, closed)
        out = np.where(due.isna(), np.array(None, dtype=object), out)
        return pd.Series(out, index=status.index, dtype=object)
    if due_on is None or pd.isna(due_on):
        return None
    due = pd.Timestamp(due_on)
    if status in OPEN_STATUSES or completed_on is None or pd.isna(completed_on):
        return "OVERDUE" if pd.Timestamp(as_of) > due else "IN_TIME"
    done = pd.Timestamp(completed_on)
    return "EARLY" if done < due else "ON_TIME" if done == due else "LATE"


#: Coded fields and their code sets, for validation, filters and labels.
CODE_SETS = {
    "status": STATUSES,
    "procedure": PROCEDURES,
    "work_category": WORK_CATEGORIES,
    "channel": CHANNELS,
    "purpose": SIDEWALK_PURPOSES,
    "kind": FINDING_KINDS,
    "street_class": STREET_CLASSES,
    "timeliness": TIMELINESS,
    "inspection_type": INSPECTION_TYPES,
    "outcome": INSPECTION_OUTCOMES,
}


def label(field_name: str, code, lang: str = "vi") -> str:
    """Label of ``code`` in the code set of ``field_name``; the code itself if unknown."""
    entry = CODE_SETS.get(field_name, {}).get(code)
    return entry.label(lang) if entry else ("" if code is None else str(code))


#: How long a dossier's works last, in calendar months, from its permit's issue (or its receipt when not
#: issued): the overlap analysis's default ``works_months`` and the map's ``day`` filter of dossiers.
WORKS_MONTHS = 12


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` plus ``months`` calendar months, clamped to the month's end (31 Jan + 1 month = 28/29 Feb),
    as the overlap analysis computes works periods."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    first_next = dt.date(year + (month == 11), (month + 1) % 12 + 1, 1)
    return dt.date(year, month + 1, min(day.day, (first_next - dt.timedelta(days=1)).day))


def works_end(start: dt.date, months: int = WORKS_MONTHS) -> dt.date:
    """The last day of works begun on ``start`` lasting ``months`` calendar months."""
    return add_months(start, months) - dt.timedelta(days=1)


def works_start_bound(day: dt.date, months: int = WORKS_MONTHS) -> dt.date:
    """The earliest works start whose works period (start to start + ``months`` months − 1 day) holds ``day``.

    Works that started on ``s`` are active on ``day`` exactly when ``works_start_bound(day) <= s <= day``
    (adding months never moves a later start earlier), so the ``day`` filter compares plain dates.
    """
    s = add_months(day, -months)
    while add_months(s, months) > day:
        s -= dt.timedelta(days=1)
    while add_months(s, months) <= day:
        s += dt.timedelta(days=1)
    return s
