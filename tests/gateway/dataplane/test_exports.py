"""ExportForecasts over a real channel to an in-process gateway on the real local backend: the
file (Parquet or CSV, to file:// and to S3 on moto's server over HTTP) holds what Forecast
answers; progress, cancel and the result are followed as a job; bad input answers a status
naming the field, and a retailer writes only under its own scope."""

from __future__ import annotations

import importlib.util
import io
import time
import uuid
from pathlib import Path

import boto3
import grpc
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from forecast_client import ForecastClient, ForecastClientError, pb
from forecast_client.aio import AsyncForecastClient
from forecast_gateway.backends.local import LocalBackend
from forecast_gateway.dataplane import Tenant
from forecast_gateway.store.storage import Storage

pytestmark = pytest.mark.slow


def _in_process_gateway() -> type:
    """conftest's InProcessGateway, for module-scoped gateways (conftest is no package)."""
    spec = importlib.util.spec_from_file_location("gateway_conftest",
                                                  Path(__file__).resolve().parents[1] / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.InProcessGateway


InProcessGateway = _in_process_gateway()

PREFIX = "nightly"


@pytest.fixture(scope="module")
def bucket(moto_server) -> str:
    name = f"exports-{uuid.uuid4().hex[:12]}"
    _s3(moto_server).create_bucket(Bucket=name)
    return name


def _s3(moto_server):
    return boto3.session.Session(region_name="us-east-1").client(
        "s3", endpoint_url=moto_server.url)


@pytest.fixture(scope="module")
def exporter(tmp_path_factory, gateway, trained, moto_server, bucket):
    """A gateway on the local backend serving acme's trained model (and `other`'s, the same
    artifact), with file:// under `files/` and an export store on moto."""
    tmp = tmp_path_factory.mktemp("exports")
    files = tmp / "files"
    for retailer in ("acme", "other"):
        (files / retailer / "out").mkdir(parents=True)
    gw = InProcessGateway(tmp / "data", LocalBackend(), allow_file_uris=True,
                          file_uri_root=files, export_store=f"s3://{bucket}/{PREFIX}",
                          aws_endpoint_url=moto_server.url, max_predict_rows=100_000,
                          http_port=0).start()
    model = Storage(gateway.data_dir).model_dir("acme", trained["final"].model_version)
    for retailer in ("acme", "other"):
        gw.server.service.models.import_model(Tenant(retailer), model)
    gw.server.service.exports._chunk_rows = 100   # several chunks from the 24 sample series
    try:
        yield gw, files
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def client(exporter):
    gw, _ = exporter
    with ForecastClient(target=gw.target, api_key=gw.api_key("acme")) as c:
        yield c


def _refused(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(ForecastClientError) as info:
        call()
    return info.value.code, info.value.details


def test_a_parquet_export_holds_what_forecast_answers(exporter, client) -> None:
    _gw, files = exporter
    target = files / "acme" / "out" / "plan.parquet"
    seen: list[pb.ExportJob] = []
    job = client.export_forecasts("acme", target.as_uri(), days=16, levels=(80, 95), wait=True,
                                  timeout_s=120, on_update=seen.append)
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.failure_reason
    assert job.rows == 24 * 16 and job.series_total == job.series_done == 24
    assert job.result_uri == target.as_uri() and job.size_bytes == target.stat().st_size
    assert job.progress == 1.0 and job.model_version == "v1" and list(job.levels) == [80, 95]
    # Progress moved chunk by chunk (100 rows = 6 series of 16 days).
    progress = [e.progress for e in seen if e.state == pb.JOB_STATE_RUNNING]
    assert len(progress) >= 3 and progress == sorted(progress)
    table = pq.read_table(target)
    assert table.schema.metadata[b"model_version"] == b"v1"
    got = table.to_pandas()
    assert list(got.columns) == ["date", "store_nbr", "family", "onpromotion", "sales",
                                 "lo-80", "hi-80", "lo-95", "hi-95"]
    want = client.forecast("acme", days=16, levels=(80, 95))
    got["date"] = pd.to_datetime(got["date"]).dt.strftime("%Y-%m-%d")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True),
                                  check_dtype=False, check_like=False, rtol=1e-9)
    assert not list((files / "acme" / "out").glob(".*partial"))   # no leftovers
    assert client.get_export("acme", job.export_id) == job


