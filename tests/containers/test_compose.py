"""The compose stack: `docker-compose up -d --build` comes up healthy on 127.0.0.1, and the
README's CLI flow (upload, train, predict, metrics) works against it from the host."""

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
    """The stack under a project name of its own, torn down with its volumes."""
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
        up = run("up", "-d", "--build", timeout=1800)
        assert up.returncode == 0, f"compose up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        cid = run("ps", "-q", "gateway").stdout.strip()
        assert cid, "compose started no gateway container"
        yield {"port": port, "cid": cid, "run": run, "target": f"127.0.0.1:{port}",
               "metrics_url": f"http://127.0.0.1:{metrics_port}/metrics"}
    finally:
        down = run("down", "-v", "--remove-orphans", timeout=300)
        assert down.returncode == 0, down.stderr[-2000:]


def health(cid: str) -> str:
    return docker("inspect", "-f", "{{.State.Status}} {{if .State.Health}}"
                  "{{.State.Health.Status}}{{end}}", cid).stdout.strip()


def wait_until_healthy(stack: dict) -> None:
    """Poll the container's healthcheck status against a deadline; fail early if it exits."""
    deadline = time.monotonic() + 240
    status = ""
    while time.monotonic() < deadline:
        status = health(stack["cid"])
        if status == "running healthy":
            break
        assert not status.startswith("exited") and "unhealthy" not in status, (
            status, stack["run"]("logs", "--tail", "50").stdout)
        time.sleep(2)
    assert status == "running healthy", (status, stack["run"]("logs", "--tail", "50").stdout)


def test_stack_comes_up_healthy(stack: dict) -> None:
    wait_until_healthy(stack)
    ports = docker("port", stack["cid"], "50051/tcp").stdout.split()
    assert ports == [f"127.0.0.1:{stack['port']}"], ports

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(stack["target"]) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                          timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_cli_flow_against_the_stack(stack: dict, tmp_path: Path) -> None:
    wait_until_healthy(stack)
    # The second of the two documented commands: the key, made inside the container.
    made = stack["run"]("exec", "-T", "gateway", "forecast-gateway", "keys", "create-retailer",
                        "composeco")
    assert made.returncode == 0, made.stderr[-2000:]
    key = next(line for line in made.stdout.splitlines() if line.startswith("fgk_"))
    assert f"export FORECAST_API_KEY={key}" in made.stdout
    env = dict(os.environ, FORECAST_API_KEY=key)

    def cli(*args: str, timeout: float = 120) -> str:
        proc = subprocess.run([sys.executable, "-m", "forecast_client.cli", "--target",
                               stack["target"], *args], capture_output=True, text=True,
                              timeout=timeout, check=False, env=env)
        assert proc.returncode == 0, f"forecast {args[0]} exited {proc.returncode}:\n" \
                                     f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        return proc.stdout

    assert cli("upload", "--retailer", "composeco", str(SAMPLE)).strip()
    cli("train", "--retailer", "composeco", "--data", str(SAMPLE), "--horizon", "7",
        "--hp", "num_round=40", "--hp", "early_stopping_rounds=10", "--wait", "-q",
        timeout=900)
    future = future_rows(1)
    future.to_csv(tmp_path / "future.csv", index=False)
    cli("predict", "--retailer", "composeco", "--input", str(tmp_path / "future.csv"),
        "--output", str(tmp_path / "forecasts.csv"), "-q")
    forecasts = pd.read_csv(tmp_path / "forecasts.csv")
    assert len(forecasts) == len(future) and (forecasts["sales"] >= 0).all()
    assert "rmsle" in cli("metrics", "--retailer", "composeco").lower()
    # The published Prometheus port counts the rows just forecast.
    with urllib.request.urlopen(stack["metrics_url"], timeout=10) as response:
        scrape = response.read().decode()
    line = next(x for x in scrape.splitlines()
                if x.startswith('forecast_gateway_rows_predicted_total{retailer="composeco"}'))
    assert float(line.rsplit(" ", 1)[1]) >= len(future)
