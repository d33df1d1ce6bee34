"""The refit on all history (hyperparameter ``refit``, on by default): the evaluation is the
held-out fit's, and the served members have the capacity the validation chose but were fit on
every day, the validation and test days included."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting import training
from forecasting.forecast import future_rows
from forecasting.predictor import Predictor


@pytest.fixture(scope="module")
def held_out(small_frame, trained):
    """The session model's settings (tests/forecasting/conftest.py), without the refit."""
    return training.train(small_frame, {**trained.hp.as_strings(), "refit": "false"},
                          log=lambda _: None)


def test_refit_serves_all_days_with_the_rounds_validation_chose(trained, held_out, small_frame,
                                                                 tmp_path):
    assert trained.hp.refit and not held_out.hp.refit
    assert trained.evaluation == held_out.evaluation, "both evaluate the held-out fit"

    first, served = (m.metadata["members"]["xgboost"] for m in (held_out, trained))
    chosen = first["best_iteration"] + 1
    assert served["best_iteration"] == first["best_iteration"]
    assert served["refit"]["rounds"] == chosen
    assert trained.members["xgboost"].booster.num_boosted_rounds() == chosen
    assert held_out.members["xgboost"].booster.num_boosted_rounds() == first["rounds_run"]
    # Train + validation + test rows (the test window is as long as the validation window).
    assert served["refit"]["train_rows"] == first["train_rows"] + 2 * first["validation_rows"]

    end = str(small_frame["date"].max())[:10]
    assert trained.metadata["split"]["served_fit_end"] == end
    assert held_out.metadata["split"]["served_fit_end"] == trained.metadata["split"]["train_end"]

    rows = future_rows(small_frame, 7)
    served_fc = Predictor.load(trained.save(tmp_path / "refit")).predict(rows)
    held_fc = Predictor.load(held_out.save(tmp_path / "held")).predict(rows)
    assert np.isfinite(served_fc).all() and not np.allclose(served_fc, held_fc), \
        "the served model learnt from the latest days"


def test_refit_keeps_the_hybrid_weights_and_the_lstm_epochs(lstm_frame):
    hp = {"model_kind": "hybrid", "num_round": "30", "early_stopping_rounds": "5",
          "lstm_epochs": "3", "lstm_patience": "1", "lstm_units": "4", "lstm_window": "14",
          "lstm_max_samples": "2000", "lstm_batch_size": "256"}
    model = training.train(lstm_frame, hp, log=lambda _: None)
    lstm = model.metadata["members"]["lstm"]
    assert lstm["refit"]["epochs_run"] == lstm["best_epoch"]
    assert lstm["refit"]["validation_samples"] == 0 and "best_epoch" not in lstm["refit"]
    hybrid = model.members["hybrid"]
    assert hybrid.members["xgboost"] is model.members["xgboost"]
    assert hybrid.members["lstm"] is model.members["lstm"]
    assert model.metadata["members"]["hybrid"]["weights"] == {
        k: round(v, 6) for k, v in hybrid.weights.items()}
