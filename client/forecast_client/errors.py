"""The one error type the SDK raises for a failed call."""

from __future__ import annotations

import grpc


class ForecastClientError(Exception):
    """A call to the gateway failed.

    `code` is the gRPC status code (e.g. `grpc.StatusCode.NOT_FOUND`), `details` the gateway's
    message (for INVALID_ARGUMENT it names the field and the reason) and `request_id` the id
    the gateway logged the call under, when it sent one back.
    """

    def __init__(self, code: grpc.StatusCode, details: str, request_id: str | None = None):
        self.code = code
        self.details = details
        self.request_id = request_id
        super().__init__(f"{code.name}: {details}")

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> ForecastClientError:
        """Build from a grpc.RpcError raised by a stub (it is also a grpc.Call)."""
        code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
        details = (err.details() if hasattr(err, "details") else None) or str(err)
        request_id = None
        try:
            for item in err.trailing_metadata() or ():
                if item.key == "x-request-id":  # text keys carry str values at run time
                    value: str | bytes = item.value
                    request_id = value.decode() if isinstance(value, bytes) else str(value)
        except Exception:  # noqa: BLE001, S110 - trailing metadata is optional
            pass
        if code is None:
            code = grpc.StatusCode.UNKNOWN
        return cls(code, details, request_id)
