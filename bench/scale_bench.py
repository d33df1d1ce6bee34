"""Training at a large retailer's scale: our default job beside mlforecast, end to end.

``make bench-scale`` (not part of ``make bench``). Each side runs in its own spawn child
(``bench.child.run_in_child``), so its wall time and peak RSS are its own; sides alternate
(ours, mlforecast, mlforecast, ours, ...) so a busy machine slows both alike:

- ours: ``training.train(<history file>)`` with the default hyperparameters (read, validate,
  clean, fit early-stopped on validation, evaluate, the default refit), then the saved
  artifact forecasts the held-out days (``Predictor.predict_columns``);
- mlforecast: read the same file with pandas, fill the gaps, ``MLForecast.fit`` with XGBoost
  (the same lags, rolling means, calendar, promotions and categoricals, ``--rounds`` rounds,
  eta 0.1, depth 8), ``predict`` the held-out days;
- mlforecast-lightgbm (``--sides ours,mlforecast,mlforecast-lightgbm``): the same with
  LightGBM (``forecast_bench.LGBM``, ``--rounds`` rounds).

Both are scored by RMSLE on the last ``horizon`` days, which neither has seen.

Datasets (``--data``):

- ``3m``: the competition-scale synthetic set (54 stores x 33 families, 3,000,888 rows);
- ``15m``: M5-shaped, 10 stores x 773 items x 1,941 days (15,003,930 rows);
- ``m5``: M5's full shape, 10 stores x 3,049 items x 1,941 days (59,181,090 rows).
- ``small``: 2 stores x 50 items, for a quick look.

    python -m bench.scale_bench --data 3m --repeats 2 --sides ours,mlforecast,mlforecast-lightgbm
    python -m bench.scale_bench --data m5 --sides ours --timeout 10800
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.child import run_in_child

DATASETS = {"3m": None, "15m": (10, 773), "m5": (10, 3049), "small": (2, 50)}
PEER_ROUNDS = 300
#: The peer sides (``--sides``) and their learners.
PEER_SIDES = {"mlforecast": "xgboost", "mlforecast-lightgbm": "lightgbm"}


def write_data(name: str, directory: str, horizon: int) -> dict:
    """The dataset as ``all.parquet`` (the peer splits it itself) plus ``history_h<horizon>.parquet``
    and ``test_h<horizon>.parquet`` (ours; the horizon splits them), written a row group at
    a time so the parent stays small. Files already in ``directory`` (from an earlier run with
    the same ``--data-dir``: the generator is seeded) are reused; the split files take their
    names only once complete, so an interrupted run leaves nothing to reuse by mistake."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from forecasting import synthetic

    full = str(Path(directory) / "all.parquet")
    paths = {"all": full, "history": str(Path(directory) / f"history_h{horizon}.parquet"),
             "test": str(Path(directory) / f"test_h{horizon}.parquet")}
    if all(Path(p).exists() for p in paths.values()):
        meta = pq.ParquetFile(full).metadata
        days = pc.count_distinct(pq.read_table(full, columns=["date"]).column("date")).as_py()
        return {**paths, "rows": meta.num_rows, "days": days}
    if DATASETS[name] is None:
        synthetic.generate().to_parquet(full, index=False)
    else:
        stores, items = DATASETS[name]
        synthetic.write_m5_like(full, stores, items)
    source = pq.ParquetFile(full)
    dates = sorted(pc.unique(source.read(columns=["date"]).column("date")).to_pylist())
    cutoff = dates[-horizon]
    writers = {k: pq.ParquetWriter(paths[k] + ".partial", source.schema_arrow)
               for k in ("history", "test")}
    try:
        for i in range(source.num_row_groups):
            group = source.read_row_group(i)
            later = pc.greater_equal(group.column("date"), cutoff)
            writers["history"].write_table(group.filter(pc.invert(later)))
            writers["test"].write_table(group.filter(later))
    finally:
        for w in writers.values():
            w.close()
    for k in ("history", "test"):
        os.replace(paths[k] + ".partial", paths[k])
    rows = source.metadata.num_rows
    return {**paths, "rows": rows, "days": len(dates)}


