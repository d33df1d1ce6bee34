"""Opt-in smoke test against real AWS: never runs in CI (no account there), runs when
FORECAST_AWS_SMOKE_BUCKET, FORECAST_AWS_SMOKE_ROLE_ARN, FORECAST_AWS_SMOKE_TRAINING_IMAGE and
FORECAST_AWS_SMOKE_INFERENCE_IMAGE are set (AWS credentials and region from the usual chain;
FORECAST_AWS_SMOKE_PREFIX defaults to `forecast-smoke`). It covers what moto and local mode
cannot: IAM, ECR pulls, real instance types, a serverless endpoint, SigV4 and the real
ModelError/throttling wire format. It costs a few cents and about 15 minutes; it deletes the
endpoint it made (the model and config stay, tagged, for inspection)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from forecast_gateway.backends.base import TrainingSpec
from forecast_gateway.backends.sagemaker.aws import create_clients
from forecast_gateway.backends.sagemaker.backend import SageMakerBackend
from forecast_gateway.backends.sagemaker.endpoints import endpoint_name
from forecast_gateway.backends.sagemaker.settings import SageMakerSettings
from forecast_gateway.domain import ModelRef, RowColumns
from sagemaker_helpers import ROOT, Listener

from forecasting import forecast
from forecasting.predictor import Predictor

NEEDED = ("FORECAST_AWS_SMOKE_BUCKET", "FORECAST_AWS_SMOKE_ROLE_ARN",
          "FORECAST_AWS_SMOKE_TRAINING_IMAGE", "FORECAST_AWS_SMOKE_INFERENCE_IMAGE")
missing = [name for name in NEEDED if not os.environ.get(name)]
pytestmark = pytest.mark.skipif(bool(missing), reason="real-AWS smoke test: set "
                                + ", ".join(missing))


def test_train_deploy_and_predict_on_real_sagemaker(tmp_path: Path) -> None:
    settings = SageMakerSettings(
        bucket=os.environ["FORECAST_AWS_SMOKE_BUCKET"],
        prefix=os.environ.get("FORECAST_AWS_SMOKE_PREFIX", "forecast-smoke"),
        role_arn=os.environ["FORECAST_AWS_SMOKE_ROLE_ARN"],
        training_image=os.environ["FORECAST_AWS_SMOKE_TRAINING_IMAGE"],
        inference_image=os.environ["FORECAST_AWS_SMOKE_INFERENCE_IMAGE"],
        max_runtime_s=1800, poll_max_s=15)
    clients = create_clients(region=os.environ.get("AWS_REGION", ""))
    backend = SageMakerBackend(settings, clients)
    retailer = "smoke"
    try:
        backend.check_available()
        data = tmp_path / "ds-00000000smoke.csv"
        shutil.copyfile(ROOT / "data" / "sample" / "train.csv", data)
        listener = Listener()
        backend.submit_training(TrainingSpec(
            job_id=f"job-{os.urandom(6).hex()}", retailer=retailer, job_dir=tmp_path / "job",
            data_path=data, data_format="csv", hyperparameters={
                "model_kind": "xgboost", "horizon": "7", "num_round": "20"}), listener)
        outcome = listener.wait(timeout=1800)
        assert outcome.state == "succeeded", outcome.failure_reason
        assert any(e[0] == "metric" for e in listener.events)  # MetricDefinitions read them
        ref = ModelRef(retailer, "v1", outcome.model_dir)
        backend.load_model(ref)
        history = pd.read_csv(data, usecols=["date", "store_nbr", "family"])
        future = forecast.future_rows(history, 7)
        rows = RowColumns(day=future["date"].to_numpy().astype("datetime64[D]").astype(np.int64),
                          store_nbr=future["store_nbr"].to_numpy(),
                          family=future["family"].to_numpy(dtype=object),
                          onpromotion=future["onpromotion"].to_numpy())
        np.testing.assert_allclose(backend.predict(ref, rows),
                                   Predictor.load(outcome.model_dir).predict(future), rtol=1e-9)
    finally:
        backend.close("smoke test over")
        try:
            clients.sagemaker.delete_endpoint(EndpointName=endpoint_name(retailer))
        except Exception as exc:  # noqa: BLE001 - report, never hide the test's own failure
            print(f"could not delete the smoke endpoint: {exc}")
