"""Rolling-origin backtests: accuracy as a distribution over windows, not one number.

``backtest(source, hyperparameters, n_windows, step)`` cuts the history at ``n_windows``
origins, ``step`` days apart, the last window ending on the data's last day. For each origin
it trains the default job (``training.train``: fit, evaluate, calibrate, refit) on the rows up
to the origin, exactly as a retailer's job would run on that day, and forecasts the next
``horizon`` days of every series the model serves, with the window's own ``onpromotion`` (as
``Predictor.predict_intervals`` answers a request). Nothing of a window is seen by its model.

The cells (one per series and window day) carry what scoring needs beside the forecast and
the bounds: the series' MASE scale and its volume third, both from the history before the
origin. ``score`` turns cells into the summary, the same way for any forecaster, so a peer's
forecasts (``bench/real_bench.py``) are scored by the same code.

Definitions (docs/models.md, "Backtests"):
- volume: a series' mean daily sales over the ``history.VOLUME_DAYS`` days up to the origin
  (days before it began count as 0); thirds by rank over the window's series (low, mid, high);
- MASE scale: ``metrics.seasonal_scale`` over the series' history before the origin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting import metrics
from forecasting.cleaning import clean
from forecasting.history import THIRDS, recent_volume, thirds_of
from forecasting.schema import Source, read_table, validate_history


@dataclass(frozen=True)
class Window:
    """One backtest window: the model sees days up to ``origin``; it is scored on the
    ``horizon`` days after it."""

    index: int
    origin: np.datetime64
    horizon: int

    @property
    def first(self) -> np.datetime64:
        return self.origin + np.timedelta64(1, "D")

    @property
    def last(self) -> np.datetime64:
        return self.origin + np.timedelta64(self.horizon, "D")


def windows(last_date, n_windows: int, horizon: int, step: int | None = None) -> list[Window]:
    """``n_windows`` windows of ``horizon`` days, origins ``step`` (default ``horizon``) days
    apart, the last one ending on ``last_date``; oldest first."""
    step = horizon if step is None else step
    if n_windows < 1 or horizon < 1 or step < 1:
        raise ValueError(f"n_windows, horizon and step must be >= 1, got {n_windows}, "
                         f"{horizon}, {step}")
    last = np.datetime64(last_date, "D")
    return [Window(i, last - np.timedelta64(horizon + step * (n_windows - 1 - i), "D"), horizon)
            for i in range(n_windows)]


def series_context(history: pd.DataFrame, origin: np.datetime64) -> pd.DataFrame:
    """Per series of ``history`` (validated rows up to ``origin``): store_nbr, family, the MASE
    scale, the volume and its third (module docstring). Series that never sold have scale
    NaN and volume 0."""
    panel, _ = clean(history)
    origin_day = int((np.datetime64(origin, "D") - panel.origin).astype(np.int64))
    frame = pd.DataFrame({"store_nbr": panel.store_nbr.astype(np.int64),
                          "family": panel.family.astype(str),
                          "scale": metrics.seasonal_scale(panel.sales, panel.offsets,
                                                          panel.day <= origin_day),
                          "volume": recent_volume(panel, origin_day)})
    zero = pd.DataFrame({"store_nbr": panel.zero_series["store_nbr"].astype(np.int64),
                         "family": panel.zero_series["family"].astype(str),
                         "scale": np.nan, "volume": 0.0})
    frame = pd.concat([frame, zero], ignore_index=True)
    frame["third"] = thirds_of(frame["volume"].to_numpy())
    return frame


@dataclass
class BacktestResult:
    """Every cell of every window, and the summary ``score`` made of them."""

    cells: pd.DataFrame
    summary: dict
    windows: list[Window]


def backtest(source: Source, hyperparameters: dict | None = None, *, n_windows: int = 4,
             step: int | None = None, levels: Iterable[float] = (80.0,),
             log: Callable[[str], None] = lambda _: None) -> BacktestResult:
    """Train and forecast at each origin (module docstring); cells and their summary."""
    from forecasting import training
    from forecasting.hyperparameters import parse
    from forecasting.predictor import Predictor

    hp = parse(hyperparameters)
    frame, _ = validate_history(read_table(source))
    dates = frame["date"].to_numpy().astype("datetime64[D]")
    levels = [float(v) for v in levels]
    cuts = windows(dates.max(), n_windows, hp.horizon, step)
    cells = []
    for window in cuts:
        history = frame[dates <= window.origin].reset_index(drop=True)
        future = frame[(dates > window.origin) & (dates <= window.last)].reset_index(drop=True)
        model = training.train(history, hp, log=log)
        predictor = Predictor.from_trained(model)
        point, bounds = predictor.predict_intervals(
            future["date"].to_numpy(), future["store_nbr"].to_numpy(),
            future["family"].astype(str).to_numpy(), future["onpromotion"].to_numpy(), levels)
        cell = pd.DataFrame({"window": window.index,
                             "date": future["date"].to_numpy().astype("datetime64[D]"),
                             "store_nbr": future["store_nbr"].to_numpy().astype(np.int64),
                             "family": future["family"].astype(str).to_numpy(),
                             "actual": future["sales"].to_numpy(dtype=np.float64),
                             "forecast": point})
        for level, (lower, upper) in bounds.items():
            cell[f"lo-{level:g}"], cell[f"hi-{level:g}"] = lower, upper
        cells.append(with_context(cell, series_context(history, window.origin)))
        log(f"backtest: window {window.index + 1}/{len(cuts)} origin {window.origin}: rmsle "
            f"{metrics.scores(point, cell['actual'].to_numpy())['rmsle']:.4f}")
    table = pd.concat(cells, ignore_index=True)
    return BacktestResult(table, score(table, levels), cuts)


def with_context(cells: pd.DataFrame, context: pd.DataFrame) -> pd.DataFrame:
    """``cells`` with each series' scale, volume and third joined on (store_nbr, family)."""
    keys = ["store_nbr", "family"]
    out = cells.merge(context[[*keys, "scale", "volume", "third"]], on=keys, how="left")
    out["third"] = out["third"].fillna(THIRDS[0])
    return out


