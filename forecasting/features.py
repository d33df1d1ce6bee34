"""The XGBoost feature list and its vectorised computation.

Feature names are fixed and saved with the model (``features.json``), in this order:

    lag_1, lag_7, lag_14        target k days before (log1p scale by default)
    roll_7_mean, roll_14_mean   mean of the target over the w days before (past values only)
    day_of_week, month, year    calendar of the forecast day
    onpromotion                 items on promotion that day (known in advance)
    store_nbr, family           categoricals, as codes of the saved encoder

A lag or window that reaches before a series' first day is NaN (XGBoost treats it as
missing). The same definitions serve training (``training_matrix``, over all rows at once)
and recursive forecasting (``step_matrix``, one day for all series at once).
"""

from __future__ import annotations

import numpy as np

LAGS = (1, 7, 14)
WINDOWS = (7, 14)
FEATURES = (
    *(f"lag_{k}" for k in LAGS),
    *(f"roll_{w}_mean" for w in WINDOWS),
    "day_of_week", "month", "year", "onpromotion", "store_nbr", "family",
)
HISTORY_FEATURES = len(LAGS) + len(WINDOWS)   # the leading columns; the only ones that can be NaN
CATEGORICAL = ("store_nbr", "family")
FEATURE_TYPES = tuple("c" if f in CATEGORICAL else "q" for f in FEATURES)
LOOKBACK = max(*LAGS, *WINDOWS)


def calendar_columns(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(day_of_week 0=Monday, month 1-12, year) for datetime64[D] dates."""
    d = dates.astype("datetime64[D]")
    dow = ((d.astype(np.int64) + 3) % 7).astype(np.float32)   # 1970-01-01 was a Thursday
    months = d.astype("datetime64[M]")
    month = (months.astype(np.int64) % 12 + 1).astype(np.float32)
    year = (d.astype("datetime64[Y]").astype(np.int64) + 1970).astype(np.float32)
    return dow, month, year


def training_matrix(
    target: np.ndarray,
    offsets: np.ndarray,
    dates: np.ndarray,
    onpromotion: np.ndarray,
    store_code: np.ndarray,
    family_code: np.ndarray,
    at: np.ndarray | None = None,
) -> np.ndarray:
    """Features of the panel rows ``at`` (row indices, ascending; default every row), as
    float32. ``target``, ``dates`` and ``onpromotion`` are per row of the whole panel (series
    back to back, gap-free); ``store_code``/``family_code`` are per series.

    No Python loop over series: a lag is a gather ``k`` rows back, masked where it would reach
    before the series' first day; rolling means use prefix sums. Only the rows asked for are
    computed, so a validation matrix or a sampled refresh costs its own rows, not the panel's.
    """
    n = len(target)
    idx = np.arange(n, dtype=np.int64) if at is None else np.asarray(at, dtype=np.int64)
    series = (np.repeat(np.arange(len(offsets) - 1), np.diff(offsets)) if at is None
              else np.searchsorted(offsets, idx, side="right") - 1)
    pos = idx - offsets[series]
    out = np.empty((len(idx), len(FEATURES)), dtype=np.float32)
    col = 0
    for k in LAGS:
        lag = target[np.maximum(idx - k, 0)].astype(np.float32)
        lag[pos < k] = np.nan
        out[:, col] = lag
        col += 1
    prefix = np.zeros(n + 1, dtype=np.float64)
    np.cumsum(target, out=prefix[1:])
    for w in WINDOWS:
        mean = (prefix[idx] - prefix[np.maximum(idx - w, 0)]) / w
        mean[pos < w] = np.nan
        out[:, col] = mean
        col += 1
    dow, month, year = calendar_columns(dates[idx] if at is not None else dates)
    out[:, col], out[:, col + 1], out[:, col + 2] = dow, month, year
    out[:, col + 3] = onpromotion[idx] if at is not None else onpromotion
    out[:, col + 4] = store_code[series]
    out[:, col + 5] = family_code[series]
    return out


def step_matrix(
    tail: np.ndarray,
    date: np.datetime64,
    onpromotion: np.ndarray,
    store_code: np.ndarray,
    family_code: np.ndarray,
) -> np.ndarray:
    """Features of one forecast day for all series, from ``tail`` = the last days' target.

    ``tail`` has shape (n_series, >= LOOKBACK); its last column is the day before ``date``;
    NaN marks days before a series began.
    """
    n = tail.shape[0]
    out = np.empty((n, len(FEATURES)), dtype=np.float32)
    col = 0
    for k in LAGS:
        out[:, col] = tail[:, -k]
        col += 1
    for w in WINDOWS:
        out[:, col] = tail[:, -w:].mean(axis=1)   # NaN if any day of the window is missing
        col += 1
    dow, month, year = calendar_columns(np.array([date]))
    out[:, col], out[:, col + 1], out[:, col + 2] = dow[0], month[0], year[0]
    out[:, col + 3] = onpromotion
    out[:, col + 4] = store_code
    out[:, col + 5] = family_code
    return out
