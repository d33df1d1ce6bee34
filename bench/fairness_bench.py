"""Fairness and memory under bulk load, loopback only, bounded in calls and time.

1. Unary Predict latency (one series x 16 days) with the gateway idle, then while BULK_STREAMS
   PredictStream calls keep sending chunks of CHUNK_ROWS rows as fast as the gateway takes
   them; reported as p50/p99 and the busy/idle p99 ratio (goal: at most 3).
2. Memory held by cancelled streams: the gateway's RSS after warm-up, then after
   CANCELLED_STREAMS streams that each send CANCEL_CHUNKS chunks and are cancelled without
   reading the answers (CANCEL_CONCURRENCY at a time); reported as the ratio of RSS SETTLE_S
   seconds after the last cancel to RSS before (goal: within 10%).

The bulk clients send pre-serialized requests and do not decode the answers (generic channel
methods), so the client process is not what limits the load.

    python -m bench.fairness_bench [--model-dir DIR]

`run(model_dir)` is what `bench.run_all` calls; it returns the numbers as a dict.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RETAILER = "bench"
BULK_STREAMS = 32
CHUNK_ROWS = 20_000
UNARY_CALLS = 200
BUSY_LIMIT_S = 120.0
CANCELLED_STREAMS = 250
CANCEL_CHUNKS = 4
CANCEL_CONCURRENCY = 25
SETTLE_S = 10.0
STREAM_PATH = "/forecastapi.v1.ForecastService/PredictStream"


def _gateway(data_dir: Path):
    from forecast_gateway.testing.process import GatewayProcess

    return GatewayProcess(data_dir, env={"FORECAST_GATEWAY_LOG_LEVEL": "WARNING",
                                         "FORECAST_GATEWAY_AUTH": "false"},
                          log_path=data_dir.parent / "fairness-gateway.log")


def rss_bytes(pid: int) -> int:
    """Resident set size of process `pid` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _chunk_bytes(predictor, count: int) -> list[bytes]:
    """`count` serialized PredictStreamRequests of CHUNK_ROWS future rows each."""
    from forecast_client import pb
    from forecast_client.rows import make_batch

    grid = predictor.future_rows(16)
    out = []
    for i in range(count):
        part = grid.iloc[(i * CHUNK_ROWS) % max(1, len(grid) - CHUNK_ROWS):][:CHUNK_ROWS]
        batch = make_batch(part["date"], part["store_nbr"].to_numpy(), part["family"],
                           part["onpromotion"].to_numpy())
        out.append(pb.PredictStreamRequest(retailer=RETAILER, chunk_id=f"c{i}",
                                           rows=batch).SerializeToString())
    return out


def _unary_latencies(target: str, request: bytes, calls: int, deadline: float) -> list[float]:
    import grpc

    path = "/forecastapi.v1.ForecastService/Predict"
    with grpc.insecure_channel(target) as channel:
        predict = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
        out = []
        for _ in range(calls):
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            predict(request, timeout=60)
            out.append(time.perf_counter() - t0)
    return out


def _bulk(target: str, chunks: list[bytes], stop: threading.Event, started: threading.Barrier,
          answered: list[int]) -> None:
    """One bulk stream: send chunks as fast as flow control lets, until `stop`."""
    import grpc

    def requests():
        i = 0
        while not stop.is_set():
            yield chunks[i % len(chunks)]
            i += 1

    with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        call = channel.stream_stream(STREAM_PATH, request_serializer=None,
                                     response_deserializer=None)(requests(), timeout=BUSY_LIMIT_S * 2)
        try:
            first = True
            for _ in call:
                if first:
                    started.wait()
                    first = False
                answered[0] += 1
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED and not stop.is_set():
                raise
        finally:
            call.cancel()


def _p(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1e3, q))


