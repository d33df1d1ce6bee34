"""Train through the pipeline (`--sagemaker-train-with pipeline`): StartPipelineExecution with
the retailer's raw upload, followed until the Train step's model is fetched, or a Fail step's
message becomes the job's reason. moto answers ListPipelineExecutionSteps and
StopPipelineExecution with HTTP 500, so the sagemaker client here is a Stubber's."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from botocore.stub import ANY
from forecast_gateway.backends.base import TrainingSpec
from forecast_gateway.backends.sagemaker import model_registry
from forecast_gateway.backends.sagemaker.backend import SageMakerBackend
from forecast_gateway.backends.sagemaker.pipeline import (
    CHECK_STEP,
    CLEAN_STEP,
    EVALUATE_STEP,
    FAIL_STEP,
    PACKAGE_STEP,
    REGISTER_STEP,
    TRAIN_STEP,
)
from sagemaker_helpers import Listener, Recorder, settings

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample" / "train.csv"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PIPELINE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/retail-forecast"
EXECUTION = f"{PIPELINE_ARN}/execution/abc123def456"
TRAIN_JOB = "pipelines-abc123def456-Train-x1y2z3"
DEFINITION = json.dumps({"Version": "2020-12-01", "Steps": []})
GROUP_ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/forecast-acme"
PACKAGE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/forecast-acme/1"


def _spec(tmp_path: Path, job_id: str) -> TrainingSpec:
    data = tmp_path / "ds-0000aaaa2222.csv"
    shutil.copyfile(SAMPLE, data)
    return TrainingSpec(job_id=job_id, retailer="acme", job_dir=tmp_path / job_id, data_path=data,
                        data_format="csv",
                        hyperparameters={"model_kind": "xgboost", "horizon": "16",
                                         "num_round": "40"})


def _step(name: str, status: str, **metadata) -> dict:
    return {"StepName": name, "StepStatus": status, "StartTime": NOW,
            **({"Metadata": metadata} if metadata else {})}


def _execution(status: str, **extra) -> dict:
    return {"PipelineArn": PIPELINE_ARN, "PipelineExecutionArn": EXECUTION,
            "PipelineExecutionStatus": status, **extra}


def _pipeline_backend(stubbed, bucket: str):
    """The backend on the pipeline path, its pipeline created on the first Train."""
    clients, sm, _ = stubbed
    sm.add_client_error("describe_pipeline", "ResourceNotFound", "Pipeline does not exist")
    sm.add_response("create_pipeline", {"PipelineArn": PIPELINE_ARN},
                    {"PipelineName": "retail-forecast", "PipelineDefinition": DEFINITION,
                     "PipelineDescription": ANY, "RoleArn": ANY})
    return SageMakerBackend(settings(bucket, train_with="pipeline"), clients, first_pause_s=0.01,
                            pipeline_definition=DEFINITION)


@pytest.fixture()
def backend(stubbed, bucket: str):
    made = _pipeline_backend(stubbed, bucket)
    # The register step's group, made before the first execution of the retailer.
    stubbed[1].add_response("create_model_package_group", {"ModelPackageGroupArn": GROUP_ARN},
                            {"ModelPackageGroupName": "forecast-acme", "Tags": ANY,
                             "ModelPackageGroupDescription": ANY})
    yield made
    made.close("test over")


def test_a_group_that_cannot_be_made_fails_the_job_naming_the_call(stubbed, bucket: str,
                                                                   tmp_path: Path) -> None:
    made = _pipeline_backend(stubbed, bucket)
    stubbed[1].add_client_error("create_model_package_group", "AccessDeniedException",
                                "not authorized to perform: sagemaker:CreateModelPackageGroup")
    try:
        listener = Listener()
        made.submit_training(_spec(tmp_path, "job-pipe00000009"), listener)
        outcome = listener.wait()
    finally:
        made.close("test over")
    assert outcome.state == "failed"
    assert outcome.failure_reason.startswith("the pipeline execution could not start: ")
    assert "CreateModelPackageGroup operation" in outcome.failure_reason
    assert "not authorized" in outcome.failure_reason


def test_a_good_run_trains_through_the_pipeline_and_fetches_the_train_steps_model(
        backend, stubbed, bucket: str, model_tar: Path, recorder: Recorder,
        tmp_path: Path) -> None:
    clients, sm, _ = stubbed
    clients.s3.upload_file(str(model_tar), bucket,
                           f"tenant-data/models/acme/{TRAIN_JOB}/output/model.tar.gz")
    sm.add_response("start_pipeline_execution", {"PipelineExecutionArn": EXECUTION})
    sm.add_response("describe_pipeline_execution", _execution("Executing"))
    sm.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
        _step(CLEAN_STEP, "Executing")]})
    sm.add_response("describe_pipeline_execution", _execution("Succeeded"))
    sm.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
        _step(PACKAGE_STEP, "Succeeded", RegisterModel={"Arn": PACKAGE_ARN}),
        _step(REGISTER_STEP, "Succeeded"), _step(CHECK_STEP, "Succeeded"),
        _step(EVALUATE_STEP, "Succeeded"),
        _step(TRAIN_STEP, "Succeeded", TrainingJob={
            "Arn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{TRAIN_JOB}"}),
        _step(CLEAN_STEP, "Succeeded")]})
    listener = Listener()
    backend.submit_training(_spec(tmp_path, "job-pipe00000001"), listener)
    outcome = listener.wait()
    assert outcome.state == "succeeded", outcome.failure_reason
    assert (outcome.model_dir / "artifact.json").is_file()
    started = recorder.params("StartPipelineExecution")
    params = {p["Name"]: p["Value"] for p in started["PipelineParameters"]}
    assert params["Retailer"] == "acme" and params["ModelKind"] == "xgboost"
    assert params["InputDataUri"] == f"s3://{bucket}/tenant-data/raw/acme/ds-0000aaaa2222.csv"
    assert params["NumRound"] == "40" and params["Horizon"] == "16"
    assert params["ModelPackageGroup"] == "forecast-acme"
    # The pipeline's register step made the version's package: noted, not made again.
    assert model_registry.noted(outcome.model_dir) == PACKAGE_ARN
    assert "CreateModelPackage" not in recorder.operations()
    stages = [e[1] for e in listener.events if e[0] == "progress"]
    assert stages == ["pipeline_clean", "pipeline_model_package"]


def test_a_run_that_does_not_beat_the_baseline_fails_with_both_numbers(
        backend, stubbed, tmp_path: Path) -> None:
    _, sm, _ = stubbed
    message = "test RMSLE 0.93 does not beat the seasonal-naive baseline's 0.91"
    sm.add_response("start_pipeline_execution", {"PipelineExecutionArn": EXECUTION})
    sm.add_response("describe_pipeline_execution", _execution(
        "Failed", FailureReason="Step failure: One or multiple steps failed."))
    sm.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
        _step(FAIL_STEP, "Failed", Fail={"ErrorMessage": message}),
        _step(CHECK_STEP, "Succeeded")]})
    listener = Listener()
    backend.submit_training(_spec(tmp_path, "job-pipe00000002"), listener)
    outcome = listener.wait()
    assert outcome.state == "failed"
    assert outcome.failure_reason == f"{FAIL_STEP}: {message}"


def test_cancel_stops_the_pipeline_execution(backend, stubbed, recorder: Recorder,
                                             tmp_path: Path) -> None:
    import time

    _, sm, _ = stubbed
    sm.add_response("start_pipeline_execution", {"PipelineExecutionArn": EXECUTION})
    for _ in range(2):
        sm.add_response("describe_pipeline_execution", _execution("Executing"))
        sm.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
            _step(TRAIN_STEP, "Executing")]})
    sm.add_response("stop_pipeline_execution", {"PipelineExecutionArn": EXECUTION},
                    {"PipelineExecutionArn": EXECUTION})  # botocore adds the token later
    sm.add_response("describe_pipeline_execution", _execution("Stopped"))
    sm.add_response("list_pipeline_execution_steps", {"PipelineExecutionSteps": [
        _step(TRAIN_STEP, "Stopped")]})
    listener = Listener()
    backend.submit_training(_spec(tmp_path, "job-pipe00000003"), listener)
    deadline = time.monotonic() + 10
    while recorder.operations().count("ListPipelineExecutionSteps") < 2:
        assert time.monotonic() < deadline, recorder.operations()
        time.sleep(0.01)
    assert backend.cancel_training("job-pipe00000003")
    assert listener.wait().state == "cancelled"


def test_a_hyperparameter_the_pipeline_does_not_take_fails_the_job_clearly(
        backend, stubbed, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "job-pipe00000004")
    spec = TrainingSpec(**{**spec.__dict__, "hyperparameters": {
        **spec.hyperparameters, "lstm_units": "8"}})
    listener = Listener()
    backend.submit_training(spec, listener)
    outcome = listener.wait()
    assert outcome.state == "failed"
    assert outcome.failure_reason.startswith("the pipeline does not take this job:")
    assert "lstm_units" in outcome.failure_reason
