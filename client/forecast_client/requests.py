"""What `ForecastClient` and `AsyncForecastClient` share: the request messages, the re-send
schedule of a call and the error a failed call raises, so that both clients ask and answer
alike and only the waiting (threads or asyncio) differs."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import grpc

from forecast_client import rows as _rows
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client.config import ClientConfig, RetryPolicy
from forecast_client.errors import ForecastClientError
from forecast_client.uploads import UploadSource

TERMINAL_STATES = frozenset({pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED})

#: `train(promote=...)` values and the policies they name.
PROMOTE_POLICIES = {
    "if_better": pb.PROMOTION_POLICY_IF_BETTER,
    "always": pb.PROMOTION_POLICY_ALWAYS,
    "never": pb.PROMOTION_POLICY_NEVER,
    "shadow": pb.PROMOTION_POLICY_SHADOW,
}
Promote = Literal["if_better", "always", "never", "shadow"]
#: `train(promote_after=...)` keys: the PromoteAfter fields.
PROMOTE_AFTER_KEYS = ("days", "min_cells", "margin")
#: How many rounds of gRPC's retries a repeatable call gets before giving up, even with time
#: left (a gateway that stays down is reported, not waited for indefinitely).
SDK_ATTEMPTS = 3
#: The codes a replica that died or is stopping answers; unary calls and `wait_for_job` try again.
SERVER_WENT_AWAY = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
#: Jobs asked for per ListTrainingJobs page.
JOBS_PAGE = 100


def resolve_config(config: ClientConfig | None, target: str | None,
                   api_key: str | None) -> ClientConfig:
    """The config a client was given, or the default one with the `target` and `api_key`
    shortcuts; ValueError when both are given."""
    if config is None:
        shortcuts = {k: v for k, v in (("target", target), ("api_key", api_key)) if v}
        return ClientConfig(**shortcuts)  # type: ignore[arg-type]
    if target is not None or api_key is not None:
        raise ValueError("give either config or target/api_key, not both")
    return config


def call_metadata(config: ClientConfig) -> tuple[tuple[str, str], ...]:
    """The metadata of one call: a fresh request id, the API key and `config.metadata`."""
    return (("x-request-id", uuid.uuid4().hex), *config.call_metadata())


def channel_credentials(config: ClientConfig) -> grpc.ChannelCredentials | None:
    """The TLS credentials `config.tls` asks for; None for a plaintext channel."""
    if config.tls is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=config.tls.root_certificates,
        private_key=config.tls.private_key,
        certificate_chain=config.tls.certificate_chain,
    )


def not_ready_error(target: str, timeout: float) -> ForecastClientError:
    """What `wait_until_ready` raises when the channel did not connect in time."""
    return ForecastClientError(grpc.StatusCode.UNAVAILABLE,
                               f"cannot reach the gateway at {target} within {timeout:g} s")


class Schedule:
    """The clock and backoff of one call (or one `wait_for_job`): how long is left, and whether
    and how long to pause before sending again. The caller does the sleeping."""

    def __init__(self, retry: RetryPolicy, timeout: float | None):
        self.retry = retry
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.backoff = retry.initial_backoff_s
        self.attempts = 0

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline); counts an attempt."""
        self.attempts += 1
        return None if self.deadline is None else self.deadline - time.monotonic()

    def left(self) -> float | None:
        """Seconds left before the deadline, never below 0 (None: no deadline)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and time.monotonic() > self.deadline

    def next_backoff(self) -> float:
        """The pause before the next attempt; later pauses grow up to `max_backoff_s`."""
        pause = self.backoff
        self.backoff = min(self.backoff * self.retry.backoff_multiplier, self.retry.max_backoff_s)
        return pause

    def resend_pause(self, code: grpc.StatusCode | None, repeatable: bool) -> float | None:
        """The (randomised) pause before sending a failed call again, or None to give up.

        A `repeatable` request (not a consumed stream) that still ends in UNAVAILABLE after
        gRPC's own retries (a replica died after the call was under way), or in CANCELLED (a
        stopping replica had received it but not started it, grpc/grpc#41785; the SDK never
        cancels its own unary calls), is sent again while the deadline allows: the next attempt
        goes to another replica of a fleet."""
        out_of_time = self.deadline is not None and time.monotonic() + self.backoff >= self.deadline
        if (not repeatable or code not in SERVER_WENT_AWAY or out_of_time
                or self.retry.max_attempts < 2 or self.attempts >= SDK_ATTEMPTS):
            return None
        return self.next_backoff() * random.random()


def job_timeout_error(job_id: str, timeout_s: float | None) -> ForecastClientError:
    """What `wait_for_job` raises when the job is not terminal after `timeout_s`."""
    return ForecastClientError(grpc.StatusCode.DEADLINE_EXCEEDED,
                               f"job {job_id} did not finish within {timeout_s or 0:g} s")


# -- requests ------------------------------------------------------------------------------

def upload_header(retailer: str, upload: UploadSource) -> pb.UploadDatasetRequest:
    """The first message of an UploadDataset call: what the file is."""
    return pb.UploadDatasetRequest(header=pb.UploadHeader(
        retailer=retailer, filename=upload.filename, format=upload.format,
        size_bytes=upload.total or 0))


def train_request(retailer: str, *, dataset_id: str | None, data_uri: str | None,
                  model_kind: str, hyperparameters: dict[str, Any] | None, horizon: int,
                  promote: str, request_id: str | None,
                  promote_after: Mapping[str, float] | None = None) -> pb.TrainRequest:
    """A checked TrainRequest; the request id defaults to a fresh one (see `train`)."""
    if (dataset_id is None) == (data_uri is None):
        raise ValueError("give exactly one of dataset_id or data_uri")
    if promote not in PROMOTE_POLICIES:
        raise ValueError(f"promote must be one of {', '.join(PROMOTE_POLICIES)}, got {promote!r}")
    request = pb.TrainRequest(
        retailer=retailer, model_kind=model_kind, horizon=horizon,
        hyperparameters={k: str(v) for k, v in (hyperparameters or {}).items()},
        promote=PROMOTE_POLICIES[promote], request_id=request_id or uuid.uuid4().hex,
    )
    if promote_after is not None:
        unknown = sorted(set(promote_after) - set(PROMOTE_AFTER_KEYS))
        if unknown:
            raise ValueError(f"promote_after: unknown keys {', '.join(unknown)} (expected "
                             f"{', '.join(PROMOTE_AFTER_KEYS)})")
        request.promote_after.SetInParent()    # set, even when every value is the default
        request.promote_after.days = int(promote_after.get("days", 0))
        request.promote_after.min_cells = int(promote_after.get("min_cells", 0))
        request.promote_after.margin = float(promote_after.get("margin", 0.0))
    if dataset_id is not None:
        request.dataset_id = dataset_id
    else:
        request.data_uri = str(data_uri)
    return request


def jobs_page_request(retailer: str, state: pb.JobState.ValueType, limit: int | None,
                      have: int, token: str) -> pb.ListTrainingJobsRequest:
    """The next ListTrainingJobs page, when `have` jobs have arrived so far."""
    page_size = JOBS_PAGE if limit is None else max(1, min(JOBS_PAGE, limit - have))
    return pb.ListTrainingJobsRequest(retailer=retailer, page_size=page_size,
                                      page_token=token, state=state)


def jobs_done(token: str, limit: int | None, have: int) -> bool:
    """Whether `list_jobs` has all it asked for after a page that ended with `token`."""
    return not token or (limit is not None and have >= limit)


def predict_request(retailer: str, date: Any, store_nbr: Any, family: Any,
                    onpromotion: Any | None, model_version: str) -> pb.PredictRequest:
    """A PredictRequest of the rows given as columns (see `predict`)."""
    batch = _rows.make_batch(date, store_nbr, family, onpromotion)
    return pb.PredictRequest(retailer=retailer, model_version=model_version, rows=batch)


def check_in_flight(max_in_flight: int) -> None:
    """ValueError unless a PredictStream may have at least one chunk in flight."""
    if max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")


def stream_request(index: int, batch: pb.RowBatch, retailer: str, model_version: str,
                   levels: Sequence[float]) -> pb.PredictStreamRequest:
    """One PredictStream message; the first names the retailer, model and levels."""
    first = index == 0
    return pb.PredictStreamRequest(
        retailer=retailer if first else "",
        model_version=model_version if first else "",
        chunk_id=str(index), rows=batch, levels=list(levels) if first else [],
    )


def check_chunk(response: pb.PredictStreamResponse, expected: int) -> None:
    """INTERNAL error unless the stream answered the chunk it was due to answer next."""
    if response.chunk_id != str(expected):
        raise ForecastClientError(
            grpc.StatusCode.INTERNAL,
            f"answer for chunk {response.chunk_id!r} arrived, expected {expected}",
        )


# -- errors --------------------------------------------------------------------------------

#: What gRPC's details say when no connection to the target could be made at all.
_NO_CONNECTION = ("failed to connect", "connections to all backends failing",
                  "connection refused", "dns resolution failed", "name resolution",
                  "errors resolving", "address lookup failed")


def _trailing_request_id(err: grpc.RpcError) -> str | None:
    """The gateway's x-request-id in the trailers; grpc.aio gives them as (key, value) pairs."""
    try:
        trailers: Any = err.trailing_metadata()
        for key, value in trailers or ():
            if key == "x-request-id":
                return value.decode() if isinstance(value, bytes) else str(value)
    except Exception:  # noqa: BLE001, S110 - trailing metadata is optional
        pass
    return None


def call_error(err: grpc.RpcError, metadata: tuple[tuple[str, str], ...],
               target: str) -> ForecastClientError:
    """The `ForecastClientError` of a failed call: the gateway's code, message and request id
    (else the id the call was sent with), or one sentence naming the target and the fix when
    no connection could be made."""
    error = ForecastClientError.from_rpc_error(err)
    if error.request_id is None:
        error.request_id = _trailing_request_id(err)
    answered = error.request_id is not None   # the gateway sends its request id back
    if (error.code == grpc.StatusCode.UNAVAILABLE and not answered
            and any(words in error.details.lower() for words in _NO_CONNECTION)):
        reason = error.details.rsplit(": ", 1)[-1].strip(" []") or "no connection"
        error = ForecastClientError(
            error.code, f"cannot reach the gateway at {target} ({reason}): start it "
            "(forecast-gateway, or make demo) or give its address as ClientConfig.target or "
            "FORECAST_TARGET")
    if error.request_id is None:
        error.request_id = dict(metadata).get("x-request-id")
    return error
