"""The one way out to AWS: a boto3 session and the s3, sagemaker, sagemaker-runtime and
cloudwatch clients, created once with the region, the endpoint URL override and botocore's retry
configuration.

Everything else in the SageMaker backend takes an `AwsClients`, so production hands in real
clients, the control-plane tests moto-backed ones (`aws_endpoint_url` = a moto server on
127.0.0.1) or Stubber-wrapped ones, and the end-to-end tests the SageMaker SDK's local-mode
clients (`local_mode=True`: training jobs and endpoints run the real images in local docker
containers; S3 is still a real boto3 client).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from forecast_gateway.backends.sagemaker import validation


@dataclass(frozen=True)
class AwsClients:
    """The clients the backend speaks through."""

    s3: Any
    sagemaker: Any
    runtime: Any
    """sagemaker-runtime (InvokeEndpoint)."""
    local_mode: bool = False
    """The sagemaker/runtime clients are the SageMaker SDK's local-mode ones."""
    cloudwatch: Any = None
    """cloudwatch (the rollback alarms of guarded endpoint updates; None: not made)."""


def retry_config(max_attempts: int, *, connect_timeout_s: float = 10,
                 read_timeout_s: float = 70) -> Config:
    """botocore's adaptive retries (throttling backs off and rate-limits the client)."""
    return Config(retries={"max_attempts": max_attempts, "mode": "adaptive"},
                  connect_timeout=connect_timeout_s, read_timeout=read_timeout_s,
                  max_pool_connections=32)


def create_s3_client(*, region: str = "", endpoint_url: str = "", max_attempts: int = 8,
                     validate: bool = True) -> Any:
    """One s3 client (the gateway's artifact store): the same region, endpoint override, retries
    and service-model checks as `create_clients`. With no endpoint URL given, botocore's own
    `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` variables still apply."""
    session = boto3.session.Session(region_name=region or None)
    extra: dict[str, Any] = {"config": retry_config(max_attempts)}
    if endpoint_url:
        extra["endpoint_url"] = endpoint_url
    s3 = session.client("s3", **extra)
    if validate:
        validation.enforce(s3)
    return s3


def create_clients(*, region: str = "", endpoint_url: str = "", max_attempts: int = 8,
                   local_mode: bool = False, validate: bool = True) -> AwsClients:
    """The clients, from one session. `validate` checks every request against the service
    model's enums, patterns and bounds before it is sent (`validation.enforce`)."""
    session = boto3.session.Session(region_name=region or None)
    if session.region_name is None:
        raise ValueError("no AWS region: set --aws-region (or AWS_DEFAULT_REGION)")
    config = retry_config(max_attempts)
    extra: dict[str, Any] = {"config": config}
    if endpoint_url:
        extra["endpoint_url"] = endpoint_url
    s3 = session.client("s3", **extra)
    if local_mode:
        from sagemaker.local import LocalSession

        local = LocalSession(boto_session=session, s3_endpoint_url=endpoint_url or None)
        sagemaker, runtime = local.sagemaker_client, local.sagemaker_runtime_client
    else:
        sagemaker = session.client("sagemaker", **extra)
        runtime = session.client("sagemaker-runtime", **extra)
    cloudwatch = session.client("cloudwatch", **extra)
    if validate:
        for client in (s3, sagemaker, runtime, cloudwatch):
            if hasattr(client, "meta"):  # local-mode clients are plain Python objects
                validation.enforce(client)
    return AwsClients(s3=s3, sagemaker=sagemaker, runtime=runtime, local_mode=local_mode,
                      cloudwatch=cloudwatch)
