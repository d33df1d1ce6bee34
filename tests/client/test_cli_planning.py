"""What a planner runs, through a real gateway and the `forecast` CLI as a subprocess: the next
N days with intervals, days of supply, the plots, and the promotion gate's three modes."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_one_line_error
from cli_helpers import run_forecast as forecast

pytestmark = pytest.mark.slow

#: Series of the bundled sample (4 stores x 6 families) and the day after its history.
SAMPLE_SERIES = 24
FIRST_DAY = "2017-08-16"


def csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), dtype={"family": str})


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file; fails unless it is one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def horizon(gateway, trained) -> pd.DataFrame:
    """acme's next 16 days with 80% and 95% intervals, as `predict --days` writes them."""
    r = forecast("predict", "--retailer", "acme", "--days", "16", "--levels", "80", "95",
                 target=gateway.target)
    assert r.returncode == 0, r.stderr
    return csv(r.stdout)


def test_predict_days_with_intervals(gateway, horizon: pd.DataFrame) -> None:
    assert list(horizon.columns) == ["date", "store_nbr", "family", "onpromotion", "sales",
                                     "lo-80", "hi-80", "lo-95", "hi-95"]
    assert len(horizon) == SAMPLE_SERIES * 16
    assert horizon["date"].min() == FIRST_DAY and horizon["date"].max() == "2017-08-31"
    assert (horizon["lo-95"] <= horizon["lo-80"]).all() and (horizon["hi-80"] <= horizon["hi-95"]).all()
    assert ((horizon["lo-80"] <= horizon["sales"]) & (horizon["sales"] <= horizon["hi-80"])).all()

    r = forecast("predict", "--retailer", "acme", "--days", "3", "--stores", "2", "--families",
                 "BEVERAGES", "BOOKS", target=gateway.target)
    assert r.returncode == 0, r.stderr
    some = csv(r.stdout)
    assert len(some) == 6 and set(some["family"]) == {"BEVERAGES", "BOOKS"}
    assert (some["store_nbr"] == 2).all() and "lo-80" not in some

    # The same rows given as a file (here on stdin) get the same forecasts and intervals.
    rows = horizon[["date", "store_nbr", "family"]].head(40)
    r = forecast("predict", "--retailer", "acme", "--input", "-", "--levels", "80",
                 target=gateway.target, stdin=rows.to_csv(index=False))
    assert r.returncode == 0, r.stderr
    given = csv(r.stdout)
    assert given["sales"].tolist() == pytest.approx(horizon["sales"].head(40).tolist())
    assert given["hi-80"].tolist() == pytest.approx(horizon["hi-80"].head(40).tolist())

    assert_one_line_error(forecast("predict", "--retailer", "acme", "--days", "16", "--stores",
                                   "99", target=gateway.target), 1, "99")


def test_metrics_show_interval_coverage(gateway, trained) -> None:
    r = forecast("metrics", "--retailer", "acme", target=gateway.target)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    at = lines.index("prediction intervals on the test window:")
    assert lines[at + 1].split() == ["LEVEL", "COVERAGE", "VS", "NOMINAL", "LOW", "THIRD", "MID",
                                     "THIRD", "HIGH", "THIRD", "MEAN", "WIDTH", "INTERVAL",
                                     "SCORE"]
    rows = {line.split()[0]: line.split() for line in lines[at + 2:]}
    assert {"80%", "95%"} <= set(rows)
    coverage, versus = float(rows["80%"][1].rstrip("%")), float(rows["80%"][2])
    assert 0 <= coverage <= 100 and versus == pytest.approx(coverage - 80, abs=0.06)
    thirds = [float(v.rstrip("%")) for v in rows["80%"][3:6]]
    width, score = float(rows["80%"][6]), float(rows["80%"][7])
    assert all(0 <= t <= 100 for t in thirds) and score >= width > 0
    header = lines[lines.index(next(x for x in lines if x.startswith("MODEL")))].split()
    assert header[-1] == "MASE"


def test_turnover_days_of_supply(gateway, horizon: pd.DataFrame, tmp_path: Path) -> None:
    series = horizon[(horizon.store_nbr == 1) & (horizon.family == "BEVERAGES")]["sales"].to_numpy()
    # Stock for the first 3 days of forecast demand and half of the 4th: 3.5 days of supply.
    on_hand = series[:3].sum() + series[3] / 2
    inventory = tmp_path / "inventory.csv"
    inventory.write_text(f"store_nbr,family,on_hand\n1,BEVERAGES,{float(on_hand)!r}\n"
                         "1,BOOKS,1000000\n2,BEVERAGES,0\n")
    r = forecast("turnover", "--retailer", "acme", "--inventory", str(inventory), "--output",
                 "-", "--lead-time", "5", target=gateway.target)
    assert r.returncode == 0, r.stderr
    out = csv(r.stdout).set_index(["store_nbr", "family"])
    assert out.loc[(1, "BEVERAGES"), "days_of_supply"] == pytest.approx(3.5, abs=1e-6)
    assert out.loc[(1, "BEVERAGES"), "demand"] == pytest.approx(series.sum(), rel=1e-6)
    assert bool(out.loc[(1, "BOOKS"), "beyond_horizon"])
    assert out.loc[(2, "BEVERAGES"), "days_of_supply"] == 0

    r = forecast("turnover", "--retailer", "acme", "--inventory", str(inventory),
                 target=gateway.target)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("model v1: 16 days from 2017-08-16")
    assert lines[1].split()[:2] == ["STORE", "FAMILY"]
    assert lines[2].split()[:2] == ["2", "BEVERAGES"]  # shortest supply first
    assert "> 16" in lines[-1] and lines[-1].split()[:2] == ["1", "BOOKS"]

    for rows, words in (("1,BEVERAGES,-5\n", "on_hand"), ("9,BEVERAGES,5\n", "9"),
                        ("1,BEVERAGES,5\n1,BEVERAGES,6\n", "may appear only once")):
        bad = tmp_path / "bad.csv"
        bad.write_text("store_nbr,family,on_hand\n" + rows)
        assert_one_line_error(forecast("turnover", "--retailer", "acme", "--inventory", str(bad),
                                       target=gateway.target), 1, words)


