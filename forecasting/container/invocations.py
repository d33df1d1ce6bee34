"""The inference container's JSON request and error body, in one place: the backends that
call it (docker's `/invocations`, SageMaker's InvokeEndpoint) build the request here, and
`serve.py` writes the error body that they decode here, so a field name survives the trip as
a field, not as text split on ": ".

Body: `{"error": <message>, "type": <kind>}`, and for a `ForecastRequestError` also
`"field"` and `"reason"`. Kinds: the `forecasting.errors` class name (`ForecastRequestError`,
`ArtifactError`, `UserError`, ...), `RequestError` (an HTTP-level refusal: 413, 415),
`InternalError`, `NotFound`, `NotAllowed`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from forecasting.errors import ArtifactError, ForecastRequestError, UserError


def request_body(dates: Sequence[str], store_nbr: Sequence[int], family: Sequence[str],
                 onpromotion: Sequence[int] | None = None, levels: Sequence[float] = ()) -> bytes:
    """The container's columnar JSON request (`serve.parse_json` reads it): future rows, and
    the interval levels in percent when any are asked."""
    payload: dict[str, Any] = {"date": list(dates), "store_nbr": [int(s) for s in store_nbr],
                               "family": [str(f) for f in family]}
    if onpromotion is not None:
        payload["onpromotion"] = [int(p) for p in onpromotion]
    if levels:
        payload["levels"] = [float(lv) for lv in levels]
    return json.dumps(payload, separators=(",", ":")).encode()


def error_body(message: str, kind: str, exc: BaseException | None = None) -> str:
    """The JSON error body for `message` of `kind` (`exc`'s field too, when it has one)."""
    body: dict[str, Any] = {"error": message, "type": kind}
    if isinstance(exc, ForecastRequestError):
        body["field"] = exc.field
        body["reason"] = exc.reason
    return json.dumps(body)


def decode_body(data: bytes | str) -> dict[str, Any]:
    """A container's error body as a dict; a body that is not ours (a proxy's page, a crash)
    becomes `{"error": <its first 500 characters>, "type": ""}`."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"error": text.strip()[:500], "type": ""}


def decode_error(status: int, data: bytes | str) -> Exception | None:
    """The error a container's non-2xx answer stands for: `ForecastRequestError` (with its
    field), `ArtifactError` or `UserError` for a 4xx; None for any other status, which the
    caller maps to its own "backend unavailable" with its context."""
    if not 400 <= status < 500:
        return None
    body = decode_body(data)
    message, kind = str(body.get("error", "")), str(body.get("type", ""))
    if kind == "ForecastRequestError" and "field" in body:
        return ForecastRequestError(str(body["field"]), str(body.get("reason", "")))
    if kind == "ArtifactError":   # e.g. levels asked of a model saved without intervals
        return ArtifactError(message)
    return UserError(message or f"the inference container refused the rows (HTTP {status})")


def error_message(data: bytes | str) -> str:
    """The `error` text of a body, for logs and the errors of a 5xx answer."""
    return str(decode_body(data).get("error", ""))
