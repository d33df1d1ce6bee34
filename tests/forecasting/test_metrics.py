import math

import numpy as np

from forecasting import metrics


def test_scores_by_hand():
    f, a = np.array([2.0, 0.0, 4.0]), np.array([1.0, 1.0, 4.0])
    s = metrics.scores(f, a)
    assert math.isclose(s["rmse"], math.sqrt(2 / 3), rel_tol=1e-6)
    assert math.isclose(s["mae"], 2 / 3, rel_tol=1e-6)
    assert math.isclose(s["wape"], 2 / 6, rel_tol=1e-6)
    assert math.isclose(s["bias"], 0.0, abs_tol=1e-9)
    expected = math.sqrt(((math.log(3) - math.log(2)) ** 2 + math.log(2) ** 2) / 3)
    assert math.isclose(s["rmsle"], expected, rel_tol=1e-5)
    assert metrics.scores(np.zeros(2), np.zeros(2))["wape"] is None
    assert metrics.scores(np.array([-5.0]), np.array([0.0]))["rmse"] == 0.0   # clipped at 0


def test_seasonal_naive_uses_only_the_origin_week():
    history = np.arange(14, dtype=float)[None, :]         # last week: 7..13
    out = metrics.seasonal_naive(history, 16)
    assert out[0].tolist() == [7, 8, 9, 10, 11, 12, 13] * 2 + [7, 8]
    assert metrics.seasonal_naive(np.full((1, 7), np.nan), 3).tolist() == [[0, 0, 0]]


def test_evaluate_and_metric_lines():
    actual = np.array([[1.0, 2.0], [3.0, 4.0]])
    ev = metrics.evaluate({"xgboost": actual + 1}, actual, actual, np.array(["A", "B"]))
    assert ev["baseline"]["overall"]["rmse"] == 0 and ev["baseline"]["name"] == "seasonal_naive_7"
    assert set(ev["models"]["xgboost"]["per_family"]) == {"A", "B"}
    lines = metrics.metric_lines(ev)
    assert "xgboost.test.rmse=1.000000" in lines and "baseline.test.mae=0.000000" in lines


def test_mase_by_hand_leaves_out_series_without_a_scale():
    f = np.array([[2.0, 2.0], [1.0, 1.0], [5.0, 5.0]])
    a = np.array([[1.0, 3.0], [1.0, 1.0], [0.0, 0.0]])
    scale = np.array([0.5, 2.0, 0.0])              # the third never varied: left out
    assert math.isclose(metrics.mase(f, a, scale), (1 / 0.5 + 0 / 2.0) / 2)
    assert metrics.mase(f, a, np.zeros(3)) is None
    assert metrics.scores(f, a, scale)["mase"] == 1.0 and metrics.scores(f, a)["mase"] is None


def test_seasonal_scale_of_series_back_to_back():
    sales = np.concatenate([np.arange(10.0), np.zeros(3), np.arange(20.0) ** 2])
    offsets = np.array([0, 10, 13, 33])
    got = metrics.seasonal_scale(sales, offsets)
    assert got[0] == 7.0 and np.isnan(got[1])          # 3 days: no week to compare with
    t = np.arange(7, 20)
    assert math.isclose(got[2], np.mean(t ** 2 - (t - 7) ** 2))
    upto = np.arange(33) < 13 + 15                     # the third series' first 15 days only
    t = np.arange(7, 15)
    assert math.isclose(metrics.seasonal_scale(sales, offsets, upto)[2],
                        np.mean(t ** 2 - (t - 7) ** 2))


def test_interval_score_is_width_plus_the_penalty_for_missing():
    lower, upper = np.array([2.0, 2.0, 2.0]), np.array([4.0, 4.0, 4.0])
    got = metrics.interval_score(lower, upper, np.array([3.0, 1.0, 7.0]), 80)
    np.testing.assert_allclose(got, [2.0, 2.0 + 10 * 1.0, 2.0 + 10 * 3.0])
