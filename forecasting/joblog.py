"""The training job's output protocol: what ``train`` prints and what a platform reads back.

- ``progress stage=<name> fraction=<0..1>``: the gateway's WatchTrainingJob progress.
- ``<model>.test.<metric>=<value>``: SageMaker MetricDefinitions regexes read these.
- The failure file's first ``FAILURE_REASON_CHARS`` characters become the job's FailureReason.

Writer (``forecasting.training``) and readers (the gateway's backends) share this module, so the
format is defined once.
"""

from __future__ import annotations

import re
from typing import NamedTuple

FAILURE_REASON_CHARS = 1024     # SageMaker keeps this much of /opt/ml/output/failure

_PROGRESS = re.compile(r"^progress stage=(?P<stage>\S+) fraction=(?P<fraction>[-+0-9.eE]+)$")
_METRIC = re.compile(r"^(?P<name>[A-Za-z][\w-]*(?:\.[\w-]+)+)=(?P<value>[-+0-9.eE]+|nan|inf|-inf)$")


def progress_line(stage: str, fraction: float) -> str:
    """``progress stage=<name> fraction=<0..1>``."""
    return f"progress stage={stage} fraction={fraction:.3f}"


def metric_line(name: str, value: float) -> str:
    """``<name>=<value>``, e.g. ``xgboost.test.rmsle=0.482100``."""
    return f"{name}={value:.6f}"


class Progress(NamedTuple):
    stage: str
    fraction: float     # clipped to 0..1


class Metric(NamedTuple):
    name: str
    value: float


def parse(line: str) -> Progress | Metric | None:
    """A progress or metric line, or None for any other (or malformed) line."""
    line = line.strip()
    try:
        if m := _PROGRESS.match(line):
            return Progress(m["stage"], min(1.0, max(0.0, float(m["fraction"]))))
        if m := _METRIC.match(line):
            return Metric(m["name"], float(m["value"]))
    except ValueError:
        return None
    return None
