"""The sidewalk-use fee table: the shipped example, validation naming line and field, fees rate by rate."""

from __future__ import annotations

import datetime as dt

import pytest

from gisapp import domain
from gisapp.config import load_config, resource_dir
from gisapp.fees import FeeTableError, load_fee_table, parse_fee_table

D = dt.date.fromisoformat
HEADER = "street_class,purpose,vnd_per_m2_day,effective_from\n"


def test_the_shipped_table_is_an_example_covering_every_class_and_purpose():
    table = load_fee_table(load_config()["FEE_TABLE"])
    assert table.example and table.note()["en"].startswith("Fee from an EXAMPLE table")
    assert "Đà Nẵng" in table.note()["vi"]
    for cls in domain.STREET_CLASSES:
        for purpose in domain.SIDEWALK_PURPOSES:
            assert table.rate(cls, purpose, D("2022-06-01")) is not None, (cls, purpose)
    assert (resource_dir("layers") / "fees_example.csv").is_file()


def test_the_setting_replaces_the_table(tmp_path, monkeypatch):
    path = tmp_path / "fees.csv"
    path.write_text(HEADER + "MAIN,EVENT,100,2022-01-01\n", encoding="utf-8")
    monkeypatch.setenv("GISAPP_FEE_TABLE", str(path))
    table = load_fee_table(load_config()["FEE_TABLE"])
    assert not table.example and table.note() is None
    assert table.fee("MAIN", "EVENT", 2.0, D("2022-01-01"), D("2022-01-10")) == 2000


def test_a_fee_follows_each_rate_from_its_date():
    table = parse_fee_table(HEADER + "LANE,MATERIALS,1000,2022-01-01\nLANE,MATERIALS,2000,2022-02-01\n")
    # 3 m² for 31 Jan (1 day at 1000) and 1–2 Feb (2 days at 2000)
    assert table.fee("LANE", "MATERIALS", 3.0, D("2022-01-31"), D("2022-02-02")) == 3 * 1000 + 3 * 2 * 2000
    assert table.fee("LANE", "MATERIALS", 3.0, D("2021-12-31"), D("2022-01-02")) is None  # no rate yet
    assert table.fee("MAIN", "MATERIALS", 3.0, D("2022-03-01"), D("2022-03-02")) is None


@pytest.mark.parametrize("row, message", [
    ("ALLEY,MATERIALS,1000,2022-01-01", "line 2, street_class = 'ALLEY': unknown street class"),
    ("LANE,SHOP,1000,2022-01-01", "line 2, purpose = 'SHOP': unknown purpose"),
    ("LANE,MATERIALS,cheap,2022-01-01", "line 2, vnd_per_m2_day = 'cheap': not a number"),
    ("LANE,MATERIALS,-5,2022-01-01", "line 2, vnd_per_m2_day = '-5': not a number of VND >= 0"),
    ("LANE,MATERIALS,1000,01/01/2022", "line 2, effective_from = '01/01/2022': not a date"),
    ("LANE,MATERIALS,1000,2022-01-01\nLANE,MATERIALS,900,2022-01-01", "line 3, effective_from"),
])
def test_a_bad_row_is_named(row, message):
    with pytest.raises(FeeTableError, match="fees.csv, " + message.replace("(", r"\(")):
        parse_fee_table(HEADER + row + "\n", "fees.csv")


def test_a_missing_column_or_file_is_named(tmp_path):
    with pytest.raises(FeeTableError, match="missing column 'effective_from'"):
        parse_fee_table("street_class,purpose,vnd_per_m2_day\nLANE,EVENT,1\n")
    with pytest.raises(FeeTableError, match="cannot be read"):
        load_fee_table(tmp_path / "none.csv")
