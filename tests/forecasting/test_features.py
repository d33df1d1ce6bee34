"""Feature definitions, including the leakage test: no feature of day t uses sales of day t
or later."""

import numpy as np

from forecasting import features
from forecasting.cleaning import clean
from forecasting.models.base import to_target


def matrix(panel):
    y = to_target(panel.sales, True)
    return features.training_matrix(y, panel.offsets, panel.dates(panel.day), panel.onpromotion,
                                     np.arange(panel.n_series), np.arange(panel.n_series))


def test_names_are_fixed_and_typed():
    assert features.FEATURES == ("lag_1", "lag_7", "lag_14", "roll_7_mean", "roll_14_mean",
                                 "day_of_week", "month", "year", "onpromotion", "store_nbr",
                                 "family")
    assert features.FEATURE_TYPES[-2:] == ("c", "c") and features.LOOKBACK == 14


def test_lags_and_rolling_means_by_hand(small_frame):
    from forecasting.schema import validate_history
    panel, _ = clean(validate_history(small_frame)[0])
    X = matrix(panel)
    y = to_target(panel.sales, True)
    i = int(panel.offsets[1]) + 20                  # second series, day 20 of it
    assert X[i, 0] == np.float32(y[i - 1]) and X[i, 1] == np.float32(y[i - 7])
    assert X[i, 2] == np.float32(y[i - 14])
    assert np.isclose(X[i, 3], y[i - 7:i].mean()) and np.isclose(X[i, 4], y[i - 14:i].mean())
    start = int(panel.offsets[1])
    assert np.isnan(X[start, 0]) and np.isnan(X[start + 6, 1]) and not np.isnan(X[start + 7, 1])
    assert np.isnan(X[start + 13, 4]) and not np.isnan(X[start + 14, 4])
    date = panel.dates(panel.day[i:i + 1])[0].astype("datetime64[D]").item()
    assert X[i, 5] == date.weekday() and X[i, 6] == date.month and X[i, 7] == date.year


def test_no_feature_of_day_t_sees_sales_of_day_t_or_later(small_frame):
    from forecasting.schema import validate_history
    panel, _ = clean(validate_history(small_frame)[0])
    before = matrix(panel)
    t = 200
    changed = panel.day >= t
    panel.sales[changed] = panel.sales[changed] * 7 + 13     # rewrite the future
    after = matrix(panel)
    upto = panel.day <= t
    np.testing.assert_array_equal(before[upto], after[upto])
    assert not np.array_equal(before[panel.day == t + 1][:, 0], after[panel.day == t + 1][:, 0])


def test_step_features_equal_training_features(small_frame):
    from forecasting.history import panel_window
    from forecasting.schema import validate_history
    panel, _ = clean(validate_history(small_frame)[0])
    X = matrix(panel)
    day = panel.last_day
    sales, _promo = panel_window(panel, day - 1, features.LOOKBACK)
    codes = np.arange(panel.n_series)
    step = features.step_matrix(to_target(sales, True), panel.dates(np.array([day]))[0],
                                panel.onpromotion[panel.offsets[1:] - 1], codes, codes)
    np.testing.assert_allclose(step, X[panel.offsets[1:] - 1], rtol=1e-6)


def test_features_of_chosen_rows_equal_those_rows_of_the_whole_matrix(small_frame):
    """``at`` computes only the rows asked for (a validation matrix, a sampled refresh), with
    the same values as the whole panel's matrix, series starts included."""
    from forecasting.schema import validate_history
    panel, _ = clean(validate_history(small_frame)[0])
    whole = matrix(panel)
    at = np.flatnonzero(np.random.default_rng(0).random(len(panel.day)) < 0.2)
    at = np.union1d(at, panel.offsets[:-1] + 3)     # rows whose lags reach before the start
    y = to_target(panel.sales, True)
    chosen = features.training_matrix(y, panel.offsets, panel.dates(panel.day),
                                      panel.onpromotion, np.arange(panel.n_series),
                                      np.arange(panel.n_series), at=at)
    np.testing.assert_array_equal(chosen, whole[at])
    assert np.isnan(chosen[np.searchsorted(at, panel.offsets[:-1] + 3), 1]).all()
