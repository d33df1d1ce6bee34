"""The Model Registry on moto over HTTP: a trained version becomes a pending model package in
its retailer's group with its metrics, the promotion gate approves the version it makes live,
and SetModelApproval (the SDK's approve_model / reject_model, over a real gRPC channel) changes
it; a backend without a registry refuses approval clearly, over gRPC and HTTP."""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
from cli_helpers import assert_one_line_error
from cli_helpers import run_forecast as forecast
from forecast_gateway.backends.base import TrainingSpec
from forecast_gateway.backends.sagemaker import model_registry, training
from forecast_gateway.backends.sagemaker.aws import AwsClients
from forecast_gateway.backends.sagemaker.backend import SageMakerBackend
from forecast_gateway.dataplane import Tenant
from forecast_gateway.domain import Job, JobState
from sagemaker_helpers import GOLDEN_ARTIFACT, Listener, settings

from forecasting.promotion import Decision

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample" / "train.csv"
EVALUATION = json.loads((GOLDEN_ARTIFACT / "evaluation.json").read_text())


@pytest.fixture()
def retailer() -> str:
    """A retailer of this test only: the session's moto server keeps every group."""
    return f"shop_{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def backend(moto_clients: AwsClients, bucket: str):
    made = SageMakerBackend(settings(bucket), moto_clients, first_pause_s=0.01)
    yield made
    made.close("test over")


def _trained(backend: SageMakerBackend, clients: AwsClients, bucket: str, model_tar: Path,
             tmp_path: Path, retailer: str, job_id: str = "job-0a1b2c3d4e5f") -> Path:
    """Train on moto (the model put where SageMaker would write it); the job's model dir."""
    data = tmp_path / "ds-00aa11bb22cc.csv"
    data.write_bytes(SAMPLE.read_bytes())
    spec = TrainingSpec(job_id=job_id, retailer=retailer, job_dir=tmp_path / job_id,
                        data_path=data, data_format="csv",
                        hyperparameters={"model_kind": "xgboost", "horizon": "16"})
    name = training.job_name(spec.retailer, spec.job_id)
    clients.s3.upload_file(str(model_tar), bucket,
                           f"tenant-data/models/{retailer}/{name}/output/model.tar.gz")
    listener = Listener()
    backend.submit_training(spec, listener)
    outcome = listener.wait()
    assert outcome.state == "succeeded", outcome.failure_reason
    assert outcome.model_dir is not None
    return outcome.model_dir


def _packages(sagemaker, group: str) -> list[dict]:
    listed = sagemaker.list_model_packages(ModelPackageGroupName=group)
    return [sagemaker.describe_model_package(ModelPackageName=p["ModelPackageArn"])
            for p in listed["ModelPackageSummaryList"]]


def test_a_trained_version_becomes_a_pending_package_with_its_metrics(
        backend, moto_clients: AwsClients, bucket: str, model_tar: Path, tmp_path: Path,
        retailer: str) -> None:
    model_dir = _trained(backend, moto_clients, bucket, model_tar, tmp_path, retailer)
    sm = moto_clients.sagemaker
    group = "forecast-" + retailer.replace("_", "-")   # SageMaker's alphabet has no '_'
    (package,) = _packages(sm, group)
    assert model_registry.noted(model_dir) == package["ModelPackageArn"]
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    (container,) = package["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"] == training.model_source(model_dir)
    assert container["Image"].endswith("retail-forecast-inference:latest")
    run = training.job_name(retailer, "job-0a1b2c3d4e5f")
    key = f"tenant-data/evaluation/{retailer}/{run}/evaluation.json"
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"] == {
        "ContentType": "application/json", "S3Uri": f"s3://{bucket}/{key}"}
    stored = moto_clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert json.loads(stored) == EVALUATION
    metadata = package["CustomerMetadataProperties"]
    final = EVALUATION["models"][EVALUATION["final_model"]]["overall"]
    assert metadata["test_rmsle"] == f"{final['rmsle']:.6g}"
    assert metadata["baseline_test_rmsle"] == f"{EVALUATION['baseline']['overall']['rmsle']:.6g}"
    assert (metadata["retailer"], metadata["run"]) == (retailer, run)
    described = sm.describe_model_package_group(ModelPackageGroupName=group)
    assert described["ModelPackageGroupName"] == group


