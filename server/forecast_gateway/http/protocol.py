"""HTTP's own refusals, before a request reaches a route: JSON bodies that echo nothing.

aiohttp answers a request its parser refuses (a bad header byte, a line over 8,190 bytes, a bad
Content-Length, an encoding it cannot decode) from `RequestHandler.handle_error`: a text/plain
body quoting the offending bytes, logged at ERROR with the same text. Those bytes can be an API
key (`Authorization: Bearer <key>\\x00`), and docs/security.md promises that no secret reaches a
response or a log. `JsonErrorRunner` swaps in a handler whose refusals are the HTTP face's JSON
error body, with a message chosen by the kind of error (never its text), logged at INFO.

`malformed(exc)` is the one mapping, also used by the middleware for the same errors raised
while a route reads its body (a gzip `Content-Encoding` on a plain body, a broken chunk).
"""

from __future__ import annotations

import logging
import re
import uuid

from aiohttp import http_exceptions as hx
from aiohttp import web, web_protocol

from forecast_gateway.http import status

log = logging.getLogger("forecast_gateway.http")

_REQUEST_LINE = re.compile(rb"^[A-Z]+ (/|https?://|\*)")
#: The kinds of malformed request, most specific first: (type, HTTP status, message).
_KINDS: tuple[tuple[type[BaseException], int, str], ...] = (
    (hx.BadHttpMethod, 400, "the request line does not start with an HTTP method"),
    (hx.BadStatusLine, 400, "the request line is not METHOD TARGET HTTP/1.x"),
    (hx.InvalidURLError, 400, "the request target (URL) is malformed"),
    (hx.InvalidHeader, 400, "a header field has a forbidden character or a malformed name"),
    (hx.ContentLengthError, 400, "the body is shorter or longer than its Content-Length"),
    (hx.TransferEncodingError, 400, "the chunked body (Transfer-Encoding) is malformed"),
    (hx.DecompressSizeError, 413, "the body decompresses to more than the limit"),
    (hx.ContentEncodingError, 400, ("the body does not decode as its Content-Encoding says "
                                    "(the gateway reads identity, gzip and deflate)")),
    (hx.BadHttpMessage, 400, "the request is not well-formed HTTP/1.1"),
)


def malformed(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and message for a request aiohttp could not parse or decode (a body's
    `web.RequestPayloadError` carries the parser's error as its cause). The message names the
    kind of error and never quotes the request (it may carry a key)."""
    if isinstance(exc, web.RequestPayloadError):
        if isinstance(exc.__cause__, hx.HttpProcessingError):
            return malformed(exc.__cause__)
        return 400, "the body could not be read as its headers describe it"
    if isinstance(exc, hx.LineTooLong):
        line, limit = (exc.args + (b"", "the"))[:2]
        line = line.encode("latin-1", "replace") if isinstance(line, str) else bytes(line)
        # llhttp (aiohttp's C parser) passes the URL alone, its Python parser the whole line.
        if line.startswith((b"/", b"http://", b"https://", b"*")) or _REQUEST_LINE.match(line):
            return 414, f"the request line (method and URL) is longer than {limit} bytes"
        return 431, f"a header field is longer than {limit} bytes"
    for kind, code, message in _KINDS:
        if isinstance(exc, kind):
            return code, message
    return 400, "the request is not well-formed HTTP/1.1"


class _JsonErrorHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, with `handle_error` answering the JSON error body."""

    __slots__ = ()

    def handle_error(self, request, status_code: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:   # the answer had started: only closing is left
            raise ConnectionError("the response had started when the request failed")
        rid = uuid.uuid4().hex
        if isinstance(exc, hx.HttpProcessingError):
            status_code, text = malformed(exc)
            code = status.CODE_OF_HTTP.get(status_code, "INVALID_ARGUMENT")
            log.info("http request refused before routing", extra={"fields": {
                "request_id": rid, "status": status_code, "kind": type(exc).__name__}})
        elif status_code == 504:
            code, text = "DEADLINE_EXCEEDED", "the request took too long"
        else:   # the app's own middleware answers its errors: this is a bug, logged with it
            log.error("http handler failed outside the middleware", exc_info=exc,
                      extra={"fields": {"request_id": rid}})
            status_code, code = 500, "INTERNAL"
            text = f"internal error; the gateway logged the details under request id {rid}"
        response = status.error_response(status_code, code, text, rid)
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    """Makes `_JsonErrorHandler`s (the protocol factory of the listening socket)."""

    def __call__(self) -> web_protocol.RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer HTTP's own refusals as JSON (module doc)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp has no public hook for the handler class; the subclass only adds behaviour.
        server.__class__ = _JsonErrorServer
        return server
