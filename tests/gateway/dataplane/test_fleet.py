"""Three gateways on one PostgreSQL database and one shared data dir, as real processes on
127.0.0.1, reached through the SDK's round-robin channel (docs/fleet.md).

What a fleet promises: a Train is claimed and run by exactly one replica and can be watched
from any; a retried Train with the same request id starts one job; a live switch on one replica
reaches the others within 1 s; a key revoked on one is refused by the others within the
auth-cache time; a replica killed with SIGKILL has its jobs failed with the reason once its
lease runs out; and under steady Predict and Train traffic, killing a replica every few seconds
for a minute (and restarting it) or restarting all of them in turn fails no client call, loses
or strands no job and serves no unregistered model.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import grpc
import pytest
from forecast_client import (
    ClientConfig,
    ForecastClient,
    ForecastClientError,
    RetryPolicy,
    Timeouts,
    pb,
)
from forecast_client._gen.forecastapi.v1 import admin_service_pb2 as apb
from forecast_client._gen.forecastapi.v1 import admin_service_pb2_grpc as apb_grpc
from forecast_client.rows import make_batch
from forecast_gateway.store.database import Database
from forecast_gateway.store.schema import jobs as jobs_table
from forecast_gateway.store.schema import models as models_table
from forecast_gateway.store.schema import retailers as retailers_table
from forecast_gateway.testing.process import GatewayProcess
from sagemaker_job import free_port
from sqlalchemy import select

LEASE_S = 3.0
POLL_S = 0.2
AUTH_CACHE_S = 2.0
#: A job that trains long enough to be killed half-way (rounds on the sample take ~ms each).
SLOW_HP = {"num_round": "10000", "early_stopping_rounds": "10000"}
TERMINAL = {pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED, pb.JOB_STATE_CANCELLED}


@dataclass
class Fleet:
    """The three replicas (a, b, c), their database and the acme key."""

    members: dict[str, GatewayProcess]
    database_url: str
    api_key: str
    hp: dict[str, str]
    versions: list[str] = field(default_factory=list)
    dataset_id: str = ""

    @property
    def target(self) -> str:
        """Every replica's address, one gRPC name (round-robin in the SDK)."""
        return "ipv4:" + ",".join(gw.target for gw in self.members.values())

    def client(self, member: str | None = None, **config: object) -> ForecastClient:
        """A client of one replica, or of the whole fleet."""
        target = self.members[member].target if member else self.target
        settings: dict[str, object] = {
            "api_key": self.api_key, "retry": RetryPolicy(initial_backoff_s=0.1, max_backoff_s=1.0),
            "timeouts": Timeouts(unary_s=30, predict_s=30), **config}
        return ForecastClient(ClientConfig(target=target, **settings))  # type: ignore[arg-type]

    def rows(self, client: ForecastClient, model_version: str = "") -> pb.PredictResponse:
        """Predict three rows; the whole response (its model_version says who answered)."""
        request = pb.PredictRequest(retailer="acme", model_version=model_version, rows=make_batch(
            ["2017-08-16", "2017-08-17", "2017-08-18"], [1, 1, 2],
            ["AUTOMOTIVE", "BEVERAGES", "AUTOMOTIVE"]))
        return client._unary(client._stub.Predict, request, 30)

    def db_rows(self, query):
        db = Database.open(self.database_url)
        try:
            with db.read() as conn:
                return conn.execute(query).all()
        finally:
            db.close()


@pytest.fixture(scope="module")
def fleet(postgres, tmp_path_factory: pytest.TempPathFactory,
          fast_hp: dict[str, str]) -> Iterator[Fleet]:
    """Three gateways (fixed ports, so a restarted one is found again) on a fresh database and
    one data dir, each seeing it through its own path (a symlink, as a volume mounted on three
    hosts); all started at once (the migrations run under the database's advisory lock)."""
    url = postgres.create()
    root = tmp_path_factory.mktemp("fleet")
    shared = root / "shared"
    shared.mkdir()
    members: dict[str, GatewayProcess] = {}
    for name in "abc":
        (root / name).mkdir()
        data_dir = root / name / "data"
        data_dir.symlink_to(shared, target_is_directory=True)
        members[name] = GatewayProcess(data_dir, env={
            "FORECAST_GATEWAY_DATABASE_URL": url,
            "FORECAST_GATEWAY_GATEWAY_ID": f"gw-{name}",
            "FORECAST_GATEWAY_LEASE_S": str(LEASE_S),
            "FORECAST_GATEWAY_FLEET_POLL_S": str(POLL_S),
            "FORECAST_GATEWAY_AUTH_CACHE_S": str(AUTH_CACHE_S),
        }, args=["--port", str(free_port())])
    starts = [threading.Thread(target=gw.start) for gw in members.values()]
    for thread in starts:
        thread.start()
    for thread in starts:
        thread.join()
    try:
        assert all(gw.port for gw in members.values()), [gw.log() for gw in members.values()]
        yield Fleet(members, url, members["a"].api_key("acme"), fast_hp)
    finally:
        for gw in members.values():
            gw.stop()


