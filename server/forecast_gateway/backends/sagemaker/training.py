"""One SageMaker training job, from request to extracted model: `job_request` builds the
CreateTrainingJob request, `follow` polls DescribeTrainingJob on a backoff and reports what it
sees, `fetch_model` downloads `model.tar.gz` from the layout and extracts it safely.

Status mapping (`follow`):

| TrainingJobStatus | SecondaryStatus         | gateway                                        |
| ----------------- | ----------------------- | ---------------------------------------------- |
| InProgress        | Starting ... Uploading  | RUNNING; stage `sagemaker_<secondary>`         |
| Completed         | Completed               | model.tar.gz fetched, checked, then SUCCEEDED  |
| Failed            | Failed                  | FAILED, FailureReason as the reason            |
| Stopped           | Stopped (after a cancel)| CANCELLED                                      |
| Stopped           | MaxRuntimeExceeded, ... | FAILED, naming the secondary status            |

Metrics: the MetricDefinitions regexes read the `<member>.test.<metric>=<value>` lines `train`
prints (`forecasting.joblog`); SageMaker reports them in FinalMetricDataList, which `follow`
forwards as metric events.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from forecast_gateway.backends.base import CONTENT_TYPES, TrainingListener
from forecast_gateway.backends.sagemaker.layout import S3Layout
from forecast_gateway.backends.sagemaker.settings import SageMakerSettings
from forecasting import artifact
from forecasting.container.env import TRAIN_CHANNEL
from forecasting.errors import ArtifactError
from forecasting.hyperparameters import MODEL_KINDS
from forecasting.intervals import REPORTED_LEVELS
from forecasting.joblog import FAILURE_REASON_CHARS
from forecasting.metrics import METRICS

#: Written next to the extracted artifact: where its model.tar.gz lives, so serving needs no
#: second upload.
SOURCE_FILE = "sagemaker_model.json"

#: SecondaryStatus -> a coarse fraction (progress only moves forward).
_FRACTIONS = {"Starting": 0.0, "Pending": 0.0, "LaunchingMLInstances": 0.02,
              "PreparingTrainingStack": 0.04, "Downloading": 0.06, "DownloadingTrainingImage": 0.08,
              "Training": 0.10, "Uploading": 0.95, "Completed": 1.0}
_TERMINAL = ("Completed", "Failed", "Stopped")
#: Transient DescribeTrainingJob errors tolerated in a row before the job is given up.
_MAX_DESCRIBE_ERRORS = 8
_NAME_RE = re.compile(r"[^a-zA-Z0-9-]+")


def job_name(retailer: str, job_id: str) -> str:
    """The training job's name: the retailer and the gateway's job id, in SageMaker's alphabet
    (`[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`)."""
    base = _NAME_RE.sub("-", retailer)[:40].strip("-") or "retailer"
    return f"{base}-{_NAME_RE.sub('-', job_id)}"[:63].strip("-")


def metric_definitions() -> list[dict[str, str]]:
    """MetricDefinitions reading every `<member>.test.<metric>=<value>` line `train` prints:
    the scores of each member and the baseline, and the final model's interval coverage
    (`xgboost.test.coverage_80`); 29 of SageMaker's 40."""
    scores = [(member, metric) for member in (*MODEL_KINDS, "baseline") for metric in METRICS]
    coverage = [(member, f"coverage_{level:g}") for member in MODEL_KINDS
                for level in REPORTED_LEVELS]
    return [{"Name": f"{member}.test.{metric}",
             "Regex": rf"{member}\.test\.{metric}=([-+0-9.eE]+|nan|inf|-inf)"}
            for member, metric in scores + coverage]


def data_distribution(instance_type: str, instance_count: int) -> str:
    """The training channel's S3DataDistributionType: `ShardedByS3Key` on several instances,
    so each downloads only its shards; `FullyReplicated` on one, and in local mode, which
    refuses anything else (each container then takes the shard of its rank, docs/scaling.md)."""
    if instance_count > 1 and not instance_type.startswith("local"):
        return "ShardedByS3Key"
    return "FullyReplicated"


def job_request(settings: SageMakerSettings, layout: S3Layout, *, name: str, retailer: str,
                job_id: str, data_uri: str, data_format: str,
                hyperparameters: Mapping[str, str]) -> dict[str, Any]:
    """The CreateTrainingJob request (File mode, the `train` channel, output under
    `models/<retailer>/`, string hyperparameters, metric regexes, a stopping condition, tags)."""
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": settings.training_image,
            "TrainingInputMode": "File",
            "MetricDefinitions": metric_definitions(),
        },
        "RoleArn": settings.role_arn,
        "HyperParameters": {str(k): str(v) for k, v in hyperparameters.items()},
        "InputDataConfig": [{
            "ChannelName": TRAIN_CHANNEL,
            "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": data_uri,
                "S3DataDistributionType": data_distribution(settings.instance_type,
                                                            settings.instance_count)}},
            "ContentType": CONTENT_TYPES[data_format],
            "CompressionType": "None",
            "InputMode": "File",
        }],
        "OutputDataConfig": {"S3OutputPath": layout.uri(layout.models_prefix(retailer))},
        "ResourceConfig": {"InstanceType": settings.instance_type,
                           "InstanceCount": settings.instance_count,
                           "VolumeSizeInGB": settings.volume_size_gb},
        "StoppingCondition": {"MaxRuntimeInSeconds": settings.max_runtime_s},
        "Tags": [{"Key": "retailer", "Value": retailer},
                 {"Key": "forecast-gateway-job", "Value": job_id}],
    }


