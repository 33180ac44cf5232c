"""The dashboard's counting in SQL (``Store.dossier_counts``) equals counting the dossiers one by one in Python
(the status history reconstructed by ``history.status_at`` / ``as_of_view``), on hand-made histories, both backends."""

import datetime as dt
import threading

import pandas as pd
import pytest

from gisapp import history
from gisapp.analysis import counts, stats
from gisapp.domain import Calendar
from gisapp.filters import Filter
from tests.helpers import permits
from tests.stores import BACKENDS, new_store

D = dt.date.fromisoformat
P = "construction_permits"
CAL = Calendar()

#: XD-0000 (received 01-03): RECEIVED, PROCESSING 01-05, SUPPLEMENT 01-10 08:00, PROCESSING again 01-10 14:30,
#: RETURNED 01-20.  XD-0001 (01-04): RECEIVED, REFUSED 01-12.  XD-0004 (01-07): its first change only on 01-09
#: (received earlier: without history on 01-07 and 01-08).  XD-0006 (01-09): RECEIVED, RESULT_READY 01-15,
#: RETURNED 02-20.  The other dossiers have no history: their current status, counted "without history".
HAND = history.frame(
    [P] * 11,
    ["XD-0000"] * 5 + ["XD-0001"] * 2 + ["XD-0004"] + ["XD-0006"] * 3,
    ["RECEIVED", "PROCESSING", "SUPPLEMENT_REQUESTED", "PROCESSING", "RETURNED", "RECEIVED", "REFUSED",
     "PROCESSING", "RECEIVED", "RESULT_READY", "RETURNED"],
    ["2022-01-03", "2022-01-05", "2022-01-10", "2022-01-10", "2022-01-20", "2022-01-04", "2022-01-12",
     "2022-01-09", "2022-01-09", "2022-01-15", "2022-02-20"],
    ["", "", "08:00", "14:30", "", "", "", "", "", "", ""],
)


def dossiers():
    """40 dossiers: some with a stored due date (timeliness counted in SQL), some completed (dates later cleared
    as of an earlier day), some without a due date (computed with the working-day calendar)."""
    frame = permits()
    received = pd.to_datetime(frame["received_on"])
    closed = frame["status"].isin(["RETURNED", "REFUSED"])
    frame["completed_on"] = (received + pd.to_timedelta(5 + frame.index % 23, unit="D")).where(closed).dt.date
    frame["due_on"] = (received + pd.to_timedelta(12 + frame.index % 9, unit="D")).where(frame.index % 3 > 0).dt.date
    frame.loc[frame["dossier_code"] == "XD-0000", "completed_on"] = D("2022-01-20")
    frame.loc[frame["dossier_code"] == "XD-0006", "completed_on"] = D("2022-02-20")
    frame.loc[frame["dossier_code"] == "XD-0006", "status"] = "RETURNED"
    return frame


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory):
    s = new_store(request.param, tmp_path_factory.mktemp("counts"), request)
    s.write({P: dossiers()}, meta={"as_of": "2022-07-08"}, history=HAND)
    return s


def one_by_one(store, flt: Filter, day: dt.date):
    """The dashboard's figures counted per dossier in Python: the store's rows, the history reconstructed."""
    frame = pd.DataFrame(store.read(P, flt).drop(columns="geometry"))
    unknown = 0
    if flt.as_of is not None:
        past = history.status_at(store.status_history(P), flt.as_of)
        frame = history.as_of_view(frame, past, flt.as_of)
        unknown = int((~frame["status_known"]).sum())
    return stats.ward_counts(frame, day, CAL), stats.monthly_counts(frame), unknown


def in_sql(store, flt: Filter, day: dt.date):
    return stats.grouped_counts(store.dossier_counts(flt, day), day, CAL)


DAYS = ["2022-01-02",  # before any receipt: nothing
        "2022-01-03",  # the day of the first receipt and change
        "2022-01-05",  # a change on the day counts on the day
        "2022-01-08",  # XD-0004 received, its first change not yet: its current status, without history
        "2022-01-10",  # two changes that day: the later time wins
        "2022-01-19", "2022-02-10", "2022-03-31", "2023-01-01"]


@pytest.mark.parametrize("day", DAYS)
def test_sql_counts_equal_the_python_reconstruction(store, day):
    flt = Filter(as_of=D(day))
    expected, got = one_by_one(store, flt, D(day)), in_sql(store, flt, D(day))
    pd.testing.assert_frame_equal(got[0], expected[0], check_names=False)
    pd.testing.assert_frame_equal(got[1], expected[1], check_names=False, check_index_type=False)
    assert got[2] == expected[2]


def test_the_hand_made_cases(store):
    counts, _, unknown = in_sql(store, Filter(as_of=D("2022-01-02")), D("2022-01-02"))
    assert counts.empty and unknown == 0  # before receipt: not there
    counts, _, unknown = in_sql(store, Filter(as_of=D("2022-01-05")), D("2022-01-05"))
    assert counts["received"].sum() == 3 and unknown == 1  # XD-0002 has no history: its current status
    assert counts["status_PROCESSING"].sum() == 1 and counts["status_RECEIVED"].sum() == 1  # changed on the day
    counts, _, unknown = in_sql(store, Filter(as_of=D("2022-01-08")), D("2022-01-08"))
    assert unknown == 4  # XD-0002, -0003, -0005 and XD-0004, whose first change is the next day