def ours(history: str, test: str, hp: dict) -> dict:
    """In a child: the default training job on the history file, then the forecast."""
    import pandas as pd

    from forecasting import training
    from forecasting.predictor import Predictor

    stages: dict = {}
    started, cpu = time.perf_counter(), time.process_time()

    def log(line: str) -> None:
        match = re.match(r"progress stage=(\S+)", line)
        if match and match.group(1) not in stages:
            stages[match.group(1)] = round(time.perf_counter() - started, 1)

    model = training.train(history, hp, log=log)
    train_s, train_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    summary = model.metadata["members"]["xgboost"]
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        del model
        rows = pd.read_parquet(test)
        t = time.perf_counter()
        forecast = Predictor.load(tmp).predict_columns(
            rows["date"].to_numpy(), rows["store_nbr"].to_numpy(), rows["family"].to_numpy(),
            rows["onpromotion"].to_numpy())
        predict_s = time.perf_counter() - t
    return {"train_s": train_s, "train_cpu_s": train_cpu_s, "predict_s": predict_s,
            "stages_started_s": stages,
            "rmsle": _rmsle(forecast, rows["sales"].to_numpy()), "xgboost": summary}


def peer(path: str, horizon: int, rounds: int, nthread: int, model: str = "xgboost") -> dict:
    """In a child: mlforecast end to end (read, fill gaps, fit, predict), as its user runs it,
    with ``model`` as its learner (``forecast_bench.PEER_MODELS``)."""
    from bench.forecast_bench import peer_fill, peer_forecaster, peer_frames, peer_join

    started, cpu = time.perf_counter(), time.process_time()
    raw_df, future, test = peer_frames(path, horizon)
    fcst = peer_forecaster(rounds, nthread, model)
    fcst.fit(peer_fill(raw_df), static_features=["store_nbr", "family"])
    del raw_df
    train_s, train_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    t = time.perf_counter()
    out = fcst.predict(h=horizon, X_df=future)
    predict_s = time.perf_counter() - t
    joined = peer_join(test, out)
    return {"train_s": train_s, "train_cpu_s": train_cpu_s, "predict_s": predict_s,
            "rmsle": _rmsle(joined["model"].to_numpy(), test["sales"].to_numpy())}


def _rmsle(forecast, actual) -> float:
    f = np.clip(np.nan_to_num(np.asarray(forecast, dtype=float)), 0, None)
    return float(np.sqrt(np.mean((np.log1p(f) - np.log1p(np.asarray(actual, float))) ** 2)))


def _call(fn, *args, timeout: float) -> dict:
    """One side in its child; a failure or timeout is recorded, not raised."""
    started = time.perf_counter()
    try:
        return run_in_child(fn, *args, timeout=timeout)
    except (EOFError, RuntimeError, TimeoutError) as exc:
        return {"error": f"{type(exc).__name__}: {str(exc)[-600:]}",
                "after_s": round(time.perf_counter() - started, 1)}