@pytest.fixture(scope="module")
def live(fleet: Fleet, sample_csv: Path) -> Fleet:
    """acme with a live model, trained through the fleet: uploaded on a, trained on a, the same
    Train sent again to b (one job), watched on c."""
    with fleet.client("a") as a, fleet.client("b") as b, fleet.client("c") as c:
        dataset = a.upload_dataset("acme", sample_csv)
        first = a.train("acme", dataset_id=dataset.dataset_id, hyperparameters=fleet.hp,
                        request_id="fleet-first")
        again = b.train("acme", dataset_id=dataset.dataset_id, hyperparameters=fleet.hp,
                        request_id="fleet-first")
        assert again.job_id == first.job_id
        done = c.wait_for_job("acme", first.job_id, timeout_s=120)
        assert done.state == pb.JOB_STATE_SUCCEEDED, done.failure_reason
        # The retailer's first model: every replica answers with it at once (one that has not
        # followed the switch yet loads it on demand rather than refuse).
        assert [fleet.rows(x).model_version for x in (a, b, c)] == [done.model_version] * 3
        assert [j.job_id for j in a.list_jobs("acme")] == [first.job_id]
    fleet.versions.append(done.model_version)
    fleet.dataset_id = dataset.dataset_id
    return fleet


def live_version(fleet: Fleet, client: ForecastClient) -> str:
    """The version that answers a Predict on the client's replica ("" before it has one)."""
    try:
        return fleet.rows(client).model_version
    except ForecastClientError as err:
        if err.code != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        return ""


def wait_for_version(fleet: Fleet, members: list[str], version: str, limit_s: float) -> float:
    """Seconds until every named replica's live model is `version` (fails after `limit_s`)."""
    start = time.monotonic()
    clients = {m: fleet.client(m) for m in members}
    try:
        pending = set(members)
        while pending:
            pending = {m for m in pending if live_version(fleet, clients[m]) != version}
            elapsed = time.monotonic() - start
            if pending:
                assert elapsed <= limit_s, (f"{sorted(pending)} still not on {version} after "
                                            f"{elapsed:.2f} s")
                time.sleep(0.02)
        return elapsed
    finally:
        for client in clients.values():
            client.close()


def test_train_runs_once_and_every_replica_serves_it(live: Fleet) -> None:
    [version] = live.versions
    wait_for_version(live, ["a", "b", "c"], version, 1.0)
    owners = live.db_rows(select(jobs_table.c.owner, jobs_table.c.attempts))
    assert len(owners) == 1 and owners[0].attempts == 1 and owners[0].owner.startswith("gw-")


def test_a_live_switch_reaches_every_replica_within_a_second(live: Fleet) -> None:
    with live.client("b") as b, live.client("a") as a:
        job = b.train("acme", dataset_id=live.dataset_id, hyperparameters=live.hp,
                      promote="never")
        second = a.wait_for_job("acme", job.job_id, timeout_s=120)
        assert second.state == pb.JOB_STATE_SUCCEEDED, second.failure_reason
        first = live.versions[0]
        for version in (second.model_version, first):
            a.set_live_model("acme", version)
            assert wait_for_version(live, ["b", "c"], version, 1.0) <= 1.0