@pytest.mark.parametrize("flt", [Filter(), Filter(wards=("20305",)), Filter(as_of=D("2022-01-15"), wards=("20260",)),
                                 Filter(as_of=D("2022-01-12"), statuses=("PROCESSING", "REFUSED")),
                                 Filter(as_of=D("2022-01-20"), q="Ông Ích")])
def test_with_other_filters_too(store, flt):
    day = flt.as_of or store.as_of()
    expected, got = one_by_one(store, flt, day), in_sql(store, flt, day)
    pd.testing.assert_frame_equal(got[0], expected[0], check_names=False)
    pd.testing.assert_frame_equal(got[1], expected[1], check_names=False, check_index_type=False)
    assert got[2] == expected[2]


def test_the_dashboard_counts_in_sql(store):
    board = stats.dashboard(store, Filter(as_of=D("2022-01-10")), CAL)
    counts, _, unknown = one_by_one(store, Filter(as_of=D("2022-01-10")), D("2022-01-10"))
    assert board.total.received == int(counts["received"].sum()) == 8
    assert board.without_history == unknown and board.historical
    assert {r.code: r.received for r in board.rows if r.received} == counts["received"].to_dict()


@pytest.mark.parametrize("day", ["2022-01-05", "2022-01-08", "2022-01-12", "2022-01-15", "2022-02-10"])
@pytest.mark.parametrize("fields", [["ward_code", "status", "completed_on", "received_on"], ["ward_code"]])
def test_an_api_page_as_of_a_day_equals_its_rows_made_in_python(store, day, fields):
    """Store.page as of a day (statuses in the page's own query) = the plain page through history.as_of_rows."""
    flt = Filter(as_of=D(day))
    page = store.page(P, flt, fields=fields, limit=12)
    plain = store.page(P, Filter(date_to=D(day)), fields=fields, limit=12)
    assert plain.known is None and page.matched == plain.matched
    past = history.past_statuses(store, P, D(day), [r[0] for r in plain.rows])
    rows, unknown = history.as_of_rows(plain.rows, fields, past, D(day))
    as_text = lambda rows: [tuple(v.isoformat() if isinstance(v, dt.date) else v for v in r) for r in rows]  # noqa: E731
    assert as_text(page.rows) == as_text(rows)
    assert page.known.count(False) == unknown and len(page.known) == len(rows)


# -- the same counting over arrays kept in memory (gisapp.analysis.counts) ------------------------------

def in_memory(store, flt: Filter, day: dt.date):
    if not counts.answers(flt):
        return stats.grouped_counts(counts.dossier_counts(store, flt, day), day, CAL)
    return stats.grouped_counts(counts.count(counts.columns(store), flt, day), day, CAL)


def assert_same(got, expected):
    pd.testing.assert_frame_equal(got[0], expected[0], check_names=False)
    pd.testing.assert_frame_equal(got[1], expected[1], check_names=False, check_index_type=False)
    assert got[2] == expected[2]


@pytest.mark.parametrize("day", DAYS)
def test_the_arrays_count_as_the_store(store, day):
    flt = Filter(as_of=D(day))
    assert counts.answers(flt)
    assert_same(in_memory(store, flt, D(day)), in_sql(store, flt, D(day)))


@pytest.mark.parametrize("flt", [Filter(), Filter(wards=("20305",)), Filter(as_of=D("2022-01-15"), wards=("20260",)),
                                 Filter(as_of=D("2022-01-12"), statuses=("PROCESSING", "REFUSED")),
                                 Filter(statuses=("RETURNED",)),
                                 Filter(as_of=D("2022-01-20"), channels=("ONLINE",), procedures=("NEW",)),
                                 Filter(as_of=D("2022-02-10"), date_from=D("2022-01-04"), date_to=D("2022-01-12")),
                                 Filter(as_of=D("2022-01-20"), q="Ông Ích")])
def test_the_arrays_count_filtered_dashboards_as_the_store(store, flt):
    day = flt.as_of or store.as_of()
    assert counts.answers(flt) == (flt.q is None)  # a text search is counted by the store
    assert_same(in_memory(store, flt, day), in_sql(store, flt, day))


@pytest.mark.parametrize("flt", [Filter(), Filter(wards=("20305",)), Filter(as_of=D("2022-01-15"), wards=("20260",)),
                                 Filter(as_of=D("2022-01-12"), statuses=("PROCESSING", "REFUSED")),
                                 Filter(as_of=D("2022-01-08"), statuses=("RECEIVED",)),
                                 Filter(as_of=D("2022-01-20"), channels=("ONLINE",), procedures=("NEW",)),
                                 Filter(as_of=D("2022-02-10"), date_from=D("2022-01-04"), date_to=D("2022-01-12")),
                                 Filter(as_of=D("2021-12-31")),
                                 *[Filter(as_of=D(day)) for day in DAYS]])
