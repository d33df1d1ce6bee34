"""Actuals roll a model's history tail forward: continuity, gaps, known days, unknown series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.artifact import SeriesTable
from forecasting.errors import DataValidationError
from forecasting.monitoring.actuals import merge_history, roll_history


def _table() -> SeriesTable:
    # Two series, lookback 4, history ending 2017-08-15; series 2 has not begun yet.
    return SeriesTable(
        store_nbr=np.array([1, 2], dtype=np.int32), family=np.array(["A", "B"], dtype=object),
        sales=np.array([[1.0, 2.0, 3.0, 4.0], [np.nan, np.nan, np.nan, np.nan]]),
        promo=np.zeros((2, 4), dtype=np.int32), last_date=np.datetime64("2017-08-15"))


def _rows(*rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["date", "store_nbr", "family", "sales", "onpromotion"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def test_new_days_move_the_tail_and_gaps_are_filled_with_zero() -> None:
    rolled, report = roll_history(_table(), _rows(("2017-08-16", 1, "A", 5.0, 1),
                                                  ("2017-08-18", 1, "A", 7.0, 0)))
    assert rolled.last_date == np.datetime64("2017-08-18")
    # 3 new days: 08-16 = 5, 08-17 missing -> 0, 08-18 = 7; the oldest 3 days fall off.
    np.testing.assert_array_equal(rolled.sales[0], [4.0, 5.0, 0.0, 7.0])
    np.testing.assert_array_equal(rolled.promo[0], [0, 1, 0, 0])
    assert np.isnan(rolled.sales[1]).all()          # a series that had not begun stays so
    assert report.new_days == 3 and report.filled_cells == 1
    assert report.dates_missing_in_every_series == ["2017-08-17"]
    assert report.history_end == "2017-08-18"


def test_known_days_are_rejected_with_their_keys_unless_corrected() -> None:
    upload = _rows(("2017-08-15", 1, "A", 40.0, 0), ("2017-08-16", 1, "A", 5.0, 0))
    with pytest.raises(DataValidationError, match=r"2017-08-15 store 1 'A'.*correct"):
        roll_history(_table(), upload)
    rolled, report = roll_history(_table(), upload, correct=True)
    np.testing.assert_array_equal(rolled.sales[0], [2.0, 3.0, 40.0, 5.0])
    assert report.corrected_rows == 1


def test_unknown_series_are_reported_and_left_out_of_the_tail() -> None:
    rolled, report = roll_history(_table(), _rows(("2017-08-16", 1, "A", 5.0, 0),
                                                  ("2017-08-16", 9, "Z", 2.0, 0)))
    assert report.unknown_series == [(9, "Z")] and report.unknown_series_count == 1
    assert rolled.sales.shape == (2, 4)


def test_merge_history_keeps_the_newest_row_per_key() -> None:
    stored = _rows(("2017-08-16", 1, "A", 5.0, 0))
    merged = merge_history(stored, _rows(("2017-08-16", 1, "A", 6.0, 0),
                                         ("2017-08-17", 1, "A", 1.0, 0)))
    assert merged["sales"].tolist() == [6.0, 1.0]


def test_series_that_never_sold_are_known_but_stay_out_of_the_tail() -> None:
    rolled, report = roll_history(_table(), _rows(("2017-08-16", 7, "Q", 0.0, 0)),
                                  zero_series=[(7, "Q")])
    assert report.unknown_series_count == 0
    assert rolled.sales.shape == (2, 4)
