"""Rolling-origin backtests: the windows, that no window's model sees its days, and the
summary computed by hand."""

import numpy as np
import pandas as pd
import pytest

from forecasting import backtest

FAST = {"num_round": "30", "early_stopping_rounds": "5", "horizon": "7", "nthread": "2"}


def test_windows_end_on_the_last_day_step_apart():
    got = backtest.windows("2017-08-15", 3, 7, step=5)
    assert [str(w.origin) for w in got] == ["2017-07-29", "2017-08-03", "2017-08-08"]
    assert str(got[-1].last) == "2017-08-15" and str(got[0].first) == "2017-07-30"
    with pytest.raises(ValueError, match="must be >= 1"):
        backtest.windows("2017-08-15", 0, 7)


def test_each_window_is_forecast_by_a_model_that_never_saw_it(small_frame):
    result = backtest.backtest(small_frame, FAST, n_windows=2, levels=(80,))
    cells = result.cells
    assert result.summary["windows"] == 2 and set(cells["window"]) == {0, 1}
    for window in result.windows:
        part = cells[cells["window"] == window.index]
        assert part["date"].min() == window.first and part["date"].max() == window.last
    # Each window's own forecasts: retrain on the rows up to its origin, forecast the same rows.
    from forecasting import training
    from forecasting.predictor import Predictor

    w = result.windows[0]
    dates = pd.to_datetime(small_frame["date"]).to_numpy().astype("datetime64[D]")
    model = training.train(small_frame[dates <= w.origin], FAST, log=lambda _: None)
    assert str(model.history.last_date) == str(w.origin)
    part = cells[cells["window"] == 0]
    again = Predictor.from_trained(model).predict_columns(
        part["date"].to_numpy(), part["store_nbr"].to_numpy(), part["family"].to_numpy(),
        small_frame[(dates > w.origin) & (dates <= w.last)]["onpromotion"].to_numpy())
    np.testing.assert_allclose(again, part["forecast"].to_numpy(), rtol=1e-6)
    assert (part["lo-80"] <= part["forecast"] + 1e-9).all()
    assert (part["hi-80"] >= part["forecast"] - 1e-9).all()


def test_score_by_hand():
    cells = pd.DataFrame({
        "window": [0, 0, 0, 0], "date": pd.to_datetime(["2017-01-01", "2017-01-02"] * 2),
        "store_nbr": [1, 1, 2, 2], "family": ["A", "A", "B", "B"],
        "actual": [1.0, 3.0, 0.0, 4.0], "forecast": [2.0, 2.0, 0.0, 2.0],
        "lo-80": [1.0, 1.0, 0.0, 0.0], "hi-80": [3.0, 3.0, 0.0, 3.0],
        "scale": [1.0, 1.0, 2.0, 2.0], "third": ["low", "low", "high", "high"]})
    summary = backtest.score(cells, (80,))
    overall = summary["overall"]
    assert overall["wape"] == pytest.approx(4 / 8) and overall["bias"] == pytest.approx(-0.5)
    assert overall["mase"] == pytest.approx((1 / 1 + 1 / 2) / 2)
    assert overall["bias_share"] == pytest.approx(-0.5 / 2)
    eighty = summary["intervals"]["80"]
    assert eighty["coverage"] == pytest.approx(3 / 4)
    assert eighty["coverage_per_third"] == {"low": 1.0, "mid": pytest.approx(np.nan,
                                                                             nan_ok=True),
                                            "high": 0.5}
    widths = np.array([2, 2, 0, 3.0])
    assert eighty["mean_interval_score"] == pytest.approx((widths.sum() + 10 * 1.0) / 4)