def test_a_version_in_shadow_is_shadowed_by_every_replica_and_decided_once(
        live: Fleet, sample_csv: Path, tmp_path: Path) -> None:
    """A shadow job trained on b is followed by c (only c serves the requests, and the trial
    rests on its recorded forecasts); actuals sent to a promote it, and every replica then
    answers with it within a second."""
    import pandas as pd

    frame = pd.read_csv(sample_csv, parse_dates=["date"])
    cut = pd.Timestamp("2017-08-01")
    frame[frame["date"] <= cut].to_csv(tmp_path / "history.csv", index=False)
    week = frame[(frame["date"] > cut) & (frame["date"] <= cut + pd.Timedelta(days=7))]
    week.assign(date=week["date"].dt.strftime("%Y-%m-%d")).to_csv(tmp_path / "week.csv",
                                                                    index=False)
    key = live.members["a"].api_key("shade")
    poor = {"num_round": "3", "early_stopping_rounds": "3", "eta": "0.01", "refit": "false"}
    with live.client("a", api_key=key) as a, live.client("b", api_key=key) as b, \
            live.client("c", api_key=key) as c:
        dataset = a.upload_dataset("shade", tmp_path / "history.csv").dataset_id
        for client, hp, promote in ((a, poor, "if_better"), (b, live.hp, "shadow")):
            job = client.train("shade", dataset_id=dataset, hyperparameters=hp, promote=promote,
                               promote_after={"days": 7, "min_cells": 10} if
                               promote == "shadow" else None)
            done = client.wait_for_job("shade", job.job_id, timeout_s=120)
            assert done.state == pb.JOB_STATE_SUCCEEDED, done.failure_reason
        assert [m.version for m in c.list_models("shade") if m.shadow] == ["v2"]
        time.sleep(10 * POLL_S)                                   # c follows within a poll
        served = c.predict_frame("shade", frame[(frame["date"] > cut) & (
            frame["date"] <= cut + pd.Timedelta(days=7))][["date", "store_nbr", "family"]])
        answer = a.append_actuals("shade", tmp_path / "week.csv")
        trial = answer.shadow
        assert trial.state == pb.SHADOW_STATE_PROMOTED, trial.reason
        assert (trial.days, trial.cells) == (7, len(served))     # every cell: c shadowed them
        promoted = [m.version for m in a.list_models("shade") if m.live]
        assert promoted == ["v4"]
    def answering(client: ForecastClient) -> str:
        return client._unary(client._stub.Predict, pb.PredictRequest(
            retailer="shade", rows=make_batch(["2017-08-09"], [1], ["AUTOMOTIVE"])), 30
        ).model_version

    start = time.monotonic()
    with live.client("b", api_key=key) as b, live.client("c", api_key=key) as c:
        while {answering(b), answering(c)} != {"v4"}:
            assert time.monotonic() - start < 1.0
            time.sleep(0.02)


def test_a_key_revoked_on_one_replica_is_refused_by_the_others(live: Fleet) -> None:
    admin = (("authorization", f"Bearer {live.members['a'].admin_key()}"),)
    with grpc.insecure_channel(live.members["a"].target) as channel:
        stub = apb_grpc.AdminServiceStub(channel)
        issued = stub.IssueApiKey(apb.IssueApiKeyRequest(retailer="acme", name="short-lived"),
                                  metadata=admin, timeout=10)
        with live.client("b", api_key=issued.secret) as b:
            assert b.list_models("acme")  # b knows the key now (and caches it)
            stub.RevokeApiKey(apb.RevokeApiKeyRequest(key_id=issued.api_key.key_id),
                              metadata=admin, timeout=10)
            revoked = time.monotonic()
            while True:
                try:
                    b.list_models("acme")
                except ForecastClientError as err:
                    assert err.code == grpc.StatusCode.UNAUTHENTICATED
                    break
                assert time.monotonic() - revoked <= AUTH_CACHE_S + 0.5
                time.sleep(0.05)


def test_a_killed_replicas_job_fails_with_the_reason_within_its_lease(live: Fleet) -> None:
    with live.client() as client:
        job = client.train("acme", dataset_id=live.dataset_id, hyperparameters=SLOW_HP,
                           promote="never")
        owner = None
        deadline = time.monotonic() + 60
        while owner is None:
            assert time.monotonic() < deadline, "nobody claimed the job"
            [row] = live.db_rows(select(jobs_table.c.owner, jobs_table.c.state)
                                 .where(jobs_table.c.job_id == job.job_id))
            owner = row.owner if row.state == "RUNNING" else None
            time.sleep(0.05)
        holder = live.members[owner.removeprefix("gw-")]
        holder.kill()
        killed = time.monotonic()
        try:
            ended = client.wait_for_job("acme", job.job_id, timeout_s=30)
            waited = time.monotonic() - killed
        finally:
            holder.start()
    assert ended.state == pb.JOB_STATE_FAILED
    assert f"the gateway {owner} running this job stopped" in ended.failure_reason
    assert waited <= LEASE_S + 4 * POLL_S + 1.0, f"reaped after {waited:.1f} s"


