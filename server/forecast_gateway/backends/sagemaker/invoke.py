"""Predictions through InvokeEndpoint: future rows as `text/csv` with a header (what the
inference container's `/invocations` takes, docs/containers.md), split into payloads under the
endpoint's limit without splitting a series, sent concurrently up to a bound, answers put back
in row order.

Errors: `ModelError` (the container answered non-2xx) carries the container's own JSON
`{"error", "type"}`: a 4xx becomes a `UserError` (INVALID_ARGUMENT) with its message, anything
else `BackendUnavailable` naming the endpoint and the message. Throttling and the other
transient errors are retried with backoff (botocore's retries first, then ours) before they
become `BackendUnavailable` (UNAVAILABLE).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from forecast_gateway.domain import RowColumns
from forecast_gateway.errors import BackendUnavailable
from forecasting.container.invocations import decode_error, error_message, request_body
from forecasting.errors import ForecastRequestError

CSV = "text/csv"
JSON = "application/json"
HEADER = b"date,store_nbr,family,onpromotion\n"
_RETRIED = ("ThrottlingException", "Throttling", "TooManyRequestsException", "ServiceUnavailable",
            "InternalFailure", "InternalServerError", "ModelNotReadyException")


def csv_lines(rows: RowColumns) -> list[bytes]:
    """One CSV line per row (no newline), the family quoted (families hold commas)."""
    dates = np.datetime_as_string(np.asarray(rows.day).astype("datetime64[D]"), unit="D")
    stores = np.asarray(rows.store_nbr).astype(np.int64)
    families = np.asarray(rows.family).astype(str)
    uniques, codes = np.unique(families, return_inverse=True)
    quoted = ['"' + f.replace('"', '""') + '"' for f in uniques]
    promo = (np.zeros(len(rows), dtype=np.int64) if rows.onpromotion is None
             else np.asarray(rows.onpromotion).astype(np.int64))
    return [f"{d},{s},{quoted[c]},{p}".encode()
            for d, s, c, p in zip(dates.tolist(), stores.tolist(), codes.tolist(), promo.tolist())]


def payloads(rows: RowColumns, limit: int,
             levels: Sequence[float] = ()) -> Iterator[tuple[np.ndarray, bytes]]:
    """(row indices, body) pairs: each body at most `limit` bytes, every series (store, family)
    whole in one body, each body's rows in their original order. ForecastRequestError when one
    series alone is over the limit. Without `levels` the body is CSV with a header; with them
    it is the container's JSON request with `"levels"`, sized so the answer (a forecast and
    two bounds per level per row) stays under the limit too."""
    lines = csv_lines(rows)
    sizes = np.fromiter((len(line) + 1 for line in lines), dtype=np.int64, count=len(lines))
    if levels:   # JSON spends about 12 more bytes a row; the answer about 24 a number
        sizes = np.maximum(sizes + 12, 24 * (1 + 2 * len(levels)))
    for idx in _groups(rows, sizes, limit - max(len(HEADER), 64), limit):
        if not levels:
            yield idx, HEADER + b"\n".join(lines[i] for i in idx) + b"\n"
            continue
        body = json_body(rows, idx, levels)
        if len(body) > limit:
            raise ForecastRequestError("rows", f"the {len(idx)} rows of one payload are "
                                               f"{len(body)} bytes, over the endpoint's "
                                               f"{limit}-byte payload limit")
        yield idx, body


def json_body(rows: RowColumns, idx: np.ndarray, levels: Sequence[float]) -> bytes:
    """The container's columnar JSON request for rows `idx`, with `levels`."""
    dates = np.datetime_as_string(np.asarray(rows.day)[idx].astype("datetime64[D]"), unit="D")
    promo = None if rows.onpromotion is None else np.asarray(rows.onpromotion)[idx].tolist()
    return request_body(dates.tolist(), np.asarray(rows.store_nbr)[idx].tolist(),
                        np.asarray(rows.family)[idx].tolist(), promo, levels)


def _groups(rows: RowColumns, sizes: np.ndarray, room: int, limit: int) -> Iterator[np.ndarray]:
    """Row indices per payload: whole series packed in order of first appearance while their
    `sizes` fit in `room`."""
    keys = np.char.add(np.asarray(rows.store_nbr).astype(np.int64).astype(str),
                       np.char.add("|", np.asarray(rows.family).astype(str)))
    _, first, series = np.unique(keys, return_index=True, return_inverse=True)
    per_series = np.bincount(series, weights=sizes).astype(np.int64)
    chunk_of = np.empty(len(per_series), dtype=np.int64)
    chunk, used = 0, 0
    for s in np.argsort(first, kind="stable"):  # series in order of first appearance
        size = int(per_series[s])
        if size > room:
            where = int(first[s])
            raise ForecastRequestError(
                "rows", f"the rows of store {rows.store_nbr[where]}, family "
                        f"{rows.family[where]!r} alone are {size} bytes, over the endpoint's "
                        f"{limit}-byte payload limit")
        if used and used + size > room:
            chunk, used = chunk + 1, 0
        chunk_of[s] = chunk
        used += size
    row_chunk = chunk_of[series]
    order = np.argsort(row_chunk, kind="stable")
    bounds = np.searchsorted(row_chunk[order], np.arange(chunk + 2))
    for c in range(chunk + 1):
        idx = order[bounds[c]:bounds[c + 1]]
        if len(idx):
            yield idx


