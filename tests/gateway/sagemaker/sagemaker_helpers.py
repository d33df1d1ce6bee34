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


def local_mode_env(root: Path, moto_url: str, bucket: str, serving_port: int) -> dict[str, str]:
    """The environment of a gateway whose SageMaker backend runs in SageMaker local mode: the
    real images in docker containers, S3 on moto, dummy credentials (local mode passes them into
    the containers), SDK telemetry off, and the SDK's local config in `root/.sagemaker` (HOME):
    its working directories under `root/containers` (so teardown finds every container it
    started by its mounts) and the endpoint on `serving_port` instead of 8080."""
    from moto_server import DUMMY_AWS_ENV

    (root / ".sagemaker").mkdir(parents=True, exist_ok=True)
    (root / "containers").mkdir(exist_ok=True)
    (root / ".sagemaker" / "config.yaml").write_text(
        f"local:\n  container_root: {root / 'containers'}\n  serving_port: {serving_port}\n")
    (root / "sdk.yaml").write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n"
                                   "    Modules:\n      TelemetryOptOut: true\n")
    return {**DUMMY_AWS_ENV, "HOME": str(root), "SAGEMAKER_USER_CONFIG_OVERRIDE":
            str(root / "sdk.yaml"),
            "FORECAST_GATEWAY_BACKEND": "sagemaker", "FORECAST_GATEWAY_AUTH": "false",
            "FORECAST_GATEWAY_AWS_REGION": "us-east-1", "FORECAST_GATEWAY_AWS_ENDPOINT_URL": moto_url,
            "FORECAST_GATEWAY_SAGEMAKER_BUCKET": bucket, "FORECAST_GATEWAY_SAGEMAKER_PREFIX": "tenants",
            "FORECAST_GATEWAY_SAGEMAKER_LOCAL_MODE": "true",
            "FORECAST_GATEWAY_SAGEMAKER_POLL_MAX_S": "1"}


def local_mode_containers(root: Path) -> list[str]:
    """Ids of the containers local mode started with its working directories under `root`."""
    import subprocess

    ids = subprocess.run(["docker", "ps", "-aq"], capture_output=True, text=True,
                         check=False).stdout.split()
    if not ids:
        return []
    mounts = subprocess.run(["docker", "inspect", "-f", ("{{.Id}} {{range .Mounts}}{{.Source}} "
                             "{{end}}"), *ids], capture_output=True, text=True, check=False).stdout
    return [line.split()[0][:12] for line in mounts.splitlines()
            if any(part.startswith(str(root)) for part in line.split()[1:])]


def endpoint_description(name: str, config: str, status: str, **extra) -> dict:
    """A DescribeEndpoint answer (for a Stubber)."""
    import datetime as dt

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return {"EndpointName": name, "EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/e",
            "EndpointConfigName": config, "EndpointStatus": status, "CreationTime": now,
            "LastModifiedTime": now, **extra}


def stub_model_and_config(sm) -> None:
    """Stubbed answers to the CreateModel and CreateEndpointConfig of one deploy."""
    sm.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:1:model/m"})
    sm.add_response("create_endpoint_config",
                    {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:1:endpoint-config/c"})


def stub_first_deploy(sm, endpoint: str, config: str) -> None:
    """Stubbed answers to a first deploy: the models and config made, no endpoint yet, then
    CreateEndpoint, Creating and InService."""
    stub_model_and_config(sm)
    sm.add_client_error("describe_endpoint", "ValidationException",
                        f"Could not find endpoint \"{endpoint}\".")
    sm.add_response("create_endpoint", {"EndpointArn": "arn:aws:sagemaker:us-east-1:1:endpoint/e"})
    sm.add_response("describe_endpoint", endpoint_description(endpoint, config, "Creating"))
    sm.add_response("describe_endpoint", endpoint_description(endpoint, config, "InService"))
