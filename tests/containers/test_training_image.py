"""The training container contract (docs/contracts.md, contract 2), run the way SageMaker runs it:
`docker run IMAGE train` with an /opt/ml tree mounted."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from docker_helpers import (
    QUICK_HYPERPARAMETERS,
    Containers,
    container_state,
    docker,
    logs,
    wait_until,
)
from sagemaker_job import make_opt_ml

pytestmark = pytest.mark.docker


def test_train_writes_the_model_and_exits_zero(trained_model: dict) -> None:
    proc, root = trained_model["proc"], trained_model["root"]
    assert proc.returncode == 0, f"train exited {proc.returncode}:\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    model = root / "model"
    assert (model / "artifact.json").is_file(), sorted(p.name for p in model.iterdir())
    meta = json.loads((model / "artifact.json").read_text())
    assert set(meta["members"]) >= {"xgboost", "lstm"}, meta["members"]
    assert not (root / "output" / "failure").exists()
    # Metric lines that a MetricDefinitions regex reads, and progress lines.
    assert re.search(r"^xgboost\.test\.rmsle=[0-9.]+$", proc.stdout, re.MULTILINE), proc.stdout[-2000:]
    assert re.search(r"^baseline\.test\.rmsle=[0-9.]+$", proc.stdout, re.MULTILINE)
    assert "progress stage=" in proc.stdout


def test_bad_hyperparameter_writes_failure_file(tmp_path: Path, training_image: str,
                                                containers: Containers, sample_csv: Path) -> None:
    root = make_opt_ml(tmp_path / "opt_ml", sample_csv, {"num_round": "abc"})
    proc = containers.run(training_image, "train", options=("-v", f"{root}:/opt/ml"))
    assert proc.returncode != 0
    assert proc.returncode == 2, "a user error exits 2"
    failure = (root / "output" / "failure").read_text()
    assert failure.startswith("ClientError"), failure
    assert "num_round" in failure and "abc" in failure
    assert not any((root / "model").iterdir()), "no model on failure"


def test_bad_data_writes_failure_file(tmp_path: Path, training_image: str,
                                      containers: Containers) -> None:
    bad = tmp_path / "train.csv"
    bad.write_text("date,store_nbr,sales\n2017-01-01,1,3.0\n")  # no family column
    root = make_opt_ml(tmp_path / "opt_ml", bad, {})
    proc = containers.run(training_image, "train", options=("-v", f"{root}:/opt/ml"))
    assert proc.returncode != 0
    failure = (root / "output" / "failure").read_text()
    assert failure.strip(), "the failure file says why"
    assert "family" in failure, failure


def test_unsupported_channel_content_type_fails(tmp_path: Path, training_image: str,
                                                containers: Containers,
                                                sample_csv: Path) -> None:
    root = make_opt_ml(tmp_path / "opt_ml", sample_csv, {}, content_type="application/x-recordio")
    proc = containers.run(training_image, "train", options=("-v", f"{root}:/opt/ml"))
    assert proc.returncode == 2
    assert "content type" in (root / "output" / "failure").read_text()


def test_sigterm_reaches_train(tmp_path: Path, training_image: str, containers: Containers,
                               sample_csv: Path) -> None:
    """StopTrainingJob: SIGTERM reaches `train` (exec form + dumb-init), which records why."""
    slow = dict(QUICK_HYPERPARAMETERS, model_kind="xgboost", num_round="100000",
                early_stopping_rounds="10000", eta="0.0001")
    root = make_opt_ml(tmp_path / "opt_ml", sample_csv, slow)
    cid = containers.start(training_image, "train", options=("-v", f"{root}:/opt/ml"))
    wait_until(lambda: "training on" in logs(cid) or not container_state(cid)["Running"],
               120, "train to start")
    assert container_state(cid)["Running"], logs(cid)
    start = time.monotonic()
    docker("stop", "-t", "60", cid, timeout=90)
    took = time.monotonic() - start
    state = container_state(cid)
    assert took < 30, f"the container ignored SIGTERM (stopped after {took:.0f} s)"
    assert state["ExitCode"] == 143, (state, logs(cid))
    assert "SIGTERM" in (root / "output" / "failure").read_text()


def test_image_runs_train_from_path(training_image: str) -> None:
    config = json.loads(docker("image", "inspect", "-f", "{{json .Config}}",
                               training_image).stdout)
    assert config["Entrypoint"] == ["dumb-init", "--"]
    assert config["Cmd"] == ["train"]
    proc = subprocess.run(["docker", "run", "--rm", "--entrypoint", "sh", training_image, "-c",
                           "command -v train && command -v serve && python --version"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "/opt/venv/bin/train" in proc.stdout and "Python 3.11" in proc.stdout
