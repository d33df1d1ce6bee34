"""The forecasting core beside Nixtla's mlforecast, on the same rows, features and XGBoost
settings, in one run.

Both sides get the history (every row but the last ``horizon`` days) and forecast the last
``horizon`` days recursively for every series, with the real ``onpromotion`` of those days.
Measured per side, each in its own spawn child (so peak memory is its own):

- featurize: ours = validate + clean + feature matrix; mlforecast = ``preprocess``;
- featurize + fit, one fit each: ours = ``training.train`` with ``refit=false`` (which also
  evaluates on its own test split); mlforecast = ``fit``. Both fit the same number of boosting
  rounds with the same settings;
- ours as served by default: ``training.train`` with the refit on all history (a second fit);
- predict: the recursive forecast of all series x ``horizon`` days (ours through
  ``Predictor.load`` + ``predict_columns`` of the default, refit model; mlforecast through
  ``predict``);
- the XGBoost floor of ours' predict: one ``inplace_predict`` of the served booster (one
  thread) on exactly the feature rows the forecast hands the trees, laid out series by series
  (``predict_floor``; ``bench.predict_bench`` breaks the rest down); floor / ours is how close
  the recursive forecast comes to the trees' own cost;
- peak RSS of the child, and RMSLE on the held-out days (ours with and without the refit; the
  seasonal-naive baseline too). mlforecast, like our refit, fits on every history day.

    python -m bench.forecast_bench [--small] [--rounds N]
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

XGB = {"eta": 0.1, "max_depth": 8, "subsample": 0.8, "colsample_bytree": 0.8,
       "min_child_weight": 1.0, "max_bin": 256, "max_cat_to_onehot": 1, "seed": 42}


def _split(path: str, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.read_parquet(path)
    cutoff = sorted(frame["date"].unique())[-horizon]
    return frame[frame["date"] < cutoff].reset_index(drop=True), \
        frame[frame["date"] >= cutoff].reset_index(drop=True)


def ours(path: str, horizon: int, rounds: int, nthread: int, keep_dir: str | None = None) -> dict:
    """Our side: every step through the library's public functions. ``keep_dir`` keeps the
    trained artifact (the gRPC benchmark serves it)."""
    from forecasting import features, training
    from forecasting.cleaning import clean
    from forecasting.models.base import to_target
    from forecasting.predictor import Predictor
    from forecasting.schema import validate_history

    history, test = _split(path, horizon)
    t = time.perf_counter()
    frame, _ = validate_history(history)
    panel, _ = clean(frame)
    codes = np.zeros(panel.n_series, dtype=np.int32)
    X = features.DEFAULT.training_matrix(to_target(panel.sales, True), panel.offsets,
                                         panel.dates(panel.day), panel.onpromotion, codes, codes)
    featurize = time.perf_counter() - t
    del X, frame, panel
    hp = {**{k: str(v) for k, v in XGB.items()}, "num_round": str(rounds),
          "early_stopping_rounds": str(rounds), "nthread": str(nthread),
          "horizon": str(horizon)}
    columns = (test["date"].to_numpy(), test["store_nbr"].to_numpy(), test["family"].to_numpy(),
               test["onpromotion"].to_numpy())
    t = time.perf_counter()
    model = training.train(history, {**hp, "refit": "false"}, log=lambda _: None)
    fit = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        held_out = Predictor.load(model.save(Path(tmp) / "held-out")).predict_columns(*columns)
    del model
    t = time.perf_counter()
    model = training.train(history, hp, log=lambda _: None)   # the default: with the refit
    train_default = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        model.save(keep_dir or tmp)
        del model
        predictor = Predictor.load(keep_dir or tmp)
        predict, forecast = _best_of(3, lambda: predictor.predict_columns(*columns))
        floor = predict_floor(predictor, columns)
    actual = test["sales"].to_numpy()
    return {"featurize_s": featurize, "featurize_fit_s": fit, "train_default_s": train_default,
            "predict_s": predict, "predict_floor_s": floor, "rmsle": _rmsle(forecast, actual),
            "rmsle_held_out_fit": _rmsle(held_out, actual)}


def predict_floor(predictor, columns) -> float:
    """The XGBoost floor of a bulk predict: one ``inplace_predict`` of the served booster (one
    thread, as served) on the very feature rows the recursive forecast of ``columns`` hands the
    trees (unknown lags filled), series by series (the layout the trees walk fastest); best of
    3 seconds. (Until this floor, the matrix was the history's last days with every store and
    family code 0: rows the trees walk faster than real ones, so floor / ours read low.)"""
    from bench.predict_bench import tree_rows

    member = predictor.members["xgboost"]
    rows = tree_rows(predictor, columns)
    seconds, _ = _best_of(3, lambda: member.booster.inplace_predict(
        rows, iteration_range=(0, member.best_iteration + 1), validate_features=False))
    return seconds


def _best_of(times: int, call):
    """(the fastest of ``times`` calls in seconds, its result)."""
    best, out = float("inf"), None
    for _ in range(times):
        t = time.perf_counter()
        out = call()
        best = min(best, time.perf_counter() - t)
    return best, out


def peer_long(frame: pd.DataFrame, with_y: bool) -> pd.DataFrame:
    """Rows in mlforecast's long format (``unique_id``, ``ds``, ``onpromotion``; with ``y`` and
    the static categoricals for history)."""
    out = pd.DataFrame({
        "unique_id": frame["store_nbr"].astype(str) + "/" + frame["family"].astype(str),
        "ds": pd.to_datetime(frame["date"]),
        "onpromotion": frame["onpromotion"].astype("int32"),
    })
    if with_y:
        out["y"] = frame["sales"].astype("float64")
        out["store_nbr"] = frame["store_nbr"].astype("category")
        out["family"] = frame["family"].astype("category")
    return out.sort_values(["unique_id", "ds"]).reset_index(drop=True)


def peer_frames(path: str, horizon: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """mlforecast's long format: (history with y, future rows, the test rows as read)."""
    history, test = _split(path, horizon)
    return peer_long(history, True), peer_long(test, False), test


