"""A deterministic store-sales generator with the Kaggle competition's schema and shape.

At full scale (54 stores x 33 families, 2013-01-01 to 2017-08-15 without Dec 25) it yields
exactly 3,000,888 rows, like the competition's train.csv. The series have weekly and yearly
seasonality, promotions that lift sales, trends, autocorrelated noise, zero-inflated families,
stores that open late and a few series that never sell. ``level_shift`` moves half the stores'
sales by a factor over the last days (where a model that has seen the latest days wins).

``m5_like`` has Walmart's M5 shape instead: stores x items (10 x 3,049 over 1,941 days is
59,181,090 rows) with intermittent, low-volume Poisson demand; it is made one store at a time
(``write_m5_like`` streams it to Parquet) so the full size never sits in memory at once.
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
    level_shift: tuple[int, float] | None = None,
) -> pd.DataFrame:
    """Rows ``id, date, store_nbr, family, sales, onpromotion`` sorted by date, store, family.

    ``level_shift=(days, factor)``: over the last ``days`` days a seeded half of the stores
    sell ``factor`` times as much (e.g. a competitor closed)."""
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
    if level_shift is not None:
        days_shifted, factor = level_shift
        shifted = np.random.default_rng(seed + 1).random(n_stores) < 0.5
        log_sales[shifted[store_of], n_days - days_shifted:] += np.log(factor)
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


M5_START, M5_DAYS, M5_STORES, M5_ITEMS = "2011-01-29", 1941, 10, 3049


def m5_like(n_stores: int = M5_STORES, n_items: int = M5_ITEMS, n_days: int = M5_DAYS,
            start: str = M5_START, seed: int = 0):
    """M5-shaped history, one store at a time: yields a frame ``date, store_nbr, family,
    sales, onpromotion`` per store (``family`` holds the item, e.g. ``ITEM_00042``; ``date``
    and ``family`` are categoricals). Every day is present (as in M5); items start selling on
    their launch day and most sell 0-3 units a day: Poisson demand around a low, item-specific
    rate with weekly and yearly seasonality and promotion lifts."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(start, periods=n_days, freq="D")
    items = np.array([f"ITEM_{i:05d}" for i in range(n_items)])
    item_rate = rng.lognormal(mean=-0.6, sigma=1.1, size=n_items)   # median ~0.55 units/day
    weekly = rng.normal(0, 0.1, (n_items, 7))
    weekly[:, 5:] += 0.2
    yearly = rng.normal(0, 0.1, n_items)[:, None] * np.sin(
        2 * np.pi * (days.dayofyear.to_numpy() - 80) / 365.25)[None, :]
    launch = np.where(rng.random(n_items) < 0.3, rng.integers(0, n_days // 2, n_items), 0)
    date_cat = pd.Categorical(days.strftime("%Y-%m-%d"))
    item_cat = pd.Categorical(items)
    dow = days.dayofweek.to_numpy()
    for store in range(n_stores):
        srng = np.random.default_rng([seed, store])
        store_level = srng.lognormal(0, 0.3)
        promo = (srng.random((n_items, n_days)) < 0.05).astype(np.int32)
        log_rate = (np.log(item_rate * store_level)[:, None] + weekly[:, dow] + yearly
                    + 0.4 * promo)
        sales = srng.poisson(np.exp(log_rate)).astype(np.float64)
        before = np.arange(n_days)[None, :] < launch[:, None]
        sales[before] = 0.0
        promo[before] = 0
        yield pd.DataFrame({
            "date": pd.Categorical.from_codes(np.repeat(np.arange(n_days), n_items),
                                              dtype=date_cat.dtype),
            "store_nbr": np.full(n_items * n_days, store + 1, dtype=np.int32),
            "family": pd.Categorical.from_codes(np.tile(np.arange(n_items), n_days),
                                                dtype=item_cat.dtype),
            "sales": sales.T.reshape(-1),
            "onpromotion": promo.T.reshape(-1),
        })


def write_m5_like(path: str, n_stores: int = M5_STORES, n_items: int = M5_ITEMS,
                  n_days: int = M5_DAYS, seed: int = 0) -> int:
    """Stream ``m5_like`` into one Parquet file (a row group per store); returns the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, writer = 0, None
    try:
        for frame in m5_like(n_stores, n_items, n_days, seed=seed):
            table = pa.Table.from_pandas(frame, preserve_index=False)
            table = table.cast(pa.schema([   # text as plain strings, as a retailer's export has
                pa.field(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type)
                for f in table.schema]))
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return rows


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
