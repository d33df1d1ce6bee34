"""Training on two instances through SageMaker local mode: a gateway with
`--sagemaker-instance-count 2` shards the upload by series into S3, local mode runs two
training containers (`algo-1`, `algo-2`) on its docker network, they train one model on
XGBoost's collective and `algo-1` writes it. Each container reads about half the rows; the
model's forecasts are within a stated tolerance of one instance's on the same data; a killed
container fails the job with a reason within the collective's timeout."""

from __future__ import annotations

import re
import sys
import time
import uuid
from collections.abc import Iterator

import boto3
import numpy as np
import pandas as pd
import pytest
from forecast_gateway.testing.process import GatewayProcess
from moto_server import MotoServer
from sagemaker_helpers import ROOT, local_mode_containers, local_mode_env
from sagemaker_job import free_port

from forecasting import training
from forecasting.predictor import Predictor

sys.path.insert(0, str(ROOT / "tests" / "containers"))  # the shared Docker checks
from docker_helpers import IMAGES, docker
from test_sagemaker_local_mode import images  # noqa: F401 - the shared fixture

pytestmark = pytest.mark.docker
SAMPLE = ROOT / "data" / "sample" / "train.csv"
HP = {"num_round": "40", "early_stopping_rounds": "5", "nthread": "1",
      "collective_timeout_s": "60"}
# The same tolerances as two processes on one machine (tests/forecasting/container/
# test_distributed_train.py): the merged quantile sketch and each host's subsample draws.
TOLERANCE_RMSLE = 0.05
TOLERANCE_LOG_GAP = 0.2


@pytest.fixture(scope="module")
def two_instances(images: None, moto_server: MotoServer,  # noqa: F811
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A gateway on the SageMaker backend in local mode with two training instances."""
    root = tmp_path_factory.mktemp("sm-local-2")
    bucket = f"forecast-{uuid.uuid4().hex[:10]}"
    s3 = boto3.session.Session(region_name="us-east-1").client("s3",
                                                               endpoint_url=moto_server.url)
    s3.create_bucket(Bucket=bucket)
    env = {**local_mode_env(root, moto_server.url, bucket, free_port()),
           "FORECAST_GATEWAY_SAGEMAKER_INSTANCE_COUNT": "2"}
    try:
        with GatewayProcess(root / "data", env=env) as gateway:
            yield {"gateway": gateway, "s3": s3, "bucket": bucket, "root": root}
    finally:
        left = local_mode_containers(root)
        if left:
            docker("rm", "-f", *left, check=False)


def _training_containers(root, running: bool = False) -> dict[str, str]:
    """host name (algo-1, algo-2) -> container id, of the training containers local mode
    started under `root` (only the running ones with `running`)."""
    ids = local_mode_containers(root)
    if not ids:
        return {}
    found = {}
    for line in docker("inspect", "-f", "{{.Id}} {{.Name}} {{.Config.Image}} {{.State.Running}}",
                       *ids).stdout.splitlines():
        cid, name, image, alive = line.split()
        if image.startswith(IMAGES["training"].split(":")[0]) and (alive == "true" or not running):
            found[re.search(r"algo-\d+", name).group(0)] = cid[:12]   # <random>-algo-1-<sfx>
    return found


def test_two_instances_train_one_model_from_half_the_rows_each(two_instances: dict) -> None:
    from forecast_client import ForecastClient, pb

    with ForecastClient(target=two_instances["gateway"].target) as client:
        client.wait_until_ready(10)
        dataset = client.upload_dataset("acme_co", SAMPLE)
        job = client.train("acme_co", dataset_id=dataset.dataset_id, model_kind="xgboost",
                           horizon=7, hyperparameters=HP)
        final = list(client.watch_job("acme_co", job.job_id))[-1]
    assert final.state == pb.JOB_STATE_SUCCEEDED, final.failure_reason

    keys = {o["Key"] for o in two_instances["s3"].list_objects_v2(
        Bucket=two_instances["bucket"], Prefix="tenants/processed/acme_co/")["Contents"]}
    prefix = f"tenants/processed/acme_co/{dataset.dataset_id}-2-shards/train/"
    assert keys == {prefix + "part-00000.parquet", prefix + "part-00001.parquet"}

    rows = len(pd.read_csv(SAMPLE))
    read = {}
    for host, cid in _training_containers(two_instances["root"]).items():
        log = docker("logs", cid).stdout
        match = re.search(r"distributed: rank (\d) reads (\d+) of (\d+) rows", log)
        assert match, log[-2000:]
        assert int(match.group(3)) == rows
        read[host] = int(match.group(2))
    assert sorted(read) == ["algo-1", "algo-2"]
    assert sum(read.values()) == rows and all(abs(n - rows / 2) < 0.1 * rows for n in read.values())

    published = two_instances["root"] / "data" / "retailers" / "acme_co" / "models" / "v1"
    two = Predictor.load(published)
    one = Predictor.from_trained(training.train(SAMPLE, {**HP, "horizon": "7"},
                                                log=lambda line: None))
    future = one.future_rows(7)
    assert future.equals(two.future_rows(7))
    gap = np.log1p(one.predict(future)) - np.log1p(two.predict(future))
    assert float(np.sqrt((gap ** 2).mean())) <= TOLERANCE_LOG_GAP
    served = two.predict(future)
    with ForecastClient(target=two_instances["gateway"].target) as client:
        answered = client.predict_frame("acme_co", future)
    np.testing.assert_allclose(answered["sales"].to_numpy(), served, rtol=1e-9)


def test_a_killed_container_fails_the_job_with_a_reason(two_instances: dict) -> None:
    from forecast_client import ForecastClient, pb

    slow = {**HP, "num_round": "100000", "early_stopping_rounds": "10000", "eta": "0.0001"}
    with ForecastClient(target=two_instances["gateway"].target) as client:
        dataset = client.upload_dataset("slowco", SAMPLE)
        job = client.train("slowco", dataset_id=dataset.dataset_id, model_kind="xgboost",
                           horizon=7, hyperparameters=slow)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            running = {h: c for h, c in _training_containers(two_instances["root"], True).items()
                       if "progress stage=fit" in docker("logs", c, check=False).stdout}
            if "algo-2" in running:
                break
            time.sleep(1)
        else:
            pytest.fail("the two training containers did not start boosting")
        docker("kill", running["algo-2"])
        killed = time.monotonic()
        final = list(client.watch_job("slowco", job.job_id))[-1]
        took = time.monotonic() - killed
    assert final.state == pb.JOB_STATE_FAILED
    assert took < 60 + 30, took
    # algo-1 either sees the collective break first (measured) or is stopped by local mode,
    # which stops every container when one exits; either way the reason says so.
    reason = final.failure_reason
    assert (re.match(r"PlatformError: host algo-1\S*: the collective of .* broke", reason)
            or "another host of the job exited" in reason), reason
