"""Feature definitions, including the leakage test: no feature of day t uses sales of day t
or later."""

import re

import numpy as np
import pytest

from forecasting import features
from forecasting.cleaning import clean
from forecasting.models.base import to_target

#: Every kind of feature name, so each computation is checked by hand below.
EVERY_KIND = features.FeatureSet((
    "lag_1", "lag_7", "roll_7_mean", "roll_3_mean_lag_5", "age", "day_of_week",
    "day_of_month", "day_of_year", "month", "year", "onpromotion", "store_nbr", "family"))


def matrix(panel, feature_set=features.DEFAULT, **kwargs):
    y = to_target(panel.sales, True)
    return feature_set.training_matrix(y, panel.offsets, panel.dates(panel.day),
                                       panel.onpromotion, np.arange(panel.n_series),
                                       np.arange(panel.n_series), **kwargs)


@pytest.fixture(scope="module")
def panel(small_frame):
    from forecasting.schema import validate_history
    return clean(validate_history(small_frame)[0])[0]


def test_the_default_names_are_fixed_and_typed():
    assert features.DEFAULT.names == (
        "lag_1", "lag_7", "lag_14", "roll_7_mean", "roll_14_mean", "roll_28_mean",
        "day_of_week", "day_of_month", "day_of_year", "month", "year", "onpromotion",
        "store_nbr", "family")
    assert features.DEFAULT.types[-2:] == ("c", "c") and features.DEFAULT.lookback == 28
    assert features.DEFAULT.n_history == 6
    assert features.LEGACY.lookback == 14 and len(features.LEGACY) == 11


@pytest.mark.parametrize("names, message", [
    (("day_of_week", "lag_1"), "history features (lags, windows) must come first"),
    (("lag_1", "weekday"), "unknown feature 'weekday'"),
    (("lag_0",), "lags and windows must be positive integers"),
    (("lag_1", "lag_1"), "each feature may be listed once"),
])
def test_a_bad_feature_set_names_what_is_wrong(names, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        features.FeatureSet(names)


def test_every_kind_of_feature_by_hand(panel):
    X = matrix(panel, EVERY_KIND)
    y = to_target(panel.sales, True)
    start = int(panel.offsets[1])
    i = start + 20                                  # second series, day 20 of it
    assert X[i, 0] == np.float32(y[i - 1]) and X[i, 1] == np.float32(y[i - 7])
    assert np.isclose(X[i, 2], y[i - 7:i].mean())
    assert np.isclose(X[i, 3], y[i - 7:i - 4].mean())          # days t-7 .. t-5
    assert X[i, 4] == 7 and X[start + 3, 4] == 3                # age, capped at the lookback
    date = panel.dates(panel.day[i:i + 1])[0].astype("datetime64[D]").item()
    assert X[i, 5] == date.weekday() and X[i, 6] == date.day
    assert X[i, 7] == date.timetuple().tm_yday and X[i, 8] == date.month
    assert X[i, 9] == date.year and X[i, 10] == panel.onpromotion[i] and X[i, 11:].tolist() == [1, 1]
    assert np.isnan(X[start, 0]) and np.isnan(X[start + 6, 1]) and not np.isnan(X[start + 7, 1])
    assert np.isnan(X[start + 6, 3]) and not np.isnan(X[start + 7, 3])   # reaches 7 days back
    assert EVERY_KIND.lookback == 7 and EVERY_KIND.n_history == 4


def test_no_feature_of_day_t_sees_sales_of_day_t_or_later(panel):
    before = matrix(panel, EVERY_KIND)
    changed = panel.day >= 200
    sales = panel.sales.copy()
    panel.sales[changed] = panel.sales[changed] * 7 + 13     # rewrite the future
    try:
        after = matrix(panel, EVERY_KIND)
    finally:
        panel.sales[:] = sales
    upto = panel.day <= 200
    np.testing.assert_array_equal(before[upto], after[upto])
    assert not np.array_equal(before[panel.day == 201][:, 0], after[panel.day == 201][:, 0])


@pytest.mark.parametrize("feature_set", [features.DEFAULT, features.LEGACY, EVERY_KIND])
def test_step_features_equal_training_features(panel, feature_set):
    """The forecast's one-day features equal the training features of the same rows, for
    series of every age (the sample has series younger than the lookback at this day)."""
    from forecasting.history import panel_window
    X = matrix(panel, feature_set)
    day = panel.last_day - 1
    rows = panel.offsets[:-1] + (day - panel.day[panel.offsets[:-1]])
    alive = rows >= panel.offsets[:-1]
    sales, _promo = panel_window(panel, day - 1, feature_set.lookback)
    codes = np.arange(panel.n_series)
    step = feature_set.step_matrix(to_target(sales, True), panel.dates(np.array([day]))[0],
                                   panel.onpromotion[rows], codes, codes)
    np.testing.assert_allclose(step[alive], X[rows[alive]], rtol=1e-6)


def test_features_of_chosen_rows_equal_those_rows_of_the_whole_matrix(panel):
    """``at`` computes only the rows asked for (a validation matrix, a sampled refresh), with
    the same values as the whole panel's matrix, series starts included."""
    whole = matrix(panel, EVERY_KIND)
    at = np.flatnonzero(np.random.default_rng(0).random(len(panel.day)) < 0.2)
    at = np.union1d(at, panel.offsets[:-1] + 3)     # rows whose lags reach before the start
    chosen = matrix(panel, EVERY_KIND, at=at)
    np.testing.assert_array_equal(chosen, whole[at])
    assert np.isnan(chosen[np.searchsorted(at, panel.offsets[:-1] + 3), 1]).all()


def test_rows_with_history_are_those_whose_every_lag_is_known(panel):
    X = matrix(panel)
    known = panel.rows_with_history(features.DEFAULT.lookback)
    assert not np.isnan(X[known]).any()
    assert np.isnan(X[~known][:, :features.DEFAULT.n_history]).any(axis=1).all()
