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

import logging
import tarfile
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from forecast_gateway.backends.base import (
    CONTENT_TYPES,
    Backend,
    TrainingListener,
    TrainingOutcome,
    TrainingSpec,
)
from forecast_gateway.backends.sagemaker import invoke, shards, training
from forecast_gateway.backends.sagemaker.aws import AwsClients, create_clients
from forecast_gateway.backends.sagemaker.endpoints import Deployment, Endpoints
from forecast_gateway.backends.sagemaker.guardrails import Guardrails
from forecast_gateway.backends.sagemaker.layout import S3Layout
from forecast_gateway.backends.sagemaker.model_registry import ModelRegistry
from forecast_gateway.backends.sagemaker.pipeline_runs import Handle, PipelineRuns, failed
from forecast_gateway.backends.sagemaker.settings import SageMakerSettings
from forecast_gateway.backends.sagemaker.shadow_endpoint import ShadowEndpoint
from forecast_gateway.backends.training_queue import QueuedJob, TrainingQueue
from forecast_gateway.config import GatewayConfig
from forecast_gateway.domain import ModelRef, ModelVersion, RowColumns
from forecast_gateway.errors import BackendUnavailable, FailedPrecondition
from forecast_gateway.store import manifest
from forecasting.errors import ArtifactError, UserError

log = logging.getLogger("forecast_gateway.backends.sagemaker")


@dataclass(eq=False)
class _SageMakerJob(QueuedJob):
    handle: Handle | None = None