def test_a_csv_export_to_s3_with_filters(exporter, client, moto_server, bucket) -> None:
    family = client.forecast("acme", days=1)["family"].iloc[0]
    uri = f"s3://{bucket}/{PREFIX}/acme/2017-08-16/plan.csv"
    job = client.export_forecasts("acme", uri, days=3, stores=[1], families=[family],
                                  wait=True, timeout_s=60)
    assert job.state == pb.JOB_STATE_SUCCEEDED, job.failure_reason
    assert job.result_uri == uri and job.format == pb.DATASET_FORMAT_CSV and job.rows == 3
    body = _s3(moto_server).get_object(Bucket=bucket, Key=uri.split("/", 3)[3])
    assert body["ContentType"] == "text/csv"
    got = pd.read_csv(io.BytesIO(body["Body"].read()))
    assert list(got.columns) == ["date", "store_nbr", "family", "onpromotion", "sales"]
    want = client.forecast("acme", days=3, stores=[1], families=[family])
    assert list(got["date"]) == list(want["date"]) and set(got["store_nbr"]) == {1}
    np.testing.assert_allclose(got["sales"], want["sales"], rtol=1e-9)


def test_the_async_client_exports_and_waits(exporter) -> None:
    import asyncio

    gw, files = exporter
    target = files / "acme" / "out" / "async.parquet"

    async def run() -> pb.ExportJob:
        async with AsyncForecastClient(target=gw.target, api_key=gw.api_key("acme")) as c:
            job = await c.export_forecasts("acme", target.as_uri(), days=2)
            assert job.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)
            done = await c.wait_for_export("acme", job.export_id, timeout_s=60)
            assert await c.get_export("acme", job.export_id) == done
            return done

    done = asyncio.run(run())
    assert done.state == pb.JOB_STATE_SUCCEEDED and pq.read_metadata(target).num_rows == 48


def test_a_cancelled_export_leaves_nothing(exporter, client) -> None:
    gw, files = exporter
    target = files / "acme" / "out" / "cancelled.parquet"
    service = gw.server.service.exports
    service._chunk_rows = 16          # one series per chunk: 24 chunks to stop between
    try:
        job = client.export_forecasts("acme", target.as_uri(), days=16, levels=(80,))
        for event in client.watch_export("acme", job.export_id):
            if event.series_done >= 1:
                break
        client.cancel_export("acme", job.export_id)
        done = client.wait_for_export("acme", job.export_id, timeout_s=60)
    finally:
        service._chunk_rows = 100
    assert done.state == pb.JOB_STATE_CANCELLED and done.result_uri == ""
    assert done.series_done < 24 and not target.exists()
    assert not list((files / "acme" / "out").glob(".*partial"))
    code, message = _refused(lambda: client.cancel_export("acme", job.export_id))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "already finished" in message


@pytest.mark.parametrize(("kwargs", "code", "needle"), [
    ({"days": 0}, "INVALID_ARGUMENT", "days: must be between 1 and 366, got 0"),
    ({"days": 367}, "INVALID_ARGUMENT", "days: must be between 1 and 366"),
    ({"levels": (120,)}, "INVALID_ARGUMENT", "levels: 120 is not a level"),
    ({"stores": [999]}, "INVALID_ARGUMENT", "store_nbr: 999 is not in the model"),
    ({"families": ["TOYS"]}, "INVALID_ARGUMENT", "family: 'TOYS' is not in the model"),
    ({"format": "csv"}, "INVALID_ARGUMENT", ("format: csv does not match the destination's "
                                            "extension (.parquet)")),
    ({"model_version": "v9"}, "NOT_FOUND", "v9"),
    ({"destination": ""}, "INVALID_ARGUMENT", "destination: is required"),
    ({"destination": "gs://b/x.parquet"}, "INVALID_ARGUMENT", "scheme 'gs' is not supported"),
    ({"destination": "s3://other-bucket/nightly/acme/x.parquet"}, "INVALID_ARGUMENT",
     "must lie under this retailer's export prefix"),
    ({"destination": "s3://{bucket}/nightly/other/x.parquet"}, "INVALID_ARGUMENT",
     "must lie under this retailer's export prefix"),
    ({"destination": "s3://{bucket}/nightly/acme/../other/x.parquet"}, "INVALID_ARGUMENT",
     "must lie under this retailer's export prefix"),
    ({"destination": "s3://{bucket}/nightly/acme/x.json"}, "INVALID_ARGUMENT",
     "must name a file ending in .parquet or .csv"),
])
def test_bad_requests_are_refused_before_a_job_exists(exporter, client, bucket, kwargs, code,
                                                      needle) -> None:
    _, files = exporter
    args = {"destination": (files / "acme" / "out" / "x.parquet").as_uri(), "days": 2, **kwargs}
    args["destination"] = args["destination"].format(bucket=bucket)
    got_code, message = _refused(lambda: client.export_forecasts("acme", **args))
    assert got_code.name == code and needle in message, message


