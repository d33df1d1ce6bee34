"""How the XGBoost member treats lags that reach before a series' first day: accuracy on real
data and boosting speed at scale, for each candidate encoding, in one run.

Cleaning starts every series on its first sale, so a series' first ``lookback`` days have
lags and windows that are unknown. Candidates (``ENCODINGS``):

- ``left out`` (the default): those rows are not trained on; a forecast reads an unknown lag
  as -1, which the trees (never shown a value below 0) treat as no sales;
- ``-1``: the rows are trained on with -1 in place of the unknown values (the release before);
- ``-1 + age``: the same, plus the ``age`` feature (days since the series' first day);
- ``NaN``: the rows are trained on with NaN, XGBoost's missing value (a learned default
  direction at every split);
- ``missing=-1``: -1 stored, declared as XGBoost's missing value (``missing=-1``): the trees
  see what they see with NaN, so its accuracy is NaN's; only its speed is measured.

Accuracy: the Online Retail II backtest (``bench/real_bench.py``'s windows and scoring) of the
default job with each encoding. Speed: seconds per boosting round on the training matrix of a
scale-bench dataset (``--data``, default 15m: M5-shaped, 15,003,930 rows), ``--rounds``
rounds of ``xgb.train`` with the default settings. Each measurement runs in its own spawn
child.

    python -m bench.unknown_lags_bench [--data 15m] [--data-dir DIR] [--rounds 10] [--repeats 2]
                                       [--speed-only]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

from bench.child import run_in_child

ENCODINGS = ("left out", "-1", "-1 + age", "NaN", "missing=-1")
#: Encodings whose accuracy is measured (missing=-1 grows the trees NaN grows).
SCORED = ("left out", "-1", "-1 + age", "NaN")


@contextlib.contextmanager
def encoding(name: str):
    """The library as it would be with encoding ``name`` (module docstring), for this process.
    Only what the encoding changes is patched: which rows train, the unknown value, ``age``."""
    import numpy as np

    from forecasting import features
    from forecasting.cleaning import Panel
    from forecasting.models import xgboost_member

    if name not in ENCODINGS:
        raise ValueError(f"unknown encoding {name!r} (known: {', '.join(ENCODINGS)})")
    saved = (Panel.rows_with_history, xgboost_member.UNKNOWN_VALUE, features.DEFAULT)
    try:
        if name != "left out":
            Panel.rows_with_history = lambda self, days: np.ones(len(self.day), dtype=bool)
        if name in ("NaN", "missing=-1"):
            xgboost_member.UNKNOWN_VALUE = None
        if name == "-1 + age":
            names = features.DEFAULT.names
            n = features.DEFAULT.n_history
            features.DEFAULT = features.FeatureSet((*names[:n], "age", *names[n:]))
        yield
    finally:
        Panel.rows_with_history, xgboost_member.UNKNOWN_VALUE, features.DEFAULT = saved


def accuracy(name: str, path: str) -> dict:
    """In a child: the real-data backtest of the default job with encoding ``name``."""
    import pandas as pd

    from bench.real_bench import HORIZON, LEVEL, N_WINDOWS
    from forecasting.backtest import backtest

    with encoding(name):
        t = time.perf_counter()
        result = backtest(pd.read_parquet(path), {"horizon": str(HORIZON)},
                          n_windows=N_WINDOWS, levels=(LEVEL,))
    overall = result.summary["overall"]
    return {"seconds": time.perf_counter() - t, "rmsle": overall["rmsle"],
            "wape": overall["wape"], "mase": overall["mase"]}


def speed(name: str, history: str, rounds: int) -> dict:
    """In a child: seconds per boosting round on the training matrix of ``history`` as the
    member builds it with encoding ``name``."""
    import xgboost as xgb

    from forecasting import training
    from forecasting.cleaning import clean
    from forecasting.hyperparameters import parse
    from forecasting.models import xgboost_member as xm
    from forecasting.schema import read_table, validate_history

    with encoding(name):
        frame, _ = validate_history(read_table(history))
        panel, _ = clean(frame)
        del frame
        hp = parse({})
        data, _ = training.training_data(panel, hp, lambda _: None, lambda *_: None)
        feature_set = xm.features.DEFAULT
        train = (panel.day <= data.split.train_end) & panel.rows_with_history(
            feature_set.lookback)
        target = xm._target(panel.sales, hp.log_target)
        unknown = -1.0 if name == "missing=-1" else xm.UNKNOWN_VALUE
        chunks = xm._PanelChunks(xm.FeatureChunks(data, target, train, feature_set,
                                                  unknown_value=unknown))
        t = time.perf_counter()
        matrix = xgb.QuantileDMatrix(chunks, max_bin=hp.max_bin, enable_categorical=True,
                                     missing=-1.0 if name == "missing=-1" else float("nan"))
        build = time.perf_counter() - t
        params = xm._params(hp)
        xgb.train(params, matrix, num_boost_round=1)       # warm-up: the first round's setup
        t = time.perf_counter()
        xgb.train(params, matrix, num_boost_round=rounds)
        per_round = (time.perf_counter() - t) / rounds
    return {"rows": matrix.num_row(), "matrix_s": build, "seconds_per_round": per_round}


def run(data: str = "15m", data_dir: str | None = None, rounds: int = 10,
        encodings: tuple[str, ...] = ENCODINGS, repeats: int = 1,
        accuracy_too: bool = True) -> dict:
    """Each encoding's accuracy (once: it is deterministic) and speed (``repeats`` times, the
    order reversed every other pass so a busy machine slows all alike; the fastest is kept)."""
    from bench import online_retail, scale_bench

    result: dict = {"data": data, "rounds": rounds, "repeats": repeats,
                    "encodings": {name: {} for name in encodings}}
    with tempfile.TemporaryDirectory(prefix="unknown-lags-") as tmp:
        files = scale_bench.write_data(data, data_dir or tmp, 16)
        result["data_rows"] = files["rows"]
        if accuracy_too:
            panel_path = str(Path(tmp) / "panel.parquet")
            online_retail.load().to_parquet(panel_path, index=False)
            for name in encodings:
                if name in SCORED:
                    result["encodings"][name]["accuracy"] = run_in_child(accuracy, name,
                                                                         panel_path)
        for r in range(repeats):
            for name in (encodings if r % 2 == 0 else tuple(reversed(encodings))):
                got = run_in_child(speed, name, files["history"], rounds, timeout=7200)
                out = result["encodings"][name]
                out.setdefault("speed_runs", []).append(got["seconds_per_round"])
                if "speed" not in out or got["seconds_per_round"] < \
                        out["speed"]["seconds_per_round"]:
                    out["speed"] = got
                print(name, json.dumps(got), flush=True)
    return result


def markdown(result: dict) -> str:
    base = result["encodings"].get("left out", {}).get("speed", {}).get("seconds_per_round")
    lines = [(f"Real data: the Online Retail II backtest (4 windows of 14 days). Speed: "
              f"{result['rounds']} boosting rounds on the training matrix of the "
              f"{result['data']} scale-bench set ({result['data_rows']:,} rows), default "
              f"settings, 2 threads; the fastest of {result['repeats']} interleaved runs."), "",
             ("| encoding | real-data RMSLE | WAPE | MASE | training rows at scale | "
             "s per round | vs left out |"), "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, out in result["encodings"].items():
        acc, sp = out.get("accuracy"), out["speed"]
        scores = (f"{acc['rmsle']:.4f} | {acc['wape']:.4f} | {acc['mase']:.3f}" if acc
                  else "as NaN | | " if name not in SCORED else "- | - | -")
        ratio = f"{sp['seconds_per_round'] / base:.2f}" if base else ""
        lines.append(f"| {name} | {scores} | {sp['rows']:,} | {sp['seconds_per_round']:.3f} | "
                     f"{ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="15m", choices=("3m", "15m", "m5", "small"))
    p.add_argument("--data-dir", help="keep (and reuse) the generated dataset here")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--encodings", nargs="+", default=list(ENCODINGS), choices=ENCODINGS)
    p.add_argument("--repeats", type=int, default=1, help="speed runs per encoding")
    p.add_argument("--speed-only", action="store_true", help="leave out the real-data backtests")
    p.add_argument("--output", help="also write the JSON result here")
    a = p.parse_args(argv)
    if a.data_dir:
        Path(a.data_dir).mkdir(parents=True, exist_ok=True)
    result = run(a.data, a.data_dir, a.rounds, tuple(a.encodings), a.repeats, not a.speed_only)
    print(markdown(result))
    if a.output:
        Path(a.output).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
