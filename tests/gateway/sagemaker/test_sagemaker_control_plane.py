"""The SageMaker backend against moto in server mode over HTTP: the S3 layout, the requests it
sends (each one checked against the service model), training to a published artifact, serving."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import numpy as np
import pytest
from forecast_gateway.backends.base import TrainingSpec
from forecast_gateway.backends.sagemaker import training
from forecast_gateway.backends.sagemaker.aws import AwsClients
from forecast_gateway.backends.sagemaker.backend import SageMakerBackend
from forecast_gateway.backends.sagemaker.endpoints import deployment
from forecast_gateway.domain import ModelRef, RowColumns
from forecast_gateway.errors import FailedPrecondition
from moto_server import MotoServer
from sagemaker_helpers import GOLDEN_ARTIFACT, Listener, Recorder, settings

from forecasting.metrics import METRICS

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample" / "train.csv"
HP = {"model_kind": "xgboost", "horizon": "16", "num_round": "30"}


def _spec(tmp_path: Path, job_id: str = "job-0123456789ab", retailer: str = "acme_co"):
    data = tmp_path / "ds-00aa11bb22cc.csv"
    data.write_bytes(SAMPLE.read_bytes())
    return TrainingSpec(job_id=job_id, retailer=retailer, job_dir=tmp_path / job_id,
                        data_path=data, data_format="csv", hyperparameters=HP)


def _objects(s3, bucket: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listing.get("Contents", []))


@pytest.fixture()
def backend(moto_clients: AwsClients, bucket: str):
    made = SageMakerBackend(settings(bucket), moto_clients, first_pause_s=0.01)
    yield made
    made.close("test over")


def test_train_writes_the_layout_and_returns_the_checked_artifact(
        backend: SageMakerBackend, moto_clients: AwsClients, bucket: str, recorder: Recorder,
        model_tar: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    name = training.job_name(spec.retailer, spec.job_id)
    assert name == "acme-co-job-0123456789ab"  # SageMaker's alphabet has no '_'
    # moto completes a job at once and writes nothing: put the model where SageMaker would.
    moto_clients.s3.upload_file(str(model_tar), bucket, f"tenant-data/models/acme_co/{name}/"
                                                        "output/model.tar.gz")
    listener = Listener()
    backend.submit_training(spec, listener)
    outcome = listener.wait()

    assert outcome.state == "succeeded", outcome.failure_reason
    assert outcome.model_dir == spec.job_dir / "model"
    assert (outcome.model_dir / "artifact.json").read_bytes() == \
        (GOLDEN_ARTIFACT / "artifact.json").read_bytes()
    assert training.model_source(outcome.model_dir) == \
        f"s3://{bucket}/tenant-data/models/acme_co/{name}/output/model.tar.gz"
    assert _objects(moto_clients.s3, bucket) == [
        # the evaluation its model package points at (test_sagemaker_model_registry.py)
        "tenant-data/evaluation/acme_co/acme-co-job-0123456789ab/evaluation.json",
        "tenant-data/models/acme_co/acme-co-job-0123456789ab/output/model.tar.gz",
        "tenant-data/raw/acme_co/ds-00aa11bb22cc.csv"]
    raw = moto_clients.s3.get_object(Bucket=bucket, Key="tenant-data/raw/acme_co/"
                                                        "ds-00aa11bb22cc.csv")["Body"].read()
    assert raw == SAMPLE.read_bytes()  # uploads as received

    request = recorder.params("CreateTrainingJob")
    assert request["OutputDataConfig"] == {
        "S3OutputPath": f"s3://{bucket}/tenant-data/models/acme_co/"}
    assert request["InputDataConfig"][0]["ChannelName"] == "train"
    assert request["InputDataConfig"][0]["InputMode"] == "File"
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == \
        f"s3://{bucket}/tenant-data/raw/acme_co/ds-00aa11bb22cc.csv"
    assert request["HyperParameters"] == HP
    assert {"Key": "retailer", "Value": "acme_co"} in request["Tags"]
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    names = {m["Name"] for m in request["AlgorithmSpecification"]["MetricDefinitions"]}
    assert {f"xgboost.test.{m}" for m in METRICS} | {"baseline.test.rmsle"} <= names
    described = moto_clients.sagemaker.describe_training_job(TrainingJobName=name)
    assert described["TrainingJobStatus"] == "Completed"
    assert ("started",) in listener.events
    ops = recorder.operations()[1:]  # after the test's own upload of the model
    assert ops.index("PutObject") < ops.index("CreateTrainingJob") < \
        ops.index("DescribeTrainingJob") < ops.index("GetObject")  # data, job, follow, model


def test_the_metric_regexes_read_the_lines_train_prints() -> None:
    import re

    from forecasting.joblog import metric_line

    definitions = training.metric_definitions()
    assert len(definitions) <= 40  # SageMaker's limit of MetricDefinitions
    for name, value in (("hybrid.test.rmsle", 0.4821), ("xgboost.test.coverage_80", 0.79)):
        line = metric_line(name, value)
        found = {d["Name"]: re.search(d["Regex"], line) for d in definitions}
        assert float(found[name].group(1)) == pytest.approx(value)
        assert [n for n, m in found.items() if m] == [name]


def test_a_completed_job_without_model_fails_naming_the_missing_uri(
        backend: SageMakerBackend, bucket: str, tmp_path: Path) -> None:
    listener = Listener()
    backend.submit_training(_spec(tmp_path, "job-nomodel00001"), listener)
    outcome = listener.wait()
    assert outcome.state == "failed"
    assert outcome.failure_reason.startswith(
        f"the training job wrote no model at s3://{bucket}/tenant-data/models/acme_co/"
        "acme-co-job-nomodel00001/output/model.tar.gz")


def test_a_second_train_on_the_same_dataset_uploads_it_once(
        backend: SageMakerBackend, recorder: Recorder, tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    backend.upload_dataset(spec)
    backend.upload_dataset(spec)
    assert recorder.operations().count("PutObject") == 1


def test_serving_creates_a_serverless_endpoint_per_retailer_and_invokes_it(
        backend: SageMakerBackend, moto_clients: AwsClients, moto_server: MotoServer,
        recorder: Recorder, bucket: str, tmp_path: Path) -> None:
    import shutil

    model_dir = tmp_path / "models" / "v1"
    shutil.copytree(GOLDEN_ARTIFACT, model_dir)
    ref = ModelRef("acme_co", "v1", model_dir)
    backend.load_model(ref)  # an artifact made elsewhere: uploaded once under models/

    keys = [k for k in _objects(moto_clients.s3, bucket) if k.startswith("tenant-data/models/")]
    assert len(keys) == 1 and keys[0].startswith("tenant-data/models/acme_co/import-")
    target = deployment("acme_co", "v1", f"s3://{bucket}/{keys[0]}")
    endpoint = moto_clients.sagemaker.describe_endpoint(EndpointName=target.endpoint)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == target.config
    config = recorder.params("CreateEndpointConfig")["ProductionVariants"][0]
    assert config["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 5}
    model = recorder.params("CreateModel")
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{bucket}/{keys[0]}"
    assert model["ExecutionRoleArn"].endswith(":role/forecast-sagemaker-execution")

    backend.load_model(ref)  # the same version again: nothing new is created
    assert recorder.operations().count("CreateEndpoint") == 1

    rows = RowColumns(day=np.array([17394, 17395, 17394], dtype=np.int64),
                      store_nbr=np.array([1, 1, 2], dtype=np.int32),
                      family=np.array(["BEVERAGES", "BEVERAGES", "BREAD/BAKERY"], dtype=object))
    moto_server.set_endpoint_results(["1.5\n2.5\n3.5\n"])
    assert backend.predict(ref, rows).tolist() == [1.5, 2.5, 3.5]
    sent = recorder.params("InvokeEndpoint")
    assert sent["EndpointName"] == target.endpoint and sent["ContentType"] == "text/csv"
    assert sent["Body"].splitlines()[0] == b"date,store_nbr,family,onpromotion"

    other = ModelRef("acme_co", "v0", tmp_path / "models" / "v0")
    with pytest.raises(FailedPrecondition, match="serves the live version only"):
        backend.predict(other, rows)


def test_many_payloads_come_back_in_row_order(moto_clients: AwsClients,
                                              moto_server: MotoServer) -> None:
    from forecast_gateway.backends.sagemaker import invoke

    stores = np.repeat(np.arange(1, 7, dtype=np.int32), 4)
    rows = RowColumns(day=np.tile(np.arange(17394, 17398, dtype=np.int64), 6), store_nbr=stores,
                      family=np.array(["BEVERAGES"] * 24, dtype=object))
    chunks = list(invoke.payloads(rows, 250))
    assert len(chunks) > 2
    # moto answers the queued bodies in the order requests arrive: one at a time here.
    moto_server.set_endpoint_results(["\n".join(str(float(i)) for i in idx) for idx, _ in chunks])
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        values, bounds = invoke.predict(moto_clients.runtime, "forecast-acme", rows, limit=250,
                                        concurrency=1, pool=pool)
    assert values.tolist() == [float(i) for i in range(24)] and bounds == {}

    # With levels: JSON bodies with "levels" (sized for the answer's bounds too), and the
    # container's JSON answer's intervals placed back in row order like the forecasts.
    chunks = list(invoke.payloads(rows, 400, levels=[80]))
    assert len(chunks) > 2
    for idx, body in chunks:
        sent = json.loads(body)
        assert sent["levels"] == [80.0] and len(sent["date"]) == len(idx) and len(body) <= 400
    moto_server.set_endpoint_results([json.dumps({
        "predictions": [float(i) for i in idx],
        "intervals": [{"level": 80.0, "lower": [i - 0.5 for i in idx.tolist()],
                       "upper": [i + 0.5 for i in idx.tolist()]}]}) for idx, _ in chunks])
    with ThreadPoolExecutor(1) as pool:
        values, bounds = invoke.predict(moto_clients.runtime, "forecast-acme", rows, limit=400,
                                        concurrency=1, pool=pool, levels=[80])
    assert values.tolist() == [float(i) for i in range(24)]
    assert bounds[80.0][0].tolist() == [i - 0.5 for i in range(24)]
    assert bounds[80.0][1].tolist() == [i + 0.5 for i in range(24)]


def test_check_available_names_a_missing_bucket(moto_clients: AwsClients) -> None:
    from forecast_gateway.errors import BackendUnavailable

    backend = SageMakerBackend(settings("no-such-bucket-here"), moto_clients)
    try:
        with pytest.raises(BackendUnavailable, match="no-such-bucket-here"):
            backend.check_available()
    finally:
        backend.close("test over")


def test_the_config_refuses_a_sagemaker_backend_without_bucket_or_role() -> None:
    from forecast_gateway.config import GatewayConfig

    with pytest.raises(ValueError, match="--sagemaker-bucket"):
        GatewayConfig(backend="sagemaker", sagemaker_role_arn="arn:aws:iam::1:role/x")
    with pytest.raises(ValueError, match="--sagemaker-role-arn"):
        GatewayConfig(backend="sagemaker", sagemaker_bucket="b-1")
    with pytest.raises(ValueError, match="1024, 2048"):
        GatewayConfig(backend="sagemaker", sagemaker_bucket="b-1", sagemaker_local_mode=True,
                      sagemaker_serverless_memory_mb=1500)
    assert boto3  # the clients above are boto3's


def test_a_restarted_gateway_finds_the_endpoint_it_made(
        moto_clients: AwsClients, bucket: str, recorder: Recorder, tmp_path: Path) -> None:
    import shutil

    model_dir = tmp_path / "v1"
    shutil.copytree(GOLDEN_ARTIFACT, model_dir)
    ref = ModelRef("acme", "v1", model_dir)
    for _ in range(2):  # the same version, deployed by two gateway lifetimes
        backend = SageMakerBackend(settings(bucket), moto_clients, first_pause_s=0.01)
        try:
            backend.load_model(ref)
        finally:
            backend.close("restart")
    assert recorder.operations().count("CreateEndpoint") == 1
    assert recorder.operations().count("UpdateEndpoint") == 0
    assert recorder.operations().count("PutObject") == 1  # the artifact is uploaded once
