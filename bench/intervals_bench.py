"""Prediction-interval coverage on the test window: ours beside mlforecast's conformal
intervals, on the same rows, features and XGBoost settings, in one run.

- ours: ``training.train`` (without the refit, which does not change the evaluated fit) on all
  rows; its own split holds out the last ``horizon`` days, calibrates on the ``horizon`` days
  before them (``forecasting.interval_calibration``: the honest, validation-only calibration)
  and reports each level's coverage on the held-out days in evaluation.json;
- mlforecast: ``fit`` on every row but the last ``horizon`` days with
  ``PredictionIntervals(n_windows=2, h=horizon)`` (per-series conformal scores from two
  cross-validation refits), then ``predict(level=...)`` of the held-out days.

Coverage is the share of the held-out days' actual sales inside each level's interval; width
is the mean of upper - lower in units. Target: within 5 points of nominal.

    python -m bench.intervals_bench [--small] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.child import bench_frame, run_in_child
from bench.forecast_bench import XGB, peer_fill, peer_forecaster, peer_frames, peer_join

LEVELS = (50, 80, 95)


def ours(path: str, horizon: int, rounds: int, nthread: int) -> dict:
    """Our side: the training pipeline's own calibration and test coverage."""
    from forecasting import training

    frame = pd.read_parquet(path)
    hp = {**{k: str(v) for k, v in XGB.items()}, "num_round": str(rounds),
          "early_stopping_rounds": str(rounds), "nthread": str(nthread),
          "horizon": str(horizon), "refit": "false"}
    t = time.perf_counter()
    model = training.train(frame, hp, log=lambda _: None)
    seconds = time.perf_counter() - t
    block = model.evaluation["intervals"]
    return {"train_s": seconds, "window": [model.evaluation["test_start"],
                                           model.evaluation["test_end"]],
            "coverage": {k: v["coverage"] for k, v in block["coverage"].items()},
            "mean_width": {k: v["mean_width"] for k, v in block["coverage"].items()}}


def peer(path: str, horizon: int, rounds: int, nthread: int) -> dict:
    """mlforecast's conformal intervals (conformal_distribution, 2 windows)."""
    from mlforecast.utils import PredictionIntervals

    raw_df, future, test = peer_frames(path, horizon)
    fcst = peer_forecaster(rounds, nthread)
    t = time.perf_counter()
    fcst.fit(peer_fill(raw_df), static_features=["store_nbr", "family"],
             prediction_intervals=PredictionIntervals(n_windows=2, h=horizon))
    seconds = time.perf_counter() - t
    joined = peer_join(test, fcst.predict(h=horizon, X_df=future, level=list(LEVELS)))
    actual = test["sales"].to_numpy()
    coverage, width = {}, {}
    for level in LEVELS:
        lo = np.clip(joined[f"model-lo-{level}"].to_numpy(), 0, None)
        hi = joined[f"model-hi-{level}"].to_numpy()
        coverage[str(level)] = float(np.mean((actual >= lo) & (actual <= hi)))
        width[str(level)] = float(np.mean(hi - lo))
    return {"train_s": seconds, "coverage": coverage, "mean_width": width}


def run(frame: pd.DataFrame, rounds: int = 100, horizon: int = 16, nthread: int = 2) -> dict:
    """Both sides on ``frame``, each in its own child process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "data.parquet")
        frame.to_parquet(path, index=False)
        return {"rows": len(frame), "series": int(frame.groupby(["store_nbr", "family"]).ngroups),
                "rounds": rounds, "horizon": horizon,
                "ours": run_in_child(ours, path, horizon, rounds, nthread),
                "mlforecast": run_in_child(peer, path, horizon, rounds, nthread)}


def markdown(result: dict) -> str:
    """The table for docs/benchmarks.md."""
    ours, peer = result["ours"], result["mlforecast"]
    lines = [(f"{result['rows']:,} rows, {result['series']:,} series, {result['rounds']} "
              f"boosting rounds, horizon {result['horizon']}; test window "
              f"{ours['window'][0]} to {ours['window'][1]}."), "",
             ("| level | ours: coverage | ours: mean width | mlforecast: coverage | "
             "mlforecast: mean width | width ours / mlforecast |"),
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for level in LEVELS:
        k = str(level)
        lines.append(f"| {level} % | {ours['coverage'][k]:.3f} | {ours['mean_width'][k]:.1f} | "
                     f"{peer['coverage'][k]:.3f} | {peer['mean_width'][k]:.1f} | "
                     f"{ours['mean_width'][k] / peer['mean_width'][k]:.2f} |")
    lines += ["", (f"Training time with the calibration: ours {ours['train_s']:.1f} s (one fit, "
              f"no refit), mlforecast {peer['train_s']:.1f} s (one fit + two "
              f"cross-validation fits).")]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="4 stores x 5 families")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    result = run(bench_frame(args.small), rounds=args.rounds)
    print(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