def score(cells: pd.DataFrame, levels: Iterable[float] = (80.0,)) -> dict:
    """The summary of backtest cells (columns window, store_nbr, family, actual, forecast,
    scale, third, and ``lo-L``/``hi-L`` per level): every metric over all cells, per window,
    and per level the coverage (overall, per volume third, per family) and the mean interval
    score."""
    dates = pd.to_datetime(cells["date"])
    cells = cells.assign(step=(dates - dates.groupby(cells["window"]).transform("min")).dt.days)

    def point(frame: pd.DataFrame) -> dict:
        grid = frame.pivot_table(index=["window", "store_nbr", "family"], columns="step",
                                 values=["forecast", "actual"], aggfunc="first", sort=True)
        scale = (frame.drop_duplicates(["window", "store_nbr", "family"])
                 .set_index(["window", "store_nbr", "family"])["scale"]
                 .reindex(grid.index).to_numpy())
        f, a = grid["forecast"].to_numpy(), grid["actual"].to_numpy()
        known = np.isfinite(a)
        out = metrics.scores(np.where(known, f, 0.0), np.where(known, a, 0.0), None)
        err = np.where(known, np.abs(f - a), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_series = np.nanmean(err, axis=1) / scale
        ok = np.isfinite(per_series)
        out["mase"] = round(float(per_series[ok].mean()), 6) if ok.any() else None
        out["mean_sales"] = round(float(frame["actual"].mean()), 6)
        out["bias_share"] = (round(out["bias"] / out["mean_sales"], 6)
                             if out["mean_sales"] else None)
        return out

    summary = {"cells": len(cells), "windows": int(cells["window"].nunique()),
               "series": int(cells.groupby(["store_nbr", "family"]).ngroups),
               "overall": point(cells),
               "per_window": {str(int(w)): point(part) for w, part in cells.groupby("window")},
               "intervals": {}}
    for level in levels:
        lo, hi = f"lo-{level:g}", f"hi-{level:g}"
        if lo not in cells.columns:
            continue
        a = cells["actual"].to_numpy()
        inside = (a >= cells[lo].to_numpy() - 1e-9) & (a <= cells[hi].to_numpy() + 1e-9)
        s = metrics.interval_score(cells[lo].to_numpy(), cells[hi].to_numpy(), a, level)
        by_third = pd.Series(inside).groupby(cells["third"].to_numpy()).mean()
        by_family = pd.Series(inside).groupby(cells["family"].to_numpy()).mean()
        summary["intervals"][f"{level:g}"] = {
            "coverage": round(float(inside.mean()), 6),
            "coverage_per_third": {t: round(float(by_third.get(t, np.nan)), 6) for t in THIRDS},
            "coverage_per_family": {str(k): round(float(v), 6) for k, v in by_family.items()},
            "mean_interval_score": round(float(s.mean()), 6),
            "mean_width": round(float((cells[hi] - cells[lo]).mean()), 6),
        }
    return summary
