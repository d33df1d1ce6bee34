"""Serving: one SageMaker endpoint per retailer, one Model and EndpointConfig per version.

`deploy` makes a version the one its retailer's endpoint serves: CreateModel (the inference
image + the version's model.tar.gz), CreateEndpointConfig (a ServerlessConfig by default, or an
instance type), then CreateEndpoint the first time and UpdateEndpoint afterwards. It returns
only once the endpoint is InService with the new config. A failed update raises `DeployFailed`
with SageMaker's FailureReason; SageMaker keeps the old config serving, and so does the gateway
(its live pointer switches only after `deploy` returns).

Names are derived from the retailer, the version and a digest of the model's URI, so deploying
the same version again (after a gateway restart) finds what exists instead of making copies.

With guardrails (`guardrails.py`, `--sagemaker-traffic-shift`) UpdateEndpoint carries a
blue/green DeploymentConfig whose alarms SageMaker watches while it shifts traffic; an update
SageMaker rolls back raises `DeployFailed` naming the alarm that fired.

Local mode cannot update an endpoint; there `deploy` deletes the endpoint and creates it again
with the new config (one container on port 8080 at a time).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from forecast_gateway.backends.sagemaker.guardrails import Guardrails
from forecast_gateway.backends.sagemaker.settings import SageMakerSettings
from forecast_gateway.errors import BackendUnavailable
from forecasting.errors import ArtifactError

log = logging.getLogger("forecast_gateway.backends.sagemaker")

VARIANT = "AllTraffic"
_TRANSITIONAL = ("Creating", "Updating", "SystemUpdating", "RollingBack")
_NAME_RE = re.compile(r"[^a-zA-Z0-9-]+")


class DeployFailed(ArtifactError):
    """The endpoint did not take the new version; the version it served before still serves."""


@dataclass(frozen=True)
class Deployment:
    """What serves one version."""

    endpoint: str
    config: str
    model: str


def _clean(text: str, limit: int) -> str:
    return _NAME_RE.sub("-", text)[:limit].strip("-") or "x"


def endpoint_name(retailer: str) -> str:
    """The retailer's endpoint."""
    return f"forecast-{_clean(retailer, 50)}"


def shadow_endpoint_name(retailer: str) -> str:
    """The endpoint of the retailer's version in shadow (promote=shadow), beside its own: a
    prefix of its own, so no retailer's live endpoint can have the name."""
    return f"fcshadow-{_clean(retailer, 50)}"


def deployment(retailer: str, version: str, model_data_url: str,
               endpoint: str = "") -> Deployment:
    """Names of the endpoint (the retailer's, unless named), config and model serving
    `version` from `model_data_url`."""
    digest = hashlib.sha256(model_data_url.encode()).hexdigest()[:8]
    name = f"{_clean(retailer, 40)}-{_clean(version, 12)}-{digest}"
    return Deployment(endpoint or endpoint_name(retailer), name, name)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", exc))


def _exists(exc: ClientError) -> bool:
    return _code(exc) == "ValidationException" and "already exist" in _message(exc).lower()


def _missing(exc: ClientError) -> bool:
    text = _message(exc).lower()
    return _code(exc) in ("ValidationException", "ResourceNotFound") and (
        "could not find" in text or "does not exist" in text or "not found" in text)


