"""gRPC status -> HTTP status, and the one JSON error body of the HTTP face:
`{"code": "<gRPC code name>", "message": "...", "request_id": "..."}`.

The HTTP face never decides an error itself beyond HTTP's own (bad JSON, unknown route, body
over the size limit): it calls the gateway's gRPC service, whose interceptor (`to_status`) is
the one place errors become status codes; this module only translates that code.
"""

from __future__ import annotations

import json
from typing import Any

import grpc
from aiohttp import web

from forecasting import errors as fe

#: gRPC status -> HTTP status: the library's one table (`forecasting.errors.HTTP_STATUS`), which
#: the inference container answers with too.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode[code.value]: http for code, http in fe.HTTP_STATUS.items()}
# HTTP's own refusals, named with the gRPC code of the same meaning.
CODE_OF_HTTP: dict[int, str] = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED",
                                404: "NOT_FOUND", 405: "UNIMPLEMENTED", 408: "DEADLINE_EXCEEDED",
                                413: "RESOURCE_EXHAUSTED", 414: "INVALID_ARGUMENT",
                                415: "INVALID_ARGUMENT", 431: "RESOURCE_EXHAUSTED",
                                499: "CANCELLED", 500: "INTERNAL"}
RETRY_AFTER = "retry-after"


def http_status(code: grpc.StatusCode, trailing: dict[str, str] | None = None) -> int:
    """The HTTP status of a gRPC status. RESOURCE_EXHAUSTED is 413 (a payload over a limit),
    or 429 when the status carries `retry-after` metadata (a rate or quota limit: try later)."""
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and trailing and RETRY_AFTER in trailing:
        return 429
    return HTTP_STATUS.get(code, 500)


def error_body(code: str, message: str, request_id: str) -> dict[str, Any]:
    """The JSON error body."""
    return {"code": code, "message": message, "request_id": request_id}


def error_response(status: int, code: str, message: str, request_id: str,
                   headers: dict[str, str] | None = None) -> web.Response:
    """An error answer with the JSON body and the X-Request-Id header."""
    return web.Response(status=status, text=json.dumps(error_body(code, message, request_id)),
                        content_type="application/json",
                        headers={"X-Request-Id": request_id, **(headers or {})})


def rpc_error_response(error: grpc.aio.AioRpcError, request_id: str, hint: str = "") -> web.Response:
    """A failed gRPC call as an HTTP error answer (the gateway's request id when it sent one)."""
    trailing = {k: str(v) for k, v in (error.trailing_metadata() or ())}
    status = http_status(error.code(), trailing)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if status == 429:
        headers["Retry-After"] = trailing[RETRY_AFTER]
    message = error.details() or error.code().name
    if status == 413 and hint:
        message = f"{message}; {hint}"
    return error_response(status, error.code().name, message,
                          trailing.get("x-request-id", request_id), headers)
