"""Forecast accuracy: RMSE, RMSLE, MAE, WAPE, bias; overall and per family, against a baseline.

Definitions (f = forecast clipped at 0, a = actual sales):
    rmse  = sqrt(mean((f - a)^2))
    rmsle = sqrt(mean((log1p(f) - log1p(a))^2))     the competition's metric
    mae   = mean(|f - a|)
    wape  = sum(|f - a|) / sum(a)                    null when sum(a) = 0
    bias  = mean(f - a)                              > 0 means over-forecasting
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from forecasting.joblog import metric_line

METRICS = ("rmse", "rmsle", "mae", "wape", "bias")
BASELINE_NAME = "seasonal_naive_7"


def scores(forecast: np.ndarray, actual: np.ndarray) -> dict[str, float | None]:
    """All metrics for matching arrays of any shape."""
    f = np.clip(np.asarray(forecast, dtype=np.float64).ravel(), 0, None)
    a = np.asarray(actual, dtype=np.float64).ravel()
    err = f - a
    total = a.sum()
    out = {
        "rmse": math.sqrt(np.mean(err**2)),
        "rmsle": math.sqrt(np.mean((np.log1p(f) - np.log1p(a)) ** 2)),
        "mae": float(np.mean(np.abs(err))),
        "wape": float(np.abs(err).sum() / total) if total > 0 else None,
        "bias": float(np.mean(err)),
    }
    return {k: (None if v is None else round(float(v), 6)) for k, v in out.items()}


def seasonal_naive(history: np.ndarray, horizon: int, season: int = 7) -> np.ndarray:
    """Repeat the last full season known at the origin: day h gets y[T + h - 7*ceil(h/7)].

    ``history`` is (n_series, >= season) in sales units, the last column being the origin.
    Days before a series began (NaN) count as 0.
    """
    last = np.nan_to_num(history[:, -season:], nan=0.0)
    reps = -(-horizon // season)
    return np.tile(last, reps)[:, :horizon]


def evaluate(forecasts: dict[str, np.ndarray], baseline: np.ndarray, actual: np.ndarray,
             family: np.ndarray) -> dict:
    """Overall and per-family scores for each model and the baseline.

    ``forecasts`` maps a model name to an (n_series, horizon) array; ``family`` is per series.
    """
    def block(pred: np.ndarray) -> dict:
        per_family = {}
        fam = pd.Series(family)
        for name, idx in fam.groupby(fam, sort=True).indices.items():
            per_family[str(name)] = scores(pred[idx], actual[idx])
        return {"overall": scores(pred, actual), "per_family": per_family}

    return {
        "models": {name: block(pred) for name, pred in forecasts.items()},
        "baseline": {"name": BASELINE_NAME, **block(baseline)},
    }


def metric_lines(evaluation: dict) -> list[str]:
    """``name=value`` lines for a SageMaker MetricDefinitions regex, e.g. xgboost.test.rmsle=0.48,
    and the prediction intervals' test coverage, e.g. xgboost.test.coverage_80=0.79."""
    lines = []
    blocks = {**evaluation["models"], "baseline": evaluation["baseline"]}
    for name, block in blocks.items():
        for metric in METRICS:
            value = block["overall"][metric]
            if value is not None:
                lines.append(metric_line(f"{name}.test.{metric}", value))
    intervals = evaluation.get("intervals") or {}
    for level, block in (intervals.get("coverage") or {}).items():   # e.g. coverage_80=0.79
        lines.append(metric_line(f"{intervals['model']}.test.coverage_{level}", block["coverage"]))
    return lines
