"""The service model's enums, patterns and bounds are checked on every request (botocore checks
only presence and types)."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber
from forecast_gateway.backends.sagemaker import training, validation
from forecast_gateway.backends.sagemaker.layout import S3Layout
from sagemaker_helpers import SESSION, Recorder, client, settings


def _request(**changes):
    request = training.job_request(
        settings("forecast-data"), S3Layout("forecast-data", "p"), name="acme-job-1",
        retailer="acme", job_id="job-1", data_uri="s3://forecast-data/p/raw/acme/ds-1.csv",
        data_format="csv", hyperparameters={"model_kind": "xgboost", "horizon": "16"})
    request.update(changes)
    return request


def _operation(name: str):
    return SESSION.client(
        "sagemaker").meta.service_model.operation_model(name)


def test_the_backends_training_request_passes() -> None:
    assert validation.check_request(_operation("CreateTrainingJob"), _request()) == []


@pytest.mark.parametrize(("change", "problem"), [
    ({"TrainingJobName": "acme_job"}, "TrainingJobName: 'acme_job' does not match"),
    ({"TrainingJobName": "a" * 64}, "TrainingJobName: 64 characters, at most 63 allowed"),
    ({"StoppingCondition": {"MaxRuntimeInSeconds": 0}}, "MaxRuntimeInSeconds: 0 is below"),
    ({"ResourceConfig": {"InstanceType": "ml.nope", "InstanceCount": 1, "VolumeSizeInGB": 1}},
     "InstanceType: 'ml.nope' is not one of"),
    ({"HyperParameters": {"lstm_units": "8" * 2501}},
     "HyperParameters['lstm_units']: 2501 characters, at most 2500 allowed"),
    ({"RoleArn": "not-an-arn-at-all"}, "RoleArn: 'not-an-arn-at-all' does not match"),
])
def test_what_botocore_lets_through_is_caught(change: dict, problem: str) -> None:
    problems = validation.check_request(_operation("CreateTrainingJob"), _request(**change))
    assert any(problem in p for p in problems), problems


def test_an_invalid_request_never_leaves_the_client() -> None:
    recorder = Recorder()
    sagemaker = client("sagemaker", None, recorder)
    with Stubber(sagemaker) as stub:  # no answer queued: sending anything would fail the stub
        with pytest.raises(validation.RequestInvalid, match="TrainingJobName"):
            sagemaker.create_training_job(**_request(TrainingJobName="bad_name"))
        stub.assert_no_pending_responses()
    assert recorder.operations() == ["CreateTrainingJob"]


def test_java_unicode_classes_and_surrogate_ranges_compile() -> None:
    model = SESSION.client("sagemaker").meta.service_model
    patterns = {model.shape_for(n).metadata.get("pattern") for n in model.shape_names}
    unreadable = [p for p in patterns if p and validation._pattern(p) is None]
    assert unreadable == []
