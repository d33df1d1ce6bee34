"""The real-data benchmark's panel rules (bench/online_retail.py) on a few invoice lines built
by hand: cancellations and non-positive lines are out, the top countries become stores, SKUs
are ranked by units, missing days are 0, and onpromotion marks days sold below 0.9 of the
median price. The real-data bench itself names an unknown model in one line."""

import subprocess
import sys

import pandas as pd

from bench import online_retail


def test_the_panel_follows_its_rules(monkeypatch, tmp_path):
    monkeypatch.setattr(online_retail, "STORES", 2)
    monkeypatch.setattr(online_retail, "SKU_RANKS", (2, 3))      # the 2nd and 3rd SKU by units
    rows = [
        ("1", "TOP", 100, "1/1/2011 9:00", 1.0, "UK"),           # rank 1: left out
        ("2", "B", 10, "1/1/2011 10:30", 2.0, "UK"),
        ("3", "B", 10, "1/3/2011 11:00", 1.0, "UK"),             # below 0.9 x median 2.0
        ("4", "B", 5, "1/2/2011 12:00", 2.0, "FR"),
        ("5", "C", 3, "1/2/2011 12:00", 4.0, "FR"),
        ("6", "D", 1, "1/2/2011 12:00", 4.0, "FR"),              # rank 4: left out
        ("7", "B", 2, "1/2/2011 12:00", 2.0, "DE"),              # a third country: left out
        ("8", "B", 1, "1/1/2011 16:00", 2.0, "UK"),
        ("C9", "B", 50, "1/1/2011 17:00", 2.0, "UK"),            # a cancellation
        ("10", "B", -5, "1/1/2011 17:00", 2.0, "UK"),            # a return
        ("11", "B", 5, "1/1/2011 17:00", 0.0, "UK"),             # no price
    ]
    path = tmp_path / "invoices.csv"
    pd.DataFrame(rows, columns=["Invoice", "StockCode", "Quantity", "InvoiceDate", "Price",
                                "Country"]).assign(**{"Customer ID": 1.0, "Description": "x"}
                                                   ).to_csv(path, index=False)
    lines = online_retail.read_invoices(path)
    panel = online_retail.panel(lines)
    assert sorted(panel["family"].unique()) == ["B", "C"]
    assert online_retail.stores(lines) == {1: "UK", 2: "FR"}
    assert len(panel) == 2 * 2 * 3                               # stores x SKUs x days
    uk_b = panel[(panel["store_nbr"] == 1) & (panel["family"] == "B")]
    assert uk_b["date"].tolist() == ["2011-01-01", "2011-01-02", "2011-01-03"]
    assert uk_b["sales"].tolist() == [11.0, 0.0, 10.0]           # the missing day is 0
    assert uk_b["onpromotion"].tolist() == [0, 0, 1]
    assert panel[panel["store_nbr"] == 2]["sales"].sum() == 8.0


def test_the_real_bench_names_an_unknown_model_in_one_line():
    r = subprocess.run([sys.executable, "-m", "bench.real_bench", "--models", "prophet"],
                       check=False, capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        ("real_bench: unknown model 'prophet' (known: ours xgboost, ours xgboost tweedie, ours "
        "hybrid, mlforecast xgboost, mlforecast lightgbm, mlforecast lightgbm tweedie)")]
