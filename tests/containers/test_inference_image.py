"""The inference container contract (docs/contracts.md, contract 3): `docker run IMAGE serve` with the
model trained by the training image mounted at /opt/ml/model, published on 127.0.0.1."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from docker_helpers import (
    Containers,
    container_state,
    docker,
    future_rows,
    host_port,
    logs,
    wait_for_container_ping,
)
from sagemaker_job import post

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def server(inference_image: str, model_dir: Path, session_containers: Containers) -> dict:
    """One inference container for the module, answering /ping: its id and base URL."""
    cid = session_containers.start(
        inference_image, "serve",
        options=("-v", f"{model_dir}:/opt/ml/model:ro", "-p", "127.0.0.1::8080",
                 "-e", "SAGEMAKER_MODEL_SERVER_WORKERS=2"))
    port = host_port(cid, 8080)
    wait_for_container_ping(cid, port)
    return {"cid": cid, "url": f"http://127.0.0.1:{port}"}


@pytest.fixture(scope="module")
def future() -> pd.DataFrame:
    """Future rows: every sample series for the 7 days after the history ends."""
    return future_rows(7)


def test_ping(server: dict) -> None:
    start = time.monotonic()
    with urllib.request.urlopen(f"{server['url']}/ping", timeout=2) as resp:
        assert resp.status == 200
    assert time.monotonic() - start < 2


def test_invocations_json_columnar(server: dict, future: pd.DataFrame) -> None:
    payload = {col: future[col].tolist() for col in future.columns}
    status, ctype, body = post(server["url"], json.dumps(payload).encode(), "application/json")
    assert status == 200, body[:500]
    assert ctype == "application/json"
    predictions = json.loads(body)["predictions"]
    assert len(predictions) == len(future)
    assert all(isinstance(v, float) and v >= 0 for v in predictions)


def test_invocations_json_instances_match_columnar(server: dict, future: pd.DataFrame) -> None:
    rows = future.head(10)
    columnar = {col: rows[col].tolist() for col in rows.columns}
    _, _, a = post(server["url"], json.dumps(columnar).encode(), "application/json")
    _, _, b = post(server["url"], json.dumps({"instances": rows.to_dict("records")}).encode(),
                   "application/json")
    assert json.loads(a)["predictions"] == pytest.approx(json.loads(b)["predictions"])


def test_invocations_csv_with_header(server: dict, future: pd.DataFrame) -> None:
    status, ctype, body = post(server["url"], future.to_csv(index=False).encode(), "text/csv")
    assert status == 200, body[:500]
    assert ctype == "text/csv"
    values = [float(line) for line in body.decode().splitlines()]
    assert len(values) == len(future)

    status, _, as_json = post(server["url"], future.to_csv(index=False).encode(), "text/csv",
                              accept="application/json")
    assert status == 200
    assert json.loads(as_json)["predictions"] == pytest.approx(values)


def test_invocations_headerless_csv_feature_rows(server: dict, model_dir: Path) -> None:
    """The built-in XGBoost convention: ready feature rows in features.json order."""
    features = json.loads((model_dir / "features.json").read_text())
    names = features["features"] if isinstance(features, dict) else features
    rows = "\n".join(",".join(str(float(i % 5)) for i in range(len(names))) for _ in range(3))
    status, _, body = post(server["url"], rows.encode(), "text/csv")
    assert status == 200, body[:500]
    assert len(body.decode().splitlines()) == 3

    status, _, body = post(server["url"], b"1,2,3\n", "text/csv")
    assert status == 400, "a row of the wrong width is the caller's error"
    assert "values" in json.loads(body)["error"]


def test_unsupported_content_type_is_415(server: dict) -> None:
    status, ctype, body = post(server["url"], b"<rows/>", "application/xml")
    assert status == 415
    assert ctype == "application/json"
    assert "application/json" in json.loads(body)["error"]


def test_bad_input_is_400(server: dict) -> None:
    status, _, body = post(server["url"], b"{not json", "application/json")
    assert status == 400, body
    status, _, body = post(server["url"], json.dumps(
        {"date": ["2017-08-16"], "store_nbr": [999], "family": ["NOPE"]}).encode(),
        "application/json")
    assert status == 400, body


def test_body_over_6_mb_is_413(server: dict) -> None:
    status, _, _ = post(server["url"], b"0" * (6 * 1024 * 1024 + 1), "text/csv")
    assert status == 413


def test_image_labels(inference_image: str) -> None:
    labels = json.loads(docker("image", "inspect", "-f", "{{json .Config.Labels}}",
                               inference_image).stdout) or {}
    assert labels.get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port") == "true"
    # Multi-model endpoints are not implemented: the image must not claim them.
    assert "com.amazonaws.sagemaker.capabilities.multi-models" not in labels


def test_bind_to_port_and_sigterm(inference_image: str, model_dir: Path,
                                  containers: Containers) -> None:
    """SAGEMAKER_BIND_TO_PORT moves the port; `docker stop` (SIGTERM) stops serve gracefully."""
    cid = containers.start(
        inference_image, "serve",
        options=("-v", f"{model_dir}:/opt/ml/model:ro", "-p", "127.0.0.1::9099",
                 "-e", "SAGEMAKER_BIND_TO_PORT=9099", "-e", "SAGEMAKER_MODEL_SERVER_WORKERS=1"))
    wait_for_container_ping(cid, host_port(cid, 9099))
    start = time.monotonic()
    docker("stop", "-t", "60", cid, timeout=90)
    took = time.monotonic() - start
    assert took < 30, f"serve ignored SIGTERM (stopped after {took:.0f} s):\n{logs(cid)}"
    assert container_state(cid)["ExitCode"] == 0, logs(cid)


def test_serve_without_a_model_exits_non_zero(inference_image: str, tmp_path: Path,
                                              containers: Containers) -> None:
    empty = tmp_path / "model"
    empty.mkdir()
    proc = containers.run(inference_image, "serve", options=("-v", f"{empty}:/opt/ml/model:ro"),
                          timeout=120)
    assert proc.returncode != 0
    assert "cannot load the model" in proc.stderr
