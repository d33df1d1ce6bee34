"""`--artifact-store s3://bucket/prefix` (docs/fleet.md, "Artifacts and datasets in S3"): published
versions and uploaded datasets in S3 (moto's server over HTTP), fetched by any replica into its
own cache and checked against the registry before they are used.

Real gateway processes on 127.0.0.1; replicas share one PostgreSQL database and nothing on
disk.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import boto3
import grpc
import numpy as np
import pytest
from forecast_client import ForecastClient, ForecastClientError, pb
from forecast_gateway.testing.crashpoints import ENV as CRASH_AT
from forecast_gateway.testing.process import GatewayProcess
from moto_server import MotoServer

PREFIX = "forecast/prod"
ROWS = {"date": ["2017-08-16", "2017-08-17", "2017-08-18"], "store_nbr": [1, 1, 2],
        "family": ["BREAD/BAKERY", "BREAD/BAKERY", "BEVERAGES"]}


@pytest.fixture()
def s3(moto_server: MotoServer):
    """A boto3 s3 client on moto, as an operator's tooling would reach the bucket."""
    return boto3.session.Session(region_name="us-east-1").client(
        "s3", endpoint_url=moto_server.url)


@pytest.fixture()
def bucket(s3) -> str:
    name = f"artifacts-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture()
def store_env(moto_server: MotoServer, bucket: str, postgres) -> dict[str, str]:
    """The settings every replica of the test's fleet gets: one database, one artifact store;
    the endpoint through the usual AWS variable, as the SageMaker backend reads it."""
    return {"FORECAST_GATEWAY_ARTIFACT_STORE": f"s3://{bucket}/{PREFIX}",
            "FORECAST_GATEWAY_DATABASE_URL": postgres.create(),
            "AWS_ENDPOINT_URL": moto_server.url}


def _keys(s3, bucket: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=PREFIX + "/")
    return sorted(o["Key"][len(PREFIX) + 1:] for o in listed.get("Contents", []))


def _version_dir(data_dir: Path, retailer: str, version: str) -> Path:
    found = sorted((data_dir / "cache" / retailer / "models").glob(f"{version}-*"))
    assert len(found) == 1, found
    return found[0]


def _fetches(gw: GatewayProcess) -> int:
    return gw.log_path.read_text().count("model version fetched from the artifact store")


def _train(client: ForecastClient, dataset_id: str, fast_hp: dict) -> pb.TrainingJob:
    done = client.wait_for_job("acme", client.train("acme", dataset_id=dataset_id,
                                                    hyperparameters=fast_hp).job_id)
    assert done.state == pb.JOB_STATE_SUCCEEDED, done.failure_reason
    return done


@pytest.mark.slow
def test_a_replica_on_an_empty_data_dir_serves_what_another_published(
        tmp_path, s3, bucket, store_env, sample_csv, fast_hp, gateway_factory) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a = gateway_factory(a_dir, env=store_env).start()
    key = a.api_key("acme")
    with ForecastClient(target=a.target, api_key=key) as client:
        dataset = client.upload_dataset("acme", sample_csv)
        assert _train(client, dataset.dataset_id, fast_hp).model_version == "v1"
        served_by_a = client.predict("acme", **ROWS)
    cached = _version_dir(a_dir, "acme", "v1")
    files = sorted(p.relative_to(cached).as_posix() for p in cached.rglob("*") if p.is_file())
    # The layout the SageMaker backend uses: raw/<retailer>/, models/<retailer>/<version>-<sha12>/.
    assert _keys(s3, bucket) == sorted([f"raw/acme/{dataset.dataset_id}.csv",
                                        *(f"models/acme/{cached.name}/{f}" for f in files)])
    assert not (a_dir / "retailers" / "acme" / "models" / "v1").exists()
    assert not list((a_dir / "retailers" / "acme" / "raw").glob("ds-*"))
    assert _fetches(a) == 0   # the publisher's cache entry is the staged artifact itself

    # Another replica: same database and store, a data dir of its own that starts empty.
    b = gateway_factory(b_dir, env=store_env).start()
    with ForecastClient(target=b.target, api_key=key) as client:
        np.testing.assert_array_equal(client.predict("acme", **ROWS), served_by_a)
        assert client.get_metrics("acme").model.version == "v1"
    entry = _version_dir(b_dir, "acme", "v1")
    assert entry.name == cached.name
    assert sorted(p.relative_to(entry).as_posix() for p in entry.rglob("*")
                  if p.is_file()) == files
    assert _fetches(b) == 1

    # With a stopped: b trains on a's upload (fetched into b's cache) and publishes v2.
    a.stop()
    with ForecastClient(target=b.target, api_key=key) as client:
        assert _train(client, dataset.dataset_id, fast_hp).model_version == "v2"
        assert (b_dir / "cache" / "acme" / "raw" / f"{dataset.dataset_id}.csv").read_bytes() \
            == sample_csv.read_bytes()
        served_v2 = client.predict("acme", **ROWS)
    assert "dataset fetched from the artifact store" in b.log_path.read_text()

    # Restarts: a follows v2 from S3; b's cache hits are checked, not downloaded again.
    b.stop()
    a = gateway_factory(a_dir, env=store_env).start()
    b = gateway_factory(b_dir, env=store_env).start()
    for gw in (a, b):
        with ForecastClient(target=gw.target, api_key=key) as client:
            np.testing.assert_array_equal(client.predict("acme", **ROWS), served_v2)
            np.testing.assert_array_equal(client.predict("acme", model_version="v1", **ROWS),
                                          served_by_a)
    assert _fetches(a) == 1 and _fetches(b) == 1   # a fetched v2 now; b fetched v1 in its first run


