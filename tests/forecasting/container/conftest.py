"""Helpers to run the ``train`` and ``serve`` console scripts as real processes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "data" / "sample" / "train.csv"
BIN = Path(sys.executable).parent


def make_opt_ml(root: Path, data: Path | bytes | None = SAMPLE, hyperparameters=None,
                content_type: str = "text/csv") -> Path:
    """An /opt/ml tree as SageMaker lays it out for a training job."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters or {}))
    (config / "inputdataconfig.json").write_text(json.dumps({"train": {
        "ContentType": content_type, "TrainingInputMode": "File",
        "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}}))
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    channel = root / "input" / "data" / "train"
    channel.mkdir(parents=True)
    if isinstance(data, Path):
        shutil.copy(data, channel / data.name)
    elif data is not None:
        (channel / "data.csv").write_bytes(data)
    return root


def run_train(root: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPT_ML": str(root)}
    return subprocess.run([str(BIN / "train")], env=env, capture_output=True, text=True, check=False,
                          timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_ping(url: str, proc: subprocess.Popen | None = None, deadline_s: float = 60) -> None:
    """Poll GET /ping until 200, against a deadline; fail early if the server died."""
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"/ping did not answer 200 within {deadline_s}s: {last}")


def post(url: str, body: bytes, content_type: str, accept: str | None = None):
    """POST and return (status, content type, body bytes), errors included."""
    req = urllib.request.Request(url + "/invocations", data=body, method="POST",
                                 headers={"Content-Type": content_type,
                                          **({"Accept": accept} if accept else {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers.get_content_type(), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get_content_type(), err.read()


@pytest.fixture(scope="session")
def trained_opt_ml(tmp_path_factory) -> Path:
    """One real `train` run on the bundled sample, shared by the serving tests."""
    root = make_opt_ml(tmp_path_factory.mktemp("job") / "opt_ml",
                       hyperparameters={"num_round": "80", "max_depth": "6"})
    result = run_train(root)
    assert result.returncode == 0, result.stderr + result.stdout
    return root
