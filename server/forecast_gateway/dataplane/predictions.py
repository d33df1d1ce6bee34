"""Predictions: row checks and limits, then the backend's forecast with the resolved model; each
answer is counted and handed to the served-forecast recorder (live accuracy)."""

from __future__ import annotations

import numpy as np

from forecast_gateway.dataplane.models import ModelService
from forecast_gateway.dataplane.served import ServedRecorder
from forecast_gateway.dataplane.state import SharedState
from forecast_gateway.dataplane.tenant import Tenant
from forecast_gateway.domain import ModelRef, RowColumns
from forecast_gateway.errors import InvalidArgument, PayloadTooLarge
from forecasting.intervals import check_levels

#: Interval bounds per level in percent: {80.0: (lower, upper), ...}, arrays per row.
Bounds = dict[float, tuple[np.ndarray, np.ndarray]]


class PredictionService:
    """Forecasts for rows a caller sends."""

    def __init__(self, state: SharedState, models: ModelService, recorder: ServedRecorder):
        self._s = state
        self._models = models
        self._recorder = recorder

    def check_rows(self, rows: RowColumns, limit: int, what: str) -> None:
        """Equal column lengths and the row limit."""
        n = len(rows)
        if n > limit:
            raise PayloadTooLarge(what, limit, "rows", n)
        for name, col in (("store_nbr", rows.store_nbr), ("family", rows.family)):
            if len(col) != n:
                raise InvalidArgument(f"rows.{name}", f"has {len(col)} values but rows.day has {n}")
        if rows.onpromotion is not None and len(rows.onpromotion) != n:
            raise InvalidArgument("rows.onpromotion",
                                  f"has {len(rows.onpromotion)} values but rows.day has {n} "
                                  "(leave it empty when unknown)")

    def predict(self, tenant: Tenant, version: str, rows: RowColumns) -> tuple[np.ndarray, str]:
        """Forecasts for `rows` with the live (or named) model, and the version used."""
        self.check_rows(rows, self._s.config.max_predict_rows, "a Predict request")
        ref = self._models.resolve(tenant, version)
        return self.predict_with(ref, rows), ref.version

    def predict_intervals(self, tenant: Tenant, version: str, rows: RowColumns,
                          levels: list[float]) -> tuple[np.ndarray, Bounds, str]:
        """`predict` plus prediction intervals per level in percent (none when `levels` is
        empty): the forecasts, {level: (lower, upper)} and the version used."""
        if not levels:
            values, used = self.predict(tenant, version, rows)
            return values, {}, used
        levels = check_levels(levels)
        self.check_rows(rows, self._s.config.max_predict_rows, "a Predict request")
        ref = self._models.resolve(tenant, version)
        values, bounds = self.predict_with_levels(ref, rows, levels)
        return values, bounds, ref.version

    def predict_with_levels(self, ref: ModelRef, rows: RowColumns,
                            levels: list[float]) -> tuple[np.ndarray, Bounds]:
        """`predict_with` plus interval bounds per level (the backend computes them)."""
        if not levels:
            return self.predict_with(ref, rows), {}
        levels = check_levels(levels)
        if len(rows) == 0:
            empty = np.zeros(0, dtype=np.float64)
            return empty, {level: (empty, empty) for level in levels}
        values, bounds = self._s.backend.predict_intervals(ref, rows, levels)
        if values.shape != (len(rows),) or set(bounds) != set(levels):
            raise RuntimeError(f"backend returned {values.shape} forecasts and levels "
                               f"{sorted(bounds)} for {len(rows)} rows and levels {levels}")
        self._s.metrics.rows_predicted.labels(ref.retailer).inc(len(rows))
        self._recorder.record(ref, rows, values)   # served forecasts, as without levels
        return values, bounds

    def predict_with(self, ref: ModelRef, rows: RowColumns) -> np.ndarray:
        """Forecasts for `rows` with a resolved model (bulk streams resolve once)."""
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float64)
        values = self._s.backend.predict(ref, rows)
        if values.shape != (len(rows),):
            raise RuntimeError(f"backend returned {values.shape} forecasts for {len(rows)} rows")
        self._s.metrics.rows_predicted.labels(ref.retailer).inc(len(rows))
        self._recorder.record(ref, rows, values)
        return values
