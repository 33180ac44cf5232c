"""The change log of both stores and ``GET /api/changes``: what each write logs, cursors, and a consumer
that polls over HTTP while threads write, across a restart, missing nothing and seeing nothing twice."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from gisapp.api import changes as feed
from gisapp.errors import FilterError
from gisapp.schema import LAYERS
from gisapp.store import StoreError, base
from gisapp.store import gpkg as gpkg_store
from gisapp.web.app import create_app
from tests.browser_util import live_server, sample_frames
from tests.helpers import fail_writes_after_logging
from tests.stores import BACKENDS, new_store

PERMITS = "construction_permits"
STATUSES = ["RECEIVED", "PROCESSING", "SUPPLEMENT_REQUESTED", "FEE_PENDING", "RESULT_READY", "RETURNED"]


@pytest.fixture(scope="module")
def frames():
    return sample_frames(60)


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory, frames):
    """The sample layers in a store of each backend, shared by the tests that only read it."""
    s = new_store(request.param, tmp_path_factory.mktemp("changes"), request)
    s.write(frames[0], meta=frames[1])
    return s


@pytest.fixture(params=BACKENDS)
def own_store(request, tmp_path, frames):
    """The same, private to a test that writes to it."""
    s = new_store(request.param, tmp_path, request)
    s.write(frames[0], meta=frames[1])
    return s


def entries(store, after: int = 0) -> list[tuple]:
    return [(c.layer, c.key, c.kind, c.status) for c in store.changes(after, 100_000).changes]


def with_status(frame, keys, status):
    rows = frame[frame[LAYERS[PERMITS].key].isin(keys)].copy()
    rows["status"] = status
    return rows


# -- pure -----------------------------------------------------------------------------------

def test_cursors_round_trip_and_bad_ones_name_after():
    assert feed.decode_cursor(feed.encode_cursor("ab12", 7)) == ("ab12", 7)
    assert feed.decode_cursor(feed.encode_cursor(None, 0)) == (None, 0)
    for bad in ("", "7", "abc$", feed.encode_cursor("ab12", 7)[:-2] + "!!",
                feed.encode_cursor(None, 0).replace("Z2", "Z3"),
                "Z2lzYXBwLWNoYW5nZXM6MTo6Nw",  # no log id but a position
                "Z2lzYXBwLWNoYW5nZXM6MTpYWVo6MQ"):  # a log id that is not hex
        with pytest.raises(FilterError, match="^after: not a cursor of this feed"):
            feed.decode_cursor(bad)


def test_change_rows_per_mode(frames):
    lay = LAYERS[PERMITS]
    frame = frames[0][PERMITS].head(3)
    keys = list(frame["dossier_code"])
    rows = base.change_rows(lay, frame, "upsert", [keys[1], "XD-OLD"])
    assert [(r[1], r[2]) for r in rows] == [(keys[0], "insert"), (keys[1], "update"), (keys[2], "insert")]
    assert [r[3] for r in rows] == list(frame["status"])
    rows = base.change_rows(lay, frame, "replace", [keys[1], "XD-OLD"])
    assert [(r[1], r[2]) for r in rows][-1] == ("XD-OLD", "delete") and rows[-1][3] is None
    assert base.change_rows(lay, frame, "replace", None) == [(PERMITS, None, "replace", None)]
    assert base.replace_is_compact(5000, 5001) and not base.replace_is_compact(5000, 5000)


# -- both stores ----------------------------------------------------------------------------

def test_a_first_small_load_logs_every_feature_as_inserted(store, frames):
    logged = entries(store)
    for name, frame in frames[0].items():
        key = LAYERS[name].key
        mine = [e for e in logged if e[0] == name]
        assert [e[1] for e in mine] == sorted(frame[key]) and {e[2] for e in mine} == {"insert"}
    statuses = {e[1]: e[3] for e in logged if e[0] == PERMITS}
    assert statuses == dict(zip(frames[0][PERMITS]["dossier_code"], frames[0][PERMITS]["status"]))
    page = store.changes(0, 5)
    assert [c.seq for c in page.changes] == [1, 2, 3, 4, 5] and page.last == len(logged)
    assert page.log_id and all(c.time.endswith("Z") for c in page.changes)


def test_upserts_replaces_and_deletes_are_logged_with_the_new_status(own_store, frames):
    last = own_store.changes(0, 0).last
    permits = frames[0][PERMITS]
    keys = sorted(permits["dossier_code"])[:2]
    new = with_status(permits, keys[:1], "RETURNED")
    added = permits[permits["dossier_code"] == keys[1]].copy()
    added["dossier_code"] = "XD-NEW-1"
    own_store.write({PERMITS: _concat(new, added)}, mode="upsert")
    assert entries(own_store, last) == [(PERMITS, keys[0], "update", "RETURNED"), (PERMITS, "XD-NEW-1", "insert",
                                                                                 added["status"].iloc[0])]
    last = own_store.changes(0, 0).last
    own_store.write({"sidewalk_permits": frames[0]["sidewalk_permits"].iloc[1:]}, mode="replace")
    logged = entries(own_store, last)
    gone = frames[0]["sidewalk_permits"]["permit_no"].iloc[0]
    assert logged[-1] == ("sidewalk_permits", gone, "delete", None)
    assert {e[2] for e in logged[:-1]} == {"update"} and len(logged) == len(frames[0]["sidewalk_permits"])


def _concat(a, b):
    import pandas as pd

    return pd.concat([a, b], ignore_index=True)


def test_a_large_replace_is_one_entry(own_store, frames, monkeypatch):
    monkeypatch.setattr(base, "REPLACE_DETAIL_MAX", 50)
    last = own_store.changes(0, 0).last
    permits = frames[0][PERMITS].copy()
    permits["site_address"] = permits["site_address"].astype(str) + " (new)"  # every feature changes
    own_store.write({PERMITS: permits}, mode="replace")
    assert entries(own_store, last) == [(PERMITS, None, "replace", None)]


def test_a_failed_write_logs_nothing(own_store, frames, monkeypatch):
    before = own_store.changes(0, 0)

    fail_writes_after_logging(own_store, monkeypatch)
    with pytest.raises((OSError, StoreError)):
        own_store.write({PERMITS: frames[0][PERMITS].head(2)}, mode="upsert")
    after = own_store.changes(0, 0)
    assert (after.log_id, after.last) == (before.log_id, before.last)


def test_a_store_created_again_has_another_log(tmp_path, frames):
    path = tmp_path / "again.gpkg"
    first = gpkg_store.GeoPackageStore(path, must_exist=False)
    first.write(frames[0])
    old = first.changes(0, 0).log_id
    path.unlink()
    second = gpkg_store.GeoPackageStore(path, must_exist=False)
    second.write(frames[0])
    assert second.changes(0, 0).log_id not in (None, old)


def test_a_store_without_a_log_yet_answers_an_empty_feed(tmp_path, frames):
    s = gpkg_store.GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    s.write(frames[0])
    import sqlite3

    with sqlite3.connect(s.path) as con:  # a file written before the change log existed
        con.execute("DROP TABLE gisapp_changes")
        con.execute("DROP TABLE gisapp_change_log")
    page = gpkg_store.GeoPackageStore(s.path).changes()
    assert page == base.ChangePage(None, 0, [])


# -- the API ----------------------------------------------------------------------------------

def get(client, url):
    response = client.get(url)
    return response.status_code, response.get_json()


def test_the_feed_pages_with_cursors_and_next_links(store):
    client = create_app({"STORE": store.url, "BASEMAP": "none"}).test_client()
    total = store.changes(0, 0).last
    status, body = get(client, "/api/changes?limit=50")
    assert status == 200 and len(body["changes"]) == 50 and body["more"] is True
    assert [c["seq"] for c in body["changes"]] == list(range(1, 51))
    nxt = next(link["href"] for link in body["links"] if link["rel"] == "next")
    assert nxt.endswith(f"/api/changes?after={body['cursor']}&limit=50")
    seen = [c["seq"] for c in body["changes"]]
    while body["more"]:
        status, body = get(client, next(link["href"] for link in body["links"] if link["rel"] == "next"))
        seen += [c["seq"] for c in body["changes"]]
    assert seen == list(range(1, total + 1))
    status, again = get(client, f"/api/changes?after={body['cursor']}")
    assert status == 200 and again["changes"] == [] and again["cursor"] == body["cursor"]  # nothing new yet
    first = get(client, "/api/changes?limit=1")[1]["changes"][0]
    assert set(first) == {"seq", "layer", "key", "kind", "status", "time"}


@pytest.mark.parametrize(("query", "param", "message"), [
    ("after=nonsense", "after", "not a cursor of this feed"),
    ("after=" + feed.encode_cursor("abcdef", 1), "after", "from another store"),
    ("limit=0", "limit", "not a positive integer"),
    ("limit=ten", "limit", "not a positive integer"),
    ("since=1", "since", "unknown parameter"),
])
def test_bad_requests_are_the_one_error_shape(store, query, param, message):
    client = create_app({"STORE": store.url, "BASEMAP": "none"}).test_client()
    status, body = get(client, f"/api/changes?{query}")
    assert status == 400 and set(body) == {"code", "description", "status"}
    assert body["description"].startswith(f"{param}: ") and message in body["description"]


def test_a_cursor_ahead_of_the_log_is_refused(store):
    client = create_app({"STORE": store.url, "BASEMAP": "none"}).test_client()
    page = store.changes(0, 0)
    status, body = get(client, f"/api/changes?after={feed.encode_cursor(page.log_id, page.last + 5)}")
    assert status == 400 and "ahead of the store's change log" in body["description"]


def test_the_openapi_document_describes_the_feed(store):
    client = create_app({"STORE": store.url, "BASEMAP": "none"}).test_client()
    doc = client.get("/api/openapi").get_json()
    op = doc["paths"]["/changes"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"after", "limit"}
    assert set(op["responses"]) >= {"200", "400"}
    props = op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    assert props["changes"]["items"]["properties"]["kind"]["enum"] == ["insert", "update", "delete", "replace"]


# -- a consumer polling over HTTP while threads write, across a restart ------------------------

def poll(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def test_a_polling_consumer_misses_nothing_and_sees_nothing_twice(own_store, frames):
    permits = frames[0][PERMITS]
    keys = sorted(permits["dossier_code"])
    writers, rounds = 4, 6
    expected = []  # per writer, its writes in order: (key, status) pairs
    for w in range(writers):
        mine = keys[w * 10:(w + 1) * 10]
        expected.append([[(k, STATUSES[(r + i) % len(STATUSES)]) for i, k in enumerate(mine[r % 5:r % 5 + 2])]
                         for r in range(rounds)])
    start = own_store.changes(0, 0)
    errors: list[BaseException] = []

    def write(w: int):
        try:
            for batch in expected[w]:
                rows = _concat(*[with_status(permits, [k], st) for k, st in batch])
                own_store.write({PERMITS: rows}, mode="upsert")
        except BaseException as err:  # noqa: BLE001 - reported by the test
            errors.append(err)

    got: list[dict] = []
    app = create_app({"STORE": own_store.url, "BASEMAP": "none"})
    with live_server(app) as server:
        body = poll(f"{server}/api/changes?limit=3")
        cursor = body["cursor"]
        got += body["changes"]
        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        polls = 0
        while any(t.is_alive() for t in threads) or polls < 3:
            body = poll(f"{server}/api/changes?after={cursor}&limit=3")
            got += body["changes"]
            cursor = body["cursor"]
            polls += 1
            if len(got) > start.last + 10 and polls > 5:
                break  # "restart": the rest is read by a new app on the same own_store
        for t in threads:
            t.join()
    assert not errors
    with live_server(create_app({"STORE": own_store.url, "BASEMAP": "none"})) as server:  # a new process's app
        while True:
            body = poll(f"{server}/api/changes?after={cursor}&limit=7")
            got += body["changes"]
            cursor = body["cursor"]
            if not body["more"]:
                break
        with pytest.raises(urllib.error.HTTPError) as err:
            poll(f"{server}/api/changes?after=x")
        assert err.value.code == 400
    seqs = [c["seq"] for c in got]
    assert seqs == sorted(set(seqs)) and seqs == list(range(1, len(seqs) + 1))  # in order, once each, no gap
    assert len(got) == start.last + writers * rounds * 2
    news = [(c["key"], c["status"]) for c in got[start.last:]]
    assert all(c["kind"] == "update" and c["layer"] == PERMITS for c in got[start.last:])
    for w in range(writers):  # each writer's writes, in its order
        mine = {k for batch in expected[w] for k, _ in batch}
        assert [n for n in news if n[0] in mine] == [pair for batch in expected[w] for pair in sorted(batch)]


def test_the_migration_runner_fills_a_gap_below_an_applied_version(tmp_path, request, monkeypatch):
    """Versions are handed to branches ahead: a database migrated to the latest version before an earlier
    migration existed (here: version 9, the inspections, on which no later one builds, left out) gets that
    one applied later."""
    from gisapp.store import migrations

    full = migrations.MIGRATIONS
    gap = next(m for m in full if m.version == 9)
    pg = new_store("postgis", tmp_path, request)
    monkeypatch.setattr(migrations, "MIGRATIONS", tuple(m for m in full if m is not gap))
    assert [m.version for m in pg.upgrade()][-1] == migrations.LATEST
    monkeypatch.setattr(migrations, "MIGRATIONS", full)
    with pg.connection(check_schema=False) as con:
        assert migrations.current_version(con) == 8
        assert [m.version for m in migrations.upgrade(con)] == [gap.version]
        assert migrations.current_version(con) == migrations.LATEST
        assert migrations.upgrade(con) == []
