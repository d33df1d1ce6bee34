"""A gateway restart loses nothing: jobs, datasets and models come back from the registry, and a
job cut off by the restart is FAILED with the reason. SIGTERM drains and exits 0."""

from __future__ import annotations

import time

import grpc
import pytest
from forecast_client import ForecastClient, ForecastClientError, pb
from grpc_health.v1 import health_pb2, health_pb2_grpc

pytestmark = pytest.mark.slow
SLOW_HP = {"num_round": "5000", "early_stopping_rounds": "5000", "eta": "0.001"}


def _wait_for_fit(client: ForecastClient, retailer: str, job_id: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get_job(retailer, job_id)
        if job.state == pb.JOB_STATE_RUNNING and job.stage == "fit":
            return
        assert job.state in (pb.JOB_STATE_QUEUED, pb.JOB_STATE_RUNNING), job
        time.sleep(0.1)
    raise AssertionError("the job never reached the fit stage")


def test_restart_mid_job_then_recovered_state(tmp_path, sample_csv, fast_hp, gateway_factory) -> None:
    data_dir = tmp_path / "data"
    gw = gateway_factory(data_dir).start()
    try:
        with ForecastClient(target=gw.target, api_key=gw.api_key("acme")) as client:
            ds = client.upload_dataset("acme", sample_csv)
            done = client.wait_for_job("acme", client.train("acme", dataset_id=ds.dataset_id,
                                                            hyperparameters=fast_hp).job_id)
            assert done.state == pb.JOB_STATE_SUCCEEDED
            long_job = client.train("acme", dataset_id=ds.dataset_id, hyperparameters=SLOW_HP)
            _wait_for_fit(client, "acme", long_job.job_id)
        gw.kill()  # SIGKILL: no chance to clean up

        gw = gateway_factory(data_dir).start()
        with ForecastClient(target=gw.target, api_key=gw.api_key("acme")) as client:
            cut = client.get_job("acme", long_job.job_id)
            assert cut.state == pb.JOB_STATE_FAILED
            assert "gateway stopped" in cut.failure_reason and "running" in cut.failure_reason
            assert cut.end_time.seconds
            assert client.get_job("acme", done.job_id).state == pb.JOB_STATE_SUCCEEDED
            models = client.list_models("acme")
            assert [(m.version, m.live) for m in models] == [("v1", True)]
            values = client.predict("acme", date=["2017-08-16"], store_nbr=[1], family=["BREAD/BAKERY"])
            assert values.shape == (1,)
            # The dataset survived too: a new job on it is accepted, then SIGTERM while it runs.
            again = client.train("acme", dataset_id=ds.dataset_id, hyperparameters=SLOW_HP)
            _wait_for_fit(client, "acme", again.job_id)
        assert gw.stop(timeout_s=60) == 0  # graceful: drained and exited cleanly

        gw = gateway_factory(data_dir).start()
        with ForecastClient(target=gw.target, api_key=gw.api_key("acme")) as client:
            stopped = client.get_job("acme", again.job_id)
            assert stopped.state == pb.JOB_STATE_FAILED
            assert "stopped" in stopped.failure_reason
            assert len(client.list_jobs("acme")) == 3
    finally:
        gw.stop()


def test_watch_ends_with_unavailable_when_the_gateway_stops(tmp_path, sample_csv, gateway_factory) -> None:
    gw = gateway_factory(tmp_path / "data").start()
    try:
        with ForecastClient(target=gw.target, api_key=gw.api_key("acme")) as client:
            ds = client.upload_dataset("acme", sample_csv)
            job = client.train("acme", dataset_id=ds.dataset_id, hyperparameters=SLOW_HP)
            events = client.watch_job("acme", job.job_id)
            next(events)
            gw.proc.send_signal(15)
            with pytest.raises(ForecastClientError) as info:
                for _ in events:
                    pass
            assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert gw.proc.wait(60) == 0
    finally:
        gw.stop()


def test_a_stopping_gateway_reports_not_serving_and_the_sdk_moves_to_another(
        tmp_path, gateway_factory) -> None:
    """SIGTERM: for shutdown_drain_s the gateway still answers but its health says NOT_SERVING,
    and the SDK's round-robin channel (health-checking) sends every call to the other replica."""
    stopping = gateway_factory(tmp_path / "a", env={
        "FORECAST_GATEWAY_SHUTDOWN_DRAIN_S": "4"}).start()
    other = gateway_factory(tmp_path / "b").start()
    check = health_pb2.HealthCheckRequest(service="")
    with ForecastClient(target=f"ipv4:{stopping.target},{other.target}") as fleet, \
            grpc.insecure_channel(stopping.target) as direct:
        fleet.wait_until_ready()
        via_fleet = health_pb2_grpc.HealthStub(fleet._channel)
        answers = {via_fleet.Check(check, timeout=5).status for _ in range(20)}
        assert answers == {health_pb2.HealthCheckResponse.SERVING}
        stopping.proc.send_signal(15)
        deadline = time.monotonic() + 3
        to_stopping = health_pb2_grpc.HealthStub(direct)
        while to_stopping.Check(check, timeout=5).status != health_pb2.HealthCheckResponse.NOT_SERVING:
            assert time.monotonic() < deadline, "the stopping gateway never said NOT_SERVING"
            time.sleep(0.05)
        time.sleep(0.3)  # the channel's health watch sees it too
        # Still draining (it answers), yet every call through the fleet's channel went elsewhere.
        assert stopping.proc.poll() is None
        answers = [via_fleet.Check(check, timeout=5).status for _ in range(40)]
        assert set(answers) == {health_pb2.HealthCheckResponse.SERVING}
    assert stopping.proc.wait(60) == 0