def _cancelled_streams(target: str, chunks: list[bytes]) -> None:
    """CANCELLED_STREAMS streams that send CANCEL_CHUNKS chunks and are cancelled unread."""
    import grpc

    def one(channel) -> None:
        sent = threading.Event()

        def requests():
            yield from chunks[:CANCEL_CHUNKS]
            sent.set()
            time.sleep(0.5)  # the gateway has the chunks in hand when the cancel arrives

        call = channel.stream_stream(STREAM_PATH, request_serializer=None,
                                     response_deserializer=None)(requests(), timeout=60)
        sent.wait(30)
        time.sleep(0.2)
        call.cancel()

    with grpc.insecure_channel(target) as channel:
        for start in range(0, CANCELLED_STREAMS, CANCEL_CONCURRENCY):
            threads = [threading.Thread(target=one, args=(channel,))
                       for _ in range(min(CANCEL_CONCURRENCY, CANCELLED_STREAMS - start))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()


def _memory(gw, chunks: list[bytes], unary: bytes) -> tuple[int, int, int]:
    """RSS before the cancelled streams (after one bulk stream, so the forecasting code's own
    working memory is already counted), right after them, and once settled."""
    stop, started, answered = threading.Event(), threading.Barrier(2), [0]
    warm = threading.Thread(target=_bulk, args=(gw.target, chunks, stop, started, answered))
    warm.start()
    started.wait(120)
    while answered[0] < 20:
        time.sleep(0.1)
    stop.set()
    warm.join(60)
    time.sleep(1.0)
    rss_start = rss_bytes(gw.proc.pid)
    _cancelled_streams(gw.target, chunks)
    rss_peak = rss_bytes(gw.proc.pid)
    time.sleep(SETTLE_S)  # "promptly": what is still held this long after the last cancel
    rss_end = rss_bytes(gw.proc.pid)
    _unary_latencies(gw.target, unary, 5, time.monotonic() + 30)  # it still answers
    return rss_start, rss_peak, rss_end


def run(model_dir: str) -> dict:
    """Measure unary latency idle vs under BULK_STREAMS streams, and RSS around cancelled streams."""
    from forecast_client import pb
    from forecast_client.rows import make_batch
    from forecast_gateway.backends.local import LocalBackend
    from forecast_gateway.config import GatewayConfig
    from forecast_gateway.dataplane import ForecastService, Tenant

    from forecasting.forecast import future_rows
    from forecasting.predictor import Predictor

    predictor = Predictor.load(model_dir)
    chunks = _chunk_bytes(predictor, 8)
    one = future_rows(pd.DataFrame({"store_nbr": predictor.history.store_nbr[:1],
                                    "family": predictor.history.family[:1].astype(str)}),
                      16, predictor.last_date)
    unary = pb.PredictRequest(retailer=RETAILER, rows=make_batch(
        one["date"], one["store_nbr"].to_numpy(), one["family"],
        one["onpromotion"].to_numpy())).SerializeToString()

    with tempfile.TemporaryDirectory(prefix="fairness-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        service = ForecastService(GatewayConfig(data_dir=data_dir), LocalBackend(training_slots=1))
        service.models.import_model(Tenant(RETAILER), Path(model_dir))
        service.close()
        with _gateway(data_dir) as gw:
            _unary_latencies(gw.target, unary, 20, time.monotonic() + 60)  # load, warm up
            rss_start, rss_peak, rss_end = _memory(gw, chunks, unary)
            idle = _unary_latencies(gw.target, unary, UNARY_CALLS, time.monotonic() + BUSY_LIMIT_S)

            stop = threading.Event()
            started = threading.Barrier(BULK_STREAMS + 1)
            answered = [0]
            streams = [threading.Thread(target=_bulk, args=(gw.target, chunks, stop, started, answered),
                                        daemon=True) for _ in range(BULK_STREAMS)]
            for t in streams:
                t.start()
            started.wait(120)  # every stream has had an answer: the gateway is saturated
            t0 = time.perf_counter()
            busy = _unary_latencies(gw.target, unary, UNARY_CALLS, time.monotonic() + BUSY_LIMIT_S)
            busy_s = time.perf_counter() - t0
            chunks_done = answered[0]
            stop.set()
            for t in streams:
                t.join(60)


    return {
        "bulk_streams": BULK_STREAMS, "chunk_rows": CHUNK_ROWS, "unary_rows": len(one),
        "unary_calls": UNARY_CALLS, "busy_calls_answered": len(busy),
        "idle_p50_ms": round(_p(idle, 50), 2), "idle_p99_ms": round(_p(idle, 99), 2),
        "busy_p50_ms": round(_p(busy, 50), 2), "busy_p99_ms": round(_p(busy, 99), 2),
        "busy_to_idle_p99": round(_p(busy, 99) / _p(idle, 99), 2),
        "bulk_rows_per_s_while_measuring": round(chunks_done * CHUNK_ROWS / busy_s),
        "cancelled_streams": CANCELLED_STREAMS, "cancel_chunks": CANCEL_CHUNKS,
        "rss_start_mb": round(rss_start / 2**20, 1), "rss_peak_mb": round(rss_peak / 2**20, 1),
        "rss_end_mb": round(rss_end / 2**20, 1),
        "rss_end_to_start": round(rss_end / rss_start, 3),
    }


def markdown(r: dict) -> str:
    """The results as a section of docs/benchmarks.md."""
    p50_ratio = r["busy_p50_ms"] / r["idle_p50_ms"]
    return "\n".join([
        (f"Unary Predict ({r['unary_rows']} rows) against the same gateway idle and while "
         f"{r['bulk_streams']} PredictStream calls keep sending {r['chunk_rows']:,}-row chunks "
         f"({r['bulk_rows_per_s_while_measuring']:,} rows/s forecast meanwhile); "
         f"{r['busy_calls_answered']} of {r['unary_calls']} calls measured per side. "
         "Goal: busy p99 at most 3x idle p99."), "",
        "| measure | idle | 32 bulk streams | busy / idle |", "| --- | ---: | ---: | ---: |",
        (f"| unary Predict p50 (ms) | {r['idle_p50_ms']:.2f} | {r['busy_p50_ms']:.2f} | "
         f"{p50_ratio:.2f} |"),
        (f"| unary Predict p99 (ms) | {r['idle_p99_ms']:.2f} | {r['busy_p99_ms']:.2f} | "
         f"{r['busy_to_idle_p99']:.2f} |"), "",
        (f"Memory: {r['cancelled_streams']} streams that each sent {r['cancel_chunks']} chunks and "
         "were cancelled unread. Goal: RSS back within 10% of the start."), "",
        "| gateway RSS | MB |", "| --- | ---: |",
        f"| before | {r['rss_start_mb']:.1f} |",
        f"| right after the cancelled streams | {r['rss_peak_mb']:.1f} |",
        (f"| {SETTLE_S:g} s later (end / start = {r['rss_end_to_start']:.3f}) | "
         f"{r['rss_end_mb']:.1f} |"),
    ])


def train_model(directory: Path) -> str:
    """The stand-alone run's model: 20 stores x 33 families of synthetic history from 2015-06
    (660 series, 60 rounds), trained by the library in this process; returns its directory."""
    from forecasting import synthetic, training

    history = synthetic.generate(20, 33, "2015-06-01")
    model = training.train(history, {"num_round": "60", "early_stopping_rounds": "10",
                                     "refit": "false"}, log=lambda _: None)
    model.save(directory)
    return str(directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="a model artifact (default: train_model's 660 series)")
    parser.add_argument("--fuzz-requests", type=int, default=0,
                        help="also send this many malformed requests (bench.fuzz_bench)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fairness-bench-model-") as tmp:
        model_dir = args.model_dir or train_model(Path(tmp) / "model")
        result = run(model_dir)
        print(json.dumps(result, indent=2))
        print(markdown(result))
        if args.fuzz_requests:
            from bench import fuzz_bench

            fuzz = fuzz_bench.bench(model_dir, args.fuzz_requests)
            print(json.dumps(fuzz, indent=2))
            print(fuzz_bench.markdown(fuzz))
    return 0


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(ROOT / "server"), str(ROOT / "client")]
    sys.exit(main())
