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


def test_level_shift_moves_half_the_stores_over_the_last_days():
    base = synthetic.generate(6, 4, "2017-01-01", seed=2)
    moved = synthetic.generate(6, 4, "2017-01-01", seed=2, level_shift=(14, 2.0))
    late = base["date"] > sorted(base["date"].unique())[-15]
    assert base.loc[~late, "sales"].equals(moved.loc[~late, "sales"])
    ratio = (moved[late].groupby("store_nbr")["sales"].sum()
             / base[late].groupby("store_nbr")["sales"].sum())
    assert ((ratio > 1.6) | ((ratio > 0.99) & (ratio < 1.01))).all() and (ratio > 1.6).any()


def test_m5_like_is_stores_by_items_with_intermittent_low_volume_demand(tmp_path):
    path = tmp_path / "m5.parquet"
    rows = synthetic.write_m5_like(str(path), n_stores=2, n_items=40, n_days=120)
    frame, _ = load_history(path)
    assert rows == len(frame) == 2 * 40 * 120
    assert frame.groupby(["store_nbr", "family"], observed=True).ngroups == 80
    assert frame["sales"].eq(0).mean() > 0.4 and frame["sales"].median() <= 1
    assert synthetic.M5_STORES * synthetic.M5_ITEMS * synthetic.M5_DAYS == 59_181_090
