"""The XGBoost member's recursive forecast (forecasting.models.recursion): reordering the series
for the trees, writing one feature matrix in place and splitting the series across threads
(forecasting.wide) give exactly the numbers of the plain recursion, one day after another in
the caller's order, for series with unknown lags too."""

import threading

import numpy as np
import pytest

from forecasting.cleaning import clean
from forecasting.history import ForecastInput, panel_forecast_input
from forecasting.models.base import from_target, to_target
from forecasting.predictor import Predictor
from forecasting.schema import validate_history
from forecasting.wide import WideForecasts

DAYS = 30


def plain_recursion(member, inp: ForecastInput) -> np.ndarray:
    """The definition: each day's features from the days before, then the trees, in order."""
    lookback = member.lookback
    tail = to_target(inp.sales[:, -lookback:], member.log_target)
    out = []
    for d in range(inp.horizon):
        X = member.features.step_matrix(tail[:, -lookback:], inp.dates[d], inp.promo[:, d],
                                        inp.store_code, inp.family_code)
        out.append(member.predict_features(X).astype(np.float64))   # kept as float64
        tail = np.concatenate([tail, out[-1][:, None]], axis=1)
    return from_target(np.stack(out, axis=1), member.log_target)


@pytest.fixture(scope="module")
def forecast_input(trained, small_frame) -> ForecastInput:
    """Every series of the small panel, DAYS days from 40 days before its end, with
    promotions; a third of the series began only 1-20 days before the origin (unknown lags)."""
    panel, _ = clean(validate_history(small_frame)[0])
    codes_s = np.searchsorted(trained.encoders["store_nbr"], panel.store_nbr)
    codes_f = np.searchsorted(trained.encoders["family"], panel.family.astype(str))
    lookback = trained.members["xgboost"].lookback
    inp = panel_forecast_input(panel, panel.last_day - 40, DAYS, lookback, codes_s, codes_f)
    sales = inp.sales.copy()
    for i in range(0, inp.n_series, 3):
        sales[i, :lookback - (1 + i % 20)] = np.nan
    promo = (np.arange(inp.n_series)[:, None] + np.arange(DAYS)) % 4
    return ForecastInput(sales, inp.promo_history, inp.store_code, inp.family_code, inp.dates,
                         promo.astype(np.int32))


def test_the_forecast_gives_the_plain_recursion_numbers(trained, forecast_input):
    member = trained.members["xgboost"]
    assert np.isnan(forecast_input.sales[:, -member.lookback:]).any()
    expected = plain_recursion(member, forecast_input)
    np.testing.assert_array_equal(member.forecast(forecast_input), expected)
    one_by_one = [member.forecast(_series(forecast_input, i))
                  for i in range(forecast_input.n_series)]
    np.testing.assert_array_equal(np.concatenate(one_by_one), expected)


@pytest.mark.parametrize("threads", [2, 3, 50])
def test_series_split_across_threads_give_the_same_numbers(trained, forecast_input, threads):
    member = trained.members["xgboost"]
    expected = member.forecast(forecast_input)
    wide = WideForecasts(threads, min_series=1)
    try:
        with wide.lend(forecast_input.n_series) as (got_threads, pool):
            assert got_threads == threads and pool is not None
            got = member.forecast(forecast_input, got_threads, pool)
    finally:
        wide.close()
    np.testing.assert_array_equal(got, expected)


def test_only_a_large_forecast_alone_in_flight_gets_the_helpers():
    wide = WideForecasts(2, min_series=100)
    try:
        with wide.lend(99) as small:
            assert small == (1, None)
            assert _lend_elsewhere(wide, 500) == (1, None), "another forecast is in flight"
        with wide.lend(100) as big:
            assert big[0] == 2 and big[1] is not None
            assert _lend_elsewhere(wide, 500) == (1, None), "one wide forecast at a time"
        assert _lend(wide, 100)[0] == 2, "alone again"
    finally:
        wide.close()
    assert _lend(wide, 100) == (1, None), "after close every forecast is on its own thread"
    with pytest.raises(ValueError, match="at least 1"):
        WideForecasts(2, min_series=0)


def test_the_predictor_answers_the_same_with_helper_threads(model_dir):
    predictor = Predictor.load(model_dir)
    rows = predictor.future_rows(DAYS)
    cols = (rows["date"], rows["store_nbr"], rows["family"], rows["onpromotion"])
    wide = WideForecasts(2, min_series=2)
    try:
        point, bounds = predictor.predict_intervals(*cols, levels=[80], wide=wide)
    finally:
        wide.close()
    np.testing.assert_array_equal(point, predictor.predict_columns(*cols))
    expected = predictor.predict_intervals(*cols, levels=[80])[1]
    np.testing.assert_array_equal(bounds[80.0][0], expected[80.0][0])
    np.testing.assert_array_equal(bounds[80.0][1], expected[80.0][1])


def _lend(wide: WideForecasts, n: int):
    with wide.lend(n) as got:
        return got[0], got[1]


def _lend_elsewhere(wide: WideForecasts, n: int):
    """What a forecast on another thread is lent meanwhile."""
    seen = []
    other = threading.Thread(target=lambda: seen.append(_lend(wide, n)))
    other.start()
    other.join()
    return seen[0]


def _series(inp: ForecastInput, i: int) -> ForecastInput:
    pick = slice(i, i + 1)
    return ForecastInput(inp.sales[pick], inp.promo_history[pick], inp.store_code[pick],
                         inp.family_code[pick], inp.dates, inp.promo[pick])
