"""Turning future rows into a (series x day) forecast grid and back.

Rules for future rows (docs/data.md):
- Each row names a series (store_nbr, family) the model knows, and a date after the end of
  the model's history; otherwise the request is rejected naming the rows.
- Forecasts run day by day from the day after the history; the forecast for day d feeds the
  lags of day d+1. Promotions of days a request does not list count as 0.
- Series that never sold are forecast as 0.

``future_rows`` builds the usual request: every series on each of the days after the history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.errors import ForecastRequestError

MAX_HORIZON_DAYS = 366
EXAMPLE_ROWS = 5


def _rows(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i + 1) for i in idx[:EXAMPLE_ROWS])
    more = f"; {len(idx)} rows in all" if len(idx) > EXAMPLE_ROWS else ""
    return f"(rows {shown}{more})"


def parse_dates(values) -> np.ndarray:
    """YYYY-MM-DD strings (or datetimes) to datetime64[D]; each distinct value parsed once."""
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[D]")
    codes, uniques = pd.factorize(arr)
    parsed = pd.to_datetime(pd.Index(uniques).astype(str), format="%Y-%m-%d", errors="coerce")
    bad = np.asarray(parsed.isna())
    if bad.any() or (codes < 0).any():
        mask = (codes < 0) | bad[np.maximum(codes, 0)]
        raise ForecastRequestError("date", f"must be a date YYYY-MM-DD {_rows(mask)}")
    return np.asarray(parsed.values, dtype="datetime64[D]")[codes]


def future_rows(series: pd.DataFrame, days: int, last_date=None,
                onpromotion: int = 0) -> pd.DataFrame:
    """Every (store_nbr, family) pair in ``series`` on each of the ``days`` days after
    ``last_date``, with ``onpromotion`` on every row: the request a "forecast everything"
    caller sends.

    ``series`` may be a whole history frame (duplicates are dropped); ``last_date`` defaults to
    its latest ``date``. Columns: date (YYYY-MM-DD), store_nbr, family, onpromotion; ordered by
    store_nbr, family, then date, so each series' days sit together.
    """
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 0:
        raise ValueError(f"days must be a whole number >= 0, got {days!r}")
    if onpromotion < 0:
        raise ValueError(f"onpromotion must be >= 0, got {onpromotion!r}")
    missing = [c for c in ("store_nbr", "family") if c not in series.columns]
    if missing:
        raise ValueError(f"series needs the column(s) {', '.join(missing)}")
    if last_date is None and "date" not in series.columns:
        raise ValueError("series has no date column: pass last_date")
    if last_date is None:
        if len(series) == 0:
            raise ValueError("series is empty: pass last_date")
        last_date = pd.to_datetime(pd.Index(series["date"].unique()).astype(str)).max()
    keys = pd.DataFrame({"store_nbr": series["store_nbr"].to_numpy(),
                         "family": series["family"].astype(str).to_numpy()})
    keys = keys.drop_duplicates().sort_values(["store_nbr", "family"], kind="stable")
    first = pd.Timestamp(last_date).normalize() + pd.Timedelta(days=1)
    dates = pd.date_range(first, periods=int(days), freq="D").strftime("%Y-%m-%d").to_numpy()
    return pd.DataFrame({
        "date": np.tile(dates, len(keys)),
        "store_nbr": np.repeat(keys["store_nbr"].to_numpy(), days),
        "family": np.repeat(keys["family"].to_numpy(), days),
        "onpromotion": np.full(len(keys) * int(days), onpromotion, dtype=np.int64),
    })


@dataclass
class SeriesLookup:
    """Maps (store_nbr, family) to a series number: >= 0 known, -1 never sold (forecast 0)."""

    stores: np.ndarray           # sorted store numbers
    families: np.ndarray         # sorted family names
    table: np.ndarray            # (n_stores, n_families): series number, -1 zero, -2 unknown

    @classmethod
    def build(cls, store_nbr, family, zero_store, zero_family) -> SeriesLookup:
        stores = np.unique(np.concatenate([store_nbr, zero_store]).astype(np.int64))
        families = np.unique(np.concatenate([family, zero_family]).astype(str))
        table = np.full((len(stores), len(families)), -2, dtype=np.int64)
        table[np.searchsorted(stores, zero_store), np.searchsorted(families, zero_family)] = -1
        table[np.searchsorted(stores, store_nbr),
              np.searchsorted(families, np.asarray(family, dtype=str))] = np.arange(len(store_nbr))
        return cls(stores, families, table)

    def find(self, store_nbr: np.ndarray, family: np.ndarray) -> np.ndarray:
        store_nbr = np.asarray(store_nbr, dtype=np.int64)
        s = np.searchsorted(self.stores, store_nbr)
        s_ok = (s < len(self.stores)) & (self.stores[np.minimum(s, len(self.stores) - 1)]
                                         == store_nbr)
        f = _family_codes(self.families, family)
        found = np.full(len(store_nbr), -2, dtype=np.int64)
        ok = s_ok & (f >= 0)
        found[ok] = self.table[s[ok], f[ok]]
        return found


def _family_codes(families: np.ndarray, family) -> np.ndarray:
    """Each value's position in the sorted ``families``, -1 when it is not one of them. Text
    arrays (what the gateway passes) are looked up by binary search, 2x faster than pandas'
    hash of every row; anything else goes through ``pd.Categorical``."""
    family = np.asarray(family)
    if family.dtype.kind == "U" and len(families):
        i = np.minimum(np.searchsorted(families, family), len(families) - 1)
        return np.where(families[i] == family, i, -1)
    return pd.Categorical(np.asarray(family, dtype=object), categories=families).codes


@dataclass
class Grid:
    """A request laid out as series x day: what the members forecast."""

    series: np.ndarray           # distinct known series, (k,)
    horizon: int                 # days from the day after the history to the last day asked
    promo: np.ndarray            # (k, horizon)
    row_series: np.ndarray       # per request row: position in ``series``, or -1 for zero
    row_day: np.ndarray          # per request row: 0-based forecast day


def build_grid(lookup: SeriesLookup, last_date: np.datetime64, date, store_nbr, family,
               onpromotion) -> Grid:
    """Check the request rows and lay them out; raises ``ForecastRequestError``."""
    n = len(date)
    if not (len(store_nbr) == len(family) == n and (onpromotion is None
                                                    or len(onpromotion) == n)):
        raise ForecastRequestError("rows", "date, store_nbr, family and onpromotion must "
                                           "have the same length")
    dates = parse_dates(date)
    promo = (np.zeros(n, dtype=np.int64) if onpromotion is None
             else np.asarray(onpromotion, dtype=np.int64))
    if (promo < 0).any():
        raise ForecastRequestError("onpromotion", f"must be >= 0 {_rows(promo < 0)}")
    series = lookup.find(store_nbr, family)
    unknown = series == -2
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise ForecastRequestError(
            "store_nbr, family",
            f"unknown series (store_nbr={int(np.asarray(store_nbr)[i])}, "
            f"family={str(np.asarray(family)[i])!r}) is not in the model {_rows(unknown)}")
    day = (dates - last_date).astype(np.int64)
    inside = day < 1
    if inside.any():
        first = last_date + np.timedelta64(1, "D")
        raise ForecastRequestError(
            "date", f"is on or before the end of the model's history ({last_date}); "
                    f"forecasts start on {first} {_rows(inside)}")
    too_far = day > MAX_HORIZON_DAYS
    if too_far.any():
        raise ForecastRequestError(
            "date", f"is more than {MAX_HORIZON_DAYS} days after the end of the model's "
                    f"history ({last_date}) {_rows(too_far)}")
    known = series >= 0
    distinct, position = _distinct(series[known])
    horizon = int(day[known].max()) if known.any() else 0
    row_series = np.full(n, -1, dtype=np.int64)
    row_series[known] = position
    grid_promo = np.zeros((len(distinct), horizon), dtype=np.int32)
    if known.any():
        flat = position * horizon + (day[known] - 1)
        taken = np.zeros(grid_promo.size, dtype=bool)
        taken[flat] = True
        if np.count_nonzero(taken) != len(flat):
            dup = np.zeros(n, dtype=bool)
            dup_flat = pd.Series(flat).duplicated(keep=False).to_numpy()
            dup[np.flatnonzero(known)[dup_flat]] = True
            raise ForecastRequestError("date, store_nbr, family",
                                       f"each series and date may appear only once {_rows(dup)}")
        grid_promo.reshape(-1)[flat] = promo[known]
    return Grid(distinct, horizon, grid_promo, row_series, day - 1)


def _distinct(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(series, return_inverse=True)`` for series numbers (small integers >= 0),
    by a table of the numbers present instead of a sort or a hash of every row."""
    if series.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    present = np.zeros(int(series.max()) + 1, dtype=bool)
    present[series] = True
    return np.flatnonzero(present), (np.cumsum(present) - 1)[series]


