"""Live accuracy equals a hand computation on a small case."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from forecasting.artifact import SeriesTable
from forecasting.monitoring.live_accuracy import naive_forecasts, score

ORIGIN = np.datetime64("2017-08-15")


def test_naive_repeats_the_last_week_from_the_origin() -> None:
    table = SeriesTable(np.array([1]), np.array(["A"], dtype=object),
                        np.arange(14, dtype=np.float64)[None, :], np.zeros((1, 14), np.int32),
                        ORIGIN)
    days = (ORIGIN + np.arange(1, 10)).astype("datetime64[D]").astype(np.int64)
    step, naive = naive_forecasts(table, np.ones(9, int), np.array(["A"] * 9), days)
    assert step.tolist() == list(range(1, 10))
    # Day h gets y[T + h - 7*ceil(h/7)]: the last seven values 7..13 repeat.
    assert naive.tolist() == [7, 8, 9, 10, 11, 12, 13, 7, 8]


def test_scores_match_a_hand_computation() -> None:
    day = int(ORIGIN.astype(np.int64))
    served = pd.DataFrame({
        "version": ["v1"] * 3, "store_nbr": [1, 1, 2], "family": ["A", "A", "A"],
        "day": [day + 1, day + 2, day + 1], "step": [1, 2, 1],
        "forecast": [3.0, 1.0, 0.0], "naive": [1.0, 1.0, 1.0]})
    actuals = pd.DataFrame({"store_nbr": [1, 1, 2], "family": ["A", "A", "A"],
                            "day": [day + 1, day + 2, day + 1], "sales": [1.0, 1.0, 0.0]})
    out = score(served, actuals).set_index(["version", "step"])
    every = out.loc[("v1", 0)]
    assert every["n"] == 3
    expected_rmsle = math.sqrt(((math.log1p(3) - math.log1p(1)) ** 2) / 3)
    assert every["rmsle"] == round(expected_rmsle, 6)
    assert every["wape"] == round(2.0 / 2.0, 6)                 # |3-1| + 0 + 0 over 1+1+0
    assert every["bias"] == round((2 + 0 + 0) / 3, 6)
    assert every["naive_wape"] == round(1.0 / 2.0, 6)           # only store 2 is off, by 1
    step1 = out.loc[("v1", 1)]
    assert step1["n"] == 2 and step1["mae"] == 1.0


def test_scores_by_day_give_the_error_over_time() -> None:
    day = int(ORIGIN.astype(np.int64))
    served = pd.DataFrame({
        "version": ["v1"] * 3, "store_nbr": [1, 1, 2], "family": ["A", "A", "A"],
        "day": [day + 1, day + 2, day + 1], "step": [1, 2, 1],
        "forecast": [3.0, 1.0, 0.0], "naive": [1.0, 1.0, 1.0]})
    actuals = served[["store_nbr", "family", "day"]].assign(sales=[1.0, 1.0, 0.0])
    out = score(served, actuals, by="day").set_index("day")
    assert out.index.tolist() == [day + 1, day + 2]
    assert out.loc[day + 1, "n"] == 2 and out.loc[day + 2, "mae"] == 0.0
    assert out.loc[day + 1, "naive_mae"] == 0.5


def test_no_overlap_scores_nothing() -> None:
    served = pd.DataFrame({"version": ["v1"], "store_nbr": [1], "family": ["A"], "day": [1],
                           "step": [1], "forecast": [1.0], "naive": [1.0]})
    actuals = pd.DataFrame({"store_nbr": [1], "family": ["A"], "day": [2], "sales": [1.0]})
    assert score(served, actuals).empty
