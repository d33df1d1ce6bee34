"""The compose stack, scaled out: `docker-compose up -d --build --scale gateway=3` comes up
healthy (PostgreSQL, three gateway replicas on it and on one data volume, the HAProxy load
balancer), the README's CLI flow (a key made with `exec`, upload, train, predict, metrics) works
through the one published address, new connections reach every replica (and, inside the compose
network, `dns:///gateway:50051` spreads one channel's calls over them), and calls keep working
when a replica is killed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from docker_helpers import docker, future_rows
from sagemaker_job import REPO, SAMPLE, free_port

pytestmark = pytest.mark.docker

BASE_LABEL = "com.retail-forecast.base-image"
LOCAL_BASE = "retail-forecast-python:3.11-bookworm"  # scripts/build_base_image.sh
REPLICAS = 3
RETAILER = "composeco"
REPLICA_HEADER = "X-Forecast-Gateway-Replica"  # containers/lb/haproxy.cfg, the metrics backend


def compose_command() -> list[str]:
    """Compose v2 (`docker compose`) when present, else Debian's docker-compose 1.29."""
    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True,
                        timeout=30, check=False)
    if v2.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor docker-compose is installed", pytrace=False)
    raise AssertionError("unreachable")


def base_image(gateway_image: str) -> str:
    """The base `make images` used (its label on the image), so `--build` hits the cache."""
    label = docker("image", "inspect", "-f", f'{{{{ index .Config.Labels "{BASE_LABEL}" }}}}',
                   gateway_image).stdout.strip()
    if os.environ.get("BASE_IMAGE") or label:
        return os.environ.get("BASE_IMAGE") or label
    for candidate in ("python:3.11-slim", LOCAL_BASE):
        if docker("image", "inspect", candidate, check=False).returncode == 0:
            return candidate
    return "python:3.11-slim"


@pytest.fixture(scope="module")
def stack(gateway_image: str) -> Iterator[dict]:
    """The stack with REPLICAS gateways under a project name of its own, torn down with its
    volumes, passed or failed."""
    base = base_image(gateway_image)
    port, metrics_port = free_port(), free_port()
    project = f"rfsmoke{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, BASE_IMAGE=base, GATEWAY_PORT=str(port),
               METRICS_PORT=str(metrics_port), COMPOSE_PROJECT_NAME=project)
    compose = [*compose_command(), "-f", str(REPO / "docker-compose.yml"), "-p", project]

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*compose, *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    try:
        up = run("up", "-d", "--build", "--scale", f"gateway={REPLICAS}", timeout=1800)
        assert up.returncode == 0, f"compose up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        ids = {service: run("ps", "-q", service).stdout.split()
               for service in ("postgres", "gateway", "lb")}
        assert len(ids["gateway"]) == REPLICAS, ids
        assert len(ids["postgres"]) == 1 and len(ids["lb"]) == 1, ids
        yield {"port": port, "run": run, "target": f"127.0.0.1:{port}",
               "gateways": ids["gateway"], "postgres": ids["postgres"][0], "lb": ids["lb"][0],
               "metrics_url": f"http://127.0.0.1:{metrics_port}/metrics"}
    finally:
        down = run("down", "-v", "--remove-orphans", timeout=300)
        assert down.returncode == 0, down.stderr[-2000:]


def health(cid: str) -> str:
    return docker("inspect", "-f", "{{.State.Status}} {{if .State.Health}}"
                  "{{.State.Health.Status}}{{end}}", cid).stdout.strip()


def wait_until_healthy(stack: dict) -> None:
    """Poll every container's healthcheck against a deadline; fail early if one exits."""
    cids = [stack["postgres"], *stack["gateways"], stack["lb"]]
    deadline = time.monotonic() + 240
    status: dict[str, str] = {}
    while time.monotonic() < deadline:
        status = {cid[:12]: health(cid) for cid in cids}
        if all(s == "running healthy" for s in status.values()):
            return
        assert not any(s.startswith("exited") or "unhealthy" in s for s in status.values()), (
            status, stack["run"]("logs", "--tail", "30").stdout[-6000:])
        time.sleep(2)
    pytest.fail(f"not healthy within 240 s: {status}\n"
                f"{stack['run']('logs', '--tail', '30').stdout[-6000:]}", pytrace=False)


