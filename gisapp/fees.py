"""The sidewalk-use fee table: VND per m² per day by street class and purpose, from a date on.

Pure: reads a CSV file (``GISAPP_FEE_TABLE``, default the shipped
``layers/fees_example.csv``), validates every row at once and computes a
fee.  The table's columns are ``street_class``, ``purpose``,
``vnd_per_m2_day`` and ``effective_from`` (YYYY-MM-DD); a rate is in force
from its date until the next row of the same class and purpose.  Lines
starting with ``#`` are comments; a comment line starting ``# EXAMPLE``
marks the table as an example (the shipped one is: Đà Nẵng's rates are not
published in a usable form), which every fee computed from it says.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

from gisapp import domain

COLUMNS = ("street_class", "purpose", "vnd_per_m2_day", "effective_from")
#: The shipped example table's name in ``layers/``.
EXAMPLE_NAME = "fees_example.csv"

EXAMPLE_NOTE = {
    "vi": "Phí tính theo biểu phí MẪU (ví dụ), không phải mức thu của Đà Nẵng: mức thu của thành phố chưa được "
          "công bố ở dạng sử dụng được. Thay bằng biểu phí của cơ quan (GISAPP_FEE_TABLE).",
    "en": "Fee from an EXAMPLE table, not Đà Nẵng's rates: the city's rates are not published in a usable "
          "form. Replace it with the office's own table (GISAPP_FEE_TABLE).",
}


class FeeTableError(ValueError):
    """A fee table that cannot be used; the message names the file, row and field."""


@dataclass(frozen=True)
class FeeRate:
    """One row: VND per m² per day for a street class and purpose, from ``effective_from`` on."""

    street_class: str
    purpose: str
    vnd_per_m2_day: float
    effective_from: dt.date


@dataclass(frozen=True)
class FeeTable:
    """The rates, where they came from, and whether the table is an example."""

    rates: tuple[FeeRate, ...]
    source: str
    example: bool

    def rate(self, street_class: str, purpose: str, day: dt.date) -> FeeRate | None:
        """The rate in force on ``day`` (``None`` when none is)."""
        found = None
        for r in self.rates:
            if r.street_class == street_class and r.purpose == purpose and r.effective_from <= day:
                if found is None or r.effective_from > found.effective_from:
                    found = r
        return found

    def fee(self, street_class: str, purpose: str, area_m2: float, start: dt.date, end: dt.date) -> float | None:
        """The fee in VND of ``area_m2`` for the days ``start``–``end`` (inclusive), rate by rate.

        ``None`` when some day of the period has no rate.
        """
        changes = sorted({r.effective_from for r in self.rates if r.street_class == street_class
                          and r.purpose == purpose and start < r.effective_from <= end} | {start})
        total = 0.0
        for k, first in enumerate(changes):
            last = changes[k + 1] - dt.timedelta(days=1) if k + 1 < len(changes) else end
            rate = self.rate(street_class, purpose, first)
            if rate is None:
                return None
            total += rate.vnd_per_m2_day * area_m2 * ((last - first).days + 1)
        return total

    def note(self) -> dict[str, str] | None:
        """The notice to show with a fee from this table (``vi``/``en``), ``None`` for a real table."""
        return dict(EXAMPLE_NOTE) if self.example else None


def load_fee_table(path: str | Path) -> FeeTable:
    """Read and validate the fee table at ``path``; :class:`FeeTableError` naming every bad row and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise FeeTableError(f"fee table {path}: cannot be read ({err.strerror or err})") from None
    return parse_fee_table(text, str(path))


def parse_fee_table(text: str, source: str = "fee table") -> FeeTable:
    """The fee table in CSV ``text`` (see the module notes); ``source`` names it in messages."""
    lines = text.splitlines()
    example = any(line.strip().upper().startswith("# EXAMPLE") for line in lines)
    body = [(n, line) for n, line in enumerate(lines, start=1) if line.strip() and not line.lstrip().startswith("#")]
    if not body:
        raise FeeTableError(f"{source}: no header row (expected {', '.join(COLUMNS)})")
    reader = csv.reader(io.StringIO("\n".join(line for _, line in body)))
    rows = list(reader)
    header = [h.strip() for h in rows[0]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise FeeTableError(f"{source}, line {body[0][0]}: missing column {missing[0]!r} "
                            f"(expected {', '.join(COLUMNS)})")
    at = {c: header.index(c) for c in COLUMNS}
    problems: list[str] = []
    rates: list[FeeRate] = []
    seen: dict[tuple, int] = {}
    for (line_no, _), row in zip(body[1:], rows[1:], strict=True):
        values = {c: (row[i].strip() if i < len(row) else "") for c, i in at.items()}

        def bad(field: str, message: str, line_no: int = line_no, values: dict = values) -> None:
            problems.append(f"{source}, line {line_no}, {field} = {values[field]!r}: {message}")

        ok = True
        if values["street_class"] not in domain.STREET_CLASSES:
            bad("street_class", f"unknown street class; expected one of {', '.join(domain.STREET_CLASSES)}")
            ok = False
        if values["purpose"] not in domain.SIDEWALK_PURPOSES:
            bad("purpose", f"unknown purpose; expected one of {', '.join(domain.SIDEWALK_PURPOSES)}")
            ok = False
        try:
            amount = float(values["vnd_per_m2_day"])
            if not amount >= 0 or amount == float("inf"):
                raise ValueError
        except ValueError:
            bad("vnd_per_m2_day", "not a number of VND >= 0")
            ok = False
        try:
            since = dt.date.fromisoformat(values["effective_from"])
        except ValueError:
            bad("effective_from", "not a date (YYYY-MM-DD)")
            ok = False
        if not ok:
            continue
        key = (values["street_class"], values["purpose"], since)
        if key in seen:
            bad("effective_from", f"a second rate for {key[0]}/{key[1]} from that date (first on line {seen[key]})")
            continue
        seen[key] = line_no
        rates.append(FeeRate(values["street_class"], values["purpose"], amount, since))
    if problems:
        raise FeeTableError("; ".join(problems))
    if not rates:
        raise FeeTableError(f"{source}: no rates")
    return FeeTable(tuple(rates), source, example)
