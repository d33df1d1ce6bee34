"""Following a job (a training job or an export) to its end, for both clients: the watch is
opened again when the gateway went away, with backoff, until the caller's timeout runs out."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from typing import Any, TypeVar

from forecast_client.config import RetryPolicy
from forecast_client.errors import ForecastClientError
from forecast_client.requests import SERVER_WENT_AWAY, TERMINAL_STATES, Schedule, job_timeout_error

M = TypeVar("M", bound=Any)   # a TrainingJob or an ExportJob: anything with a JobState `state`


def wait_terminal(watch: Callable[[], Iterable[M]], retry: RetryPolicy, job_id: str,
                  timeout_s: float | None, on_update: Callable[[M], None] | None) -> M:
    """The first terminal event of `watch()` (every event goes to `on_update`); the watch is
    reopened after UNAVAILABLE (or a stopping gateway's CANCELLED); DEADLINE_EXCEEDED naming
    `job_id` after `timeout_s` (None: no limit)."""
    schedule = Schedule(retry, timeout_s)
    while True:
        try:
            for event in watch():
                if on_update is not None:
                    on_update(event)
                if event.state in TERMINAL_STATES:
                    return event
                if schedule.expired():
                    break
        except ForecastClientError as err:
            if err.code not in SERVER_WENT_AWAY:
                raise
        if schedule.expired():
            raise job_timeout_error(job_id, timeout_s)
        time.sleep(schedule.next_backoff())


async def await_terminal(watch: Callable[[], AsyncGenerator[M, None]], retry: RetryPolicy,
                         job_id: str, timeout_s: float | None,
                         on_update: Callable[[M], None] | None) -> M:
    """`wait_terminal` for asyncio: the timeout also holds while no event arrives."""
    schedule = Schedule(retry, timeout_s)
    while True:
        try:
            async with asyncio.timeout(schedule.left()), contextlib.aclosing(watch()) as events:
                async for event in events:
                    if on_update is not None:
                        on_update(event)
                    if event.state in TERMINAL_STATES:
                        return event
        except TimeoutError:
            raise job_timeout_error(job_id, timeout_s) from None
        except ForecastClientError as err:
            if err.code not in SERVER_WENT_AWAY:
                raise
        if schedule.expired():
            raise job_timeout_error(job_id, timeout_s)
        await asyncio.sleep(schedule.next_backoff())
