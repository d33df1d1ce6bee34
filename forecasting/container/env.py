"""Paths and environment variables of the SageMaker container contract, read once at start-up.

SageMaker sets no SM_* variables for BYO images (those come from AWS's optional toolkit), so
everything here is either a fixed /opt/ml path or a documented hosting variable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from forecasting.errors import PlatformError, UserError

OPT_ML_VAR = "OPT_ML"                       # ours: moves /opt/ml for tests
DEFAULT_OPT_ML = "/opt/ml"
PORT_VAR = "SAGEMAKER_BIND_TO_PORT"
DEFAULT_PORT = 8080
WORKERS_VAR = "SAGEMAKER_MODEL_SERVER_WORKERS"
TIMEOUT_VAR = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
DEFAULT_TIMEOUT = 60
HOST_VAR = "FORECAST_SERVE_HOST"            # ours: the images set 0.0.0.0
DEFAULT_HOST = "127.0.0.1"
MAX_BODY_BYTES = 6 * 1024 * 1024            # SageMaker's real-time payload limit
TRAIN_CHANNEL = "train"
VALIDATION_CHANNEL = "validation"
# SageMaker Processing (the pipeline's clean and evaluate steps): inputs are downloaded under
# <root>/input/<name>, outputs written under <root>/output/<name> are uploaded. The root is
# /opt/ml/processing, moved with OPT_ML like the training tree.
PROCESSING_DIR = "processing"
RAW_INPUT = "raw"                           # clean: the raw upload (csv or parquet files)
MODEL_INPUT = "model"                       # evaluate: model.tar.gz or the extracted model
TEST_INPUT = "test"                         # evaluate: the test split
SPLITS = ("train", "validation", "test")    # clean: one output each, <split>/<split>.parquet
REPORT_OUTPUT = "report"                    # clean: cleaning_report.json
EVALUATION_OUTPUT = "evaluation"            # evaluate: evaluation.json
CLEANING_REPORT_FILE = "cleaning_report.json"
EVALUATION_FILE = "evaluation.json"
MODEL_ARCHIVE = "model.tar.gz"
SUPPORTED_CONTENT_TYPES = ("text/csv", "application/x-parquet", "application/vnd.apache.parquet",
                           "application/octet-stream")


def opt_ml_root() -> Path:
    return Path(os.environ.get(OPT_ML_VAR, DEFAULT_OPT_ML))


def data_files(base: Path) -> list[Path]:
    """Every regular, non-hidden file under ``base``, sorted, recursively ([] when absent)."""
    if not base.is_dir():
        return []
    return sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))


@dataclass(frozen=True)
class TrainingEnv:
    """The /opt/ml tree of one training job."""

    root: Path

    @classmethod
    def from_environ(cls) -> TrainingEnv:
        return cls(opt_ml_root())

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    def channel_dir(self, channel: str) -> Path:
        return self.root / "input" / "data" / channel

    def _json(self, name: str) -> dict:
        """A config file as a dict ({} when the platform wrote none)."""
        path = self.config_dir / name
        if not path.exists():
            return {}
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"{name} is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise UserError(f"{name} must hold a JSON object")
        return value

    def hyperparameters(self) -> dict:
        """hyperparameters.json: every value a string (SageMaker's convention)."""
        return self._json("hyperparameters.json")

    def input_data_config(self) -> dict:
        return self._json("inputdataconfig.json")

    def resource_config(self) -> dict:
        """resourceconfig.json: ``current_host`` and ``hosts`` ({} when absent: one host)."""
        return self._json("resourceconfig.json")

    def distribution(self, channel: str) -> str | None:
        """The channel's ``S3DistributionType`` (FullyReplicated or ShardedByS3Key), if given."""
        spec = self.input_data_config().get(channel) or {}
        value = spec.get("S3DistributionType") if isinstance(spec, dict) else None
        return str(value) if value else None

    def channel_files(self, channel: str) -> list[Path]:
        """Data files of a channel (see ``data_files``)."""
        return data_files(self.channel_dir(channel))


@dataclass(frozen=True)
class ProcessingEnv:
    """The /opt/ml tree of one processing job (the pipeline's clean and evaluate steps)."""

    root: Path          # /opt/ml (or $OPT_ML); the processing tree is root/processing

    @classmethod
    def from_environ(cls) -> ProcessingEnv:
        return cls(opt_ml_root())

    @property
    def input_dir(self) -> Path:
        return self.root / PROCESSING_DIR / "input"

    @property
    def output_dir(self) -> Path:
        return self.root / PROCESSING_DIR / "output"

    @property
    def raw_dir(self) -> Path:
        return self.input_dir / RAW_INPUT

    @property
    def model_input_dir(self) -> Path:
        return self.input_dir / MODEL_INPUT

    @property
    def test_input_dir(self) -> Path:
        return self.input_dir / TEST_INPUT

    def split_dir(self, split: str) -> Path:
        return self.output_dir / split

    @property
    def report_dir(self) -> Path:
        return self.output_dir / REPORT_OUTPUT

    @property
    def evaluation_dir(self) -> Path:
        return self.output_dir / EVALUATION_OUTPUT

    @property
    def failure_file(self) -> Path:
        """/opt/ml/output/message: its first 1 KB becomes the job's ExitMessage (the
        processing counterpart of training's failure file)."""
        return self.root / "output" / "message"


@dataclass(frozen=True)
class ServingEnv:
    """Hosting settings: port, workers, timeout, model directory."""

    model_dir: Path
    host: str
    port: int
    workers: int
    timeout: int

    @classmethod
    def from_environ(cls) -> ServingEnv:
        def number(var: str, default: int) -> int:
            raw = os.environ.get(var, "")
            try:
                return int(raw) if raw.strip() else default
            except ValueError:
                raise PlatformError(f"{var} must be an integer, got {raw!r}") from None

        return cls(
            model_dir=opt_ml_root() / "model",
            host=os.environ.get(HOST_VAR, DEFAULT_HOST),
            port=number(PORT_VAR, DEFAULT_PORT),
            workers=max(1, number(WORKERS_VAR, os.cpu_count() or 1)),
            timeout=number(TIMEOUT_VAR, DEFAULT_TIMEOUT),
        )