def replica_calls(cid: str) -> float:
    """ForecastService and MonitoringService calls this replica has answered: its own /metrics,
    read inside its container (health checks are not counted)."""
    scrape = docker("exec", cid, "python", "-c",
                    "import urllib.request; print(urllib.request.urlopen("
                    "'http://127.0.0.1:9464/metrics', timeout=10).read().decode())").stdout
    return sum(float(line.rsplit(" ", 1)[1]) for line in scrape.splitlines()
               if line.startswith("forecast_gateway_rpcs_total{")
               and 'method="/forecastapi.v1.' in line)


def calls_per_replica(stack: dict, cids: list[str] | None = None) -> dict[str, float]:
    return {cid: replica_calls(cid) for cid in (cids or stack["gateways"])}


def cli(stack: dict, key: str, *args: str, timeout: float = 120) -> str:
    """The `forecast` CLI from the host, through the published address (a new process, so a
    new connection the load balancer places)."""
    proc = subprocess.run([sys.executable, "-m", "forecast_client.cli", "--target",
                           stack["target"], *args], capture_output=True, text=True,
                          timeout=timeout, check=False,
                          env=dict(os.environ, FORECAST_API_KEY=key))
    assert proc.returncode == 0, f"forecast {args[0]} exited {proc.returncode}:\n" \
                                 f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def trained(stack: dict, fast_hp: dict[str, str]) -> dict:
    """The documented flow up to a live model: the retailer's key made with `docker-compose exec`
    on one replica, then upload and train through the published address."""
    wait_until_healthy(stack)
    # The second of the two documented commands; with replicas, `exec` names one.
    made = stack["run"]("exec", "-T", "--index=1", "gateway", "forecast-gateway", "keys",
                        "create-retailer", RETAILER)
    assert made.returncode == 0, made.stderr[-2000:]
    key = next(line for line in made.stdout.splitlines() if line.startswith("fgk_"))
    assert f"export FORECAST_API_KEY={key}" in made.stdout

    assert cli(stack, key, "upload", "--retailer", RETAILER, str(SAMPLE)).strip()
    hp = [arg for name, value in fast_hp.items() for arg in ("--hp", f"{name}={value}")]
    cli(stack, key, "train", "--retailer", RETAILER, "--data", str(SAMPLE), "--horizon", "7",
        *hp, "--wait", "-q", timeout=600)

    # `--wait` returns when the replica that ran the job made v1 live; every other replica
    # answers with it at once too (it loads a retailer's first model on demand). Ask each one.
    for cid in stack["gateways"]:
        asked = docker("exec", "-e", f"FORECAST_API_KEY={key}", cid, "forecast", "--target",
                       "127.0.0.1:50051", "metrics", "--retailer", RETAILER, check=False)
        assert asked.returncode == 0, f"replica {cid[:12]}: {asked.stderr.strip()}"
    return {"key": key}


def test_stack_comes_up_healthy(stack: dict) -> None:
    wait_until_healthy(stack)
    # One published address, on the load balancer; the replicas and the database publish none.
    assert docker("port", stack["lb"], "50051/tcp").stdout.split() == [stack["target"]]
    for cid in (*stack["gateways"], stack["postgres"]):
        assert not docker("port", cid).stdout.strip(), f"{cid[:12]} publishes a port"
    # Every replica on the one database (the store's URL, as the keys command reads it too).
    for cid in stack["gateways"]:
        env = docker("inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", cid).stdout
        assert "FORECAST_GATEWAY_DATABASE_URL=postgresql://forecast:" in env
        assert "@postgres:5432/forecast" in env

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(stack["target"]) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_cli_flow_against_the_stack(stack: dict, trained: dict, tmp_path: Path) -> None:
    key = trained["key"]
    future = future_rows(1)
    future.to_csv(tmp_path / "future.csv", index=False)
    cli(stack, key, "predict", "--retailer", RETAILER, "--input", str(tmp_path / "future.csv"),
        "--output", str(tmp_path / "forecasts.csv"), "-q")
    forecasts = pd.read_csv(tmp_path / "forecasts.csv")
    assert len(forecasts) == len(future) and (forecasts["sales"] >= 0).all()
    assert "rmsle" in cli(stack, key, "metrics", "--retailer", RETAILER).lower()

    # The published Prometheus port answers from one replica per scrape (the header names it):
    # scrape until every replica has answered, and find the rows just forecast on one of them.
    rows: dict[str, float] = {}
    for _ in range(3 * REPLICAS):
        with urllib.request.urlopen(stack["metrics_url"], timeout=10) as response:
            replica = response.headers[REPLICA_HEADER]
            scrape = response.read().decode()
        assert replica, f"no {REPLICA_HEADER} header on the scrape"
        rows[replica] = sum(float(x.rsplit(" ", 1)[1]) for x in scrape.splitlines()
                            if x.startswith("forecast_gateway_rows_predicted_total{"
                                            f'retailer="{RETAILER}"}}'))
        if len(rows) == REPLICAS:
            break
    assert len(rows) == REPLICAS, f"the metrics port reached only {sorted(rows)}"
    assert sum(rows.values()) >= len(future), rows


