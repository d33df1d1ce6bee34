"""Benchmark of the model kinds: test-split RMSLE of the seasonal-naive baseline, XGBoost, the
LSTM and the hybrid, with the training time and peak memory of each kind.

Each kind trains in its own spawn child (``bench.child.run_in_child``: a fresh interpreter, as a
training job is), so its peak resident memory is its own: the child reads the data and runs the
whole ``training.train`` pipeline. The baseline needs no training: its score comes from the
XGBoost run's evaluation.

    python -m bench.models_bench                 # full scale: 3,000,888 synthetic rows
    python -m bench.models_bench --small         # 4 stores x 5 families, for a quick look
    python -m bench.models_bench --json out.json --markdown out.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.child import bench_frame, run_in_child

KINDS = ("xgboost", "lstm", "hybrid")


def run(frame: pd.DataFrame, hyperparameters: dict | None = None,
        kinds: tuple[str, ...] = KINDS, workdir: str | os.PathLike | None = None) -> dict:
    """Train each kind on ``frame`` in a spawn child; RMSLE, training time and peak memory.

    ``hyperparameters`` (SageMaker-style strings) apply to every kind; ``model_kind`` is set
    per kind. Returns a JSON-ready dict (see ``markdown`` for the table).
    """
    hp = {k: str(v) for k, v in (hyperparameters or {}).items() if k != "model_kind"}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        data_path = Path(tmp) / "train.parquet"
        frame.to_parquet(data_path, index=False)
        runs: dict = {}
        for kind in kinds:
            log_file = Path(tmp) / f"{kind}.log"
            try:
                result = run_in_child(_train_child, str(data_path), {**hp, "model_kind": kind},
                                      str(log_file))
            except (EOFError, RuntimeError, TimeoutError) as exc:  # the child died or hung
                result = {"error": str(exc) or "child exited before reporting"}
            if "error" in result:
                result["log_tail"] = log_file.read_text()[-2000:] if log_file.exists() else ""
            runs[kind] = result
    return _summarise(frame, hp, runs)


def _train_child(data_path: str, hp: dict, log_path: str) -> dict:
    """In the child: read the data, train; scores and seconds (``run_in_child`` adds the peak
    RSS). A failure is returned as ``{"error": ...}``, recorded per kind."""
    try:
        from forecasting import training

        with open(log_path, "w") as log_file:
            started = time.perf_counter()
            frame = pd.read_parquet(data_path)
            read_seconds = time.perf_counter() - started
            started = time.perf_counter()
            model = training.train(frame, hp, log=lambda line: print(line, file=log_file,
                                                                     flush=True))
            seconds = time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - reported to the parent, recorded per kind
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "train_seconds": round(seconds, 1),
        "read_seconds": round(read_seconds, 1),
        "evaluation": {name: block["overall"]
                       for name, block in model.evaluation["models"].items()},
        "baseline": model.evaluation["baseline"]["overall"],
        "members": model.metadata["members"],
    }


def _summarise(frame: pd.DataFrame, hp: dict, runs: dict) -> dict:
    models: dict = {}
    baseline_run = next((r for r in runs.values() if "baseline" in r), None)
    if baseline_run is not None:
        models["baseline"] = {"rmsle": baseline_run["baseline"]["rmsle"],
                              "train_seconds": 0.0, "peak_rss_mb": None,
                              "note": "seasonal naive (last week repeated), no training"}
    for kind, r in runs.items():
        if "error" in r:
            models[kind] = {"error": r["error"], "log_tail": r.get("log_tail", "")}
            continue
        entry = {"rmsle": r["evaluation"][kind]["rmsle"], "train_seconds": r["train_seconds"],
                 "peak_rss_mb": round(r["peak_rss_mb"], 1), "read_seconds": r["read_seconds"],
                 "member": r["members"][kind]}
        if kind == "hybrid":
            entry["weights"] = r["members"]["hybrid"]["weights"]
            entry["members_rmsle"] = {k: v["rmsle"] for k, v in r["evaluation"].items()}
        models[kind] = entry
    out = {"rows": len(frame),
           "series": int(frame[["store_nbr", "family"]].drop_duplicates().shape[0]),
           "cpus": os.cpu_count(), "hyperparameters": hp, "models": models}
    hybrid = models.get("hybrid", {})
    if "members_rmsle" in hybrid:
        scores = hybrid["members_rmsle"]
        best = min(scores["xgboost"], scores["lstm"])
        out["target"] = {"hybrid_rmsle": scores["hybrid"], "best_member_rmsle": best,
                         "hybrid_no_worse_than_best_member": scores["hybrid"] <= best + 1e-9}
    return out


def markdown(result: dict) -> str:
    """The result as a Markdown table (for docs/benchmarks.md)."""
    lines = [(f"{result['rows']:,} rows, {result['series']:,} series, {result['cpus']} CPUs. "
             "Test RMSLE is `evaluation.json`'s (the fit that had not seen the test days); "
             "training time is the whole default job: fit, evaluate and the refit on all history."),
             "", "| model | test RMSLE | training s | peak RSS MB |", "| --- | --- | --- | --- |"]
    for name, m in result["models"].items():
        if "error" in m:
            lines.append(f"| {name} | failed: {m['error'][:80]} | | |")
            continue
        rss = "-" if m.get("peak_rss_mb") is None else f"{m['peak_rss_mb']:,.0f}"
        lines.append(f"| {name} | {m['rmsle']:.4f} | {m['train_seconds']:,.1f} | {rss} |")
    if "target" in result:
        t = result["target"]
        w = result["models"]["hybrid"]["weights"]
        lines += ["", "Hybrid weights: " + ", ".join(f"{k} {v:.3f}" for k, v in w.items())
                  + f". Hybrid {t['hybrid_rmsle']:.4f} vs best member "
                  f"{t['best_member_rmsle']:.4f}: target "
                  + ("met." if t["hybrid_no_worse_than_best_member"] else "NOT met.")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="4 stores x 5 families since 2016")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated model kinds")
    p.add_argument("--hp", action="append", default=[], metavar="KEY=VALUE",
                   help="a hyperparameter for every kind (repeatable)")
    p.add_argument("--json", help="write the result as JSON here")
    p.add_argument("--markdown", help="write the Markdown table here")
    a = p.parse_args(argv)
    frame = bench_frame(a.small)
    hp = dict(item.split("=", 1) for item in a.hp)
    started = time.perf_counter()
    result = run(frame, hp, tuple(k for k in a.kinds.split(",") if k))
    result["bench_seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2)
    if a.json:
        Path(a.json).write_text(text)
    if a.markdown:
        Path(a.markdown).write_text(markdown(result))
    print(text)
    print(markdown(result))
    return 1 if any("error" in m for m in result["models"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
