"""Forecast accuracy: RMSE, RMSLE, MAE, WAPE, bias, MASE; overall and per family, against a
baseline; and the interval score of prediction intervals.

Definitions (f = forecast clipped at 0, a = actual sales):
    rmse  = sqrt(mean((f - a)^2))
    rmsle = sqrt(mean((log1p(f) - log1p(a))^2))     the competition's metric
    mae   = mean(|f - a|)
    wape  = sum(|f - a|) / sum(a)                    null when sum(a) = 0
    bias  = mean(f - a)                              > 0 means over-forecasting
    mase  = mean over series of mean_h(|f - a|) / s  s = the series' in-sample mean absolute
                                                     weekly difference, mean(|y_t - y_{t-7}|);
                                                     series with s = 0 are left out, null when
                                                     none is left or no scale is given
    interval score (level L, alpha = 1 - L/100; Gneiting & Raftery 2007), per cell:
          (u - l) + 2/alpha * (l - a) [a < l] + 2/alpha * (a - u) [a > u]
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from forecasting.cleaning import rows_from_position
from forecasting.joblog import metric_line

METRICS = ("rmse", "rmsle", "mae", "wape", "bias", "mase")
#: The season of MASE's scale and of the seasonal-naive baseline (days).
SEASON = 7
BASELINE_NAME = "seasonal_naive_7"


def scores(forecast: np.ndarray, actual: np.ndarray,
           scale: np.ndarray | None = None) -> dict[str, float | None]:
    """All metrics for matching arrays of any shape. MASE needs ``scale``, the per-series
    scale (``seasonal_scale``) of (series, days) arrays; without it MASE is null."""
    f = np.clip(np.asarray(forecast, dtype=np.float64), 0, None)
    a = np.asarray(actual, dtype=np.float64)
    err = (f - a).ravel()
    total = a.sum()
    out = {
        "rmse": math.sqrt(np.mean(err**2)),
        "rmsle": math.sqrt(np.mean((np.log1p(f.ravel()) - np.log1p(a.ravel())) ** 2)),
        "mae": float(np.mean(np.abs(err))),
        "wape": float(np.abs(err).sum() / total) if total > 0 else None,
        "bias": float(np.mean(err)),
        "mase": mase(f, a, scale) if scale is not None else None,
    }
    return {k: (None if v is None else round(float(v), 6)) for k, v in out.items()}


def mase(forecast: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> float | None:
    """MASE of (series, days) arrays: each series' mean absolute error over its ``scale``,
    averaged over the series whose scale is positive; None when there is none."""
    scale = np.asarray(scale, dtype=np.float64)
    ok = np.isfinite(scale) & (scale > 0)
    if not ok.any():
        return None
    err = np.abs(np.asarray(forecast, dtype=np.float64) - np.asarray(actual, dtype=np.float64))
    return float(np.mean(err[ok].mean(axis=1) / scale[ok]))


def seasonal_scale(sales: np.ndarray, offsets: np.ndarray, rows: np.ndarray | None = None,
                   season: int = SEASON) -> np.ndarray:
    """MASE's per-series scale from series stored back to back (rows of series i are
    ``offsets[i]:offsets[i+1]``, gap-free, as in ``cleaning.Panel``): the mean of
    ``|y_t - y_{t-season}|`` over the series' days t, or only over the rows in the boolean
    mask ``rows`` (the in-sample history before a forecast window). NaN for a series with no
    such day. Two arrays of the panel's length, no Python loop over series."""
    sales = np.asarray(sales, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    n_rows, starts = len(sales), offsets[:-1]
    diff = np.zeros(n_rows, dtype=np.float64)
    np.abs(sales[season:] - sales[:-season], out=diff[season:])
    valid = rows_from_position(offsets, season)   # a series' first days have none to compare
    if rows is not None:
        valid &= rows
    diff[~valid] = 0.0
    filled = np.diff(offsets) > 0
    total = np.zeros(len(starts))
    count = np.zeros(len(starts))
    if filled.any():
        total[filled] = np.add.reduceat(diff, starts[filled])
        count[filled] = np.add.reduceat(valid.astype(np.int32), starts[filled])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def interval_score(lower: np.ndarray, upper: np.ndarray, actual: np.ndarray,
                   level: float) -> np.ndarray:
    """The interval score of each cell (module docstring): width plus 2/alpha times the
    distance by which the actual falls outside. Lower is better."""
    alpha = 1.0 - float(level) / 100.0
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    return ((upper - lower) + (2.0 / alpha) * np.clip(lower - a, 0.0, None)
            + (2.0 / alpha) * np.clip(a - upper, 0.0, None))


def seasonal_naive(history: np.ndarray, horizon: int, season: int = SEASON) -> np.ndarray:
    """Repeat the last full season known at the origin: day h gets y[T + h - 7*ceil(h/7)].

    ``history`` is (n_series, >= season) in sales units, the last column being the origin.
    Days before a series began (NaN) count as 0.
    """
    last = np.nan_to_num(history[:, -season:], nan=0.0)
    reps = -(-horizon // season)
    return np.tile(last, reps)[:, :horizon]


def evaluate(forecasts: dict[str, np.ndarray], baseline: np.ndarray, actual: np.ndarray,
             family: np.ndarray, scale: np.ndarray | None = None) -> dict:
    """Overall and per-family scores for each model and the baseline.

    ``forecasts`` maps a model name to an (n_series, horizon) array; ``family`` is per series,
    and so is ``scale`` (MASE's, ``seasonal_scale`` of the history before the window).
    """
    def block(pred: np.ndarray) -> dict:
        per_family = {}
        fam = pd.Series(family)
        for name, idx in fam.groupby(fam, sort=True).indices.items():
            per_family[str(name)] = scores(pred[idx], actual[idx],
                                           None if scale is None else scale[idx])
        return {"overall": scores(pred, actual, scale), "per_family": per_family}

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
