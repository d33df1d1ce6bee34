"""The bulk predict beside its XGBoost floor, and where its time goes, in one process.

For two requests of the served model (every series x 16 days, the usual forecast; every series
x 281 days, about 500,000 rows), interleaved rounds, best of ROUNDS each:

- ours: ``Predictor.predict_columns`` on one thread, as served;
- before the reorder: the recursion alone (no request to lay out, no gather) with the series
  in the history's order (the order the forecast walked them in before
  ``forecasting.models.recursion`` sorted them);
- the one-thread floor: one ``inplace_predict`` of exactly the feature rows our forecast hands
  the trees (captured from it, unknown lags filled), laid out series by series as a training
  matrix is (the order the trees walk fastest) and, beside it, day by day;
- where ours spends its time: laying out the request (``build_grid``), the trees (the
  forecast's own ``inplace_predict`` calls, one a day, timed alone), the recursion's own work
  (timed with the trees' answers replayed), the answers' gather;
- all cores: ours with ``WideForecasts`` (series split across ``os.cpu_count()`` threads)
  against one ``inplace_predict`` of the same rows with ``nthread`` = all cores;
- the crossover that sets ``--wide-predict-series``: one thread against the split at growing
  numbers of series, 16 days each.

The forecasts on all cores and in the history's order are checked against ours (bitwise, as
``same_numbers``: a row's prediction depends on its own features only).

    python -m bench.predict_bench [--model-dir DIR] [--small]

Without --model-dir a model is trained on ``bench_frame`` (as ``bench.forecast_bench`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

ROUNDS = 5
LONG_DAYS = 281            # 1,782 series x 281 days = 500,742 rows
CROSSOVER_SERIES = (64, 128, 256, 512, 1024)


class _Capture:
    """An XGBoost member that keeps the feature rows each day hands the trees."""

    def __init__(self, member):
        self.member, self.rows = member, []
        self.lookback, self.log_target = member.lookback, member.log_target
        self.features = member.features

    def predict_features(self, matrix, copy=True):
        out = self.member.predict_features(matrix, copy)
        self.rows.append(np.array(matrix))    # filled in place: what the trees read
        return out


class _Replay:
    """An XGBoost member that answers each day with what the trees answered (recorded), so
    the recursion's own work (feature rows, unknown-lag fill, lag buffer) is timed alone."""

    def __init__(self, member, answers: list[np.ndarray]):
        self.member, self.answers, self.day = member, answers, 0
        self.lookback, self.log_target = member.lookback, member.log_target
        self.features = member.features

    def predict_features(self, matrix, copy=True):
        from forecasting.models.xgboost_member import fill_unknown

        if self.member.unknown_value is not None:
            fill_unknown(matrix, self.member.unknown_value, self.features.n_history, copy)
        self.day += 1
        return self.answers[(self.day - 1) % len(self.answers)]


def _columns(predictor, days: int) -> tuple[np.ndarray, ...]:
    """The request columns of every series x ``days`` (as the gateway passes them)."""
    rows = predictor.future_rows(days)
    return (rows["date"].to_numpy().astype("datetime64[D]"), rows["store_nbr"].to_numpy(),
            rows["family"].to_numpy(dtype=str), rows["onpromotion"].to_numpy())


def _first_series(predictor, n: int, days: int):
    """The ForecastInput of the model's first ``n`` series x ``days``, no promotions."""
    from forecasting.history import ForecastInput

    s = np.arange(len(predictor.history.store_nbr))[:n]
    dates = predictor.last_date + np.arange(1, days + 1).astype("timedelta64[D]")
    return ForecastInput(predictor.history.sales[s], predictor.history.promo[s],
                         predictor.store_code[s], predictor.family_code[s], dates,
                         np.zeros((len(s), days), dtype=np.int32))


def _captured(member, inp, order: np.ndarray | None = None) -> list[np.ndarray]:
    """The feature rows of each day, in our order (or ``order``)."""
    from forecasting.models import recursion
    from forecasting.models.base import to_target

    capture = _Capture(member)
    if order is None:
        recursion.recursive_forecast(capture, inp)
    else:
        start = to_target(inp.sales[:, -member.lookback:], member.log_target)
        recursion.forecast_series(capture, inp, start, order)
    return capture.rows


