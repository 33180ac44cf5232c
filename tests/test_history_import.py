"""``gisapp import status_changes FILE``: a one-stop system's history export, good and bad rows."""

import pandas as pd
import pytest
from click.testing import CliRunner

from gisapp import history
from gisapp.cli import cli
from gisapp.store.gpkg import GeoPackageStore
from tests.helpers import permits

P = "construction_permits"
HEADER = "Mã hồ sơ,Trạng thái,Ngày thay đổi,Ghi chú\n"
# permits(): XD-0000 received 2022-01-03, XD-0001 2022-01-04, …
ROWS = [
    "XD-0000,Đã tiếp nhận,03/01/2022 08:15,tiếp nhận",      # 1 accepted (label, day-first, time)
    "XD-0000,Đang xử lý,04/01/2022,chuyển xử lý",            # 2 accepted
    "XD-0000,PROCESSING,04/01/2022,again",                  # 3 same time as row 2: rejected
    "XD-0001,Đang giải quyết,2022-01-02,too early",         # 4 before receipt: rejected
    "XD-9999,Đã tiếp nhận,05/01/2022,",                     # 5 unknown dossier: rejected
    "XD-0002,Bay đi,05/01/2022,",                           # 6 unknown status: rejected
    "XD-0002,Đã trả kết quả,32/01/2022,",                   # 7 bad date: rejected
    "XD-0003,Từ chối,2022-01-20 25:10,",                    # 8 bad time: rejected
    ",Đã tiếp nhận,05/01/2022,",                            # 9 no key: rejected
    "XD-0001,Đã tiếp nhận,04/01/2022,",                     # 10 same as the stored change: rejected
    "XD-0004,Đã trả kết quả,2022-02-01 16:00,",             # 11 accepted
]


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "s.gpkg"
    GeoPackageStore(path, must_exist=False).write(
        {P: permits()}, history=history.frame([P], ["XD-0001"], ["RECEIVED"], ["2022-01-04"]))
    return path


def run(store_path, path, *extra):
    return CliRunner().invoke(cli, ["--store", str(store_path), "import", "status_changes", str(path), *extra])


def test_history_import_accepts_good_rows_and_rejects_bad_ones_with_the_reason(store_path, tmp_path):
    src = tmp_path / "lich_su.csv"
    src.write_text(HEADER + "\n".join(ROWS) + "\n", encoding="utf-8")
    result = run(store_path, src)
    assert result.exit_code == 0, result.output
    assert "read 11, accepted 3" in result.output
    store = GeoPackageStore(store_path)
    rows = store.status_history(P, ["XD-0000", "XD-0004"])
    assert rows[["key", "status", "changed_at"]].values.tolist() == [
        ["XD-0000", "RECEIVED", "08:15:00"], ["XD-0000", "PROCESSING", ""], ["XD-0004", "RETURNED", "16:00:00"]]
    assert rows["note"].tolist()[:2] == ["tiếp nhận", "chuyển xử lý"]
    # the stored change stays, nothing else was lost
    assert store.status_history(P, ["XD-0001"])["status"].tolist() == ["RECEIVED"]
    assert len(store.read(P)) == 40
    rejects = pd.read_csv(tmp_path / "lich_su.rejects.csv", encoding="utf-8-sig", dtype=str)
    reasons = dict(zip(rejects["row"].astype(int), rejects["reason"]))
    assert reasons == {
        4: history.SAME_TIME, 5: history.BEFORE_RECEIPT, 6: history.UNKNOWN_KEY, 7: "unknown code or label",
        8: "unparseable date", 9: "unparseable date", 10: "missing required field", 11: history.SAME_TIME}
    details = dict(zip(rejects["row"].astype(int), rejects["detail"]))
    assert "XD-9999" in details[6] and "no such dossier" in details[6]
    assert "before it was received (2022-01-04)" in details[5]


def test_dry_run_writes_nothing(store_path, tmp_path):
    src = tmp_path / "h.csv"
    src.write_text(HEADER + ROWS[0] + "\n", encoding="utf-8")
    result = run(store_path, src, "--dry-run")
    assert result.exit_code == 0, result.output
    assert len(GeoPackageStore(store_path).status_history(P)) == 1


def test_xlsx_with_a_title_row_and_a_time_column(store_path, tmp_path):
    src = tmp_path / "h.xlsx"
    frame = pd.DataFrame({"Số hồ sơ": ["XD-0005", "XD-0005"], "Tình trạng": ["Tiếp nhận", "Đang xử lý"],
                          "Ngày": [pd.Timestamp("2022-01-08"), pd.Timestamp("2022-01-08")],
                          "Giờ": ["08:00", "10:30"]})
    with pd.ExcelWriter(src) as writer:
        frame.to_excel(writer, index=False, startrow=2)
        writer.sheets["Sheet1"].cell(row=1, column=1, value="LỊCH SỬ XỬ LÝ HỒ SƠ")
    result = run(store_path, src)
    assert result.exit_code == 0, result.output
    rows = GeoPackageStore(store_path).status_history(P, ["XD-0005"])
    assert rows[["status", "changed_at"]].values.tolist() == [["RECEIVED", "08:00:00"], ["PROCESSING", "10:30:00"]]


def test_a_file_without_the_needed_columns_is_refused(store_path, tmp_path):
    src = tmp_path / "h.csv"
    src.write_text("Mã hồ sơ,Ghi chú\nXD-0000,x\n", encoding="utf-8")
    result = run(store_path, src)
    assert result.exit_code != 0 and "lacks the column(s) status, changed_on" in result.output


def test_other_options_are_refused(store_path, tmp_path):
    src = tmp_path / "h.csv"
    src.write_text(HEADER + ROWS[0] + "\n", encoding="utf-8")
    assert run(store_path, src, "--mode", "replace").exit_code != 0
