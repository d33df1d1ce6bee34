"""Following a long-running job (training or export) to its end: what the CLI says when the
user stops waiting or `--timeout-wait` runs out, and when the job ends other than SUCCEEDED.
`train --wait`, `wait`, `export --wait` and `export-status --wait` share it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO, TypeVar

import grpc

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client.cli.messages import EXIT_INTERRUPTED, EXIT_SERVER, PROG, in_cli_words
from forecast_client.cli.output import state_name
from forecast_client.errors import ForecastClientError
from forecast_client.progress import ProgressLine

Final = TypeVar("Final")


def wait_to_end(wait: Callable[[], Final], what: str, again: str, timeout_s: float | None,
                progress: ProgressLine, err: TextIO) -> Final | int:
    """`wait()`'s final message, or the exit code when waiting stopped first (Ctrl-C, or
    `timeout_s` ran out): the job goes on, and `again` says how to follow it again. `what` is
    e.g. "job J" or "export E"."""
    try:
        final = wait()
    except KeyboardInterrupt:
        progress.done()
        err.write(f"{PROG}: stopped waiting; {what} goes on (follow it again with: {again})\n")
        return EXIT_INTERRUPTED
    except ForecastClientError as exc:
        if exc.code != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
        progress.done()
        err.write(f"{PROG}: error: {what} did not finish within --timeout-wait {timeout_s:g} s; "
                  f"it goes on (follow it again with: {again})\n")
        return EXIT_SERVER
    progress.done()
    return final


def report_unsuccessful(state: int, what: str, ident: str, failure_reason: str, out: TextIO,
                        err: TextIO) -> bool:
    """For a job that ended other than SUCCEEDED: print its id and state, and the reason, and
    answer True (the caller exits EXIT_SERVER); False for a job that succeeded."""
    if state == pb.JOB_STATE_SUCCEEDED:
        return False
    name = state_name(state)
    out.write(f"{ident}\t{name}\n")
    reason = in_cli_words(failure_reason) or "no reason given"
    err.write(f"{PROG}: error: {what} {name.lower()}: {reason}\n")
    return True
