"""Helpers of the SageMaker backend's tests (imported by name: several conftest.py files share
that module name): clients whose every request is checked against the service model and
recorded, test settings, a listener that records a job's events, model.tar.gz packing."""

from __future__ import annotations

import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from forecast_gateway.backends.base import TrainingOutcome
from forecast_gateway.backends.sagemaker import validation
from forecast_gateway.backends.sagemaker.aws import retry_config
from forecast_gateway.backends.sagemaker.settings import SageMakerSettings
from moto_server import MotoServer

ROOT = Path(__file__).resolve().parents[3]
GOLDEN_ARTIFACT = ROOT / "tests" / "forecasting" / "fixtures" / "artifact_v1"
ROLE = "arn:aws:iam::123456789012:role/forecast-sagemaker-execution"
#: One session for every test client: it loads each service model once.
SESSION = boto3.session.Session(region_name="us-east-1")


@dataclass
class Recorder:
    """Every request the clients sent (operation, params); each passed `validation`."""

    calls: list[tuple[str, dict]] = field(default_factory=list)

    def operations(self) -> list[str]:
        return [op for op, _ in self.calls]

    def params(self, operation: str) -> dict:
        found = [p for op, p in self.calls if op == operation]
        assert found, f"{operation} was never called; calls: {self.operations()}"
        return found[-1]


def client(service: str, moto: MotoServer | None, recorder: Recorder):
    """A boto3 client on moto (or on nothing, for a Stubber), requests checked and recorded."""
    extra = {"endpoint_url": moto.url} if moto is not None else {}
    made = SESSION.client(service, config=retry_config(2), **extra)
    return validation.enforce(made, recorder.calls)


def settings(bucket: str, **overrides) -> SageMakerSettings:
    """Settings for tests: short pauses, the given bucket under the prefix `tenant-data`."""
    values = {"bucket": bucket, "prefix": "tenant-data", "role_arn": ROLE,
                  "training_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/retail-forecast-"
                                 "training:latest",
                  "inference_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/retail-forecast-"
                                  "inference:latest",
                  "poll_max_s": 0.05, "endpoint_timeout_s": 10}
    values.update(overrides)
    return SageMakerSettings(**values)


class Listener:
    """Records a job's events; `wait()` returns its outcome."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.outcome: TrainingOutcome | None = None
        self._done = threading.Event()

    def on_started(self, job_id: str) -> None:
        self.events.append(("started",))

    def on_progress(self, job_id: str, stage: str, fraction: float) -> None:
        self.events.append(("progress", stage, fraction))

    def on_metric(self, job_id: str, name: str, value: float) -> None:
        self.events.append(("metric", name, value))

    def on_finished(self, job_id: str, outcome: TrainingOutcome) -> None:
        self.outcome = outcome
        self._done.set()

    def wait(self, timeout: float = 30) -> TrainingOutcome:
        assert self._done.wait(timeout), f"the job did not finish; events: {self.events}"
        assert self.outcome is not None
        return self.outcome


def pack(artifact_dir: Path, target: Path) -> Path:
    """model.tar.gz with the artifact's files at its root, as SageMaker packs /opt/ml/model."""
    with tarfile.open(target, "w:gz") as tar:
        for child in sorted(artifact_dir.iterdir()):
            tar.add(child, arcname=child.name)
    return target
