"""Domain rules: working-day deadlines and timeliness."""

import datetime as dt

import pandas as pd
import pytest

from gisapp import domain
from gisapp.domain import Calendar

D = dt.date.fromisoformat
PLAIN = Calendar(holidays=())


@pytest.mark.parametrize(
    "start, days, expected",
    [
        ("2022-06-06", 1, "2022-06-07"),  # Monday → Tuesday
        ("2022-06-10", 1, "2022-06-13"),  # Friday → Monday
        ("2022-06-11", 1, "2022-06-13"),  # received Saturday: Monday is day one
        ("2022-06-06", 5, "2022-06-13"),
        ("2022-06-06", 15, "2022-06-27"),
        ("2022-06-06", 20, "2022-07-04"),
    ],
)
def test_working_days_skip_weekends(start, days, expected):
    assert PLAIN.add_working_days(D(start), days) == D(expected)


def test_holidays_are_skipped():
    cal = Calendar(holidays=(D("2022-09-01"), D("2022-09-02")))
    # Wed 31 Aug + 1 working day jumps Thu/Fri holidays and the weekend.
    assert cal.add_working_days(D("2022-08-31"), 1) == D("2022-09-05")
    assert not cal.is_working_day(D("2022-09-02"))
    assert cal.is_working_day(D("2022-09-05"))


def test_tet_2022_in_default_calendar():
    cal = Calendar()
    # Received Fri 28 Jan 2022; Tết closes 31 Jan – 4 Feb: 5 working days end Fri 11 Feb.
    assert cal.add_working_days(D("2022-01-28"), 5) == D("2022-02-11")


def test_configurable_weekend_and_holiday_setting(tmp_path):
    cal = Calendar.from_settings("Sun", "2022-06-08")
    assert cal.add_working_days(D("2022-06-07"), 1) == D("2022-06-09")
    assert cal.add_working_days(D("2022-06-10"), 1) == D("2022-06-11")  # Saturday works
    listing = tmp_path / "holidays.txt"
    listing.write_text("2022-06-08  # festival\n2022-06-09\n")
    cal = Calendar.from_settings("Sat,Sun", str(listing))
    assert cal.add_working_days(D("2022-06-07"), 1) == D("2022-06-10")
    with pytest.raises(ValueError, match="not an ISO date"):
        Calendar.from_settings(None, "2022-13-40,2022-01-01")
    with pytest.raises(ValueError, match="unknown weekday"):
        Calendar.from_settings("Saturday", None)


def test_vectorised_add_matches_scalar_and_keeps_missing():
    starts = pd.Series(pd.to_datetime(["2022-06-10", None, "2022-01-28"]))
    out = Calendar().add_working_days(starts, pd.Series([1, 3, 5]))
    assert out.iloc[0] == pd.Timestamp("2022-06-13")
    assert pd.isna(out.iloc[1])
    assert out.iloc[2] == pd.Timestamp("2022-02-11")


@pytest.mark.parametrize(
    "procedure, category, days",
    [("NEW_BUILD", "HOUSE", 15), ("NEW_BUILD", "OTHER", 20), ("RENOVATION", "HOUSE", 15),
     ("EXTENSION", "OTHER", 5), ("REISSUE", "HOUSE", 5)],
)
def test_statutory_days(procedure, category, days):
    assert domain.statutory_days(procedure, category) == days
    series = domain.statutory_days(pd.Series([procedure]), pd.Series([category]))
    assert series.iloc[0] == days


@pytest.mark.parametrize(
    "status, due, done, as_of, expected",
    [
        ("RETURNED", "2022-06-20", "2022-06-17", "2022-07-08", "EARLY"),
        ("RETURNED", "2022-06-20", "2022-06-20", "2022-07-08", "ON_TIME"),
        ("REFUSED", "2022-06-20", "2022-06-21", "2022-07-08", "LATE"),
        ("PROCESSING", "2022-07-20", None, "2022-07-08", "IN_TIME"),
        ("PROCESSING", "2022-07-08", None, "2022-07-08", "IN_TIME"),
        ("SUPPLEMENT_REQUESTED", "2022-07-07", None, "2022-07-08", "OVERDUE"),
        ("PROCESSING", None, None, "2022-07-08", None),
    ],
)
def test_timeliness_scalar_and_vectorised(status, due, done, as_of, expected):
    assert domain.timeliness(status, due and D(due), done and D(done), D(as_of)) == expected
    series = domain.timeliness(pd.Series([status]), pd.Series([due]), pd.Series([done]), D(as_of))
    assert series.iloc[0] == expected


def test_every_code_set_has_both_labels_and_a_colour():
    for codes in domain.CODE_SETS.values():
        for code, entry in codes.items():
            assert entry.code == code and entry.vi and entry.en
            assert entry.color.startswith("#")
    assert domain.label("status", "PROCESSING") == "Đang xử lý"
    assert domain.label("status", "PROCESSING", "en") == "Processing"
    assert set(domain.STATUSES) == set(
        "NEW RECEIVED NOT_ACCEPTED PROCESSING SUPPLEMENT_REQUESTED FEE_PENDING RESULT_READY "
        "REFUSED WITHDRAWN SUSPENDED RETURNED".split())
    assert set(domain.PROCEDURES) == set("NEW_BUILD RENOVATION RELOCATION TERM ADJUSTMENT EXTENSION REISSUE".split())
    assert set(domain.SIDEWALK_PURPOSES) == set("MATERIALS BUSINESS PARKING WEDDING_FUNERAL EVENT".split())
