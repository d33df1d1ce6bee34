"""The one error taxonomy. The gateway, the CLI and the HTTP server each map it in one place.

Three kinds, as in AWS's algorithm containers:
- ``UserError``: the caller can fix it (bad data, bad hyperparameter, bad request).
- ``AlgorithmError``: our bug.
- ``PlatformError``: the environment (disk, memory, missing files the platform should provide).
``ArtifactError`` is a user-facing problem with a stored model (foreign, old or corrupt).

Every error also carries a ``code``, a gRPC status name, so no caller tests classes in an order
or splits messages: the gateway's gRPC status, the HTTP status of both HTTP faces (the gateway's
and the inference container's) and the container's exit kind all come from these attributes,
through `HTTP_STATUS` below. The gateway's own errors (`forecast_gateway.errors`) subclass
`ForecastingError` with codes of their own: one tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum


class Code(str, Enum):
    """A status, named as gRPC names it (the library does not import grpc)."""

    OK = "OK"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    UNIMPLEMENTED = "UNIMPLEMENTED"
    INTERNAL = "INTERNAL"
    UNAVAILABLE = "UNAVAILABLE"
    DATA_LOSS = "DATA_LOSS"
    UNAUTHENTICATED = "UNAUTHENTICATED"


#: The one HTTP status of each code, for the gateway's HTTP face and the inference container.
HTTP_STATUS: dict[Code, int] = {
    Code.OK: 200,
    Code.INVALID_ARGUMENT: 400,
    Code.OUT_OF_RANGE: 400,
    Code.UNAUTHENTICATED: 401,
    Code.PERMISSION_DENIED: 403,
    Code.NOT_FOUND: 404,
    Code.FAILED_PRECONDITION: 409,  # no model yet, a stored model that cannot be used
    Code.ALREADY_EXISTS: 409,
    Code.ABORTED: 409,
    Code.RESOURCE_EXHAUSTED: 413,  # a payload over a limit (429 when it says when to retry)
    Code.CANCELLED: 499,
    Code.UNIMPLEMENTED: 501,
    Code.UNAVAILABLE: 503,
    Code.DEADLINE_EXCEEDED: 504,
    Code.INTERNAL: 500,
    Code.UNKNOWN: 500,
    Code.DATA_LOSS: 500,
}


class ForecastingError(Exception):
    """Base of every error this library raises on purpose."""

    kind = "algorithm"
    code = Code.INTERNAL


def http_status(exc: BaseException) -> int:
    """The HTTP status of an error of this tree (500 for anything else: a bug)."""
    return HTTP_STATUS[exc.code] if isinstance(exc, ForecastingError) else 500


class UserError(ForecastingError):
    """Something the caller can fix."""

    kind = "user"
    code = Code.INVALID_ARGUMENT


class DataValidationError(UserError):
    """Input data breaks the store-sales schema.

    ``column`` and ``rule`` say what is wrong; ``rows`` holds a few example row numbers
    (1-based data rows, the header not counted).
    """

    def __init__(self, column: str | None, rule: str, rows: Sequence[int] = (), count: int = 0):
        self.column = column
        self.rule = rule
        self.rows = [int(r) for r in rows]
        self.count = int(count or len(self.rows))
        where = f"column '{column}': " if column else ""
        msg = f"{where}{rule}"
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows)
            msg += f" (rows {shown}" + (f"; {self.count} rows in all)" if self.count > len(self.rows) else ")")
        super().__init__(msg)


class HyperparameterError(UserError):
    """A hyperparameter is unknown, of the wrong type or out of range."""

    def __init__(self, name: str, message: str):
        self.name = name
        self.field = f"hyperparameters[{name!r}]"   # the request field a gateway names
        self.reason = message
        super().__init__(f"hyperparameter '{name}': {message}")


class ForecastRequestError(UserError):
    """Future rows that cannot be forecast (unknown series, dates inside the history, ...)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


class ArtifactError(UserError):
    """A model directory that is not ours, from an unsupported version, or damaged. The request
    may be fine; the stored model cannot serve it (FAILED_PRECONDITION, HTTP 409)."""

    code = Code.FAILED_PRECONDITION


class AlgorithmError(ForecastingError):
    """A bug in this library: the input was valid and we still failed."""

    kind = "algorithm"


class PlatformError(ForecastingError):
    """The environment failed us: missing platform files, disk, memory."""

    kind = "platform"
    code = Code.UNAVAILABLE
