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


@pytest.mark.parametrize("method", ["full", "refresh", "continue"])
def test_each_refit_method_serves_a_model_that_has_seen_the_latest_days(
        method, small_frame, held_out, tmp_path):
    hp = {**held_out.hp.as_strings(), "refit": "true", "refit_method": method,
          "refit_rounds": "5"}
    model = training.train(small_frame, hp, log=lambda _: None)
    first = held_out.metadata["members"]["xgboost"]
    served = model.metadata["members"]["xgboost"]
    assert model.evaluation == held_out.evaluation
    chosen = first["best_iteration"] + 1
    rounds = chosen + 5 if method == "continue" else chosen
    assert served["refit"]["method"] == method and served["refit"]["rounds"] == rounds
    assert model.members["xgboost"].booster.num_boosted_rounds() == rounds
    new_rows = 2 * first["validation_rows"]      # the validation and test days
    assert served["refit"]["train_rows"] == (
        new_rows if method == "continue" else first["train_rows"] + new_rows)
    kept = held_out.members["xgboost"].booster.get_dump()[:chosen]
    trees = model.members["xgboost"].booster.get_dump()
    if method == "continue":    # the evaluated fit's trees, and more on the latest days
        assert trees[:chosen] == kept
    if method == "refresh":     # the same splits, leaf values from all days
        assert [_splits(t) for t in trees] == [_splits(t) for t in kept] and trees != kept
    rows = future_rows(small_frame, 7)
    served_fc = Predictor.load(model.save(tmp_path / method)).predict(rows)
    held_fc = Predictor.load(held_out.save(tmp_path / "held")).predict(rows)
    assert np.isfinite(served_fc).all() and not np.allclose(served_fc, held_fc)


def _splits(tree_dump: str) -> list[str]:
    """A text tree's split conditions, without leaf values and gains."""
    return [line.split(" ")[0] for line in tree_dump.splitlines() if "leaf=" not in line]


def test_refresh_leaves_sets_each_leaf_to_the_newton_step_of_all_rows_tree_after_tree(
        monkeypatch):
    """The refresh against a by-hand oracle: tree t's leaf = -eta * G / (H + lambda) over every
    row in it, the first fit's and the later ones, gradients taken at the refreshed trees
    before t. The fit's rows enter through the sums stored in its trees, so with every fit row
    read (no ``subsample``) the result is exact; sample weights count, a categorical split
    routes rows as the first fit did, and uneven chunks are one matrix. A sample of the fit's
    rows (weighted 1/rate) lands close to it. Leaves are looked up 4 trees at a time."""
    import json

    import xgboost as xgb

    from forecasting.models import leaf_refresh
    from forecasting.models.leaf_refresh import refresh_leaves

    rng = np.random.default_rng(0)
    n, fit_n, levels = 6000, 3000, 40
    monkeypatch.setattr(leaf_refresh, "LEAF_BATCH_BYTES", 4 * 4 * n)
    X = np.column_stack([rng.normal(size=n), rng.normal(size=n),
                         rng.integers(0, levels, n)]).astype(np.float32)
    effect = rng.normal(size=levels)
    y = (2 * X[:, 0] + np.sin(X[:, 1]) + effect[X[:, 2].astype(int)]
         + rng.normal(0, 0.1, n)).astype(np.float32)
    y[fit_n:] += np.where(X[fit_n:, 2] < levels / 2, 1.0, -0.5).astype(np.float32)
    weight = rng.uniform(0.5, 3.0, n).astype(np.float32)
    types = ["q", "q", "c"]

    def dmatrix(x):
        return xgb.DMatrix(x, feature_types=types, enable_categorical=True)

    params = {"objective": "reg:squarederror", "tree_method": "hist", "eta": 0.3,
              "max_depth": 4, "lambda": 1.0, "max_bin": 64, "max_cat_to_onehot": 1}
    first = xgb.QuantileDMatrix(X[:fit_n], label=y[:fit_n], weight=weight[:fit_n], max_bin=64,
                                feature_types=types, enable_categorical=True)
    booster = xgb.train(params, first, 15)
    fit_rows = np.arange(n) < fit_n
    chunks = [(X[a:b], y[a:b], weight[a:b]) for a, b in ((0, 1000), (1000, 3500), (3500, n))]
    refreshed = refresh_leaves(booster, chunks, fit_rows, params, to_dmatrix=dmatrix)

    base = json.loads(booster.save_config())["learner"]["learner_model_param"]["base_score"]
    margin = np.full(n, float(np.asarray(json.loads(base)).reshape(-1)[0]))
    nodes = booster.predict(dmatrix(X), pred_leaf=True).astype(int)
    for t in range(15):
        g = np.bincount(nodes[:, t], weights=(margin - y) * weight)
        h = np.bincount(nodes[:, t], weights=weight)
        value = np.zeros_like(g)
        held = h > 0
        value[held] = -0.3 * g[held] / (h[held] + 1.0)
        margin += value[nodes[:, t]]
    got = refreshed.predict(dmatrix(X), output_margin=True)
    assert np.abs(got - margin).max() < 1e-3
    assert np.abs(got - booster.predict(dmatrix(X), output_margin=True)).max() > 0.3
    assert refreshed.get_dump()[0].count("leaf=") == booster.get_dump()[0].count("leaf=")

    half = ~fit_rows | (rng.random(n) < 0.5)        # half the fit's rows, weighing 2
    sampled_weight = np.where(fit_rows, 2 * weight, weight)[half]
    sampled = refresh_leaves(booster, [(X[half], y[half], sampled_weight)], fit_rows[half],
                             params, to_dmatrix=dmatrix)
    assert np.abs(sampled.predict(dmatrix(X), output_margin=True) - margin).mean() < 0.02


