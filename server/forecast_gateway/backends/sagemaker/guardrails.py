"""Deployment guardrails of real-time endpoints (`--sagemaker-traffic-shift`): a new version
reaches a retailer's endpoint through a blue/green UpdateEndpoint that shifts traffic all at
once, to a canary first, or in linear steps, bakes after each step, and rolls back by itself
when one of two CloudWatch alarms fires while it does.

The alarms watch the endpoint's own metrics (namespace AWS/SageMaker, dimensions EndpointName
and VariantName), one per retailer endpoint, created (or updated: PutMetricAlarm is an upsert)
before every guarded update:

- `<endpoint>-5xx`: the sum of Invocation5XXErrors over one minute reaches `alarm_5xx`;
- `<endpoint>-model-latency`: the p99 of ModelLatency (CloudWatch counts it in microseconds)
  over one minute exceeds `alarm_latency_ms`.

Missing data is "not breaching": an endpoint without traffic does not roll back. Serverless
endpoints have no instances to shift traffic between (canary and linear sizes are a share of
the new fleet's capacity), so the settings refuse a traffic shift without an instance type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

#: `--sagemaker-traffic-shift` values -> TrafficRoutingConfig.Type ("" sends no DeploymentConfig).
SHIFTS = {"all-at-once": "ALL_AT_ONCE", "canary": "CANARY", "linear": "LINEAR"}
NAMESPACE = "AWS/SageMaker"
PERIOD_S = 60


@dataclass(frozen=True)
class GuardrailSettings:
    """How a guarded update shifts traffic and when it rolls back."""

    shift: str
    """all-at-once, canary or linear (a key of `SHIFTS`)."""
    percent: int = 10
    """Canary size, or linear step, as a percent of the new fleet's capacity (1..50)."""
    wait_s: int = 300
    """Baking period after each traffic step (WaitIntervalInSeconds, 0..3600)."""
    bake_s: int = 600
    """Final baking period with all traffic on the new fleet, before the old one is
    terminated (TerminationWaitInSeconds, 0..3600); the alarms still roll back meanwhile."""
    alarm_5xx: int = 1
    """Invocation5XXErrors in one minute that roll the update back."""
    alarm_latency_ms: int = 2000
    """p99 ModelLatency over one minute, in milliseconds, above which the update rolls back."""

    def __post_init__(self) -> None:
        if self.shift not in SHIFTS:
            raise ValueError(f"sagemaker_traffic_shift must be empty, {', '.join(SHIFTS)}; got "
                             f"{self.shift!r}")
        if not 1 <= self.percent <= 50:
            raise ValueError("sagemaker_shift_percent must be 1..50 (SageMaker's canary is at "
                             f"most half the new fleet), got {self.percent}")
        for name in ("wait_s", "bake_s"):
            if not 0 <= getattr(self, name) <= 3600:
                raise ValueError(f"sagemaker_shift_{name} must be 0..3600 seconds, got "
                                 f"{getattr(self, name)}")
        if self.alarm_5xx < 1 or self.alarm_latency_ms < 1:
            raise ValueError("sagemaker_alarm_5xx and sagemaker_alarm_latency_ms must be positive")

    @property
    def steps(self) -> int:
        """Traffic steps of one update (each followed by `wait_s`)."""
        if self.shift == "canary":
            return 2
        if self.shift == "linear":
            return math.ceil(100 / self.percent)
        return 1

    @property
    def planned_s(self) -> int:
        """How long the shifting and baking of one update take when nothing rolls back (the
        wait for InService allows this on top of `--sagemaker-endpoint-timeout-s`): at most one
        wait per step, then the final bake."""
        return self.steps * self.wait_s + self.bake_s

    def deployment_config(self, alarms: Sequence[str]) -> dict[str, Any]:
        """UpdateEndpoint's DeploymentConfig: blue/green with this shift, rolled back by
        `alarms`."""
        routing: dict[str, Any] = {"Type": SHIFTS[self.shift], "WaitIntervalInSeconds": self.wait_s}
        size = {"Type": "CAPACITY_PERCENT", "Value": self.percent}
        if self.shift == "canary":
            routing["CanarySize"] = size
        elif self.shift == "linear":
            routing["LinearStepSize"] = size
        return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing,
                                          "TerminationWaitInSeconds": self.bake_s},
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": a} for a in alarms]}}


def alarm_names(endpoint: str) -> list[str]:
    """The rollback alarms of one endpoint: 5xx errors, then model latency."""
    return [f"{endpoint}-5xx", f"{endpoint}-model-latency"]


def alarm_requests(settings: GuardrailSettings, endpoint: str, variant: str,
                   retailer: str) -> list[dict[str, Any]]:
    """The PutMetricAlarm requests of `endpoint`'s rollback alarms."""
    dimensions = [{"Name": "EndpointName", "Value": endpoint},
                  {"Name": "VariantName", "Value": variant}]
    common = {"Namespace": NAMESPACE, "Dimensions": dimensions, "Period": PERIOD_S,
              "EvaluationPeriods": 1, "DatapointsToAlarm": 1, "TreatMissingData": "notBreaching",
              "ActionsEnabled": False, "Tags": [{"Key": "retailer", "Value": retailer}]}
    errors, latency = alarm_names(endpoint)
    return [
        {**common, "AlarmName": errors, "MetricName": "Invocation5XXErrors", "Statistic": "Sum",
         "Threshold": float(settings.alarm_5xx),
         "ComparisonOperator": "GreaterThanOrEqualToThreshold",
         "AlarmDescription": f"rolls back a deploy to {endpoint}: {settings.alarm_5xx} or more "
                             f"5xx answers in a minute"},
        {**common, "AlarmName": latency, "MetricName": "ModelLatency", "ExtendedStatistic": "p99",
         "Threshold": float(settings.alarm_latency_ms * 1000), "Unit": "Microseconds",
         "ComparisonOperator": "GreaterThanThreshold",
         "AlarmDescription": f"rolls back a deploy to {endpoint}: p99 model latency above "
                             f"{settings.alarm_latency_ms} ms over a minute"},
    ]


class Guardrails:
    """Creates an endpoint's alarms and explains a rollback, through one cloudwatch client."""

    def __init__(self, cloudwatch: Any, settings: GuardrailSettings):
        self._cw = cloudwatch
        self.settings = settings

    def prepare(self, endpoint: str, variant: str, retailer: str) -> dict[str, Any]:
        """Put the endpoint's alarms; the DeploymentConfig that names them."""
        for request in alarm_requests(self.settings, endpoint, variant, retailer):
            self._cw.put_metric_alarm(**request)
        return self.settings.deployment_config(alarm_names(endpoint))

    def fired(self, endpoint: str) -> str:
        """The alarms of `endpoint` in ALARM (name and CloudWatch's reason), or "" when none is
        (or CloudWatch cannot be read: the rollback is reported without them)."""
        try:
            found = self._cw.describe_alarms(AlarmNames=alarm_names(endpoint))
        except (ClientError, BotoCoreError):  # the rollback is what matters; its cause a bonus
            return ""
        return "; ".join(f"alarm {a['AlarmName']} fired ({a.get('StateReason') or 'no reason'})"
                         for a in found.get("MetricAlarms", []) if a.get("StateValue") == "ALARM")
