"""Predictions: row checks and limits, then the backend's forecast with the resolved model; each
answer is counted and handed to the served-forecast recorder (live accuracy)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from forecast_gateway.dataplane.models import ModelService
from forecast_gateway.dataplane.served import ServedRecorder
from forecast_gateway.dataplane.shadow import ShadowPredictor
from forecast_gateway.dataplane.state import SharedState
from forecast_gateway.dataplane.tenant import Tenant
from forecast_gateway.domain import ModelRef, RowColumns
from forecast_gateway.errors import InvalidArgument, PayloadTooLarge
from forecasting import artifact
from forecasting.forecast import horizon_warning
from forecasting.intervals import check_levels

#: Interval bounds per level in percent: {80.0: (lower, upper), ...}, arrays per row.
Bounds = dict[float, tuple[np.ndarray, np.ndarray]]
#: Models whose series index (series, history end, horizon) is kept in memory.
_CACHED_MODELS = 32


@dataclass(frozen=True)
class Answer:
    """Forecasts for a request's rows, their bounds per level, the version that answered, and
    what the caller should know (days past the trained horizon)."""

    values: np.ndarray
    bounds: Bounds
    version: str
    warnings: list[str] = field(default_factory=list)


class PredictionService:
    """Forecasts for rows a caller sends."""

    def __init__(self, state: SharedState, models: ModelService, recorder: ServedRecorder,
                 shadow: ShadowPredictor | None = None):
        self._s = state
        self._models = models
        self._recorder = recorder
        self._shadow = shadow    # the version in shadow answers the same rows, off this path
        self._lock = threading.Lock()
        self._index: OrderedDict[str, artifact.SeriesIndex] = OrderedDict()

    def series_index(self, ref: ModelRef) -> artifact.SeriesIndex:
        """The model's series, history end and trained horizon (read once per version: an
        artifact never changes after its publish)."""
        key = str(ref.path)
        with self._lock:
            found = self._index.get(key)
            if found is not None:
                self._index.move_to_end(key)
                return found
        found = artifact.series_index(ref.path)
        with self._lock:
            self._index[key] = found
            while len(self._index) > _CACHED_MODELS:
                self._index.popitem(last=False)
        return found

    def warnings(self, ref: ModelRef, rows: RowColumns, levels: list[float]) -> list[str]:
        """What the caller should know about these rows' answers: days more than the trained
        horizon after the model's history."""
        if len(rows) == 0:
            return []
        index = self.series_index(ref)
        last = int((index.last_date - np.datetime64(0, "D")).astype(np.int64))
        if int(rows.day.max()) - last <= index.horizon:
            return []
        note = horizon_warning(index.last_date, index.horizon,
                               np.asarray(rows.day, dtype=np.int64).astype("datetime64[D]"),
                               bool(levels))
        return [note] if note else []

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
                          levels: list[float]) -> Answer:
        """`predict` plus prediction intervals per level in percent (none when `levels` is
        empty), with the version used and the warnings."""
        levels = check_levels(levels)
        self.check_rows(rows, self._s.config.max_predict_rows, "a Predict request")
        ref = self._models.resolve(tenant, version)
        values, bounds = self.predict_with_levels(ref, rows, levels)
        return Answer(values, bounds, ref.version, self.warnings(ref, rows, levels))

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
        if self._shadow is not None:
            self._shadow.offer(ref, rows)
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
        if self._shadow is not None:
            self._shadow.offer(ref, rows)
        return values
