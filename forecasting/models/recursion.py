"""The XGBoost member's recursive forecast: one ``inplace_predict`` per forecast day for all
series, each day's lags fed by the day before's forecasts, at close to the trees' own cost.

Where the time went before (docs/benchmarks.md, "The bulk predict beside its XGBoost floor"),
and what this does instead:

- Row order. XGBoost walks every tree for a block of 64 rows at a time; a block of unlike
  series (the history's store-major order: 33 families in turn) walked the trees about 20%
  slower than the same rows series by series. The series are put once, before the first day,
  in family order and by their recent level within a family, so that the rows of a block
  walk alike; the answers go back to the caller's order at the end. A row's prediction depends
  on its own features only, so the numbers do not change.
- Per-day work. One feature matrix is written in place each day (the store and family codes
  stay, the calendar is computed once for the day, not once per series); unknown lags are
  filled in place instead of in a copy.
- Threads. ``threads > 1`` splits the series into that many groups, each forecast on its own
  thread (XGBoost and NumPy release the GIL), for a large request when the caller has the
  cores to give it (``forecasting.wide``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from forecasting.history import ForecastInput
from forecasting.models.base import from_target, to_target


def series_order(tail: np.ndarray, family_code: np.ndarray) -> np.ndarray:
    """The order the series are forecast in: by family, then by their level over ``tail``
    (the target of their last days, NaN before a series began, counted as 0)."""
    level = np.where(np.isnan(tail), 0.0, tail).sum(axis=1)
    return np.lexsort((level, family_code))


def recursive_forecast(member, inp: ForecastInput, threads: int = 1,
                       pool: Executor | None = None) -> np.ndarray:
    """(n_series, horizon) sales forecasts of ``member`` (an ``XGBoostMember``), day by day.

    With ``threads > 1`` and a ``pool``, the series are split into ``threads`` groups of
    neighbours in ``series_order``; all groups but the first run on ``pool`` while the calling
    thread forecasts the first."""
    n, horizon, lookback = inp.n_series, inp.horizon, member.lookback
    if n == 0:
        return np.zeros((0, horizon))
    start = to_target(inp.sales[:, -lookback:], member.log_target)
    order = series_order(start, inp.family_code)
    parts = max(1, min(threads, n)) if pool is not None else 1
    groups = [g for g in np.array_split(order, parts) if len(g)]
    out = np.empty((n, horizon))

    def run(rows: np.ndarray) -> Callable[[], None]:
        def forecast_group() -> None:
            out[rows] = forecast_series(member, inp, start, rows)
        return forecast_group

    if len(groups) == 1:
        run(groups[0])()
        return out
    futures = [pool.submit(run(rows)) for rows in groups[1:]]
    try:
        run(groups[0])()
    finally:
        for future in futures:
            future.result()
    return out


def forecast_series(member, inp: ForecastInput, start: np.ndarray, rows: np.ndarray,
                    ) -> np.ndarray:
    """The recursion for the series ``rows`` (in that order): (len(rows), horizon) sales."""
    horizon, lookback, feature_set = inp.horizon, member.lookback, member.features
    buf = np.full((len(rows), lookback + horizon), np.nan, dtype=np.float64)
    buf[:, lookback - start.shape[1]:lookback] = start[rows]
    promo = inp.promo[rows]
    store, family = inp.store_code[rows], inp.family_code[rows]
    X = np.empty((len(rows), len(feature_set)), dtype=np.float32)
    for d in range(horizon):
        feature_set.step_matrix(buf[:, d:d + lookback], inp.dates[d], promo[:, d], store,
                                family, out=X)
        buf[:, lookback + d] = member.predict_features(X, copy=False)
    return from_target(buf[:, lookback:], member.log_target)
