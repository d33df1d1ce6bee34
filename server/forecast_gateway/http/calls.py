"""One HTTP request -> one call of the gateway's own gRPC service over a loopback channel, per
kind of RPC:

- unary: a JSON body (or none) in, a JSON object out;
- server streaming (WatchTrainingJob): NDJSON out, one response message per line;
- client streaming with a `bytes` body field (UploadDataset): the raw HTTP body (or the file
  part of a multipart form) cut into chunks, after a first message made of the path and query;
- client streaming with a JSON body (PredictStream): NDJSON in, one request message per line
  (path and query fields merged into each), and NDJSON out when the RPC streams back.

`Authorization` travels as `authorization` metadata and `X-Request-Id` as `x-request-id`, so
authentication, request ids, logging and the error mapping are the gRPC interceptor's, once.
A stream that fails after its first line has gone out ends with one line `{"error": {...}}`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from aiohttp import BodyPartReader, web
from google.protobuf.message import Message
from grpc import aio

from forecast_gateway.http import status, transcode
from forecast_gateway.http.routes import Route

log = logging.getLogger("forecast_gateway.http")
T = TypeVar("T")
NDJSON = "application/x-ndjson"
UPLOAD_CHUNK_BYTES = 4 * 1024 * 1024  # what the SDK sends per UploadDatasetRequest
INLINE_BYTES = 32 * 1024  # JSON work on fewer bytes runs on the event loop (well under 1 ms)


class Caller:
    """Runs routes against one gRPC channel; JSON work runs in `pool`, off the event loop."""

    def __init__(self, channel: aio.Channel, pool: Executor, *, max_body_bytes: int,
                 max_chunk_bytes: int, bulk_hint: str, body_idle_s: float = 15.0):
        self._idle = body_idle_s
        self._channel = channel
        self._pool = pool
        self._max_body = max_body_bytes
        self._chunk = min(UPLOAD_CHUNK_BYTES, max_chunk_bytes)
        self._hint = bulk_hint
        self._stubs: dict[str, Any] = {}

    async def _off_loop(self, fn: Callable[..., T], *args: Any, size: int | None = None) -> T:
        """`fn(*args)` on the JSON pool; inline when `size` (bytes of the work) is small, where
        the hop to a thread would cost more than the work."""
        if size is not None and size < INLINE_BYTES:
            return fn(*args)
        ctx = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(ctx.run, fn, *args))

    def _stub(self, route: Route) -> Any:
        stub = self._stubs.get(route.grpc_path)
        if stub is None:
            kind = {(False, False): self._channel.unary_unary,
                    (False, True): self._channel.unary_stream,
                    (True, False): self._channel.stream_unary,
                    (True, True): self._channel.stream_stream}[
                        (route.client_streaming, route.server_streaming)]
            stub = kind(route.grpc_path, request_serializer=route.request_class.SerializeToString,
                        response_deserializer=route.response_class.FromString)
            self._stubs[route.grpc_path] = stub
        return stub

    async def call(self, route: Route, request: web.Request, path_vars: dict[str, str],
                   request_id: str) -> web.StreamResponse:
        """Answer one HTTP request through `route`."""
        metadata = [("x-request-id", request_id)]
        if "Authorization" in request.headers:
            credential = request.headers["Authorization"]
            if not (credential.isascii() and credential.isprintable()):
                # gRPC metadata is printable ASCII; the value itself is never echoed or logged.
                return status.error_response(
                    401, "UNAUTHENTICATED", "the Authorization header must be 'Bearer <key>' in "
                    "printable ASCII", request_id, {"WWW-Authenticate": "Bearer"})
            metadata.append(("authorization", credential))
        try:
            if route.raw_body_field is not None:
                return await self._upload(route, request, path_vars, metadata)
            if route.client_streaming:
                return await self._ndjson_in(route, request, path_vars, metadata, request_id)
            message = await self._unary_request(route, request, path_vars)
            if route.server_streaming:
                return await self._stream_out(request, self._stub(route)(message, metadata=metadata),
                                              request_id)
            answer = await self._stub(route)(message, metadata=metadata)
            text = await self._off_loop(
                lambda: json.dumps(transcode.response_json(route, answer)),
                size=answer.ByteSize())
            return web.Response(text=text, content_type="application/json",
                                headers={"X-Request-Id": request_id})
        except aio.AioRpcError as exc:
            return status.rpc_error_response(exc, request_id, self._hint)

    # -- unary request bodies ---------------------------------------------------------------------

    async def _unary_request(self, route: Route, request: web.Request,
                             path_vars: dict[str, str]) -> Message:
        raw = await self._read_body(request) if route.body or request.body_exists else b""
        if not route.body and raw:
            raise transcode.BadRequest(f"{request.method} {route.template} takes no body; give "
                                       "the fields as query parameters")
        return await self._off_loop(self._build, route, path_vars, list(request.query.items()), raw,
                                    size=len(raw))

    @staticmethod
    def _build(route: Route, path_vars: dict[str, str], query: list[tuple[str, str]],
               raw: bytes) -> Message:
        return transcode.build_request(route, path_vars, query, transcode.parse_json(raw))

    async def _read_body(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > self._max_body:
            raise BodyTooLarge(self._max_body, request.content_length)
        body = bytearray()
        while chunk := await _idle(request.content.readany(), self._idle):
            body += chunk
            if len(body) > self._max_body:
                raise BodyTooLarge(self._max_body, None)
        return bytes(body)

    # -- server streaming -------------------------------------------------------------------------

    async def _stream_out(self, request: web.Request, call: Any, request_id: str,
                          failures: list[Exception] | None = None) -> web.StreamResponse:
        """NDJSON out. Until the first message the call may still fail as a normal HTTP error;
        after it, an error is the last line."""
        response: web.StreamResponse | None = None
        try:
            async for message in call:
                line = await self._off_loop(_ndjson_line, message, size=message.ByteSize())
                if response is None:
                    response = web.StreamResponse(headers={"Content-Type": NDJSON,
                                                           "X-Request-Id": request_id})
                    await response.prepare(request)
                await response.write(line.encode())
        except (aio.AioRpcError, asyncio.CancelledError) as exc:
            if response is None or (isinstance(exc, asyncio.CancelledError) and not failures):
                raise
            if failures:
                body = status.error_body("INVALID_ARGUMENT" if isinstance(
                    failures[0], transcode.BadRequest) else "RESOURCE_EXHAUSTED",
                    str(failures[0]), request_id)
            else:
                assert isinstance(exc, aio.AioRpcError)
                trailing = {k: str(v) for k, v in (exc.trailing_metadata() or ())}
                body = status.error_body(exc.code().name, exc.details() or exc.code().name,
                                         trailing.get("x-request-id", request_id))
            await response.write((json.dumps({"error": body}) + "\n").encode())
        if response is None:  # a stream that ended without a message
            response = web.StreamResponse(headers={"Content-Type": NDJSON,
                                                   "X-Request-Id": request_id})
            await response.prepare(request)
        await response.write_eof()
        return response

    # -- client streaming: raw bytes --------------------------------------------------------------

    async def _upload(self, route: Route, request: web.Request, path_vars: dict[str, str],
                      metadata: list[tuple[str, str]]) -> web.StreamResponse:
        field = route.raw_body_field
        assert field is not None
        query = list(request.query.items())
        source: Any = request.content
        if request.content_type == "multipart/form-data":
            source, query = await self._multipart_file(request, route, query)
        first = await self._off_loop(
            lambda: transcode.parse_message(
                route.request_class, transcode.request_data(route, path_vars, query, None)))
        cls, name, size = route.request_class, field.name, self._chunk

        async def messages() -> AsyncIterator[Message]:
            yield first
            buffer = bytearray()
            async for block in _blocks(source, size, self._idle):
                buffer += block
                while len(buffer) >= size:
                    yield cls(**{name: bytes(buffer[:size])})
                    del buffer[:size]
            if buffer:
                yield cls(**{name: bytes(buffer)})

        failures: list[Exception] = []
        try:
            answer = await self._stub(route)(_guarded(messages(), failures), metadata=metadata)
        except (aio.AioRpcError, asyncio.CancelledError):
            if failures:  # reading the body failed: that is the answer, not the cancellation
                raise failures[0] from None
            raise
        return web.json_response(transcode.response_json(route, answer),
                                 headers={"X-Request-Id": dict(metadata)["x-request-id"]})

    @staticmethod
    async def _multipart_file(request: web.Request, route: Route,
                              query: list[tuple[str, str]]) -> tuple[BodyPartReader, list]:
        """The file part of a multipart form; the text parts before it count as query
        parameters, and the file's name fills `filename` when the form does not give it."""
        try:
            return await Caller._file_part(request, route, query)
        except (ValueError, KeyError, AssertionError) as exc:
            if isinstance(exc, transcode.BadRequest):
                raise
            raise transcode.BadRequest(f"the multipart/form-data body is malformed: {exc}") \
                from None

    @staticmethod
    async def _file_part(request: web.Request, route: Route,
                         query: list[tuple[str, str]]) -> tuple[BodyPartReader, list]:
        reader = await request.multipart()
        fields = list(query)
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                raise transcode.BadRequest("nested multipart bodies are not accepted")
            if part.filename is None:
                fields.append((part.name or "", await part.text()))
                continue
            descriptor = route.method.input_type
            names = {transcode.resolve_query_name(descriptor, n) for n, _ in fields}
            try:
                target = transcode.resolve_query_name(descriptor, "filename")
            except transcode.BadRequest:
                target = None
            if target is not None and target not in names:
                fields.append((target, part.filename))
            return part, fields
        raise transcode.BadRequest("the multipart form has no file part")

    # -- client streaming: NDJSON -----------------------------------------------------------------

    async def _ndjson_in(self, route: Route, request: web.Request, path_vars: dict[str, str],
                         metadata: list[tuple[str, str]], request_id: str) -> web.StreamResponse:
        query = list(request.query.items())
        limit = self._max_body

        async def messages() -> AsyncIterator[Message]:
            number = 0
            if not request.body_exists:   # no body: a stream of no chunks
                return
            while True:
                try:
                    line = await _idle(request.content.readuntil(b"\n", max_size=limit),
                                       self._idle)
                except ValueError:
                    raise BodyTooLarge(limit, None, f"line {number + 1}") from None
                if not line:
                    return
                number += 1
                if not line.strip():
                    continue
                yield await self._off_loop(self._ndjson_message, route, path_vars, query, line,
                                           number)

        failures: list[Exception] = []
        call = self._stub(route)(_guarded(messages(), failures), metadata=metadata)
        try:
            if route.server_streaming:
                return await self._stream_out(request, call, request_id, failures)
            answer = await call
            return web.json_response(transcode.response_json(route, answer),
                                     headers={"X-Request-Id": request_id})
        except (aio.AioRpcError, asyncio.CancelledError):
            # A bad line ends the request iterator and gRPC cancels the call: the line's
            # error, not the cancellation, is the answer.
            if failures:
                raise failures[0] from None
            raise

    @staticmethod
    def _ndjson_message(route: Route, path_vars: dict[str, str], query: list[tuple[str, str]],
                        line: bytes, number: int) -> Message:
        where = f"line {number}"
        try:
            body = transcode.parse_json(line, where)
            return transcode.build_request(route, path_vars, query, body)
        except transcode.BadRequest as exc:
            raise transcode.BadRequest(f"{where}: {exc}" if not str(exc).startswith(where)
                                       else str(exc)) from None


