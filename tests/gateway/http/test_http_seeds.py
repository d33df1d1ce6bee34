"""The seeds' own HTTP calls, exactly as they were written, against a real gateway process with
the real local backend: upload, `POST /train {"retailer": "acme"}`, follow the job, `POST
/predict`, `POST /api/v1/predict`, `GET /metrics?retailer=acme`; and the same forecasts over
HTTP as over gRPC for the same rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests
from forecast_client import ForecastClient
from forecast_gateway.testing.process import GatewayProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A gateway process with its HTTP face, and retailer acme's key."""
    with GatewayProcess(tmp_path_factory.mktemp("http-seeds") / "data", http=True) as gw:
        key = gw.api_key("acme")
        yield {"gw": gw, "key": key, "headers": {"Authorization": f"Bearer {key}"}}


def test_the_seeds_requests(acme, sample_csv: Path, future_rows: pd.DataFrame) -> None:
    gw, headers = acme["gw"], acme["headers"]
    url = gw.http_url
    upload = requests.post(f"{url}/v1/retailers/acme/datasets", params={"filename": "train.csv"},
                           data=sample_csv.read_bytes(), headers=headers, timeout=60)
    assert upload.status_code == 200, upload.text

    # First seed: POST /train {"retailer": ...} trains on the retailer's newest dataset.
    train = requests.post(f"{url}/train", json={"retailer": "acme"}, headers=headers, timeout=30)
    assert train.status_code == 200, train.text
    job = train.json()["job"]
    assert job["dataset_id"] == upload.json()["dataset"]["dataset_id"]
    with requests.get(f"{url}/v1/retailers/acme/jobs/{job['job_id']}:watch", headers=headers,
                      stream=True, timeout=600) as watch:
        assert watch.status_code == 200
        events = [json.loads(line) for line in watch.iter_lines() if line]
    assert events[-1]["terminal"] is True, events[-1]
    assert events[-1]["job"]["state"] == "JOB_STATE_SUCCEEDED", events[-1]

    rows = future_rows.head(40)
    objects = [{"date": r.date, "store_nbr": int(r.store_nbr), "family": r.family,
                "onpromotion": 0} for r in rows.itertuples()]
    predict = requests.post(f"{url}/predict", json={"retailer": "acme", "rows": objects},
                            headers=headers, timeout=60)
    assert predict.status_code == 200, predict.text
    forecasts = predict.json()["forecast"]
    assert len(forecasts) == len(objects) and all(v >= 0 for v in forecasts)
    # Second seed: FastAPI's POST /api/v1/predict, same body, same answer.
    second = requests.post(f"{url}/api/v1/predict", json={"retailer": "acme", "rows": objects},
                           headers=headers, timeout=60)
    assert second.json()["forecast"] == forecasts

    metrics = requests.get(f"{url}/metrics", params={"retailer": "acme"}, headers=headers,
                           timeout=30)
    assert metrics.status_code == 200, metrics.text
    evaluations = metrics.json()["evaluations"]
    assert any(e["baseline"] for e in evaluations) and any(e["final"] for e in evaluations)
    assert all(e["overall"]["rmsle"] > 0 for e in evaluations)

    # The same rows over gRPC give the same forecasts, to the last bit.
    with ForecastClient(target=gw.target, api_key=acme["key"]) as client:
        over_grpc = client.predict("acme", date=list(rows.date), store_nbr=list(rows.store_nbr),
                                   family=list(rows.family), onpromotion=[0] * len(rows))
    assert [float(v) for v in over_grpc] == forecasts
