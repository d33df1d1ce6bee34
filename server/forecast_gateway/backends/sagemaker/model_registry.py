"""The SageMaker Model Registry: one model package group per retailer (`forecast-<retailer>`),
one model package per trained version, with its test metrics and an approval status.

- When training ends, the version's package exists: the pipeline's register step made it
  (`--sagemaker-train-with pipeline`; its ARN comes from the execution's steps), or
  `record_trained` makes it (CreateModelPackage: the inference image and model.tar.gz, the
  evaluation as ModelMetrics, the headline metrics as CustomerMetadataProperties), always as
  `PendingManualApproval`. Its ARN is noted beside the artifact (`PACKAGE_FILE`), which travels
  with the version.
- When the gateway registers the version, `version_registered` names the version on the
  package and approves it if the promotion gate made it live.
- `set_approval` (SetModelApproval, `forecast approve` / `reject`) changes it later; a version
  whose package could not be made at training time gets one then.

The registry is bookkeeping beside serving: a registry call that fails while training is logged
and the version is still published.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from forecast_gateway.backends.base import APPROVALS
from forecast_gateway.backends.sagemaker.layout import S3Layout
from forecast_gateway.backends.sagemaker.settings import SageMakerSettings
from forecast_gateway.errors import BackendUnavailable

log = logging.getLogger("forecast_gateway.backends.sagemaker")

PENDING, APPROVED, REJECTED = APPROVALS
#: Beside the artifact's files: the ARN of the version's model package.
PACKAGE_FILE = "sagemaker_model_package.json"
#: Content types the inference container reads and answers (docs/containers.md).
CONTENT_TYPES = ["text/csv", "application/json"]
_NAME_RE = re.compile(r"[^a-zA-Z0-9]+")
#: The final model's test metrics copied onto the package.
_METRICS = ("rmsle", "rmse", "mae", "wape", "mase")


def group_name(retailer: str) -> str:
    """The retailer's model package group (SageMaker's alphabet: letters, digits, '-')."""
    return f"forecast-{_NAME_RE.sub('-', retailer).strip('-')[:50] or 'x'}"


def noted(model_dir: Path) -> str:
    """The package ARN noted beside an artifact, or ""."""
    try:
        return str(json.loads((Path(model_dir) / PACKAGE_FILE).read_text())["model_package_arn"])
    except (OSError, ValueError, KeyError):
        return ""


def note(model_dir: Path, arn: str) -> None:
    """Note the version's package ARN beside its artifact."""
    (Path(model_dir) / PACKAGE_FILE).write_text(json.dumps({"model_package_arn": arn}) + "\n")


def _metadata(evaluation: dict, **extra: str) -> dict[str, str]:
    """The evaluation's headline numbers (the final model's test metrics, the baseline's
    RMSLE), for the registry's list and search; the whole report is the package's ModelMetrics."""
    final = str(evaluation.get("final_model") or "")
    overall = ((evaluation.get("models") or {}).get(final) or {}).get("overall") or {}
    values = {f"test_{k}": f"{float(overall[k]):.6g}" for k in _METRICS
              if isinstance(overall.get(k), (int, float))}
    baseline = ((evaluation.get("baseline") or {}).get("overall") or {}).get("rmsle")
    if isinstance(baseline, (int, float)):
        values["baseline_test_rmsle"] = f"{float(baseline):.6g}"
    if final:
        values["final_model"] = final
    for key in ("test_start", "test_end"):
        if evaluation.get(key):
            values[key] = str(evaluation[key])[:10]
    values.update({k: v for k, v in extra.items() if v})
    return values


