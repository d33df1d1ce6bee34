"""Fitting the prediction intervals' calibration (``intervals.Calibration``) at training time,
and measuring it on held-out days.

The members fit on the training days forecast two windows recursively, as they forecast the
future: the validation days from the last training day, and the test days from the last
validation day. Neither fit has seen the days it forecasts (the validation days only chose
when boosting stopped).

- **evaluation.json** reports the honest figure: a calibration made from the validation window
  alone, measured on the test window (coverage overall, per volume third and per family, the
  mean width and the mean interval score, per level);
- **the served calibration** rests on both windows (twice the scores, as mlforecast's
  ``PredictionIntervals(n_windows=2)``). The served members are refit on all history with the
  same capacity, so their errors are assumed no larger.

Groups (``intervals`` module docstring) are sized by the data: three variability bins and up to
``MAX_FORECAST_BINS`` forecast-level bins, each holding about ``SCORES_PER_GROUP`` scores; a
group with fewer than ``MIN_GROUP_SCORES`` takes the quantiles of its forecast-level bin over
every variability bin, and that failing, of all scores.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from forecasting import metrics
from forecasting.intervals import (
    MAX_FORECAST_BINS,
    PROBABILITIES,
    REPORTED_LEVELS,
    VOLATILITY_BINS,
    VOLATILITY_DAYS,
    AnyCalibration,
    Calibration,
    volatility,
)

SCORES_PER_GROUP = 150
MIN_GROUP_SCORES = 50


def _edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner quantile edges that cut ``values`` into ``bins`` groups (ties merged)."""
    if bins <= 1 or len(values) == 0:
        return np.empty(0)
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def calibrate(forecast: np.ndarray, actual: np.ndarray, recent: np.ndarray,
              windows: tuple[tuple[str, str], ...]) -> Calibration:
    """The calibration from (series, steps) forecasts and actuals (NaN where a series had not
    begun: left out) and each row's sales up to its origin (``recent``, (series, days)).
    Several windows are given stacked along the series axis."""
    forecast = np.clip(np.asarray(forecast, dtype=np.float64), 0.0, None)
    actual = np.asarray(actual, dtype=np.float64)
    resid = np.log1p(np.clip(actual, 0.0, None)) - np.log1p(forecast)
    ok = np.isfinite(resid)
    n = int(ok.sum())
    if n == 0:
        raise ValueError("no actual sales in the calibration window")
    vol = volatility(recent)
    known_vol = vol[np.isfinite(vol)]
    n_vol = VOLATILITY_BINS if n >= VOLATILITY_BINS * SCORES_PER_GROUP else 1
    volatility_edges = _edges(known_vol, n_vol)
    n_forecast = int(np.clip(n // ((len(volatility_edges) + 1) * SCORES_PER_GROUP), 1,
                             MAX_FORECAST_BINS))
    forecast_edges = _edges(np.log1p(forecast[ok]), n_forecast)
    partial = Calibration(np.zeros((len(volatility_edges) + 1, len(forecast_edges) + 1,
                                    len(PROBABILITIES))), forecast_edges, volatility_edges,
                          n, windows)
    v, f = partial.bins(forecast, recent)
    v = np.broadcast_to(v[:, None], f.shape)[ok]
    f, r = f[ok], resid[ok]
    everything = np.quantile(r, PROBABILITIES)
    q = partial.quantiles
    for j in range(q.shape[1]):
        in_level = f == j
        level_q = (np.quantile(r[in_level], PROBABILITIES)
                   if in_level.sum() >= MIN_GROUP_SCORES else everything)
        for i in range(q.shape[0]):
            group = in_level & (v == i)
            q[i, j] = (np.quantile(r[group], PROBABILITIES)
                       if group.sum() >= MIN_GROUP_SCORES else level_q)
    np.maximum.accumulate(q, axis=2, out=q)   # guard against rounding: never decreasing
    return partial


