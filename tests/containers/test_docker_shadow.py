"""A challenger in shadow on the docker backend: a real gateway process (`--backend docker`)
runs the version in shadow in its own inference container beside the live one, its forecasts
of the live model's requests come from that container (they equal the artifact's own Predictor)
and live actuals promote it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from docker_helpers import backend_containers, docker, wait_until
from sagemaker_job import SAMPLE

pytestmark = pytest.mark.docker

grpc = pytest.importorskip("grpc")
from forecast_client import ForecastClient, pb
from forecast_gateway.testing.process import GatewayProcess

from forecasting import forecast
from forecasting.metrics import scores
from forecasting.predictor import Predictor

RETAILER = "shadowco"
GOOD = {"num_round": "40", "early_stopping_rounds": "10", "nthread": "2", "refit": "false"}
POOR = {"num_round": "3", "early_stopping_rounds": "3", "eta": "0.01", "nthread": "2",
        "refit": "false"}
CUT = pd.Timestamp("2017-08-01")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, training_image: str,
            inference_image: str) -> Iterator[dict]:
    tmp = tmp_path_factory.mktemp("shadow-docker")
    data_dir = tmp / "var"
    gw = GatewayProcess(data_dir, env={
        "FORECAST_GATEWAY_DOCKER_TRAINING_IMAGE": training_image,
        "FORECAST_GATEWAY_DOCKER_INFERENCE_IMAGE": inference_image,
        "FORECAST_GATEWAY_DOCKER_DRAIN_S": "1",
    }, args=("--backend", "docker", "--log-format", "text"))
    try:
        gw.start()
        with ForecastClient(target=gw.target, api_key=gw.api_key(RETAILER)) as client:
            client.wait_until_ready(30)
            yield {"client": client, "data_dir": data_dir, "tmp": tmp}
    finally:
        gw.stop(timeout_s=90)
        left = backend_containers("inference") + backend_containers("training")
        if left:
            docker("rm", "-f", *left, check=False)
        assert not left, f"the gateway left containers behind: {left}"


def test_the_challenger_runs_in_its_own_container_and_is_promoted(gateway: dict) -> None:
    client, tmp = gateway["client"], gateway["tmp"]
    frame = pd.read_csv(SAMPLE, parse_dates=["date"])
    history = frame[frame["date"] <= CUT]
    history.to_csv(tmp / "history.csv", index=False)
    dataset = client.upload_dataset(RETAILER, tmp / "history.csv").dataset_id
    for hp, promote in ((POOR, "if_better"), (GOOD, "shadow")):
        job = client.train(RETAILER, dataset_id=dataset, hyperparameters=hp, promote=promote,
                           promote_after={"days": 7, "min_cells": 10}
                           if promote == "shadow" else None)
        done = client.wait_for_job(RETAILER, job.job_id, timeout_s=600)
        assert done.state == pb.JOB_STATE_SUCCEEDED, done.failure_reason
    assert done.promotion.trial.state == pb.SHADOW_STATE_RUNNING
    wait_until(lambda: len(backend_containers("inference")) == 2, 60,
               "a container for the live version and one for the version in shadow")
    rows = forecast.future_rows(history, 7)
    served = client.predict_frame(RETAILER, rows)
    week = frame[(frame["date"] > CUT) & (frame["date"] <= CUT + pd.Timedelta(days=7))]
    week.assign(date=week["date"].dt.strftime("%Y-%m-%d")).to_csv(tmp / "week.csv", index=False)
    trial = client.append_actuals(RETAILER, tmp / "week.csv").shadow
    assert trial.state == pb.SHADOW_STATE_PROMOTED, trial.reason
    # The challenger's recorded forecasts came from its container: the score they make equals
    # that of its artifact's Predictor on the same rows.
    v2 = Predictor.load(gateway["data_dir"] / "retailers" / RETAILER / "models" / "v2")
    mine = served.assign(date=pd.to_datetime(served["date"]),
                         shadow=np.asarray(v2.predict(rows))).merge(
        week, on=["date", "store_nbr", "family"], suffixes=("", "_actual"))
    assert trial.cells == len(mine)
    assert trial.challenger_score == pytest.approx(
        scores(mine["shadow"].to_numpy(), mine["sales_actual"].to_numpy())["rmsle"], abs=1e-4)
    assert [m.version for m in client.list_models(RETAILER) if m.live] == ["v4"]
    wait_until(lambda: len(backend_containers("inference")) == 1, 60,
               "only the new live version's container")
