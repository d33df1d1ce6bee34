"""What the refit buys and costs: each ``refit_method`` beside serving the evaluated fit as is.

The refit exists so the served model has seen the latest days. This measures, on the same first
fit, the cost of each way of showing it those days and the accuracy on days no fit has seen:
the last ``horizon`` days of the data are held out, the library trains on the rest exactly as a
job does (split, early stopping on validation), and every candidate forecasts the held-out
days recursively from the end of the history:

- ``none``: the evaluated fit itself (``refit=false``);
- ``full``: ``best_iteration + 1`` rounds regrown on all history (the matrix reuses the first
  fit's quantile cuts);
- ``refresh``: the same trees, leaf values recomputed on all history (the fit's rows through
  its stored sums); as shipped (at most ``refresh_rows`` rows read), reading every row, and
  reading only the latest days (no sample of the fit's rows);
- ``continue``: ``refit_rounds`` more trees boosted on the 2 x horizon days after the train end.

It also reads, from the same validation curve, what a shorter early-stopping patience would
have chosen (rounds and held-out RMSLE), which costs nothing to measure.

Datasets: the competition-scale synthetic set, and the same with a level shift over the last
six weeks (half the stores sell 1.5x), where seeing the latest days matters.

    python -m bench.refit_bench [--scale full|mid|small] [--sets synthetic,level_shift]
    python -m bench.refit_bench --file DIR/15m/all.parquet --candidates refresh,refresh_latest_only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.child import run_in_child

# name -> the refit's hyperparameters
CANDIDATES = {
    "full": {"refit_method": "full"},
    "refresh": {"refit_method": "refresh"},
    "refresh_every_row": {"refit_method": "refresh", "refresh_rows": "0"},
    "refresh_latest_only": {"refit_method": "refresh", "refresh_rows": "1"},
    "continue_10": {"refit_method": "continue", "refit_rounds": "10"},
    "continue_20": {"refit_method": "continue", "refit_rounds": "20"},
    "continue_40": {"refit_method": "continue", "refit_rounds": "40"},
}
SHIFT = (42, 1.5)
PATIENCES = (10, 20, 30, 50)
SCALES = {"full": (), "mid": (12, 33, "2015-01-01"), "small": (4, 5, "2015-01-01")}


def measure(path: str, horizon: int, nthread: int, names: tuple[str, ...] = tuple(CANDIDATES),
            patience: bool = True) -> dict:
    """In a child: one first fit, then each candidate in ``names`` from it; seconds, rows read
    and held-out RMSLE (and, with ``patience``, what shorter patiences would have chosen)."""
    from forecasting import training
    from forecasting.cleaning import clean
    from forecasting.history import panel_forecast_input, panel_window
    from forecasting.hyperparameters import parse
    from forecasting.models.xgboost_member import XGBoostMember
    from forecasting.schema import read_table, validate_history

    frame = validate_history(read_table(path))[0]
    full_panel, _ = clean(frame)
    history_end = full_panel.last_day - horizon
    hp = parse({"nthread": str(nthread), "horizon": str(horizon)})
    last = full_panel.origin + np.timedelta64(history_end, "D")
    panel, _ = clean(frame[frame["date"].to_numpy() <= last].reset_index(drop=True))
    del frame
    assert np.array_equal(panel.store_nbr, full_panel.store_nbr) and np.array_equal(
        panel.family, full_panel.family), "the held-out days add or drop no series"
    data, _ = training.training_data(panel, hp, lambda _: None, lambda *_: None)
    actual = np.nan_to_num(panel_window(full_panel, full_panel.last_day, horizon)[0])
    inp = panel_forecast_input(full_panel, history_end, horizon, XGBoostMember().lookback,
                               data.store_code, data.family_code)

    def rmsle(member: XGBoostMember) -> float:
        return float(np.sqrt(np.mean((np.log1p(member.forecast(inp)) - np.log1p(actual)) ** 2)))

    first = XGBoostMember()
    t = time.perf_counter()
    summary = first.fit(dataclasses.replace(data, log=lambda _: None))
    out: dict = {"first_fit_s": time.perf_counter() - t, "first_fit": summary,
                 "candidates": {"none": {"seconds": 0.0, "rmsle": rmsle(first),
                                         "rows_read": 0}}}
    cuts = first._cuts   # each candidate starts from the same first fit and its cuts
    for name in names:
        extra = CANDIDATES[name]
        first._cuts = cuts
        hp_m = parse({"nthread": str(nthread), "horizon": str(horizon), **extra})
        t = time.perf_counter()
        member, summary = first.refit(dataclasses.replace(data, split=data.split.everything(),
                                                          hp=hp_m))
        seconds = time.perf_counter() - t
        out["candidates"][name] = {"seconds": seconds, "rmsle": rmsle(member),
                                   "rows_read": summary["train_rows"]}
    first._cuts = cuts
    if patience:
        out["patience"] = _patience(first, data, rmsle)
    return out


def _patience(first, data, rmsle) -> dict:
    """Early stopping with a shorter patience, read off the first fit's validation curve."""
    from forecasting.models.xgboost_member import XGBoostMember, _matrix, _target

    _, valid, _ = data.split.masks(data.panel.day)
    dvalid = _matrix(data, _target(data.panel.sales, True), valid, ref=first._cuts)
    n = first.booster.num_boosted_rounds()
    curve = _curve(first.booster, dvalid, n)
    out = {}
    for p in PATIENCES:
        best, since = 0, 0
        for i in range(1, n):
            if curve[i] < curve[best]:
                best, since = i, 0
            else:
                since += 1
                if since >= p:
                    break
        member = XGBoostMember(first.booster, True, best)
        out[str(p)] = {"best_iteration": best, "rounds_run": min(best + p + 1, n),
                       "rmsle": rmsle(member)}
    return out