@pytest.mark.slow
def test_a_tampered_or_missing_object_is_refused_not_served(
        tmp_path, s3, bucket, store_env, sample_csv, fast_hp, gateway_factory) -> None:
    a = gateway_factory(tmp_path / "a", env=store_env).start()
    key = a.api_key("acme")
    with ForecastClient(target=a.target, api_key=key) as client:
        dataset_id = client.upload_dataset("acme", sample_csv).dataset_id
        _train(client, dataset_id, fast_hp)
        _train(client, dataset_id, fast_hp)   # v2, live
    a.stop()
    v1 = _version_dir(tmp_path / "a", "acme", "v1").name
    v2 = _version_dir(tmp_path / "a", "acme", "v2").name
    model = f"{PREFIX}/models/acme/{v2}/members/xgboost/model.ubj"
    body = s3.get_object(Bucket=bucket, Key=model)["Body"].read()
    s3.put_object(Bucket=bucket, Key=model, Body=body[: len(body) // 2])   # cut short
    evaluation = f"{PREFIX}/models/acme/{v1}/evaluation.json"
    s3.delete_object(Bucket=bucket, Key=evaluation)

    c_dir = tmp_path / "c"
    c = gateway_factory(c_dir, env=store_env).start()
    with ForecastClient(target=c.target, api_key=key) as client:
        for call in (lambda: client.predict("acme", **ROWS), lambda: client.get_metrics("acme"),
                     lambda: client.set_live_model("acme", "v2")):
            with pytest.raises(ForecastClientError) as info:
                call()
            assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert info.value.details.startswith(
                f"model version 'v2' of retailer 'acme' (as downloaded from s3://{bucket}/"
                f"{PREFIX}/models/acme/{v2}/) does not match the checksum recorded when it was "
                "published (file 'members/xgboost/model.ubj' does not match its recorded sha256")
        with pytest.raises(ForecastClientError) as info:
            client.predict("acme", model_version="v1", **ROWS)
        assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert info.value.details.startswith(
            "model version 'v1' of retailer 'acme': its file 'evaluation.json' is missing from "
            f"the artifact store (s3://{bucket}/{evaluation})")
    # Nothing was kept in c's cache, and the refusal is logged with its reason.
    assert list((c_dir / "cache" / "acme" / "models").glob("*")) == []
    refused = [json.loads(line) for line in c.log_path.read_text().splitlines()
               if "its objects in the artifact store do not match" in line]
    assert refused and refused[0]["model_version"] == "v2"
    assert "model.ubj" in refused[0]["why"]

    # A replica that cached v2 before the tampering keeps serving its checked copy.
    a = gateway_factory(tmp_path / "a", env=store_env).start()
    with ForecastClient(target=a.target, api_key=key) as client:
        assert len(client.predict("acme", **ROWS)) == 3


@pytest.mark.slow
def test_a_publish_cut_off_after_its_upload_registers_nothing(
        tmp_path, s3, bucket, store_env, sample_csv, fast_hp, gateway_factory) -> None:
    data_dir = tmp_path / "data"
    # One replica slot (a stable --gateway-id): restarted, it fails its own cut-off job at once.
    store_env = {**store_env, "FORECAST_GATEWAY_GATEWAY_ID": "gw-slot-0"}
    gw = gateway_factory(data_dir, env={**store_env, CRASH_AT: "publish.uploaded"}).start()
    key = gw.api_key("acme")
    with ForecastClient(target=gw.target, api_key=key) as client:
        dataset = client.upload_dataset("acme", sample_csv)
        cut = client.train("acme", dataset_id=dataset.dataset_id, hyperparameters=fast_hp)
    assert gw.proc.wait(180) == -9   # every object uploaded, nothing recorded
    orphans = {k.split("/")[2] for k in _keys(s3, bucket) if k.startswith("models/")}
    assert len(orphans) == 1 and orphans.pop().startswith("v1-")

    gw = gateway_factory(data_dir, env=store_env).start()
    with ForecastClient(target=gw.target, api_key=key) as client:
        assert client.get_job("acme", cut.job_id).state == pb.JOB_STATE_FAILED
        assert client.list_models("acme") == []
        with pytest.raises(ForecastClientError) as info:
            client.predict("acme", **ROWS)
        assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION   # no model yet
        assert _train(client, dataset.dataset_id, fast_hp).model_version == "v1"
        assert len(client.predict("acme", **ROWS)) == 3
    assert not list((data_dir / "retailers" / "acme" / "models").glob("v*"))


def test_a_bad_artifact_store_stops_the_gateway_at_start(tmp_path, moto_server, bucket) -> None:
    bad = GatewayProcess(tmp_path / "bad", env={"FORECAST_GATEWAY_ARTIFACT_STORE": "gs://x/y"})
    with pytest.raises(RuntimeError, match="exited with code 2"):
        bad.start()
    assert ("artifact_store must be s3://bucket or s3://bucket/prefix, got 'gs://x/y'"
            in bad.log())
    bad_name = GatewayProcess(tmp_path / "bad-name",
                              args=["--artifact-store", "s3://Not_A_Bucket/p"])
    with pytest.raises(RuntimeError, match="exited with code 2"):
        bad_name.start()
    assert "artifact_store: 'Not_A_Bucket' is not a valid S3 bucket name" in bad_name.log()
    missing = GatewayProcess(tmp_path / "missing", env={
        "FORECAST_GATEWAY_ARTIFACT_STORE": f"s3://{bucket}-gone/p",
        "FORECAST_GATEWAY_AWS_ENDPOINT_URL": moto_server.url})
    with pytest.raises(RuntimeError, match="exited with code 1"):
        missing.start()
    assert f"bucket '{bucket}-gone' does not exist" in missing.log()
