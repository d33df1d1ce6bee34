"""The gateway's docker backend end to end, through the gRPC API: a real gateway process on
127.0.0.1 (`--backend docker`) trains with the training image and predicts through inference
containers."""

from __future__ import annotations

import tarfile
import threading
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from docker_helpers import backend_containers, docker, future_rows, wait_until
from sagemaker_job import SAMPLE

pytestmark = pytest.mark.docker

grpc = pytest.importorskip("grpc")
from forecast_client import ForecastClient
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_gateway.testing.process import GatewayProcess

RETAILER = "dockerco"
QUICK = {"num_round": "40", "early_stopping_rounds": "10", "max_depth": "6", "nthread": "2"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, training_image: str,
            inference_image: str) -> Iterator[dict]:
    data_dir = tmp_path_factory.mktemp("gateway-docker") / "var"
    gw = GatewayProcess(data_dir, env={
        "FORECAST_GATEWAY_DOCKER_TRAINING_IMAGE": training_image,
        "FORECAST_GATEWAY_DOCKER_INFERENCE_IMAGE": inference_image,
        "FORECAST_GATEWAY_DOCKER_DRAIN_S": "1",
        # Small bodies: every Predict below is split into many /invocations calls.
        "FORECAST_GATEWAY_DOCKER_MAX_BODY_BYTES": "4096",
    }, args=("--backend", "docker", "--log-format", "text", "--cancel-grace-s", "20"))
    try:
        gw.start()  # RuntimeError with the exit code or timeout and the log tail
        with ForecastClient(target=gw.target, api_key=gw.api_key(RETAILER)) as client:
            client.wait_until_ready(30)
            yield {"client": client, "data_dir": data_dir, "log": gw.log_path}
    finally:
        gw.stop(timeout_s=90)
        left = backend_containers("inference") + backend_containers("training")
        if left:
            docker("rm", "-f", *left, check=False)
        assert not left, f"the gateway left containers behind: {left}"


@pytest.fixture(scope="module")
def dataset(gateway: dict) -> pb.Dataset:
    return gateway["client"].upload_dataset(RETAILER, SAMPLE)


def train(gateway: dict, dataset: pb.Dataset, promote: str = "if_better",
          **extra: str) -> pb.TrainingJob:
    client = gateway["client"]
    job = client.train(RETAILER, dataset_id=dataset.dataset_id, model_kind="xgboost",
                       hyperparameters={**QUICK, **extra}, horizon=7,
                       promote=promote)  # type: ignore[arg-type]
    return client.wait_for_job(RETAILER, job.job_id, timeout_s=600)


def predict(client: ForecastClient, rows: pd.DataFrame) -> np.ndarray:
    return np.asarray(client.predict(RETAILER, date=rows["date"].tolist(),
                                     store_nbr=rows["store_nbr"].tolist(),
                                     family=rows["family"].tolist(),
                                     onpromotion=rows["onpromotion"].tolist()))


def test_train_deploy_predict(gateway: dict, dataset: pb.Dataset) -> None:
    job = train(gateway, dataset)
    assert job.state == pb.JOB_STATE_SUCCEEDED, (job.failure_reason,
                                                 gateway["log"].read_text()[-3000:])
    assert job.model_version
    job_dir = gateway["data_dir"] / "retailers" / RETAILER / "jobs" / job.job_id
    tarball = job_dir / "output" / "model.tar.gz"
    with tarfile.open(tarball) as tar:
        assert "artifact.json" in tar.getnames(), "model files sit at the archive's root"
    assert any(name.endswith(".test.rmsle") for name in job.metrics), dict(job.metrics)
    assert len(backend_containers("inference")) == 1, "the live version has its container"
    assert backend_containers("training") == [], "the training container is removed"

    rows = future_rows(7)
    values = predict(gateway["client"], rows)
    assert values.shape == (len(rows),)
    # The same artifact, loaded in this process, gives the same forecasts: the chunked
    # /invocations calls kept the rows in order.
    from forecasting.predictor import Predictor

    model_dir = gateway["data_dir"] / "retailers" / RETAILER / "models" / job.model_version
    expected = Predictor.load(model_dir).predict(rows)
    np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-4)

    metrics = gateway["client"].get_metrics(RETAILER)
    assert metrics is not None


