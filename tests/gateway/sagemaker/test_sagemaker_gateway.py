"""A real gateway process with `--backend sagemaker` on moto (no Docker): the flags reach the
backend, a Train goes to SageMaker, and what SageMaker reports comes back through the API."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
from forecast_gateway.testing.process import GatewayProcess
from moto_server import DUMMY_AWS_ENV, MotoServer

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample" / "train.csv"


def test_a_train_on_moto_fails_naming_the_model_sagemaker_never_wrote(
        moto_server: MotoServer, tmp_path: Path) -> None:
    from forecast_client import ForecastClient, pb

    bucket = f"forecast-{uuid.uuid4().hex[:10]}"
    s3 = boto3.session.Session(region_name="us-east-1").client("s3", endpoint_url=moto_server.url)
    s3.create_bucket(Bucket=bucket)
    env = {**DUMMY_AWS_ENV, "FORECAST_GATEWAY_BACKEND": "sagemaker",
           "FORECAST_GATEWAY_AUTH": "false", "FORECAST_GATEWAY_AWS_ENDPOINT_URL": moto_server.url,
           "FORECAST_GATEWAY_AWS_REGION": "us-east-1", "FORECAST_GATEWAY_SAGEMAKER_BUCKET": bucket,
           "FORECAST_GATEWAY_SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/forecast",
           "FORECAST_GATEWAY_SAGEMAKER_POLL_MAX_S": "1"}
    with GatewayProcess(tmp_path / "data", env=env) as gateway, \
            ForecastClient(target=gateway.target) as client:
        client.wait_until_ready(10)
        dataset = client.upload_dataset("acme", SAMPLE)
        job = client.train("acme", dataset_id=dataset.dataset_id)
        final = list(client.watch_job("acme", job.job_id))[-1]
    # moto completes every training job at once and writes no artifact.
    assert final.state == pb.JOB_STATE_FAILED
    assert final.failure_reason.startswith(
        f"the training job wrote no model at s3://{bucket}/models/acme/acme-{job.job_id}/"
        "output/model.tar.gz")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"raw/acme/{dataset.dataset_id}.csv"]


def test_the_gateway_does_not_start_without_a_bucket(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "forecast_gateway.main", "--backend",
                           "sagemaker", "--data-dir", str(tmp_path), "--port", "0", "--no-auth"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "the sagemaker backend needs --sagemaker-bucket" in proc.stderr
