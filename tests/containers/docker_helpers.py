"""Helpers for the Docker-backed tests: the docker CLI, containers that are always removed, and
polling against deadlines (never bare excepts with fixed sleeps). The /opt/ml tree, free port,
/ping poller and POST come from tests/sagemaker_job.py, shared with tests/forecasting/container."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import pytest
from sagemaker_job import SAMPLE, wait_for_ping

from forecasting import forecast

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
TAG = os.environ.get("IMAGE_TAG", "latest")
IMAGES = {name: f"retail-forecast-{name}:{TAG}" for name in ("training", "inference", "gateway")}
LABEL = "com.retail-forecast.test"  # on every container the tests start, for cleanup

# Small, quick settings: a hybrid model so the LSTM member (tensorflow) is trained and served.
QUICK_HYPERPARAMETERS = {
    "model_kind": "hybrid", "horizon": "7", "num_round": "60", "early_stopping_rounds": "10",
    "max_depth": "6", "lstm_epochs": "1", "lstm_units": "8", "lstm_window": "14",
    "lstm_max_samples": "2000", "lstm_batch_size": "256", "nthread": "2",
}


def future_rows(days: int) -> pd.DataFrame:
    """Rows to forecast: every sample series for the `days` days after its history ends."""
    return forecast.future_rows(pd.read_csv(SAMPLE, usecols=["date", "store_nbr", "family"]),
                                days)


def unavailable(reason: str) -> None:
    """Fail in CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{reason} (docker tests are required when CI=true)", pytrace=False)
    pytest.skip(f"docker: {reason}")


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run the docker CLI; on failure the error carries its stderr."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args[:3])} ... exited {proc.returncode}: "
                             f"{proc.stderr.strip()[-2000:]}")
    return proc


@dataclass
class Containers:
    """Starts containers for one test and removes them all afterwards."""

    ids: list[str]

    def run(self, image: str, *args: str, options: tuple[str, ...] = (),
            timeout: float = 600) -> subprocess.CompletedProcess:
        """`docker run` in the foreground; returns the finished process (not checked)."""
        name = f"rf-test-{uuid.uuid4().hex[:10]}"
        self.ids.append(name)
        return subprocess.run(["docker", "run", "--name", name, "--label", LABEL, *options,
                               image, *args], capture_output=True, text=True, timeout=timeout,
                              check=False)

    def start(self, image: str, *args: str, options: tuple[str, ...] = ()) -> str:
        """`docker run -d`; returns the container id."""
        proc = docker("run", "-d", "--label", LABEL, *options, image, *args)
        cid = proc.stdout.strip()
        self.ids.append(cid)
        return cid

    def remove_all(self) -> None:
        for cid in self.ids:
            subprocess.run(["docker", "rm", "-f", "-v", cid], capture_output=True, timeout=60,
                           check=False)
        self.ids.clear()


def host_port(cid: str, container_port: int) -> int:
    """The 127.0.0.1 port docker published for `container_port`."""
    out = docker("port", cid, f"{container_port}/tcp").stdout.split()
    assert out, f"container {cid[:12]} publishes no port {container_port}"
    return int(out[0].rsplit(":", 1)[1])


def container_state(cid: str) -> dict:
    return json.loads(docker("inspect", "-f", "{{json .State}}", cid).stdout)


def logs(cid: str) -> str:
    proc = docker("logs", "--tail", "80", cid, check=False)
    return (proc.stdout + proc.stderr)[-6000:]


def wait_for_container_ping(cid: str, port: int, deadline_s: float = 180) -> None:
    """Poll the container's GET /ping on 127.0.0.1:`port` until it answers 200. Fails at once
    when the container exits, and at the deadline, with its log."""

    def exited() -> str | None:
        state = container_state(cid)
        if state["Running"]:
            return None
        return f"the inference container exited with {state['ExitCode']}"

    try:
        wait_for_ping(f"http://127.0.0.1:{port}", deadline_s=deadline_s, exited=exited)
    except AssertionError as exc:
        pytest.fail(f"{exc}:\n{logs(cid)}", pytrace=False)


def backend_containers(kind: str) -> list[str]:
    """Names of the containers the gateway's docker backend started, of `kind` (training or
    inference), running or not."""
    from forecast_gateway.backends.docker_backend import LABEL as BACKEND_LABEL

    out = docker("ps", "-a", "--filter", f"label={BACKEND_LABEL}={kind}", "--format",
                 "{{.Names}}").stdout
    return sorted(out.split())


def wait_until(predicate: Callable[[], bool], deadline_s: float, what: str,
               interval: float = 1.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"{what} did not happen within {deadline_s:.0f} s", pytrace=False)
