"""Shadow trials in the CLI: `--promote-after` for `forecast train --promote shadow`, the
trial in words, and champion vs challenger per horizon step for `forecast monitor`."""

from __future__ import annotations

import math
from typing import TextIO

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client._gen.forecastapi.v1 import monitoring_service_pb2 as mpb
from forecast_client.cli.messages import UsageError
from forecast_client.cli.output import score, table
from forecast_client.requests import PROMOTE_AFTER_KEYS

_STATES = {pb.SHADOW_STATE_RUNNING: "running", pb.SHADOW_STATE_PROMOTED: "promoted",
           pb.SHADOW_STATE_REJECTED: "rejected"}
_TYPES = {"days": int, "min_cells": int, "margin": float}


def parse_promote_after(text: str | None, promote: str) -> dict[str, float] | None:
    """--promote-after days=7,min_cells=100,margin=0.02 as a dict; UsageError naming the item."""
    if text is None:
        return None
    if promote != "shadow":
        raise UsageError("--promote-after applies only with --promote shadow")
    rule: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in _TYPES:
            raise UsageError(f"--promote-after {item!r}: expected KEY=VALUE with KEY one of "
                             f"{', '.join(PROMOTE_AFTER_KEYS)}, e.g. days=7,min_cells=100,margin=0.02")
        try:
            rule[key] = _TYPES[key](value.strip())
        except ValueError:
            raise UsageError(f"--promote-after {item!r}: {key} must be "
                             f"{'an integer' if _TYPES[key] is int else 'a number'}") from None
    return rule


def trial_line(trial: pb.ShadowTrial) -> str:
    """'shadow trial v2 vs live v1: running; 3 of 7 days, 120 of 100 cells; rmsle ...'."""
    rule = trial.promote_after
    scores = ""
    if not math.isnan(trial.challenger_score):
        scores = (f"; live {trial.metric} {trial.challenger_version} "
                  f"{score(trial.challenger_score)} vs {trial.champion_version} "
                  f"{score(trial.champion_score)}")
    return (f"shadow trial {trial.challenger_version} vs live {trial.champion_version}: "
            f"{_STATES.get(trial.state, '?')}; {trial.days} days (needs {rule.days}), "
            f"{trial.cells:,} cells (needs {rule.min_cells:,}), margin {rule.margin:g}{scores}")


def write_comparison(comparison: mpb.ShadowComparison, out: TextIO) -> None:
    """The trial in words, then champion vs challenger per step on the cells both forecast."""
    trial = comparison.trial
    out.write(trial_line(trial) + "\n")
    if trial.reason:
        out.write(f"  {trial.reason}\n")
    metric = trial.metric or "rmsle"
    rows = [["all" if not s.step else f"step {s.step}", f"{s.cells:,}", f"{s.champion_cells:,}",
             f"{s.challenger_cells:,}", score(getattr(s.champion, metric)),
             score(getattr(s.challenger, metric)), score(s.champion.wape),
             score(s.challenger.wape)]
            for s in comparison.steps]
    if rows:
        table(rows, ["window", "shared cells", f"{trial.champion_version} cells",
                     f"{trial.challenger_version} cells", f"live {metric}",
                     f"shadow {metric}", "live wape", "shadow wape"], out)
