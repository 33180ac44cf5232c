"""What a process keeps per store (``gisapp.kept``): the newest few, a lock per key, an honest state."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from gisapp.kept import Kept, in_background


@dataclass
class Value:
    version: str | None
    full: bool = True


def test_the_least_recently_put_is_dropped_first():
    kept: Kept[Value] = Kept(2)
    kept.put("a", Value("1"))
    kept.put("b", Value("1"))
    kept.put("a", Value("2"))  # put again: now the newest
    kept.put("c", Value("1"))
    assert kept.get("b") is None and kept.get("a") == Value("2") and kept.get("c") == Value("1")


def test_a_key_being_read_does_not_hold_the_others():
    kept: Kept[Value] = Kept(4)
    with kept.lock("a"):
        done = threading.Event()

        def other():
            with kept.lock("b"):
                kept.put("b", Value("1"))
            done.set()

        threading.Thread(target=other).start()
        assert done.wait(5)
    assert kept.lock("a") is kept.lock("a") and kept.lock("a") is not kept.lock("b")


def test_state_says_what_is_kept():
    kept: Kept[Value] = Kept(4)
    assert kept.state("a", "1") == "none"
    kept.put("a", Value("1"))
    assert kept.state("a", "1") == "ready"
    assert kept.state("a", "2") == "behind"
    assert kept.state("a", None) == "behind"  # a store without versions: never ready
    assert kept.state("a", "1", lambda v: not v.full) == "none"  # kept, but not complete
    with kept.lock("a"):
        assert kept.state("a", "1") == "reading"
    kept.clear()
    assert kept.state("a", "1") == "none"


def test_a_failed_background_read_is_logged_and_the_next_runs(caplog):
    ran = threading.Event()

    def fails():
        raise OSError("disk gone")

    in_background("test-kept", ("the broken thing", fails), ("the next thing", ran.set))
    assert ran.wait(5)
    assert any("reading the broken thing failed" in r.getMessage() for r in caplog.records)


def test_geometries_are_freed_in_the_background():
    import geopandas as gpd
    import shapely

    from gisapp import kept

    frames = [gpd.GeoDataFrame({"k": range(n)}, geometry=shapely.points(range(n), range(n))) for n in (5, 45_001)]
    geometry = [f.geometry.array for f in frames]
    kept.free_in_background(frames)
    for thread in [t for t in threading.enumerate() if t.name == "gisapp-free"]:
        thread.join(10)
    assert all(g.isna().all() for g in geometry)  # every slot let go, across slices



def test_frames_without_shapely_geometries_are_left_alone():
    """The analysis's WKB frames have nothing to free: their column is not turned into objects and emptied."""
    import pandas as pd
    import pyarrow as pa

    from gisapp import kept

    wkb = pd.DataFrame({"geometry": pd.arrays.ArrowExtensionArray(pa.array([b"\x01", None, b"\x02"]))})
    before = {t.ident for t in threading.enumerate()}
    kept.free_in_background([wkb])
    assert not [t for t in threading.enumerate() if t.name == "gisapp-free" and t.ident not in before]
    assert wkb["geometry"].tolist()[::2] == [b"\x01", b"\x02"]
