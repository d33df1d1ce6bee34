"""Prediction intervals: the conformal calibration recovers known quantiles, the artifact keeps
it, the Predictor applies it, and a model saved without one says how to get one."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from forecasting import intervals
from forecasting.errors import ArtifactError, ForecastRequestError
from forecasting.interval_calibration import bounds_of, calibrate, coverage
from forecasting.predictor import Predictor

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _draw(rng, n_series, steps, sigma):
    """Forecasts, actuals and 28 days of history for series whose log1p error is N(0.1, sigma)
    and whose history varies with sigma too (a steady series' recent sales vary little)."""
    level = rng.uniform(4, 7, size=n_series)
    forecast = np.expm1(np.repeat(level[:, None], steps, axis=1))
    actual = np.expm1(np.log1p(forecast) + 0.1 + rng.standard_normal(forecast.shape)
                      * sigma[:, None])
    recent = np.expm1(level[:, None] + rng.standard_normal((n_series, 28)) * sigma[:, None])
    return forecast, actual, recent


def _two_kinds(rng, n):
    """Half the series steady (sigma 0.1), half volatile (sigma 0.6)."""
    sigma = np.where(np.arange(n) % 2 == 0, 0.1, 0.6)
    return (*_draw(rng, n, 8, sigma), sigma)


def test_each_series_band_follows_its_own_variability():
    """Steady and volatile series at the same levels: one pooled band would cover the steady
    ones always and the volatile ones too rarely. Grouped by their own variability, each kind
    is covered at the nominal rate, and a steady series' band is much narrower."""
    rng = np.random.default_rng(0)
    forecast, actual, recent, sigma = _two_kinds(rng, 6000)
    cal = calibrate(forecast, actual, recent, (("2017-01-01", "2017-01-08"),))
    assert cal.quantiles.shape[0] == 3 and cal.scores == forecast.size
    forecast2, actual2, recent2, _ = _two_kinds(rng, 6000)
    steady = sigma == 0.1
    for level in (50, 80, 95):
        lower, upper = bounds_of(cal, forecast2, recent2, level)
        inside = (actual2 >= lower) & (actual2 <= upper)
        for kind in (steady, ~steady):
            assert abs(inside[kind].mean() - level / 100) < 0.03, (level, inside[kind].mean())
        width = upper - lower
        assert np.median(width[steady] / forecast2[steady]) * 4 < np.median(
            width[~steady] / forecast2[~steady])
    report = coverage(cal, forecast2, actual2, recent2, np.where(steady, "low", "high"),
                      np.where(steady, "A", "B"), levels=(80,))["80"]
    assert abs(report["coverage"] - 0.8) < 0.02 and set(report["coverage_per_third"]) == {
        "low", "high"} and set(report["coverage_per_family"]) == {"A", "B"}
    assert report["mean_interval_score"] > report["mean_width"] > 0


def test_bands_follow_the_forecast_level():
    """Where the relative error depends on how much is forecast (small forecasts are noisier
    in log terms), the forecast-level groups cover each level at the nominal rate."""
    rng = np.random.default_rng(1)

    def draw():
        f = np.expm1(rng.uniform(0.5, 8, size=(20000, 4)))
        sigma = 0.1 + 0.12 * (8 - np.log1p(f))          # 1.0 at the smallest, 0.1 at the top
        a = np.expm1(np.log1p(f) + rng.standard_normal(f.shape) * sigma)
        return f, a, np.tile(f[:, :1], (1, 28))          # equal variability: one group

    f, a, recent = draw()
    cal = calibrate(f, a, recent, (("a", "b"),))
    assert len(cal.forecast_edges) >= 10
    f2, a2, recent2 = draw()
    lower, upper = bounds_of(cal, f2, recent2, 80)
    inside = (a2 >= lower) & (a2 <= upper)
    small = np.log1p(f2) < 4.25
    for part in (small, ~small):
        assert abs(inside[part].mean() - 0.8) < 0.02
    pooled = intervals.Calibration(              # the same scores in one group ...
        np.quantile(np.log1p(a) - np.log1p(f), intervals.PROBABILITIES)[None, None, :],
        np.empty(0), np.empty(0), a.size, (("a", "b"),))
    lower, upper = bounds_of(pooled, f2, recent2, 80)
    inside = (a2 >= lower) & (a2 <= upper)
    assert inside[small].mean() < 0.72 and inside[~small].mean() > 0.88   # ... would not


def test_few_scores_make_one_group_and_unknown_actuals_are_left_out():
    rng = np.random.default_rng(1)
    forecast, actual, recent = _draw(rng, 20, 4, np.full(20, 0.3))
    actual[:5, :] = np.nan                    # series that had not begun
    cal = calibrate(forecast, actual, recent, (("a", "b"),))
    assert cal.scores == 15 * 4 and cal.quantiles.shape == (1, 1, len(intervals.PROBABILITIES))


def test_days_past_the_trained_horizon_get_the_same_band():
    rng = np.random.default_rng(2)
    forecast, actual, recent = _draw(rng, 500, 5, np.full(500, 0.3))
    cal = calibrate(forecast, actual, recent, (("a", "b"),))
    wide = np.repeat(forecast[:, :1], 40, axis=1)
    lower, upper = bounds_of(cal, wide, recent, 80)
    np.testing.assert_array_equal(lower[:, 39], lower[:, 0])
    np.testing.assert_array_equal(upper[:, 39], upper[:, 0])


def test_a_series_too_young_to_measure_gets_the_most_variable_group():
    rng = np.random.default_rng(3)
    forecast, actual, recent, _ = _two_kinds(rng, 3000)
    cal = calibrate(forecast, actual, recent, (("a", "b"),))
    young = np.full((1, 28), np.nan)
    young[0, -1] = 50.0
    v, _ = cal.bins(forecast[:1], young)
    assert v[0] == cal.quantiles.shape[0] - 1


@pytest.mark.parametrize("levels, message", [
    ((0,), "0 is not a level in percent from 1 to 99"),
    ((99.5,), "99.5 is not a level"),
    ((80, 80), "each level may be given once"),
    ((float("nan"),), "nan is not a level"),
])
def test_bad_levels_are_named(levels, message):
    with pytest.raises(ForecastRequestError, match=message):
        intervals.check_levels(levels)


def test_training_saves_the_calibration_and_reports_test_coverage(trained, model_dir):
    block = trained.evaluation["intervals"]
    assert block["model"] == trained.final
    assert set(block["coverage"]) == {"50", "80", "95"}
    widths = [block["coverage"][k]["mean_width"] for k in ("50", "80", "95")]
    assert widths == sorted(widths) and widths[0] > 0
    eighty = block["coverage"]["80"]
    assert set(eighty["coverage_per_third"]) == {"low", "mid", "high"}
    assert set(eighty["coverage_per_family"]) == set(trained.encoders["family"])
    assert eighty["mean_interval_score"] >= eighty["mean_width"]
    assert len(block["calibration_windows"]) == 2 and block["method"] == intervals.METHOD
    saved = json.loads((model_dir / "evaluation.json").read_text())["intervals"]
    assert saved == json.loads(json.dumps(block))
    assert json.loads((model_dir / "artifact.json").read_text())["schema_version"] == 3
    assert Predictor.load(model_dir).calibration is not None


def test_predictor_answers_nested_intervals_around_the_forecast(model_dir):
    predictor = Predictor.load(model_dir)
    rows = predictor.future_rows(20)
    args = (rows["date"].to_numpy(), rows["store_nbr"].to_numpy(), rows["family"].to_numpy())
    point, bounds = predictor.predict_intervals(*args, levels=(80, 95))
    np.testing.assert_array_equal(point, predictor.predict_columns(*args))
    lo80, hi80 = bounds[80.0]
    lo95, hi95 = bounds[95.0]
    assert np.all(lo95 <= lo80 + 1e-9) and np.all(lo80 <= hi80) and np.all(hi80 <= hi95 + 1e-9)
    assert np.all(lo95 >= 0)
    selling = point > 1
    assert np.all((lo80[selling] < point[selling]) & (point[selling] < hi80[selling]))


def test_a_version_1_artifact_forecasts_but_refuses_levels_with_the_way_out():
    predictor = Predictor.load(FIXTURES / "artifact_v1")
    rows = predictor.future_rows(3)
    args = (rows["date"].to_numpy(), rows["store_nbr"].to_numpy(), rows["family"].to_numpy())
    point, bounds = predictor.predict_intervals(*args)
    assert bounds == {} and len(point) == len(rows)
    with pytest.raises(ArtifactError, match="saved without prediction intervals .* retrain"):
        predictor.predict_intervals(*args, levels=(80,))


def test_an_artifact_without_its_calibration_is_incomplete(model_dir, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    (broken / "intervals.json").unlink()
    with pytest.raises(ArtifactError, match="intervals.json is missing"):
        Predictor.load(broken)
    shutil.copy(model_dir / "intervals.json", broken / "intervals.json")
    payload = json.loads((broken / "intervals.json").read_text())
    payload["quantiles"] = payload["quantiles"][0]
    (broken / "intervals.json").write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match="damaged: intervals.json"):
        Predictor.load(broken)


def test_the_job_log_reports_each_level_coverage(trained):
    from forecasting import metrics

    lines = [line for line in metrics.metric_lines(trained.evaluation) if "coverage" in line]
    cover = trained.evaluation["intervals"]["coverage"]
    assert lines == [f"xgboost.test.coverage_{k}={cover[k]['coverage']:.6f}" for k in cover]
