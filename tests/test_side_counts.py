"""The map's sidewalk permits and findings counted per ward on a day over arrays each process keeps
(``gisapp.analysis.counts.periods``): the same counts as the store's, on both backends, and kept across writes
that do not touch the layer; a server process reads them (and the dossiers' arrays) when it starts."""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import pytest

from gisapp.analysis import counts, overlaps, stats
from gisapp.filters import Filter
from gisapp.web.app import create_app, preload
from tests.stores import BACKENDS, new_store

D = dt.date.fromisoformat
SIDE = ("sidewalk_permits", "findings")
FILTERS = [Filter(), Filter(wards=("20305", "20260")), Filter(day=D("2022-04-14")), Filter(as_of=D("2022-06-30")),
           Filter(as_of=D("2022-03-31"), wards=("20314",)), Filter(date_from=D("2022-05-01")),
           Filter(date_to=D("2022-02-01")), Filter(date_from=D("2022-02-01"), date_to=D("2022-02-28")),
           Filter(as_of=D("2022-06-30"), date_from=D("2022-01-01"), date_to=D("2022-03-31")),
           Filter(as_of=D("2022-06-30"), day=D("2022-04-14")), Filter(as_of=D("2019-01-01")),
           Filter(day=D("2030-01-01"))]


@pytest.fixture(scope="module")
def frames(demo_frames):
    """The demo with its findings, a few sidewalk permits open-ended or without a ward (edge cases)."""
    base, meta = demo_frames
    params = overlaps.AnalysisParams(as_of=D(meta["as_of"]))
    result = overlaps.find_overlaps(base["construction_permits"], base["sidewalk_permits"], base["wards"], params)
    side = base["sidewalk_permits"].copy()
    side.loc[side.index[:7], "end_on"] = None
    side.loc[side.index[7:11], "ward_code"] = None
    return {**base, "sidewalk_permits": side, "findings": result.findings}, meta


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, frames, tmp_path_factory):
    s = new_store(request.param, tmp_path_factory.mktemp("side"), request)
    s.write(frames[0], meta=frames[1])
    return s


@pytest.mark.parametrize("layer", SIDE)
@pytest.mark.parametrize("flt", FILTERS)
def test_the_periods_count_as_the_store(store, layer, flt):
    assert counts.side_answers(layer, flt)
    assert counts.periods(store, layer) is counts.periods(store, layer, wait=False)  # at hand: counted over them
    pd.testing.assert_frame_equal(counts.ward_matching(store, layer, flt), store.aggregate(layer, flt))
    assert counts.layer_count(store, layer, flt) == store.count(layer, flt)


def test_filters_the_periods_cannot_answer_are_counted_by_the_store(store):
    for flt in (Filter(q="Ông Ích"), Filter(bbox=(108.1, 15.9, 108.3, 16.1)), Filter(purposes=("MATERIALS",))):
        assert not counts.side_answers("sidewalk_permits", flt)
        pd.testing.assert_frame_equal(counts.ward_matching(store, "sidewalk_permits", flt),
                                      store.aggregate("sidewalk_permits", flt))
    assert not counts.side_answers("construction_permits", Filter())


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_periods_follow_writes(backend, frames, tmp_path, request):
    """Kept across a write of another layer (the change log says so); read again after a write of the layer."""
    s = new_store(backend, tmp_path, request)
    s.write(frames[0], meta=frames[1])
    flt = Filter(as_of=D("2022-06-30"))
    first = counts.periods(s, "sidewalk_permits")
    dossier = frames[0]["construction_permits"].iloc[:1].assign(status="REFUSED")
    s.write({"construction_permits": dossier}, mode="upsert")
    kept = counts.periods(s, "sidewalk_permits", wait=False)
    assert kept is not None and kept.ward is first.ward and kept.version == s.version() != first.version
    moved = frames[0]["sidewalk_permits"]
    day = pd.Timestamp("2022-06-30")
    moved = moved[(moved["start_on"] <= day) & (moved["end_on"] >= day)].head(5).copy()
    moved["end_on"] = pd.Timestamp("2022-06-29")  # no longer active that day
    s.write({"sidewalk_permits": moved}, mode="upsert")
    assert counts.periods(s, "sidewalk_permits", wait=False) is None  # read again in the background
    pd.testing.assert_frame_equal(counts.ward_matching(s, "sidewalk_permits", flt),  # the store counts meanwhile
                                  s.aggregate("sidewalk_permits", flt))
    again = counts.periods(s, "sidewalk_permits")
    assert again.ward is not first.ward
    assert counts.layer_count(s, "sidewalk_permits", flt) == s.count("sidewalk_permits", flt) == \
        counts._period_match(first, flt).sum() - 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_server_process_reads_the_arrays_when_it_starts(backend, frames, tmp_path, request):
    """``preload`` (what ``gisapp serve`` runs in each process as it starts): ``/healthz`` says the arrays are
    being read, then ready, with no map or dashboard asked for."""
    s = new_store(backend, tmp_path, request)
    s.write(frames[0], meta=frames[1])
    app = create_app({"STORE": s.url, "TESTING": True})
    client = app.test_client()
    assert set(client.get("/healthz").get_json()["arrays"].values()) == {"none"}
    preload(app)
    deadline = time.monotonic() + 60
    while set(arrays := client.get("/healthz").get_json()["arrays"]) and set(arrays.values()) != {"ready"}:
        assert time.monotonic() < deadline, arrays
        assert set(arrays.values()) <= {"none", "reading", "ready"}
        time.sleep(0.05)
    assert sorted(arrays) == ["dossiers", "findings", "sidewalk_permits"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_map_pages_total_and_day_range_follow_a_write(backend, frames, tmp_path, request):
    """Kept per data version (two scans of each dated layer otherwise, at every map view), so a write shows."""
    s = new_store(backend, tmp_path, request)
    s.write(frames[0], meta=frames[1])
    page = stats.map_page(s, Filter(as_of=D("2022-06-30")))
    assert page["day_range"] == stats.day_range(s) and page["total"] == s.count("construction_permits")
    late = frames[0]["construction_permits"].iloc[:1].copy()
    late["dossier_code"], late["received_on"] = "XD-LATE", pd.Timestamp("2030-01-02")
    s.write({"construction_permits": late}, mode="upsert")
    page = stats.map_page(s, Filter(as_of=D("2022-06-30")))
    assert page["day_range"][1] == D("2030-01-02") == stats.day_range(s)[1]
    assert page["total"] == s.count("construction_permits") == len(frames[0]["construction_permits"]) + 1
