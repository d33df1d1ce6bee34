"""Planning: forecasts of the next N days without a file of rows, and days of supply.

`forecast` builds "every series (or the stores and families asked) x the next `days` days"
from the model's own series list (`forecasting.artifact.series_index`, read from the artifact
on the gateway's disk, so it works whatever backend serves the model), applies the promotions
the caller knows, and asks the backend for forecasts (and intervals when `levels` are given).

`turnover` forecasts the inventory's series over the horizon and hands the demand, the receipts
and the interval quantiles of the lead time to `forecasting.turnover` (docs/planning.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecast_gateway.dataplane.models import ModelService
from forecast_gateway.dataplane.predictions import PredictionService
from forecast_gateway.dataplane.state import SharedState
from forecast_gateway.dataplane.tenant import Tenant
from forecast_gateway.domain import ModelRef, RowColumns
from forecast_gateway.errors import FailedPrecondition, InvalidArgument, PayloadTooLarge
from forecasting import intervals, turnover
from forecasting.errors import ArtifactError
from forecasting.forecast import MAX_HORIZON_DAYS, future_rows


@dataclass(frozen=True)
class HorizonForecast:
    """The answer of `PlanningService.forecast`: rows ordered by store_nbr, family, day."""

    rows: RowColumns                       # onpromotion always set
    values: np.ndarray
    bounds: dict[float, tuple[np.ndarray, np.ndarray]]
    model_version: str
    warnings: list[str] = field(default_factory=list)   # days past the trained horizon


@dataclass(frozen=True)
class TurnoverReport:
    """The answer of `PlanningService.turnover`, one row per inventory row."""

    store_nbr: np.ndarray
    family: np.ndarray
    table: turnover.TurnoverTable
    days: int
    lead_time_days: int
    first_date: str
    model_version: str


@dataclass(frozen=True)
class Inventory:
    """Stock on hand per series, columnar, as the caller sent it."""

    store_nbr: np.ndarray
    family: np.ndarray
    on_hand: np.ndarray


@dataclass(frozen=True)
class Receipts:
    """Scheduled receipts, columnar: `day` is days since 1970-01-01."""

    day: np.ndarray
    store_nbr: np.ndarray
    family: np.ndarray
    quantity: np.ndarray


class PlanningService:
    """Horizon forecasts and days of supply over the retailer's live (or named) model."""

    def __init__(self, state: SharedState, models: ModelService, predictions: PredictionService):
        self._s = state
        self._models = models
        self._predictions = predictions
        self._series_index = predictions.series_index

    # -- forecast ----------------------------------------------------------------------------

    def forecast(self, tenant: Tenant, version: str, days: int, stores: list[int],
                 families: list[str], levels: list[float],
                 promotions: RowColumns | None) -> HorizonForecast:
        """Every series (or a filter) x the next `days` days after the model's history."""
        if not 1 <= days <= MAX_HORIZON_DAYS:
            raise InvalidArgument("days", f"must be between 1 and {MAX_HORIZON_DAYS}, got {days}")
        levels = intervals.check_levels(levels)
        ref = self._models.resolve(tenant, version)
        index = self._series_index(ref)
        series = select_series(index.series, stores, families)
        n = len(series) * days
        if n > self._s.config.max_predict_rows:
            raise PayloadTooLarge(f"a Forecast answer ({len(series):,} series x {days} days; "
                                  "ask fewer days or filter stores and families)",
                                  self._s.config.max_predict_rows, "rows", n)
        frame = future_rows(series, days, index.last_date)
        rows = RowColumns(
            day=frame["date"].to_numpy().astype("datetime64[D]").astype(np.int32),
            store_nbr=frame["store_nbr"].to_numpy(np.int32),
            family=frame["family"].to_numpy(str),
            onpromotion=np.zeros(n, dtype=np.int32))
        rows = _with_promotions(rows, promotions)
        values, bounds = self._predictions.predict_with_levels(ref, rows, levels)
        return HorizonForecast(rows, values, bounds, ref.version,
                               self._predictions.warnings(ref, rows, levels))

    def _quantiles(self, ref: ModelRef, rows: RowColumns) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities, demand at each) for `rows` from the interval bounds of
        `turnover.QUANTILE_LEVELS`; none when the model or backend has no intervals."""
        try:
            values, bounds = self._s.backend.predict_intervals(
                ref, rows, list(turnover.QUANTILE_LEVELS))
        except (ArtifactError, FailedPrecondition):
            return np.zeros(0), np.zeros((0, len(rows)))
        if values.shape != (len(rows),):
            raise RuntimeError(f"backend returned {values.shape} forecasts for {len(rows)} rows")
        return turnover.quantile_paths(bounds)

    # -- turnover ----------------------------------------------------------------------------

    def turnover(self, tenant: Tenant, version: str, days: int, inventory: Inventory,
                 receipts: Receipts, lead_time_days: int,
                 promotions: RowColumns | None) -> TurnoverReport:
        """Days of supply of the inventory's series (see the module docstring)."""
        ref = self._models.resolve(tenant, version)
        index = self._series_index(ref)
        days = days or index.horizon
        if not 1 <= days <= MAX_HORIZON_DAYS:
            raise InvalidArgument("days", f"must be between 1 and {MAX_HORIZON_DAYS}, got {days}")
        lead = lead_time_days or min(turnover.DEFAULT_LEAD_TIME_DAYS, days)
        if not 1 <= lead <= days:
            raise InvalidArgument("lead_time_days", f"must be between 1 and days ({days}), "
                                                    f"got {lead}")
        turnover.check_inventory(inventory.store_nbr, inventory.family, inventory.on_hand,
                                 index.lookup)
        n = len(inventory.store_nbr) * days
        if n > self._s.config.max_predict_rows:
            raise PayloadTooLarge(f"a Turnover request ({len(inventory.store_nbr):,} series x "
                                  f"{days} days)", self._s.config.max_predict_rows, "rows", n)
        first = index.last_date + np.timedelta64(1, "D")
        keys = pd.MultiIndex.from_arrays([inventory.store_nbr.astype(np.int64),
                                          inventory.family.astype(str)])
        arrived = turnover.receipts_grid(keys, first, days, receipts.day.astype("datetime64[D]"),
                                         receipts.store_nbr, receipts.family, receipts.quantity)
        rows = _with_promotions(_series_days(inventory, first, days), promotions)
        demand = self._predictions.predict_with(ref, rows).reshape(-1, days)
        lead_rows = _series_days(inventory, first, lead)
        if rows.onpromotion is not None:
            lead_rows = RowColumns(lead_rows.day, lead_rows.store_nbr, lead_rows.family,
                                   rows.onpromotion.reshape(-1, days)[:, :lead].reshape(-1))
        probs, paths = self._quantiles(ref, lead_rows)   # none: no stockout probability
        paths = paths.reshape(len(probs), len(keys), lead)
        table = turnover.plan(demand, inventory.on_hand.astype(np.float64), arrived, probs, paths)
        return TurnoverReport(inventory.store_nbr, inventory.family, table, days, lead,
                              str(first), ref.version)


