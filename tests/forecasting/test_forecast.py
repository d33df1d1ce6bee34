"""Recursive forecasting: fed the true values, the step-by-step forecast equals one-step
prediction on true lags; fed its own predictions, it needs no lag from the caller."""

import numpy as np
import pandas as pd
import pytest

from forecasting.cleaning import clean
from forecasting.errors import ForecastRequestError
from forecasting.forecast import future_rows
from forecasting.history import panel_window
from forecasting.models.base import to_target
from forecasting.predictor import Predictor
from forecasting.schema import validate_history


def test_step_by_step_with_true_values_equals_one_step_prediction(trained, small_frame):
    member = trained.members["xgboost"]
    panel, _ = clean(validate_history(small_frame)[0])
    codes_s = np.searchsorted(trained.encoders["store_nbr"], panel.store_nbr)
    codes_f = np.searchsorted(trained.encoders["family"], panel.family.astype(str))
    y = to_target(panel.sales, True)
    X = member.features.training_matrix(y, panel.offsets, panel.dates(panel.day),
                                        panel.onpromotion, codes_s, codes_f)
    one_step = member.predict_features(X)
    origin, days = panel.last_day - 10, 10
    sales, _ = panel_window(panel, origin, member.lookback)
    tail = to_target(sales, True)
    for d in range(1, days + 1):
        day = origin + d
        rows = panel.offsets[:-1] + (day - panel.day[panel.offsets[:-1]])
        step = member.features.step_matrix(tail, panel.dates(np.array([day]))[0],
                                           panel.onpromotion[rows], codes_s, codes_f)
        np.testing.assert_allclose(member.predict_features(step), one_step[rows], rtol=1e-5)
        tail = np.concatenate([tail[:, 1:], y[rows][:, None]], axis=1)   # feed the truth


def test_future_rows_cross_every_series_with_the_days_after_the_history():
    # Shuffled, repeated series over a year end, family as a category (as read_table reads it).
    history = pd.DataFrame({
        "date": ["2016-12-30", "2016-12-31", "2016-12-29", "2016-12-31", "2016-12-31"],
        "store_nbr": [10, 2, 2, 2, 10],
        "family": pd.Categorical(["BEAUTY", "DAIRY", "BEAUTY", "BEAUTY", "BEAUTY"]),
        "sales": [1.0, 2.0, 3.0, 4.0, 5.0],
    }).sample(frac=1.0, random_state=0)
    rows = future_rows(history, 3, onpromotion=2)
    assert list(rows.columns) == ["date", "store_nbr", "family", "onpromotion"]
    assert list(rows.index) == list(range(9))
    days = ["2017-01-01", "2017-01-02", "2017-01-03"]
    expected = [(d, s, f, 2) for s, f in [(2, "BEAUTY"), (2, "DAIRY"), (10, "BEAUTY")]
                for d in days]
    assert list(rows.itertuples(index=False, name=None)) == expected
    assert rows["family"].map(type).eq(str).all()


def test_future_rows_take_an_explicit_last_date_and_check_their_input():
    keys = pd.DataFrame({"store_nbr": [1], "family": ["BREAD/BAKERY"]})
    leap = future_rows(keys, 2, np.datetime64("2016-02-28"))
    assert list(leap["date"]) == ["2016-02-29", "2016-03-01"]
    assert list(leap["onpromotion"]) == [0, 0]
    empty = future_rows(keys, 0, "2017-08-15")
    assert len(empty) == 0 and list(empty.columns) == list(leap.columns)
    with pytest.raises(ValueError, match="days must be a whole number >= 0"):
        future_rows(keys, -1, "2017-08-15")
    with pytest.raises(ValueError, match="date"):
        future_rows(keys, 3)                         # no date column and no last_date
    with pytest.raises(ValueError, match="family"):
        future_rows(keys[["store_nbr"]], 3, "2017-08-15")


def test_predictor_future_rows_are_the_model_series_after_its_history(model_dir):
    p = Predictor.load(model_dir)
    rows = p.future_rows(4)
    first = str(p.last_date + np.timedelta64(1, "D"))
    assert rows["date"].iloc[0] == first and rows["date"].nunique() == 4
    assert len(rows) == 4 * len(set(zip(p.history.store_nbr, p.history.family.astype(str))))
    assert p.predict(rows).shape == (len(rows),)


def test_forecast_answers_every_row_in_order(model_dir):
    p = Predictor.load(model_dir)
    rows = p.future_rows(16)
    values = p.predict(rows)
    assert values.shape == (len(rows),) and np.isfinite(values).all() and (values >= 0).all()
    shuffled = rows.sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(p.predict(shuffled), values[shuffled.index.to_numpy()])


def test_a_subset_of_days_gets_the_same_answer_as_the_full_horizon(model_dir):
    p = Predictor.load(model_dir)
    rows = p.future_rows(16)
    full = p.predict(rows)
    last_day = rows[rows["date"] == rows["date"].max()]
    np.testing.assert_allclose(p.predict(last_day), full[last_day.index.to_numpy()])


