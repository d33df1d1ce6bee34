"""The SageMaker backend's settings: the `aws_*` and `sagemaker_*` fields of `GatewayConfig`
(flags `--sagemaker-*`, variables FORECAST_GATEWAY_SAGEMAKER_*), validated there, gathered here."""

from __future__ import annotations

from dataclasses import dataclass

from forecast_gateway.backends.sagemaker.guardrails import GuardrailSettings
from forecast_gateway.config import GatewayConfig

#: Payload limits of InvokeEndpoint (request and response).
REALTIME_MAX_BODY_BYTES = 6 * 1024 * 1024
SERVERLESS_MAX_BODY_BYTES = 4 * 1024 * 1024

#: Local mode's stand-in for an instance type (it cannot emulate ServerlessConfig).
LOCAL_INSTANCE_TYPE = "local"
#: RoleArn sent in local mode, which ignores it (the request must still be well formed).
LOCAL_ROLE_ARN = "arn:aws:iam::000000000000:role/local-mode"


@dataclass(frozen=True)
class SageMakerSettings:
    """What the backend needs to create jobs and endpoints."""

    bucket: str
    prefix: str
    role_arn: str
    training_image: str
    inference_image: str
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    volume_size_gb: int = 30
    max_runtime_s: int = 86400
    serverless_memory_mb: int = 2048
    serverless_concurrency: int = 5
    endpoint_instance_type: str = ""
    """Empty: a serverless endpoint."""
    endpoint_instance_count: int = 1
    train_with: str = "training-job"
    local_mode: bool = False
    parallel_jobs: int = 8
    poll_max_s: float = 30.0
    endpoint_timeout_s: float = 1800.0
    invoke_concurrency: int = 4
    guardrails: GuardrailSettings | None = None
    """Blue/green traffic shifting with alarm rollback on updates (None: a plain update)."""

    @classmethod
    def from_config(cls, config: GatewayConfig) -> SageMakerSettings:
        """ValueError for a combination local mode cannot run."""
        local = config.sagemaker_local_mode
        if local and config.sagemaker_train_with == "pipeline":
            raise ValueError("--sagemaker-train-with pipeline needs SageMaker itself; local mode "
                             "runs training jobs only (the pipeline's own tests run it locally)")
        guardrails = None
        if config.sagemaker_traffic_shift:
            if local or not config.sagemaker_endpoint_instance_type:
                raise ValueError(
                    f"--sagemaker-traffic-shift {config.sagemaker_traffic_shift} needs a real-time "
                    "endpoint (--sagemaker-endpoint-instance-type): " + (
                        "local mode replaces its one container" if local else
                        "serverless endpoints have no instances to shift traffic between"))
            guardrails = GuardrailSettings(
                config.sagemaker_traffic_shift, percent=config.sagemaker_shift_percent,
                wait_s=config.sagemaker_shift_wait_s, bake_s=config.sagemaker_shift_bake_s,
                alarm_5xx=config.sagemaker_alarm_5xx,
                alarm_latency_ms=config.sagemaker_alarm_latency_ms)
        return cls(
            bucket=config.sagemaker_bucket, prefix=config.sagemaker_prefix,
            role_arn=config.sagemaker_role_arn or (LOCAL_ROLE_ARN if local else ""),
            training_image=config.sagemaker_training_image,
            inference_image=config.sagemaker_inference_image,
            instance_type=LOCAL_INSTANCE_TYPE if local else config.sagemaker_instance_type,
            instance_count=config.sagemaker_instance_count,
            volume_size_gb=config.sagemaker_volume_size_gb,
            max_runtime_s=config.sagemaker_max_runtime_s,
            serverless_memory_mb=config.sagemaker_serverless_memory_mb,
            serverless_concurrency=config.sagemaker_serverless_concurrency,
            endpoint_instance_type=(LOCAL_INSTANCE_TYPE if local
                                    else config.sagemaker_endpoint_instance_type),
            endpoint_instance_count=config.sagemaker_endpoint_instance_count,
            train_with=config.sagemaker_train_with, local_mode=local,
            parallel_jobs=config.sagemaker_parallel_jobs, poll_max_s=config.sagemaker_poll_max_s,
            endpoint_timeout_s=config.sagemaker_endpoint_timeout_s,
            invoke_concurrency=config.sagemaker_invoke_concurrency, guardrails=guardrails,
        )

    @property
    def serverless(self) -> bool:
        """Endpoints are serverless (no instance type named)."""
        return not self.endpoint_instance_type

    @property
    def max_body_bytes(self) -> int:
        """The InvokeEndpoint payload limit of the endpoints this backend creates."""
        return SERVERLESS_MAX_BODY_BYTES if self.serverless else REALTIME_MAX_BODY_BYTES
