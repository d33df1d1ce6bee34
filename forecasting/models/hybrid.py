"""The hybrid member: XGBoost and the LSTM combined on the log1p(sales) scale, with the
combination fit on the validation split.

Both members forecast the validation days recursively from the last training day (exactly as
the test days are forecast from the last validation day), and the combination is fit to the
validation sales:

    weights   log1p(h) = w * log1p(xgboost) + (1 - w) * log1p(lstm),  0 <= w <= 1
              the convex blend minimising validation RMSLE, in closed form (a least-squares
              line search clipped to [0, 1]); w = 0 or 1 picks the better member alone.
    stack     log1p(h) = b + a_x * log1p(xgboost) + a_l * log1p(lstm)
              a linear stacker fit by least squares on validation.

The combination is on log1p(sales) whatever ``log_target`` is, because the metric is RMSLE.
The members were early-stopped on the same validation days, so validation scores of the
blend are slightly optimistic; the test split (evaluation.json) is the honest number.

This module imports no TensorFlow itself: it only holds the members it is given.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import ClassVar

import numpy as np

from forecasting.errors import AlgorithmError
from forecasting.history import ForecastInput, panel_forecast_input, panel_window
from forecasting.models.base import TrainingData

MEMBERS = ("xgboost", "lstm")
METHODS = ("weights", "stack")


class HybridMember:
    """A blend of already fitted members; owns no model of its own beyond the coefficients."""

    kind: ClassVar[str] = "hybrid"

    def __init__(self, members: dict, method: str = "weights", weights: dict | None = None,
                 intercept: float = 0.0, validation: dict | None = None):
        missing = [name for name in MEMBERS if name not in members]
        if missing:
            raise AlgorithmError(f"hybrid member needs fitted members {', '.join(MEMBERS)}; "
                                 f"missing {', '.join(missing)}")
        if method not in METHODS:
            raise AlgorithmError(f"hybrid method must be one of {', '.join(METHODS)}, "
                                 f"got {method!r}")
        self.members = {name: members[name] for name in MEMBERS}
        self.method = method
        self.weights = dict(weights) if weights else {"xgboost": 0.5, "lstm": 0.5}
        self.intercept = float(intercept)
        self.validation = validation or {}

    @property
    def lookback(self) -> int:
        return max(m.lookback for m in self.members.values())

    @classmethod
    def blend(cls, members: dict, data: TrainingData) -> HybridMember:
        """The (unfitted) hybrid of the members the pipeline trained before it."""
        return cls(members, data.hp.hybrid_method)

    def fit(self, data: TrainingData) -> dict:
        panel, split = data.panel, data.split
        data.progress("hybrid_fit", 0.86)
        inp = panel_forecast_input(panel, split.train_end, split.horizon, self.lookback,
                                   data.store_code, data.family_code)
        logs = _logs({name: m.forecast(inp) for name, m in self.members.items()})
        actual = panel_window(panel, split.valid_end, split.horizon)[0]
        known = np.isfinite(actual)           # days before a series began are not scored
        a = np.log1p(np.maximum(actual[known], 0.0))
        x, lstm = logs["xgboost"][known], logs["lstm"][known]
        if self.method == "weights":
            w = _convex_weight(a, x, lstm)
            self.weights, self.intercept = {"xgboost": w, "lstm": 1.0 - w}, 0.0
        else:
            self.weights, self.intercept = _stack(a, x, lstm)
        blended = self._combine({"xgboost": x, "lstm": lstm})
        self.validation = {
            "rmsle": {"xgboost": _rmsle(x, a), "lstm": _rmsle(lstm, a),
                      "hybrid": _rmsle(blended, a)},
            "cells": int(known.sum()),
        }
        data.log(f"hybrid: method={self.method} weights="
                 + ",".join(f"{k}:{v:.4f}" for k, v in self.weights.items())
                 + f" intercept={self.intercept:.4f} validation.rmsle="
                 + ",".join(f"{k}:{v:.6f}" for k, v in self.validation["rmsle"].items()))
        return self._description()

    def with_members(self, members: dict) -> HybridMember:
        """The same blend over other fits of the members (the refit on all history keeps the
        weights fit on validation: no days are left to fit them on)."""
        return HybridMember(members, self.method, self.weights, self.intercept, self.validation)

    def forecast(self, inp: ForecastInput) -> np.ndarray:
        if inp.n_series == 0:
            return np.zeros((0, inp.horizon))
        return self.combine({name: m.forecast(inp) for name, m in self.members.items()})

    def combine(self, member_forecasts: dict) -> np.ndarray:
        """The blend of forecasts the members have already made (sales scale, same shape),
        so a caller that has them (the pipeline's test evaluation) does not make them twice."""
        return np.clip(np.expm1(self._combine(_logs(member_forecasts))), 0.0, None)

    def _combine(self, logs: dict) -> np.ndarray:
        out = self.intercept + sum(self.weights[name] * logs[name] for name in MEMBERS)
        return np.maximum(out, 0.0)

    def _description(self) -> dict:
        return {"method": self.method, "members": list(MEMBERS),
                "weights": {k: round(float(v), 6) for k, v in self.weights.items()},
                "intercept": round(float(self.intercept), 6), "scale": "log1p(sales)",
                "validation": self.validation}

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "member.json").write_text(json.dumps(
            {"kind": self.kind, **self._description()}, indent=2))

    @classmethod
    def load(cls, directory: Path, meta: dict, members: dict) -> HybridMember:
        """Reuse the members the predictor has already loaded (none is loaded twice)."""
        return cls(members, meta["method"], {k: float(v) for k, v in meta["weights"].items()},
                   float(meta.get("intercept", 0.0)), meta.get("validation"))


def _logs(member_forecasts: dict) -> dict:
    """Each member's forecasts on the blend's scale, log1p(sales)."""
    return {name: np.log1p(np.maximum(member_forecasts[name], 0.0)) for name in MEMBERS}


def _rmsle(pred_log: np.ndarray, actual_log: np.ndarray) -> float:
    if len(actual_log) == 0:
        return float("nan")
    p = np.maximum(pred_log, 0.0)
    return round(math.sqrt(float(np.mean((p - actual_log) ** 2))), 6)


def _convex_weight(a: np.ndarray, x: np.ndarray, lstm: np.ndarray) -> float:
    """argmin over w in [0, 1] of ||a - (w x + (1 - w) l)||^2 (a parabola in w: exact)."""
    d = x - lstm
    denom = float(np.dot(d, d))
    if denom <= 1e-12:
        return 0.5                              # the members agree: any weight is as good
    return float(np.clip(np.dot(a - lstm, d) / denom, 0.0, 1.0))


def _stack(a: np.ndarray, x: np.ndarray, lstm: np.ndarray) -> tuple[dict, float]:
    """Least-squares intercept and coefficients; falls back to the convex blend when the
    system is degenerate (too few cells or collinear members)."""
    if len(a) >= 3:
        design = np.column_stack([np.ones_like(a), x, lstm])
        coef, _, rank, _ = np.linalg.lstsq(design, a, rcond=None)
        if rank == 3 and np.all(np.isfinite(coef)):
            return {"xgboost": float(coef[1]), "lstm": float(coef[2])}, float(coef[0])
    w = _convex_weight(a, x, lstm)
    return {"xgboost": w, "lstm": 1.0 - w}, 0.0
