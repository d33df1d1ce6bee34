"""The gateway's side of the training contract: the /opt/ml tree it builds, the lines it forwards
and the outcome it reads, with a small Python process standing in for the training container."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from forecast_gateway.backends import opt_ml
from forecast_gateway.backends.base import TrainingOutcome, TrainingSpec
from forecast_gateway.backends.training_queue import QueuedJob

from forecasting.joblog import FAILURE_REASON_CHARS


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def on_started(self, job_id: str) -> None:
        self.seen.append(("started", job_id))

    def on_progress(self, job_id: str, stage: str, fraction: float) -> None:
        self.seen.append(("progress", stage, fraction))

    def on_metric(self, job_id: str, name: str, value: float) -> None:
        self.seen.append(("metric", name, value))

    def on_finished(self, job_id: str, outcome: TrainingOutcome) -> None:
        raise AssertionError("opt_ml never finishes a job; the queue does")


@pytest.fixture()
def spec(tmp_path: Path) -> TrainingSpec:
    data = tmp_path / "upload.csv"
    data.write_text("id,date,store_nbr,family,sales,onpromotion\n")
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    return TrainingSpec(job_id="j1", retailer="acme", job_dir=job_dir, data_path=data,
                        data_format="csv", hyperparameters={"model_kind": "xgboost", "horizon": "16"})


def describe(code: int, tail: str) -> str:
    return f"exit {code}: {tail}"


def test_prepare_lays_out_the_tree_afresh(spec: TrainingSpec) -> None:
    stale = spec.job_dir / "opt_ml" / "model" / "old.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    root = opt_ml.prepare(spec, network_interface="eth0")
    config = root / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text()) == {
        "horizon": "16", "model_kind": "xgboost"}
    assert json.loads((config / "inputdataconfig.json").read_text())["train"]["ContentType"] \
        == "text/csv"
    assert json.loads((config / "resourceconfig.json").read_text())["network_interface_name"] \
        == "eth0"
    assert (root / "input" / "data" / "train" / "train.csv").read_bytes() \
        == spec.data_path.read_bytes()
    assert (root / "output").is_dir() and list((root / "model").iterdir()) == []


def test_follow_forwards_progress_and_metrics_and_keeps_the_log(tmp_path: Path) -> None:
    events = Events()
    lines = ["starting\n", "progress stage=fit fraction=0.5\n", "progress stage=fit fraction=7\n",
             "progress stage=fit fraction=1.2.3\n", "xgboost.test.rmsle=0.48\n",
             "baseline.test.rmsle=1.2.3\n", "\n", "done\n", "\n"]
    last = opt_ml.follow(lines, tmp_path / "train.log", "j1", events)
    assert events.seen == [("progress", "fit", 0.5), ("progress", "fit", 1.0),
                           ("metric", "xgboost.test.rmsle", 0.48)]
    assert last == "done"
    assert (tmp_path / "train.log").read_text() == "".join(lines)


def test_read_outcome(tmp_path: Path) -> None:
    for d in ("model", "output"):
        (tmp_path / d).mkdir()
    assert opt_ml.read_outcome(tmp_path, 0, "", describe) == TrainingOutcome(
        "failed", failure_reason="exit 0: no output")
    assert opt_ml.read_outcome(tmp_path, 3, "Traceback", describe).failure_reason \
        == "exit 3: Traceback"
    (tmp_path / "output" / "failure").write_text("x" * 5000)
    assert opt_ml.read_outcome(tmp_path, 1, "", describe).failure_reason == "x" * FAILURE_REASON_CHARS
    (tmp_path / "model" / "artifact.json").write_text("{}")
    assert opt_ml.read_outcome(tmp_path, 0, "", describe) == TrainingOutcome(
        "succeeded", model_dir=tmp_path / "model")


TRAIN = textwrap.dedent("""
    import pathlib, sys
    root = pathlib.Path(sys.argv[1])
    print("progress stage=fit fraction=0.25", flush=True)
    print("xgboost.test.rmsle=0.5", flush=True)
    (root / "model" / "artifact.json").write_text("{}")
""")


def test_run_starts_the_process_on_the_tree_and_reads_the_outcome(spec: TrainingSpec) -> None:
    events = Events()
    job = QueuedJob(spec, events)

    def launch(tree: Path) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", TRAIN, str(tree)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    outcome = opt_ml.run(job, launch, network_interface="lo", describe_exit=describe)
    assert outcome == TrainingOutcome("succeeded", model_dir=spec.job_dir / "opt_ml" / "model")
    assert events.seen == [("started", "j1"), ("progress", "fit", 0.25),
                           ("metric", "xgboost.test.rmsle", 0.5)]
    assert "xgboost.test.rmsle=0.5" in (spec.job_dir / "train.log").read_text()


def test_run_of_a_job_cancelled_before_launch_starts_nothing(spec: TrainingSpec) -> None:
    job = QueuedJob(spec, Events())
    job.cancel_requested = True
    outcome = opt_ml.run(job, lambda tree: pytest.fail("launched"), network_interface="lo",
                         describe_exit=describe)
    assert outcome == TrainingOutcome("cancelled", failure_reason="cancelled by request")
