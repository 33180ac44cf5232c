"""The narrowest free passage beside an occupancy: hand-made shapes with known answers."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from gisapp import passage
from gisapp.passage import Occupancy, narrowest_over_period, occupancy_passages, passage_width

X, Y = 548000.0, 1770700.0  # in Cẩm Lệ, EPSG:5899
D = dt.date.fromisoformat
SIDEWALK = box(X, Y, X + 50, Y + 3)  # 3 m wide, 50 m long; the lots along y = Y, the kerb along y = Y + 3


def rect(x0, y0, x1, y1):
    return box(X + x0, Y + y0, X + x1, Y + y1)


def test_one_occupancy_of_half_the_width_leaves_half():
    assert passage_width(SIDEWALK, rect(20, 0, 25, 1.5)) == 1.50


def test_two_facing_occupancies_on_the_same_days_leave_the_gap_between_them():
    assert passage_width(SIDEWALK, rect(20, 0, 25, 1.0), [rect(21, 2.0, 24, 3.0)]) == 1.00


def test_two_facing_occupancies_on_different_days_leave_two_metres():
    mine = Occupancy(rect(20, 0, 25, 1.0), D("2022-03-01"), D("2022-03-10"))
    other = Occupancy(rect(21, 2.0, 24, 3.0), D("2022-03-11"), D("2022-03-20"))
    assert narrowest_over_period(SIDEWALK, mine, [other]) == (2.00, D("2022-03-01"))


def test_the_narrowest_day_is_the_first_day_the_other_is_there():
    mine = Occupancy(rect(20, 0, 25, 1.0), D("2022-03-01"), D("2022-03-31"))
    other = Occupancy(rect(21, 2.0, 24, 3.0), D("2022-03-11"), D("2022-03-20"))
    assert narrowest_over_period(SIDEWALK, mine, [other]) == (1.00, D("2022-03-11"))


def test_only_days_when_the_set_of_occupancies_changes_are_evaluated():
    others = [Occupancy(rect(0, 0, 1, 1), D("2022-03-05"), D("2022-03-07")),
              Occupancy(rect(0, 0, 1, 1), D("2022-02-01"), D("2022-03-02"))]
    assert passage.change_days(D("2022-03-01"), D("2022-03-31"), others) == [
        D("2022-03-01"), D("2022-03-03"), D("2022-03-05"), D("2022-03-08")]


def test_an_occupancy_across_the_full_width_leaves_nothing():
    assert passage_width(SIDEWALK, rect(20, 0, 25, 3.0)) == 0.0


def test_an_occupancy_in_the_middle_leaves_the_wider_side():
    assert passage_width(SIDEWALK, rect(20, 0.5, 25, 1.0)) == 2.00


def test_an_occupancy_beyond_the_stretch_does_not_count():
    assert passage_width(SIDEWALK, rect(20, 0, 25, 1.0), [rect(40, 1.5, 44, 3.0)]) == 2.00


def test_an_occupancy_at_the_end_of_the_sidewalk_is_measured_to_the_cross_street():
    assert passage_width(SIDEWALK, rect(0.1, 0, 5, 1.5)) == 1.50
    assert passage_width(SIDEWALK, rect(45, 0, 49.9, 2.0)) == 1.00


L_SHAPE = Polygon([(X, Y), (X + 40, Y), (X + 40, Y + 3), (X + 3, Y + 3), (X + 3, Y + 40), (X, Y + 40)])


def test_an_l_shaped_sidewalk_at_a_corner():
    # a 1.5 m square in the outer corner: the inner corner is √(1.5² + 1.5²) = 2.12 m from it
    assert passage_width(L_SHAPE, rect(0, 0, 1.5, 1.5)) == 2.12
    assert passage_width(L_SHAPE, rect(0, 5, 1.5, 10)) == 1.50
    assert passage_width(L_SHAPE, rect(1, 1, 3, 3)) == 1.00  # at the inner corner: 1 m to both outer edges


def test_an_occupancy_touching_two_sidewalks_that_meet():
    two = MultiPolygon([box(X, Y, X + 40, Y + 3), box(X, Y + 3, X + 3, Y + 40)])
    assert passage_width(two, rect(0, 1, 1, 6)) == 2.00
    assert passage_width(two, rect(0, 1, 1, 6)) == passage_width(L_SHAPE, rect(0, 1, 1, 6))


def test_an_occupancy_touching_two_separate_sidewalks_gets_the_narrower():
    across = MultiPolygon([box(X, Y, X + 50, Y + 3), box(X, Y + 10, X + 50, Y + 14)])
    assert passage_width(across, rect(20, 2, 22, 11)) == 2.00  # 2 m left on the first, 3 m on the second


def test_an_occupancy_off_the_sidewalk_has_no_passage():
    assert passage_width(SIDEWALK, rect(20, 10, 25, 12)) is None


def test_a_hole_in_the_sidewalk_is_an_obstacle():
    with_pit = Polygon(SIDEWALK.exterior.coords, [rect(22, 2.0, 23, 2.6).exterior.coords])
    assert passage_width(with_pit, rect(20, 0, 25, 1.0)) == 1.00  # between the occupancy and the tree pit


def test_vectorised_passages_equal_the_one_by_one_answers():
    walks = np.array([SIDEWALK, L_SHAPE.buffer(0), box(X + 100, Y, X + 150, Y + 4)], dtype=object)
    occ = np.array([rect(20, 0, 25, 1.0), rect(21, 2.0, 24, 3.0), rect(0, 0, 1.5, 1.5),
                    rect(120, 0, 125, 2.5), rect(30, 20, 31, 21)], dtype=object)
    start = np.array([100, 105, 100, 100, 100])
    end = np.array([110, 120, 110, 110, 110])
    value, day = occupancy_passages(occ, start, end, walks, np.array([3.0, 3.0, 4.0]))
    assert value[0] == 1.00 and day[0] == 105  # the other comes on day 105
    assert value[1] == 1.00 and day[1] == 105
    assert value[3] == 1.50 and day[3] == 100  # alone: the vectorised path
    assert np.isnan(value[4]) and day[4] == -1  # on no sidewalk
    assert value[2] == passage_width(walks[1], occ[2], width=3.0)


@pytest.mark.parametrize("shift", [0.0, 0.37, 1.91])
def test_the_passage_does_not_depend_on_where_the_sidewalk_is(shift):
    moved = shapely.affinity.translate(SIDEWALK, shift * 1000, shift * 777)
    occ = shapely.affinity.translate(rect(20, 0, 25, 1.3), shift * 1000, shift * 777)
    assert passage_width(moved, occ) == 1.70


def test_passages_split_over_threads_equal_one_call(monkeypatch):
    """Many occupancies on many sidewalks, some sharing a stretch on overlapping days: the passages with the
    long shapely calls split over two threads equal those of one call, value for value and day for day."""
    rng = np.random.default_rng(7)
    n_walks, n = 400, 3000
    walks = np.array([box(X + 60 * k, Y, X + 60 * k + 50, Y + 3 + (k % 3)) for k in range(n_walks)], dtype=object)
    on = rng.integers(0, n_walks, n)
    x0 = X + 60 * on + rng.uniform(0, 45, n)
    y0 = Y + rng.uniform(0, 1.5, n)
    occ = shapely.box(x0, y0, x0 + rng.uniform(1, 5, n), y0 + rng.uniform(0.5, 2.0, n))
    start = rng.integers(0, 60, n)
    end = start + rng.integers(0, 30, n)

    def passages(workers, minimum):
        monkeypatch.setattr(passage, "WORKERS", workers)
        monkeypatch.setattr(passage, "PARALLEL_MIN", minimum)
        return occupancy_passages(occ, start, end, walks)

    one_value, one_day = passages(1, 10**9)
    split_value, split_day = passages(2, 10)
    assert np.isfinite(one_value).sum() > 2500 and len(np.unique(one_value[np.isfinite(one_value)])) > 100
    np.testing.assert_array_equal(split_value, one_value)
    np.testing.assert_array_equal(split_day, one_day)