def test_file_destinations_stay_in_the_retailers_directory(exporter, client, tmp_path) -> None:
    _, files = exporter
    (files / "acme" / "link").symlink_to(files / "other" / "out")
    uris = [(files / "other" / "out" / "x.parquet").as_uri(),       # another retailer's
            f"file://{files}/acme/../other/out/x.parquet",           # the same, by traversal
            (files / "acme" / "link" / "x.parquet").as_uri(),       # the same, by a link
            (tmp_path / "x.parquet").as_uri(),                      # outside the root
            (files / "acme" / "missing" / "x.parquet").as_uri(),    # no such directory
            f"file://otherhost{files}/acme/out/x.parquet"]          # a remote host
    answers = {_refused(lambda u=u: client.export_forecasts("acme", u, days=1)) for u in uris}
    assert len(answers) == 1, answers
    code, message = answers.pop()
    assert code == grpc.StatusCode.INVALID_ARGUMENT and str(files) not in message
    assert not list((files / "other" / "out").iterdir())


def test_a_retailer_sees_only_its_own_exports(exporter, client) -> None:
    gw, files = exporter
    job = client.export_forecasts("acme", (files / "acme" / "out" / "own.csv").as_uri(), days=1)
    with ForecastClient(target=gw.target, api_key=gw.api_key("other")) as other:
        code, _ = _refused(lambda: other.get_export("other", job.export_id))
        assert code == grpc.StatusCode.NOT_FOUND
        code, _ = _refused(lambda: other.cancel_export("other", job.export_id))
        assert code == grpc.StatusCode.NOT_FOUND
        code, _ = _refused(lambda: other.get_export("acme", job.export_id))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        code, _ = _refused(lambda: other.export_forecasts(
            "acme", (files / "acme" / "out" / "x.csv").as_uri(), days=1))
        assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = _refused(lambda: client.get_export("acme", "exp-000000000000"))
    assert code == grpc.StatusCode.NOT_FOUND
    assert client.wait_for_export("acme", job.export_id, timeout_s=60).state == \
        pb.JOB_STATE_SUCCEEDED


def test_an_s3_export_the_store_cannot_write_fails_with_the_reason(
        tmp_path, gateway, trained, moto_server) -> None:
    """An export store whose bucket does not exist: the job FAILS naming S3's answer, and the
    file written before the upload is gone."""
    gw = InProcessGateway(tmp_path / "data", LocalBackend(),
                          export_store="s3://no-such-bucket-for-exports/nightly",
                          aws_endpoint_url=moto_server.url).start()
    try:
        model = Storage(gateway.data_dir).model_dir("acme", trained["final"].model_version)
        gw.server.service.models.import_model(Tenant("acme"), model)
        with ForecastClient(target=gw.target, api_key=gw.api_key("acme")) as c:
            job = c.export_forecasts("acme", "s3://no-such-bucket-for-exports/nightly/acme/x.csv",
                                     days=1, wait=True, timeout_s=60)
        assert job.state == pb.JOB_STATE_FAILED, job
        assert "the export store failed uploading" in job.failure_reason
        assert "NoSuchBucket" in job.failure_reason
        assert not list(gw.server.service.exports.records.incoming("acme").iterdir())
    finally:
        gw.stop()


def test_a_restart_fails_the_exports_it_cut_off(tmp_path) -> None:
    """A record left RUNNING (the gateway died) is FAILED when that gateway starts again (its
    --gateway-id: alone on SQLite any id would do; on a shared database only its own records
    are its to fail), its file gone."""
    from forecast_gateway.dataplane.export_jobs import ExportJob, ExportRecords
    from forecast_gateway.domain import JobState

    data = tmp_path / "data"
    partial = tmp_path / "half.parquet.partial"
    partial.write_bytes(b"half")
    records = ExportRecords(Storage(data))
    records.add(ExportJob("exp-0123456789ab", "acme", "v1", "file:///x.parquet", "parquet", 2,
                          [], JobState.RUNNING, time.time(), partial=str(partial),
                          owner="gw-exports"))
    gw = InProcessGateway(data, LocalBackend(), gateway_id="gw-exports").start()
    try:
        with ForecastClient(target=gw.target, api_key=gw.api_key("acme")) as c:
            job = c.get_export("acme", "exp-0123456789ab")
    finally:
        gw.stop()
    assert job.state == pb.JOB_STATE_FAILED and "stopped while this export was running" in \
        job.failure_reason
    assert not partial.exists()


