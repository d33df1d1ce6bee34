"""Training through the SageMaker Pipeline (`--sagemaker-train-with pipeline`): the clean ->
train -> evaluate -> register pipeline upserted once per gateway process, an execution started
per job and followed to its end. A mixin of `SageMakerBackend`, which gives it its settings,
clients, model registry and the training-job path's shared steps (`_created`, `_send_stop`,
`_fetch`); `Handle` and `failed` are shared by both paths."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from forecast_gateway.backends.base import TrainingOutcome
from forecast_gateway.backends.sagemaker import executions, pipeline
from forecast_gateway.backends.training_queue import QueuedJob
from forecasting.errors import UserError
from forecasting.joblog import FAILURE_REASON_CHARS

if TYPE_CHECKING:
    from forecast_gateway.backends.sagemaker.aws import AwsClients
    from forecast_gateway.backends.sagemaker.model_registry import ModelRegistry
    from forecast_gateway.backends.sagemaker.settings import SageMakerSettings


@dataclass
class Handle:
    """Stands where a process backend keeps its Popen: the job's SageMaker name."""

    name: str
    """The training job's name, or the pipeline execution's ARN."""
    pipeline: bool = False
    stop_requested: bool = False
    stop_sent: bool = False
    wake: threading.Event = field(default_factory=threading.Event)



class PipelineRuns:
    """`_run_pipeline` of `SageMakerBackend` (module docstring)."""

    settings: SageMakerSettings
    clients: AwsClients
    registry: ModelRegistry
    _first_pause_s: float
    _pipeline_lock: threading.Lock
    _pipeline_ready: bool
    _pipeline_definition: str | None
    # The training-job path's steps, which the backend defines.
    _created: Callable[[QueuedJob, Handle], None]
    _send_stop: Callable[[QueuedJob, Handle], None]
    _fetch: Callable[..., TrainingOutcome]

    def _run_pipeline(self, job: QueuedJob, handle: Handle, data_uri: str) -> TrainingOutcome:
        """StartPipelineExecution of the clean -> train -> evaluate -> register pipeline."""
        spec = job.spec
        hp = dict(spec.hyperparameters)
        model_kind = hp.pop("model_kind", None)
        try:
            self._ensure_pipeline()
            group = self.registry.ensure_group(spec.retailer)   # the register step's group
            handle.name = pipeline.start_execution(
                self.clients.sagemaker, self._pipeline_settings().name, retailer=spec.retailer,
                input_uri=data_uri, model_kind=model_kind, hyperparameters=hp,
                display_name=handle.name, model_package_group=group)
        except UserError as exc:
            return failed(f"the pipeline does not take this job: {exc}")
        except ClientError as exc:  # its text names the call: pipeline, group or execution
            return failed(f"the pipeline execution could not start: {exc}")
        self._created(job, handle)
        end = executions.follow(self.clients.sagemaker, handle.name, job.listener, spec.job_id,
                                before_poll=lambda: self._send_stop(job, handle),
                                poll_max_s=self.settings.poll_max_s, wake=handle.wake,
                                should_return=lambda: bool(job.close_reason),
                                first_pause_s=self._first_pause_s)
        if end is None or (job.stopping and end.status != "Succeeded"):
            return job.stopped_outcome()
        if end.status != "Succeeded":
            return failed(end.reason or f"the pipeline execution ended {end.status}")
        if not end.training_job:
            return failed("the pipeline execution succeeded without a training job")
        return self._fetch(spec, end.training_job, end.model_package)

    def _pipeline_settings(self) -> pipeline.PipelineSettings:
        s = self.settings
        return pipeline.PipelineSettings(
            role_arn=s.role_arn, training_image=s.training_image,
            inference_image=s.inference_image, bucket=s.bucket, prefix=s.prefix,
            region=self.clients.sagemaker.meta.region_name,
            processing_instance_type=s.instance_type, training_instance_type=s.instance_type,
            training_instance_count=s.instance_count, volume_size_gb=s.volume_size_gb,
            max_runtime_s=s.max_runtime_s)

    def _ensure_pipeline(self) -> None:
        """CreatePipeline/UpdatePipeline once per gateway process, before the first execution."""
        with self._pipeline_lock:
            if self._pipeline_ready:
                return
            pipeline.upsert_pipeline(self.clients.sagemaker, self._pipeline_settings(),
                                     definition=self._pipeline_definition)
            self._pipeline_ready = True


def failed(reason: str) -> TrainingOutcome:
    """A failed outcome with `reason`, cut to what a job record keeps."""
    return TrainingOutcome("failed", failure_reason=reason[:FAILURE_REASON_CHARS])
