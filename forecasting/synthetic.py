"""A deterministic store-sales generator with the Kaggle competition's schema and shape.

At full scale (54 stores x 33 families, 2013-01-01 to 2017-08-15 without Dec 25) it yields
exactly 3,000,888 rows, like the competition's train.csv. The series have weekly and yearly
seasonality, promotions that lift sales, trends, autocorrelated noise, zero-inflated families,
stores that open late and a few series that never sell.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import lfilter

FAMILIES = (
    "AUTOMOTIVE", "BABY CARE", "BEAUTY", "BEVERAGES", "BOOKS", "BREAD/BAKERY", "CELEBRATION",
    "CLEANING", "DAIRY", "DELI", "EGGS", "FROZEN FOODS", "GROCERY I", "GROCERY II", "HARDWARE",
    "HOME AND KITCHEN I", "HOME AND KITCHEN II", "HOME APPLIANCES", "HOME CARE", "LADIESWEAR",
    "LAWN AND GARDEN", "LINGERIE", "LIQUOR,WINE,BEER", "MAGAZINES", "MEATS", "PERSONAL CARE",
    "PET SUPPLIES", "PLAYERS AND ELECTRONICS", "POULTRY", "PREPARED FOODS", "PRODUCE",
    "SCHOOL AND OFFICE SUPPLIES", "SEAFOOD",
)
FULL_START, FULL_END = "2013-01-01", "2017-08-15"
FULL_STORES = 54
# Families that sell rarely: most of their days are zero.
SPARSE_FAMILIES = {"BABY CARE", "BOOKS", "HARDWARE", "HOME APPLIANCES", "MAGAZINES", "CELEBRATION"}


def calendar(start: str, end: str) -> pd.DatetimeIndex:
    """Every day from start to end inclusive, without Dec 25 (the stores are closed)."""
    days = pd.date_range(start, end, freq="D")
    return days[~((days.month == 12) & (days.day == 25))]


def generate(
    n_stores: int = FULL_STORES,
    n_families: int = len(FAMILIES),
    start: str = FULL_START,
    end: str = FULL_END,
    seed: int = 0,
) -> pd.DataFrame:
    """Rows ``id, date, store_nbr, family, sales, onpromotion`` sorted by date, store, family."""
    if not 1 <= n_families <= len(FAMILIES):
        raise ValueError(f"n_families must be between 1 and {len(FAMILIES)}")
    if n_stores < 1:
        raise ValueError("n_stores must be at least 1")
    rng = np.random.default_rng(seed)
    days = calendar(start, end)
    n_days, n_series = len(days), n_stores * n_families
    families = np.array(FAMILIES[:n_families])
    fam_of = np.tile(np.arange(n_families), n_stores)          # series -> family index
    store_of = np.repeat(np.arange(n_stores), n_families)      # series -> store index

    fam_level = rng.lognormal(mean=3.0, sigma=1.4, size=n_families)
    store_level = rng.lognormal(mean=0.0, sigma=0.5, size=n_stores)
    level = np.log1p(fam_level[fam_of] * store_level[store_of] * rng.lognormal(0, 0.2, n_series))

    t = np.arange(n_days) / 365.25
    trend = rng.normal(0.05, 0.08, n_series)[:, None] * t[None, :]
    dow = days.dayofweek.to_numpy()
    weekly_shape = rng.normal(0, 0.15, (n_families, 7))
    weekly_shape[:, 5:] += 0.25                                  # weekends sell more
    weekly = weekly_shape[fam_of][:, dow]
    doy = days.dayofyear.to_numpy()
    yearly = rng.normal(0.1, 0.05, n_series)[:, None] * np.sin(2 * np.pi * (doy - 80) / 365.25)
    yearly = yearly + 0.2 * np.asarray((days.month == 12) & (days.day > 15))  # Christmas peak
    noise = lfilter([1.0], [1.0, -0.6], rng.normal(0, 0.12, (n_series, n_days)), axis=1)

    # Promotions: none before 2014 (as in the competition), then counts that lift sales.
    promo_rate = rng.gamma(0.6, 4.0, n_series)[:, None]
    promo_on = np.asarray(days >= pd.Timestamp("2014-04-01"))[None, :]
    promos = rng.poisson(promo_rate * promo_on * (rng.random((n_series, n_days)) < 0.35))
    lift = rng.uniform(0.01, 0.04, n_series)[:, None] * np.minimum(promos, 30)

    log_sales = level[:, None] + trend + weekly + yearly + noise + lift
    sales = np.expm1(np.clip(log_sales, 0, None))
    is_unit = rng.random(n_families) < 0.6                       # most families sell units
    sales = np.where(is_unit[fam_of][:, None], np.round(sales), np.round(sales, 3))

    sparse = np.isin(families, list(SPARSE_FAMILIES))[fam_of][:, None]
    sales = np.where(sparse & (rng.random((n_series, n_days)) < 0.7), 0.0, sales)
    # Stores that open late: zero sales (and no promotions) before their opening day.
    late = rng.random(n_stores) < 0.15
    opening = np.where(late, rng.integers(n_days // 8, n_days // 2, n_stores), 0)[store_of]
    closed = np.arange(n_days)[None, :] < opening[:, None]
    # A few series never sell (a store that does not carry the family).
    never = rng.random(n_series) < 0.03
    sales = np.where(closed | never[:, None], 0.0, sales)
    promos = np.where(closed | never[:, None], 0, promos)

    frame = pd.DataFrame({
        "date": np.repeat(days.strftime("%Y-%m-%d").to_numpy(), n_series),
        "store_nbr": np.tile(store_of + 1, n_days).astype(np.int32),
        "family": np.tile(families[fam_of], n_days),
        "sales": sales.T.reshape(-1),
        "onpromotion": promos.T.reshape(-1).astype(np.int32),
    })
    frame.insert(0, "id", np.arange(len(frame), dtype=np.int64))
    return frame


def main(argv: list[str] | None = None) -> None:
    """``python -m forecasting.synthetic OUT.csv [--full | --stores N --families N ...]``."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("output")
    p.add_argument("--full", action="store_true", help="competition scale: 3,000,888 rows")
    p.add_argument("--stores", type=int, default=4)
    p.add_argument("--families", type=int, default=5)
    p.add_argument("--start", default="2015-06-01")
    p.add_argument("--end", default=FULL_END)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    frame = (generate(seed=a.seed) if a.full
             else generate(a.stores, a.families, a.start, a.end, a.seed))
    if a.output.endswith(".parquet"):
        frame.to_parquet(a.output, index=False)
    else:
        frame.to_csv(a.output, index=False)
    print(f"wrote {len(frame):,} rows to {a.output}")


if __name__ == "__main__":
    main()
