"""The SageMaker backend (`--backend sagemaker`): the gateway's registry, jobs and versions as
with every backend; training runs as SageMaker training jobs and predictions on SageMaker
endpoints. docs/sagemaker.md is the operator's page.

- Train: the dataset goes to `raw/<retailer>/<dataset_id>.<ext>` (once), then CreateTrainingJob
  (`training.job_request`), followed on a backoff (`training.follow`). On success
  `models/<retailer>/<job>/output/model.tar.gz` is downloaded, extracted and checked as a local
  artifact is, and handed to the gateway as `TrainingOutcome.model_dir`; the gateway publishes
  it like any other. Cancel is StopTrainingJob. The fair queue of the other backends
  (`training_queue`) bounds how many jobs are followed at once.
- Serve: `load_model` deploys the version to the retailer's endpoint (`endpoints.Endpoints`)
  and returns once it is InService, so the gateway's live pointer moves only after SageMaker
  serves the new version; a failed update raises and the old version stays live.
- Predict: `invoke.predict` through InvokeEndpoint. An endpoint serves one version: the live
  one (and, while a switch settles, requests that resolved the previous one a moment before).
  A Predict naming any other version is refused with FAILED_PRECONDITION.
- GetMetrics reads evaluation.json from the published artifact, as with every backend.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from forecast_gateway import manifest
from forecast_gateway.backends.base import (
    CONTENT_TYPES,
    Backend,
    TrainingListener,
    TrainingOutcome,
    TrainingSpec,
)
from forecast_gateway.backends.sagemaker import invoke, training
from forecast_gateway.backends.sagemaker.aws import AwsClients, create_clients
from forecast_gateway.backends.sagemaker.endpoints import Deployment, Endpoints
from forecast_gateway.backends.sagemaker.layout import S3Layout
from forecast_gateway.backends.sagemaker.settings import SageMakerSettings
from forecast_gateway.backends.training_queue import QueuedJob, TrainingQueue
from forecast_gateway.config import GatewayConfig
from forecast_gateway.domain import ModelRef, RowColumns
from forecast_gateway.errors import BackendUnavailable, FailedPrecondition
from forecasting.errors import ArtifactError
from forecasting.joblog import FAILURE_REASON_CHARS

log = logging.getLogger("forecast_gateway.backends.sagemaker")


@dataclass
class _Handle:
    """Stands where a process backend keeps its Popen: the job's SageMaker name."""

    name: str
    created: bool = False
    wake: threading.Event = field(default_factory=threading.Event)


@dataclass(eq=False)
class _SageMakerJob(QueuedJob):
    handle: _Handle | None = None


