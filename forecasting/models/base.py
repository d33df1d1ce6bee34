"""The contract every model member keeps, so the pipeline, the artifact and the predictor
handle XGBoost, the LSTM and their blend the same way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from forecasting.cleaning import Panel
from forecasting.history import ForecastInput
from forecasting.hyperparameters import Hyperparameters
from forecasting.splits import DateSplit


def to_target(sales: np.ndarray, log_target: bool) -> np.ndarray:
    """Sales to the scale the models learn (log1p by default; the metric is RMSLE)."""
    return np.log1p(sales) if log_target else np.asarray(sales, dtype=np.float64)


def from_target(values: np.ndarray, log_target: bool) -> np.ndarray:
    """Back to sales, never negative."""
    out = np.expm1(values) if log_target else np.asarray(values, dtype=np.float64)
    return np.clip(out, 0.0, None)


@dataclass
class TrainingData:
    """Everything a member may learn from. Rows are the panel's rows."""

    panel: Panel
    split: DateSplit
    store_code: np.ndarray          # per series
    family_code: np.ndarray         # per series
    n_stores: int
    n_families: int
    keep: np.ndarray                # per row: False for down-sampled zero rows
    weight: np.ndarray              # per row: compensating sample weight
    hp: Hyperparameters
    log: Callable[[str], None]
    progress: Callable[[str, float], None]


class Member(Protocol):
    """A model member: fits on a panel, forecasts recursively, saves itself to a directory."""

    kind: ClassVar[str]
    lookback: int                   # days of history its forecasts need

    def fit(self, data: TrainingData) -> dict:
        """Train; return a summary saved in artifact.json (best iteration, epochs, ...)."""
        ...

    def refit(self, data: TrainingData) -> tuple[Member, dict]:
        """A new member of the capacity this fit chose (rounds, epochs), fit on every training
        day of ``data`` with nothing held out; and its summary. (The hybrid has
        ``with_members`` instead: it is re-formed from the refit members.)"""
        ...

    def forecast(self, inp: ForecastInput) -> np.ndarray:
        """(n_series, horizon) sales forecasts, fed back day by day."""
        ...

    def save(self, directory: Path) -> None:
        ...

    @classmethod
    def load(cls, directory: Path, meta: dict) -> Member:
        ...