def test_refresh_of_a_tweedie_booster_is_the_newton_step_of_its_own_gradients():
    """With ``objective=tweedie`` a fit row's gradient and hessian change nonlinearly with its
    margin (log link): the refresh adds exactly that change to the stored sums, so with every
    fit row read it equals the by-hand Newton step per leaf on the Tweedie loss."""
    import json

    import xgboost as xgb

    from forecasting.models.leaf_refresh import refresh_leaves

    rng = np.random.default_rng(1)
    n, fit_n, rho = 5000, 2500, 1.1
    X = rng.normal(size=(n, 3)).astype(np.float32)
    mean = np.exp(0.5 + 0.8 * X[:, 0] - 0.4 * X[:, 1])
    mean[fit_n:] *= 1.5                             # the latest days sell more
    y = rng.poisson(mean).astype(np.float32)
    params = {"objective": "reg:tweedie", "tweedie_variance_power": rho,
              "tree_method": "hist", "eta": 0.3, "max_depth": 3, "lambda": 1.0}
    booster = xgb.train(params, xgb.DMatrix(X[:fit_n], label=y[:fit_n]), 10)
    fit_rows = np.arange(n) < fit_n
    refreshed = refresh_leaves(booster, [(X, y, None)], fit_rows, params)

    base = json.loads(booster.save_config())["learner"]["learner_model_param"]["base_score"]
    margin = np.full(n, np.log(float(np.asarray(json.loads(base)).reshape(-1)[0])))
    nodes = booster.predict(xgb.DMatrix(X), pred_leaf=True).astype(int)
    for t in range(10):
        a, b = np.exp((1 - rho) * margin), np.exp((2 - rho) * margin)
        g = np.bincount(nodes[:, t], weights=-y * a + b)
        h = np.bincount(nodes[:, t], weights=-(1 - rho) * y * a + (2 - rho) * b)
        value = np.where(h > 0, -0.3 * g / (h + 1.0), 0.0)
        margin += value[nodes[:, t]]
    got = refreshed.predict(xgb.DMatrix(X), output_margin=True)
    assert np.abs(got - margin).max() < 1e-3
    assert np.abs(got - booster.predict(xgb.DMatrix(X), output_margin=True)).max() > 0.1


def test_refresh_over_refresh_rows_reads_the_latest_days_and_a_weighted_sample(
        small_frame, held_out, tmp_path):
    hp = {**held_out.hp.as_strings(), "refit": "true", "refit_method": "refresh"}
    lines: list[str] = []
    sampled = training.train(small_frame, {**hp, "refresh_rows": "3000"}, log=lines.append)
    every = training.train(small_frame, hp, log=lambda _: None)     # under the 500k default
    uncapped = training.train(small_frame, {**hp, "refresh_rows": "0"}, log=lambda _: None)
    first = held_out.metadata["members"]["xgboost"]
    latest = 2 * first["validation_rows"]                 # the validation and test days
    earlier = first["train_rows"]
    read = sampled.metadata["members"]["xgboost"]["refit"]["train_rows"]
    assert every.metadata["members"]["xgboost"]["refit"]["train_rows"] == latest + earlier
    assert uncapped.metadata["members"]["xgboost"]["refit"]["train_rows"] == latest + earlier
    assert abs(read - 3000) < 150, read
    note = next(line for line in lines if "refresh reads" in line)
    assert f"refresh reads {latest} latest rows" in note and f"of {earlier} earlier" in note

    rows = future_rows(small_frame, 7)
    forecast = {name: Predictor.load(model.save(tmp_path / name)).predict(rows)
                for name, model in (("sampled", sampled), ("every", every), ("held", held_out),
                                    ("uncapped", uncapped))}
    np.testing.assert_array_equal(forecast["uncapped"], forecast["every"])   # 0: every row
    assert not np.allclose(forecast["sampled"], forecast["held"]), "it saw the latest days"
    # The sample's leaf values estimate the same sums: the forecasts stay close to reading all.
    gap = np.abs(forecast["sampled"] - forecast["every"]).mean()
    assert gap < 0.05 * np.abs(forecast["every"]).mean(), gap
