"""Days of supply on hand-computed cases, the stockout probability from quantile paths, and
bad inventory named by row."""

import numpy as np
import pandas as pd
import pytest

from forecasting import turnover
from forecasting.errors import DataValidationError
from forecasting.forecast import SeriesLookup


def _dos(demand, stock, receipts=None):
    demand = np.atleast_2d(np.asarray(demand, dtype=float))
    rec = None if receipts is None else np.atleast_2d(np.asarray(receipts, dtype=float))
    days, beyond = turnover.days_of_supply(demand, np.atleast_1d(float(stock)), rec)
    return float(days[0]), bool(beyond[0])


def test_stock_that_runs_out_mid_day_counts_the_fraction_of_that_day():
    # 10 units, 4 a day: days 1 and 2 use 8, day 3 has 2 of its 4 -> 2.5 days.
    assert _dos([4, 4, 4, 4], 10) == (2.5, False)
    # Exactly enough for two days: the third day starts with nothing -> 2.0.
    assert _dos([4, 4, 4], 8) == (2.0, False)
    # Nothing on hand and demand on day 1 -> 0 days.
    assert _dos([3, 3], 0) == (0.0, False)
    # Uneven demand: 1 + 2 = 3 used by day 2, day 3 needs 6 and has 7 - 3 = 4 -> 2 + 4/6.
    days, beyond = _dos([1, 2, 6, 1], 7)
    assert days == pytest.approx(2 + 4 / 6) and not beyond


def test_receipts_arrive_at_the_start_of_their_day():
    # 5 on hand + 10 on day 2 = 15 by day 2; 4 a day runs out on day 4 with 15 - 12 = 3 left.
    assert _dos([4, 4, 4, 4, 4], 5, [0, 10, 0, 0, 0]) == (3.75, False)
    # A receipt after the shelf is already empty does not undo the stockout on day 1.
    assert _dos([4, 4, 4, 4], 3, [0, 0, 100, 0]) == (0.75, False)


def test_no_demand_or_stock_beyond_the_horizon_is_more_than_the_horizon():
    assert _dos([0, 0, 0], 0) == (3.0, True)
    assert _dos([0, 0, 0], 5) == (3.0, True)
    assert _dos([4, 4, 4, 4, 4], 100) == (5.0, True)
    assert _dos([4, 4, 4, 4, 4], 20) == (5.0, True)       # exactly enough for the horizon


def test_plan_sums_demand_and_receipts_and_turnover_is_demand_over_stock():
    demand = np.array([[4.0, 4, 4, 4], [1, 1, 1, 1]])
    receipts = np.array([[0.0, 2, 0, 0], [0, 0, 0, 0]])
    probs = np.array([0.25, 0.75])
    paths = np.stack([demand[:, :2] * 0.5, demand[:, :2] * 2])
    table = turnover.plan(demand, np.array([10.0, 0.0]), receipts, probs, paths)
    np.testing.assert_allclose(table.demand, [16, 4])
    np.testing.assert_allclose(table.receipts, [2, 0])
    np.testing.assert_allclose(table.days_of_supply, [3.0, 0.0])
    assert table.turnover[0] == pytest.approx(1.6) and np.isnan(table.turnover[1])


def test_stockout_probability_is_one_minus_the_rank_that_first_runs_out():
    probs = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    # Demand per day at each quantile: 1..5; over a 2-day lead time 2, 4, 6, 8, 10 in all.
    paths = np.stack([np.full((3, 2), k + 1.0) for k in range(5)])
    risk = turnover.stockout_probability(probs, paths, np.array([5.0, 100.0, 0.0]))
    # 5 units: the 0.5 quantile (6) is the first to run out, between 0.3 and 0.5 -> 1 - 0.4.
    np.testing.assert_allclose(risk, [0.6, 0.0, 1.0])
    # A receipt on day 2 of 4 units moves the threshold: 9 units, first out at 0.9 (10).
    risk = turnover.stockout_probability(probs, paths, np.array([5.0, 5.0, 5.0]),
                                         np.array([[0.0, 4.0]] * 3))
    np.testing.assert_allclose(risk, [0.2] * 3)


def test_quantile_paths_order_the_interval_bounds_by_probability():
    bounds = {80.0: (np.array([1.0]), np.array([9.0])), 50.0: (np.array([3.0]), np.array([6.0]))}
    probs, paths = turnover.quantile_paths(bounds)
    np.testing.assert_allclose(probs, [0.1, 0.25, 0.75, 0.9])
    np.testing.assert_allclose(paths[:, 0], [1, 3, 6, 9])
    assert turnover.QUANTILE_LEVELS[0] == 1.0 and turnover.QUANTILE_LEVELS[-1] == 99.0


@pytest.fixture()
def lookup():
    return SeriesLookup.build(np.array([1, 1, 2]), np.array(["A", "B", "A"]),
                              np.array([2]), np.array(["B"]))


@pytest.mark.parametrize("store, family, on_hand, message", [
    ([1, 9], ["A", "A"], [1, 2], (r"unknown series \(store_nbr=9, family='A'\) is not in the "
                                 r"model \(rows 2\)")),
    ([1, 2], ["A", "A"], [1, -2], r"column 'on_hand': must be >= 0 \(rows 2\)"),
    ([1, 2], ["A", "A"], [np.nan, 1], r"column 'on_hand': must be a number \(rows 1\)"),
    ([1, 2, 1], ["A", "A", "A"], [1, 1, 1], r"each series may appear only once \(rows 1, 3\)"),
    ([], [], [], "needs at least one row"),
])
def test_bad_inventory_names_the_rule_and_rows(lookup, store, family, on_hand, message):
    with pytest.raises(DataValidationError, match=message):
        turnover.check_inventory(np.array(store, dtype=np.int64), np.array(family, dtype=str),
                                 np.array(on_hand, dtype=float), lookup)


def test_a_series_that_never_sold_may_be_planned(lookup):
    turnover.check_inventory(np.array([2]), np.array(["B"]), np.array([3.0]), lookup)


def test_receipts_are_laid_out_per_series_and_day_and_checked():
    keys = pd.MultiIndex.from_arrays([np.array([1, 2]), np.array(["A", "A"])])
    first = np.datetime64("2017-08-16")
    grid = turnover.receipts_grid(keys, first, 3, np.array(["2017-08-17", "2017-08-16",
                                                            "2017-08-17", "2017-09-30"]),
                                  [2, 1, 2, 1], ["A", "A", "A", "A"], [5.0, 1.0, 2.0, 50.0])
    np.testing.assert_allclose(grid, [[1, 0, 0], [0, 7, 0]])   # after the horizon: not counted
    with pytest.raises(DataValidationError, match=r"must name a series of the inventory "
                                                  r"\(rows 2\)"):
        turnover.receipts_grid(keys, first, 3, np.array(["2017-08-16"] * 2), [1, 3], ["A", "A"],
                               [1.0, 1.0])
    with pytest.raises(DataValidationError, match=r"column 'quantity': must be >= 0"):
        turnover.receipts_grid(keys, first, 3, np.array(["2017-08-16"]), [1], ["A"], [-1.0])
    with pytest.raises(DataValidationError, match=r"on or after the first forecast day "
                                                  r"\(2017-08-16\) \(rows 1\)"):
        turnover.receipts_grid(keys, first, 3, np.array(["2017-08-15"]), [1], ["A"], [1.0])


def test_without_quantiles_the_stockout_probability_is_unknown():
    risk = turnover.stockout_probability(np.zeros(0), np.zeros((0, 2, 3)), np.array([1.0, 2.0]))
    assert np.isnan(risk).all() and risk.shape == (2,)
