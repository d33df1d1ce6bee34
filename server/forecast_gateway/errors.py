"""Domain errors of the gateway's data plane. They know nothing of gRPC.

They extend the library's one tree (`forecasting.errors`), which covers bad data and bad
requests, with what only a multi-tenant service has: things that do not exist, preconditions,
limits and a backend that is down. Each class carries its `code`; `interceptor.to_status` turns
a code into a gRPC status and the HTTP face into an HTTP status, with no class tested by name.
"""

from __future__ import annotations

from forecasting.errors import Code, ForecastingError, ForecastRequestError

#: A request field is missing or malformed: the library's own `ForecastRequestError(field,
#: reason)`, named for what it is in the gateway (`field` is e.g. "rows.store_nbr").
InvalidArgument = ForecastRequestError


class GatewayError(ForecastingError):
    """Base of the gateway's own errors."""

    kind = "user"


class NotFound(GatewayError):
    """A retailer, dataset, job or model version does not exist (for this retailer)."""

    code = Code.NOT_FOUND

    def __init__(self, kind: str, name: str, hint: str = ""):
        self.kind = kind
        self.name = name
        super().__init__(f"{kind} {name!r} not found" + (f" ({hint})" if hint else ""))


class NoLiveModel(GatewayError):
    """The retailer has no trained model yet."""

    code = Code.FAILED_PRECONDITION

    def __init__(self, retailer: str):
        self.retailer = retailer
        super().__init__(
            f"retailer {retailer!r} has no trained model yet: train one first (Train), "
            "or name a model version"
        )


class FailedPrecondition(GatewayError):
    """The request is valid but the system is not in a state to carry it out."""

    code = Code.FAILED_PRECONDITION


class PayloadTooLarge(GatewayError):
    """A payload is over a documented limit."""

    code = Code.RESOURCE_EXHAUSTED

    def __init__(self, what: str, limit: int, unit: str, actual: int | None = None):
        self.what = what
        self.limit = limit
        got = f" (got {actual:,} {unit})" if actual is not None else ""
        super().__init__(f"{what} is over the limit of {limit:,} {unit}{got}")


class BackendUnavailable(GatewayError):
    """The backend (or the gateway itself, while stopping) cannot serve the call now; retry."""

    kind = "platform"
    code = Code.UNAVAILABLE


class AlreadyExists(GatewayError):
    """Something the caller asked to create exists already (a retailer)."""

    code = Code.ALREADY_EXISTS


class Unauthenticated(GatewayError):
    """The call carries no credential, or one that is malformed, unknown or revoked. The message
    never repeats the credential; `reason` is a short tag for the failure counter."""

    code = Code.UNAUTHENTICATED

    def __init__(self, message: str, reason: str = "invalid"):
        self.reason = reason
        super().__init__(message)


class PermissionDenied(GatewayError):
    """The caller is authenticated but may not do this (another retailer's data, an admin
    operation with a retailer key). Says the same whether or not the target exists."""

    code = Code.PERMISSION_DENIED
