"""gRPC gateway benchmark, loopback only, bounded in rows and repetitions.

1. Bulk throughput: the same future rows forecast (a) by `Predictor.predict_columns` in this
   process, whole array at once, and (b) through a `forecast-gateway` process over 127.0.0.1 with
   `ForecastClient.predict_batches` over `make_batch` chunks (PredictStream, bounded in-flight
   window), including the DataFrame -> RowBatch conversion. Reported as rows/s and the ratio
   (b)/(a). (Not `predict_frame`: the cycled chunks repeat (series, date) pairs.)
2. Unary latency: one series x 16 days via `Predict`, against the same call in process; p50/p99.
3. The transport choice (sync grpcio or grpc.aio), measured: both are run over the same data
   directory, model, predict pool and stream window, the aio gateway and `bench.sync_server` (the
   gateway's own Predict/PredictStream code on grpcio's sync server), their bulk runs
   interleaved so drift on a shared machine hits both alike. Then the same unary calls while
   HELD_STREAMS PredictStream calls stay open (each has sent one chunk and waits): long-lived
   calls, as WatchTrainingJob watchers or slow bulk clients are.

    python -m bench.grpc_bench [--rows 200000] [--model-dir DIR]

`run(rows, model_dir)` is what `bench.run_all` calls; it returns the numbers as a dict.
Without --model-dir, `__main__` first trains a small model on data/sample/train.csv.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RETAILER = "bench"
CHUNK_ROWS = 50_000
MAX_IN_FLIGHT = 4
REPEATS = 3
UNARY_CALLS = 200
UNARY_DAYS = 16
HELD_STREAMS = 24      # more open calls than the sync server's 16 RPC threads
HELD_UNARY_CALLS = 20
HELD_TIMEOUT_S = 2.0   # a unary call that waits longer counts as not answered


def _chunks(predictor, rows: int) -> list[pd.DataFrame]:
    """Future rows for every series of the model x its horizon, split into chunks of at most
    CHUNK_ROWS rows and cycled until there are `rows` rows. A request may name each (series,
    date) only once, so a chunk never repeats one; chunks repeat each other."""
    horizon = int((predictor.metadata.get("hyperparameters") or {}).get("horizon") or 16)
    grid = predictor.future_rows(horizon)
    pieces = [grid.iloc[i:i + CHUNK_ROWS].reset_index(drop=True) for i in range(0, len(grid), CHUNK_ROWS)]
    out: list[pd.DataFrame] = []
    total = 0
    while total < rows:
        piece = pieces[len(out) % len(pieces)]
        piece = piece.head(rows - total)
        out.append(piece)
        total += len(piece)
    return out


def _columns(frame: pd.DataFrame) -> dict:
    return {"date": frame["date"].to_numpy().astype("datetime64[D]"),
            "store_nbr": frame["store_nbr"].to_numpy(),
            "family": frame["family"].to_numpy(dtype=str),
            "onpromotion": frame["onpromotion"].to_numpy()}


def _gateway(data_dir: Path, module: str = "forecast_gateway.main"):
    """A quiet gateway (or `module`, a stand-in with its flags) on `data_dir`; a context
    manager: started on entry, stopped on exit."""
    from forecast_gateway.testing.process import GatewayProcess

    return GatewayProcess(data_dir, env={"FORECAST_GATEWAY_LOG_LEVEL": "WARNING"},
                          log_path=data_dir.parent / f"{module}.log", module=module)


def _stream(client, chunks: list[pd.DataFrame]) -> tuple[float, np.ndarray]:
    """Seconds for the client's whole bulk path (DataFrame columns -> RowBatch -> stream ->
    arrays), and the forecasts."""
    from forecast_client.rows import make_batch

    t0 = time.perf_counter()
    batches = (make_batch(c["date"], c["store_nbr"].to_numpy(), c["family"],
                          c["onpromotion"].to_numpy()) for c in chunks)
    got = [v for _, v, _ in client.predict_batches(RETAILER, batches,
                                                   max_in_flight=MAX_IN_FLIGHT)]
    return time.perf_counter() - t0, np.concatenate(got)


def _timed(call, times: int) -> tuple[list[float], int]:
    """Seconds of each of `times` calls of `call()` that answered, and how many ran out of time
    (DEADLINE_EXCEEDED)."""
    import grpc
    from forecast_client import ForecastClientError

    answered, timed_out = [], 0
    for _ in range(times):
        t0 = time.perf_counter()
        try:
            call()
        except ForecastClientError as err:
            if err.code != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
            timed_out += 1
        else:
            answered.append(time.perf_counter() - t0)
    return answered, timed_out


def _predict_one(client, one: pd.DataFrame):
    """One unary Predict of the rows `one`, as a zero-argument call."""
    return lambda: client.predict(
        RETAILER, date=one["date"].tolist(), store_nbr=one["store_nbr"].tolist(),
        family=one["family"].tolist(), onpromotion=one["onpromotion"].tolist())


def _percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def _unary_with_streams_held(target: str, one: pd.DataFrame, api_key: str) -> dict:
    """Unary Predict latency while HELD_STREAMS PredictStream calls stay open: the p50 of the
    answered calls (ms, None if none) and how many ran past HELD_TIMEOUT_S."""
    import grpc
    from forecast_client import ClientConfig, ForecastClient, pb, pb_grpc
    from forecast_client.config import RetryPolicy, Timeouts
    from forecast_client.rows import make_batch

    release = threading.Event()
    batch = make_batch(one["date"], one["store_nbr"].to_numpy(), one["family"],
                       one["onpromotion"].to_numpy())

    def held(i: int):
        yield pb.PredictStreamRequest(retailer=RETAILER, chunk_id=f"held-{i}", rows=batch)
        release.wait()

    channel = grpc.insecure_channel(target)
    stub = pb_grpc.ForecastServiceStub(channel)
    calls = [stub.PredictStream(held(i), metadata=(("authorization", f"Bearer {api_key}"),))
             for i in range(HELD_STREAMS)]
    config = ClientConfig(target=target, api_key=api_key, retry=RetryPolicy(max_attempts=1),
                          timeouts=Timeouts(predict_s=HELD_TIMEOUT_S))
    try:
        time.sleep(1.0)  # the held calls reach the server
        with ForecastClient(config) as client:
            answered, timed_out = _timed(_predict_one(client, one), HELD_UNARY_CALLS)
    finally:
        release.set()
        for call in calls:
            call.cancel()
        channel.close()
    return {"p50_ms": round(_percentiles(answered)[0], 3) if answered else None,
            "timed_out": timed_out}


def run(rows: int, model_dir: str) -> dict:
    """Measure bulk PredictStream throughput and unary Predict latency against in-process calls.

    `rows` future rows are built from the model's own series; `model_dir` is an artifact
    directory. Returns a flat dict of numbers (rates in rows/s, latencies in ms).
    """
    from forecast_client import ForecastClient
    from forecast_gateway.backends.local import LocalBackend
    from forecast_gateway.config import GatewayConfig
    from forecast_gateway.dataplane import ForecastService, Tenant

    from forecasting.forecast import future_rows
    from forecasting.predictor import Predictor

    predictor = Predictor.load(model_dir)
    chunks = _chunks(predictor, rows)
    cols = [_columns(c) for c in chunks]  # the in-process path gets ready numpy columns
    predictor.predict_columns(**cols[0])  # warm up

    in_process = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        expected = np.concatenate([predictor.predict_columns(**c) for c in cols])
        in_process.append(time.perf_counter() - t0)

    # One series with history (a never-sold one would skip the model), its next UNARY_DAYS.
    one = future_rows(pd.DataFrame({"store_nbr": predictor.history.store_nbr[:1],
                                    "family": predictor.history.family[:1].astype(str)}),
                      UNARY_DAYS, predictor.last_date)
    one_cols = _columns(one)
    local_lat, _ = _timed(lambda: predictor.predict_columns(**one_cols), UNARY_CALLS)

    with tempfile.TemporaryDirectory(prefix="grpc-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        config = GatewayConfig(data_dir=data_dir)
        service = ForecastService(config, LocalBackend(training_slots=1))
        service.models.import_model(Tenant(RETAILER), Path(model_dir))
        service.close()
        aio_gateway = _gateway(data_dir)
        key = aio_gateway.api_key(RETAILER)  # the sync server reads the same key store
        with (aio_gateway as aio_server,
              _gateway(data_dir, "bench.sync_server") as sync_server,
              ForecastClient(target=aio_server.target, api_key=key) as aio,
              ForecastClient(target=sync_server.target, api_key=key) as sync):
            clients = {"aio": aio, "sync": sync}
            for client in clients.values():
                client.wait_until_ready(10)
                client.predict_frame(RETAILER, chunks[0])  # loads the model, warms up
            streamed: dict[str, list[float]] = {name: [] for name in clients}
            max_abs_diff = 0.0
            for _ in range(REPEATS):
                for name, client in clients.items():
                    seconds, got = _stream(client, chunks)
                    streamed[name].append(seconds)
                    max_abs_diff = max(max_abs_diff, float(np.max(np.abs(got - expected))))
            latency = {name: _timed(_predict_one(client, one), UNARY_CALLS)[0]
                       for name, client in clients.items()}
            held = {name: _unary_with_streams_held(server.target, one, key)
                    for name, server in (("aio", aio_server), ("sync", sync_server))}

    in_rate = rows / statistics.median(in_process)
    grpc_rate = rows / statistics.median(streamed["aio"])
    sync_rate = rows / statistics.median(streamed["sync"])
    g50, g99 = _percentiles(latency["aio"])
    s50, s99 = _percentiles(latency["sync"])
    l50, l99 = _percentiles(local_lat)
    return {
        "rows": rows,
        "series": len(predictor.series),
        "chunks": len(chunks),
        "chunk_rows": int(max(len(c) for c in chunks)),
        "max_in_flight": MAX_IN_FLIGHT,
        "stream_window": config.stream_window,
        "in_process_rows_per_s": round(in_rate),
        "grpc_stream_rows_per_s": round(grpc_rate),
        "stream_to_in_process_ratio": round(grpc_rate / in_rate, 3),
        "max_abs_diff": max_abs_diff,
        "unary_rows": len(one),
        "unary_grpc_p50_ms": round(g50, 3),
        "unary_grpc_p99_ms": round(g99, 3),
        "unary_in_process_p50_ms": round(l50, 3),
        "unary_in_process_p99_ms": round(l99, 3),
        "unary_calls": UNARY_CALLS,
        "sync_stream_rows_per_s": round(sync_rate),
        "aio_to_sync_stream_ratio": round(grpc_rate / sync_rate, 3),
        "unary_sync_p50_ms": round(s50, 3),
        "unary_sync_p99_ms": round(s99, 3),
        "held_streams": HELD_STREAMS,
        "held_unary_calls": HELD_UNARY_CALLS,
        "held_timeout_s": HELD_TIMEOUT_S,
        "held_aio_p50_ms": held["aio"]["p50_ms"],
        "held_aio_timed_out": held["aio"]["timed_out"],
        "held_sync_p50_ms": held["sync"]["p50_ms"],
        "held_sync_timed_out": held["sync"]["timed_out"],
    }


def _train_sample_model(workdir: Path) -> str:
    """Train a small model on the bundled sample through a gateway; return its artifact dir."""
    from forecast_client import ForecastClient

    data_dir = workdir / "train-data"
    gateway = _gateway(data_dir)
    with gateway, ForecastClient(target=gateway.target, api_key=gateway.api_key(RETAILER)) as client:
        client.wait_until_ready(10)
        ds = client.upload_dataset(RETAILER, ROOT / "data" / "sample" / "train.csv")
        job = client.train(RETAILER, dataset_id=ds.dataset_id,
                           hyperparameters={"num_round": "100", "early_stopping_rounds": "10"})
        final = client.wait_for_job(RETAILER, job.job_id)
        if final.model_version == "":
            raise RuntimeError(f"training failed: {final.failure_reason}")
        return str(data_dir / "retailers" / RETAILER / "models" / final.model_version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="gRPC gateway benchmark (loopback only)")
    parser.add_argument("--rows", type=int, default=200_000, help="rows for the bulk run")
    parser.add_argument("--model-dir", help="a model artifact (default: train one on the sample)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="grpc-bench-model-") as tmp:
        model_dir = args.model_dir or _train_sample_model(Path(tmp))
        print(json.dumps(run(args.rows, model_dir), indent=2))
    return 0


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(ROOT / "server"), str(ROOT / "client")]
    sys.exit(main())
