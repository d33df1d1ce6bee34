"""How the CLI prints: aligned tables, JSON of API messages, timestamps and job states."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from typing import TextIO, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb

M = TypeVar("M", bound=Message)


def state_name(state: int) -> str:
    """'SUCCEEDED' for JOB_STATE_SUCCEEDED."""
    return pb.JobState.Name(state).removeprefix("JOB_STATE_")  # type: ignore[arg-type]


def timestamp(ts: Timestamp) -> str:
    """Local time 'YYYY-MM-DD HH:MM:SS', or '-' when unset."""
    if not ts.seconds and not ts.nanos:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts.seconds))


def score(value: float, digits: int = 4) -> str:
    """A metric value, or '-' when it is NaN (not measured)."""
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def table(rows: Sequence[Sequence[str]], header: Sequence[str], out: TextIO) -> None:
    """Left-aligned columns separated by two spaces, header first."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    out.writelines("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() + "\n"
                   for line in [header, *rows])


def to_json(message: Message) -> str:
    """An API message as indented JSON, with the proto's field names."""
    return json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True),
                      indent=2)


def write_list(messages: Sequence[M], as_json: bool, out: TextIO, header: list[str],
               row: Callable[[M], list[str]]) -> None:
    """A listing command's output: a JSON array (--json) or a table with one row per message."""
    if as_json:
        out.write(json.dumps([json.loads(to_json(m)) for m in messages], indent=2) + "\n")
    else:
        table([row(m) for m in messages], header, out)