class SageMakerBackend(Backend):
    """Training jobs and endpoints on SageMaker. See the module docstring."""

    name = "sagemaker"

    def __init__(self, settings: SageMakerSettings, clients: AwsClients, *,
                 cancel_grace_s: float = 120.0, first_pause_s: float = 1.0):
        self.settings = settings
        self.clients = clients
        self.layout = S3Layout(settings.bucket, settings.prefix)
        self._first_pause_s = first_pause_s
        self._endpoints = Endpoints(clients.sagemaker, settings, first_pause_s=first_pause_s)
        self._lock = threading.Lock()
        self._serving: dict[str, tuple[Path, Deployment]] = {}   # retailer -> live version
        self._previous: dict[str, tuple[Path, Deployment]] = {}  # the version it replaced
        self._deploy_locks: dict[str, threading.Lock] = {}
        self._pool = ThreadPoolExecutor(max_workers=4 * settings.invoke_concurrency,
                                        thread_name_prefix="sm-invoke")
        self._jobs: TrainingQueue[_SageMakerJob] = TrainingQueue(
            self._run, self._stop, slots=settings.parallel_jobs, cancel_grace_s=cancel_grace_s,
            log=log, thread_name="sm-train", join_timeout_s=30.0)

    @classmethod
    def from_config(cls, config: GatewayConfig) -> SageMakerBackend:
        """Settings and AWS clients from the gateway configuration."""
        clients = create_clients(region=config.aws_region, endpoint_url=config.aws_endpoint_url,
                                 max_attempts=config.aws_max_attempts,
                                 local_mode=config.sagemaker_local_mode)
        return cls(SageMakerSettings.from_config(config), clients,
                   cancel_grace_s=config.cancel_grace_s)

    def describe(self) -> dict[str, object]:
        """Name, bucket, images and limits, for the start-up log line."""
        s = self.settings
        return {"backend": self.name, "bucket": s.bucket, "prefix": s.prefix,
                "training_image": s.training_image, "inference_image": s.inference_image,
                "train_with": s.train_with, "local_mode": s.local_mode,
                "endpoint": s.endpoint_instance_type or f"serverless {s.serverless_memory_mb} MB",
                "parallel_jobs": self._jobs.slots}

    def check_available(self) -> None:
        """The bucket answers (HeadBucket); BackendUnavailable otherwise."""
        try:
            self.clients.s3.head_bucket(Bucket=self.layout.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise BackendUnavailable(f"S3 bucket {self.layout.bucket!r} does not answer: "
                                     f"{exc}") from None

    # -- training ----------------------------------------------------------------------------

    def submit_training(self, spec: TrainingSpec, listener: TrainingListener) -> None:
        """Queue the job; a follower thread creates and follows it."""
        self._jobs.submit(_SageMakerJob(spec, listener))

    def cancel_training(self, job_id: str) -> bool:
        """StopTrainingJob (SageMaker sends SIGTERM, then SIGKILL); drop a queued job."""
        return self._jobs.cancel(job_id)

    def upload_dataset(self, spec: TrainingSpec) -> str:
        """`raw/<retailer>/<dataset_id>.<ext>` (skipped when already there, same size); its URI."""
        key = self.layout.raw_key(spec.retailer, spec.data_path.stem, spec.data_format)
        size = spec.data_path.stat().st_size
        try:
            head = self.clients.s3.head_object(Bucket=self.layout.bucket, Key=key)
            if int(head.get("ContentLength", -1)) == size:
                return self.layout.uri(key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        self.clients.s3.upload_file(str(spec.data_path), self.layout.bucket, key,
                                    ExtraArgs={"ContentType": CONTENT_TYPES[spec.data_format]})
        return self.layout.uri(key)

    def _run(self, job: _SageMakerJob) -> TrainingOutcome:
        spec = job.spec
        name = training.job_name(spec.retailer, spec.job_id)
        handle = _Handle(name)
        if job.launch(lambda: handle) is None:  # type: ignore[arg-type,return-value]
            return job.stopped_outcome()
        job.handle = handle
        request = training.job_request(
            self.settings, self.layout, name=name, retailer=spec.retailer, job_id=spec.job_id,
            data_uri=self.upload_dataset(spec), data_format=spec.data_format,
            hyperparameters=spec.hyperparameters)
        job.listener.on_started(spec.job_id)
        try:
            self.clients.sagemaker.create_training_job(**request)
        except ClientError as exc:
            return TrainingOutcome("failed", failure_reason=(
                f"CreateTrainingJob refused the job: {exc}")[:FAILURE_REASON_CHARS])
        except RuntimeError as exc:  # local mode runs the job inside the call
            if job.stopping:
                return job.stopped_outcome()
            reason = (training.failure_from_output(self.clients.s3, self.layout, spec.retailer,
                                                   name) or f"the training job failed: {exc}")
            return TrainingOutcome("failed", failure_reason=reason[:FAILURE_REASON_CHARS])
        handle.created = True
        log.info("training job created", extra={"fields": {
            "job_id": spec.job_id, "retailer": spec.retailer, "training_job": name}})
        if job.stopping:  # a cancel arrived before the job existed
            self._stop(job, 0)
        end = training.follow(self.clients.sagemaker, name, job.listener, spec.job_id,
                              poll_max_s=self.settings.poll_max_s, wake=handle.wake,
                              should_return=lambda: bool(job.close_reason),
                              first_pause_s=self._first_pause_s)
        if end is None or (job.stopping and end.status != "Completed"):
            return job.stopped_outcome()
        if end.status != "Completed":
            reason = training.outcome_reason(end, cancelled=False)
            if not end.reason:
                reason = training.failure_from_output(
                    self.clients.s3, self.layout, spec.retailer, name) or reason
            return TrainingOutcome("failed", failure_reason=reason[:FAILURE_REASON_CHARS])
        try:
            model_dir = training.fetch_model(self.clients.s3, self.layout, spec.retailer, name,
                                             spec.job_dir / "model")
        except ArtifactError as exc:
            return TrainingOutcome("failed", failure_reason=str(exc)[:FAILURE_REASON_CHARS])
        return TrainingOutcome("succeeded", model_dir=model_dir)

    def _stop(self, job: _SageMakerJob, grace_s: float) -> None:
        """StopTrainingJob, in the background; the follower sees the job end Stopped."""
        handle = job.handle
        if handle is None or not handle.created:
            return  # `_run` stops it once it exists
        if self.clients.local_mode:
            log.warning("local mode cannot stop a running training job; it runs to its end",
                        extra={"fields": {"job_id": job.spec.job_id}})
            return

        def stop() -> None:
            try:
                self.clients.sagemaker.stop_training_job(TrainingJobName=handle.name)
            except (ClientError, BotoCoreError) as exc:
                log.warning("StopTrainingJob failed", extra={"fields": {
                    "job_id": job.spec.job_id, "training_job": handle.name, "error": str(exc)}})
            handle.wake.set()

        threading.Thread(target=stop, name=f"sm-stop-{handle.name[:20]}", daemon=True).start()

    # -- serving -----------------------------------------------------------------------------

    def model_data_url(self, model: ModelRef) -> str:
        """The version's model.tar.gz: where its training job wrote it, or (for an artifact
        made elsewhere) `models/<retailer>/import-<digest>/output/model.tar.gz`, uploaded once."""
        source = training.model_source(model.path)
        if source:
            return source
        files = json.dumps(manifest.compute(model.path), sort_keys=True).encode()
        digest = hashlib.sha256(files).hexdigest()[:16]
        key = self.layout.model_key(model.retailer, f"import-{digest}")
        try:
            self.clients.s3.head_object(Bucket=self.layout.bucket, Key=key)
            return self.layout.uri(key)
        except ClientError:
            pass
        with tempfile.TemporaryDirectory(prefix="sm-model-") as tmp:
            archive = Path(tmp) / "model.tar.gz"
            with tarfile.open(archive, "w:gz") as tar:
                for child in sorted(model.path.iterdir()):
                    tar.add(child, arcname=child.name)
            self.clients.s3.upload_file(str(archive), self.layout.bucket, key)
        return self.layout.uri(key)

    def load_model(self, model: ModelRef) -> None:
        """Deploy the version to its retailer's endpoint; returns once it is InService."""
        if not (model.path / "artifact.json").is_file():
            raise ArtifactError(f"{model.path} holds no model artifact (artifact.json)")
        with self._lock:
            lock = self._deploy_locks.setdefault(model.retailer, threading.Lock())
        with lock:  # one deployment per retailer at a time
            with self._lock:
                current = self._serving.get(model.retailer)
            if current is not None and current[0] == model.path:
                return
            deployed = self._endpoints.deploy(model.retailer, model.version,
                                              self.model_data_url(model))
            with self._lock:
                if current is not None:
                    self._previous[model.retailer] = current
                self._serving[model.retailer] = (model.path, deployed)

    def _endpoint_for(self, model: ModelRef) -> str:
        with self._lock:
            for table in (self._serving, self._previous):
                entry = table.get(model.retailer)
                if entry is not None and entry[0] == model.path:
                    return entry[1].endpoint
            serving = self._serving.get(model.retailer)
        if serving is None:  # after a restart: the live version is deployed on first use
            self.load_model(model)
            return self._endpoint_for(model)
        raise FailedPrecondition(
            f"model version {model.version!r} of {model.retailer!r} is not on the retailer's "
            "SageMaker endpoint, which serves the live version only; make it live first "
            "(SetLiveModel)")

    def predict(self, model: ModelRef, rows: RowColumns) -> np.ndarray:
        """InvokeEndpoint, in payloads under the endpoint's limit, in row order."""
        endpoint = self._endpoint_for(model)
        return invoke.predict(self.clients.runtime, endpoint, rows,
                              limit=self.settings.max_body_bytes,
                              concurrency=self.settings.invoke_concurrency, pool=self._pool,
                              first_pause_s=self._first_pause_s / 2)

    def unload_model(self, model: ModelRef) -> None:
        """Nothing to free: the endpoint already serves the new version; the previous one is
        forgotten once a later version replaces it."""

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self, reason: str) -> None:
        """Stop followed jobs (StopTrainingJob) and fail queued ones. Endpoints keep serving:
        they outlive the gateway, which finds them again after a restart (in local mode they
        are this process's containers and are deleted)."""
        self._jobs.close(reason)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.clients.local_mode:  # local endpoints are containers of this process
            with self._lock:
                endpoints = {d.endpoint for _, d in self._serving.values()}
            for endpoint in endpoints:
                self._endpoints.delete(endpoint)
