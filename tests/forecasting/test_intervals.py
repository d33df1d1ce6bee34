"""Prediction intervals: the conformal calibration recovers known quantiles, the artifact keeps
it, the Predictor applies it, and a model saved without one says how to get one."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from forecasting import intervals
from forecasting.errors import ArtifactError, ForecastRequestError
from forecasting.predictor import Predictor

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _draw(rng, n_series, sigma):
    """Forecasts and actuals whose log1p error on step h is N(0.1, sigma[h])."""
    forecast = np.expm1(rng.uniform(4, 9, size=(n_series, len(sigma))))  # actuals stay > 0
    noise = 0.1 + rng.standard_normal((n_series, len(sigma))) * sigma
    return forecast, np.expm1(np.log1p(forecast) + noise)


def test_calibration_recovers_the_true_quantiles_and_covers_new_data():
    rng = np.random.default_rng(0)
    sigma = np.linspace(0.2, 0.8, 8)          # errors grow with the horizon step
    forecast, actual = _draw(rng, 20000, sigma)
    cal = intervals.calibrate(forecast, actual, ("2017-01-01", "2017-01-08"))
    assert not cal.pooled_steps and cal.steps == 8
    for p in (0.025, 0.1, 0.9, 0.975):
        true = 0.1 + stats.norm.ppf(p) * sigma
        got = cal.residual_quantile(np.arange(8), p)
        np.testing.assert_allclose(got, true, atol=0.05)
    # Fresh data from the same process: each level's coverage is within 2 points of nominal,
    # on every step (the per-step quantiles follow the growing error).
    forecast2, actual2 = _draw(rng, 20000, sigma)
    report = intervals.coverage(cal, forecast2, actual2, levels=(50, 80, 95))
    for level in (50, 80, 95):
        assert abs(report[str(level)]["coverage"] - level / 100) < 0.02
    step = np.broadcast_to(np.arange(8), forecast2.shape)
    lower, upper = cal.bounds(forecast2, step, 80)
    inside = (actual2 >= lower) & (actual2 <= upper)
    assert np.all(np.abs(inside.mean(axis=0) - 0.8) < 0.02)
    assert (upper[:, -1] - lower[:, -1]).mean() > (upper[:, 0] - lower[:, 0]).mean()


def test_few_series_pool_every_step_and_unknown_actuals_are_left_out():
    rng = np.random.default_rng(1)
    forecast, actual = _draw(rng, 20, np.full(4, 0.3))
    actual[:5, :] = np.nan                    # series that had not begun
    cal = intervals.calibrate(forecast, actual, ("a", "b"))
    assert cal.pooled_steps and cal.scores == 15 * 4
    np.testing.assert_array_equal(cal.quantiles[0], cal.quantiles[3])


def test_steps_past_the_calibrated_horizon_reuse_the_last_step():
    rng = np.random.default_rng(2)
    forecast, actual = _draw(rng, 500, np.linspace(0.1, 0.5, 5))
    cal = intervals.calibrate(forecast, actual, ("a", "b"))
    np.testing.assert_array_equal(cal.residual_quantile(np.array([4, 9, 300]), 0.9),
                                  np.repeat(cal.residual_quantile(np.array([4]), 0.9), 3))


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
    saved = json.loads((model_dir / "evaluation.json").read_text())["intervals"]
    assert saved == json.loads(json.dumps(block))
    assert json.loads((model_dir / "artifact.json").read_text())["schema_version"] == 2
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


def test_a_version_2_artifact_without_its_calibration_is_incomplete(model_dir, tmp_path):
    broken = tmp_path / "model"
    shutil.copytree(model_dir, broken)
    (broken / "intervals.json").unlink()
    with pytest.raises(ArtifactError, match="intervals.json is missing"):
        Predictor.load(broken)
    shutil.copy(model_dir / "intervals.json", broken / "intervals.json")
    payload = json.loads((broken / "intervals.json").read_text())
    payload["quantiles"] = payload["quantiles"][0][:3]
    (broken / "intervals.json").write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match="damaged: intervals.json"):
        Predictor.load(broken)


def test_the_job_log_reports_each_level_coverage(trained):
    from forecasting import metrics

    lines = [line for line in metrics.metric_lines(trained.evaluation) if "coverage" in line]
    cover = trained.evaluation["intervals"]["coverage"]
    assert lines == [f"xgboost.test.coverage_{k}={cover[k]['coverage']:.6f}" for k in cover]
