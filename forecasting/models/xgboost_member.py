"""The XGBoost member: hist trees on the lag features, early stopping on validation, and a
recursive forecast that makes one ``inplace_predict`` call per day for all series."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import xgboost as xgb

from forecasting import features
from forecasting.history import ForecastInput
from forecasting.models.base import TrainingData, from_target, to_target

MODEL_FILE = "model.ubj"


class XGBoostMember:
    """Gradient-boosted trees on ``features.FEATURES``."""

    kind: ClassVar[str] = "xgboost"
    lookback = features.LOOKBACK

    def __init__(self, booster: xgb.Booster | None = None, log_target: bool = True,
                 best_iteration: int | None = None):
        self.booster = booster
        self.log_target = log_target
        self.best_iteration = best_iteration

    def fit(self, data: TrainingData) -> dict:
        """Boost up to ``num_round`` rounds, early-stopped on the validation days."""
        return self._fit(data, data.hp.num_round, early_stopping=True)

    def refit(self, data: TrainingData) -> tuple[XGBoostMember, dict]:
        """A new member fit on every training day of ``data`` for the rounds this one's
        validation chose (no early stopping: nothing is held out)."""
        member = XGBoostMember()
        return member, member._fit(data, self.best_iteration + 1, early_stopping=False)

    def _fit(self, data: TrainingData, rounds: int, early_stopping: bool) -> dict:
        hp, panel = data.hp, data.panel
        self.log_target = hp.log_target
        target = to_target(panel.sales, hp.log_target)
        data.progress("featurize", 0.15)
        X = features.training_matrix(target, panel.offsets, panel.dates(panel.day),
                                     panel.onpromotion, data.store_code, data.family_code)
        train, valid, _ = data.split.masks(panel.day)
        train &= data.keep
        common = {"feature_names": list(features.FEATURES),
                  "feature_types": list(features.FEATURE_TYPES), "enable_categorical": True}
        dtrain = xgb.QuantileDMatrix(X[train], label=target[train], weight=data.weight[train],
                                     max_bin=hp.max_bin, **common)
        evals = []
        if early_stopping:
            evals = [(xgb.QuantileDMatrix(X[valid], label=target[valid], ref=dtrain, **common),
                      "validation")]
        del X
        params = {
            "objective": "reg:squarederror", "tree_method": "hist", "eval_metric": "rmse",
            "eta": hp.eta, "max_depth": hp.max_depth, "min_child_weight": hp.min_child_weight,
            "subsample": hp.subsample, "colsample_bytree": hp.colsample_bytree,
            "lambda": getattr(hp, "lambda"), "alpha": hp.alpha, "max_bin": hp.max_bin,
            "max_cat_to_onehot": hp.max_cat_to_onehot, "seed": hp.seed,
            "nthread": hp.nthread or None,
        }
        params = {k: v for k, v in params.items() if v is not None}
        data.progress("fit", 0.25)
        history: dict = {}
        self.booster = xgb.train(
            params, dtrain, num_boost_round=rounds, evals=evals,
            early_stopping_rounds=hp.early_stopping_rounds if early_stopping else None,
            evals_result=history, verbose_eval=False, callbacks=[_Progress(data, rounds)],
        )
        if not early_stopping:
            self.best_iteration = rounds - 1
            data.log(f"xgboost: refit rounds={rounds} train_rows={int(train.sum())}")
            return {"rounds": rounds, "train_rows": int(train.sum())}
        self.best_iteration = int(self.booster.best_iteration)
        curve = history["validation"]["rmse"]
        data.log(f"xgboost: best_iteration={self.best_iteration} "
                 f"validation.rmse={curve[self.best_iteration]:.6f} rounds_run={len(curve)}")
        return {"best_iteration": self.best_iteration, "rounds_run": len(curve),
                "validation_rmse": float(curve[self.best_iteration]),
                "train_rows": int(train.sum()), "validation_rows": int(valid.sum())}

    def predict_features(self, matrix: np.ndarray) -> np.ndarray:
        """Model output (target scale) for ready feature rows in ``features.FEATURES`` order."""
        return self.booster.inplace_predict(
            np.ascontiguousarray(matrix, dtype=np.float32),
            iteration_range=(0, self.best_iteration + 1), validate_features=False)

    def forecast(self, inp: ForecastInput) -> np.ndarray:
        n, horizon, lookback = inp.n_series, inp.horizon, self.lookback
        buf = np.full((n, lookback + horizon), np.nan, dtype=np.float64)
        tail = inp.sales[:, -lookback:]
        buf[:, lookback - tail.shape[1]:lookback] = to_target(tail, self.log_target)
        if n == 0:
            return np.zeros((0, horizon))
        for d in range(horizon):
            X = features.step_matrix(buf[:, d:d + lookback], inp.dates[d], inp.promo[:, d],
                                     inp.store_code, inp.family_code)
            buf[:, lookback + d] = self.predict_features(X)
        return from_target(buf[:, lookback:], self.log_target)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(directory / MODEL_FILE)
        (directory / "member.json").write_text(json.dumps({
            "kind": self.kind, "best_iteration": self.best_iteration,
            "log_target": self.log_target, "features": list(features.FEATURES)}, indent=2))

    @classmethod
    def load(cls, directory: Path, meta: dict) -> XGBoostMember:
        booster = xgb.Booster()
        booster.load_model(directory / MODEL_FILE)
        booster.set_param({"nthread": 1})
        return cls(booster, bool(meta["log_target"]), int(meta["best_iteration"]))


class _Progress(xgb.callback.TrainingCallback):
    """Reports boosting progress as ``progress`` lines (fit spans 25% to 80%)."""

    def __init__(self, data: TrainingData, rounds: int):
        self.data, self.rounds = data, max(rounds, 1)
        self.every = max(1, rounds // 20)

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        if epoch % self.every == 0:
            self.data.progress("fit", 0.25 + 0.55 * (epoch + 1) / self.rounds)
        return False
