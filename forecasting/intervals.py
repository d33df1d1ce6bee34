"""Prediction intervals as served: the calibration saved in the artifact and how a band is
built from it. Fitting the calibration at training time is ``interval_calibration``.

Method ``conformal_log1p_binned`` (docs/models.md, "Prediction intervals"):

- a conformity score is a log1p residual ``r = log1p(actual) - log1p(forecast)``;
- scores are grouped (Mondrian conformal prediction) by two things known when a forecast is
  made: the **series' own variability**, the standard deviation of its daily sales over the
  ``VOLATILITY_DAYS`` days before the origin (``volatility``: steady, middle, volatile thirds),
  and the **forecast's level** (up to ``MAX_FORECAST_BINS`` bins of log1p(forecast)). A steady
  series that sells 6-13 a day no longer shares the band of the noisiest series, and a day the
  model expects no sales (a closed Saturday) no longer gets a wide band;
- per group, the empirical quantiles of the scores at ``PROBABILITIES`` (0.005 .. 0.995);
- a level L (percent) gives ``lower = expm1(log1p(f) + q((1 - L/100) / 2))`` and
  ``upper = expm1(log1p(f) + q((1 + L/100) / 2))`` with the forecast's group's quantiles,
  clipped at 0.

Steps of the horizon share one distribution (measured: per-step quantiles or a per-step scale
did not improve coverage on the real-data backtest, docs/benchmarks.md), so days after the
trained horizon get the same band as those inside it; ``Predictor`` says so in its warnings.

Artifacts saved before this method (``per_step``: one pool of scores across series, per
horizon step) keep it: ``load`` reads either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecasting.errors import ArtifactError, ForecastRequestError

FILE = "intervals.json"
METHOD = "conformal_log1p_binned"
LEGACY_METHOD = "split_conformal_log1p_per_step"
PROBABILITIES = np.round(np.arange(1, 200) / 200, 3)
#: Levels whose coverage evaluation.json reports.
REPORTED_LEVELS = (50.0, 80.0, 95.0)
MIN_LEVEL, MAX_LEVEL = 1.0, 99.0
#: Days of history a series' variability is measured over (the artifact keeps at least these).
VOLATILITY_DAYS = 28
VOLATILITY_BINS = 3
MAX_FORECAST_BINS = 20


def check_levels(levels: Iterable[float], field: str = "levels") -> list[float]:
    """Levels in percent, each in [1, 99] and given once; ``ForecastRequestError`` otherwise."""
    out = [float(v) for v in levels]
    for v in out:
        if not np.isfinite(v) or not MIN_LEVEL <= v <= MAX_LEVEL:
            raise ForecastRequestError(field, f"{v:g} is not a level in percent from "
                                              f"{MIN_LEVEL:g} to {MAX_LEVEL:g} (e.g. 80 or 95)")
    if len(set(out)) != len(out):
        raise ForecastRequestError(field, "each level may be given once")
    return out


def volatility(recent: np.ndarray) -> np.ndarray:
    """Per series (rows of ``recent``, daily sales with the origin last, NaN before a series
    began): the standard deviation of sales over its known days among the last
    ``VOLATILITY_DAYS``. NaN with fewer than two known days."""
    window = np.asarray(recent, dtype=np.float64)[:, -VOLATILITY_DAYS:]
    known = np.isfinite(window)
    count = known.sum(axis=1)
    values = np.where(known, window, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.sum(axis=1) / count
        var = (np.where(known, (values - mean[:, None]) ** 2, 0.0)).sum(axis=1) / count
    return np.where(count >= 2, np.sqrt(var), np.nan)


def _column(probability: float) -> tuple[int, int, float]:
    """Where ``probability`` falls among ``PROBABILITIES``: two columns and the weight of the
    second."""
    col = float(np.interp(probability, PROBABILITIES, np.arange(len(PROBABILITIES))))
    lo = int(np.floor(col))
    return lo, min(lo + 1, len(PROBABILITIES) - 1), col - lo


def _band(forecast: np.ndarray, q_lower: np.ndarray, q_upper: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray]:
    base = np.log1p(np.clip(np.asarray(forecast, dtype=np.float64), 0.0, None))
    return (np.clip(np.expm1(base + q_lower), 0.0, None),
            np.clip(np.expm1(base + q_upper), 0.0, None))


@dataclass(frozen=True)
class Calibration:
    """Quantiles of the log1p residuals per (variability bin, forecast-level bin)."""

    quantiles: np.ndarray          # (volatility bins, forecast bins, len(PROBABILITIES))
    forecast_edges: np.ndarray     # log1p(forecast) bin edges, ascending
    volatility_edges: np.ndarray   # sales standard deviation bin edges, ascending
    scores: int                    # residuals the quantiles rest on
    windows: tuple[tuple[str, str], ...]   # the calibration windows, first and last day

    method = METHOD
    needs_history = True           # bounds need each series' recent sales

    def bins(self, forecast: np.ndarray, recent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(volatility bin per row, forecast bin per cell) for (series, days) forecasts."""
        vol = volatility(recent)
        v = np.searchsorted(self.volatility_edges, vol, side="left")
        v[~np.isfinite(vol)] = len(self.volatility_edges)   # too young to tell: most variable
        f = np.searchsorted(self.forecast_edges,
                            np.log1p(np.clip(np.asarray(forecast, dtype=np.float64), 0, None)),
                            side="left")
        return v, f

    def residual_quantile(self, forecast: np.ndarray, recent: np.ndarray,
                          probability: float) -> np.ndarray:
        """q(probability) of each (series, day) forecast's group."""
        v, f = self.bins(forecast, recent)
        lo, hi, w = _column(probability)
        cells = self.quantiles[v[:, None], f]
        return cells[..., lo] * (1 - w) + cells[..., hi] * w

    def bounds(self, forecast: np.ndarray, step: np.ndarray, level: float,
               recent: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) sales for (series, days) forecasts; ``recent`` is each series'
        daily sales up to the origin (rows as ``forecast``'s). ``step`` is not used: every step
        of the horizon shares one distribution."""
        if recent is None:
            raise ValueError("this calibration needs each series' recent sales")
        alpha = 1.0 - level / 100.0
        q_lo = self.residual_quantile(forecast, recent, alpha / 2)
        q_hi = self.residual_quantile(forecast, recent, 1 - alpha / 2)
        return _band(forecast, q_lo, q_hi)

    def to_json(self) -> dict:
        return {"method": METHOD, "scale": "log1p", "probabilities": PROBABILITIES.tolist(),
                "volatility_days": VOLATILITY_DAYS,
                "volatility_edges": np.round(self.volatility_edges, 6).tolist(),
                "forecast_edges": np.round(self.forecast_edges, 6).tolist(),
                "quantiles": np.round(self.quantiles, 6).tolist(), "scores": self.scores,
                "windows": [{"start": a, "end": b} for a, b in self.windows]}

    @classmethod
    def from_json(cls, payload: dict) -> Calibration:
        try:
            probs = np.asarray(payload["probabilities"], dtype=np.float64)
            q = np.asarray(payload["quantiles"], dtype=np.float64)
            out = cls(q, np.asarray(payload["forecast_edges"], dtype=np.float64),
                      np.asarray(payload["volatility_edges"], dtype=np.float64),
                      int(payload["scores"]),
                      tuple((str(w["start"]), str(w["end"])) for w in payload["windows"]))
            days = int(payload["volatility_days"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"model artifact is damaged: {FILE} ({exc})") from None
        expected = (len(out.volatility_edges) + 1, len(out.forecast_edges) + 1, len(probs))
        if not np.allclose(probs, PROBABILITIES) or q.shape != expected \
                or days != VOLATILITY_DAYS:
            raise ArtifactError(f"model artifact is damaged: {FILE} has quantiles of shape "
                                f"{q.shape}, expected {expected} (volatility over {days} "
                                f"days)")
        return out


@dataclass(frozen=True)
class StepCalibration:
    """The method of artifacts saved before ``Calibration``: per horizon step, quantiles of
    the log1p residuals pooled across series (steps after the last reuse it)."""

    quantiles: np.ndarray        # (steps, len(PROBABILITIES)), non-decreasing along axis 1
    scores: int
    pooled_steps: bool           # True: every step shares one distribution
    window: tuple[str, str]

    method = LEGACY_METHOD
    needs_history = False

    @property
    def steps(self) -> int:
        return self.quantiles.shape[0]

    def residual_quantile(self, step: np.ndarray, probability: float) -> np.ndarray:
        """q_step(probability) for 0-based steps (later steps reuse the last one)."""
        rows = self.quantiles[np.minimum(np.asarray(step, dtype=np.int64), self.steps - 1)]
        lo, hi, w = _column(probability)
        return rows[..., lo] * (1 - w) + rows[..., hi] * w

    def bounds(self, forecast: np.ndarray, step: np.ndarray, level: float,
               recent: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) sales for forecasts on 0-based ``step`` (arrays of one shape)."""
        alpha = 1.0 - level / 100.0
        return _band(forecast, self.residual_quantile(step, alpha / 2),
                     self.residual_quantile(step, 1 - alpha / 2))

    @classmethod
    def from_json(cls, payload: dict) -> StepCalibration:
        try:
            probs = np.asarray(payload["probabilities"], dtype=np.float64)
            q = np.asarray(payload["quantiles"], dtype=np.float64)
            window = payload["window"]
            out = cls(q, int(payload["scores"]), bool(payload["pooled_steps"]),
                      (str(window["start"]), str(window["end"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"model artifact is damaged: {FILE} ({exc})") from None
        if not np.allclose(probs, PROBABILITIES) or q.ndim != 2 or q.shape[1] != len(probs) \
                or q.shape[0] < 1:
            raise ArtifactError(f"model artifact is damaged: {FILE} has quantiles of shape "
                                f"{q.shape} for {len(probs)} probabilities")
        return out


AnyCalibration = Calibration | StepCalibration


def from_json(payload: dict) -> AnyCalibration:
    """Either method, by the payload's ``method``; ``ArtifactError`` for any other."""
    method = payload.get("method") if isinstance(payload, dict) else None
    if method == METHOD:
        return Calibration.from_json(payload)
    if method == LEGACY_METHOD:
        return StepCalibration.from_json(payload)
    raise ArtifactError(f"{FILE}: interval method {method!r} is not supported (this library "
                        f"reads {METHOD!r} and {LEGACY_METHOD!r})")


def save(path: Path, calibration: Calibration) -> None:
    from forecasting.artifact import write_json

    write_json(path, calibration.to_json())


def load(model_dir: Path) -> AnyCalibration | None:
    """The artifact's calibration, or None for an artifact saved without one."""
    path = Path(model_dir) / FILE
    if not path.exists():
        return None
    from forecasting.artifact import read_json

    return from_json(read_json(path))