class BodyTooLarge(Exception):
    """A request body (or one NDJSON line) over the HTTP face's limit, which is the gRPC
    message limit."""

    def __init__(self, limit: int, actual: int | None, what: str = "the request body"):
        got = f" (got {actual:,} bytes)" if actual is not None else ""
        super().__init__(f"{what} is over the limit of {limit:,} bytes{got}")


def _ndjson_line(message: Message) -> str:
    return json.dumps(transcode.message_to_json(message)) + "\n"


async def _guarded(messages: AsyncIterator[Message],
                   failures: list[Exception]) -> AsyncIterator[Message]:
    """Remember why a request iterator failed (gRPC reports it only as a cancellation)."""
    try:
        async for message in messages:
            yield message
    except Exception as exc:
        failures.append(exc)
        raise


class BodyStalled(Exception):
    """No byte of a request body arrived for the idle limit (a client that stopped sending)."""

    def __init__(self, idle_s: float):
        super().__init__(f"no byte of the request body arrived for {idle_s:g} s; the "
                         "connection is closed (send the body without pauses)")


async def _idle(read: Awaitable[T], idle_s: float) -> T:
    """One read of a request body, which may wait at most `idle_s` for its bytes."""
    try:
        async with asyncio.timeout(idle_s):
            return await read
    except TimeoutError:
        raise BodyStalled(idle_s) from None


async def _blocks(source: Any, size: int, idle_s: float) -> AsyncIterator[bytes]:
    """The bytes of a request body or of one multipart part, in blocks of at most `size`, each
    arriving within `idle_s`."""
    if isinstance(source, BodyPartReader):
        try:
            while block := await _idle(source.read_chunk(size), idle_s):
                yield block
        except (ValueError, AssertionError) as exc:   # a boundary that never comes, etc.
            raise transcode.BadRequest(f"the multipart/form-data body is malformed: {exc}") \
                from None
    else:
        while block := await _idle(source.read(size), idle_s):
            yield block