def _body(response: dict) -> tuple[int, bytes]:
    """(HTTP status, body) of an InvokeEndpoint answer. Local mode returns the container's
    answer whatever its status; the real client raises ModelError for non-2xx."""
    stream = response["Body"]
    status = int(getattr(stream, "status", 200) or 200)
    return status, stream.read()


def container_error(endpoint: str, status: int, message: str) -> Exception:
    """The error for a non-2xx answer of the inference container (its JSON body in `message`,
    decoded by `forecasting.container.invocations` as every backend decodes it)."""
    refused = decode_error(status, message)
    if refused is not None:
        return refused
    return BackendUnavailable(f"endpoint {endpoint}: the inference container answered {status}: "
                              f"{error_message(message) or 'no message'}")


Bounds = dict[float, tuple[np.ndarray, np.ndarray]]


def invoke(runtime: Any, endpoint: str, body: bytes, expected: int, *, levels: Sequence[float] = (),
           attempts: int = 4, first_pause_s: float = 0.5) -> tuple[np.ndarray, Bounds]:
    """One InvokeEndpoint call: `expected` forecasts (and with `levels`, a JSON body, their
    bounds per level), retried with backoff when throttled."""
    kind = JSON if levels else CSV
    pause = first_pause_s
    for attempt in range(1, attempts + 1):
        try:
            status, data = _body(runtime.invoke_endpoint(
                EndpointName=endpoint, Body=body, ContentType=kind, Accept=kind))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code == "ModelError":
                raise container_error(endpoint, int(exc.response.get("OriginalStatusCode", 500)),
                                      str(exc.response.get("OriginalMessage", error.get(
                                          "Message", "")))) from None
            if code in _RETRIED and attempt < attempts:
                time.sleep(pause)
                pause *= 2
                continue
            if code in _RETRIED:
                raise BackendUnavailable(f"endpoint {endpoint} is throttling or busy ({code}) "
                                         f"after {attempts} attempts; retry later") from None
            if code == "ValidationException":
                raise BackendUnavailable(f"endpoint {endpoint}: {error.get('Message', '')}") \
                    from None
            raise
        except BotoCoreError as exc:
            raise BackendUnavailable(f"endpoint {endpoint} did not answer: {exc}") from None
        if status >= 300:
            raise container_error(endpoint, status, data.decode(errors="replace"))
        values, bounds = _answer(data, levels)
        if values.shape != (expected,) or any(b.shape != (expected,) for pair in bounds.values()
                                              for b in pair):
            raise BackendUnavailable(f"endpoint {endpoint} returned {values.shape[0]} forecasts "
                                     f"for {expected} rows")
        return values, bounds
    raise AssertionError("unreachable")


def _answer(data: bytes, levels: Sequence[float]) -> tuple[np.ndarray, Bounds]:
    """A CSV answer (one forecast a line), or the JSON one with `"intervals"` per level."""
    if not levels:
        return np.array(data.split(), dtype=np.float64), {}
    answer = json.loads(data)
    bounds = {float(i["level"]): (np.asarray(i["lower"], dtype=np.float64),
                                  np.asarray(i["upper"], dtype=np.float64))
              for i in answer.get("intervals", [])}
    if set(bounds) != {float(lv) for lv in levels}:
        raise BackendUnavailable(f"the endpoint answered levels {sorted(bounds)} for "
                                 f"{sorted(float(lv) for lv in levels)}")
    return np.asarray(answer["predictions"], dtype=np.float64), bounds


def predict(runtime: Any, endpoint: str, rows: RowColumns, *, limit: int, concurrency: int,
            pool: Executor, levels: Sequence[float] = (),
            first_pause_s: float = 0.5) -> tuple[np.ndarray, Bounds]:
    """Forecasts for `rows` in row order (and their bounds per level of `levels`), through as
    many payloads as the limit needs, at most `concurrency` in flight."""
    out = np.empty(len(rows), dtype=np.float64)
    bounds = {float(lv): (np.empty(len(rows)), np.empty(len(rows))) for lv in levels}
    pending: list[tuple[np.ndarray, Any]] = []

    def place(idx: np.ndarray, answer: tuple[np.ndarray, Bounds]) -> None:
        out[idx] = answer[0]
        for level, (lower, upper) in answer[1].items():
            bounds[level][0][idx], bounds[level][1][idx] = lower, upper

    try:
        for idx, body in payloads(rows, limit, levels):
            if concurrency <= 1:
                place(idx, invoke(runtime, endpoint, body, len(idx), levels=levels,
                                  first_pause_s=first_pause_s))
                continue
            if len(pending) >= concurrency:
                done_idx, future = pending.pop(0)
                place(done_idx, future.result())
            pending.append((idx, pool.submit(invoke, runtime, endpoint, body, len(idx),
                                             levels=levels, first_pause_s=first_pause_s)))
        while pending:
            done_idx, future = pending.pop(0)
            place(done_idx, future.result())
    finally:
        for _, future in pending:
            future.cancel()
    return out, bounds
