"""Live accuracy: the forecasts a model served, scored against the sales that then happened.

A served forecast is kept with its horizon step (target day minus the day the model's history
ended) and the seasonal-naive forecast from the same origin, so the live score of each version
sits next to the baseline's for exactly the same (series, day) cells. Metrics are the library's
(`forecasting.metrics.scores`): RMSLE, WAPE, bias and the rest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.artifact import SeriesTable
from forecasting.metrics import scores

SEASON = 7


def naive_forecasts(table: SeriesTable, store_nbr: np.ndarray, family: np.ndarray,
                    day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(step, seasonal-naive forecast) of each row from the origin `table.last_date`.

    Day h after the origin gets the sales of day origin + h - 7*ceil(h/7), as
    `forecasting.metrics.seasonal_naive` does in the test-window evaluation. A series the table
    lacks never sold (the model forecasts it as 0), so its naive forecast is 0 too; rows for days
    on or before the origin get NaN.
    """
    origin = np.datetime64(table.last_date, "D").astype(np.int64)
    step = day.astype(np.int64) - origin
    index = pd.MultiIndex.from_arrays([table.store_nbr.astype(np.int64), table.family.astype(str)])
    rows = index.get_indexer(pd.MultiIndex.from_arrays([store_nbr.astype(np.int64),
                                                        family.astype(str)]))
    lookback = table.sales.shape[1]
    back = step - SEASON * -(-step // SEASON)        # h - 7*ceil(h/7), in (-7, 0]
    cols = lookback - 1 + back
    ok = (rows >= 0) & (step >= 1) & (cols >= 0)
    naive = np.where(step >= 1, 0.0, np.nan)
    naive[ok] = np.nan_to_num(table.sales[rows[ok], cols[ok]], nan=0.0)
    return step, naive


def score(served: pd.DataFrame, actuals: pd.DataFrame, by: str = "step") -> pd.DataFrame:
    """Live scores per version and horizon step (or target day), for the model and the baseline.

    `served`: version, store_nbr, family, day (days since 1970-01-01), step, forecast, naive.
    `actuals`: store_nbr, family, day, sales. Returns one row per (version, step) plus one per
    version with step 0 meaning "all steps": version, step, n, and `<metric>` and
    `naive_<metric>` columns. With `by="day"`: one row per (version, target day) in a `day`
    column instead (the live error over time), without the all-steps row.
    """
    if by not in ("step", "day"):
        raise ValueError(f"by must be 'step' or 'day', got {by!r}")
    columns = ["version", by, "n"] + [f"{p}{m}" for p in ("", "naive_")
                                          for m in ("rmse", "rmsle", "mae", "wape", "bias")]
    if served.empty or actuals.empty:
        return pd.DataFrame(columns=columns)
    joined = served.merge(actuals[["store_nbr", "family", "day", "sales"]],
                          on=["store_nbr", "family", "day"], how="inner")
    joined = joined[np.isfinite(joined["naive"].to_numpy(np.float64))]
    out = []
    for (version, key), group in _groups(joined, by):
        row = {"version": version, by: key, "n": len(group)}
        actual = group["sales"].to_numpy(np.float64)
        for prefix, col in (("", "forecast"), ("naive_", "naive")):
            for name, value in scores(group[col].to_numpy(np.float64), actual).items():
                row[prefix + name] = value
        out.append(row)
    return pd.DataFrame(out, columns=columns)


def _groups(joined: pd.DataFrame, by: str):
    for version, by_version in joined.groupby("version", sort=True):
        if by == "step":
            yield (version, 0), by_version
        for key, group in by_version.groupby(by, sort=True):
            yield (version, int(key)), group
