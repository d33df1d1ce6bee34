"""Value types of the data plane. Plain dataclasses; no gRPC, no SQL."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forecasting.promotion import Decision


class JobState(str, enum.Enum):
    """A training job's state; the last three are terminal."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        """True for SUCCEEDED, FAILED and CANCELLED."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class Dataset:
    """An uploaded, validated dataset."""

    dataset_id: str
    retailer: str
    filename: str
    format: str  # "csv" | "parquet"
    path: Path  # absolute
    size_bytes: int
    sha256: str
    rows: int
    series: int
    start_date: str
    end_date: str
    created_at: float


@dataclass(frozen=True)
class Job:
    """A training job as recorded in the registry."""

    job_id: str
    retailer: str
    dataset_id: str
    model_kind: str
    hyperparameters: dict[str, str]
    horizon: int
    state: JobState
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    failure_reason: str = ""
    model_version: str = ""
    stage: str = ""
    progress: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    seq: int = 0  # bumped on every change; watchers compare it
    promote: str = "if_better"
    """The promotion policy: if_better, always, never or shadow (`forecasting.promotion`)."""
    promotion: Decision | None = None
    """The promotion decision, once the job's model version is registered."""
    data_note: str = ""
    """What the gateway did to the training data before the job (stored actuals merged)."""
    request_id: str = ""
    """The caller's id of the Train request: a retry with the same id gets this job back."""
    promote_after: dict | None = None
    """Under promote=shadow: the rule on live actuals (days, min_cells, margin; `shadow_rule`)."""


@dataclass(frozen=True)
class ModelRef:
    """Enough to find and load one model version."""

    retailer: str
    version: str
    path: Path  # the artifact directory (absolute)


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version."""

    retailer: str
    version: str
    path: Path
    job_id: str
    dataset_id: str
    model_kind: str
    final_model: str
    data_start: str
    data_end: str
    horizon: int
    created_at: float
    live: bool = False
    manifest: dict[str, str] = field(default_factory=dict, compare=False)
    """The artifact's files and their sha256, recorded at publish (see `manifest.py`)."""
    promotion: Decision | None = field(default=None, compare=False)
    """The promotion decision taken when it was registered (None for imported models)."""
    shadow: bool = field(default=False, compare=False)
    """Served in shadow beside the live model (`dataplane.shadow_trial`)."""
    trial: dict | None = field(default=None, compare=False)
    """The last shadow trial it took part in, as champion or challenger."""

    @property
    def ref(self) -> ModelRef:
        """The reference a backend needs to load it."""
        return ModelRef(self.retailer, self.version, self.path)


@dataclass(frozen=True)
class RowColumns:
    """Future rows, columnar: `day` is days since 1970-01-01."""

    day: np.ndarray
    store_nbr: np.ndarray
    family: np.ndarray
    onpromotion: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.day.shape[0])


@dataclass(frozen=True)
class Scores:
    """Error metrics of one model over the test window (NaN when not computable)."""

    rmse: float
    rmsle: float
    mae: float
    wape: float
    bias: float
    mase: float = float("nan")


@dataclass(frozen=True)
class Evaluation:
    """One member's (or the baseline's) scores."""

    name: str
    baseline: bool
    final: bool
    overall: Scores
    per_family: dict[str, Scores]


@dataclass(frozen=True)
class MetricsReport:
    """A model's evaluation against the baseline, with its provenance."""

    model: ModelVersion
    horizon: int
    origin: str
    test_start: str
    test_end: str
    evaluations: list[Evaluation]
    coverage: list[Coverage] = field(default_factory=list)
    """The final model's prediction intervals on the test window (empty without intervals)."""


@dataclass(frozen=True)
class Coverage:
    """How often one level's interval held the test window's actual sales."""

    level: float
    coverage: float
    mean_width: float
    mean_interval_score: float = float("nan")
    coverage_per_third: dict[str, float] = field(default_factory=dict)