def peer_fill(frame: pd.DataFrame) -> pd.DataFrame:
    """mlforecast needs gap-free series: add the missing days (Dec 25) with zero sales, as our
    cleaning does. Timed as part of the peer's featurize and fit."""
    from utilsforecast.preprocessing import fill_gaps
    full = fill_gaps(frame[["unique_id", "ds"]], freq="D", start="per_serie", end="global")
    full = full.merge(frame, on=["unique_id", "ds"], how="left")
    full[["y", "onpromotion"]] = full[["y", "onpromotion"]].fillna(0)
    static = frame.drop_duplicates("unique_id").set_index("unique_id")
    for col in ("store_nbr", "family"):
        full[col] = pd.Categorical(full["unique_id"].map(static[col]).astype(str)
                                   if col == "family" else full["unique_id"].map(
                                       static[col]).astype(int),
                                   categories=frame[col].cat.categories)
    return full


#: The peers' learners (``peer_forecaster``): XGBoost with our settings, and LightGBM with
#: the settings a short mlforecast script would use, on log1p(sales) or with a Tweedie
#: objective on units (M5's winners' variance power, 1.1).
PEER_MODELS = ("xgboost", "lightgbm", "lightgbm_tweedie")
LGBM = {"learning_rate": 0.05, "num_leaves": 63, "subsample": 0.8, "subsample_freq": 1,
        "colsample_bytree": 0.8, "random_state": 42, "verbosity": -1}


def peer_forecaster(rounds: int, nthread: int, model: str = "xgboost"):
    """An MLForecast with the same lags, rolling means, calendar, promotions and categoricals
    as ours, and ``model`` (``PEER_MODELS``) as its learner, named "model" in its answers."""
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from mlforecast.target_transforms import GlobalSklearnTransformer
    from sklearn.preprocessing import FunctionTransformer

    if model == "xgboost":
        import xgboost as xgb

        learner = xgb.XGBRegressor(
            n_estimators=rounds, learning_rate=XGB["eta"], max_depth=XGB["max_depth"],
            subsample=XGB["subsample"], colsample_bytree=XGB["colsample_bytree"],
            min_child_weight=XGB["min_child_weight"], max_bin=XGB["max_bin"],
            max_cat_to_onehot=XGB["max_cat_to_onehot"], tree_method="hist",
            enable_categorical=True, n_jobs=nthread, random_state=XGB["seed"])
    elif model in ("lightgbm", "lightgbm_tweedie"):
        import lightgbm as lgb

        tweedie = ({"objective": "tweedie", "tweedie_variance_power": 1.1}
                   if model == "lightgbm_tweedie" else {})
        learner = lgb.LGBMRegressor(n_estimators=rounds, n_jobs=nthread, **LGBM, **tweedie)
    else:
        raise ValueError(f"unknown peer model {model!r} (known: {', '.join(PEER_MODELS)})")
    log1p = [GlobalSklearnTransformer(FunctionTransformer(np.log1p, np.expm1))]
    return MLForecast(
        models={"model": learner}, freq="D", lags=[1, 7, 14],
        lag_transforms={1: [RollingMean(window_size=7), RollingMean(window_size=14)]},
        date_features=["dayofweek", "month", "year"],
        target_transforms=[] if model == "lightgbm_tweedie" else log1p, num_threads=nthread)


def peer_join(test: pd.DataFrame, out: pd.DataFrame) -> pd.DataFrame:
    """mlforecast's answers in the order of the test rows."""
    key = test["store_nbr"].astype(str) + "/" + test["family"].astype(str)
    return pd.DataFrame({"unique_id": key, "ds": pd.to_datetime(test["date"])}).merge(
        out, on=["unique_id", "ds"], how="left")


