"""The training pipeline's own promises: progress lines only move forward and end at 1, for
one member and for a hybrid whose members each report from 0 to 1."""

from __future__ import annotations

import re

import pytest

from forecasting import training

PROGRESS = re.compile(r"^progress stage=(\S+) fraction=([0-9.]+)$")


def fractions(frame, hyperparameters) -> list[tuple[str, float]]:
    lines: list[str] = []
    training.train(frame, hyperparameters, log=lines.append)
    return [(m[1], float(m[2])) for line in lines if (m := PROGRESS.match(line))]


@pytest.mark.parametrize("hyperparameters", [
    {"num_round": "30"},
    {"model_kind": "hybrid", "num_round": "20", "lstm_epochs": "1", "lstm_units": "4",
     "lstm_window": "14", "lstm_max_samples": "2000", "lstm_batch_size": "256"},
], ids=["xgboost", "hybrid"])
def test_progress_never_goes_back(small_frame, hyperparameters):
    seen = fractions(small_frame, hyperparameters)
    values = [f for _, f in seen]
    assert values == sorted(values)
    assert seen[0] == ("validate", 0.0) and seen[-1] == ("done", 1.0)
    assert {"clean", "fit", "evaluate", "refit_fit"} <= {stage for stage, _ in seen}
    stages = [stage for stage, _ in seen]
    assert stages.index("evaluate") < stages.index("refit_fit"), "the refit follows the evaluation"


def test_sigterm_while_xgboost_reads_feature_chunks_stops_the_job(small_frame, tmp_path,
                                                                   monkeypatch):
    """The feature chunks are built in a callback from XGBoost's C code, where the SIGTERM
    handler's exception would be printed and ignored: StopTrainingJob must still stop it."""
    import os
    import signal

    from forecasting.container.failure import STOPPED_EXIT_CODE, run_job
    from forecasting.features import FeatureSet

    real = FeatureSet.training_matrix

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)    # the handler runs inside this callback
        return real(*args, **kwargs)

    monkeypatch.setattr(FeatureSet, "training_matrix", signalled)
    failure = tmp_path / "failure"
    previous = signal.getsignal(signal.SIGTERM)
    try:
        code = run_job(lambda: training.train(small_frame, {"num_round": "30"},
                                              log=lambda _: None),
                       failure, "the training job received SIGTERM (StopTrainingJob)")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == STOPPED_EXIT_CODE, failure.read_text() if failure.exists() else code
    assert "SIGTERM" in failure.read_text()


@pytest.mark.parametrize("refit_method", ["full", "refresh", "continue"])
def test_any_max_bin_in_its_range_trains(small_frame, refit_method):
    """max_bin is a declared hyperparameter (2..1024): the validation matrix and the refit bin
    with the train matrix's cuts, which XGBoost accepts only with the same max_bin."""
    lines: list[str] = []
    result = training.train(small_frame, {"num_round": "10", "max_bin": "32",
                                          "refit_method": refit_method}, log=lines.append)
    assert result is not None
    assert any(line.startswith("xgboost: best_iteration=") for line in lines)
