"""Builds and runs the grpc.aio server: the servicers (forecasting and admin) behind the
interceptor that authenticates every call, the standard health service, server reflection (v1
and v1alpha), TLS or mTLS when configured, explicit message-size limits and a graceful stop.

Why grpc.aio: the grpcio docs warn that streaming on the sync server is slow (a thread per
stream); with asyncio one event loop serves every stream and CPU-bound work (predictions,
validation) goes to bounded thread pools.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from forecast_client._gen.forecastapi.v1 import admin_service_pb2 as apb
from forecast_client._gen.forecastapi.v1 import admin_service_pb2_grpc as apb_grpc
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2_grpc as pb_grpc
from forecast_client._gen.forecastapi.v1 import monitoring_service_pb2 as mpb
from forecast_client._gen.forecastapi.v1 import monitoring_service_pb2_grpc as mpb_grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from forecast_gateway import memory
from forecast_gateway.api.admin_servicer import AdminServicer
from forecast_gateway.api.interceptor import ServerInterceptor
from forecast_gateway.api.monitoring_servicer import MonitoringServicer
from forecast_gateway.api.reflection import enable_reflection
from forecast_gateway.api.servicer import ForecastServicer
from forecast_gateway.auth.admin import KeyAdmin
from forecast_gateway.auth.authenticator import AUTH_FAILURES, Authenticator
from forecast_gateway.auth.keys import KeyStore
from forecast_gateway.backends import create_backend
from forecast_gateway.backends.base import Backend
from forecast_gateway.config import GatewayConfig
from forecast_gateway.dataplane import ForecastService
from forecast_gateway.http.app import HttpFace
from forecast_gateway.metrics import StateCollector
from forecast_gateway.store.datadir_lock import DataDirLock
from forecast_gateway.tls import server_credentials

log = logging.getLogger("forecast_gateway.server")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ForecastService"].full_name
ADMIN_SERVICE_NAME = apb.DESCRIPTOR.services_by_name["AdminService"].full_name
MONITORING_SERVICE_NAME = mpb.DESCRIPTOR.services_by_name["MonitoringService"].full_name


class GatewayServer:
    """The gateway: `await start()`, then `await stop()` (drains in-flight calls)."""

    def __init__(self, config: GatewayConfig, backend: Backend | None = None):
        self.config = config
        # One gateway per data dir on the embedded SQLite database (taken before the backend or
        # the registry touch it); on PostgreSQL the database's leases coordinate a fleet, which
        # may share the data dir (docs/fleet.md).
        self.data_dir_lock = (None if config.database_url.startswith(("postgres", "postgresql"))
                              else DataDirLock(config.data_dir).acquire())
        self.backend = backend or create_backend(config)
        self.service = ForecastService(config, self.backend)
        self.port: int | None = None
        self._predict_pool = ThreadPoolExecutor(config.predict_threads, thread_name_prefix="predict")
        self._control_pool = ThreadPoolExecutor(config.control_threads, thread_name_prefix="control")
        # Apart from the two above: unary Predict never waits behind stream chunks, and a large
        # upload's validation never delays control calls.
        self._unary_pool = ThreadPoolExecutor(config.unary_predict_threads,
                                              thread_name_prefix="predict-unary")
        self._upload_pool = ThreadPoolExecutor(config.upload_threads, thread_name_prefix="upload")
        memory.limit_arenas(memory.ARENAS)  # before the pools start threads
        self._releaser = memory.Releaser()
        self._health = health.aio.HealthServicer()
        self.keys = KeyStore(self.service.database)
        self.authenticator = (Authenticator(self.keys, config.auth_cache_s) if config.auth
                              else None)
        self.admin = KeyAdmin(self.service.registry, self.keys,
                              on_revoke=self.authenticator.forget if self.authenticator else None)
        self._server: aio.Server | None = None
        self._stopped = asyncio.Event()
        # The HTTP/JSON face (--http-port): calls this server's gRPC service over loopback.
        self.http = HttpFace(config) if config.http_port >= 0 else None
        self.http_port: int | None = None
        self.metrics_port: int | None = None

    async def start(self) -> int:
        """Recover the registry, bind and start serving; returns the bound port."""
        self.service.start()
        limit = self.config.max_message_bytes
        server = aio.server(
            interceptors=[ServerInterceptor(self.authenticator, self.service.state.metrics)],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ],
        )
        pb_grpc.add_ForecastServiceServicer_to_server(
            ForecastServicer(self.service, self._predict_pool, self._control_pool,
                             unary_pool=self._unary_pool, upload_pool=self._upload_pool,
                             releaser=self._releaser), server)
        apb_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(self.admin, self._control_pool), server)
        mpb_grpc.add_MonitoringServiceServicer_to_server(
            MonitoringServicer(self.service, self._control_pool, self._upload_pool), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        if self.config.reflection:
            enable_reflection(server, (SERVICE_NAME, ADMIN_SERVICE_NAME, MONITORING_SERVICE_NAME,
                                       health_pb2.DESCRIPTOR.services_by_name["Health"].full_name))
        address = f"{self.config.host}:{self.config.port}"
        credentials = server_credentials(self.config)
        port = (server.add_insecure_port(address) if credentials is None
                else server.add_secure_port(address, credentials))
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        self._server, self.port = server, port
        await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self._health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        if self.config.metrics_port >= 0:
            self.metrics_port = self._serve_metrics()
        if self.http is not None:
            self.http_port = await self.http.start(port)
            if self.config.http_port_file is not None:
                write_port_file(self.config.http_port_file, self.http_port)
        if self.config.port_file is not None:
            write_port_file(self.config.port_file, port)
        if self.authenticator is None:
            log.warning("authentication is OFF (--no-auth): any caller on this host acts for any "
                        "retailer and runs admin operations; use only for local experiments")
        log.info("gateway serving", extra={"fields": {
            "auth": self.config.auth, "tls": credentials is not None,
            "mtls": self.config.tls_client_ca is not None,
            "address": f"{self.config.host}:{port}", "data_dir": str(self.service.storage.root),
            "artifact_store": self.config.artifact_store or None,
            "http_address": f"{self.config.host}:{self.http_port}" if self.http else None,
            "pid": os.getpid(), **self.backend.describe()}})
        return port

    async def stop(self, grace_s: float | None = None, drain_s: float | None = None) -> None:
        """Graceful stop: report NOT_SERVING and keep serving for `drain_s`
        (config.shutdown_drain_s) while clients move away, then refuse new calls, let in-flight
        ones finish for `grace_s` (config.shutdown_grace_s), stop the backend and close the
        registry.

        The drain matters because gRPC cancels (CANCELLED, grpc/grpc#41785) the calls a stopping
        server had received but not yet started; after the drain, health-checking clients send
        none.
        """
        if self._server is None or self._stopped.is_set():
            return
        grace = self.config.shutdown_grace_s if grace_s is None else grace_s
        drain = self.config.shutdown_drain_s if drain_s is None else drain_s
        log.info("gateway stopping", extra={"fields": {"grace_s": grace, "drain_s": drain}})
        await self._health.enter_graceful_shutdown()
        if drain > 0:
            await asyncio.sleep(drain)
        self.service.begin_shutdown()  # open watches end with UNAVAILABLE
        # HTTP requests in flight ride on gRPC calls: both drain at the same time.
        await asyncio.gather(self._server.stop(grace),
                             *([self.http.stop()] if self.http is not None else []))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.service.close)
        if self.data_dir_lock is not None:
            self.data_dir_lock.release()
        self.service.state.metrics.stop()
        self.keys.close()
        self._predict_pool.shutdown(wait=False, cancel_futures=True)
        self._control_pool.shutdown(wait=False, cancel_futures=True)
        self._unary_pool.shutdown(wait=False, cancel_futures=True)
        self._upload_pool.shutdown(wait=False, cancel_futures=True)
        self._releaser.close()
        self._stopped.set()
        log.info("gateway stopped")

    def _serve_metrics(self) -> int:
        """Prometheus /metrics on the gateway's host (see `metrics.py`)."""
        metrics = self.service.state.metrics
        metrics.add_collector(StateCollector(
            jobs_by_state=self.service.registry.job_counts,
            retailers=self.service.monitoring.summary,
            auth_failures=AUTH_FAILURES.snapshot))
        port = metrics.serve(self.config.host, self.config.metrics_port)
        if self.config.metrics_port_file is not None:
            write_port_file(self.config.metrics_port_file, port)
        return port

    async def wait_stopped(self) -> None:
        """Return once `stop` has finished."""
        await self._stopped.wait()


def write_port_file(path: Path, port: int) -> None:
    """Publish the bound port atomically: a reader (`GatewayProcess`) never sees half a number."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(str(port))
    os.replace(tmp, path)