def peer(path: str, horizon: int, rounds: int, nthread: int) -> dict:
    """mlforecast with the same lags, rolling means, calendar, promotions and categoricals."""
    raw_df, future, test = peer_frames(path, horizon)
    t = time.perf_counter()
    peer_forecaster(rounds, nthread).preprocess(peer_fill(raw_df),
                                                static_features=["store_nbr", "family"])
    featurize = time.perf_counter() - t
    fcst = peer_forecaster(rounds, nthread)
    t = time.perf_counter()
    fcst.fit(peer_fill(raw_df), static_features=["store_nbr", "family"])
    fit = time.perf_counter() - t
    t = time.perf_counter()
    out = fcst.predict(h=horizon, X_df=future)
    predict = time.perf_counter() - t
    joined = peer_join(test, out)
    return {"featurize_s": featurize, "featurize_fit_s": fit, "predict_s": predict,
            "rmsle": _rmsle(joined["model"].to_numpy(), test["sales"].to_numpy())}


def baseline(path: str, horizon: int) -> float:
    """RMSLE of the seasonal-naive forecast (same weekday, last week of the history)."""
    history, test = _split(path, horizon)
    last_week = history[history["date"] >= sorted(history["date"].unique())[-7]]
    dow = pd.to_datetime(last_week["date"]).dt.dayofweek
    value = pd.Series(last_week["sales"].to_numpy(), index=pd.MultiIndex.from_arrays(
        [last_week["store_nbr"], last_week["family"], dow]))
    keys = pd.MultiIndex.from_arrays([test["store_nbr"], test["family"],
                                      pd.to_datetime(test["date"]).dt.dayofweek])
    return _rmsle(value.reindex(keys).fillna(0).to_numpy(), test["sales"].to_numpy())


def _rmsle(forecast: np.ndarray, actual: np.ndarray) -> float:
    f = np.clip(np.nan_to_num(np.asarray(forecast, dtype=float)), 0, None)
    return float(np.sqrt(np.mean((np.log1p(f) - np.log1p(actual)) ** 2)))


def run(frame: pd.DataFrame, rounds: int = 100, horizon: int = 16, nthread: int = 2,
        keep_dir: str | None = None) -> dict:
    """Both sides on ``frame``; JSON-ready numbers and the ratios ours / peer."""
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "data.parquet")
        frame.to_parquet(path, index=False)
        result = {"rows": len(frame), "series": int(frame.groupby(
            ["store_nbr", "family"]).ngroups), "rounds": rounds, "horizon": horizon,
                  "ours": run_in_child(ours, path, horizon, rounds, nthread, keep_dir),
                  "mlforecast": run_in_child(peer, path, horizon, rounds, nthread),
                  "baseline_rmsle": baseline(path, horizon)}
    result["ratio"] = {k: result["ours"][k] / result["mlforecast"][k]
                       for k in ("featurize_s", "featurize_fit_s", "predict_s", "peak_rss_mb",
                                 "rmsle")}
    return result


def markdown(result: dict) -> str:
    """The table for docs/benchmarks.md."""
    rows = [("featurize (s)", "featurize_s", "{:.2f}"),
            ("featurize + fit, one fit each (s)", "featurize_fit_s", "{:.1f}"),
            (f"predict {result['horizon']} days, all series (s)", "predict_s", "{:.3f}"),
            ("peak memory (MB)", "peak_rss_mb", "{:.0f}"), ("RMSLE", "rmsle", "{:.4f}")]
    lines = [(f"{result['rows']:,} rows, {result['series']:,} series, {result['rounds']} "
             f"boosting rounds, horizon {result['horizon']}."), "",
             "| measure | ours | mlforecast | ours / mlforecast |", "| --- | ---: | ---: | ---: |"]
    for label, key, fmt in rows:
        lines.append(f"| {label} | {fmt.format(result['ours'][key])} | "
                     f"{fmt.format(result['mlforecast'][key])} | {result['ratio'][key]:.2f} |")
    ours = result["ours"]
    lines += [
        (f"| ours as served by default: fit, evaluate, refit on all history (s) | "
        f"{ours['train_default_s']:.1f} | | |"),
        (f"| RMSLE of ours without the refit (the evaluated fit) | "
        f"{ours['rmsle_held_out_fit']:.4f} | | |"),
        (f"| the XGBoost floor of that predict: one `inplace_predict` of the same rows, one "
         f"thread (s) | {ours['predict_floor_s']:.3f} | | floor / ours: "
         f"{ours['predict_floor_s'] / ours['predict_s']:.2f} |"),
        f"| RMSLE of the seasonal-naive baseline | {result['baseline_rmsle']:.4f} | | |"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="4 stores x 5 families")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    frame = bench_frame(args.small)
    result = run(frame, rounds=args.rounds)
    print(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
