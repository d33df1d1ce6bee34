"""`AsyncForecastClient` against a real gateway over a real gRPC channel: the same answers and
errors as `ForecastClient`, and many calls in flight on one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from certs import TestCA
from forecast_client import (
    AsyncForecastClient,
    ClientConfig,
    ForecastClient,
    ForecastClientError,
    RetryPolicy,
    TlsConfig,
    pb,
    pb_grpc,
)
from forecast_client.requests import SDK_ATTEMPTS
from forecast_client.rows import make_batch
from forecast_gateway.testing.process import GatewayProcess

TERMINAL = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}
#: A retailer of its own, so training here never changes acme's live model.
RETAILER = "aio-co"


def _closed_port() -> str:
    with socket.socket() as sock:   # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _columns(rows: pd.DataFrame) -> dict[str, pd.Series]:
    return {"date": rows["date"], "store_nbr": rows["store_nbr"], "family": rows["family"]}


def test_every_public_method_has_a_docstring() -> None:
    public = [n for n in dir(AsyncForecastClient) if not n.startswith("_") or n == "__init__"]
    assert [n for n in public if not getattr(AsyncForecastClient, n).__doc__] == []


def test_upload_train_wait_and_predict_as_the_sync_client(
        gateway, sample_csv: Path, fast_hp: dict[str, str], future_rows: pd.DataFrame) -> None:
    config = ClientConfig(target=gateway.target, api_key=gateway.api_key(RETAILER))
    rows = future_rows.head(200)

    async def run() -> tuple:
        async with AsyncForecastClient(config) as client:
            await client.wait_until_ready(5)
            progress: list[tuple[int, int | None]] = []
            dataset = await client.upload_dataset(RETAILER, sample_csv, chunk_bytes=64 * 1024,
                                                  on_progress=lambda s, t: progress.append((s, t)))
            assert progress[-1] == (sample_csv.stat().st_size, sample_csv.stat().st_size)
            job = await client.train(RETAILER, dataset_id=dataset.dataset_id,
                                     hyperparameters=fast_hp)
            # Watch and wait at once, on one channel.
            updates: list[pb.TrainingJob] = []

            async def watch() -> list[pb.TrainingJob]:
                return [j async for j in client.watch_job(RETAILER, job.job_id)]

            watched, final = await asyncio.gather(
                watch(), client.wait_for_job(RETAILER, job.job_id, on_update=updates.append,
                                             timeout_s=120))
            models = await client.list_models(RETAILER)
            values = await client.predict(RETAILER, **_columns(rows))
            jobs = await client.list_jobs(RETAILER, limit=1)
            metrics = await client.get_metrics(RETAILER)
            live = await client.set_live_model(RETAILER, final.model_version)
            return job, watched, updates, final, models, values, jobs, metrics, live

    job, watched, updates, final, models, values, jobs, metrics, live = asyncio.run(run())
    assert job.job_id and job.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING)
    assert watched and watched[-1].state == pb.JOB_STATE_SUCCEEDED
    assert all(j.state not in TERMINAL for j in watched[:-1])
    assert final.state == pb.JOB_STATE_SUCCEEDED and updates[-1] == final
    assert [m.version for m in models if m.live] == [final.model_version]
    assert [j.job_id for j in jobs] == [job.job_id]
    assert metrics.evaluations and live.version == final.model_version
    with ForecastClient(config) as sync:
        expected = sync.predict(RETAILER, **_columns(rows))
    assert isinstance(values, np.ndarray) and len(values) == len(rows)
    np.testing.assert_allclose(values, expected, rtol=1e-12)


def test_bulk_stream_and_many_concurrent_predicts(gateway, trained,
                                                  future_rows: pd.DataFrame) -> None:
    """The key comes from FORECAST_API_KEY (acme's); 60 predicts in flight at once and a bulk
    stream fed by an async generator give what one unary call gives."""
    rows = future_rows.sort_values(["store_nbr", "family", "date"]).reset_index(drop=True)
    with ForecastClient(target=gateway.target) as sync:
        whole = sync.predict("acme", **_columns(rows))
    series = [group for _, group in rows.groupby(["store_nbr", "family"], sort=False)]
    slices = [rows.iloc[i:i + 16] for i in range(0, len(rows), 16)][:60]

    async def run() -> tuple[list, list]:
        async with AsyncForecastClient(ClientConfig(target=gateway.target)) as client:
            answers = await asyncio.gather(
                *(client.predict("acme", **_columns(part)) for part in slices))

            async def batches():
                for group in series:
                    await asyncio.sleep(0)
                    yield make_batch(group["date"], group["store_nbr"], group["family"])

            streamed = [item async for item in client.predict_batches(
                "acme", batches(), max_in_flight=3)]
            return answers, streamed

    answers, streamed = asyncio.run(run())
    assert len(answers) == len(slices)
    for part, values in zip(slices, answers, strict=True):
        np.testing.assert_allclose(values, whole[part.index], rtol=1e-12)
    assert [index for index, _, _ in streamed] == list(range(len(series)))
    np.testing.assert_allclose(np.concatenate([v for _, v, _ in streamed]), whole, rtol=1e-12)
    [version] = {version for _, _, version in streamed}
    assert version, "every chunk names the model that answered it"


def test_wait_for_job_honours_its_timeout_and_cancel_stops_the_job(
        gateway, sample_csv: Path) -> None:
    config = ClientConfig(target=gateway.target, api_key=gateway.api_key("aio-slow"))

    async def run() -> tuple[ForecastClientError, pb.TrainingJob]:
        async with AsyncForecastClient(config) as client:
            dataset = await client.upload_dataset("aio-slow", sample_csv.read_bytes(),
                                                  filename="train.csv")
            job = await client.train("aio-slow", dataset_id=dataset.dataset_id,
                                     hyperparameters={"num_round": "2000"}, promote="never")
            with pytest.raises(ForecastClientError) as info:
                await client.wait_for_job("aio-slow", job.job_id, timeout_s=0.2)
            with contextlib.suppress(ForecastClientError):   # it may have finished meanwhile
                await client.cancel_job("aio-slow", job.job_id)
            return info.value, await client.wait_for_job("aio-slow", job.job_id, timeout_s=60)

    error, final = asyncio.run(run())
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED and "0.2 s" in error.details
    assert final.state in TERMINAL


def test_a_bad_argument_is_invalid_argument_with_the_gateways_message(gateway) -> None:
    config = ClientConfig(target=gateway.target, api_key=gateway.api_key(RETAILER))

    async def run() -> ForecastClientError:
        async with AsyncForecastClient(config) as client:
            with pytest.raises(ForecastClientError) as info:
                await client.upload_dataset(RETAILER, b"date,store_nbr\n2017-01-01,1\n",
                                            filename="bad.csv")
            return info.value

    error = asyncio.run(run())
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(error).startswith("INVALID_ARGUMENT: ") and "family" in error.details
    assert error.request_id
    with ForecastClient(config) as sync, pytest.raises(ForecastClientError) as info:
        sync.upload_dataset(RETAILER, b"date,store_nbr\n2017-01-01,1\n", filename="bad.csv")
    assert info.value.details == error.details


def test_a_wrong_key_is_unauthenticated(gateway) -> None:
    async def run() -> ForecastClientError:
        config = ClientConfig(target=gateway.target, api_key="not-a-key")
        async with AsyncForecastClient(config) as client:
            with pytest.raises(ForecastClientError) as info:
                await client.list_models("acme")
            return info.value

    assert asyncio.run(run()).code == grpc.StatusCode.UNAUTHENTICATED


def test_no_gateway_is_the_friendly_unavailable_message() -> None:
    target = _closed_port()
    fast = RetryPolicy(max_attempts=2, initial_backoff_s=0.05, max_backoff_s=0.1)

    async def run() -> tuple[ForecastClientError, ForecastClientError]:
        client = AsyncForecastClient(ClientConfig(target=target, retry=fast, api_key="k"))
        try:
            with pytest.raises(ForecastClientError) as call:
                await client.get_job("acme", "job-1")
            with pytest.raises(ForecastClientError) as ready:
                await client.wait_until_ready(0.3)
        finally:
            await client.close()
        return call.value, ready.value

    call, ready = asyncio.run(run())
    assert call.code == grpc.StatusCode.UNAVAILABLE
    assert str(call).startswith(f"UNAVAILABLE: cannot reach the gateway at {target} ("), str(call)
    assert "Connection refused" in call.details and call.details.endswith("or FORECAST_TARGET")
    assert call.request_id
    assert ready.code == grpc.StatusCode.UNAVAILABLE and target in ready.details


def test_arguments_are_checked_before_any_call() -> None:
    async def run() -> None:
        async with AsyncForecastClient(target=_closed_port(), api_key="k") as client:
            with pytest.raises(ValueError, match="exactly one"):
                await client.train("acme")
            with pytest.raises(ValueError, match="promote"):
                await client.train("acme", dataset_id="ds",
                                   promote="sometimes")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="store_nbr"):
                await client.predict("acme", date=["2017-08-16"], store_nbr=[1, 2], family=["A"])
            with pytest.raises(ValueError, match="max_in_flight"):
                [_ async for _ in client.predict_batches("acme", [], max_in_flight=0)]

    asyncio.run(run())
    with pytest.raises(ValueError, match="not both"):
        AsyncForecastClient(ClientConfig(), target="127.0.0.1:1")


def test_the_readme_async_example_runs(gateway, monkeypatch, capsys) -> None:
    """The README's AsyncForecastClient example as written, but at the session's gateway and
    for a retailer of its own (so acme's live model stays as it is)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [example] = [block for block in re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
                 if "AsyncForecastClient" in block]
    monkeypatch.setenv("FORECAST_API_KEY", gateway.api_key("aio-readme"))
    monkeypatch.chdir(Path(__file__).resolve().parents[2])   # data/sample/train.csv
    code = example.replace("127.0.0.1:50051", gateway.target).replace('"acme"', '"aio-readme"')
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102
    state, forecasts = capsys.readouterr().out.splitlines()
    assert state == "JOB_STATE_SUCCEEDED"
    assert forecasts.count("array(") == 3


def test_wait_for_job_reconnects_after_a_gateway_restart(tmp_path: Path, sample_csv: Path) -> None:
    """The gateway is killed while a job runs and comes back on the same port: wait_for_job
    reconnects and returns the job the restarted gateway failed (cut off by the restart)."""
    port = _closed_port()
    data_dir = tmp_path / "data"
    slow = {"num_round": "5000", "early_stopping_rounds": "5000", "eta": "0.001"}
    fast = RetryPolicy(initial_backoff_s=0.1, max_backoff_s=0.3)
    gw = GatewayProcess(data_dir, args=["--port", port.rsplit(":", 1)[1]]).start()
    config = ClientConfig(target=gw.target, api_key=gw.api_key("acme"), retry=fast)

    async def run() -> pb.TrainingJob:
        async with AsyncForecastClient(config) as client:
            dataset = await client.upload_dataset("acme", sample_csv)
            job = await client.train("acme", dataset_id=dataset.dataset_id, hyperparameters=slow)
            waiting = asyncio.create_task(client.wait_for_job("acme", job.job_id, timeout_s=90))
            while (await client.get_job("acme", job.job_id)).state != pb.JOB_STATE_RUNNING:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(gw.kill)
            await asyncio.sleep(0.5)
            assert not waiting.done(), "a killed gateway is reconnected to, not reported"
            await asyncio.to_thread(restarted.start)
            return await waiting

    restarted = GatewayProcess(data_dir, args=["--port", port.rsplit(":", 1)[1]])
    try:
        final = asyncio.run(run())
    finally:   # nothing left to drain: kill, not stop
        gw.kill()
        restarted.kill()
    assert final.state == pb.JOB_STATE_FAILED and "gateway stopped" in final.failure_reason


def test_tls_and_a_client_certificate(tmp_path: Path) -> None:
    """The same TlsConfig as ForecastClient against a gateway that asks for client certificates:
    the gateway's certificate trusted (by IP and by name override), the certificate alone
    authenticates (no key), and no client certificate or plaintext is refused."""
    ca = TestCA(tmp_path / "pki")
    server, shop = ca.issue("gateway", server=True), ca.issue("tls-co", server=False)
    gw = GatewayProcess(tmp_path / "data", args=(
        "--tls-cert", str(server.cert), "--tls-key", str(server.key),
        "--tls-client-ca", str(ca.cert)))
    key = gw.api_key("tls-co")

    def tls(name: str | None = None, client: bool = False) -> TlsConfig:
        return TlsConfig(root_certificates=ca.cert.read_bytes(), server_name_override=name,
                         certificate_chain=shop.cert.read_bytes() if client else None,
                         private_key=shop.key.read_bytes() if client else None)

    async def codes() -> list[object]:
        found: list[object] = []
        for tls_config, api_key in ((tls(client=True), key), (tls("localhost", True), key),
                                    (tls(client=True), None), (tls(), key), (None, key)):
            config = ClientConfig(target=gw.target, tls=tls_config, api_key=api_key,
                                  retry=RetryPolicy(max_attempts=1))
            async with AsyncForecastClient(config) as client:
                try:
                    found.append(await client.list_models("tls-co"))
                except ForecastClientError as err:
                    found.append(err.code)
        return found

    with gw:
        assert asyncio.run(codes()) == [[], [], [], *[grpc.StatusCode.UNAVAILABLE] * 2]


def test_repeatable_calls_are_sent_again_when_the_server_went_away() -> None:
    """A real grpc.aio server on 127.0.0.1 that answers CANCELLED (what a stopping gateway
    answers; gRPC itself retries only UNAVAILABLE): ListModels is sent again with the same
    request id and succeeds, CancelTrainingJob is not repeated, and a server that keeps
    answering CANCELLED is reported after SDK_ATTEMPTS sends."""
    seen: dict[str, list[str]] = {"ListModels": [], "CancelTrainingJob": []}

    class GoingAway(pb_grpc.ForecastServiceServicer):
        async def ListModels(self, request, context):
            seen["ListModels"].append(dict(context.invocation_metadata())["x-request-id"])
            if request.retailer == "always" or len(seen["ListModels"]) == 1:
                await context.abort(grpc.StatusCode.CANCELLED, "the server is stopping")
            return pb.ListModelsResponse(models=[pb.ModelVersion(version="v1", live=True)])

        async def CancelTrainingJob(self, request, context):
            seen["CancelTrainingJob"].append(dict(context.invocation_metadata())["x-request-id"])
            await context.abort(grpc.StatusCode.CANCELLED, "the server is stopping")

    async def run() -> tuple[list[pb.ModelVersion], list[str], ForecastClientError,
                             ForecastClientError]:
        server = grpc.aio.server()
        pb_grpc.add_ForecastServiceServicer_to_server(GoingAway(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        fast = RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.02)
        try:
            async with AsyncForecastClient(ClientConfig(target=f"127.0.0.1:{port}",
                                                        api_key="k", retry=fast)) as client:
                models = await client.list_models("acme")
                with pytest.raises(ForecastClientError) as cancelled:
                    await client.cancel_job("acme", "job-1")
                first = seen["ListModels"][:]
                seen["ListModels"].clear()
                with pytest.raises(ForecastClientError) as gone:
                    await client.list_models("always")
        finally:
            await server.stop(None)
        return models, first, cancelled.value, gone.value

    models, first, cancelled, gone = asyncio.run(run())
    assert [m.version for m in models] == ["v1"] and len(first) == 2 and len(set(first)) == 1
    assert cancelled.code == grpc.StatusCode.CANCELLED and len(seen["CancelTrainingJob"]) == 1
    assert gone.code == grpc.StatusCode.CANCELLED and gone.details == "the server is stopping"
    assert len(seen["ListModels"]) == SDK_ATTEMPTS
    assert set(seen["ListModels"]) == {gone.request_id}, "one request id for every send"
