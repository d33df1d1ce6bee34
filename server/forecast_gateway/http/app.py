"""`HttpFace`: the gateway's HTTP/JSON API, an aiohttp server on the gateway's own event loop.

Why aiohttp: the gateway is a grpc.aio server, so the HTTP face shares its asyncio loop and
process (no second server process, no thread bridging), and aiohttp streams request and response
bodies, which the upload and NDJSON routes need. Each route calls the gateway's gRPC service over
a loopback channel, so every behaviour (validation, limits, auth, request ids, error mapping)
has one implementation: the gRPC one.

Also served: `/openapi.json` (generated from the descriptors) and `/docs` (Swagger UI, its assets
from the installed `swagger-ui-bundle` package, no CDN).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import swagger_ui_bundle
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from grpc import aio

from forecast_gateway.config import GatewayConfig
from forecast_gateway.http import status, transcode
from forecast_gateway.http.calls import BodyStalled, BodyTooLarge, Caller
from forecast_gateway.http.openapi import build_openapi
from forecast_gateway.http.protocol import JsonErrorRunner, malformed
from forecast_gateway.http.routes import Route, discover_routes

log = logging.getLogger("forecast_gateway.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SWAGGER_ASSETS = Path(swagger_ui_bundle.swagger_ui_path)
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"}});
</script></body></html>
"""
_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}
REQUEST_ID = web.RequestKey("request_id", str)


def loopback_target(host: str, port: int) -> str:
    """The address the HTTP face dials its own gateway at: the listening host, or 127.0.0.1
    when the gateway listens on every interface."""
    if host in _WILDCARD_HOSTS or host == "localhost":
        return f"127.0.0.1:{port}"
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def bulk_hint(routes: list[Route]) -> str:
    """The pointer a 413 answer carries: the streaming routes, read from the routes."""
    streams = [f"{r.verb.upper()} {r.template}" for r in routes if r.client_streaming and r.bound]
    return ("bulk input goes to the streaming API: " + ", ".join(streams) +
            " (or the gRPC streams)") if streams else ""


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    return given[:128] if given else uuid.uuid4().hex


class HttpFace:
    """The HTTP server: `await start(grpc_port)` returns the bound HTTP port; `await stop()`."""

    def __init__(self, config: GatewayConfig, routes: list[Route] | None = None):
        self.config = config
        self.routes = discover_routes() if routes is None else routes
        self.port: int | None = None
        self._openapi = json.dumps(build_openapi(self.routes))
        self._bulk_hint = bulk_hint(self.routes)
        self._pool = ThreadPoolExecutor(config.control_threads, thread_name_prefix="http")
        self._channel: aio.Channel | None = None
        self._runner: web.AppRunner | None = None
        self._caller: Caller | None = None

    def build_app(self) -> web.Application:
        """The aiohttp application: docs, the OpenAPI document, then every RPC route."""
        app = web.Application(client_max_size=self.config.max_message_bytes,
                              middlewares=[self._errors])
        app.router.add_get("/openapi.json", self._openapi_json)
        app.router.add_get("/docs", self._docs)
        app.router.add_static("/docs/assets", SWAGGER_ASSETS)
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        return app

    async def start(self, grpc_port: int) -> int:
        """Open the loopback channel to the gateway on `grpc_port` and listen on
        config.host:config.http_port; returns the bound port."""
        limit = self.config.max_message_bytes
        self._channel = aio.insecure_channel(
            loopback_target(self.config.host, grpc_port),
            options=[("grpc.max_receive_message_length", limit),
                     ("grpc.max_send_message_length", limit)])
        self._caller = Caller(self._channel, self._pool, max_body_bytes=limit,
                              max_chunk_bytes=self.config.max_upload_chunk_bytes,
                              bulk_hint=self._bulk_hint,
                              body_idle_s=self.config.http_keepalive_s)
        runner = JsonErrorRunner(self.build_app(), access_log=None,
                                 shutdown_timeout=self.config.shutdown_grace_s,
                                 keepalive_timeout=self.config.http_keepalive_s)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.http_port)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        """Refuse new requests, let those in flight finish (up to shutdown_grace_s), close."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- handlers ---------------------------------------------------------------------------------

    async def _openapi_json(self, request: web.Request) -> web.Response:
        return web.Response(text=self._openapi, content_type="application/json")

    async def _docs(self, request: web.Request) -> web.Response:
        return web.Response(text=DOCS_PAGE.format(title="Forecast API"), content_type="text/html")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        allowed: list[str] = []
        for route in self.routes:
            found = route.match(path)
            if found is None:
                continue
            if route.verb != request.method.lower():
                allowed.append(route.verb.upper())
                continue
            assert self._caller is not None
            return await self._caller.call(route, request, found, request[REQUEST_ID])
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, allowed)
        raise web.HTTPNotFound(text=f"no route {request.method} {path}; see /openapi.json")

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Request id, one access-log line per request, and HTTP's own refusals as JSON."""
        rid = request[REQUEST_ID] = _request_id(request)
        started = time.perf_counter()
        try:
            response = await handler(request)
        except transcode.BadRequest as exc:
            response = status.error_response(400, "INVALID_ARGUMENT", str(exc), rid)
        except BodyTooLarge as exc:
            hint = self._bulk_hint
            response = status.error_response(413, "RESOURCE_EXHAUSTED",
                                             f"{exc}; {hint}" if hint else str(exc), rid)
        except BodyStalled as exc:
            response = status.error_response(408, "DEADLINE_EXCEEDED", str(exc), rid)
            response.force_close()
        except (HttpProcessingError, web.RequestPayloadError) as exc:   # a body that does not
            # decode (protocol.py)
            code, message = malformed(exc)
            response = status.error_response(code, status.CODE_OF_HTTP.get(
                code, "INVALID_ARGUMENT"), message, rid)
        except ConnectionError:   # the client hung up mid-request: nobody to answer
            log.info("http client went away", extra={"fields": {
                "request_id": rid, "method": request.method, "path": request.path}})
            return status.error_response(499, "CANCELLED", "the client closed the connection",
                                         rid)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = status.CODE_OF_HTTP.get(exc.status, "INVALID_ARGUMENT")
            response = status.error_response(exc.status, code, exc.text or exc.reason, rid,
                                             {k: v for k, v in exc.headers.items()
                                              if k == "Allow"})
        except Exception as exc:
            log.error("http handler failed", exc_info=exc, extra={"fields": {"request_id": rid}})
            response = status.error_response(
                500, "INTERNAL", f"internal error; the gateway logged the details under "
                f"request id {rid}", rid)
        log.info("http done", extra={"fields": {
            "request_id": rid, "method": request.method, "path": request.path,
            "status": response.status, "ms": round((time.perf_counter() - started) * 1e3, 2)}})
        return response
