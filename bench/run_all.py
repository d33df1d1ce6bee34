"""``make bench``: every benchmark in one run, written to docs/benchmarks.md.

1. Forecast quality on real retail data: the Online Retail II backtest, ours (XGBoost, Tweedie,
   hybrid) beside mlforecast (XGBoost, LightGBM, LightGBM Tweedie), ``bench/real_bench.py``
   (``--skip-real`` leaves it out); then the forecasting core beside mlforecast on the
   full-scale synthetic data (3,000,888 rows), and its bulk predict beside the XGBoost floor
   (where the time goes, one thread and all cores).
2. The gRPC gateway: bulk PredictStream and unary Predict against in-process calls, serving
   the full-scale model trained in step 1; and the HTTP/JSON face beside gRPC on that model;
   unary Predict p99 with 32 bulk streams open against idle (fairness_bench; and
   tail_latency_bench with the load generator in its own process, its CPU reported, shared and
   pinned apart by taskset), RSS around 250 cancelled streams,
   and 10,000 malformed requests to every RPC (0 INTERNAL/UNKNOWN expected), on that model.
3. Authentication: the credential check alone, and ListModels with auth on against auth off;
   monitoring: bulk predictions with served-forecast recording on against off.
4. The model kinds (baseline, XGBoost, LSTM, hybrid): RMSLE, training time, peak memory.
5. Prediction intervals: coverage on the test window, ours beside mlforecast's conformal
   intervals (about 20 minutes at full scale; `--skip-intervals` leaves it out).
6. The SageMaker backend (SageMaker local mode: the real images, S3 on moto) beside the local
   backend: Train -> live, Predict overhead per call, bulk rows/s through chunked InvokeEndpoint,
   the inference container's memory (needs Docker; `--skip-sagemaker` leaves it out).
7. The gateway fleet: Predict throughput and p99 with 1, 2 and 3 replicas on one PostgreSQL
   database behind round robin against one gateway on SQLite, registry operations a second on
   both engines, a live switch's reach across replicas, the database's bytes a row
   (`bench/fleet_bench.py`, a few minutes; needs Debian's PostgreSQL binaries, `--skip-fleet`
   leaves it out).

    python -m bench.run_all [--small] [--skip-real] [--skip-models] [--skip-intervals]
                            [--skip-sagemaker] [--skip-fleet] [--output FILE]

Only the full run (no options) writes docs/benchmarks.md; a partial one goes to .bench/. Each
section ends with the machine's 1-minute load average at its start and end and its wall time,
so a section measured while other work shared the cores says so.

Absolute times on shared 2-core machines are noise; the ratios between sides measured in the
same run are what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    auth_bench,
    fairness_bench,
    forecast_bench,
    fuzz_bench,
    grpc_bench,
    http_fuzz_bench,
    intervals_bench,
    models_bench,
    monitoring_bench,
    predict_bench,
    tail_latency_bench,
)
from bench.child import bench_frame

ROOT = Path(__file__).resolve().parent.parent


def grpc_markdown(r: dict) -> str:
    return "\n".join([
        (f"{r['rows']:,} rows over {r['series']:,} series, {r['chunks']} chunks of up to "
        f"{r['chunk_rows']:,} rows, {r['max_in_flight']} chunks in flight; "
        f"largest difference from in-process forecasts: {r['max_abs_diff']:.2e}. In process, "
        "the chunks are forecast one after another on one thread; the gateway forecasts up to "
        f"`--stream-window` ({r['stream_window']}) chunks of a stream at once."), "",
        "| measure | through the gateway | in process | ratio |", "| --- | ---: | ---: | ---: |",
        (f"| bulk PredictStream (rows/s) | {r['grpc_stream_rows_per_s']:,} | "
        f"{r['in_process_rows_per_s']:,} | {r['stream_to_in_process_ratio']:.2f} |"),
        (f"| unary Predict p50, {r['unary_rows']} rows (ms) | {r['unary_grpc_p50_ms']:.2f} | "
        f"{r['unary_in_process_p50_ms']:.2f} | "
        f"{r['unary_grpc_p50_ms'] / r['unary_in_process_p50_ms']:.2f} |"),
        (f"| unary Predict p99 (ms) | {r['unary_grpc_p99_ms']:.2f} | "
        f"{r['unary_in_process_p99_ms']:.2f} | "
        f"{r['unary_grpc_p99_ms'] / r['unary_in_process_p99_ms']:.2f} |"),
        "", ("The transport, measured: the same Predict/PredictStream code, model, thread pool and "
             "stream window on grpcio's sync server (`bench/sync_server.py`), bulk runs "
             "interleaved with the aio gateway's."), "",
        "| measure | grpc.aio (the gateway) | sync grpcio | aio / sync |",
        "| --- | ---: | ---: | ---: |",
        (f"| bulk PredictStream (rows/s) | {r['grpc_stream_rows_per_s']:,} | "
         f"{r['sync_stream_rows_per_s']:,} | {r['aio_to_sync_stream_ratio']:.2f} |"),
        (f"| unary Predict p50 (ms) | {r['unary_grpc_p50_ms']:.2f} | "
         f"{r['unary_sync_p50_ms']:.2f} | {r['unary_grpc_p50_ms'] / r['unary_sync_p50_ms']:.2f} |"),
        (f"| unary Predict p99 (ms) | {r['unary_grpc_p99_ms']:.2f} | "
         f"{r['unary_sync_p99_ms']:.2f} | {r['unary_grpc_p99_ms'] / r['unary_sync_p99_ms']:.2f} |"),
        (f"| unary Predict p50 with {r['held_streams']} streams held open (ms) | "
         f"{_held(r, 'aio')} | {_held(r, 'sync')} | |"),
    ])


def _held(r: dict, side: str) -> str:
    """The held-streams cell: the p50 of the answered calls, and the calls that timed out."""
    p50, late = r[f"held_{side}_p50_ms"], r[f"held_{side}_timed_out"]
    text = "-" if p50 is None else f"{p50:.2f}"
    if late:
        text += (f" ({late} of {r['held_unary_calls']} calls not answered within "
                 f"{r['held_timeout_s']:g} s)")
    return text


class Sections:
    """Each benchmark's results and markdown, with the machine's load while it ran beside it:
    on a shared 2-core machine a section measured under other work reads differently."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.results: dict = {}

    def run(self, key: str, title: str, measure: Callable[[], dict],
            markdown: Callable[[dict], str]) -> dict:
        print(f"== {title}", flush=True)
        load_before, started = os.getloadavg()[0], time.perf_counter()
        result = measure()
        load_after, seconds = os.getloadavg()[0], time.perf_counter() - started
        self.results[key] = result
        note = (f"_The machine while this ran: 1-minute load average {load_before:.1f} at the "
                f"start and {load_after:.1f} at the end ({os.cpu_count()} CPUs; above that, "
                f"other work shared them), {seconds:,.0f} s._")
        self.items.append((title, f"{markdown(result)}\n\n{note}"))
        print(self.items[-1][1], flush=True)
        return result


