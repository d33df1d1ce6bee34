"""Days of supply (turnover days) from stock on hand and the forecast demand.

Per series, over the ``D`` forecast days after the model's history (docs/planning.md has the
method with a worked example):

- available stock on day t = on hand (at the end of the last history day) + the receipts that
  arrive at the start of days 1..t;
- days of supply: the first day t on which the cumulative demand exceeds the available stock,
  counted as ``t - 1 + (stock left at the start of day t) / (demand of day t)``, so stock that
  runs out half-way through the third day lasts 2.5 days. Stock that outlasts the horizon gets
  ``D`` and ``beyond_horizon`` ("more than D days");
- demand: the forecast summed over the horizon; turnover: demand / on hand (NaN when nothing is
  on hand);
- stockout probability within a lead time L: the probability that some day t <= L runs out,
  from the prediction intervals under one assumption: a series' forecast errors have the same
  rank on every day (if demand runs above the forecast, it does so all along). Demand paths at
  the quantiles 0.005..0.995 of each day are then ordered, the earliest quantile that runs out
  within L is found, and one minus it is the probability. This is the widest spread of
  cumulative demand the per-day intervals allow, so for well-stocked series it leans cautious.

Bad inventory (unknown series, negative or missing stock, a series listed twice) raises
``DataValidationError`` naming the column, the rule and the rows, as uploads do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.errors import DataValidationError
from forecasting.forecast import SeriesLookup

DEFAULT_LEAD_TIME_DAYS = 7
#: Levels whose interval bounds give the quantiles 0.005, 0.010, ..., 0.995 (without 0.5).
QUANTILE_LEVELS = tuple(float(v) for v in range(1, 100))
EXAMPLE_ROWS = 5


def _fail(column: str, rule: str, mask: np.ndarray) -> None:
    rows = np.flatnonzero(mask) + 1
    raise DataValidationError(column, rule, rows[:EXAMPLE_ROWS].tolist(), len(rows))


def _series_keys(store_nbr, family) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([np.asarray(store_nbr, dtype=np.int64),
                                      np.asarray(family, dtype=str)])


def check_inventory(store_nbr, family, on_hand, lookup: SeriesLookup) -> None:
    """Raise ``DataValidationError`` for rows the model cannot plan (see the module docstring)."""
    n = len(store_nbr)
    if n == 0:
        raise DataValidationError("inventory", "needs at least one row (store_nbr, family, "
                                               "on_hand)")
    if not len(family) == len(on_hand) == n:
        raise DataValidationError("inventory", f"store_nbr, family and on_hand must have the "
                                               f"same length (got {n}, {len(family)}, "
                                               f"{len(on_hand)})")
    stock = np.asarray(on_hand, dtype=np.float64)
    _check_amounts("on_hand", stock)
    unknown = lookup.find(store_nbr, family) == -2
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        _fail("store_nbr, family", f"unknown series (store_nbr={int(store_nbr[i])}, "
                                   f"family={str(family[i])!r}) is not in the model", unknown)
    dup = _series_keys(store_nbr, family).duplicated(keep=False)
    if dup.any():
        _fail("store_nbr, family", "each series may appear only once", dup)


def _check_amounts(column: str, values: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        _fail(column, "must be a number", bad)
    if (values < 0).any():
        _fail(column, "must be >= 0", values < 0)


def receipts_grid(inventory_keys: pd.MultiIndex, first_date: np.datetime64, days: int, date,
                  store_nbr, family, quantity) -> np.ndarray:
    """(series, days) units arriving at the start of each forecast day, series in inventory
    order. Receipts after the horizon are not counted; before the first forecast day, for a
    series without an inventory row, or negative, they are rejected naming the rows."""
    n = len(date)
    if not len(store_nbr) == len(family) == len(quantity) == n:
        raise DataValidationError("receipts", "date, store_nbr, family and quantity must have "
                                              "the same length")
    grid = np.zeros((len(inventory_keys), days), dtype=np.float64)
    if n == 0:
        return grid
    qty = np.asarray(quantity, dtype=np.float64)
    _check_amounts("quantity", qty)
    row = inventory_keys.get_indexer(_series_keys(store_nbr, family))
    if (row < 0).any():
        _fail("store_nbr, family", "a receipt must name a series of the inventory", row < 0)
    day = (np.asarray(date).astype("datetime64[D]") - first_date).astype(np.int64)
    if (day < 0).any():
        _fail("date", f"a receipt must arrive on or after the first forecast day "
                      f"({first_date})", day < 0)
    inside = day < days
    np.add.at(grid, (row[inside], day[inside]), qty[inside])
    return grid


def days_of_supply(demand: np.ndarray, on_hand: np.ndarray,
                   receipts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(days of supply, beyond_horizon) per series from (series, days) demand."""
    demand = np.clip(np.asarray(demand, dtype=np.float64), 0.0, None)
    n, days = demand.shape
    arrived = (np.zeros_like(demand) if receipts is None
               else np.cumsum(np.asarray(receipts, dtype=np.float64), axis=1))
    available = np.asarray(on_hand, dtype=np.float64)[:, None] + arrived
    used = np.cumsum(demand, axis=1)
    short = used > available + 1e-9 * np.maximum(1.0, available)
    beyond = ~short.any(axis=1)
    first = np.argmax(short, axis=1)
    rows = np.arange(n)
    used_before = np.where(first > 0, used[rows, np.maximum(first - 1, 0)], 0.0)
    left = available[rows, first] - used_before
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.clip(left / demand[rows, first], 0.0, 1.0)
    out = np.where(beyond, float(days), first + np.nan_to_num(fraction))
    return out, beyond