def test_the_http_face_starts_and_watches_an_export(exporter) -> None:
    import json

    import requests

    gw, files = exporter
    base = f"http://127.0.0.1:{gw.server.http_port}"
    headers = {"Authorization": f"Bearer {gw.api_key('acme')}"}
    target = files / "acme" / "out" / "http.csv"
    started = requests.post(f"{base}/v1/retailers/acme:exportForecasts", headers=headers,
                            json={"destination": target.as_uri(), "days": 2, "levels": [80]},
                            timeout=30)
    assert started.status_code == 200, started.text
    export_id = started.json()["job"]["export_id"]
    with requests.get(f"{base}/v1/retailers/acme/exports/{export_id}:watch", headers=headers,
                      stream=True, timeout=60) as watch:
        events = [json.loads(line) for line in watch.iter_lines() if line]
    assert events[-1]["terminal"] and events[-1]["job"]["state"] == "JOB_STATE_SUCCEEDED"
    assert int(events[-1]["job"]["rows"]) == 48
    assert list(pd.read_csv(target).columns)[-2:] == ["lo-80", "hi-80"]
    bad = requests.post(f"{base}/v1/retailers/acme:exportForecasts", headers=headers,
                        json={"destination": target.as_uri(), "days": 0}, timeout=30)
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_ARGUMENT"
    assert "days" in bad.json()["message"]


def test_destinations_the_gateway_has_not_enabled(tmp_path, gateway, trained) -> None:
    """Without --export-store and --allow-file-uris neither scheme is accepted: a precondition
    of the gateway's configuration, named."""
    gw = InProcessGateway(tmp_path / "data", LocalBackend()).start()
    try:
        model = Storage(gateway.data_dir).model_dir("acme", trained["final"].model_version)
        gw.server.service.models.import_model(Tenant("acme"), model)
        with ForecastClient(target=gw.target, api_key=gw.api_key("acme")) as c:
            for uri, needle in (("s3://b/nightly/acme/x.parquet", "--export-store"),
                                ((tmp_path / "x.parquet").as_uri(), "--allow-file-uris")):
                code, message = _refused(lambda u=uri: c.export_forecasts("acme", u, days=1))
                assert code == grpc.StatusCode.FAILED_PRECONDITION and needle in message
    finally:
        gw.stop()


def test_the_sagemaker_backend_says_it_cannot_export_yet(exporter, client, monkeypatch) -> None:
    gw, files = exporter
    monkeypatch.setattr(gw.server.service.state.backend, "name", "sagemaker")
    code, message = _refused(lambda: client.export_forecasts(
        "acme", (files / "acme" / "out" / "x.parquet").as_uri(), days=1))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "Batch Transform" in message


def test_the_cli_exports_follows_and_reports_errors_in_one_line(exporter) -> None:
    from cli_helpers import assert_one_line_error, run_forecast

    gw, files = exporter
    env = {"FORECAST_API_KEY": gw.api_key("acme")}
    target = files / "acme" / "out" / "cli.parquet"
    r = run_forecast("export", target.as_uri(), "--retailer", "acme", "--days", "3",
                     "--levels", "80", "--wait", "-q", target=gw.target, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    export_id, state, rows, uri = r.stdout.strip().split("\t")
    assert state == "SUCCEEDED" and rows == "72 rows" and uri == target.as_uri()
    assert pq.read_metadata(target).num_rows == 72
    r = run_forecast("export-status", export_id, "--retailer", "acme", "--json",
                     target=gw.target, env=env)
    assert r.returncode == 0 and '"result_uri"' in r.stdout, r.stderr
    assert_one_line_error(run_forecast("export-cancel", export_id, "--retailer", "acme",
                                       target=gw.target, env=env), 1, "already finished")
    assert_one_line_error(run_forecast(
        "export", "s3://elsewhere/x.parquet", "--retailer", "acme", "--days", "3",
        target=gw.target, env=env), 1, "export prefix")
    r = run_forecast("export", target.as_uri(), "--retailer", "acme", "--days", "0",
                     target=gw.target, env=env)
    assert r.returncode == 2 and "--days" in r.stderr


def test_days_past_the_trained_horizon_carry_forecasts_warning(exporter, client) -> None:
    _, files = exporter
    job = client.export_forecasts("acme", (files / "acme" / "out" / "long.csv").as_uri(),
                                  days=20, stores=[1], levels=(80,), wait=True, timeout_s=60)
    assert job.state == pb.JOB_STATE_SUCCEEDED and len(job.warnings) == 1
    assert job.warnings[0] == client.forecast("acme", days=20, stores=[1],
                                              levels=(80,)).attrs["warnings"][0]
