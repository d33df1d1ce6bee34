"""The one place where errors become gRPC status codes, plus request ids and access logs.

`to_status` maps the domain taxonomy (forecasting.errors + forecast_gateway.errors) to a status
code and a message; `ServerInterceptor` wraps every handler: it sets the request id (metadata
`x-request-id`, or a new one), echoes it in the trailing metadata, authenticates the caller once
(the `Principal` goes inward in a context variable; health and reflection stay open; the admin
service needs an admin), logs one line per call and aborts with `to_status(exc)` when the
handler raises. Servicers never call `context.abort`. Refused calls are counted in
`auth.authenticator.AUTH_FAILURES` and logged with the request id, never the credential.
It also wraps each handler's request deserializer, so bytes that are not a valid message answer
INVALID_ARGUMENT (grpc itself would answer UNKNOWN, or INTERNAL on a stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from grpc import aio

from forecast_gateway import errors as gw
from forecast_gateway.auth.authenticator import AUTH_FAILURES, Authenticator
from forecast_gateway.auth.principal import PRINCIPAL, UNRESTRICTED, Principal
from forecast_gateway.logs import REQUEST_ID
from forecast_gateway.metrics import GatewayMetrics

log = logging.getLogger("forecast_gateway.rpc")

INTERNAL_MESSAGE = "internal error; the gateway logged the details under request id {rid}"
#: Services any caller may use: the standard health check and server reflection.
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                 "grpc.reflection.v1.ServerReflection")
#: The service whose every method needs an admin principal.
ADMIN_SERVICE = "forecastapi.v1.AdminService"


def to_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Map an exception to (status code, message). Never UNKNOWN; INTERNAL only for bugs.

    An error of the one tree (`forecasting.errors`, the gateway's errors included) carries its
    code; anything else is a bug, whose text never reaches the caller."""
    from forecasting import errors as fe  # the library's taxonomy

    message = str(exc)
    notes = getattr(exc, "__notes__", None)
    if notes:
        message = "; ".join(notes) + ": " + message
    if isinstance(exc, fe.ForecastingError) and exc.code is not fe.Code.INTERNAL:
        return grpc.StatusCode[exc.code.value], message
    if isinstance(exc, asyncio.TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED, "the call ran out of time"
    if isinstance(exc, NotImplementedError):  # an RPC of the proto this gateway does not serve yet
        return grpc.StatusCode.UNIMPLEMENTED, "this gateway does not implement the method"
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE.format(rid=REQUEST_ID.get() or "-")


class UndecodableRequest:
    """What a request deserializer returns for bytes that are not a valid message (invalid UTF-8
    in a string field, a truncated varint, ...). grpc would answer UNKNOWN (unary) or INTERNAL
    (streaming) if the deserializer raised; the wrapped handler raises `error` instead, which
    `to_status` maps to INVALID_ARGUMENT."""

    def __init__(self, message_type: str, reason: str):
        self.error = gw.InvalidArgument(
            "request", f"the bytes are not a valid {message_type} message ({reason})")


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer`, answering `UndecodableRequest` instead of raising DecodeError."""
    if deserializer is None:
        return None
    owner = getattr(deserializer, "__self__", None)
    message_type = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "request")

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            return UndecodableRequest(message_type, str(exc) or "undecodable")

    return decode


def _decoded(request: Any) -> Any:
    """A unary request, or raise its InvalidArgument when its bytes could not be decoded."""
    if isinstance(request, UndecodableRequest):
        raise request.error
    return request


async def _decoded_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A request stream that raises InvalidArgument at the first undecodable message."""
    async for request in requests:
        yield _decoded(request)


def _reset(var: contextvars.ContextVar[Any], token: contextvars.Token[Any]) -> None:
    try:
        var.reset(token)
    except ValueError:  # finalised in another context (a closed stream)
        pass


def _request_id(context: aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and value:
            return str(value)[:128]
    return uuid.uuid4().hex


def _service(method: str) -> str:
    """"/pkg.Service/Method" -> "pkg.Service"."""
    return method.lstrip("/").split("/", 1)[0]


class ServerInterceptor(aio.ServerInterceptor):
    """Request ids, authentication, one access-log line per call and the error mapping, for
    every RPC. `authenticator` None turns authentication off (`--no-auth`): every caller is
    `UNRESTRICTED`."""

    def __init__(self, authenticator: Authenticator | None = None,
                 metrics: GatewayMetrics | None = None):
        self._authenticator = authenticator
        self._metrics = metrics

    def _principal(self, method: str, context: aio.ServicerContext) -> Principal | None:
        """The caller of `method` (None for the open services); raises Unauthenticated."""
        service = _service(method)
        if service in OPEN_SERVICES:
            return None
        if self._authenticator is None:
            return UNRESTRICTED
        return self._authenticator.authenticate(context.invocation_metadata(),
                                                context.auth_context())

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        deserializer = _tolerant(handler.request_deserializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(method, handler.unary_unary, _decoded),
                deserializer, handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary(method, handler.stream_unary, _decoded_stream),
                deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(method, handler.unary_stream, _decoded),
                deserializer, handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            self._wrap_stream(method, handler.stream_stream, _decoded_stream),
            deserializer, handler.response_serializer)

    @contextlib.asynccontextmanager
    async def _call(self, method: str, context: aio.ServicerContext) -> AsyncIterator[dict[str, Any]]:
        """Around one handler, unary or streaming: the request id, one log line when it ends and
        `to_status` when it raises. Yields a dict of extra log fields (a stream counts its
        `messages` in it)."""
        rid = _request_id(context)
        token = REQUEST_ID.set(rid)
        principal_token = PRINCIPAL.set(None)
        context.set_trailing_metadata((("x-request-id", rid),))
        started = time.perf_counter()
        extra: dict[str, Any] = {}
        try:
            principal = self._principal(method, context)
            PRINCIPAL.set(principal)
            if principal is not None:
                extra["principal"] = principal.credential
                if _service(method) == ADMIN_SERVICE:
                    principal.authorise_admin()
            yield extra
            self._done(method, started, **extra)
        except (asyncio.CancelledError, GeneratorExit):
            self._done(method, started, code="CANCELLED", **extra)
            raise
        except aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped in one place
            await self._fail(context, method, started, exc, extra)
        finally:
            _reset(PRINCIPAL, principal_token)
            _reset(REQUEST_ID, token)

    async def _fail(self, context: aio.ServicerContext, method: str, started: float,
                    exc: Exception, extra: dict[str, Any]) -> None:
        code, message = to_status(exc)
        seconds = time.perf_counter() - started
        if self._metrics is not None:
            self._metrics.observe_rpc(method, code.name, seconds)
        fields = {"method": method, "code": code.name, "ms": round(seconds * 1e3, 2), **extra}
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            AUTH_FAILURES.inc(code.name, getattr(exc, "reason", "denied"))
        if code == grpc.StatusCode.INTERNAL:
            log.error("rpc failed: %s", message, exc_info=exc, extra={"fields": fields})
        else:
            log.info("rpc failed: %s", message, extra={"fields": fields})
        await context.abort(code, message, trailing_metadata=(("x-request-id", REQUEST_ID.get()),))

    def _done(self, method: str, started: float, code: str = "OK", **extra: Any) -> None:
        seconds = time.perf_counter() - started
        if self._metrics is not None:
            self._metrics.observe_rpc(method, code, seconds)
        log.info("rpc done", extra={"fields": {
            "method": method, "code": code, "ms": round(seconds * 1e3, 2), **extra}})

    def _wrap_unary(self, method: str, behavior: Callable[..., Awaitable[Any]],
                    decoded: Callable[[Any], Any]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(request: Any, context: aio.ServicerContext) -> Any:
            async with self._call(method, context):
                return await behavior(decoded(request), context)

        return wrapper

    def _wrap_stream(self, method: str, behavior: Callable[..., Any],
                     decoded: Callable[[Any], Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(behavior):
            # The writer API (`await context.write(...)`, e.g. grpc.health.v1's Watch): gRPC
            # tells the two kinds apart by the handler's type, so the wrapper keeps its kind.
            async def writer(request: Any, context: aio.ServicerContext) -> None:
                async with self._call(method, context):
                    await behavior(decoded(request), context)

            return writer

        async def wrapper(request: Any, context: aio.ServicerContext) -> Any:
            async with self._call(method, context) as extra:
                extra["messages"] = 0
                async for response in behavior(decoded(request), context):
                    extra["messages"] += 1
                    yield response

        return wrapper