class Endpoints:
    """Deploys versions to per-retailer endpoints through one sagemaker client."""

    def __init__(self, sagemaker: Any, settings: SageMakerSettings, *, first_pause_s: float = 1.0,
                 guardrails: Guardrails | None = None):
        """`guardrails`: shift traffic blue/green with alarm rollback on every update."""
        self._sm = sagemaker
        self._settings = settings
        self._first_pause_s = first_pause_s
        self._guardrails = guardrails

    def _variant(self, model: str) -> dict[str, Any]:
        s = self._settings
        variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": model}
        if s.serverless:
            variant["ServerlessConfig"] = {"MemorySizeInMB": s.serverless_memory_mb,
                                           "MaxConcurrency": s.serverless_concurrency}
        else:
            variant.update(InstanceType=s.endpoint_instance_type,
                           InitialInstanceCount=s.endpoint_instance_count)
        return variant

    def deploy(self, retailer: str, version: str, model_data_url: str,
               endpoint: str = "") -> Deployment:
        """Make the retailer's endpoint (or `endpoint`) serve `version`; returns once it is
        InService."""
        target = deployment(retailer, version, model_data_url, endpoint)
        tags = [{"Key": "retailer", "Value": retailer}, {"Key": "model-version", "Value": version}]
        try:
            self._sm.create_model(
                ModelName=target.model, ExecutionRoleArn=self._settings.role_arn, Tags=tags,
                PrimaryContainer={"Image": self._settings.inference_image,
                                  "ModelDataUrl": model_data_url,
                                  "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}})
        except ClientError as exc:
            if not _exists(exc):
                raise
        try:
            self._sm.create_endpoint_config(EndpointConfigName=target.config, Tags=tags,
                                            ProductionVariants=[self._variant(target.model)])
        except ClientError as exc:
            if not _exists(exc):
                raise
        current = self.describe(target.endpoint)
        started = time.monotonic()
        try:
            if current is None:
                self._sm.create_endpoint(EndpointName=target.endpoint,
                                         EndpointConfigName=target.config, Tags=tags[:1])
            elif current.get("EndpointConfigName") != target.config:
                self._update(target, retailer)
            # else: already there (a restart); wait until it is in service
        except RuntimeError as exc:  # local mode starts the container inside the call
            self.delete(target.endpoint)
            raise DeployFailed(f"endpoint {target.endpoint} did not start {target.config}: "
                               f"{exc} (the inference container's log says why)") from None
        self._wait(target)
        log.info("endpoint serves the version", extra={"fields": {
            "retailer": retailer, "model_version": version, "endpoint": target.endpoint,
            "endpoint_config": target.config, "seconds": round(time.monotonic() - started, 2)}})
        return target

    def _update(self, target: Deployment, retailer: str) -> None:
        request = {"EndpointName": target.endpoint, "EndpointConfigName": target.config}
        if self._guardrails is not None:
            request["DeploymentConfig"] = self._guardrails.prepare(target.endpoint, VARIANT,
                                                                   retailer)
        try:
            self._sm.update_endpoint(**request)
        except NotImplementedError:  # local mode: one container, replaced
            self._sm.delete_endpoint(EndpointName=target.endpoint)
            self._sm.create_endpoint(EndpointName=target.endpoint,
                                     EndpointConfigName=target.config)

    def describe(self, endpoint: str) -> dict | None:
        """DescribeEndpoint, or None when it does not exist."""
        try:
            return self._sm.describe_endpoint(EndpointName=endpoint)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def _wait(self, target: Deployment) -> None:
        guarded = self._guardrails.settings.planned_s if self._guardrails is not None else 0
        deadline = time.monotonic() + self._settings.endpoint_timeout_s + guarded
        pause, moved = self._first_pause_s, False
        while True:
            desc = self.describe(target.endpoint) or {}
            status = str(desc.get("EndpointStatus", ""))
            config = str(desc.get("EndpointConfigName", ""))
            reason = str(desc.get("FailureReason") or "")
            if status in _TRANSITIONAL:
                moved = True
            elif status == "InService" and config == target.config:
                return
            elif status in ("Failed", "UpdateRollbackFailed"):
                raise DeployFailed(f"endpoint {target.endpoint} is {status}: "
                                   f"{reason or 'no reason given'}")
            elif status == "InService" and (moved or reason):
                fired = self._guardrails.fired(target.endpoint) if self._guardrails else ""
                why = "; ".join(w for w in (reason, fired) if w) or "the update was rolled back"
                raise DeployFailed(f"endpoint {target.endpoint} did not take {target.config}: "
                                   f"{why}; it still serves {config}")
            if time.monotonic() > deadline:
                raise BackendUnavailable(
                    f"endpoint {target.endpoint} is not InService with {target.config} after "
                    f"{self._settings.endpoint_timeout_s + guarded:.0f} s (status "
                    f"{status or 'unknown'})")
            time.sleep(pause)
            pause = min(self._settings.poll_max_s, pause * 1.5)

    def delete(self, endpoint: str) -> None:
        """DeleteEndpoint (its configs and models stay, for a later redeploy)."""
        try:
            self._sm.delete_endpoint(EndpointName=endpoint)
        except ClientError as exc:
            if not _missing(exc):
                raise