def test_levels_come_from_the_inference_container(gateway: dict) -> None:
    """Intervals through the container's JSON request (`"levels"`), over many small bodies
    (the answer's size bounds a chunk too), equal to the Predictor's in process."""
    from forecasting.predictor import Predictor

    client = gateway["client"]
    live = next(m for m in client.list_models(RETAILER) if m.live)
    frame = client.forecast(RETAILER, days=3, levels=(80, 95))
    model_dir = gateway["data_dir"] / "retailers" / RETAILER / "models" / live.version
    point, bounds = Predictor.load(model_dir).predict_intervals(
        frame["date"].to_numpy(), frame["store_nbr"].to_numpy(), frame["family"].to_numpy(),
        frame["onpromotion"].to_numpy(), (80, 95))
    np.testing.assert_allclose(frame["sales"], point, rtol=1e-6)
    for level in (80, 95):
        np.testing.assert_allclose(frame[f"lo-{level}"], bounds[level][0], rtol=1e-6)
        np.testing.assert_allclose(frame[f"hi-{level}"], bounds[level][1], rtol=1e-6)


def test_new_version_replaces_container_without_failing_requests(
        gateway: dict, dataset: pb.Dataset) -> None:
    client = gateway["client"]
    rows = future_rows(3)
    predict(client, rows)  # a live model from the previous test (or train one now)
    before = backend_containers("inference")
    errors: list[BaseException] = []
    answered = 0
    stop = threading.Event()

    def hammer() -> None:
        nonlocal answered
        while not stop.is_set():
            try:
                assert predict(client, rows).shape == (len(rows),)
                answered += 1
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                errors.append(exc)
                return

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    try:
        job = train(gateway, dataset, promote="always", seed="7")  # the switch, whatever it scores
        assert job.state == pb.JOB_STATE_SUCCEEDED, job.failure_reason
        wait_until(lambda: backend_containers("inference") != before
                   and len(backend_containers("inference")) == 1, 180,
                   "the old inference container to be removed")
        time.sleep(1.0)  # requests keep flowing to the new container
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not errors, f"requests failed during the switch: {errors[:3]}"
    assert answered > 0
    live = [m for m in client.list_models(RETAILER) if m.live]
    assert [m.version for m in live] == [job.model_version]


def test_failed_job_reports_the_failure_file(gateway: dict) -> None:
    # Valid rows (the upload passes) but too few days to split: the container's `train` fails.
    short = pd.DataFrame({"date": pd.date_range("2017-01-01", periods=30).strftime("%Y-%m-%d"),
                          "store_nbr": 1, "family": "BREAD/BAKERY", "sales": 3.0})
    too_short = gateway["client"].upload_dataset(RETAILER, short.to_csv(index=False).encode(),
                                                 filename="short.csv")
    job = train(gateway, too_short)
    assert job.state == pb.JOB_STATE_FAILED
    assert "history covers 30 days" in job.failure_reason
    assert "ClientError" in job.failure_reason
    assert backend_containers("training") == []


def test_cancel_stops_the_training_container(gateway: dict, dataset: pb.Dataset) -> None:
    client = gateway["client"]
    job = client.train(RETAILER, dataset_id=dataset.dataset_id, model_kind="xgboost",
                       hyperparameters={**QUICK, "num_round": "100000",
                                        "early_stopping_rounds": "10000", "eta": "0.0001"},
                       horizon=7)
    wait_until(lambda: client.get_job(RETAILER, job.job_id).state == pb.JOB_STATE_RUNNING
               and backend_containers("training") != [], 120, "the job to run")
    client.cancel_job(RETAILER, job.job_id)
    done = client.wait_for_job(RETAILER, job.job_id, timeout_s=60)
    assert done.state == pb.JOB_STATE_CANCELLED
    wait_until(lambda: backend_containers("training") == [], 30,
               "the training container to be removed")