def bounds_of(calibration: AnyCalibration, forecast: np.ndarray, recent: np.ndarray,
              level: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of (series, days) forecasts under either calibration method."""
    step = np.broadcast_to(np.arange(forecast.shape[1]), forecast.shape)
    return calibration.bounds(forecast, step, level, recent)


def coverage(calibration: AnyCalibration, forecast: np.ndarray, actual: np.ndarray,
             recent: np.ndarray, third: np.ndarray | None = None,
             family: np.ndarray | None = None,
             levels: Iterable[float] = REPORTED_LEVELS) -> dict:
    """Per level, over the (series, steps) cells where ``actual`` is known: the share of
    actual sales inside the interval, the mean width and the mean interval score; and the
    coverage per volume third and per family when ``third``/``family`` (per series) are
    given."""
    forecast = np.asarray(forecast, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    known = np.isfinite(actual)
    out = {}
    for level in levels:
        lower, upper = bounds_of(calibration, forecast, recent, level)
        inside = (actual >= lower - 1e-9) & (actual <= upper + 1e-9)
        score = metrics.interval_score(lower, upper, np.nan_to_num(actual), level)
        block = {"level": float(level), "coverage": round(float(inside[known].mean()), 6),
                 "mean_width": round(float((upper - lower)[known].mean()), 6),
                 "mean_interval_score": round(float(score[known].mean()), 6)}
        for name, labels in (("coverage_per_third", third), ("coverage_per_family", family)):
            if labels is not None:
                cells = pd.Series(inside[known]).groupby(
                    np.broadcast_to(np.asarray(labels)[:, None], inside.shape)[known])
                block[name] = {str(k): round(float(v), 6) for k, v in cells.mean().items()}
        out[f"{level:g}"] = block
    return out


def final_forecast(members: dict, final: str, inp) -> np.ndarray:
    """The final member's (series, days) forecast of ``inp`` (a hybrid blends the members')."""
    from forecasting.models.hybrid import HybridMember

    forecasts: dict = {}
    for name, member in members.items():   # members come before the hybrid that blends them
        forecasts[name] = (member.combine(forecasts) if isinstance(member, HybridMember)
                           else member.forecast(inp))
    return forecasts[final]


def calibrate_members(panel, split, members: dict, final: str, store_code: np.ndarray,
                      family_code: np.ndarray) -> tuple[Calibration, dict]:
    """The training pipeline's step (module docstring): the served calibration and
    evaluation.json's ``intervals`` block."""
    from forecasting import distributed
    from forecasting.history import panel_forecast_input, panel_window, recent_volume, thirds_of

    horizon = split.horizon
    lookback = max(m.lookback for m in members.values())
    c = distributed.concat   # on several hosts: the residuals of every host's series

    def window(origin: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, str]]:
        inp = panel_forecast_input(panel, origin, horizon, lookback, store_code, family_code)
        days = panel.dates(np.array([origin + 1, origin + horizon]))
        return (c(final_forecast(members, final, inp)),
                c(panel_window(panel, origin + horizon, horizon)[0]),
                c(panel_window(panel, origin, VOLATILITY_DAYS)[0]), (str(days[0]), str(days[1])))

    valid, test = window(split.train_end), window(split.valid_end)
    honest = calibrate(*valid[:3], (valid[3],))
    served = calibrate(*(np.concatenate([a, b]) for a, b in zip(valid[:3], test[:3])),
                       (valid[3], test[3]))
    block = {"method": served.method, "model": final, "file": "intervals.json",
             "calibration_windows": [{"start": a, "end": b} for a, b in (valid[3], test[3])],
             "calibration_scores": served.scores,
             "coverage_calibrated_on": {"start": valid[3][0], "end": valid[3][1]},
             "coverage": coverage(honest, test[0], test[1], test[2],
                                  thirds_of(c(recent_volume(panel, split.valid_end))),
                                  c(panel.family.astype(str)))}
    return served, block