def test_the_maps_count_and_ward_counts_from_the_arrays_are_the_stores(store, flt):
    counts.columns(store)  # the arrays at hand: matching and ward_matching count over them
    assert counts.answers(flt) and counts.current(store) is not None
    assert counts.matching(store, flt) == store.count(P, flt)
    pd.testing.assert_frame_equal(counts.ward_matching(store, P, flt), store.aggregate(P, flt))
    with_box = flt.with_(bbox=(106.6, 10.7, 106.8, 10.9))  # a box: the store counts it
    assert not counts.answers(with_box) and counts.matching(store, with_box) == store.count(P, with_box)


@pytest.mark.parametrize("backend", BACKENDS)
def test_counts_kept_per_data_version_follow_a_write(backend, tmp_path, request):
    """The map's counts of a layer the arrays do not hold (kept per data version) change with a write."""
    s = new_store(backend, tmp_path, request)
    frame = dossiers()
    s.write({P: frame}, meta={"as_of": "2022-07-08"}, history=HAND)
    flt = Filter(as_of=D("2022-01-15"))
    s.version() is not None and counts.columns(s)
    before = counts.ward_matching(s, P, flt), counts.layer_count(s, P, flt)
    for layer in (P, "sidewalk_permits"):  # the dossiers' arrays, and the store's counts kept
        assert counts.layer_count(s, layer, flt) == s.count(layer, flt)
        pd.testing.assert_frame_equal(counts.ward_matching(s, layer, flt), s.aggregate(layer, flt))
    moved = frame[frame["received_on"].astype(str) <= "2022-01-15"].head(3).copy()
    moved["ward_code"] = "20305"
    s.write({P: moved}, mode="upsert")
    pd.testing.assert_frame_equal(counts.ward_matching(s, P, flt), s.aggregate(P, flt))
    assert counts.layer_count(s, P, flt) == s.count(P, flt) == before[1]
    with_box = Filter(bbox=(0.0, 0.0, 1.0, 1.0))
    assert counts.layer_count(s, P, with_box) == s.count(P, with_box) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_arrays_follow_every_write(backend, tmp_path, request):
    """Upserts, history imports (no feature written), deletes and replaces: after each the arrays (read again
    only for the dossiers written) count as the store does, as a fresh read does."""
    s = new_store(backend, tmp_path, request)
    frame = dossiers()
    s.write({P: frame}, meta={"as_of": "2022-07-08"}, history=HAND)
    days = [D("2022-01-10"), D("2022-02-10"), D("2023-01-01")]

    def check():
        for day in days:
            assert_same(in_memory(s, Filter(as_of=day), day), in_sql(s, Filter(as_of=day), day))
        fresh = counts.load(s, s.version())
        for day in days:
            pd.testing.assert_frame_equal(*(stats.grouped_counts(counts.count(c, Filter(as_of=day), day), day, CAL)[0]
                                            for c in (fresh, counts.columns(s))))

    check()
    first = counts.columns(s)
    changed = frame[frame["dossier_code"].isin(["XD-0001", "XD-0007"])].copy()
    changed["status"] = "REFUSED"
    changed["completed_on"] = D("2022-01-25")
    changed["ward_code"] = "20305"
    s.write({P: changed}, mode="upsert")  # a status changed today: history rows written by the store
    check()
    assert counts.columns(s).keys is not first.keys and len(counts.columns(s).keys) == len(first.keys)
    s.write({}, mode="upsert", history=history.frame([P] * 2, ["XD-0002", "XD-0003"], ["PROCESSING", "REFUSED"],
                                                     ["2022-01-11", "2022-01-30"]))  # an imported history export
    check()
    new = frame.iloc[:2].copy()
    new["dossier_code"] = ["XD-0100", "XD-0101"]
    s.write({P: new}, mode="upsert", delete={P: ["XD-0000", "XD-0005"]})
    check()
    assert len(counts.columns(s).keys) == len(first.keys)
    s.write({P: frame.iloc[:10]}, mode="replace")
    check()
    assert len(counts.columns(s).keys) == 10


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_store_counts_while_the_arrays_are_read(backend, tmp_path, request):
    """The first count of a process is the store's (the arrays are read in the background); then the arrays',
    and after a small write the arrays refreshed at once."""
    s = new_store(backend, tmp_path, request)
    s.write({P: dossiers()}, meta={"as_of": "2022-07-08"}, history=HAND)
    day = D("2022-01-12")
    assert counts.current(s) is None  # nothing kept yet: read in the background
    arrays = counts.columns(s)  # waits for that read
    for thread in threading.enumerate():  # the background read, done by now or finding them kept
        if thread.name == "gisapp-counts":
            thread.join()
    assert counts.current(s) is arrays
    assert_same(stats.grouped_counts(counts.dossier_counts(s, Filter(as_of=day), day), day, CAL),
                in_sql(s, Filter(as_of=day), day))
    one = dossiers().iloc[:1].assign(status="REFUSED")
    s.write({P: one}, mode="upsert")
    assert counts.current(s) not in (None, arrays)  # refreshed for the one dossier, no whole read