def tree_rows(predictor, columns, by_series: bool = True) -> np.ndarray:
    """The feature rows the recursive forecast of the request ``columns`` hands the trees
    (unknown lags filled), as one float32 matrix: series by series (each series' days
    together, as a training matrix is laid out), or day by day in the forecast's order."""
    grid, _ = predictor.forecast_grid(*columns)
    rows = _captured(predictor.members["xgboost"], _grid_input(predictor, grid))
    by_day = np.ascontiguousarray(np.concatenate(rows))
    if not by_series:
        return by_day
    n, width = rows[0].shape
    return np.ascontiguousarray(by_day.reshape(len(rows), n, width).transpose(1, 0, 2)
                                .reshape(len(rows) * n, width))


def _best(calls: dict, rounds: int = ROUNDS) -> dict[str, float]:
    """The fastest of ``rounds`` interleaved runs of each call, in seconds."""
    best = {name: float("inf") for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            t = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def measure(predictor, days: int, cores: int) -> dict:
    """One request of every series x ``days``: ours, its floor and its phases (module doc)."""
    from forecasting.forecast import build_grid, gather
    from forecasting.models import recursion
    from forecasting.models.base import to_target
    from forecasting.wide import WideForecasts

    member = predictor.members["xgboost"]
    cols = _columns(predictor, days)
    grid, forecasts = predictor.forecast_grid(*cols)
    one = predictor.predict_columns(*cols)
    inp = _grid_input(predictor, grid)
    ours_rows = _captured(member, inp)
    history_rows = _captured(member, inp, np.arange(inp.n_series))
    n = ours_rows[0].shape[0]
    by_day = tree_rows(predictor, cols, by_series=False)
    by_series = tree_rows(predictor, cols)
    it = (0, member.best_iteration + 1)
    booster = member.booster
    all_cores = booster.copy()
    all_cores.set_param({"nthread": cores})
    wide = WideForecasts(cores, 1)
    start = to_target(inp.sales[:, -member.lookback:], member.log_target)
    before = recursion.forecast_series(member, inp, start, np.arange(inp.n_series))

    def trees(rows):
        return lambda: [booster.inplace_predict(x, iteration_range=it, validate_features=False)
                        for x in rows]

    replay = _Replay(member, trees(ours_rows)())

    calls = {
        "ours_s": lambda: predictor.predict_columns(*cols),
        "ours_history_order_s": lambda: recursion.forecast_series(
            member, inp, start, np.arange(inp.n_series)),
        "floor_s": lambda: booster.inplace_predict(by_series, iteration_range=it,
                                                   validate_features=False),
        "floor_day_by_day_layout_s": lambda: booster.inplace_predict(
            by_day, iteration_range=it, validate_features=False),
        "grid_s": lambda: build_grid(predictor.lookup, predictor.last_date, *cols),
        "trees_s": trees(ours_rows),
        "trees_history_order_s": trees(history_rows),
        "gather_s": lambda: gather(grid, forecasts),
        "features_s": lambda: recursion.recursive_forecast(replay, inp),
        "ours_all_cores_s": lambda: predictor.predict_columns(*cols, wide=wide),
        "floor_all_cores_s": lambda: all_cores.inplace_predict(
            by_series, iteration_range=it, validate_features=False),
    }
    try:
        best = _best(calls)
        same = bool(np.array_equal(predictor.predict_columns(*cols, wide=wide), one)
                    and np.array_equal(before, forecasts))
    finally:
        wide.close()
    best["other_s"] = best["ours_s"] - sum(best[k] for k in ("grid_s", "trees_s", "gather_s",
                                                              "features_s"))
    return {"days": days, "rows": len(cols[0]), "tree_rows": int(by_day.shape[0]),
            "series": n, "cores": cores, "same_numbers": same,
            **{k: round(v, 5) for k, v in best.items()},
            "floor_over_ours": round(best["floor_s"] / best["ours_s"], 3),
            "all_cores_floor_over_ours": round(best["floor_all_cores_s"]
                                               / best["ours_all_cores_s"], 3)}


def _grid_input(predictor, grid):
    """The ForecastInput ``Predictor.forecast_grid`` builds for ``grid``."""
    from forecasting.history import ForecastInput

    s = grid.series
    dates = predictor.last_date + np.arange(1, grid.horizon + 1).astype("timedelta64[D]")
    return ForecastInput(predictor.history.sales[s], predictor.history.promo[s],
                         predictor.store_code[s], predictor.family_code[s], dates, grid.promo)


def crossover(predictor, cores: int, days: int = 16) -> list[dict]:
    """One thread against the split across ``cores`` threads, at growing numbers of series."""
    from forecasting.models import recursion
    from forecasting.wide import WideForecasts

    member = predictor.members["xgboost"]
    wide = WideForecasts(cores, 1)
    out = []
    try:
        total = len(predictor.history.store_nbr)
        for n in sorted({min(n, total) for n in (*CROSSOVER_SERIES, total)}):
            inp = _first_series(predictor, n, days)
            with wide.lend(n) as (threads, pool):
                best = _best({
                    "one_thread_s": partial(recursion.recursive_forecast, member, inp),
                    "split_s": partial(recursion.recursive_forecast, member, inp, threads, pool)})
            out.append({"series": inp.n_series, **{k: round(v, 5) for k, v in best.items()},
                        "speedup": round(best["one_thread_s"] / best["split_s"], 2)})
    finally:
        wide.close()
    return out


def run(model_dir: str) -> dict:
    """Both requests and the crossover for the model in ``model_dir``."""
    from forecasting.predictor import Predictor

    predictor = Predictor.load(model_dir)
    cores = os.cpu_count() or 1
    return {"cores": cores, "requests": [measure(predictor, 16, cores),
                                         measure(predictor, LONG_DAYS, cores)],
            "crossover": crossover(predictor, cores)}


def markdown(r: dict) -> str:
    """The section of docs/benchmarks.md."""
    lines = ["| measure (s) | " + " | ".join(
                f"{q['series']:,} series x {q['days']} days ({q['rows']:,} rows)"
                for q in r["requests"]) + " |",
             "| --- |" + " ---: |" * len(r["requests"])]
    rows = [("ours, one thread (as served)", "ours_s"),
            ("the recursion alone, the series in the history's order (before)",
             "ours_history_order_s"),
            ("floor: one `inplace_predict` of the same rows, one thread", "floor_s"),
            ("the same rows laid out day by day, one call", "floor_day_by_day_layout_s"),
            ("- of ours: laying out the request (`build_grid`)", "grid_s"),
            ("- of ours: the trees (one `inplace_predict` a day)", "trees_s"),
            ("- the same calls, the series in the history's order", "trees_history_order_s"),
            ("- of ours: each day's feature rows, unknown-lag fill, lag buffer (trees replayed)",
             "features_s"),
            ("- of ours: the answers' gather", "gather_s"),
            ("- of ours: anything else (ours minus the parts above; noise when < 0)", "other_s"),
            (f"ours on all cores ({r['cores']} threads, series split)", "ours_all_cores_s"),
            (f"all-cores floor: one `inplace_predict`, nthread={r['cores']}",
             "floor_all_cores_s")]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(f"{q[key]:.4f}" for q in r["requests"]) + " |")
    lines.append("| **floor / ours, one thread** | " + " | ".join(
        f"**{q['floor_over_ours']:.2f}**" for q in r["requests"]) + " |")
    lines.append("| **all-cores floor / ours on all cores** | " + " | ".join(
        f"**{q['all_cores_floor_over_ours']:.2f}**" for q in r["requests"]) + " |")
    lines += ["", (f"Splitting the series across {r['cores']} threads against one thread, "
                   "16 days (what sets `--wide-predict-series`):"), "",
              "| series | one thread (s) | split (s) | speed-up |", "| ---: | ---: | ---: | ---: |"]
    lines += [f"| {c['series']:,} | {c['one_thread_s']:.4f} | {c['split_s']:.4f} | "
              f"{c['speedup']:.2f} |" for c in r["crossover"]]
    return "\n".join(lines)


def _train(directory: Path, small: bool) -> str:
    """A model of ``bench_frame`` with the benchmarks' settings (the served default)."""
    from bench.child import bench_frame
    from bench.forecast_bench import XGB
    from forecasting import training

    hp = {**{k: str(v) for k, v in XGB.items()}, "num_round": "100",
          "early_stopping_rounds": "100", "horizon": "16"}
    training.train(bench_frame(small), hp, log=lambda _: None).save(directory)
    return str(directory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="a model artifact (default: train one)")
    parser.add_argument("--small", action="store_true", help="train on 4 stores x 5 families")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="predict-bench-") as tmp:
        result = run(args.model_dir or _train(Path(tmp) / "model", args.small))
    print(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
