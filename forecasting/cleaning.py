"""Cleaning store-sales history into a gap-free panel, with every repair counted.

Rules (documented in docs/data.md):
- Missing calendar days inside a series (the competition has no Dec 25) are filled with
  sales 0 and onpromotion 0, from the series' first row to the last date of the data.
- Leading zeros are trimmed per series: a store that opened late (or a family it started to
  carry late) starts at its first sale.
- Series that never sell are left out of training and forecast as 0.
- Zero-sales training rows may be down-sampled, with weights 1/rate to compensate
  (``downsample_zeros``), because the data is zero-inflated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class Panel:
    """Daily series stored back to back: rows of series i are ``offsets[i]:offsets[i+1]``.

    Each series is contiguous in days (no gaps) and ends on the last day of the data.
    ``day`` counts days since ``origin`` (the first date of the data).
    """

    origin: np.datetime64
    store_nbr: np.ndarray       # per series, int32
    family: np.ndarray          # per series, str (object)
    offsets: np.ndarray         # n_series + 1, int64
    day: np.ndarray             # per row, int32
    sales: np.ndarray           # per row, float64
    onpromotion: np.ndarray     # per row, int32
    zero_series: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"store_nbr": pd.Series(dtype="int32"), "family": pd.Series(dtype="object")}))

    @property
    def n_series(self) -> int:
        return len(self.store_nbr)

    @property
    def series_index(self) -> np.ndarray:
        """Series number of each row."""
        return np.repeat(np.arange(self.n_series, dtype=np.int32), np.diff(self.offsets))

    @property
    def position(self) -> np.ndarray:
        """Position of each row inside its series (0 = first day)."""
        return np.arange(len(self.day), dtype=np.int64) - np.repeat(
            self.offsets[:-1], np.diff(self.offsets))

    def rows_with_history(self, days: int) -> np.ndarray:
        """Per row: True when its series has at least ``days`` days before it (the rows whose
        lags and windows reaching ``days`` back are all known)."""
        return rows_from_position(self.offsets, days)

    @property
    def last_day(self) -> int:
        return int(self.day.max()) if len(self.day) else 0

    def dates(self, days: np.ndarray) -> np.ndarray:
        return self.origin + days.astype("timedelta64[D]")


def rows_from_position(offsets: np.ndarray, position: int) -> np.ndarray:
    """For series stored back to back (``offsets``): True for the rows at ``position`` or later
    in their series. One assignment per leading position, none per row."""
    offsets = np.asarray(offsets, dtype=np.int64)
    out = np.ones(int(offsets[-1]), dtype=bool)
    starts, ends = offsets[:-1], offsets[1:]
    for k in range(position):
        first = starts + k
        out[first[first < ends]] = False
    return out


def clean(frame: pd.DataFrame, span: tuple[np.datetime64, np.datetime64] | None = None
          ) -> tuple[Panel, dict]:
    """Turn validated history rows into a ``Panel`` and the cleaning report. ``span`` (first,
    last date) replaces the rows' own when this host holds a shard of the data
    (``distributed.date_span``): every host's panel then has the same origin and last day."""
    dates = frame["date"].to_numpy().astype("datetime64[D]")
    origin = dates.min() if span is None else np.datetime64(span[0], "D")
    day = (dates - origin).astype(np.int64)
    end = int(day.max()) if span is None else int((np.datetime64(span[1], "D") - origin)
                                                  .astype(np.int64))
    codes, store_all, family_all = _series_codes(frame)
    n_series = len(store_all)
    sales = frame["sales"].to_numpy(dtype=np.float64)
    promo = frame["onpromotion"].to_numpy(dtype=np.int32)

    first_row_day = np.full(n_series, end + 1, dtype=np.int64)
    np.minimum.at(first_row_day, codes, day)
    first_sale_day = np.full(n_series, end + 1, dtype=np.int64)
    sold = sales > 0
    np.minimum.at(first_sale_day, codes[sold], day[sold])
    never = first_sale_day > end

    keep_series = ~never
    new_code = np.full(n_series, -1, dtype=np.int64)
    new_code[keep_series] = np.arange(keep_series.sum())
    start = first_sale_day[keep_series]
    lengths = end - start + 1
    offsets = np.zeros(len(start) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])

    total = int(offsets[-1])
    out_day = (np.arange(total, dtype=np.int64) - np.repeat(offsets[:-1], lengths)
               + np.repeat(start, lengths)).astype(np.int32)
    out_sales = np.zeros(total, dtype=np.float64)
    out_promo = np.zeros(total, dtype=np.int32)
    row_series = new_code[codes]
    keep_rows = (row_series >= 0)
    keep_rows[keep_rows] = day[keep_rows] >= start[row_series[keep_rows]]
    pos = offsets[row_series[keep_rows]] + day[keep_rows] - start[row_series[keep_rows]]
    out_sales[pos] = sales[keep_rows]
    out_promo[pos] = promo[keep_rows]
    observed = np.zeros(total, dtype=bool)
    observed[pos] = True

    all_days = np.zeros(end + 1, dtype=bool)
    all_days[day] = True
    missing_everywhere = origin + np.flatnonzero(~all_days).astype("timedelta64[D]")
    trimmed = keep_series & (first_sale_day > first_row_day)
    report = {
        "rows_in": len(frame),
        "series_in": int(n_series),
        "filled_missing_days": int(total - observed.sum()),
        "dates_missing_in_every_series": [str(d) for d in missing_everywhere[:50]],
        "late_start_series_trimmed": int(trimmed.sum()),
        "leading_zero_rows_trimmed": int((first_sale_day - first_row_day)[trimmed].sum()),
        "never_selling_series": int(never.sum()),
        "never_selling_rows_excluded": int(never[codes].sum()),
        "rows_out": total,
        "series_out": int(keep_series.sum()),
    }
    panel = Panel(
        origin=origin,
        store_nbr=store_all[keep_series],
        family=family_all[keep_series],
        offsets=offsets,
        day=out_day,
        sales=out_sales,
        onpromotion=out_promo,
        zero_series=pd.DataFrame({"store_nbr": store_all[never], "family": family_all[never]}),
    )
    return panel, report


def _series_codes(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Series number per row, sorted by (store_nbr, family), without building 3M strings."""
    family = frame["family"]
    if not isinstance(family.dtype, pd.CategoricalDtype):
        family = family.astype("category")
    names = np.asarray(family.cat.categories.astype(str), dtype=object)
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(names, kind="stable")] = np.arange(len(names))
    fam = rank[family.cat.codes.to_numpy()]
    key = frame["store_nbr"].to_numpy().astype(np.int64) * len(names) + fam
    unique_keys, codes = np.unique(key, return_inverse=True)
    store_all = (unique_keys // len(names)).astype(np.int32)
    family_all = np.sort(names)[unique_keys % len(names)]
    return codes.astype(np.int64), store_all, family_all


def downsample_zeros(sales: np.ndarray, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep each zero-sales row with probability ``rate``; return (keep mask, sample weights).

    Kept zero rows weigh ``1 / rate`` so the expected loss is unchanged.
    """
    weights = np.ones(len(sales), dtype=np.float32)
    if rate >= 1.0:
        return np.ones(len(sales), dtype=bool), weights
    zero = sales == 0
    keep = ~zero | (np.random.default_rng(seed).random(len(sales)) < rate)
    weights[zero] = 1.0 / rate
    return keep, weights
