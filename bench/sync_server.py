"""The other side of the transport A/B in `make bench`: the gateway's own Predict and
PredictStream code on grpcio's sync server instead of `grpc.aio`.

Both sides run the same `ForecastServicer._predict_unary` / `_predict_chunk` in the same
predict pool, on the same service, backend and configuration (the gateway's own flags and
FORECAST_GATEWAY_* variables, so `forecast_gateway.testing.process.GatewayProcess` launches it with
`module="bench.sync_server"`); only the server loop differs, with RPC_THREADS threads, one held
by each open call. Each call is authenticated as the gateway's interceptor does it (the same `Authenticator`,
principal in the same context variable), so auth costs both sides the same.
This is a benchmark fixture, not a product server: no health, reflection,
status mapping, uploads or training, and its PredictStream answers a full window at a time (not
each chunk as soon as it is done, as the gateway does), which the SDK's send-ahead client never
notices.

    python -m bench.sync_server --host 127.0.0.1 --port 0 --data-dir DIR --port-file FILE
"""

from __future__ import annotations

import collections
import contextvars
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import grpc
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2_grpc as pb_grpc
from forecast_gateway.api.edge import tenant_for
from forecast_gateway.api.servicer import ForecastServicer
from forecast_gateway.auth.authenticator import Authenticator
from forecast_gateway.auth.keys import KeyStore
from forecast_gateway.auth.principal import PRINCIPAL, UNRESTRICTED
from forecast_gateway.backends import create_backend
from forecast_gateway.config import GatewayConfig, load_config
from forecast_gateway.dataplane import ForecastService
from forecast_gateway.server import write_port_file

RPC_THREADS = 16   # grpcio's sync server holds one per open call


class SyncPredictServicer(pb_grpc.ForecastServiceServicer):
    """Predict and PredictStream only, delegating each request to the aio servicer's code."""

    def __init__(self, service: ForecastService, pool: ThreadPoolExecutor,
                 authenticator: Authenticator | None):
        self._service = service
        self._pool = pool
        self._inner = ForecastServicer(service, pool, pool)
        self._authenticator = authenticator

    def _caller(self, context) -> contextvars.Context:
        """A context holding the caller's principal (what the gateway's interceptor sets)."""
        principal = UNRESTRICTED if self._authenticator is None else \
            self._authenticator.authenticate(context.invocation_metadata(), context.auth_context())
        ctx = contextvars.copy_context()
        ctx.run(PRINCIPAL.set, principal)
        return ctx

    def Predict(self, request: pb.PredictRequest, context) -> pb.PredictResponse:
        return self._pool.submit(self._caller(context).run, self._inner._predict_unary,
                                 request).result()

    def PredictStream(self, request_iterator, context) -> Iterator[pb.PredictStreamResponse]:
        # At most `stream_window` chunks forecast at once, answered in arrival order.
        ref = None
        in_flight: collections.deque[Future] = collections.deque()
        window = self._service.config.stream_window
        caller = self._caller(context)
        try:
            for request in request_iterator:
                if ref is None:
                    ref = self._service.models.resolve(
                        caller.run(tenant_for, request.retailer), request.model_version)
                in_flight.append(self._pool.submit(self._inner._predict_chunk, ref, request))
                if len(in_flight) >= window:
                    yield in_flight.popleft().result()
            while in_flight:
                yield in_flight.popleft().result()
        finally:
            for future in in_flight:
                future.cancel()


def serve(config: GatewayConfig) -> None:
    """Serve until SIGTERM; the bound port goes to `config.port_file`."""
    service = ForecastService(config, create_backend(config))
    service.start()
    predict_pool = ThreadPoolExecutor(config.predict_threads, thread_name_prefix="predict")
    server = grpc.server(ThreadPoolExecutor(RPC_THREADS, thread_name_prefix="rpc"), options=[
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0)])
    keys = KeyStore(service.database)
    authenticator = Authenticator(keys, config.auth_cache_s) if config.auth else None
    pb_grpc.add_ForecastServiceServicer_to_server(
        SyncPredictServicer(service, predict_pool, authenticator), server)
    port = server.add_insecure_port(f"{config.host}:{config.port}")
    server.start()
    if config.port_file is not None:
        write_port_file(config.port_file, port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(5).wait()
    predict_pool.shutdown(cancel_futures=True)
    keys.close()
    service.close()


def main(argv: list[str] | None = None) -> int:
    serve(load_config(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
