"""The pipeline path of Train (`--sagemaker-train-with pipeline`): one execution of the
clean -> train -> evaluate -> register pipeline (`pipeline`, docs/sagemaker_pipeline.md) per
gateway job, followed like a training job.

`follow` polls DescribePipelineExecution on a backoff and ListPipelineExecutionSteps for the
stage (`pipeline_<step>`, e.g. `pipeline_train`) and for what the steps made: the Train step's
training job (whose model.tar.gz is the version) and the reason a step failed (a Fail step's
ErrorMessage names the model's and the baseline's RMSLE). Cancel is StopPipelineExecution.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from forecast_gateway.backends.base import TrainingListener
from forecast_gateway.backends.sagemaker import pipeline
from forecast_gateway.backends.sagemaker.training import stage_name

_TERMINAL = ("Succeeded", "Failed", "Stopped")
#: The step running -> a coarse fraction (progress only moves forward).
_FRACTIONS = {pipeline.CLEAN_STEP: 0.02, pipeline.TRAIN_STEP: 0.15, pipeline.EVALUATE_STEP: 0.8,
              pipeline.CHECK_STEP: 0.9, pipeline.REGISTER_STEP: 0.95, pipeline.PACKAGE_STEP: 0.97,
              pipeline.FAIL_STEP: 0.95}
_MAX_ERRORS = 8


@dataclass
class ExecutionEnd:
    """How an execution ended."""

    status: str
    """Succeeded, Failed or Stopped."""
    training_job: str = ""
    """The Train step's training job name ("" when it never ran)."""
    reason: str = ""
    model_package: str = ""
    """The model package ARN the register step made ("" when it did not run)."""


def _steps(sagemaker: Any, arn: str) -> list[dict]:
    """The execution's steps, newest first (every page)."""
    steps: list[dict] = []
    kwargs: dict[str, Any] = {"PipelineExecutionArn": arn, "SortOrder": "Descending"}
    while True:
        page = sagemaker.list_pipeline_execution_steps(**kwargs)
        steps += page.get("PipelineExecutionSteps", [])
        if not page.get("NextToken"):
            return steps
        kwargs["NextToken"] = page["NextToken"]


def training_job_of(steps: list[dict]) -> str:
    """The training job a step of the execution ran ("" when none did)."""
    for step in steps:
        arn = (step.get("Metadata") or {}).get("TrainingJob", {}).get("Arn", "")
        if arn:
            return str(arn).rsplit("/", 1)[-1]
    return ""


def model_package_of(steps: list[dict]) -> str:
    """The model package a RegisterModel step of the execution made ("" when none did)."""
    for step in steps:
        arn = (step.get("Metadata") or {}).get("RegisterModel", {}).get("Arn", "")
        if arn:
            return str(arn)
    return ""


def failure_of(steps: list[dict]) -> str:
    """Why the execution failed, as its steps say: a Fail step's message first."""
    for step in steps:
        message = (step.get("Metadata") or {}).get("Fail", {}).get("ErrorMessage")
        if message:
            return f"{step.get('StepName', 'Fail')}: {message}"
    for step in steps:
        if step.get("StepStatus") == "Failed" and step.get("FailureReason"):
            return f"{step.get('StepName', 'a step')}: {step['FailureReason']}"
    return ""


def follow(sagemaker: Any, arn: str, listener: TrainingListener, job_id: str, *,
           poll_max_s: float, wake: threading.Event, should_return: Callable[[], bool],
           before_poll: Callable[[], None] = lambda: None,
           first_pause_s: float = 1.0) -> ExecutionEnd | None:
    """Poll the execution until it ends (None when `should_return()` says stop following)."""
    pause, stage, errors, reached = first_pause_s, "", 0, 0.0
    while True:
        before_poll()
        try:
            desc = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
            steps = _steps(sagemaker, arn)
            errors = 0
        except (ClientError, BotoCoreError) as exc:
            errors += 1
            if errors >= _MAX_ERRORS:
                return ExecutionEnd("Failed", reason=f"DescribePipelineExecution kept failing: "
                                                     f"{exc}")
            desc, steps = {}, []
        status = str(desc.get("PipelineExecutionStatus", ""))
        if steps and steps[0].get("StepName") and steps[0]["StepName"] != stage:
            stage = str(steps[0]["StepName"])
            reached = max(reached, _FRACTIONS.get(stage, reached))
            # A ModelStep's sub-step "ModelPackage-RegisterModel" is stage pipeline_model_package.
            listener.on_progress(job_id, stage_name(stage.split("-")[0]).replace(
                "sagemaker_", "pipeline_"), reached)
        if status in _TERMINAL:
            reason = failure_of(steps) or str(desc.get("FailureReason") or "")
            return ExecutionEnd(status, training_job_of(steps), reason, model_package_of(steps))
        if should_return():
            return None
        wake.wait(pause)
        wake.clear()
        pause = min(poll_max_s, pause * 1.5)
