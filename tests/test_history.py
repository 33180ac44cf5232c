"""Status history: hand-made histories, the status on any day, the write hook, on both backends."""

import datetime as dt

import pandas as pd
import pytest

from gisapp import history
from gisapp.filters import Filter
from tests.helpers import permits
from tests.stores import BACKENDS, new_store

D = dt.date.fromisoformat
P = "construction_permits"

#: XD-0000 received 2022-01-03: RECEIVED that day, PROCESSING 01-05, SUPPLEMENT 01-10 (08:00), PROCESSING again
#: the same day (14:30), RETURNED 01-20.  XD-0001 (received 01-04): RECEIVED, then REFUSED 01-12.
HAND = history.frame(
    [P] * 7,
    ["XD-0000"] * 5 + ["XD-0001"] * 2,
    ["RECEIVED", "PROCESSING", "SUPPLEMENT_REQUESTED", "PROCESSING", "RETURNED", "RECEIVED", "REFUSED"],
    ["2022-01-03", "2022-01-05", "2022-01-10", "2022-01-10", "2022-01-20", "2022-01-04", "2022-01-12"],
    ["", "", "08:00", "14:30", "", "", ""],
    ["one-stop export"] * 7,
)


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory):
    """The lots and their hand-made history in a store of each backend, shared by the tests that only read it."""
    s = new_store(request.param, tmp_path_factory.mktemp("history"), request)
    s.write({P: permits()}, meta={"as_of": "2022-07-08"}, history=HAND)
    return s


@pytest.fixture(params=BACKENDS)
def own_store(request, tmp_path):
    """The same, private to a test that writes to it."""
    s = new_store(request.param, tmp_path, request)
    s.write({P: permits()}, meta={"as_of": "2022-07-08"}, history=HAND)
    return s


def statuses(store, day, keys=None):
    out = store.statuses_as_of(P, D(day), keys)
    return dict(zip(out["key"], out["status"]))


@pytest.mark.parametrize("day, expected", [
    ("2022-01-02", {}),  # before receipt: no status
    ("2022-01-03", {"XD-0000": "RECEIVED"}),  # on the day of the first change
    ("2022-01-04", {"XD-0000": "RECEIVED", "XD-0001": "RECEIVED"}),  # the day before a change
    ("2022-01-05", {"XD-0000": "PROCESSING", "XD-0001": "RECEIVED"}),  # on the day of a change
    ("2022-01-08", {"XD-0000": "PROCESSING", "XD-0001": "RECEIVED"}),  # between changes
    ("2022-01-10", {"XD-0000": "PROCESSING", "XD-0001": "RECEIVED"}),  # two changes that day: the later time wins
    ("2022-01-12", {"XD-0000": "PROCESSING", "XD-0001": "REFUSED"}),
    ("2022-01-19", {"XD-0000": "PROCESSING", "XD-0001": "REFUSED"}),
    ("2023-01-01", {"XD-0000": "RETURNED", "XD-0001": "REFUSED"}),
])
def test_status_on_any_day(store, day, expected):
    assert statuses(store, day) == expected
    # the pure twin agrees
    pure = history.status_at(HAND, D(day))
    assert dict(zip(pure["key"], pure["status"])) == expected


def test_status_of_some_keys_only(store):
    assert statuses(store, "2022-01-12", ["XD-0001", "XD-9999"]) == {"XD-0001": "REFUSED"}


def test_history_by_key_in_order(store):
    rows = store.status_history(P, ["XD-0000"])
    assert rows["status"].tolist() == ["RECEIVED", "PROCESSING", "SUPPLEMENT_REQUESTED", "PROCESSING", "RETURNED"]
    assert rows["changed_at"].tolist() == ["", "", "08:00:00", "14:30:00", ""]
    assert rows["changed_on"].dt.strftime("%Y-%m-%d").tolist()[:2] == ["2022-01-03", "2022-01-05"]
    assert set(rows["note"]) == {"one-stop export"}


def test_a_write_that_changes_a_status_appends_to_the_history(own_store):
    before = len(own_store.status_history(P))
    changed = permits().iloc[[2, 3]].copy()
    changed["status"] = ["RETURNED", changed["status"].iloc[1]]  # XD-0002 changes; XD-0003 keeps its status
    own_store.write({P: changed}, mode="upsert")
    rows = own_store.status_history(P)
    assert len(rows) == before + 1
    added = rows[rows["key"] == "XD-0002"]
    assert added["status"].tolist()[-1] == "RETURNED" and added["note"].tolist()[-1] == history.WRITE_NOTE
    assert added["changed_on"].iloc[-1].date() == history.local_now().date()
    # a write of the same data again adds nothing
    own_store.write({P: changed}, mode="upsert")
    assert len(own_store.status_history(P)) == before + 1


def test_a_new_feature_gets_its_first_status(own_store):
    extra = permits(41).iloc[[40]]
    own_store.write({P: extra}, mode="upsert")
    assert own_store.status_history(P, ["XD-0040"])["status"].tolist() == [extra["status"].iloc[0]]


def test_a_history_import_adds_rows_and_keeps_the_others(own_store):
    more = history.frame([P], ["XD-0001"], ["WITHDRAWN"], ["2022-02-01"])
    own_store.write({}, mode="upsert", history=more)
    assert own_store.status_history(P, ["XD-0001"])["status"].tolist() == ["RECEIVED", "REFUSED", "WITHDRAWN"]
    assert len(own_store.status_history(P, ["XD-0000"])) == 5
    assert own_store.read(P, Filter(q="XD-0001"))["status"].tolist() == ["RETURNED"]  # the layer is not touched


