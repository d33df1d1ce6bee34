"""End to end through SageMaker local mode: a gateway with `--backend sagemaker` trains a
retailer's model by running the real training image as a SageMaker training job (S3 on moto),
deploys it to a local endpoint of the real inference image, and answers Predict through
invoke_endpoint. One model is trained for the module; the tests share it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
from forecast_gateway.testing.process import GatewayProcess
from moto_server import MotoServer
from sagemaker_helpers import ROOT, local_mode_containers, local_mode_env
from sagemaker_job import free_port

from forecasting.predictor import Predictor

sys.path.insert(0, str(ROOT / "tests" / "containers"))  # the shared Docker checks
from docker_helpers import IMAGES, docker, unavailable

pytestmark = pytest.mark.docker
SAMPLE = ROOT / "data" / "sample" / "train.csv"
QUICK = {"num_round": "20", "early_stopping_rounds": "5", "nthread": "2", "refit": "false"}


@pytest.fixture(scope="module")
def images() -> None:
    """The engine and both images; a failure in CI, a skip elsewhere."""
    try:
        info = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        unavailable("no docker command or engine")
    if info.returncode != 0:
        unavailable(f"no Docker engine answers ({info.stderr.strip()[:200]})")
    for name in ("training", "inference"):
        if docker("image", "inspect", IMAGES[name], check=False).returncode != 0:
            unavailable(f"image {IMAGES[name]} is not built; run `make images`")
    for tool in ("docker-compose",):
        if subprocess.run(["which", tool], capture_output=True, check=False).returncode:
            unavailable("docker-compose is not installed (local mode runs containers with it)")


@pytest.fixture(scope="module")
def local_gateway(images: None, moto_server: MotoServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A gateway on the SageMaker backend in local mode; every container it started is removed."""
    root = tmp_path_factory.mktemp("sm-local")
    bucket = f"forecast-{uuid.uuid4().hex[:10]}"
    s3 = boto3.session.Session(region_name="us-east-1").client("s3",
                                                               endpoint_url=moto_server.url)
    s3.create_bucket(Bucket=bucket)
    env = local_mode_env(root, moto_server.url, bucket, free_port())
    try:
        with GatewayProcess(root / "data", env=env) as gateway:
            yield {"gateway": gateway, "s3": s3, "bucket": bucket, "root": root}
    finally:
        left = local_mode_containers(root)
        if left:
            docker("rm", "-f", *left, check=False)


@pytest.fixture(scope="module")
def trained(local_gateway: dict) -> dict:
    """Retailer `acme_co`: the sample uploaded, one model trained through SageMaker local mode."""
    from forecast_client import ForecastClient

    with ForecastClient(target=local_gateway["gateway"].target) as client:
        client.wait_until_ready(10)
        dataset = client.upload_dataset("acme_co", SAMPLE)
        job = client.train("acme_co", dataset_id=dataset.dataset_id, model_kind="xgboost",
                           horizon=7, hyperparameters=QUICK)
        final = list(client.watch_job("acme_co", job.job_id))[-1]
        models = client.list_models("acme_co")
    return {**local_gateway, "dataset": dataset, "job": job, "final": final, "models": models}


def test_train_runs_the_training_image_and_the_version_goes_live(trained: dict) -> None:
    final = trained["final"]
    from forecast_client import pb

    assert final.state == pb.JOB_STATE_SUCCEEDED, final.failure_reason
    assert final.model_version == "v1"
    assert [(m.version, m.live) for m in trained["models"]] == [("v1", True)]
    listing = trained["s3"].list_objects_v2(Bucket=trained["bucket"])
    keys = sorted(o["Key"] for o in listing["Contents"])
    job = f"acme-co-{trained['job'].job_id}"
    assert f"tenants/models/acme_co/{job}/output/model.tar.gz" in keys
    assert f"tenants/raw/acme_co/{trained['dataset'].dataset_id}.csv" in keys


def test_predict_is_answered_by_the_inference_image_as_the_local_backend_would(
        trained: dict) -> None:
    from forecast_client import ForecastClient

    history = pd.read_csv(SAMPLE, usecols=["date", "store_nbr", "family"])
    from forecasting import forecast

    future = forecast.future_rows(history, 7).reset_index(drop=True)
    with ForecastClient(target=trained["gateway"].target) as client:
        answered = client.predict_frame("acme_co", future)
    published = trained["root"] / "data" / "retailers" / "acme_co" / "models" / "v1"
    expected = Predictor.load(published).predict(future)  # the local backend's own code
    np.testing.assert_allclose(answered["sales"].to_numpy(), np.asarray(expected), rtol=1e-9)
    # Prediction intervals too: the endpoint's container computes them, as docker's does.
    with ForecastClient(target=trained["gateway"].target) as client:
        bands = client.predict_frame("acme_co", future, levels=[80])
    _, bounds = Predictor.load(published).predict_frame_intervals(future, [80])
    np.testing.assert_allclose(bands["lo-80"].to_numpy(), bounds[80.0][0], rtol=1e-9)
    np.testing.assert_allclose(bands["hi-80"].to_numpy(), bounds[80.0][1], rtol=1e-9)
    serving = docker("ps", "--filter", f"ancestor={IMAGES['inference']}", "--format",
                     "{{.ID}}").stdout.split()
    assert set(serving) & set(local_mode_containers(trained["root"]))


def test_a_failing_training_job_reports_the_containers_reason(local_gateway: dict,
                                                              tmp_path: Path) -> None:
    """Local mode reports a failed job only as a docker-compose error; the reason comes from
    the failure file the container left in output.tar.gz."""
    from forecast_client import ForecastClient, pb

    short = tmp_path / "short.csv"
    history = pd.read_csv(SAMPLE)
    history[history["date"] >= "2017-08-06"].to_csv(short, index=False)  # 10 days
    with ForecastClient(target=local_gateway["gateway"].target) as client:
        dataset = client.upload_dataset("shorty", short)
        job = client.train("shorty", dataset_id=dataset.dataset_id, model_kind="xgboost",
                           horizon=7, hyperparameters=QUICK)
        final = list(client.watch_job("shorty", job.job_id))[-1]
    assert final.state == pb.JOB_STATE_FAILED
    assert "history covers 10 days; with horizon 7 it needs at least 42" in final.failure_reason
