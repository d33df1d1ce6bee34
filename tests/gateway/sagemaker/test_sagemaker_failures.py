"""Failure paths moto cannot express, driven by botocore's Stubber (every request still checked
against the service model): FailureReason, a stopped job, throttling, ModelError, a failed
endpoint update."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from botocore.stub import ANY
from forecast_gateway.backends.base import TrainingSpec
from forecast_gateway.backends.sagemaker import training
from forecast_gateway.backends.sagemaker.backend import SageMakerBackend
from forecast_gateway.backends.sagemaker.endpoints import DeployFailed, deployment
from forecast_gateway.domain import ModelRef, RowColumns
from forecast_gateway.errors import BackendUnavailable
from sagemaker_helpers import (
    GOLDEN_ARTIFACT,
    Listener,
    Recorder,
    settings,
    stub_first_deploy,
    stub_model_and_config,
)
from sagemaker_helpers import endpoint_description as _endpoint

from forecasting.errors import ForecastRequestError, UserError

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample" / "train.csv"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:training-job/x"


def _describe(name: str, status: str, secondary: str, **extra) -> dict:
    return {"TrainingJobName": name, "TrainingJobArn": ARN, "TrainingJobStatus": status,
            "SecondaryStatus": secondary, "CreationTime": NOW,
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m"},
            "ResourceConfig": {"VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400}, **extra}


def _spec(tmp_path: Path, job_id: str) -> TrainingSpec:
    data = tmp_path / "ds-0000aaaa1111.csv"
    shutil.copyfile(SAMPLE, data)
    return TrainingSpec(job_id=job_id, retailer="acme", job_dir=tmp_path / job_id,
                        data_path=data, data_format="csv",
                        hyperparameters={"model_kind": "xgboost", "horizon": "16"})


@pytest.fixture()
def backend(stubbed, bucket: str):
    clients, _, _ = stubbed
    made = SageMakerBackend(settings(bucket), clients, first_pause_s=0.01)
    yield made
    made.close("test over")


def test_failure_reason_becomes_the_jobs_reason(backend, stubbed, tmp_path: Path) -> None:
    _, sm, _ = stubbed
    name = training.job_name("acme", "job-fail00000001")
    sm.add_response("create_training_job", {"TrainingJobArn": ARN})
    sm.add_response("describe_training_job", _describe(name, "InProgress", "Training"))
    sm.add_response("describe_training_job", _describe(
        name, "Failed", "Failed", FailureReason="AlgorithmError: horizon: must be at most 90",
        FinalMetricDataList=[{"MetricName": "baseline.test.rmsle", "Value": 0.61,
                              "Timestamp": NOW}]))
    listener = Listener()
    backend.submit_training(_spec(tmp_path, "job-fail00000001"), listener)
    outcome = listener.wait()
    assert outcome.state == "failed"
    assert outcome.failure_reason == "AlgorithmError: horizon: must be at most 90"
    assert ("progress", "sagemaker_training", 0.1) in listener.events
    assert ("metric", "baseline.test.rmsle", 0.61) in listener.events


def test_cancel_stops_the_training_job(backend, stubbed, recorder: Recorder,
                                       tmp_path: Path) -> None:
    _, sm, _ = stubbed
    name = training.job_name("acme", "job-stop00000001")
    sm.add_response("create_training_job", {"TrainingJobArn": ARN})
    for _ in range(3):
        sm.add_response("describe_training_job", _describe(name, "InProgress", "Training"))
    sm.add_response("stop_training_job", {}, {"TrainingJobName": name})
    sm.add_response("describe_training_job", _describe(name, "Stopping", "Stopping"))
    sm.add_response("describe_training_job", _describe(name, "Stopped", "Stopped"))
    listener = Listener()
    backend.submit_training(_spec(tmp_path, "job-stop00000001"), listener)
    # The stub answers in order: let the follower use the three InProgress answers first.
    deadline = time.monotonic() + 10
    while recorder.operations().count("DescribeTrainingJob") < 3:
        assert time.monotonic() < deadline, recorder.operations()
        time.sleep(0.01)
    assert backend.cancel_training("job-stop00000001")
    outcome = listener.wait()
    assert outcome.state == "cancelled"
    assert "StopTrainingJob" in recorder.operations()


def test_a_job_stopped_outside_the_gateway_fails_with_the_secondary_status(
        backend, stubbed, tmp_path: Path) -> None:
    _, sm, _ = stubbed
    name = training.job_name("acme", "job-maxrun000001")
    sm.add_response("create_training_job", {"TrainingJobArn": ARN})
    sm.add_response("describe_training_job", _describe(name, "Stopped", "MaxRuntimeExceeded"))
    sm.add_response("get_object", {}) if False else None
    listener = Listener()
    backend.submit_training(_spec(tmp_path, "job-maxrun000001"), listener)
    outcome = listener.wait()
    assert outcome.state == "failed"
    assert "MaxRuntimeExceeded" in outcome.failure_reason


def test_create_refused_is_a_failed_job_with_the_reason(backend, stubbed, tmp_path: Path) -> None:
    _, sm, _ = stubbed
    sm.add_client_error("create_training_job", "ResourceLimitExceeded",
                        "The account-level service limit 'ml.m5.large for training job usage' "
                        "is 0 Instances")
    listener = Listener()
    backend.submit_training(_spec(tmp_path, "job-limit0000001"), listener)
    outcome = listener.wait()
    assert outcome.state == "failed"
    assert "ResourceLimitExceeded" in outcome.failure_reason
    assert "is 0 Instances" in outcome.failure_reason


ROWS = RowColumns(day=np.array([17394, 17395], dtype=np.int64),
                  store_nbr=np.array([1, 1], dtype=np.int32),
                  family=np.array(["BEVERAGES", "BEVERAGES"], dtype=object))


def _live(backend: SageMakerBackend, stubbed, tmp_path: Path, version: str = "v1") -> ModelRef:
    """Deploy a version through stubbed Create*/DescribeEndpoint answers."""
    _, sm, _ = stubbed
    model_dir = tmp_path / version
    shutil.copytree(GOLDEN_ARTIFACT, model_dir)
    ref = ModelRef("acme", version, model_dir)
    url = backend.model_data_url(ref)
    target = deployment("acme", version, url)
    stub_first_deploy(sm, target.endpoint, target.config)
    backend.load_model(ref)
    return ref


def test_a_failed_update_keeps_the_old_version_and_says_why(backend, stubbed,
                                                            tmp_path: Path) -> None:
    _, sm, rt = stubbed
    old = _live(backend, stubbed, tmp_path, "v1")
    old_target = deployment("acme", "v1", backend.model_data_url(old))
    new_dir = tmp_path / "v2"
    shutil.copytree(GOLDEN_ARTIFACT, new_dir)
    (new_dir / "evaluation.json").write_text("{}")  # another artifact: another model.tar.gz
    new = ModelRef("acme", "v2", new_dir)
    stub_model_and_config(sm)
    sm.add_response("describe_endpoint", _endpoint(old_target.endpoint, old_target.config,
                                                   "InService"))
    sm.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/e"},
                    {"EndpointName": old_target.endpoint, "EndpointConfigName": ANY})
    sm.add_response("describe_endpoint", _endpoint(old_target.endpoint, old_target.config,
                                                   "Updating"))
    sm.add_response("describe_endpoint", _endpoint(
        old_target.endpoint, old_target.config, "InService",
        FailureReason="The primary container for production variant AllTraffic did not pass "
                      "the ping health check."))
    with pytest.raises(DeployFailed, match="did not pass the ping health check.*still serves "
                                           + old_target.config):
        backend.load_model(new)
    # The old version still answers through the endpoint.
    rt.add_response("invoke_endpoint", {"Body": _stream(b"4.0\n5.0\n"), "ContentType": "text/csv"})
    assert backend.predict(old, ROWS).tolist() == [4.0, 5.0]


def _stream(body: bytes):
    import io

    from botocore.response import StreamingBody

    return StreamingBody(io.BytesIO(body), len(body))


def test_throttling_is_retried_then_answered(backend, stubbed, tmp_path: Path) -> None:
    _, _, rt = stubbed
    ref = _live(backend, stubbed, tmp_path)
    rt.add_client_error("invoke_endpoint", "ThrottlingException", "Rate exceeded", 400)
    rt.add_response("invoke_endpoint", {"Body": _stream(b"1.0\n2.0\n"), "ContentType": "text/csv"})
    assert backend.predict(ref, ROWS).tolist() == [1.0, 2.0]


def test_throttling_that_does_not_stop_is_unavailable(backend, stubbed, tmp_path: Path) -> None:
    _, _, rt = stubbed
    ref = _live(backend, stubbed, tmp_path)
    for _ in range(4):
        rt.add_client_error("invoke_endpoint", "ThrottlingException", "Rate exceeded", 400)
    with pytest.raises(BackendUnavailable, match="throttling or busy.*after 4 attempts"):
        backend.predict(ref, ROWS)


def test_model_error_4xx_is_the_containers_user_error(backend, stubbed, tmp_path: Path) -> None:
    _, _, rt = stubbed
    ref = _live(backend, stubbed, tmp_path)
    from forecasting.container.invocations import error_body

    sent = ForecastRequestError("family", "'TOYS' is not a family the model was trained on")
    message = error_body(str(sent), "ForecastRequestError", sent)   # what serve.py writes
    rt.add_client_error("invoke_endpoint", "ModelError", "Received client error (400)", 424,
                        response_meta={}, modeled_fields={"OriginalStatusCode": 400,
                                                          "OriginalMessage": message})
    with pytest.raises(ForecastRequestError, match="'TOYS' is not a family") as caught:
        backend.predict(ref, ROWS)
    assert isinstance(caught.value, UserError) and caught.value.field == "family"


def test_model_error_5xx_is_unavailable_with_the_message(backend, stubbed, tmp_path: Path) -> None:
    _, _, rt = stubbed
    ref = _live(backend, stubbed, tmp_path)
    rt.add_client_error("invoke_endpoint", "ModelError", "Received server error (500)", 424,
                        modeled_fields={"OriginalStatusCode": 500,
                                        "OriginalMessage": '{"error": "worker died", '
                                                           '"type": "InternalError"}'})
    with pytest.raises(BackendUnavailable, match="forecast-acme.*answered 500: worker died"):
        backend.predict(ref, ROWS)

