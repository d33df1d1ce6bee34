"""The other side of the transport A/B in `make bench`: the gateway's own Predict and
PredictStream code on grpcio's sync server instead of `grpc.aio`.

Both sides run the same `ForecastServicer._predict_unary` / `_predict_chunk` on the same
service, backend, thread pool size and stream window; only the server loop differs. This is a
benchmark fixture, not a product server: no health, reflection, status mapping, uploads or
training.

    python -m bench.sync_server --host 127.0.0.1 --port 0 --data-dir DIR --port-file FILE

It takes the gateway's start-up flags, so `forecast_gateway.process.GatewayProcess` launches it
(`module="bench.sync_server"`).
"""

from __future__ import annotations

import argparse
import collections
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import grpc
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2_grpc as pb_grpc
from forecast_gateway.backends import create_backend
from forecast_gateway.config import GatewayConfig
from forecast_gateway.service import ForecastService
from forecast_gateway.servicer import ForecastServicer


class SyncPredictServicer(pb_grpc.ForecastServiceServicer):
    """Predict and PredictStream only, delegating each request to the aio servicer's code."""

    def __init__(self, service: ForecastService, pool: ThreadPoolExecutor):
        self._service = service
        self._pool = pool
        self._inner = ForecastServicer(service, pool, pool)

    def Predict(self, request: pb.PredictRequest, context) -> pb.PredictResponse:
        return self._inner._predict_unary(request)

    def PredictStream(self, request_iterator, context) -> Iterator[pb.PredictStreamResponse]:
        # The same window as the aio servicer: at most `stream_window` chunks forecast at once,
        # answered in arrival order.
        ref = None
        in_flight: collections.deque[Future] = collections.deque()
        window = self._service.config.stream_window
        try:
            for request in request_iterator:
                if ref is None:
                    ref = self._service.resolve_model(request.retailer, request.model_version)
                in_flight.append(self._pool.submit(self._inner._predict_chunk, ref, request))
                if len(in_flight) >= window:
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()
        finally:
            for future in in_flight:
                future.cancel()


def serve(host: str, port: int, data_dir: Path, port_file: Path) -> None:
    """Serve until SIGTERM; the bound port is written to `port_file`."""
    config = GatewayConfig(host=host, port=port, data_dir=data_dir)
    service = ForecastService(config, create_backend(config))
    service.start()
    predict_pool = ThreadPoolExecutor(config.predict_threads, thread_name_prefix="predict")
    # Sync grpcio needs a thread per open call, on top of the predict pool.
    server = grpc.server(ThreadPoolExecutor(16, thread_name_prefix="rpc"), options=[
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0)])
    pb_grpc.add_ForecastServiceServicer_to_server(SyncPredictServicer(service, predict_pool),
                                                  server)
    port = server.add_insecure_port(f"{config.host}:{config.port}")
    server.start()
    tmp = port_file.with_name(port_file.name + ".tmp")
    tmp.write_text(str(port))
    tmp.replace(port_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(5).wait()
    predict_pool.shutdown(cancel_futures=True)
    service.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.data_dir, args.port_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