class ModelRegistry:
    """The retailer groups and version packages, through one sagemaker and one s3 client."""

    def __init__(self, sagemaker: Any, s3: Any, settings: SageMakerSettings, layout: S3Layout):
        self._sm = sagemaker
        self._s3 = s3
        self._settings = settings
        self._layout = layout
        self._groups: set[str] = set()

    def ensure_group(self, retailer: str) -> str:
        """CreateModelPackageGroup once per retailer (an existing group is kept)."""
        name = group_name(retailer)
        if name in self._groups:
            return name
        try:
            self._sm.create_model_package_group(
                ModelPackageGroupName=name, Tags=[{"Key": "retailer", "Value": retailer}],
                ModelPackageGroupDescription=f"forecast model versions of retailer {retailer}"[:1024])
        except ClientError as exc:
            message = str(exc.response.get("Error", {}).get("Message", "")).lower()
            if "already exist" not in message:
                raise
        self._groups.add(name)
        return name

    def create(self, retailer: str, run: str, model_dir: Path, model_data_url: str,
               status: str = PENDING, **metadata: str) -> str:
        """CreateModelPackage for the artifact in `model_dir` (its evaluation.json uploaded to
        `evaluation/<retailer>/<run>/`); returns its ARN."""
        evaluation_path = Path(model_dir) / "evaluation.json"
        evaluation = json.loads(evaluation_path.read_text()) if evaluation_path.is_file() else {}
        request: dict[str, Any] = {
            "ModelPackageGroupName": self.ensure_group(retailer),
            "ModelPackageDescription": f"retailer {retailer}, training run {run}"[:1024],
            "ModelApprovalStatus": status,
            "InferenceSpecification": {
                "Containers": [{"Image": self._settings.inference_image,
                                "ModelDataUrl": model_data_url}],
                "SupportedContentTypes": CONTENT_TYPES,
                "SupportedResponseMIMETypes": ["text/csv", "application/json"]},
            "CustomerMetadataProperties": _metadata(evaluation, retailer=retailer, run=run,
                                                    **metadata),
        }
        if evaluation:
            key = self._layout.evaluation_key(retailer, run)
            self._s3.upload_file(str(evaluation_path), self._layout.bucket, key,
                                 ExtraArgs={"ContentType": "application/json"})
            request["ModelMetrics"] = {"ModelQuality": {"Statistics": {
                "ContentType": "application/json", "S3Uri": self._layout.uri(key)}}}
        return str(self._sm.create_model_package(**request)["ModelPackageArn"])

    def record_trained(self, retailer: str, run: str, model_dir: Path, model_data_url: str,
                       package_arn: str = "") -> str:
        """After training: note the pipeline's package (`package_arn`), or make one; "" when
        the registry could not be written (logged: the version is still published)."""
        try:
            arn = package_arn or self.create(retailer, run, model_dir, model_data_url)
            note(model_dir, arn)   # before the gateway publishes it: the file travels with it
            return arn
        except (ClientError, BotoCoreError, OSError, ValueError) as exc:
            log.warning("the model package could not be written; SetModelApproval makes it later",
                        extra={"fields": {"retailer": retailer, "run": run, "error": str(exc)}})
            return ""

    def update(self, arn: str, status: str, description: str = "", **metadata: str) -> None:
        """UpdateModelPackage: the approval status (and why), and extra metadata."""
        request: dict[str, Any] = {"ModelPackageArn": arn, "ModelApprovalStatus": status}
        if description:
            request["ApprovalDescription"] = description[:1000]
        # Always the whole map: SageMaker merges the keys sent, moto replaces (or drops) it.
        described = self._sm.describe_model_package(ModelPackageName=arn)
        merged = {**(described.get("CustomerMetadataProperties") or {}), **metadata}
        if merged:
            request["CustomerMetadataProperties"] = merged
        self._sm.update_model_package(**request)

    def version_registered(self, retailer: str, version: str, model_dir: Path,
                           promoted: bool, reason: str) -> None:
        """Name the version on its package, approved when the gate made it live (logged when
        the registry cannot be written)."""
        arn = noted(model_dir)
        if not arn:
            return
        try:
            self.update(arn, APPROVED if promoted else PENDING,
                        f"promotion gate: {reason}" if reason else "", **{"model-version": version})
        except (ClientError, BotoCoreError) as exc:
            log.warning("the model package's approval could not be set", extra={"fields": {
                "retailer": retailer, "model_version": version, "error": str(exc)}})

    def set_approval(self, retailer: str, version: str, model_dir: Path, model_data_url: str,
                     status: str, description: str) -> str:
        """Set a version's approval (making its package first if it has none); its ARN."""
        if status not in APPROVALS:
            raise ValueError(f"approval must be one of {', '.join(APPROVALS)}, got {status!r}")
        try:
            arn = noted(model_dir) or self.find(retailer, version)
            if not arn:  # a published artifact is never written to: found by its metadata later
                arn = self.create(retailer, f"version-{version}", model_dir, model_data_url,
                                  status, **{"model-version": version})
            self.update(arn, status, description)
        except (ClientError, BotoCoreError) as exc:
            raise BackendUnavailable(f"the SageMaker Model Registry did not take the approval of "
                                     f"{retailer} {version}: {exc}") from None
        return arn

    def find(self, retailer: str, version: str) -> str:
        """The package whose metadata names `version` in the retailer's group, newest first;
        "" when there is none (or no group yet)."""
        kwargs: dict[str, Any] = {"ModelPackageGroupName": group_name(retailer),
                                  "SortBy": "CreationTime", "SortOrder": "Descending"}
        while True:
            try:
                page = self._sm.list_model_packages(**kwargs)
            except ClientError:
                return ""   # no group: no package either
            for summary in page.get("ModelPackageSummaryList", []):
                arn = str(summary["ModelPackageArn"])
                described = self._sm.describe_model_package(ModelPackageName=arn)
                if (described.get("CustomerMetadataProperties") or {}).get(
                        "model-version") == version:
                    return arn
            if not page.get("NextToken"):
                return ""
            kwargs["NextToken"] = page["NextToken"]

    def status(self, arn: str) -> str:
        """The package's ModelApprovalStatus."""
        return str(self._sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"])

