"""The AWS clients' settings (the S3 artifact and export stores, and the SageMaker backend)
and the SageMaker backend's own (`--backend sagemaker`). Declared once (`declare.setting`);
`SageMakerConfig.validate` holds what only the SageMaker backend requires."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from forecast_gateway.config.declare import one_of, positive, setting


def serverless_memory(value: int) -> str | None:
    return None if value in range(1024, 6145, 1024) else f"must be 1024, 2048, ... 6144, got {value}"


@dataclass(frozen=True)
class AwsConfig:
    """Every AWS client's settings."""

    TITLE: ClassVar[str] = "AWS clients (s3:// stores, --backend sagemaker)"

    aws_region: str = setting(
        "",
        "AWS region of the S3 and SageMaker clients (empty: the AWS default chain's).")
    aws_endpoint_url: str = setting(
        "",
        "One endpoint URL for every AWS client (a moto server in tests; empty: AWS itself).")
    aws_max_attempts: int = setting(
        8,
        "Attempts per AWS call, throttling included (botocore's adaptive retry mode).",
        check=positive)


@dataclass(frozen=True)
class SageMakerConfig:
    """The SageMaker backend's settings."""

    TITLE: ClassVar[str] = "sagemaker backend (--backend sagemaker)"

    sagemaker_bucket: str = setting(
        "",
        "The S3 bucket of the storage layout (required).")
    sagemaker_prefix: str = setting(
        "",
        "The key prefix under the bucket (`s3://bucket/prefix/raw/...`).")
    sagemaker_role_arn: str = setting(
        "",
        "The execution role of training jobs and models (required on AWS).")
    sagemaker_training_image: str = setting(
        "retail-forecast-training:latest",
        "The training image URI (ECR on AWS).")
    sagemaker_inference_image: str = setting(
        "retail-forecast-inference:latest",
        "The inference image URI (ECR on AWS).")
    sagemaker_instance_type: str = setting(
        "ml.m5.large",
        "The training instance type.")
    sagemaker_instance_count: int = setting(
        1,
        "Training instances per job.",
        check=positive)
    sagemaker_volume_size_gb: int = setting(
        30,
        "The training instance's EBS volume.",
        check=positive)
    sagemaker_max_runtime_s: int = setting(
        86400,
        "A training job's StoppingCondition.MaxRuntimeInSeconds.",
        check=positive)
    sagemaker_serverless_memory_mb: int = setting(
        2048,
        "A serverless endpoint's memory (1024..6144, steps of 1024; see "
        "docs/sagemaker.md, \"Serverless memory\").",
        check=serverless_memory)
    sagemaker_serverless_concurrency: int = setting(
        5,
        "A serverless endpoint's MaxConcurrency.",
        check=positive)
    sagemaker_endpoint_instance_type: str = setting(
        "",
        "An instance type for real-time endpoints (empty: serverless).")
    sagemaker_endpoint_instance_count: int = setting(
        1,
        "Instances of a real-time endpoint.",
        check=positive)
    sagemaker_train_with: str = setting(
        "training-job",
        "`training-job` (CreateTrainingJob) or `pipeline` "
        "(StartPipelineExecution of the clean/train/evaluate pipeline).",
        check=one_of("training-job", "pipeline"))
    sagemaker_local_mode: bool = setting(
        False,
        "Run jobs and endpoints through the SageMaker SDK's local mode (real "
        "images in local docker containers, S3 at `aws_endpoint_url`).")
    sagemaker_parallel_jobs: int = setting(
        8,
        "Training jobs followed at once (more wait in the fair queue).",
        check=positive)
    sagemaker_poll_max_s: float = setting(
        30.0,
        "The longest pause between two Describe calls (backoff from 1 s).",
        check=positive)
    sagemaker_endpoint_timeout_s: float = setting(
        1800.0,
        "How long an endpoint may take to become InService.",
        check=positive)
    sagemaker_invoke_concurrency: int = setting(
        4,
        "InvokeEndpoint calls in flight for one bulk request.",
        check=positive)
    sagemaker_traffic_shift: str = setting(
        "",
        "How an update moves a real-time endpoint to a new version: empty (a "
        "plain UpdateEndpoint), `all-at-once`, `canary` or `linear` (blue/green, rolled back by "
        "alarms on 5xx errors and model latency; docs/sagemaker.md, \"Canary deploys\").")
    sagemaker_shift_percent: int = setting(
        10,
        "The canary size, or linear step, in percent of the new fleet (1..50).")
    sagemaker_shift_wait_s: int = setting(
        300,
        "Baking period after each traffic step (0..3600 s).")
    sagemaker_shift_bake_s: int = setting(
        600,
        "Final baking period before the old fleet goes (0..3600 s).")
    sagemaker_alarm_5xx: int = setting(
        1,
        "Invocation5XXErrors in one minute that roll an update back.")
    sagemaker_alarm_latency_ms: int = setting(
        2000,
        "P99 ModelLatency (ms, over one minute) that rolls an update back.")

    def validate(self) -> None:
        """What the SageMaker backend requires, when it is the backend."""
        if getattr(self, "backend", "") != "sagemaker":
            return
        if not self.sagemaker_bucket:
            raise ValueError("the sagemaker backend needs --sagemaker-bucket")
        if not self.sagemaker_role_arn and not self.sagemaker_local_mode:
            raise ValueError("the sagemaker backend needs --sagemaker-role-arn (the execution "
                             "role)")
        if self.sagemaker_traffic_shift:  # ValueError naming the setting (no cycle at load)
            from forecast_gateway.backends.sagemaker.settings import SageMakerSettings
            SageMakerSettings.from_config(self)  # type: ignore[arg-type]