def test_promotions_lift_the_forecast_and_later_days(model_dir):
    p = Predictor.load(model_dir)
    base = p.predict(p.future_rows(3, onpromotion=0))
    promo = p.predict(p.future_rows(3, onpromotion=40))
    assert promo.sum() > base.sum()


def test_unknown_series_and_dates_inside_history_are_rejected(model_dir):
    p = Predictor.load(model_dir)
    end = str(p.last_date)
    with pytest.raises(ForecastRequestError, match=r"unknown series \(store_nbr=99.*rows 2\)"):
        p.predict_columns(["2017-08-16"] * 2, [1, 99], ["AUTOMOTIVE"] * 2, [0, 0])
    with pytest.raises(ForecastRequestError, match=f"end of the model's history \\({end}\\)"):
        p.predict_columns([end], [1], ["AUTOMOTIVE"], [0])
    with pytest.raises(ForecastRequestError, match="more than 366 days"):
        p.predict_columns(["2019-01-01"], [1], ["AUTOMOTIVE"], [0])
    with pytest.raises(ForecastRequestError, match="YYYY-MM-DD"):
        p.predict_columns(["16/08/2017"], [1], ["AUTOMOTIVE"], [0])
    with pytest.raises(ForecastRequestError, match="only once"):
        p.predict_columns(["2017-08-16"] * 2, [1, 1], ["AUTOMOTIVE"] * 2, [0, 1])


def test_never_selling_series_are_forecast_as_zero(small_frame, tmp_path):
    from forecasting import training
    frame = small_frame.copy()
    frame.loc[(frame.store_nbr == 2) & (frame.family == "BEAUTY"), "sales"] = 0.0
    model = training.train(frame, {"num_round": "20"}, log=lambda _: None)
    p = Predictor.load(model.save(tmp_path / "m"))
    out = p.predict_columns(["2017-08-16", "2017-08-16"], [2, 1], ["BEAUTY", "BEAUTY"], [5, 0])
    assert out[0] == 0.0 and out[1] > 0
    rows = p.future_rows(2)                          # never-sold series are asked for too
    never = (rows["store_nbr"] == 2) & (rows["family"] == "BEAUTY")
    assert never.sum() == 2 and (p.predict(rows)[never.to_numpy()] == 0.0).all()


def test_rows_with_unknown_lags_are_left_out_and_forecasts_read_them_as_no_sales(trained,
                                                                                 small_frame):
    """The XGBoost member trains only on rows whose every lag and window is known (a series'
    first ``lookback`` days are left out, as mlforecast's dropna does), so its matrices hold no
    NaN (XGBoost's dense histogram kernels: 1.5x faster rounds at 15M rows). Its forecasts
    read an unknown lag as ``UNKNOWN_VALUE``, below every value the trees saw: the same
    forecast as no sales on those days."""
    from forecasting import training
    from forecasting.hyperparameters import parse
    from forecasting.models.xgboost_member import UNKNOWN_VALUE, FeatureChunks, _target

    member = trained.members["xgboost"]
    panel, _ = clean(validate_history(small_frame)[0])
    data, _ = training.training_data(panel, parse({}), lambda _: None, lambda *_: None)
    target = _target(panel.sales, True)
    everything = np.ones(len(panel.day), dtype=bool)
    X = np.concatenate([c[0] for c in FeatureChunks(data, target, everything, member.features)])
    raw = member.features.training_matrix(target, panel.offsets, panel.dates(panel.day),
                                          panel.onpromotion, data.store_code, data.family_code)
    unknown = np.isnan(raw)
    assert not np.isnan(X).any() and unknown.any() and target.min() > UNKNOWN_VALUE
    np.testing.assert_array_equal(X[unknown], UNKNOWN_VALUE)
    assert member.unknown_value == UNKNOWN_VALUE
    known = panel.rows_with_history(member.lookback)
    assert not unknown[known].any() and unknown[~known].any(axis=1).all()
    split = data.split
    fit_rows = trained.metadata["members"]["xgboost"]["train_rows"]
    assert fit_rows == int((known & (panel.day <= split.train_end)).sum())
    young = raw[~known]
    np.testing.assert_array_equal(member.predict_features(young),
                                  member.predict_features(np.nan_to_num(young, nan=0.0)))


def test_a_member_saved_before_the_unknown_value_keeps_nan(trained, tmp_path):
    """member.json without ``unknown_value`` (models saved before it): NaN reaches the trees as
    missing, as those trees were grown with it."""
    import json

    from forecasting.models.xgboost_member import XGBoostMember

    member = trained.members["xgboost"]
    member.save(tmp_path)
    meta = json.loads((tmp_path / "member.json").read_text())
    assert XGBoostMember.load(tmp_path, meta).unknown_value == member.unknown_value
    del meta["unknown_value"]
    old = XGBoostMember.load(tmp_path, meta)
    assert old.unknown_value is None
    rows = np.full((3, len(member.features)), 1.0, dtype=np.float32)
    rows[:, :member.features.n_history] = np.nan
    np.testing.assert_array_equal(
        old.predict_features(rows),
        old.booster.inplace_predict(rows, iteration_range=(0, old.best_iteration + 1)))
