"""The hybrid XGBoost + LSTM member: weights fit on validation and recorded, every member and
the baseline evaluated, the artifact served and round-tripped, and the blend arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sagemaker_job import make_opt_ml, run_train

from forecasting import training
from forecasting.history import ForecastInput
from forecasting.models.hybrid import HybridMember, _convex_weight, _stack
from forecasting.predictor import Predictor

TINY_HYBRID = {"model_kind": "hybrid", "lstm_epochs": "1", "lstm_units": "8",
               "lstm_window": "21", "lstm_max_samples": "5000", "lstm_batch_size": "256",
               "num_round": "40", "early_stopping_rounds": "10", "max_depth": "4"}


@pytest.fixture(scope="module")
def hybrid_model(lstm_frame):
    return training.train(lstm_frame, TINY_HYBRID, log=lambda _: None)


@pytest.fixture(scope="module")
def hybrid_dir(hybrid_model, tmp_path_factory):
    return hybrid_model.save(tmp_path_factory.mktemp("hybrid") / "model")


def test_hybrid_trains_all_members_and_evaluates_each(hybrid_model):
    assert hybrid_model.final == "hybrid"
    assert list(hybrid_model.members) == ["xgboost", "lstm", "hybrid"]
    evaluation = hybrid_model.evaluation
    assert set(evaluation["models"]) == {"xgboost", "lstm", "hybrid"}
    assert evaluation["final_model"] == "hybrid"
    for block in (*evaluation["models"].values(), evaluation["baseline"]):
        assert np.isfinite(block["overall"]["rmsle"])
    assert hybrid_model.metadata["lookback"] == 28    # max(xgboost 28, lstm window 21)


def test_hybrid_weights_are_recorded(hybrid_model, hybrid_dir):
    summary = hybrid_model.metadata["members"]["hybrid"]
    assert summary["method"] == "weights"
    weights = summary["weights"]
    assert set(weights) == {"xgboost", "lstm"}
    assert all(0.0 <= w <= 1.0 for w in weights.values())
    assert sum(weights.values()) == pytest.approx(1.0)
    assert set(summary["validation"]["rmsle"]) == {"xgboost", "lstm", "hybrid"}
    # The convex blend is fit to minimise validation RMSLE: never worse than either member.
    v = summary["validation"]["rmsle"]
    assert v["hybrid"] <= min(v["xgboost"], v["lstm"]) + 1e-6
    on_disk = json.loads((hybrid_dir / "members" / "hybrid" / "member.json").read_text())
    assert on_disk["kind"] == "hybrid" and on_disk["weights"] == weights
    artifact_json = json.loads((hybrid_dir / "artifact.json").read_text())
    assert artifact_json["members"]["hybrid"]["weights"] == weights


def test_hybrid_serves_and_round_trips(hybrid_model, hybrid_dir):
    predictor = Predictor.load(hybrid_dir)
    rows = predictor.future_rows(4)
    assert predictor.members["hybrid"].members["lstm"] is predictor.members["lstm"]
    first = predictor.predict(rows)
    assert first.shape == (len(rows),) and np.isfinite(first).all() and (first >= 0).all()
    np.testing.assert_array_equal(first, Predictor.load(hybrid_dir).predict(rows))
    # The loaded blend is the recorded blend of the loaded members' forecasts.
    n = len(predictor.store_code)
    inp = ForecastInput(predictor.history.sales, predictor.history.promo, predictor.store_code,
                        predictor.family_code,
                        predictor.last_date + np.arange(1, 5).astype("timedelta64[D]"),
                        np.zeros((n, 4), dtype=np.int32))
    w = predictor.metadata["members"]["hybrid"]["weights"]
    expected = np.expm1(w["xgboost"] * np.log1p(predictor.members["xgboost"].forecast(inp))
                        + w["lstm"] * np.log1p(predictor.members["lstm"].forecast(inp)))
    np.testing.assert_allclose(predictor.members["hybrid"].forecast(inp), expected, rtol=1e-9)
    made = {name: predictor.members[name].forecast(inp) for name in ("xgboost", "lstm")}
    np.testing.assert_allclose(predictor.members["hybrid"].combine(made), expected, rtol=1e-9)
    np.testing.assert_allclose(hybrid_model.members["hybrid"].forecast(inp),
                               predictor.members["hybrid"].forecast(inp), rtol=1e-6)


def test_stack_method_records_a_linear_stacker(lstm_frame, hybrid_model):
    stacked = training.train(lstm_frame, {**TINY_HYBRID, "hybrid_method": "stack"},
                             log=lambda _: None)
    summary = stacked.metadata["members"]["hybrid"]
    assert summary["method"] == "stack"
    assert set(summary["weights"]) == {"xgboost", "lstm"} and "intercept" in summary
    # Same seed, same members: only the combination differs.
    assert (stacked.evaluation["models"]["xgboost"]
            == hybrid_model.evaluation["models"]["xgboost"])
    v = summary["validation"]["rmsle"]
    assert v["hybrid"] <= min(v["xgboost"], v["lstm"]) + 1e-6   # least squares on validation


def test_convex_weight_is_the_exact_minimiser():
    rng = np.random.default_rng(0)
    a = rng.normal(2, 1, 500)
    x = a + rng.normal(0, 0.3, 500)
    lstm = a + rng.normal(0, 0.6, 500)
    w = _convex_weight(a, x, lstm)
    grid = np.linspace(0, 1, 1001)
    losses = [np.mean((a - (g * x + (1 - g) * lstm)) ** 2) for g in grid]
    assert w == pytest.approx(grid[int(np.argmin(losses))], abs=1e-3)
    assert _convex_weight(a, a, a + 1) == 1.0                     # a perfect member wins
    assert _convex_weight(a, a + 1, a) == 0.0
    assert _convex_weight(a, x, x) == 0.5                          # identical members


def test_stacker_recovers_a_linear_combination():
    rng = np.random.default_rng(1)
    x, lstm = rng.normal(3, 1, 400), rng.normal(3, 1, 400)
    a = 0.2 + 0.7 * x + 0.25 * lstm
    weights, intercept = _stack(a, x, lstm)
    assert intercept == pytest.approx(0.2)
    assert weights == pytest.approx({"xgboost": 0.7, "lstm": 0.25})


def test_blend_needs_both_members():
    from forecasting.errors import AlgorithmError
    with pytest.raises(AlgorithmError, match="lstm"):
        HybridMember({"xgboost": object()})


@pytest.mark.slow
def test_train_entrypoint_trains_a_hybrid_on_the_sample_and_it_serves(tmp_path):
    root = make_opt_ml(tmp_path / "opt_ml", hyperparameters=TINY_HYBRID)
    done = run_train(root, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name in ("xgboost", "lstm", "hybrid", "baseline"):
        assert f"{name}.test.rmsle=" in done.stdout
    predictor = Predictor.load(root / "model")
    assert predictor.metadata["final_model"] == "hybrid"
    forecasts = predictor.predict(predictor.future_rows(3))
    assert np.isfinite(forecasts).all() and (forecasts >= 0).all()


@pytest.mark.parametrize("hp, message", [
    ({"model_kind": "lstm", "lstm_window": "0"},
     "ClientError: hyperparameter 'lstm_window': must be between 7 and 365, got '0'"),
    ({"model_kind": "hybrid", "lstm_window": "abc"},
     "ClientError: hyperparameter 'lstm_window': must be an integer, got 'abc'"),
])
def test_broken_lstm_hyperparameter_fails_the_job_with_a_readable_reason(tmp_path, hp, message):
    root = make_opt_ml(tmp_path / "opt_ml", hyperparameters=hp)
    done = run_train(root)
    assert done.returncode == 2
    assert (root / "output" / "failure").read_text() == message
    assert "Traceback" not in done.stderr