def test_plots_are_pngs(gateway, trained, tmp_path: Path, sample_csv: Path) -> None:
    t = gateway.target
    r = forecast("plot", "--retailer", "acme", "--store", "1", "--family", "BEVERAGES",
                 "--history", str(sample_csv), "--output", str(tmp_path / "series.png"), target=t)
    assert r.returncode == 0, r.stderr
    assert png_size(tmp_path / "series.png") == (1000, 500)
    r = forecast("plot", "--retailer", "acme", "--metrics", "--output",
                 str(tmp_path / "metrics.png"), target=t)
    assert r.returncode == 0, r.stderr
    width, height = png_size(tmp_path / "metrics.png")
    assert width == 1000 and height > 200
    inventory = tmp_path / "inventory.csv"
    inventory.write_text("store_nbr,family,on_hand\n1,BEVERAGES,50\n1,BOOKS,3\n")
    r = forecast("plot", "--retailer", "acme", "--supply", "--store", "1", "--inventory",
                 str(inventory), "--output", str(tmp_path / "supply.png"), target=t)
    assert r.returncode == 0, r.stderr
    assert png_size(tmp_path / "supply.png")[0] == 1000
    assert_one_line_error(forecast("plot", "--retailer", "acme", "--store", "1", "--family",
                                   "NOPE", "--output", str(tmp_path / "x.png"), target=t),
                          1, "NOPE")
    assert not (tmp_path / "x.png").exists()


def test_sdk_plot_of_a_real_forecast(gateway, trained) -> None:
    from forecast_client import ForecastClient, plots

    with ForecastClient(target=gateway.target) as client:
        ahead = client.forecast("acme", 16, levels=[80], stores=[3], families=["BREAD/BAKERY"])
    fig = plots.forecast_figure(ahead, store_nbr=3, family="BREAD/BAKERY")
    ax = fig.axes[0]
    (line,) = [x for x in ax.get_lines() if x.get_label() == "forecast"]
    assert np.allclose(line.get_ydata(), ahead["sales"])
    (band,) = [c for c in ax.collections if c.get_label() == "80% interval"]
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(ahead["lo-80"].min()) and ys.max() == pytest.approx(ahead["hi-80"].max())


def test_promotion_gate_modes(gateway, sample_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_API_KEY", gateway.api_key("gate-co"))
    t = gateway.target

    def train(promote: str, rounds: int) -> tuple[str, str]:
        r = forecast("train", "--retailer", "gate-co", "--data", str(sample_csv), "--hp",
                     f"num_round={rounds}", "--hp", "refit=false", "--promote", promote,
                     "--wait", "-q", target=t)
        assert r.returncode == 0, r.stderr
        return r.stdout, r.stderr

    out, err = train("if_better", 20)  # nothing live yet: it goes live
    assert out.endswith("\tSUCCEEDED\tmodel v1 is live\n") and "no live model" in err
    out, err = train("if_better", 1)  # one tree: worse than v1 on the same days
    assert out.endswith("\tSUCCEEDED\tmodel v2 kept; v1 stays live\n"), out + err
    (scores,) = [line.split() for line in err.splitlines() if line.startswith("  rmsle: new v2 ")]
    new, live = float(scores[3].rstrip(",")), float(scores[6])
    assert scores[5] == "v1" and new > live, err  # both scores, on the same window
    assert "forecast promote --retailer gate-co v2" in err
    r = forecast("jobs", "--retailer", "gate-co", target=t)
    assert "v2 (kept)" in r.stdout
    out, err = train("never", 20)
    assert out.endswith("\tSUCCEEDED\tmodel v3 kept; the live model is unchanged\n"), out
    assert "SetLiveModel" not in err and "make it live anyway with: forecast promote" in err
    out, err = train("always", 1)  # worse, and live all the same
    assert out.endswith("\tSUCCEEDED\tmodel v4 is live\n"), out

    r = forecast("promote", "--retailer", "gate-co", "v1", target=t)  # forced
    assert r.returncode == 0 and r.stdout == "model v1 is live for gate-co\n"
    r = forecast("models", "--retailer", "gate-co", target=t)
    live_versions = [line.split()[1] for line in r.stdout.splitlines()[1:] if line.startswith("*")]
    assert live_versions == ["v1"]


def test_predict_past_the_trained_horizon_warns_on_stderr(gateway, trained) -> None:
    r = forecast("predict", "--retailer", "acme", "--days", "18", "--levels", "80",
                 target=gateway.target)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "past the 16-day horizon" in warnings[0]
    assert len(r.stdout.splitlines()) == 1 + 24 * 18
    quiet = forecast("predict", "--retailer", "acme", "--days", "16", target=gateway.target)
    assert "warning" not in quiet.stderr