def _curve(booster, dvalid, n: int) -> list[float]:
    """Validation RMSE after each round (target scale)."""
    label = dvalid.get_label()
    return [float(np.sqrt(np.mean((booster.predict(dvalid, iteration_range=(0, i + 1))
                                   - label) ** 2))) for i in range(n)]


def run(scale: str = "full", horizon: int = 16, nthread: int = 2,
        names: tuple[str, ...] = ("synthetic", "level_shift"),
        candidates: tuple[str, ...] = tuple(CANDIDATES), file: str | None = None) -> dict:
    """The candidates on the synthetic sets, or on one history ``file`` (no patience table:
    reading the curve costs a prediction per round)."""
    from forecasting import synthetic

    if file is not None:
        result = {"horizon": horizon, "file": {
            "path": file, **run_in_child(measure, file, horizon, nthread, candidates, False)}}
        print(json.dumps(result, indent=2), flush=True)
        return result

    sets = {k: v for k, v in {"synthetic": {}, "level_shift": {"level_shift": SHIFT}}.items()
            if k in names}
    result: dict = {"horizon": horizon, "shift": {"days": SHIFT[0], "factor": SHIFT[1]}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in sets.items():
            frame = synthetic.generate(*SCALES[scale], **extra)
            path = str(Path(tmp) / f"{name}.parquet")
            frame.to_parquet(path, index=False)
            result[name] = {"rows": len(frame),
                            **run_in_child(measure, path, horizon, nthread, candidates)}
            print(json.dumps({name: result[name]}, indent=2), flush=True)
    return result


def markdown(result: dict) -> str:
    """The table for docs/benchmarks.md."""
    names = list(result["synthetic"]["candidates"])
    lines = [("| refit | synthetic: seconds | synthetic: held-out RMSLE | level shift: seconds | "
              "level shift: held-out RMSLE |"), "| --- | ---: | ---: | ---: | ---: |"]
    for n in names:
        a, b = result["synthetic"]["candidates"][n], result["level_shift"]["candidates"][n]
        lines.append(f"| {n} ({a['rows_read']:,} rows read) | {a['seconds']:.1f} | "
                     f"{a['rmsle']:.4f} | {b['seconds']:.1f} | {b['rmsle']:.4f} |")
    lines += ["", ("| early-stopping patience | synthetic: best / run | synthetic: RMSLE | "
                   "level shift: best / run | level shift: RMSLE |"),
              "| --- | ---: | ---: | ---: | ---: |"]
    for p in result["synthetic"]["patience"]:
        a, b = result["synthetic"]["patience"][p], result["level_shift"]["patience"][p]
        lines.append(f"| {p} | {a['best_iteration'] + 1} / {a['rounds_run']} | {a['rmsle']:.4f}"
                     f" | {b['best_iteration'] + 1} / {b['rounds_run']} | {b['rmsle']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=tuple(SCALES), default="full",
                   help="full: 3,000,888 rows; mid: 12 stores x 33 families since 2015; "
                        "small: 4 x 5")
    p.add_argument("--json", help="write the result here")
    p.add_argument("--sets", default="synthetic,level_shift")
    p.add_argument("--candidates", default=",".join(CANDIDATES),
                   help="refits to measure (default: all)")
    p.add_argument("--file", help="measure this history file (Parquet or CSV) instead of the "
                                  "synthetic sets, e.g. bench.scale_bench's kept 15m/all.parquet")
    a = p.parse_args()
    candidates = tuple(a.candidates.split(","))
    unknown = sorted(set(candidates) - set(CANDIDATES))
    if unknown:
        p.error(f"unknown candidates {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}")
    result = run(a.scale, names=tuple(a.sets.split(",")), candidates=candidates, file=a.file)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))
    if "synthetic" in result and "level_shift" in result:
        print(markdown(result))


if __name__ == "__main__":
    main()