@dataclass
class JobEnd:
    """How `follow` saw the job end."""

    status: str
    """Completed, Failed or Stopped."""
    secondary: str = ""
    reason: str = ""


def stage_name(secondary: str) -> str:
    """`LaunchingMLInstances` -> `sagemaker_launching_ml_instances`."""
    words = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", secondary).lower()
    return f"sagemaker_{words}"


def follow(sagemaker: Any, name: str, listener: TrainingListener, job_id: str, *,
           poll_max_s: float, wake: threading.Event, should_return: Callable[[], bool],
           before_poll: Callable[[], None] = lambda: None,
           first_pause_s: float = 1.0) -> JobEnd | None:
    """DescribeTrainingJob until the job is terminal, pausing 1 s, then 1.5x longer each time
    up to `poll_max_s` (`wake` cuts a pause short). Reports stages, progress and the final
    metrics. Returns None when `should_return()` says to stop following (the gateway closes)."""
    pause, reached, stage, errors = first_pause_s, -1.0, "", 0
    while True:
        before_poll()
        try:
            desc = sagemaker.describe_training_job(TrainingJobName=name)
            errors = 0
        except (ClientError, BotoCoreError) as exc:
            errors += 1
            if errors >= _MAX_DESCRIBE_ERRORS:
                return JobEnd("Failed", reason=f"DescribeTrainingJob kept failing: {exc}")
            desc = {}
        status = str(desc.get("TrainingJobStatus", ""))
        secondary = str(desc.get("SecondaryStatus") or status)
        if secondary and secondary != stage and status:
            stage = secondary
            fraction = _FRACTIONS.get(secondary, reached)
            reached = max(reached, fraction)
            listener.on_progress(job_id, stage_name(secondary), max(reached, 0.0))
        if status in _TERMINAL:
            for metric in desc.get("FinalMetricDataList") or []:
                listener.on_metric(job_id, str(metric["MetricName"]), float(metric["Value"]))
            return JobEnd(status, secondary, str(desc.get("FailureReason") or ""))
        if should_return():
            return None
        wake.wait(pause)
        wake.clear()
        pause = min(poll_max_s, pause * 1.5)


def outcome_reason(end: JobEnd, cancelled: bool) -> str:
    """The reason a failed or stopped job reports (FailureReason first)."""
    if end.reason:
        return end.reason[:FAILURE_REASON_CHARS]
    if end.status == "Stopped" and not cancelled:
        return (f"the training job was stopped ({end.secondary or 'Stopped'}) outside the "
                "gateway")[:FAILURE_REASON_CHARS]
    return f"the training job ended {end.status} ({end.secondary or 'no detail'})"


def failure_from_output(s3: Any, layout: S3Layout, retailer: str, name: str) -> str:
    """The failure file inside `<job>/output/output.tar.gz`, when the platform left it there
    and reported no reason of its own (local mode); "" when there is none."""
    key = layout.key("models", retailer, name, "output", "output.tar.gz")
    try:
        body = s3.get_object(Bucket=layout.bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            member = tar.extractfile("failure")
            if member is None:
                return ""
            return member.read(FAILURE_REASON_CHARS).decode(errors="replace").strip()
    except (ClientError, BotoCoreError, tarfile.TarError, KeyError, OSError):
        return ""


def fetch_model(s3: Any, layout: S3Layout, retailer: str, name: str, dest: Path) -> Path:
    """Download `models/<retailer>/<name>/output/model.tar.gz`, extract it into `dest` (only
    regular files and directories, nothing outside `dest`), check it as a local artifact is
    checked, and note its S3 URI in `dest/SOURCE_FILE`. ArtifactError when any step fails."""
    key = layout.model_key(retailer, name)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    archive = dest.parent / f"{dest.name}.tar.gz"
    try:
        s3.download_file(layout.bucket, key, str(archive))
    except ClientError as exc:
        raise ArtifactError(f"the training job wrote no model at {layout.uri(key)} "
                            f"({exc.response.get('Error', {}).get('Code', exc)})") from None
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                if not (member.isfile() or member.isdir()):
                    raise ArtifactError(f"model.tar.gz holds {member.name!r}, which is not a "
                                        "regular file or directory")
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArtifactError(f"{layout.uri(key)} is not a readable model.tar.gz: {exc}") from None
    finally:
        archive.unlink(missing_ok=True)
    artifact.check(dest)
    (dest / SOURCE_FILE).write_text(json.dumps(
        {"model_data_url": layout.uri(key), "training_job": name}, indent=2))
    return dest


def model_source(model_dir: Path) -> str:
    """The model.tar.gz URI `fetch_model` noted, or "" for an artifact made elsewhere."""
    path = Path(model_dir) / SOURCE_FILE
    try:
        return str(json.loads(path.read_text())["model_data_url"])
    except (OSError, ValueError, KeyError):
        return ""

