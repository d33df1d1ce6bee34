import numpy as np
import pandas as pd

from forecasting import synthetic
from forecasting.schema import load_history


def test_deterministic_and_in_the_competition_schema():
    a = synthetic.generate(2, 3, "2016-12-01", "2017-01-31", seed=5)
    b = synthetic.generate(2, 3, "2016-12-01", "2017-01-31", seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns) == ["id", "date", "store_nbr", "family", "sales", "onpromotion"]
    assert "2016-12-25" not in set(a["date"])
    assert len(a) == 2 * 3 * (62 - 1)
    load_history(a)                                  # passes the data contract


def test_full_scale_shape_matches_the_competition():
    days = synthetic.calendar(synthetic.FULL_START, synthetic.FULL_END)
    assert len(days) == 1684
    assert synthetic.FULL_STORES * len(synthetic.FAMILIES) * len(days) == 3_000_888


def test_zero_inflation_late_stores_and_promotion_lift():
    f = synthetic.generate(20, 33, "2013-01-01", "2017-08-15", seed=0)
    assert f.loc[f.family == "BOOKS", "sales"].eq(0).mean() > 0.6
    first_sale = f[f.sales > 0].groupby("store_nbr")["date"].min()
    assert (first_sale > "2013-06-01").any()            # some stores open late
    assert f.loc[f.date < "2014-01-01", "onpromotion"].sum() == 0
    promo = f[(f.onpromotion > 10) & (f.sales > 0)]
    none = f[(f.onpromotion == 0) & (f.sales > 0) & (f.date >= "2014-04-01")]
    assert np.log1p(promo.sales).mean() > np.log1p(none.sales).mean()


def test_sample_file_ships_and_is_valid():
    from pathlib import Path
    frame, _ = load_history(Path(__file__).resolve().parents[2] / "data/sample/train.csv")
    assert len(frame) > 10_000
