"""Helpers for the Docker-backed tests: the docker CLI, /opt/ml trees, containers that are
always removed, and polling against deadlines (never bare excepts with fixed sleeps)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "train.csv"
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


def make_opt_ml(root: Path, data: Path, hyperparameters: dict[str, str],
                content_type: str = "text/csv") -> Path:
    """An /opt/ml tree as SageMaker lays it out for a training job."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps(
        {"train": {"ContentType": content_type, "TrainingInputMode": "File",
                   "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}))
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    channel = root / "input" / "data" / "train"
    channel.mkdir(parents=True)
    shutil.copy(data, channel / data.name)
    for sub in ("model", "output"):
        (root / sub).mkdir()
    return root


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


def wait_for_ping(cid: str, port: int, deadline_s: float = 180) -> float:
    """Poll GET /ping until it answers 200; returns the seconds it took.

    Fails at once when the container exits, and at the deadline with the container's log.
    """
    start = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - start < deadline_s:
        state = container_state(cid)
        if not state["Running"]:
            pytest.fail(f"the inference container exited with {state['ExitCode']} before /ping "
                        f"answered:\n{logs(cid)}", pytrace=False)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
                last = f"status {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    pytest.fail(f"/ping did not answer 200 within {deadline_s:.0f} s ({last}):\n{logs(cid)}",
                pytrace=False)
    raise AssertionError("unreachable")


def wait_until(predicate: Callable[[], bool], deadline_s: float, what: str,
               interval: float = 1.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(interval)
    pytest.fail(f"{what} did not happen within {deadline_s:.0f} s", pytrace=False)
