"""Declared hyperparameters, converted from SageMaker's all-string JSON.

Every hyperparameter has a type, a default and a range (or a set of choices). ``parse``
rejects unknown keys and bad values with a ``HyperparameterError`` that names the key, so no
training code ever parses ``int(hp["x"])`` by hand. See docs/hyperparameters.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forecasting.errors import HyperparameterError

MODEL_KINDS = ("xgboost", "lstm", "hybrid")


@dataclass(frozen=True)
class Spec:
    """One hyperparameter: ``kind`` is int, float, bool, str or choice."""

    kind: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def convert(self, name: str, raw: Any) -> Any:
        text = raw if isinstance(raw, str) else json.dumps(raw)
        text = text.strip()
        if self.kind == "bool":
            lowered = text.lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise HyperparameterError(name, f"must be true or false, got {raw!r}")
        if self.kind == "choice":
            if text not in self.choices:
                raise HyperparameterError(
                    name, f"must be one of {', '.join(self.choices)}, got {raw!r}")
            return text
        if self.kind == "str":
            return text
        try:
            value: int | float = float(text) if self.kind == "float" else _int(text)
        except ValueError:
            article = "an integer" if self.kind == "int" else "a number"
            raise HyperparameterError(name, f"must be {article}, got {raw!r}") from None
        if math.isnan(value):
            raise HyperparameterError(name, f"must be a number, got {raw!r}")
        if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high):
            raise HyperparameterError(name, f"must be between {self.low:g} and {self.high:g}, "
                                            f"got {raw!r}")
        return value


def _int(text: str) -> int:
    as_float = float(text)
    if not as_float.is_integer():
        raise ValueError(text)
    return int(as_float)


SPECS: dict[str, Spec] = {
    # What to train.
    "model_kind": Spec("choice", "xgboost", "xgboost, lstm or hybrid", choices=MODEL_KINDS),
    "horizon": Spec("int", 16, "days forecast ahead; also the size of validation and test",
                    1, 366),
    "log_target": Spec("bool", True, "objective rmsle: lags, windows and the label on "
                                     "log1p(sales) (the metric is RMSLE); tweedie always works "
                                     "on units"),
    "objective": Spec("choice", "rmsle", "what the XGBoost member minimises: rmsle (squared "
                                         "error on log1p(sales): ranking-style scoring, "
                                         "roughly a geometric mean, low in units) or tweedie "
                                         "(Tweedie deviance on units, log link: unbiased units "
                                         "for replenishment)", choices=("rmsle", "tweedie")),
    "tweedie_variance_power": Spec("float", 1.3, "objective=tweedie: the variance power, from "
                                                 "1.01 (Poisson-like) to 1.99 (gamma-like)",
                                   1.01, 1.99),
    "zero_sample_rate": Spec("float", 1.0, "keep this share of zero-sales training rows, "
                                           "weighting them 1/rate", 0.01, 1.0),
    "seed": Spec("int", 42, "seed for every random choice", 0, 2**31 - 1),
    "nthread": Spec("int", 0, "threads for XGBoost (0 = all cores)", 0, 1024),
    "refit": Spec("bool", True, "after the evaluation, fit the served members again on all the "
                                "history (validation and test days too) for the rounds and "
                                "epochs the validation chose"),
    "refit_method": Spec("choice", "refresh", "how the XGBoost member sees the latest days: "
                                              "refresh (same trees, leaf values from all days), "
                                              "full (regrow the trees on all days) or continue "
                                              "(refit_rounds more trees on the latest days)",
                         choices=("refresh", "full", "continue")),
    "refit_rounds": Spec("int", 20, "trees added by refit_method=continue", 1, 10_000),
    "refresh_rows": Spec("int", 500_000, "most rows refit_method=refresh reads: every row "
                                         "after the evaluated fit's days and a weighted "
                                         "sample of the fit's own rows (0 = all rows)",
                         0, 2**62),
    "collective_timeout_s": Spec("int", 600, "training on several instances: seconds a host "
                                             "waits for the others to join and for each "
                                             "collective call before the job fails", 5, 86_400),
    "promote_metric": Spec("choice", "rmsle", "the metric the promotion gate compares a new "
                                             "model and the live one on (lower is better)",
                           choices=("rmsle", "rmse", "mae", "wape", "mase")),
    # XGBoost member.
    "num_round": Spec("int", 1000, "maximum boosting rounds", 1, 100_000),
    "early_stopping_rounds": Spec("int", 20, "stop when validation RMSE has not improved "
                                             "for this many rounds", 1, 10_000),
    "eta": Spec("float", 0.1, "learning rate", 1e-4, 1.0),
    "max_depth": Spec("int", 8, "tree depth", 1, 20),
    "min_child_weight": Spec("float", 1.0, "minimum hessian weight in a leaf", 0.0, 1e6),
    "subsample": Spec("float", 0.8, "row sample per tree", 0.05, 1.0),
    "colsample_bytree": Spec("float", 0.8, "feature sample per tree", 0.05, 1.0),
    "lambda": Spec("float", 1.0, "L2 regularisation", 0.0, 1e6),
    "alpha": Spec("float", 0.0, "L1 regularisation", 0.0, 1e6),
    "max_bin": Spec("int", 256, "histogram bins", 2, 1024),
    "max_cat_to_onehot": Spec("int", 1, "categoricals with fewer levels are one-hot split",
                              1, 1000),
    # LSTM member.
    "lstm_window": Spec("int", 28, "days of history in each LSTM sample", 7, 365),
    "lstm_units": Spec("int", 64, "LSTM units", 1, 1024),
    "lstm_epochs": Spec("int", 5, "training epochs", 1, 1000),
    "lstm_batch_size": Spec("int", 1024, "samples per batch", 8, 65536),
    "lstm_learning_rate": Spec("float", 1e-3, "Adam learning rate", 1e-6, 1.0),
    "lstm_max_samples": Spec("int", 500_000, "cap on training windows (sampled evenly)",
                             1000, 100_000_000),
    "lstm_patience": Spec("int", 2, "epochs without validation improvement before stopping",
                          1, 100),
    # Hybrid.
    "hybrid_method": Spec("choice", "weights", "weights: a convex blend fit on validation; "
                                               "stack: a linear stacker fit on validation",
                          choices=("weights", "stack")),
}


@dataclass(frozen=True)
class Hyperparameters:
    """Parsed, typed hyperparameters. ``values`` holds every key, defaults included."""

    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def as_strings(self) -> dict[str, str]:
        """SageMaker's form: every value a string."""
        return {k: (str(v).lower() if isinstance(v, bool) else str(v))
                for k, v in self.values.items()}


def parse(raw: Mapping[str, Any] | None) -> Hyperparameters:
    """Convert SageMaker-style strings; reject unknown keys and bad values."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(SPECS))
    if unknown:
        raise HyperparameterError(
            unknown[0], f"unknown hyperparameter (known: {', '.join(sorted(SPECS))})")
    values = {name: spec.default for name, spec in SPECS.items()}
    for name, value in raw.items():
        values[name] = SPECS[name].convert(name, value)
    return Hyperparameters(values)
