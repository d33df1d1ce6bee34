"""The Pipeline run end to end through SageMaker local mode (`LocalPipelineSession`): the real
training image runs Clean, Train and Evaluate as SageMaker jobs, S3 is moto's over HTTP, and the
condition either registers the model or ends in the Fail step naming both numbers."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
from forecast_gateway.backends.sagemaker import pipeline
from moto_server import MotoServer
from sagemaker_helpers import ROOT, local_mode_containers

sys.path.insert(0, str(ROOT / "tests" / "containers"))  # the shared Docker checks
from docker_helpers import IMAGES, docker, unavailable

pytestmark = pytest.mark.docker
SAMPLE = ROOT / "data" / "sample" / "train.csv"
QUICK = {"Horizon": 7, "NumRound": 40, "EarlyStoppingRounds": 5, "MaxDepth": 6}
RETAILER = "acme_co"


def weekly_csv(path: Path) -> Path:
    """Sales that repeat every week exactly: the seasonal-naive baseline is perfect on them."""
    days = pd.date_range("2017-01-01", periods=100, freq="D")
    pattern = np.array([5, 7, 9, 11, 13, 30, 20], dtype=float)
    rows = [(d.strftime("%Y-%m-%d"), store, family, level * store * pattern[d.dayofweek], 0)
            for store in (1, 2) for family, level in (("BEVERAGES", 10.0), ("GROCERY I", 3.0))
            for d in days]
    pd.DataFrame(rows, columns=["date", "store_nbr", "family", "sales", "onpromotion"]).to_csv(
        path, index=False)
    return path


@pytest.fixture(scope="module")
def local(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The pipeline upserted in a LocalPipelineSession on moto's S3, with the two uploads under
    raw/; every container local mode started is removed at teardown."""
    from sagemaker.workflow.pipeline_context import LocalPipelineSession

    try:
        present = docker("image", "inspect", IMAGES["training"], check=False).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        unavailable("no docker command or engine")
    if not present:
        unavailable(f"image {IMAGES['training']} is not built; run `make images`")
    if subprocess.run(["which", "docker-compose"], capture_output=True,
                      check=False).returncode:
        unavailable("docker-compose is not installed (local mode runs containers with it)")
    root = tmp_path_factory.mktemp("pipeline-local")
    bucket = f"forecast-{uuid.uuid4().hex[:10]}"
    boto_session = boto3.session.Session(region_name="us-east-1")
    s3 = boto_session.client("s3", endpoint_url=moto_server.url)
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(SAMPLE), bucket, f"tenants/raw/{RETAILER}/good.csv")
    s3.upload_file(str(weekly_csv(root / "weekly.csv")), bucket,
                   f"tenants/raw/{RETAILER}/weekly.csv")
    session = LocalPipelineSession(boto_session=boto_session, default_bucket=bucket,
                                   s3_endpoint_url=moto_server.url)
    session.config = {"local": {"container_root": str(root)}}   # teardown finds its containers
    settings = pipeline.PipelineSettings(
        role_arn="arn:aws:iam::000000000000:role/local-mode", bucket=bucket, prefix="tenants",
        training_image=IMAGES["training"], inference_image=IMAGES["inference"],
        processing_instance_type="local", training_instance_type="local")
    definition = pipeline.build_pipeline(settings, session)
    with pipeline.telemetry_opted_out(session):
        definition.upsert(role_arn=settings.role_arn)
    try:
        yield {"session": session, "pipeline": definition, "s3": s3, "bucket": bucket}
    finally:
        left = local_mode_containers(root)
        if left:
            docker("rm", "-f", *left, check=False)


def run(local: dict, upload: str) -> tuple[dict, dict]:
    """One execution on `raw/<retailer>/<upload>`; returns (describe, steps by name)."""
    with pipeline.telemetry_opted_out(local["session"]):
        execution = local["pipeline"].start(parameters={
            "Retailer": RETAILER, "InputDataUri": f"s3://{local['bucket']}/tenants/raw/"
                                                  f"{RETAILER}/{upload}", **QUICK})
    steps = {s["StepName"]: s for s in execution.list_steps()["PipelineExecutionSteps"]}
    return execution.describe(), steps


def keys(local: dict, prefix: str) -> list[str]:
    listing = local["s3"].list_objects_v2(Bucket=local["bucket"], Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def read_json(local: dict, key: str) -> dict:
    return json.loads(local["s3"].get_object(Bucket=local["bucket"], Key=key)["Body"].read())


def test_a_model_that_beats_the_baseline_is_registered(local):
    described, steps = run(local, "good.csv")
    assert described["PipelineExecutionStatus"] == "Succeeded", described
    run_id = described["PipelineExecutionArn"]
    assert {name: s["StepStatus"] for name, s in steps.items()} == {
        "Clean": "Succeeded", "Train": "Succeeded", "Evaluate": "Succeeded",
        "BeatsBaseline": "Succeeded", pipeline.REGISTER_STEP: "Succeeded"}
    assert steps["BeatsBaseline"]["Metadata"]["Condition"]["Outcome"] is True

    processed = f"tenants/processed/{RETAILER}/{run_id}/"
    assert keys(local, processed) == [processed + "cleaning_report.json",
                                      processed + "test/test.parquet",
                                      processed + "train/train.parquet",
                                      processed + "validation/validation.parquet"]
    assert read_json(local, processed + "cleaning_report.json")["split"]["horizon"] == 7
    job = steps["Train"]["Metadata"]["TrainingJob"]["Arn"]
    model_key = f"tenants/models/{RETAILER}/{job}/output/model.tar.gz"
    assert model_key in keys(local, f"tenants/models/{RETAILER}/")
    evaluation = read_json(local, f"tenants/evaluation/{RETAILER}/{run_id}/evaluation.json")
    assert evaluation["summary"]["beats_baseline"] is True and evaluation["horizon"] == 7

    model = local["session"].sagemaker_client.describe_model(
        ModelName=steps[pipeline.REGISTER_STEP]["Metadata"]["Model"]["Arn"])
    assert model["PrimaryContainer"]["Image"] == IMAGES["inference"]
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{local['bucket']}/{model_key}"


def test_a_model_that_cannot_beat_the_baseline_ends_in_the_fail_step(local):
    described, steps = run(local, "weekly.csv")
    assert described["PipelineExecutionStatus"] == "Failed"
    assert steps["BeatsBaseline"]["Metadata"]["Condition"]["Outcome"] is False
    assert pipeline.REGISTER_STEP not in steps
    evaluation = read_json(local, f"tenants/evaluation/{RETAILER}/"
                                  f"{described['PipelineExecutionArn']}/evaluation.json")
    summary = evaluation["summary"]
    assert summary["baseline_rmsle"] == 0.0 and summary["model_rmsle"] > 0
    reason = (f"the model's test RMSLE {summary['model_rmsle']} does not beat the "
              f"seasonal-naive baseline's 0.0 for retailer {RETAILER}")
    assert steps["WorseThanBaseline"]["StepStatus"] == "Failed"
    assert steps["WorseThanBaseline"]["FailureReason"] == reason
    assert described["FailureReason"] == f"Step 'WorseThanBaseline' failed with message: {reason}"