def test_status_filter_as_of_a_day_uses_the_history(store):
    # XD-0001 is RETURNED now but was REFUSED on 12 January; XD-0002 and XD-0006 have no history: their
    # current status (REFUSED) stands
    flt = Filter(as_of=D("2022-01-12"), statuses=("REFUSED",))
    assert store.read(P, flt)["dossier_code"].tolist() == ["XD-0001", "XD-0002", "XD-0006"]
    assert store.read(P, flt.with_(as_of=D("2022-01-11")))["dossier_code"].tolist() == ["XD-0002", "XD-0006"]
    # on 8 January: XD-0001 (history) and XD-0003 (current) were RECEIVED; XD-0000 PROCESSING
    assert store.read(P, Filter(as_of=D("2022-01-08"), statuses=("RECEIVED",)))["dossier_code"].tolist() == \
        ["XD-0001", "XD-0003"]
    # received after the day: absent
    assert store.count(P, Filter(as_of=D("2022-01-04"))) == 2


def test_a_replace_with_history_replaces_the_layer_history(own_store):
    own_store.write({P: permits(3)}, mode="replace",
                    history=history.frame([P], ["XD-0002"], ["RECEIVED"], ["2022-01-05"]))
    assert own_store.status_history(P)["key"].tolist() == ["XD-0002"]


def test_pure_problems_of_an_import():
    rows = history.frame([P] * 4, ["XD-0000", "XD-9", "XD-0001", "XD-0001"],
                         ["PROCESSING", "PROCESSING", "PROCESSING", "REFUSED"],
                         ["2022-01-01", "2022-01-05", "2022-01-06", "2022-01-06"], ["", "", "09:00", "09:00"])
    known = pd.DataFrame({"layer": [P, P], "key": ["XD-0000", "XD-0001"],
                          "received_on": pd.to_datetime(["2022-01-03", "2022-01-04"])})
    found = {i: reason for i, reason, _ in history.problems(rows, known)}
    assert found == {0: history.BEFORE_RECEIPT, 1: history.UNKNOWN_KEY, 3: history.SAME_TIME}


def test_as_of_view_hides_what_was_not_yet_known():
    dossiers = pd.DataFrame({"dossier_code": ["A", "B", "C"], "status": ["RETURNED", "RETURNED", "RETURNED"],
                             "received_on": pd.to_datetime(["2022-01-03", "2022-01-03", "2022-02-01"]),
                             "completed_on": pd.to_datetime(["2022-01-10", "2022-01-25", None])})
    past = pd.DataFrame({"key": ["A", "B"], "status": ["RETURNED", "PROCESSING"]})
    out = history.as_of_view(dossiers, past, D("2022-01-20"))
    assert out["dossier_code"].tolist() == ["A", "B"]
    assert out["status"].tolist() == ["RETURNED", "PROCESSING"]
    assert out["completed_on"].isna().tolist() == [False, True]
    assert out["status_known"].tolist() == [True, True]


def test_the_demo_history_is_consistent(demo_frames):
    from gisapp.demo import build as demo
    from gisapp.demo.timeline import demo_history

    frames, _ = demo_frames
    rows = demo_history(frames)
    assert rows.equals(demo_history(frames))  # deterministic
    assert not rows.duplicated(["layer", "key", "changed_on", "changed_at"]).any()
    assert rows["changed_on"].max() <= pd.Timestamp(demo.AS_OF)
    ordered = history.order(rows)
    assert set(ordered.drop_duplicates(["layer", "key"])["status"]) == {"RECEIVED"}
    for layer, key in history.LAYER_KEYS.items():
        layer_rows = ordered[ordered["layer"] == layer]
        features = frames[layer].set_index(key)
        assert set(layer_rows["key"]) == set(features.index)  # every dossier and permit has a history
        last = layer_rows.drop_duplicates("key", keep="last").set_index("key")["status"]
        assert (last == features["status"].reindex(last.index)).all()  # ending in the current status
    dossiers = frames["construction_permits"].set_index("dossier_code")
    d = ordered[ordered["layer"] == P]
    assert (d["changed_on"] >= d["key"].map(dossiers["received_on"])).all()
    closing = d[d["status"].isin(["RESULT_READY", "REFUSED", "WITHDRAWN", "NOT_ACCEPTED"])]
    assert (closing["changed_on"] == closing["key"].map(dossiers["completed_on"])).all()
    granted = d[d["status"] == "RESULT_READY"]
    assert (granted["changed_on"] == granted["key"].map(dossiers["issued_on"])).all()
    # open dossiers on the as-of date have no closing status
    still_open = dossiers.index[dossiers["completed_on"].isna()]
    assert not d[d["key"].isin(still_open)]["status"].isin(["RESULT_READY", "RETURNED", "REFUSED"]).any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_first_write_gives_each_feature_with_a_status_one_row(backend, tmp_path, request):
    fresh = new_store(backend, tmp_path, request)
    frame = permits(12)
    frame.loc[frame.index[3], "status"] = None  # no status: no row
    fresh.write({P: frame})
    rows = fresh.status_history(P)
    want = frame[frame["status"].notna()]
    assert dict(zip(rows["key"], rows["status"])) == dict(zip(want["dossier_code"], want["status"]))
    assert len(rows) == len(want) and set(rows["note"]) == {history.WRITE_NOTE}
    assert set(rows["changed_on"].dt.date) == {history.local_now().date()}
    assert rows["changed_at"].str.match(history.TIME_PATTERN).all()
    assert list(rows.sort_values("seq")["key"]) == list(want["dossier_code"])  # in the order written
    # and the status on any day from then on is the written one
    assert statuses(fresh, history.local_now().date().isoformat()) == dict(zip(want["dossier_code"], want["status"]))