def test_the_gate_approves_what_it_makes_live_and_approve_reject_change_it(
        backend, moto_clients: AwsClients, bucket: str, model_tar: Path, tmp_path: Path,
        gateway_over, retailer: str) -> None:
    from forecast_client import ForecastClient, pb

    gateway = gateway_over(backend)
    service = gateway.server.service
    service.registry.ensure_retailer(retailer)
    model_dir = _trained(backend, moto_clients, bucket, model_tar, tmp_path, retailer)
    arn = model_registry.noted(model_dir)
    job = Job(job_id="job-0a1b2c3d4e5f", retailer=retailer, dataset_id="ds-00aa11bb22cc",
              model_kind="xgboost", hyperparameters={}, horizon=16, state=JobState.RUNNING,
              created_at=time.time())
    gate = Decision("if_better", True, reason="no live model to compare against")
    assert service.models.publish(job, model_dir, {}, gate) == "v1"

    sm = moto_clients.sagemaker
    described = sm.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "promotion gate: no live model to compare against"
    assert described["CustomerMetadataProperties"]["model-version"] == "v1"
    assert "test_rmsle" in described["CustomerMetadataProperties"]   # kept beside the new key

    with ForecastClient(target=gateway.target, api_key=gateway.api_key(retailer)) as client:
        answer = client.reject_model(retailer, "v1", description="a holiday week it missed")
        assert (answer.model.version, answer.approval, answer.registry_entry) == (
            "v1", pb.MODEL_APPROVAL_REJECTED, arn)
        described = sm.describe_model_package(ModelPackageName=arn)
        assert described["ModelApprovalStatus"] == "Rejected"
        assert described["ApprovalDescription"] == "a holiday week it missed"
        assert [m.version for m in client.list_models(retailer) if m.live] == ["v1"]  # a label
        assert client.approve_model(retailer, "v1").registry_entry == arn
    assert sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved"
    assert len(_packages(sm, "forecast-" + retailer.replace("_", "-"))) == 1


def test_an_imported_version_gets_its_package_when_first_approved(
        backend, moto_clients: AwsClients, gateway_over, tmp_path: Path, retailer: str) -> None:
    from forecast_client import ForecastClient, ForecastClientError

    gateway = gateway_over(backend)
    source = tmp_path / "imported"
    shutil.copytree(GOLDEN_ARTIFACT, source)
    gateway.server.service.models.import_model(Tenant(retailer), source, make_live=False)
    with ForecastClient(target=gateway.target, api_key=gateway.api_key(retailer)) as client:
        first = client.approve_model(retailer, "v1", description="checked by planning")
        again = client.reject_model(retailer, "v1")      # found again by its metadata
        assert again.registry_entry == first.registry_entry
        with pytest.raises(ForecastClientError) as caught:
            client.approve_model(retailer, "v9")
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
    (package,) = _packages(moto_clients.sagemaker, "forecast-" + retailer.replace("_", "-"))
    assert package["ModelApprovalStatus"] == "Rejected"
    assert package["CustomerMetadataProperties"]["model-version"] == "v1"
    # The CLI, as a user runs it.
    done = forecast("approve", "--retailer", retailer, "v1", "--description", "fixed upstream",
                    target=gateway.target, env={"FORECAST_API_KEY": gateway.api_key(retailer)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"model v1 of {retailer} is approved ({first.registry_entry})\n"
    described = moto_clients.sagemaker.describe_model_package(
        ModelPackageName=first.registry_entry)
    assert (described["ModelApprovalStatus"], described["ApprovalDescription"]) == (
        "Approved", "fixed upstream")


def test_a_backend_without_a_model_registry_refuses_approval(local_gateway,
                                                             tmp_path: Path) -> None:
    from forecast_client import ForecastClient, ForecastClientError

    source = tmp_path / "model"
    shutil.copytree(GOLDEN_ARTIFACT, source)
    local_gateway.server.service.models.import_model(Tenant("acme"), source)
    key = local_gateway.api_key("acme")
    with ForecastClient(target=local_gateway.target, api_key=key) as client, \
            pytest.raises(ForecastClientError) as caught:
        client.approve_model("acme", "v1")
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details.startswith("the local backend has no model registry")
    assert_one_line_error(forecast("reject", "--retailer", "acme", "v1", target=local_gateway.target,
                                   env={"FORECAST_API_KEY": key}), 1,
                          "the local backend has no model registry", "forecast promote")
    request = urllib.request.Request(
        f"http://127.0.0.1:{local_gateway.server.http_port}/v1/retailers/acme/models/v1:"
        "setApproval", data=json.dumps({"approval": "MODEL_APPROVAL_REJECTED"}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(request, timeout=30)
    body = json.loads(http.value.read())
    assert http.value.code == 409    # FAILED_PRECONDITION's HTTP status (docs/http_api.md)
    assert "FAILED_PRECONDITION" in json.dumps(body) and "no model registry" in json.dumps(body)