class SageMakerBackend(ShadowEndpoint, PipelineRuns, Backend):
    """Training jobs and endpoints on SageMaker. See the module docstring."""

    name = "sagemaker"

    def __init__(self, settings: SageMakerSettings, clients: AwsClients, *,
                 cancel_grace_s: float = 120.0, first_pause_s: float = 1.0,
                 pipeline_definition: str | None = None):
        """`pipeline_definition`: the pipeline's definition JSON (as `make pipeline` writes it);
        None builds it with the SageMaker SDK before the first pipeline execution."""
        self.settings = settings
        self.clients = clients
        self.layout = S3Layout(settings.bucket, settings.prefix)
        self._first_pause_s = first_pause_s
        guarded = None
        if settings.guardrails is not None:
            if clients.cloudwatch is None:
                raise ValueError("guarded endpoint updates need a cloudwatch client (its alarms)")
            guarded = Guardrails(clients.cloudwatch, settings.guardrails)
        self._endpoints = Endpoints(clients.sagemaker, settings, first_pause_s=first_pause_s,
                                    guardrails=guarded)
        self._lock = threading.Lock()
        self._serving: dict[str, tuple[Path, Deployment]] = {}   # retailer -> live version
        self._previous: dict[str, tuple[Path, Deployment]] = {}  # the version it replaced
        self._shadows: dict[str, tuple[Path, Deployment]] = {}   # retailer -> version in shadow
        self._deploy_locks: dict[str, threading.Lock] = {}
        self._available_until = 0.0
        self._pipeline_lock = threading.Lock()
        self._pipeline_ready = False
        self._pipeline_definition = pipeline_definition
        self.registry = ModelRegistry(clients.sagemaker, clients.s3, settings, self.layout)
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
        """The bucket answers (HeadBucket, cached for 10 s); BackendUnavailable otherwise."""
        if time.monotonic() < self._available_until:
            return
        try:
            self.clients.s3.head_bucket(Bucket=self.layout.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise BackendUnavailable(f"S3 bucket {self.layout.bucket!r} does not answer: "
                                     f"{exc}") from None
        self._available_until = time.monotonic() + 10.0

    # -- training ----------------------------------------------------------------------------

    def submit_training(self, spec: TrainingSpec, listener: TrainingListener) -> None:
        """Queue the job; a follower thread creates and follows it."""
        self._jobs.submit(_SageMakerJob(spec, listener))

    def training_capacity(self) -> int:
        """Free slots of its training queue."""
        return self._jobs.free_slots()

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
        pipelined = self.settings.train_with == "pipeline"
        handle = Handle(training.job_name(spec.retailer, spec.job_id), pipeline=pipelined)
        if job.launch(lambda: handle) is None:  # type: ignore[arg-type,return-value]
            return job.stopped_outcome()
        job.handle = handle
        try:
            data_uri = self.upload_dataset(spec)
        except (ClientError, BotoCoreError, OSError) as exc:
            return failed(f"uploading the dataset to s3://{self.layout.bucket} failed: {exc}")
        job.listener.on_started(spec.job_id)
        if pipelined:
            return self._run_pipeline(job, handle, data_uri)
        data_format = spec.data_format
        if self.settings.instance_count > 1:   # whole series per instance (docs/scaling.md)
            try:
                data_uri, data_format = shards.upload_shards(
                    self.clients.s3, self.layout, spec.retailer, spec.data_path,
                    self.settings.instance_count), "parquet"
            except UserError as exc:
                return failed(str(exc))
            except (ClientError, BotoCoreError, OSError) as exc:
                return failed(f"uploading the dataset's shards failed: {exc}")
        request = training.job_request(
            self.settings, self.layout, name=handle.name, retailer=spec.retailer,
            job_id=spec.job_id, data_uri=data_uri, data_format=data_format,
            hyperparameters=spec.hyperparameters)
        try:
            self.clients.sagemaker.create_training_job(**request)
        except ClientError as exc:
            return failed(f"CreateTrainingJob refused the job: {exc}")
        except RuntimeError as exc:  # local mode runs the job inside the call
            if job.stopping:
                return job.stopped_outcome()
            return failed(training.failure_from_output(
                self.clients.s3, self.layout, spec.retailer, handle.name)
                or f"the training job failed: {exc}")
        self._created(job, handle)
        end = training.follow(self.clients.sagemaker, handle.name, job.listener, spec.job_id,
                              before_poll=lambda: self._send_stop(job, handle),
                              poll_max_s=self.settings.poll_max_s, wake=handle.wake,
                              should_return=lambda: bool(job.close_reason),
                              first_pause_s=self._first_pause_s)
        if end is None or (job.stopping and end.status != "Completed"):
            return job.stopped_outcome()
        if end.status != "Completed":
            return failed(end.reason or training.failure_from_output(
                self.clients.s3, self.layout, spec.retailer, handle.name)
                or training.outcome_reason(end, cancelled=False))
        return self._fetch(spec, handle.name)

    def _created(self, job: _SageMakerJob, handle: Handle) -> None:
        log.info("training started", extra={"fields": {
            "job_id": job.spec.job_id, "retailer": job.spec.retailer, "sagemaker": handle.name}})
        if job.stopping:  # a cancel or close arrived before the job existed
            handle.stop_requested = True

    def _fetch(self, spec: TrainingSpec, training_job: str, package: str = "") -> TrainingOutcome:
        """model.tar.gz, checked; its model package (the pipeline's, or one made now)."""
        try:
            model_dir = training.fetch_model(self.clients.s3, self.layout, spec.retailer,
                                             training_job, spec.job_dir / "model")
        except ArtifactError as exc:
            return failed(str(exc))
        if not self.clients.local_mode:  # local mode has no Model Registry
            self.registry.record_trained(spec.retailer, training_job, model_dir,
                                         training.model_source(model_dir), package)
        return TrainingOutcome("succeeded", model_dir=model_dir)

    def _stop(self, job: _SageMakerJob, grace_s: float) -> None:
        """Ask the follower to stop the job: it sends StopTrainingJob (StopPipelineExecution)
        before its next Describe, so one thread speaks for the job, in order."""
        handle = job.handle
        if handle is None:
            return
        if self.clients.local_mode:
            log.warning("local mode cannot stop a running training job; it runs to its end",
                        extra={"fields": {"job_id": job.spec.job_id}})
            return
        handle.stop_requested = True
        handle.wake.set()

    def _send_stop(self, job: _SageMakerJob, handle: Handle) -> None:
        """Called by the follower before each poll: the stop, once, when one was asked for."""
        if not handle.stop_requested or handle.stop_sent:
            return
        handle.stop_sent = True
        try:
            if handle.pipeline:
                self.clients.sagemaker.stop_pipeline_execution(PipelineExecutionArn=handle.name)
            else:
                self.clients.sagemaker.stop_training_job(TrainingJobName=handle.name)
        except (ClientError, BotoCoreError) as exc:
            log.warning("stopping the training failed", extra={"fields": {
                "job_id": job.spec.job_id, "sagemaker": handle.name, "error": str(exc)}})

    # -- serving -----------------------------------------------------------------------------

    def model_data_url(self, model: ModelRef) -> str:
        """The version's model.tar.gz: where its training job wrote it, or (for an artifact
        made elsewhere) `models/<retailer>/import-<digest>/output/model.tar.gz`, uploaded once."""
        source = training.model_source(model.path)
        if source:
            return source
        digest = manifest.digest(manifest.compute(model.path))[:16]
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
            for table in (self._serving, self._previous, self._shadows):
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
        return self.predict_intervals(model, rows, ())[0]

    def predict_intervals(self, model: ModelRef, rows: RowColumns, levels: Sequence[float],
                          ) -> tuple[np.ndarray, dict[float, tuple[np.ndarray, np.ndarray]]]:
        """As `predict`, with the bounds per level: the endpoint runs the same inference
        container as the docker backend, which computes them (a JSON body with `"levels"`)."""
        endpoint = self._endpoint_for(model)
        return invoke.predict(self.clients.runtime, endpoint, rows,
                              limit=self.settings.max_body_bytes,
                              concurrency=self.settings.invoke_concurrency, pool=self._pool,
                              levels=levels, first_pause_s=self._first_pause_s / 2)

    def version_registered(self, model: ModelVersion) -> None:
        """Name the version on its model package; Approved when the gate made it live."""
        if model.promotion is not None and not self.clients.local_mode:
            self.registry.version_registered(model.retailer, model.version, model.path,
                                             model.promotion.promoted, model.promotion.reason)

    def set_approval(self, model: ModelRef, approval: str, description: str) -> str:
        """UpdateModelPackage of the version's package (made first if it has none)."""
        if self.clients.local_mode:
            raise FailedPrecondition("SageMaker local mode has no Model Registry")
        return self.registry.set_approval(model.retailer, model.version, model.path,
                                          self.model_data_url(model), approval, description)

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