def horizon_warning(last_date, horizon: int, days: np.ndarray, intervals: bool) -> str:
    """A warning when some of ``days`` (datetime64[D], or days since 1970-01-01) lie more than
    ``horizon`` days after ``last_date``, the model's history end: the model was trained and
    its intervals calibrated for ``horizon`` days; "" when none does."""
    days = np.asarray(days)
    if days.size == 0:
        return ""
    offset = (days.astype("datetime64[D]") - np.datetime64(last_date, "D")).astype(np.int64)
    if not (offset > horizon).any():
        return ""
    first = np.datetime64(last_date, "D") + np.timedelta64(horizon + 1, "D")
    bands = (" Their intervals reuse the band calibrated within the horizon, so they are likely"
             " narrower than the error there." if intervals else "")
    return (f"rows from {first} are past the {horizon}-day horizon the model was trained and "
            f"evaluated for (its history ends {np.datetime64(last_date, 'D')}): forecasts there "
            f"feed on more of their own forecasts.{bands}")


def gather(grid: Grid, forecasts: np.ndarray) -> np.ndarray:
    """Per-row answers from the (k, horizon) forecast grid, in request order."""
    out = np.zeros(len(grid.row_series), dtype=np.float64)
    known = grid.row_series >= 0
    out[known] = forecasts[grid.row_series[known], grid.row_day[known]]
    return out