def stockout_probability(probabilities: np.ndarray, paths: np.ndarray, on_hand: np.ndarray,
                         receipts: np.ndarray | None = None) -> np.ndarray:
    """P(some day of the lead time runs out) per series.

    ``paths`` is (len(probabilities), series, lead days): the demand at each quantile of each
    day, ``probabilities`` ascending. Below the lowest quantile the answer is 0, above the
    highest 1; in between, the midpoint of the two quantiles around the rank where the
    series first runs out. NaN for every series when there are no quantiles.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n = paths.shape[1]
    if len(probabilities) == 0:   # a model without intervals: no probability to give
        return np.full(n, np.nan)
    out_at = np.zeros((len(probabilities), n), dtype=bool)
    for k in range(len(probabilities)):
        _, beyond = days_of_supply(paths[k], on_hand, receipts)
        out_at[k] = ~beyond
    # Demand grows with the quantile, so running out is monotone in k: find the first k.
    runs_out = out_at.any(axis=0)
    first = np.argmax(out_at, axis=0)
    below = np.where(first > 0, probabilities[np.maximum(first - 1, 0)], 0.0)
    rank = np.where(first > 0, (below + probabilities[first]) / 2, 0.0)
    return np.where(runs_out, 1.0 - rank, 0.0)


def quantile_paths(bounds: dict[float, tuple[np.ndarray, np.ndarray]],
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, paths) from interval bounds per level (as ``Predictor.predict_intervals``
    answers for ``QUANTILE_LEVELS``): level L's lower bound is the quantile (1 - L/100) / 2,
    its upper bound (1 + L/100) / 2. Paths keep the bounds' shape."""
    probs, arrays = [], []
    for level, (lower, upper) in bounds.items():
        alpha = 1.0 - level / 100.0
        probs += [alpha / 2, 1 - alpha / 2]
        arrays += [lower, upper]
    order = np.argsort(probs, kind="stable")
    return np.asarray(probs)[order], np.stack([arrays[i] for i in order])


@dataclass(frozen=True)
class TurnoverTable:
    """One row per inventory series, in inventory order."""

    on_hand: np.ndarray
    receipts: np.ndarray           # units received within the horizon
    demand: np.ndarray             # forecast over the horizon
    days_of_supply: np.ndarray
    beyond_horizon: np.ndarray
    turnover: np.ndarray           # demand / on_hand; NaN when on_hand is 0
    stockout_probability: np.ndarray


def plan(demand: np.ndarray, on_hand: np.ndarray, receipts: np.ndarray,
         probabilities: np.ndarray, paths: np.ndarray) -> TurnoverTable:
    """The whole table from (series, days) demand and receipts, and the quantile paths of the
    lead time (``paths`` covers its first days; see ``stockout_probability``)."""
    on_hand = np.asarray(on_hand, dtype=np.float64)
    days, beyond = days_of_supply(demand, on_hand, receipts)
    lead = paths.shape[2]
    total = np.asarray(demand, dtype=np.float64).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        turnover = np.where(on_hand > 0, total / np.where(on_hand > 0, on_hand, 1.0), np.nan)
    risk = stockout_probability(probabilities, paths, on_hand, receipts[:, :lead])
    return TurnoverTable(on_hand, receipts.sum(axis=1), total, days, beyond, turnover, risk)
