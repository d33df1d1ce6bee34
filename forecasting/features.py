"""The XGBoost member's features: deterministic names, one vectorised computation.

A feature set is a tuple of names, saved with the model (``member.json`` and
``features.json``), so a saved model is read with exactly the features it was trained on.
Names, in the order a set lists them:

    lag_K                 target K days before (log1p scale by default)
    roll_W_mean           mean of the target over the W days before (days t-W .. t-1)
    roll_W_mean_lag_K     mean over the W days ending K days before (t-K-W+1 .. t-K)
    age                   days since the series' first day, capped at the set's lookback
    day_of_week, day_of_month, day_of_year, month, year     calendar of the forecast day
    onpromotion           items on promotion that day (known in advance)
    store_nbr, family     categoricals, as codes of the saved encoder

The history features (lags and windows) come first. A lag or window that reaches before a
series' first day is NaN here; the member decides what its matrices hold there
(``xgboost_member``). The same definitions serve training (``training_matrix``, over all
rows at once) and recursive forecasting (``step_matrix``, one day for all series at once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

CATEGORICAL = ("store_nbr", "family")
CALENDAR = ("day_of_week", "day_of_month", "day_of_year", "month", "year")
_HISTORY = re.compile(r"^(?:lag_(\d+)|roll_(\d+)_mean(?:_lag_(\d+))?)$")


@dataclass(frozen=True)
class HistoryFeature:
    """The mean of the target over ``window`` days ending ``lag`` days before the day."""

    lag: int
    window: int

    @property
    def reach(self) -> int:
        """How many days back the oldest day it reads lies."""
        return self.lag + self.window - 1


def _parse_history(name: str) -> HistoryFeature | None:
    m = _HISTORY.match(name)
    if m is None:
        return None
    lag, window, window_lag = m.groups()
    if lag is not None:
        return HistoryFeature(int(lag), 1)
    return HistoryFeature(int(window_lag or 1), int(window))


@dataclass(frozen=True)
class FeatureSet:
    """An ordered tuple of feature names (module docstring) and how to compute them."""

    names: tuple[str, ...]

    def __post_init__(self):
        history = [n for n in self.names if _parse_history(n)]
        if tuple(self.names[:len(history)]) != tuple(history):
            raise ValueError(f"history features (lags, windows) must come first: "
                             f"{', '.join(self.names)}")
        known = set(CALENDAR) | set(CATEGORICAL) | {"age", "onpromotion"}
        for name in self.names[len(history):]:
            if name not in known:
                raise ValueError(f"unknown feature {name!r} (known: lag_K, roll_W_mean, "
                                 f"roll_W_mean_lag_K, {', '.join(sorted(known))})")
        for h in map(_parse_history, history):
            if h.lag < 1 or h.window < 1:
                raise ValueError("lags and windows must be positive integers")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"each feature may be listed once: {', '.join(self.names)}")

    @cached_property
    def history(self) -> tuple[HistoryFeature, ...]:
        return tuple(h for h in map(_parse_history, self.names) if h is not None)

    @property
    def n_history(self) -> int:
        """The leading columns that can be unknown (NaN)."""
        return len(self.history)

    @property
    def lookback(self) -> int:
        """Days of history a forecast needs."""
        return max(h.reach for h in self.history) if self.history else 1

    @property
    def types(self) -> tuple[str, ...]:
        """XGBoost feature types: ``c`` for the categoricals, ``q`` otherwise."""
        return tuple("c" if f in CATEGORICAL else "q" for f in self.names)

    def __len__(self) -> int:
        return len(self.names)

    def training_matrix(self, target: np.ndarray, offsets: np.ndarray, dates: np.ndarray,
                        onpromotion: np.ndarray, store_code: np.ndarray,
                        family_code: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
        """Features of the panel rows ``at`` (row indices, ascending; default every row), as
        float32. ``target``, ``dates`` and ``onpromotion`` are per row of the whole panel
        (series back to back, gap-free); ``store_code``/``family_code`` are per series.

        No Python loop over series: a lag is a gather ``k`` rows back, masked where it would
        reach before the series' first day; windows use prefix sums. Only the rows asked for
        are computed, so a validation matrix or a sampled refresh costs its own rows."""
        n = len(target)
        idx = np.arange(n, dtype=np.int64) if at is None else np.asarray(at, dtype=np.int64)
        series = (np.repeat(np.arange(len(offsets) - 1), np.diff(offsets)) if at is None
                  else np.searchsorted(offsets, idx, side="right") - 1)
        pos = idx - offsets[series]
        out = np.empty((len(idx), len(self.names)), dtype=np.float32)
        prefix = None
        for col, h in enumerate(self.history):
            if h.window == 1:
                value = target[np.maximum(idx - h.lag, 0)].astype(np.float32)
            else:
                if prefix is None:
                    prefix = np.zeros(n + 1, dtype=np.float64)
                    np.cumsum(target, out=prefix[1:])
                end = np.maximum(idx - h.lag + 1, 0)
                value = (prefix[end] - prefix[np.maximum(end - h.window, 0)]) / h.window
            value[pos < h.reach] = np.nan
            out[:, col] = value
        day_dates = dates[idx] if at is not None else dates
        self._fill_known(out, day_dates, onpromotion[idx] if at is not None else onpromotion,
                         store_code[series], family_code[series],
                         np.minimum(pos, self.lookback))
        return out

    def step_matrix(self, tail: np.ndarray, date: np.datetime64, onpromotion: np.ndarray,
                    store_code: np.ndarray, family_code: np.ndarray,
                    out: np.ndarray | None = None) -> np.ndarray:
        """Features of one forecast day for all series, from ``tail`` = the last days' target.

        ``tail`` has shape (n_series, >= lookback); its last column is the day before
        ``date``; NaN marks days before a series began. ``out``: an (n_series, len(self))
        float32 matrix to write into (a recursive forecast reuses one across its days)."""
        n, width = tail.shape
        if out is None:
            out = np.empty((n, len(self.names)), dtype=np.float32)
        for col, h in enumerate(self.history):
            if h.window == 1:
                out[:, col] = tail[:, -h.lag]
            else:   # NaN if any day of the window is unknown
                out[:, col] = tail[:, width - h.reach:width - h.lag + 1].mean(axis=1)
        age = None
        if "age" in self.names:
            known = np.isfinite(tail[:, -self.lookback:]).sum(axis=1)
            age = np.minimum(known, self.lookback)
        # One day: its calendar is computed once and broadcast to every series.
        self._fill_known(out, np.full(1, np.datetime64(date, "D")), onpromotion, store_code,
                         family_code, age)
        return out

    def _fill_known(self, out: np.ndarray, dates: np.ndarray, onpromotion: np.ndarray,
                    store_code: np.ndarray, family_code: np.ndarray,
                    age: np.ndarray | None) -> None:
        """The columns after the history features, in place."""
        calendar = {}
        if any(name in CALENDAR for name in self.names):
            calendar = calendar_columns(dates)
        for col, name in enumerate(self.names[self.n_history:], start=self.n_history):
            if name in calendar:
                out[:, col] = calendar[name]
            elif name == "onpromotion":
                out[:, col] = onpromotion
            elif name == "store_nbr":
                out[:, col] = store_code
            elif name == "family":
                out[:, col] = family_code
            elif name == "age":
                out[:, col] = age


def calendar_columns(dates: np.ndarray) -> dict[str, np.ndarray]:
    """The calendar features (``CALENDAR``) of datetime64[D] dates, as float32: day_of_week
    0=Monday, day_of_month 1-31, day_of_year 1-366, month 1-12, year."""
    d = np.asarray(dates).astype("datetime64[D]")
    days = d.astype(np.int64)
    months = d.astype("datetime64[M]")
    years = d.astype("datetime64[Y]")
    return {
        "day_of_week": ((days + 3) % 7).astype(np.float32),   # 1970-01-01 was a Thursday
        "day_of_month": ((d - months.astype("datetime64[D]")).astype(np.int64) + 1
                         ).astype(np.float32),
        "day_of_year": ((d - years.astype("datetime64[D]")).astype(np.int64) + 1
                        ).astype(np.float32),
        "month": (months.astype(np.int64) % 12 + 1).astype(np.float32),
        "year": (years.astype(np.int64) + 1970).astype(np.float32),
    }


#: The features of models saved before feature sets were named in member.json.
LEGACY = FeatureSet(("lag_1", "lag_7", "lag_14", "roll_7_mean", "roll_14_mean",
                     "day_of_week", "month", "year", "onpromotion", "store_nbr", "family"))
#: What a new XGBoost member trains on: LEGACY with a 28-day window, the day of the month and
#: the day of the year (on the Online Retail II backtest, RMSLE 0.6495 -> 0.6430; on the
#: synthetic 3M-row set 0.6971 -> 0.6958; docs/benchmarks.md).
DEFAULT = FeatureSet(("lag_1", "lag_7", "lag_14", "roll_7_mean", "roll_14_mean", "roll_28_mean",
                      "day_of_week", "day_of_month", "day_of_year", "month", "year",
                      "onpromotion", "store_nbr", "family"))
