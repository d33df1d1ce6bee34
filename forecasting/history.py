"""What a recursive forecast starts from: each series' recent sales and its future inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecasting.cleaning import Panel


@dataclass
class ForecastInput:
    """Sales history up to the origin and the known future, for ``n`` series at once.

    ``sales`` and ``promo_history`` are (n, L) with the last column on the origin day and NaN
    (promotions: 0) before a series began; ``dates`` are the D forecast days, consecutive
    after the origin; ``promo`` is (n, D).
    """

    sales: np.ndarray
    promo_history: np.ndarray
    store_code: np.ndarray
    family_code: np.ndarray
    dates: np.ndarray
    promo: np.ndarray

    @property
    def n_series(self) -> int:
        return self.sales.shape[0]

    @property
    def horizon(self) -> int:
        return len(self.dates)


def panel_window(panel: Panel, end_day: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """(sales, promotions) of every series over days ``end_day-length+1 .. end_day``.

    Days before a series began are NaN sales and 0 promotions. Vectorised: one fancy index.
    """
    n = panel.n_series
    first_day = panel.day[panel.offsets[:-1]].astype(np.int64)
    days = np.arange(end_day - length + 1, end_day + 1, dtype=np.int64)
    rel = days[None, :] - first_day[:, None]
    valid = rel >= 0
    idx = panel.offsets[:-1, None] + np.where(valid, rel, 0)
    idx = np.minimum(idx, max(len(panel.day) - 1, 0))
    sales = np.where(valid, panel.sales[idx], np.nan) if n else np.empty((0, length))
    promo = np.where(valid, panel.onpromotion[idx], 0) if n else np.empty((0, length))
    return sales.astype(np.float64), promo.astype(np.int32)


def panel_forecast_input(panel: Panel, origin_day: int, horizon: int, lookback: int,
                         store_code: np.ndarray, family_code: np.ndarray) -> ForecastInput:
    """Input for forecasting days ``origin_day+1 .. origin_day+horizon`` with the panel's own
    (known) promotions, as in evaluation on validation and test."""
    sales, promo_hist = panel_window(panel, origin_day, lookback)
    _, future_promo = panel_window(panel, origin_day + horizon, horizon)
    dates = panel.dates(np.arange(origin_day + 1, origin_day + horizon + 1))
    return ForecastInput(sales, promo_hist, store_code, family_code, dates, future_promo)


#: Days a series' volume is measured over, and the names of its thirds (low to high).
VOLUME_DAYS = 56
THIRDS = ("low", "mid", "high")


def recent_volume(panel: Panel, origin_day: int, days: int = VOLUME_DAYS) -> np.ndarray:
    """Per series: mean daily sales over the ``days`` days up to ``origin_day`` (days before a
    series began count as 0)."""
    return np.nan_to_num(panel_window(panel, origin_day, days)[0], nan=0.0).mean(axis=1) \
        if panel.n_series else np.zeros(0)


def thirds_of(volume: np.ndarray) -> np.ndarray:
    """Each value's third (``THIRDS``) by rank among ``volume``, ties in order: equal thirds."""
    volume = np.asarray(volume, dtype=np.float64)
    rank = np.argsort(np.argsort(volume, kind="stable"), kind="stable")
    return np.asarray(THIRDS)[np.minimum(3 * rank // max(len(volume), 1), 2)]


def volume_thirds(panel: Panel, origin_day: int) -> np.ndarray:
    """Each series' volume third at ``origin_day`` (``recent_volume``, ``thirds_of``)."""
    return thirds_of(recent_volume(panel, origin_day))
