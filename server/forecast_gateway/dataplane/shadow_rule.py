"""The evidence a shadow trial rests on, and the rule that ends it (pure: no I/O).

Champion (the live model) and challenger (the version in shadow) are compared on the same
cells: the (series, target day) cells both have a recorded forecast for, from the same horizon
step, and an actual. The recorder samples the same series for both (a stable hash of the series
key) and keeps the first forecast per cell, so both forecasts of a cell come from the requests
the live model answered; a cell the live model forecast from an earlier origin (before the
challenger entered shadow) is left out, since its longer lead would favour the challenger.

`PromoteAfter` decides once the evidence is enough: at least `days` distinct days of actuals
and `min_cells` cells. The challenger is promoted when its error is at most the champion's x
(1 - `margin`) on the job's promote metric, and rejected otherwise. Before that the trial keeps
running, and the reason says what is missing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from forecast_gateway.errors import InvalidArgument
from forecasting.metrics import scores
from forecasting.promotion import METRICS

DEFAULT_DAYS = 7
DEFAULT_MIN_CELLS = 100
MAX_DAYS = 366
MAX_CELLS = 100_000_000
MAX_MARGIN = 0.5
#: Metrics live actuals can score (MASE needs the training data's scale).
LIVE_METRICS = ("rmsle", "rmse", "mae", "wape")
_KEYS = ["store_nbr", "family", "day"]


@dataclass(frozen=True)
class PromoteAfter:
    """The rule: days of actuals, minimum cells and margin (see the module docstring)."""

    days: int = DEFAULT_DAYS
    min_cells: int = DEFAULT_MIN_CELLS
    margin: float = 0.0

    @classmethod
    def checked(cls, days: int, min_cells: int, margin: float) -> PromoteAfter:
        """The rule from a request's fields (0 days or cells: the default); InvalidArgument
        naming the field out of range."""
        if not 0 <= days <= MAX_DAYS:
            raise InvalidArgument("promote_after.days",
                                  f"must be between 1 and {MAX_DAYS} (0: {DEFAULT_DAYS}), got {days}")
        if not 0 <= min_cells <= MAX_CELLS:
            raise InvalidArgument("promote_after.min_cells",
                                  f"must be between 1 and {MAX_CELLS} (0: {DEFAULT_MIN_CELLS}), "
                                  f"got {min_cells}")
        if not (math.isfinite(margin) and 0 <= margin <= MAX_MARGIN):
            raise InvalidArgument("promote_after.margin",
                                  f"must be a fraction from 0 to {MAX_MARGIN}, got {margin}")
        return cls(days or DEFAULT_DAYS, min_cells or DEFAULT_MIN_CELLS, float(margin))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict | None) -> PromoteAfter:
        return cls(**(payload or {}))


def for_train(promote: str, fields: tuple[int, int, float] | None,
              hyperparameters: dict[str, str]) -> dict | None:
    """The rule a Train stores with its job (None unless promote=shadow); InvalidArgument
    naming the field for a rule without shadow, a value out of range, or a promote metric live
    actuals cannot score."""
    if promote != "shadow":
        if fields is not None:
            raise InvalidArgument("promote_after", f"applies only with promote=shadow, not "
                                                   f"{promote}")
        return None
    metric = str(hyperparameters.get("promote_metric") or "rmsle")
    if metric not in LIVE_METRICS and metric in METRICS:
        raise InvalidArgument("hyperparameters['promote_metric']",
                              f"{metric} cannot be scored on live actuals under promote=shadow; "
                              f"use one of {', '.join(LIVE_METRICS)}")
    return (PromoteAfter.checked(*fields) if fields is not None else PromoteAfter()).to_dict()


def paired(served: pd.DataFrame, actuals: pd.DataFrame, champion: str,
           challenger: str) -> pd.DataFrame:
    """The cells both versions forecast from the same step that have an actual: store_nbr,
    family, day, step, champion, challenger and sales. `served` as `MonitoringStore.served`,
    `actuals` with store_nbr, family, day and sales."""
    columns = _KEYS + ["step", "champion", "challenger", "sales"]
    if served.empty or actuals.empty:
        return pd.DataFrame(columns=columns)
    mine = served[served["version"] == challenger][_KEYS + ["step", "forecast"]]
    theirs = served[served["version"] == champion][_KEYS + ["step", "forecast"]]
    both = mine.merge(theirs, on=_KEYS + ["step"], suffixes=("_challenger", "_champion"))
    both = both.merge(actuals[_KEYS + ["sales"]], on=_KEYS)
    return both.rename(columns={"forecast_challenger": "challenger",
                                "forecast_champion": "champion"})[columns]


def by_step(pairs: pd.DataFrame, own_cells: dict[str, dict[int, int]]) -> list[dict]:
    """Per horizon step (step 0: all together): cells, each version's own scored cells
    (`own_cells`: "champion"/"challenger" -> step -> n) and both versions' metrics on the
    shared cells."""
    out = []
    groups = [(0, pairs)] + [(int(k), g) for k, g in pairs.groupby("step", sort=True)]
    for step, group in groups:
        if group.empty and step:
            continue
        actual = group["sales"].to_numpy(np.float64)
        row = {"step": step, "cells": len(group),
               "champion_cells": own_cells.get("champion", {}).get(step, 0),
               "challenger_cells": own_cells.get("challenger", {}).get(step, 0)}
        for who in ("champion", "challenger"):
            row[who] = scores(group[who].to_numpy(np.float64), actual) if len(group) else {}
        out.append(row)
    return out


def evaluate(rule: PromoteAfter, metric: str, pairs: pd.DataFrame) -> dict:
    """The trial's numbers and verdict on `pairs`: days, cells, champion_score,
    challenger_score, state ("running", "promoted" or "rejected") and reason."""
    days = int(pairs["day"].nunique()) if len(pairs) else 0
    cells = len(pairs)
    champ = chall = math.nan
    if cells:
        actual = pairs["sales"].to_numpy(np.float64)
        champ = _value(scores(pairs["champion"].to_numpy(np.float64), actual)[metric])
        chall = _value(scores(pairs["challenger"].to_numpy(np.float64), actual)[metric])
    out = {"days": days, "cells": cells, "champion_score": _json(champ),
           "challenger_score": _json(chall)}
    missing = []
    if days < rule.days:
        missing.append(f"{days} of {rule.days} days of actuals")
    if cells < rule.min_cells:
        missing.append(f"{cells} of {rule.min_cells} cells")
    if missing or math.isnan(champ) or math.isnan(chall):
        why = "; ".join(missing) or f"{metric} cannot be computed on these cells yet"
        return {**out, "state": "running", "reason": f"waiting for evidence: {why}"}
    bar = champ * (1 - rule.margin)
    on = f"on {cells} cells over {days} days of actuals"
    if chall <= bar:
        return {**out, "state": "promoted", "reason": (
            f"live {metric} {chall:.4f} {on} is at most the live model's {champ:.4f}"
            + (f" x (1 - {rule.margin:g}) = {bar:.4f}" if rule.margin else ""))}
    return {**out, "state": "rejected", "reason": (
        f"live {metric} {chall:.4f} {on} is above the live model's {champ:.4f}"
        + (f" x (1 - {rule.margin:g}) = {bar:.4f}" if rule.margin else ""))}


def _value(v: float | None) -> float:
    return math.nan if v is None else float(v)


def _json(v: float) -> float | None:
    return None if math.isnan(v) else v
