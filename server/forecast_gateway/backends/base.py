"""The backend interface: where training jobs run and where predictions are computed.

The gateway's data plane (`forecast_gateway.dataplane.ForecastService`) owns the registry, the
storage layout and every decision about jobs and model versions. A backend only *executes*:

- training: given a `TrainingSpec` (a job id, a job directory to work in, the dataset file and
  SageMaker-style string hyperparameters), run the training container contract
  (docs/contracts.md, contract 2) somewhere and report back through a `TrainingListener`;
- prediction: given a `ModelRef` (an artifact directory on the gateway's disk) and `RowColumns`,
  return one float64 forecast per row, in row order.

Implementations: `local.LocalBackend` (child process + in-process Predictor, the embedded
default), a docker backend (`docker run <training image> train` with the job's `opt_ml/` tree
mounted at /opt/ml; `docker run <inference image> serve` + POST /invocations), and later a
SageMaker backend.

Threading contract:
- `submit_training` and `cancel_training` return quickly; they are called from gateway worker
  threads. The backend runs the job on its own threads/processes and bounds its own concurrency.
- `TrainingListener` methods may be called from any backend thread. Call `on_started` once, then
  any number of `on_progress`/`on_metric`, then exactly one `on_finished` (also for a job
  cancelled while queued, and for jobs still running at `close`).
- `load_model`, `predict` and `describe` block and may be called concurrently from the gateway's
  prediction threads; they must be thread-safe.

Errors: raise `forecasting.errors.UserError` subclasses (e.g. `ForecastRequestError`) for rows
the model cannot forecast, `forecasting.errors.ArtifactError` for a model that cannot be loaded,
and `forecast_gateway.errors.BackendUnavailable` when the backend itself is down (a daemon not
reachable, a container that does not answer). Anything else becomes INTERNAL.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from forecast_gateway.domain import ModelRef, ModelVersion, RowColumns
from forecast_gateway.errors import FailedPrecondition

#: Approval statuses of a model registry (SageMaker's ModelApprovalStatus).
APPROVALS = ("PendingManualApproval", "Approved", "Rejected")
#: MIME types of the `train` channel, as in inputdataconfig.json.
CONTENT_TYPES = {"csv": "text/csv", "parquet": "application/x-parquet"}


@dataclass(frozen=True)
class TrainingSpec:
    """One training job, ready to run."""

    job_id: str
    """The gateway's job id (unique across retailers)."""
    retailer: str
    """The retailer the job trains for (for fair scheduling and logs)."""
    job_dir: Path
    """A directory owned by this job; the backend builds its /opt/ml tree under `job_dir/opt_ml`
    and may keep logs here (`train.log`)."""
    data_path: Path
    """The dataset file (CSV or Parquet) to put in the `train` channel."""
    data_format: Literal["csv", "parquet"]
    """The dataset's format; its content type is `CONTENT_TYPES[data_format]`."""
    hyperparameters: Mapping[str, str]
    """hyperparameters.json as written for the container: every value a string, including
    `model_kind` and `horizon`."""


@dataclass(frozen=True)
class TrainingOutcome:
    """How a training job ended."""

    state: Literal["succeeded", "failed", "cancelled"]
    """The terminal state."""
    model_dir: Path | None = None
    """On success: the artifact directory the container wrote (`/opt/ml/model`), on the
    gateway's disk. The gateway moves it into its storage layout."""
    failure_reason: str = ""
    """On failure or cancellation: why (the first `joblog.FAILURE_REASON_CHARS` characters of
    /opt/ml/output/failure, or what the backend knows)."""


class TrainingListener(Protocol):
    """Receives a job's events from the backend (from any thread)."""

    def on_started(self, job_id: str) -> None:
        """The training process started."""

    def on_progress(self, job_id: str, stage: str, fraction: float) -> None:
        """A `progress stage=<name> fraction=<0..1>` line."""

    def on_metric(self, job_id: str, name: str, value: float) -> None:
        """A `<name>=<value>` metric line (e.g. `xgboost.test.rmsle=0.48`)."""

    def on_finished(self, job_id: str, outcome: TrainingOutcome) -> None:
        """The job reached a terminal state. Called exactly once per submitted job."""


