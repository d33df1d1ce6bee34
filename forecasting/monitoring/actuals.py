"""New days of sales for a live model: checked against what it knows, then its history tail
moves forward so the next forecasts start after the latest actual day, without a retrain.

Rules (docs/monitoring.md):
- the new days must continue the history: days between the model's last day and the latest new
  day that a known series lacks are filled with zero sales and no promotion, as cleaning does,
  and reported;
- rows for days the history already holds are rejected with their keys, unless the caller asks
  to correct them (then they replace the known values);
- rows of series the model does not know are reported; they are kept for the next training but
  cannot be forecast before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecasting.artifact import SeriesTable
from forecasting.errors import DataValidationError

#: Keys listed in an error or report at most.
EXAMPLE_KEYS = 5


@dataclass
class ActualsReport:
    """What an actuals upload changed."""

    rows: int
    """Rows in the upload."""
    new_days: int
    """Days after the model's last day."""
    first_date: str
    last_date: str
    """The upload's date range."""
    history_end: str
    """The last day of the history after the upload."""
    corrected_rows: int = 0
    """Rows that replaced known values (only with `correct`)."""
    filled_cells: int = 0
    """(series, day) cells filled with zero sales because the upload lacked them."""
    dates_missing_in_every_series: list[str] = field(default_factory=list)
    """New days that no series had (filled for all)."""
    unknown_series: list[tuple[int, str]] = field(default_factory=list)
    """Series the model does not know (first EXAMPLE_KEYS)."""
    unknown_series_count: int = 0
    """How many such series."""

    def as_dict(self) -> dict:
        """A JSON-ready copy."""
        return {k: (list(map(list, v)) if k == "unknown_series" else v)
                for k, v in self.__dict__.items()}


def _keys(frame: pd.DataFrame) -> str:
    return "; ".join(f"{d:%Y-%m-%d} store {s} {f!r}" for d, s, f in
                     frame[["date", "store_nbr", "family"]].head(EXAMPLE_KEYS).itertuples(index=False))


def roll_history(table: SeriesTable, actuals: pd.DataFrame, correct: bool = False,
                 zero_series: list[tuple[int, str]] = ()) -> tuple[SeriesTable, ActualsReport]:
    """The model's history tail after `actuals` (validated rows of the data schema), and a report.

    `zero_series` are series the model knows but keeps out of its tail (they never sold and are
    forecast as 0 until the next training): their rows are neither unknown nor in the tail.
    Raises DataValidationError when rows repeat known days without `correct`.
    """
    dates = actuals["date"].to_numpy().astype("datetime64[D]")
    last = np.datetime64(table.last_date, "D")
    known_days = dates <= last
    if known_days.any() and not correct:
        raise DataValidationError(
            "date", f"{int(known_days.sum())} rows are for days the history already holds (up to "
            f"{last}): {_keys(actuals[known_days])}; send only new days, or ask to correct them",
            count=int(known_days.sum()))
    index = pd.MultiIndex.from_arrays([table.store_nbr.astype(np.int64), table.family.astype(str)])
    rows = index.get_indexer(pd.MultiIndex.from_arrays(
        [actuals["store_nbr"].to_numpy(np.int64), actuals["family"].astype(str).to_numpy()]))
    zero = pd.MultiIndex.from_tuples([(int(s), str(f)) for s, f in zero_series]) \
        if len(zero_series) else pd.MultiIndex.from_arrays([[], []])
    unknown = (rows < 0) & (zero.get_indexer(pd.MultiIndex.from_arrays(
        [actuals["store_nbr"].to_numpy(np.int64), actuals["family"].astype(str).to_numpy()])) < 0)
    unknown_keys = actuals.loc[unknown, ["store_nbr", "family"]].drop_duplicates()
    new_last = max(last, dates.max())
    shift = int((new_last - last).astype(np.int64))
    n, lookback = table.sales.shape
    # The tail extended by `shift` new days; new days start as gaps (NaN) until filled.
    sales = np.concatenate([table.sales, np.full((n, shift), np.nan)], axis=1)
    promo = np.concatenate([table.promo, np.zeros((n, shift), dtype=table.promo.dtype)], axis=1)
    cols = (lookback - 1 + (dates - last).astype(np.int64))
    ok = (rows >= 0) & (cols >= 0)
    sales[rows[ok], cols[ok]] = actuals["sales"].to_numpy(np.float64)[ok]
    promo[rows[ok], cols[ok]] = actuals["onpromotion"].to_numpy()[ok]
    new = sales[:, lookback:]
    gaps = np.isnan(new)
    # A series that had not begun (all NaN in its tail) stays not begun; others get zeros.
    begun = ~np.all(np.isnan(table.sales), axis=1)
    fill = gaps & begun[:, None]
    new[fill] = 0.0
    missing_everywhere = np.flatnonzero(gaps.all(axis=0)) if n else np.array([], dtype=np.int64)
    report = ActualsReport(
        rows=len(actuals), new_days=shift,
        first_date=str(dates.min()), last_date=str(dates.max()), history_end=str(new_last),
        corrected_rows=int((known_days & (rows >= 0)).sum()), filled_cells=int(fill.sum()),
        dates_missing_in_every_series=[str(last + np.timedelta64(int(i) + 1, "D"))
                                       for i in missing_everywhere[:50]],
        unknown_series=[(int(s), str(f)) for s, f in
                        unknown_keys.head(EXAMPLE_KEYS).itertuples(index=False)],
        unknown_series_count=len(unknown_keys),
    )
    rolled = SeriesTable(table.store_nbr, table.family, sales[:, -lookback:].copy(),
                         promo[:, -lookback:].copy(), new_last)
    return rolled, report


def trained_version(meta: dict, version: str) -> str:
    """The version that trained the members of an artifact (`meta` is its artifact.json):
    `version` itself, or the version an actuals update was made from. Live accuracy is kept
    per trained version, since every update publishes a new version of the same model."""
    return str((meta.get("actuals") or {}).get("base_version") or version)


def merge_history(stored: pd.DataFrame | None, actuals: pd.DataFrame) -> pd.DataFrame:
    """Accumulated actuals: `stored` with `actuals` added; a key in both keeps the new row."""
    if stored is None or stored.empty:
        return actuals.reset_index(drop=True)
    both = pd.concat([stored, actuals], ignore_index=True)
    return both.drop_duplicates(["date", "store_nbr", "family"], keep="last").sort_values(
        ["date", "store_nbr", "family"], kind="stable").reset_index(drop=True)
