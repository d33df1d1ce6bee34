"""HTTP/JSON face beside gRPC, loopback only, bounded in rows and repetitions.

One gateway process serves both faces over the same model; every measure runs the same rows
through gRPC (`ForecastClient`) and through HTTP (`requests.Session`, keep-alive), interleaved so
drift on a shared machine hits both alike, and reports HTTP / gRPC ratios. Client-side encoding
counts on both sides (RowBatch building for gRPC, JSON for HTTP).

1. Unary latency: one series x 16 days via Predict; p50/p99 over UNARY_CALLS calls. HTTP sends
   the rows as a list of objects (what a person writes).
2. Unary throughput: one Predict of up to BIG_ROWS rows (every series of the model x its days),
   rows/s; HTTP once with rows as objects and once in the columnar form (RowBatch's JSON).
3. Bulk throughput: `rows` rows in chunks of CHUNK_ROWS through PredictStream (gRPC) and the
   NDJSON route `:predictStream` (HTTP, one chunk per line, columnar).

    python -m bench.http_bench [--rows 200000] [--model-dir DIR]

`run(rows, model_dir)` is what `bench.run_all` calls; it returns the numbers as a dict.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RETAILER = "bench"
UNARY_CALLS = 200
UNARY_DAYS = 16
BIG_ROWS = 100_000  # the gateway's default Predict row limit
CHUNK_ROWS = 50_000
REPEATS = 3
EPOCH = np.datetime64("1970-01-01", "D")


def _objects(frame: pd.DataFrame) -> list[dict]:
    return [{"date": d, "store_nbr": int(s), "family": f, "onpromotion": int(p)}
            for d, s, f, p in zip(frame["date"].astype(str), frame["store_nbr"], frame["family"],
                                  frame["onpromotion"], strict=True)]


def _columnar(frame: pd.DataFrame) -> dict:
    days = (frame["date"].to_numpy().astype("datetime64[D]") - EPOCH).astype(int)
    return {"day": days.tolist(), "store_nbr": frame["store_nbr"].astype(int).tolist(),
            "family": frame["family"].astype(str).tolist(),
            "onpromotion": frame["onpromotion"].astype(int).tolist()}


def _percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def _seconds(call) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def run(rows: int, model_dir: str) -> dict:
    """Measure HTTP Predict (latency, rows/s) and the NDJSON stream beside gRPC, same run."""
    import requests
    from forecast_client import ForecastClient
    from forecast_client.rows import make_batch
    from forecast_gateway.backends.local import LocalBackend
    from forecast_gateway.config import GatewayConfig
    from forecast_gateway.dataplane import ForecastService, Tenant
    from forecast_gateway.testing.process import GatewayProcess

    from forecasting.forecast import future_rows
    from forecasting.predictor import Predictor

    predictor = Predictor.load(model_dir)
    horizon = int((predictor.metadata.get("hyperparameters") or {}).get("horizon") or 16)
    grid = predictor.future_rows(horizon)
    big = grid.head(BIG_ROWS).reset_index(drop=True)
    one = future_rows(pd.DataFrame({"store_nbr": predictor.history.store_nbr[:1],
                                    "family": predictor.history.family[:1].astype(str)}),
                      UNARY_DAYS, predictor.last_date)
    pieces = [grid.iloc[i:i + CHUNK_ROWS].reset_index(drop=True)
              for i in range(0, len(grid), CHUNK_ROWS)]
    chunks, total = [], 0
    while total < rows:
        piece = pieces[len(chunks) % len(pieces)].head(rows - total)
        chunks.append(piece)
        total += len(piece)

    with tempfile.TemporaryDirectory(prefix="http-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        service = ForecastService(GatewayConfig(data_dir=data_dir), LocalBackend(training_slots=1))
        service.models.import_model(Tenant(RETAILER), Path(model_dir))
        service.close()
        gateway = GatewayProcess(data_dir, env={"FORECAST_GATEWAY_LOG_LEVEL": "WARNING"},
                                 log_path=Path(tmp) / "gateway.log", http=True)
        with gateway, requests.Session() as session:
            key = gateway.api_key(RETAILER)
            session.headers["Authorization"] = f"Bearer {key}"
            url = f"{gateway.http_url}/v1/retailers/{RETAILER}"
            with ForecastClient(target=gateway.target, api_key=key) as client:
                client.wait_until_ready(10)

                def grpc_predict(frame: pd.DataFrame):
                    return lambda: client.predict(
                        RETAILER, date=frame["date"].to_numpy().astype("datetime64[D]"),
                        store_nbr=frame["store_nbr"].to_numpy(),
                        family=frame["family"].to_numpy(dtype=str),
                        onpromotion=frame["onpromotion"].to_numpy())

                def http_predict(frame: pd.DataFrame, columnar: bool = False):
                    def call():
                        rows_json = _columnar(frame) if columnar else _objects(frame)
                        answer = session.post(f"{url}:predict", json={"rows": rows_json},
                                              timeout=120)
                        answer.raise_for_status()
                        return np.asarray(answer.json()["forecast"])
                    return call

                def grpc_stream():
                    batches = (make_batch(c["date"].to_numpy().astype("datetime64[D]"),
                                          c["store_nbr"].to_numpy(), c["family"].to_numpy(dtype=str),
                                          c["onpromotion"].to_numpy()) for c in chunks)
                    return np.concatenate([v for _, v, _ in client.predict_batches(RETAILER,
                                                                                   batches)])

                def http_stream():
                    body = "".join(json.dumps({"chunk_id": str(i), "rows": _columnar(c)}) + "\n"
                                   for i, c in enumerate(chunks))
                    answer = session.post(f"{url}:predictStream", data=body, timeout=600,
                                          headers={"Content-Type": "application/x-ndjson"})
                    answer.raise_for_status()
                    return np.concatenate([json.loads(line)["forecast"]
                                           for line in answer.text.splitlines()])

                # Warm up both faces (model load, connections); check they agree.
                same = np.array_equal(np.asarray(grpc_predict(big)()), http_predict(big)())
                same = same and np.array_equal(grpc_stream(), http_stream())
                small: dict[str, list[float]] = {"grpc": [], "http": []}
                for _ in range(UNARY_CALLS):
                    small["grpc"].append(_seconds(grpc_predict(one)))
                    small["http"].append(_seconds(http_predict(one)))
                bulk: dict[str, list[float]] = {"grpc": [], "http": [], "http_columnar": [],
                                                "grpc_stream": [], "http_stream": []}
                for _ in range(REPEATS):
                    bulk["grpc"].append(_seconds(grpc_predict(big)))
                    bulk["http"].append(_seconds(http_predict(big)))
                    bulk["http_columnar"].append(_seconds(http_predict(big, columnar=True)))
                    bulk["grpc_stream"].append(_seconds(grpc_stream))
                    bulk["http_stream"].append(_seconds(http_stream))

    g50, g99 = _percentiles(small["grpc"])
    h50, h99 = _percentiles(small["http"])
    rate = {name: round(len(big) / statistics.median(times)) for name, times in bulk.items()
            if not name.endswith("stream")}
    rate["grpc_stream"] = round(rows / statistics.median(bulk["grpc_stream"]))
    rate["http_stream"] = round(rows / statistics.median(bulk["http_stream"]))
    return {
        "unary_rows": len(one), "unary_calls": UNARY_CALLS, "big_rows": len(big),
        "stream_rows": rows, "stream_chunks": len(chunks), "chunk_rows": CHUNK_ROWS,
        "same_forecasts": bool(same),
        "grpc_p50_ms": round(g50, 3), "grpc_p99_ms": round(g99, 3),
        "http_p50_ms": round(h50, 3), "http_p99_ms": round(h99, 3),
        "http_to_grpc_p50": round(h50 / g50, 3), "http_to_grpc_p99": round(h99 / g99, 3),
        "grpc_rows_per_s": rate["grpc"], "http_rows_per_s": rate["http"],
        "http_columnar_rows_per_s": rate["http_columnar"],
        "http_to_grpc_rows_per_s": round(rate["http"] / rate["grpc"], 3),
        "http_columnar_to_grpc_rows_per_s": round(rate["http_columnar"] / rate["grpc"], 3),
        "grpc_stream_rows_per_s": rate["grpc_stream"],
        "http_stream_rows_per_s": rate["http_stream"],
        "http_to_grpc_stream": round(rate["http_stream"] / rate["grpc_stream"], 3),
    }


def markdown(r: dict) -> str:
    """The benchmarks.md section."""
    return "\n".join([
        (f"One gateway process, both faces, the same model and rows, calls interleaved; client "
         f"encoding included on both sides. Same forecasts on both faces: {r['same_forecasts']}."),
        "", "| measure | HTTP/JSON | gRPC | HTTP / gRPC |", "| --- | ---: | ---: | ---: |",
        (f"| Predict p50, {r['unary_rows']} rows as objects (ms) | {r['http_p50_ms']:.2f} | "
         f"{r['grpc_p50_ms']:.2f} | {r['http_to_grpc_p50']:.2f} |"),
        (f"| Predict p99 (ms) | {r['http_p99_ms']:.2f} | {r['grpc_p99_ms']:.2f} | "
         f"{r['http_to_grpc_p99']:.2f} |"),
        (f"| Predict of {r['big_rows']:,} rows as objects (rows/s) | {r['http_rows_per_s']:,} | "
         f"{r['grpc_rows_per_s']:,} | {r['http_to_grpc_rows_per_s']:.2f} |"),
        (f"| the same, columnar JSON (rows/s) | {r['http_columnar_rows_per_s']:,} | "
         f"{r['grpc_rows_per_s']:,} | {r['http_columnar_to_grpc_rows_per_s']:.2f} |"),
        (f"| bulk, {r['stream_rows']:,} rows in {r['stream_chunks']} chunks: NDJSON "
         f":predictStream vs PredictStream (rows/s) | {r['http_stream_rows_per_s']:,} | "
         f"{r['grpc_stream_rows_per_s']:,} | {r['http_to_grpc_stream']:.2f} |"),
    ])


def main(argv: list[str] | None = None) -> int:
    from bench.grpc_bench import _train_sample_model

    parser = argparse.ArgumentParser(description="HTTP/JSON face beside gRPC (loopback only)")
    parser.add_argument("--rows", type=int, default=200_000, help="rows for the bulk run")
    parser.add_argument("--model-dir", help="a model artifact (default: train one on the sample)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="http-bench-model-") as tmp:
        model_dir = args.model_dir or _train_sample_model(Path(tmp))
        result = run(args.rows, model_dir)
        print(json.dumps(result, indent=2))
        print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.path[:0] = [str(ROOT), str(ROOT / "server"), str(ROOT / "client")]
    sys.exit(main())
