"""What every servicer shares at the edge, so each stays translation only:

- `tenant_for`: the one place a request's retailer becomes the data plane's `Tenant`:
  validated, then authorised against the caller's principal (resolved from its credential by
  the interceptor). Another retailer is PERMISSION_DENIED whether or not it exists.
- `in_pool`: blocking data-plane work on a thread pool, with the request's context (its id
  stays in the worker thread's log lines), so the event loop keeps serving other calls.
- `receive_upload`: a client stream of one header and then file chunks (UploadDataset,
  AppendActuals): the header is checked on the control pool, bytes are written and the file
  committed on the upload pool, and the temporary file goes when anything fails.
- `timestamp`: epoch seconds as a protobuf Timestamp; `STATE_TO_PB` / `STATE_FROM_PB`: a job's
  state (training or export) and the API's enum.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from forecast_gateway.auth.principal import current_principal
from forecast_gateway.dataplane import Tenant, UploadSession
from forecast_gateway.domain import JobState
from forecast_gateway.errors import InvalidArgument

T = TypeVar("T")

STATE_TO_PB = {
    JobState.QUEUED: pb.JOB_STATE_QUEUED,
    JobState.RUNNING: pb.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: pb.JOB_STATE_SUCCEEDED,
    JobState.FAILED: pb.JOB_STATE_FAILED,
    JobState.CANCELLED: pb.JOB_STATE_CANCELLED,
}
STATE_FROM_PB = {v: k for k, v in STATE_TO_PB.items()}


def tenant_for(retailer: str, field: str = "retailer") -> Tenant:
    """The caller's `Tenant` for the retailer a request names (see the module docstring)."""
    tenant = Tenant.parse(retailer, field)
    current_principal().authorise_retailer(tenant.retailer)
    return tenant


async def in_pool(pool: Executor, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on `pool`, in a copy of the caller's context."""
    ctx = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, functools.partial(ctx.run, fn, *args))


async def receive_upload(messages: AsyncIterator[Message], begin: Callable[[Any], UploadSession],
                         control_pool: Executor, upload_pool: Executor) -> Any:
    """Consume a header-then-chunks stream (`payload` oneof of `header` and `chunk`) and return
    what the session's commit returns; `begin(header)` opens the session."""
    session: UploadSession | None = None
    try:
        async for message in messages:
            kind = message.WhichOneof("payload")
            if session is None:
                if kind != "header":
                    raise InvalidArgument("header", "the first message must carry the header")
                session = await in_pool(control_pool, begin, message.header)  # type: ignore[attr-defined]
            elif kind == "chunk":
                await in_pool(upload_pool, session.write, message.chunk)  # type: ignore[attr-defined]
            else:
                raise InvalidArgument("header", "only the first message may carry the header")
        if session is None:
            raise InvalidArgument("header", "the upload was empty (no header)")
        return await in_pool(upload_pool, session.commit)  # reads the whole file
    except BaseException:
        if session is not None:
            session.abort()
        raise


def timestamp(seconds: float | None) -> Timestamp | None:
    """Epoch seconds as a Timestamp (None stays None: the field is left unset)."""
    if seconds is None:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts
