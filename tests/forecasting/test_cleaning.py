import numpy as np
import pandas as pd

from forecasting.cleaning import clean, downsample_zeros
from forecasting.schema import validate_history


def frame(rows):
    df = pd.DataFrame(rows, columns=["date", "store_nbr", "family", "sales"])
    return validate_history(df)[0]


def test_missing_days_are_filled_with_zero_and_counted():
    panel, report = clean(frame([
        ("2016-12-23", 1, "A", 5), ("2016-12-24", 1, "A", 6), ("2016-12-26", 1, "A", 7),
        ("2016-12-23", 1, "B", 1), ("2016-12-24", 1, "B", 2), ("2016-12-26", 1, "B", 3),
    ]))
    assert report["filled_missing_days"] == 2
    assert report["dates_missing_in_every_series"] == ["2016-12-25"]
    assert panel.sales[panel.offsets[0]:panel.offsets[1]].tolist() == [5, 6, 0, 7]
    assert np.diff(panel.day[:4]).tolist() == [1, 1, 1]


def test_leading_zeros_are_trimmed_per_series():
    rows = [(f"2017-01-0{d}", 1, "A", s) for d, s in zip(range(1, 6), [0, 0, 3, 0, 4])]
    rows += [(f"2017-01-0{d}", 1, "B", 1) for d in range(1, 6)]
    panel, report = clean(frame(rows))
    assert report["late_start_series_trimmed"] == 1
    assert report["leading_zero_rows_trimmed"] == 2
    a = panel.sales[panel.offsets[0]:panel.offsets[1]]
    assert a.tolist() == [3, 0, 4]           # inner zeros stay
    assert panel.last_day == 4


def test_never_selling_series_are_excluded_but_kept_for_zero_forecasts():
    rows = [(f"2017-01-0{d}", 1, "A", 2) for d in range(1, 4)]
    rows += [(f"2017-01-0{d}", 1, "Z", 0) for d in range(1, 4)]
    panel, report = clean(frame(rows))
    assert panel.family.tolist() == ["A"]
    assert report["never_selling_series"] == 1 and report["never_selling_rows_excluded"] == 3
    assert panel.zero_series.values.tolist() == [[1, "Z"]]


def test_series_ending_early_are_filled_to_the_last_date():
    rows = [("2017-01-01", 1, "A", 1), ("2017-01-02", 1, "A", 1), ("2017-01-03", 1, "A", 1),
            ("2017-01-01", 1, "B", 1)]
    panel, report = clean(frame(rows))
    assert np.diff(panel.offsets).tolist() == [3, 3]
    assert report["filled_missing_days"] == 2


def test_downsample_zeros_keeps_expected_weight():
    sales = np.array([0.0] * 10_000 + [1.0] * 100)
    keep, weight = downsample_zeros(sales, 0.25, seed=1)
    assert keep[-100:].all()
    kept_zero_weight = (keep[:10_000] * weight[:10_000]).sum()
    assert abs(kept_zero_weight - 10_000) < 600     # unbiased in expectation
    assert np.all(weight[:10_000] == 4.0)
    same_keep, _ = downsample_zeros(sales, 0.25, seed=1)
    assert np.array_equal(keep, same_keep)
    keep_all, w = downsample_zeros(sales, 1.0, seed=1)
    assert keep_all.all() and np.all(w == 1)
