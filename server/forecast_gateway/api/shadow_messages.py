"""Translation between forecastapi.v1 messages and the data plane's shadow trials
(`dataplane.shadow_trial`): a Train's promote_after, a trial, and champion vs challenger per
step. Translation only; the servicers call these."""

from __future__ import annotations

import math

from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client._gen.forecastapi.v1 import monitoring_service_pb2 as mpb

from forecast_gateway.api.edge import timestamp

_STATES = {"running": pb.SHADOW_STATE_RUNNING, "promoted": pb.SHADOW_STATE_PROMOTED,
           "rejected": pb.SHADOW_STATE_REJECTED}
_METRICS = ("rmse", "rmsle", "mae", "wape", "bias", "mase")


def promote_after_from_pb(request: pb.TrainRequest) -> tuple[int, int, float] | None:
    """TrainRequest.promote_after -> (days, min_cells, margin); None when unset."""
    if not request.HasField("promote_after"):
        return None
    rule = request.promote_after
    return rule.days, rule.min_cells, rule.margin


def _number(value: object) -> float:
    return math.nan if value is None else float(value)  # type: ignore[arg-type]


def trial_to_pb(trial: dict | None) -> pb.ShadowTrial | None:
    """A trial (its stored dict) -> pb.ShadowTrial (None stays unset)."""
    if not trial:
        return None
    rule = trial.get("promote_after") or {}
    return pb.ShadowTrial(
        state=_STATES.get(str(trial.get("state")), pb.SHADOW_STATE_UNSPECIFIED),
        challenger_version=str(trial.get("challenger_version") or ""),
        champion_version=str(trial.get("champion_version") or ""),
        promote_after=pb.PromoteAfter(days=int(rule.get("days") or 0),
                                      min_cells=int(rule.get("min_cells") or 0),
                                      margin=float(rule.get("margin") or 0.0)),
        metric=str(trial.get("metric") or ""), days=int(trial.get("days") or 0),
        cells=int(trial.get("cells") or 0),
        champion_score=_number(trial.get("champion_score")),
        challenger_score=_number(trial.get("challenger_score")),
        start_time=timestamp(trial.get("started_at")),
        decide_time=timestamp(trial.get("decided_at")), reason=str(trial.get("reason") or ""))


def _values(block: dict) -> pb.MetricValues:
    return pb.MetricValues(**{m: _number(block.get(m)) for m in _METRICS})


def comparison_to_pb(comparison: dict | None) -> mpb.ShadowComparison | None:
    """`ShadowTrials.comparison` -> mpb.ShadowComparison (None stays unset)."""
    if comparison is None:
        return None
    return mpb.ShadowComparison(
        trial=trial_to_pb(comparison["trial"]),
        steps=[mpb.ShadowStep(step=s["step"], cells=s["cells"],
                              champion_cells=s["champion_cells"],
                              challenger_cells=s["challenger_cells"],
                              champion=_values(s["champion"]),
                              challenger=_values(s["challenger"]))
               for s in comparison["steps"]])