@dataclass
class Traffic:
    """Predict and Train calls from client threads through the fleet's one address, counting
    every call that failed after the SDK's retries and every model version that answered."""

    fleet: Fleet
    predictors: int = 2
    errors: list[str] = field(default_factory=list)
    served: set[str] = field(default_factory=set)
    calls: int = 0
    jobs: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Self:
        self._threads = [threading.Thread(target=self._predict, daemon=True)
                         for _ in range(self.predictors)]
        self._threads.append(threading.Thread(target=self._train, daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)
        assert not any(t.is_alive() for t in self._threads), "a client thread hung"

    def _predict(self) -> None:
        with self.fleet.client() as client:
            while not self._stop.is_set():
                try:
                    self.served.add(self.fleet.rows(client).model_version)
                    self.calls += 1
                except ForecastClientError as err:
                    self.errors.append(f"Predict: {err}")

    def _train(self) -> None:
        with self.fleet.client() as client:
            while not self._stop.is_set():
                try:
                    job = client.train("acme", dataset_id=self.fleet.dataset_id,
                                       hyperparameters=self.fleet.hp, promote="always")
                    self.jobs.append(job.job_id)
                    client.wait_for_job("acme", job.job_id, timeout_s=120)
                    self.calls += 1
                except ForecastClientError as err:
                    self.errors.append(f"Train: {err}")


def check_the_fleet_agrees(fleet: Fleet, traffic: Traffic) -> None:
    """After the traffic: no failed call, no job left unfinished, only registered models with a
    manifest served, and one live version on every replica."""
    assert traffic.errors == [], traffic.errors[:5]
    assert traffic.calls > 0 and traffic.jobs
    deadline = time.monotonic() + LEASE_S + 60
    with fleet.client() as client:
        while True:
            jobs = {j.job_id: j for j in client.list_jobs("acme")}
            unfinished = [j for j in jobs.values() if j.state not in TERMINAL]
            if not unfinished:
                break
            assert time.monotonic() < deadline, f"jobs stuck: {unfinished}"
            time.sleep(0.5)
    assert set(traffic.jobs) <= set(jobs)
    assert all(j.failure_reason for j in jobs.values() if j.state == pb.JOB_STATE_FAILED)
    registered = {r.version: r.manifest for r in fleet.db_rows(
        select(models_table.c.version, models_table.c.manifest))}
    assert traffic.served <= set(registered), traffic.served - set(registered)
    assert all(registered[v] for v in traffic.served), "a model without a manifest was served"
    # The last Train may have switched the live model a moment ago: within 1 s (docs/fleet.md)
    # every replica serves the database's live version.
    [live_version] = fleet.db_rows(select(retailers_table.c.live_version).where(
        retailers_table.c.retailer == "acme"))
    clients = {m: fleet.client(m) for m in fleet.members}
    deadline = time.monotonic() + 1.5
    while True:
        serving = {m: fleet.rows(c).model_version for m, c in clients.items()}
        if set(serving.values()) == {live_version[0]} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for c in clients.values():
        c.close()
    assert set(serving.values()) == {live_version[0]}, (live_version[0], serving)


def test_killing_a_replica_every_few_seconds_fails_no_call(live: Fleet) -> None:
    rng = random.Random(19)
    with Traffic(live) as traffic:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            victim = live.members[rng.choice("abc")]
            victim.kill()
            time.sleep(1.0)
            victim.start()
            time.sleep(3.0)
    check_the_fleet_agrees(live, traffic)


def test_a_rolling_restart_fails_no_call(live: Fleet) -> None:
    with Traffic(live) as traffic:
        for gw in live.members.values():
            assert gw.stop() == 0
            gw.start()
            time.sleep(2.0)
    check_the_fleet_agrees(live, traffic)


def test_a_train_retried_after_its_replica_died_starts_one_job(live: Fleet) -> None:
    """The idempotency key survives the replica that answered: a's Train, then a killed, then
    the same request id on b returns a's job."""
    with live.client("a") as a:
        job = a.train("acme", dataset_id=live.dataset_id, hyperparameters=live.hp,
                      promote="never", request_id="after-a-died")
    live.members["a"].kill()
    try:
        with live.client("b") as b:
            again = b.train("acme", dataset_id=live.dataset_id, hyperparameters=live.hp,
                            promote="never", request_id="after-a-died")
            assert again.job_id == job.job_id
            assert b.wait_for_job("acme", job.job_id, timeout_s=120).state in TERMINAL
    finally:
        live.members["a"].start()
    same = live.db_rows(select(jobs_table.c.job_id).where(
        jobs_table.c.request_id == "after-a-died"))
    assert len(same) == 1