def run(data: str, sides: tuple[str, ...] = ("ours", "mlforecast"), repeats: int = 1,
        horizon: int = 16, nthread: int = 2, rounds: int = PEER_ROUNDS,
        timeout: float = 3600, hp: dict | None = None, workdir: str | None = None,
        data_dir: str | None = None) -> dict:
    """Interleaved runs of the sides on one dataset; per run wall, peak RSS and RMSLE, and the
    ratios ours / mlforecast of each pair. ``data_dir`` keeps (and reuses) the dataset's files
    there instead of a temporary directory."""
    hp = {"nthread": str(nthread), "horizon": str(horizon), **(hp or {})}
    result: dict = {"data": data, "horizon": horizon, "peer_rounds": rounds, "hp": hp,
                    "runs": []}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        t = time.perf_counter()
        if data_dir:
            Path(data_dir).mkdir(parents=True, exist_ok=True)
        files = write_data(data, data_dir or tmp, horizon)
        result.update(rows=files["rows"], days=files["days"],
                      write_s=round(time.perf_counter() - t, 1))
        print(f"{data}: {files['rows']:,} rows written in {result['write_s']} s", flush=True)
        for r in range(repeats):
            order = sides if r % 2 == 0 else tuple(reversed(sides))
            pair: dict = {}
            for side in order:
                if side == "ours":
                    pair[side] = _call(ours, files["history"], files["test"], hp,
                                       timeout=timeout)
                else:
                    pair[side] = _call(peer, files["all"], horizon, rounds, nthread,
                                       PEER_SIDES[side], timeout=timeout)
                print(json.dumps({side: pair[side]}), flush=True)
            for peer_side in PEER_SIDES:
                if "error" not in pair.get("ours", {"error": 1}) and \
                        "error" not in pair.get(peer_side, {"error": 1}):
                    pair.setdefault("ratios", {})[peer_side] = {
                        k: pair["ours"][k] / pair[peer_side][k]
                        for k in ("train_s", "train_cpu_s", "peak_rss_mb", "rmsle", "predict_s")}
            pair["ratio"] = (pair.get("ratios") or {}).get("mlforecast")
            result["runs"].append(pair)
    return result


def markdown(result: dict) -> str:
    """Rows for docs/benchmarks.md: one per run and side; a peer's row carries ours / it."""
    lines = [(f"{result['rows']:,} rows over {result['days']:,} days, horizon "
             f"{result['horizon']}; mlforecast: {result['peer_rounds']} rounds."), "",
             ("| run | side | train wall s | train CPU s | peak RSS MB | test RMSLE | ours / "
              "this side: wall, CPU, RSS, RMSLE |"),
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for i, pair in enumerate(result["runs"], 1):
        for side in ("ours", *PEER_SIDES):
            if side not in pair:
                continue
            r = pair[side]
            if "error" in r:
                lines.append(f"| {i} | {side} | {r['error'][:90]} | | | | |")
                continue
            ratio = (pair.get("ratios") or {}).get(side)
            cell = (f"{ratio['train_s']:.2f}, {ratio['train_cpu_s']:.2f}, "
                    f"{ratio['peak_rss_mb']:.2f}, {ratio['rmsle']:.4f}" if ratio else "")
            lines.append(f"| {i} | {side} | {r['train_s']:,.1f} | {r['train_cpu_s']:,.1f} | "
                         f"{r['peak_rss_mb']:,.0f} | {r['rmsle']:.4f} | {cell} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", choices=tuple(DATASETS), action="append",
                   help="repeatable; default: 15m then m5 (what make bench-scale runs)")
    p.add_argument("--sides", default="ours,mlforecast",
                   help=f"comma-separated: ours, {', '.join(PEER_SIDES)}")
    p.add_argument("--m5-sides", default="ours", help="sides at m5 scale (mlforecast if it fits)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--rounds", type=int, default=PEER_ROUNDS, help="mlforecast's rounds")
    p.add_argument("--timeout", type=float, default=3 * 3600, help="seconds per side and run")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                   help="a hyperparameter for ours (repeatable)")
    p.add_argument("--data-dir", help="keep each dataset's files in DIR/<data> and reuse them")
    p.add_argument("--json", default=".bench/scale.json")
    a = p.parse_args(argv)
    hp = dict(item.split("=", 1) for item in a.hp)
    results = []
    for data in a.data or ["15m", "m5"]:
        sides = tuple(s for s in (a.m5_sides if data == "m5" else a.sides).split(",") if s)
        results.append(run(data, sides, a.repeats, rounds=a.rounds, timeout=a.timeout, hp=hp,
                           data_dir=a.data_dir and str(Path(a.data_dir) / data)))
        print(markdown(results[-1]), flush=True)
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
