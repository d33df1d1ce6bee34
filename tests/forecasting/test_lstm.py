"""The LSTM member: train, save, load and serve; determinism; hyperparameter errors; and that
XGBoost-only use never imports TensorFlow. Tiny configurations so the file runs in seconds."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from forecasting import training
from forecasting.errors import HyperparameterError
from forecasting.predictor import Predictor

TINY_LSTM = {"model_kind": "lstm", "lstm_epochs": "2", "lstm_units": "8", "lstm_window": "14",
             "lstm_max_samples": "5000", "lstm_batch_size": "256"}


@pytest.fixture(scope="module")
def lstm_model(lstm_frame):
    return training.train(lstm_frame, TINY_LSTM, log=lambda _: None)


@pytest.fixture(scope="module")
def lstm_dir(lstm_model, tmp_path_factory):
    return lstm_model.save(tmp_path_factory.mktemp("lstm") / "model")


def test_lstm_trains_and_reports(lstm_model):
    summary = lstm_model.metadata["members"]["lstm"]
    assert lstm_model.final == "lstm"
    assert 1 <= summary["epochs_run"] <= 2
    assert summary["train_samples"] == 5000          # capped by lstm_max_samples
    assert summary["window"] == 14
    assert np.isfinite(summary["best_validation_loss"])
    assert lstm_model.metadata["lookback"] == 28     # the interval band reads 28 days
    models = lstm_model.evaluation["models"]
    assert set(models) == {"lstm"}
    assert np.isfinite(models["lstm"]["overall"]["rmsle"])
    assert "rmsle" in lstm_model.evaluation["baseline"]["overall"]


def test_lstm_artifact_layout(lstm_dir):
    member = lstm_dir / "members" / "lstm"
    meta = json.loads((member / "member.json").read_text())
    assert meta["kind"] == "lstm" and meta["window"] == 14
    assert (member / "model.keras").is_file()
    scalers = json.loads((member / "scalers.json").read_text())
    assert np.asarray(scalers["scale"]).shape == (scalers["n_stores"], scalers["n_families"])
    assert min(min(row) for row in scalers["scale"]) >= 1.0


def test_lstm_serves_and_round_trips(lstm_model, lstm_dir):
    predictor = Predictor.load(lstm_dir)
    rows = predictor.future_rows(5, onpromotion=1)
    first = predictor.predict(rows)
    assert first.shape == (len(rows),)
    assert np.isfinite(first).all() and (first >= 0).all()
    again = Predictor.load(lstm_dir).predict(rows)
    np.testing.assert_array_equal(first, again)
    # The saved model forecasts what the in-memory model forecast.
    from forecasting.history import ForecastInput
    member = lstm_model.members["lstm"]
    loaded = predictor.members["lstm"]
    inp = ForecastInput(predictor.history.sales, predictor.history.promo, predictor.store_code,
                        predictor.family_code,
                        predictor.last_date + np.arange(1, 6).astype("timedelta64[D]"),
                        np.ones((len(predictor.store_code), 5), dtype=np.int32))
    np.testing.assert_allclose(member.forecast(inp), loaded.forecast(inp), rtol=1e-6)


def test_lstm_forecast_is_vectorised_one_call_per_day(lstm_dir):
    predictor = Predictor.load(lstm_dir)
    member = predictor.members["lstm"]
    calls = []
    step = member._step_function()
    member._step = lambda inputs: calls.append(len(inputs["sequence"])) or step(inputs)
    from forecasting.history import ForecastInput
    n = len(predictor.store_code)
    inp = ForecastInput(predictor.history.sales, predictor.history.promo, predictor.store_code,
                        predictor.family_code,
                        predictor.last_date + np.arange(1, 8).astype("timedelta64[D]"),
                        np.zeros((n, 7), dtype=np.int32))
    out = member.forecast(inp)
    assert out.shape == (n, 7)
    assert calls == [n] * 7


def test_lstm_training_is_deterministic(lstm_frame, lstm_model):
    again = training.train(lstm_frame, TINY_LSTM, log=lambda _: None)
    assert again.evaluation["models"] == lstm_model.evaluation["models"]
    a = lstm_model.members["lstm"].model.get_weights()
    b = again.members["lstm"].model.get_weights()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name, value", [("lstm_window", "0"), ("lstm_window", "abc"),
                                         ("lstm_units", "-3"), ("lstm_learning_rate", "fast")])
def test_broken_lstm_hyperparameter_is_a_readable_user_error(lstm_frame, name, value):
    with pytest.raises(HyperparameterError) as err:
        training.train(lstm_frame, {**TINY_LSTM, name: value}, log=lambda _: None)
    assert err.value.name == name
    assert name in str(err.value) and repr(value) in str(err.value)


def test_xgboost_only_use_never_imports_tensorflow(tmp_path):
    """Training, loading and serving an XGBoost model leaves TensorFlow unimported."""
    script = textwrap.dedent(f"""
        import sys
        import forecasting, forecasting.predictor, forecasting.training, forecasting.models
        from forecasting import synthetic, training
        from forecasting.predictor import Predictor
        frame = synthetic.generate(2, 3, "2016-06-01", "2017-08-15", seed=2)
        model = training.train(frame, {{"num_round": "5"}}, log=lambda _: None)
        model.save({str(tmp_path / "m")!r})
        p = Predictor.load({str(tmp_path / "m")!r})
        rows = frame[frame["date"] == frame["date"].max()][["store_nbr", "family"]].copy()
        rows["date"] = "2017-08-16"
        assert len(p.predict(rows)) == len(rows)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        print("LOADED", loaded[:5])
        sys.exit(1 if loaded else 0)
    """)
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
