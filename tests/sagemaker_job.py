"""Test helpers shared by the in-process container tests (tests/forecasting/container) and the
Docker-backed ones (tests/containers): an /opt/ml tree for a training job, the `train` console
script (and the processing entrypoints `clean`/`evaluate`) run on it, a free port, a /ping
poller with a deadline, and a POST to /invocations.

Test modules import these from here, never from a conftest: several conftest.py files share
that module name, and which one `import conftest` finds depends on the collection order."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from forecasting.container.env import TRAIN_CHANNEL, TrainingEnv

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "train.csv"
BIN = Path(sys.executable).parent


def make_opt_ml(root: Path, data: Path | bytes | None = SAMPLE, hyperparameters=None,
                content_type: str = "text/csv") -> Path:
    """An /opt/ml tree as SageMaker lays it out for a training job: the config files, the
    `train` channel (a copy of the file `data`, or `data` as bytes in data.csv, or empty) and
    the model and output directories."""
    env = TrainingEnv(root)
    env.config_dir.mkdir(parents=True)
    (env.config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters or {}))
    (env.config_dir / "inputdataconfig.json").write_text(json.dumps({TRAIN_CHANNEL: {
        "ContentType": content_type, "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}))
    (env.config_dir / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    channel = env.channel_dir(TRAIN_CHANNEL)
    channel.mkdir(parents=True)
    if isinstance(data, Path):
        shutil.copy(data, channel / data.name)
    elif data is not None:
        (channel / "data.csv").write_bytes(data)
    env.model_dir.mkdir()
    env.output_dir.mkdir()
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ping(url: str, proc: subprocess.Popen | None = None, deadline_s: float = 60,
                  exited: Callable[[], str | None] | None = None) -> float:
    """Poll GET `url`/ping until 200, against a deadline; returns the seconds it took.

    Fails early when the server has died: `proc` has exited, or `exited()` says why.
    """
    start = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - start < deadline_s:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        if exited is not None and (why := exited()):
            raise AssertionError(f"{why} before /ping answered")
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - start
                last = f"status {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"status {exc.code}"
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.2)
    raise AssertionError(f"/ping did not answer 200 within {deadline_s:.0f} s ({last})")


def post(url: str, body: bytes, content_type: str, accept: str | None = None,
         timeout: float = 60) -> tuple[int, str, bytes]:
    """POST to `url`/invocations; returns (status, content type, body), errors included."""
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    req = urllib.request.Request(url + "/invocations", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers.get_content_type(), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get_content_type(), err.read()


def run_train(root: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """The `train` console script as a real process on the /opt/ml tree at `root`."""
    env = {**os.environ, "OPT_ML": str(root)}
    return subprocess.run([str(BIN / "train")], env=env, capture_output=True, text=True,
                          check=False, timeout=timeout)


def run_processing(entrypoint: str, root: Path, *args: str,
                   timeout: float = 300) -> subprocess.CompletedProcess:
    """A processing entrypoint (`clean`, `evaluate`) as a real process on the /opt/ml tree at
    `root` (its processing tree is `root/processing`)."""
    env = {**os.environ, "OPT_ML": str(root)}
    return subprocess.run([str(BIN / entrypoint), *args], env=env, capture_output=True,
                          text=True, check=False, timeout=timeout)