def select_series(series: pd.DataFrame, stores: list[int], families: list[str]) -> pd.DataFrame:
    """The model's series, only `stores` and `families` when given (unknown ones named)."""
    keep = np.ones(len(series), dtype=bool)
    for name, asked, column in (("store_nbr", [int(s) for s in stores], "store_nbr"),
                                ("family", [str(f) for f in families], "family")):
        if not asked:
            continue
        known = set(series[column].tolist())
        unknown = [v for v in asked if v not in known]
        if unknown:
            raise InvalidArgument(name, f"{unknown[0]!r} is not in the model "
                                        f"({len(known)} {name} values are)")
        keep &= series[column].isin(asked).to_numpy()
    return series[keep]


def _series_days(inventory: Inventory, first: np.datetime64, days: int) -> RowColumns:
    """Each inventory series on each of `days` days from `first`, series by series."""
    dates = (first + np.arange(days).astype("timedelta64[D]")).astype(np.int64)
    n = len(inventory.store_nbr)
    return RowColumns(day=np.tile(dates, n).astype(np.int32),
                      store_nbr=np.repeat(inventory.store_nbr.astype(np.int32), days),
                      family=np.repeat(inventory.family.astype(str), days),
                      onpromotion=np.zeros(n * days, dtype=np.int32))


def _with_promotions(rows: RowColumns, promotions: RowColumns | None) -> RowColumns:
    """`rows` with the caller's promotions; each promotion row must name one of `rows`."""
    if promotions is None or len(promotions) == 0:
        return rows
    n = len(promotions)
    for name, col in (("store_nbr", promotions.store_nbr), ("family", promotions.family),
                      ("onpromotion", promotions.onpromotion)):
        if col is None or len(col) != n:
            raise InvalidArgument(f"promotions.{name}", f"needs one value per promotions.day "
                                                        f"({n})")
    assert promotions.onpromotion is not None
    if (promotions.onpromotion < 0).any():
        bad = int(np.flatnonzero(promotions.onpromotion < 0)[0]) + 1
        raise InvalidArgument("promotions.onpromotion", f"must be >= 0 (row {bad})")
    index = pd.MultiIndex.from_arrays([rows.day.astype(np.int64), rows.store_nbr.astype(np.int64),
                                       rows.family.astype(str)])
    asked = pd.MultiIndex.from_arrays([promotions.day.astype(np.int64),
                                       promotions.store_nbr.astype(np.int64),
                                       promotions.family.astype(str)])
    where = index.get_indexer(asked)
    if (where < 0).any():
        bad = int(np.flatnonzero(where < 0)[0])
        day = np.datetime64(int(promotions.day[bad]), "D")
        raise InvalidArgument("promotions", f"row {bad + 1} (day {day}, store_nbr "
                                            f"{int(promotions.store_nbr[bad])}, family "
                                            f"{str(promotions.family[bad])!r}) is not a series "
                                            "and day of the forecast")
    if asked.duplicated().any():
        bad = int(np.flatnonzero(asked.duplicated())[0])
        raise InvalidArgument("promotions", f"row {bad + 1} repeats a series and day")
    promo = np.zeros(len(rows), dtype=np.int32) if rows.onpromotion is None \
        else rows.onpromotion.copy()
    promo[where] = promotions.onpromotion
    return RowColumns(rows.day, rows.store_nbr, rows.family, promo)