def test_new_connections_reach_every_replica(stack: dict, trained: dict) -> None:
    """Through the published address each new connection goes to a replica in turn (the load
    balancer's least-connections rule, ties in turn): as many CLI runs as replicas, twice."""
    before = calls_per_replica(stack)
    for _ in range(2 * REPLICAS):
        cli(stack, trained["key"], "models", "--retailer", RETAILER)
    after = calls_per_replica(stack)
    served = {cid[:12]: after[cid] - before[cid] for cid in stack["gateways"]}
    assert sum(served.values()) >= 2 * REPLICAS, served
    assert all(n >= 1 for n in served.values()), f"some replica got no connection: {served}"


def test_dns_name_spreads_calls_inside_the_network(stack: dict, trained: dict) -> None:
    """Inside the compose network the SDK's `dns:///gateway:50051` resolves every replica and
    round-robins one channel's calls over them (run from a replica's container, which is on
    that network and has the SDK)."""
    # round_robin starts on the first replica that connects and adds the others as they do.
    calls = 10 * REPLICAS
    before = calls_per_replica(stack)
    program = ("from forecast_client import ClientConfig, ForecastClient\n"
               "with ForecastClient(ClientConfig(target='dns:///gateway:50051')) as client:\n"
               "    client.wait_until_ready(30)\n"
               f"    for _ in range({calls}):\n"
               f"        client.list_models({RETAILER!r})\n")
    docker("exec", "-e", f"FORECAST_API_KEY={trained['key']}", stack["gateways"][0],
           "python", "-c", program)
    after = calls_per_replica(stack)
    served = {cid[:12]: after[cid] - before[cid] for cid in stack["gateways"]}
    assert sum(served.values()) >= calls, served
    assert all(n >= 1 for n in served.values()), f"some replica got no call: {served}"


def test_calls_keep_working_when_a_replica_is_killed(stack: dict, trained: dict,
                                                     tmp_path: Path) -> None:
    """`docker kill` one replica (SIGKILL: no graceful stop, no goodbye to the load balancer):
    every later call through the published address still answers, from the others."""
    victim, survivors = stack["gateways"][-1], stack["gateways"][:-1]
    docker("kill", victim)
    assert not health(victim).startswith("running"), health(victim)

    before = calls_per_replica(stack, survivors)
    started = time.monotonic()
    future = future_rows(1)
    future.to_csv(tmp_path / "future.csv", index=False)
    for _ in range(2 * REPLICAS):
        cli(stack, trained["key"], "predict", "--retailer", RETAILER, "--input",
            str(tmp_path / "future.csv"), "--output", str(tmp_path / "forecasts.csv"), "-q")
        assert len(pd.read_csv(tmp_path / "forecasts.csv")) == len(future)
    elapsed = time.monotonic() - started
    after = calls_per_replica(stack, survivors)
    assert sum(after[c] - before[c] for c in survivors) >= 2 * REPLICAS
    # A connection sent to the dead replica is retried on another after the load balancer's
    # 1 s connect timeout, until its DNS answer drops the replica (a few seconds).
    assert elapsed < 60, f"{2 * REPLICAS} predictions took {elapsed:.0f} s after the kill"