class Backend(abc.ABC):
    """Runs training jobs and computes predictions. See the module docstring for the contract."""

    #: The name used by `--backend`.
    name: str = "abstract"

    # -- training ----------------------------------------------------------------------------

    @abc.abstractmethod
    def submit_training(self, spec: TrainingSpec, listener: TrainingListener) -> None:
        """Queue a job and return at once. Raise `BackendUnavailable` when jobs cannot be run."""

    def training_capacity(self) -> int:
        """How many more jobs it would start now (a free training slot each): the fleet's
        dispatcher claims queued jobs only while this is positive, so jobs wait in the shared
        database, where any replica can take them, not in one gateway's memory. Default: no
        limit."""
        return 1 << 30

    @abc.abstractmethod
    def cancel_training(self, job_id: str) -> bool:
        """Stop a queued or running job (SIGTERM, then SIGKILL after the grace period).

        Returns False when the job is unknown or already finished. The job's `on_finished`
        reports `cancelled` once it has stopped.
        """

    # -- prediction --------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Do at start-up, in the background, the one-off work the first model load would do
        (importing the model libraries), so a live switch followed from another replica loads
        in well under the fleet's 1 s. Default: nothing."""

    @abc.abstractmethod
    def load_model(self, model: ModelRef) -> None:
        """Make the model ready to answer (load it into memory, start its container, ...).

        Called before a version goes live, so the switch never exposes a half-loaded model.
        Raises `ArtifactError` when the artifact cannot be loaded.
        """

    @abc.abstractmethod
    def predict(self, model: ModelRef, rows: RowColumns) -> np.ndarray:
        """Forecast `rows` with `model`: a float64 array, one value per row, in row order.

        Loads the model first when needed. Raises `UserError` for rows the model cannot
        forecast (the message names the field and rows).
        """

    def predict_intervals(self, model: ModelRef, rows: RowColumns, levels: Sequence[float],
                          ) -> tuple[np.ndarray, dict[float, tuple[np.ndarray, np.ndarray]]]:
        """`predict` plus, per level in percent (e.g. 80), the (lower, upper) bounds of each
        row's prediction interval (`forecasting.intervals`), computed where the forecast is.

        Raises `ArtifactError` for a model saved without a calibration, `ForecastRequestError`
        for a bad level. The default answers FAILED_PRECONDITION: a backend that cannot compute
        intervals says so.
        """
        raise FailedPrecondition(f"the {self.name} backend answers point forecasts only; "
                                 "prediction intervals need the local, docker or sagemaker backend")

    def unload_model(self, model: ModelRef) -> None:
        """Free what `load_model` took. Optional; the default does nothing.

        The gateway calls it on a retailer's previous live version right after the switch, so
        requests that resolved that version a moment earlier may still arrive: they must be
        answered (a backend may load the version again, or drain before it frees it).
        """

    def load_shadow(self, model: ModelRef) -> None:
        """Make a version ready to answer beside the live one (promote=shadow), without
        touching what answers the live requests. The default loads it as any other version
        (backends that hold several versions of a retailer); a backend that serves one version
        per retailer (SageMaker's endpoint) gives it a place of its own."""
        self.load_model(model)

    def unload_shadow(self, model: ModelRef, now_live: bool) -> None:
        """The version stopped being served in shadow: rejected or replaced, or promoted
        (`now_live`: `load_model` has loaded it as the live version). The default frees it
        unless it is live now."""
        if not now_live:
            self.unload_model(model)

    # -- model registry ----------------------------------------------------------------------

    def version_registered(self, model: ModelVersion) -> None:
        """A new version is in the gateway's registry, with its promotion decision: a backend
        with a model registry of its own records it there (logging, not raising, when it
        cannot: the version is published either way). Default: nothing."""

    def set_approval(self, model: ModelRef, approval: str, description: str) -> str:
        """Set a version's approval in the backend's model registry (`APPROVALS`: SageMaker's
        ModelApprovalStatus values) with why; returns where the registry keeps it. The default
        answers FAILED_PRECONDITION: the gateway's own registry has live versions and promotion
        decisions, not approvals."""
        raise FailedPrecondition(
            f"the {self.name} backend has no model registry to approve versions in (approval "
            "is SageMaker's Model Registry: --backend sagemaker); the promotion decision is on "
            "each version, and SetLiveModel (forecast promote) makes a version live")

    # -- lifecycle ---------------------------------------------------------------------------

    def check_available(self) -> None:
        """Raise `BackendUnavailable` when the backend cannot serve now. Default: always up."""

    @abc.abstractmethod
    def close(self, reason: str) -> None:
        """Stop: cancel running and queued jobs (each gets `on_finished` with state `failed` and
        `reason`), release models. Called once, when the gateway stops."""

    def describe(self) -> Mapping[str, object]:
        """A few facts for logs (name, limits); optional."""
        return {"backend": self.name}