def main(argv: list[str] | None = None) -> int:

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="a small dataset, for a quick look")
    p.add_argument("--skip-real", action="store_true",
                   help="leave out the real-data backtest (Online Retail II)")
    p.add_argument("--skip-models", action="store_true", help="leave out the LSTM/hybrid run")
    p.add_argument("--skip-intervals", action="store_true",
                   help="leave out the prediction-interval coverage run")
    p.add_argument("--skip-sagemaker", action="store_true",
                   help="leave out the SageMaker local-mode run (needs Docker)")
    p.add_argument("--skip-fleet", action="store_true",
                   help="leave out the gateway fleet run (needs PostgreSQL's binaries)")
    p.add_argument("--rounds", type=int, default=100, help="boosting rounds, both sides")
    p.add_argument("--grpc-rows", type=int, default=500_000)
    p.add_argument("--output", help="default: docs/benchmarks.md for the full run, "
                                     ".bench/benchmarks.md for a partial one (--small, ...)")
    argv = sys.argv[1:] if argv is None else argv
    a = p.parse_args(argv)
    # Only the full run may replace the published results.
    a.output = a.output or str(ROOT / ("docs" if not argv else ".bench") / "benchmarks.md")
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    frame = bench_frame(a.small)
    command = "make bench" if not argv else "python -m bench.run_all " + " ".join(argv)
    started = time.perf_counter()
    sections = Sections()
    if not a.skip_real:
        from bench import real_bench

        sections.run("real", "Forecast quality on real retail data",
                     real_bench.run,
                     real_bench.markdown)
    with tempfile.TemporaryDirectory(prefix="bench-model-") as model_dir:
        sections.run("core", "Forecasting core beside mlforecast",
                     lambda: forecast_bench.run(frame, rounds=a.rounds, keep_dir=model_dir),
                     forecast_bench.markdown)
        sections.run("predict", "The bulk predict beside its XGBoost floor",
                     lambda: predict_bench.run(model_dir),
                     predict_bench.markdown)
        sections.run("grpc", "gRPC gateway beside in-process calls",
                     lambda: grpc_bench.run(a.grpc_rows if not a.small else 20_000, model_dir),
                     grpc_markdown)
        from bench import http_bench

        sections.run("http", "HTTP/JSON face beside gRPC",
                     lambda: http_bench.run(
                         min(a.grpc_rows, 200_000) if not a.small else 20_000, model_dir),
                     http_bench.markdown)
        sections.run("fairness", "Fairness and memory under bulk streams",
                     lambda: fairness_bench.run(model_dir),
                     fairness_bench.markdown)
        sections.run("tail_latency", "Unary tail latency under bulk load",
                     lambda: tail_latency_bench.run(model_dir),
                     tail_latency_bench.markdown)
        sections.run("fuzz", "Fuzzing every RPC with malformed requests",
                     lambda: fuzz_bench.bench(model_dir),
                     fuzz_bench.markdown)
        sections.run("http_fuzz", "Fuzzing the HTTP/JSON face with malformed requests",
                     lambda: http_fuzz_bench.bench(model_dir),
                     http_fuzz_bench.markdown)
    sections.run("auth", "Authentication: what the credential check costs a call",
                 auth_bench.run,
                 auth_bench.markdown)
    sections.run("monitoring", "Monitoring: what recording served forecasts and actuals cost",
                 lambda: monitoring_bench.run(stores=10 if a.small else 20,
                                              rows=100_000 if a.small else 400_000),
                 monitoring_bench.markdown)
    if not a.skip_models:
        sections.run("models", "Model kinds: baseline, XGBoost, LSTM, hybrid",
                     lambda: models_bench.run(frame),
                     models_bench.markdown)
    if not a.skip_intervals:
        sections.run("intervals", "Prediction intervals: coverage on the test window",
                     lambda: intervals_bench.run(frame, rounds=a.rounds),
                     intervals_bench.markdown)
    if not a.skip_sagemaker:
        from bench import sagemaker_bench

        sections.run("sagemaker", "SageMaker backend beside the local backend",
                     sagemaker_bench.run,
                     sagemaker_bench.markdown)
    if not a.skip_fleet:
        from bench import fleet_bench

        sections.run("fleet",
                     "Gateway fleet: replicas on PostgreSQL beside one gateway on SQLite",
                     fleet_bench.run,
                     fleet_bench.markdown)
    header = [
        "# Benchmarks", "",
        (f"Produced by `{command}` on {datetime.now(UTC):%Y-%m-%d}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, in "
        f"{time.perf_counter() - started:,.0f} s. Every side of a comparison ran in the same "
        "run on the same rows; read the ratios, not the absolute times (shared machines)."), "",
        ("What each measures: `bench/real_bench.py`, `bench/forecast_bench.py`, "
         "`bench/predict_bench.py`, `bench/grpc_bench.py`, `bench/tail_latency_bench.py`, "
        "`bench/auth_bench.py`, `bench/http_bench.py`, `bench/fairness_bench.py`, "
        "`bench/fuzz_bench.py`, `bench/http_fuzz_bench.py`, `bench/monitoring_bench.py`, "
        "`bench/models_bench.py`, "
        "`bench/intervals_bench.py`, `bench/sagemaker_bench.py`, `bench/fleet_bench.py` "
        "(module docstrings)."),
    ]
    body = [f"\n## {title}\n\n{table}" for title, table in sections.items]
    Path(a.output).write_text("\n".join(header + body) + "\n")
    Path(a.output).with_suffix(".json").write_text(json.dumps(sections.results, indent=2,
                                                              default=str))
    print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
