"""Prediction intervals: split-conformal, calibrated at training time, saved in the artifact.

Method (docs/models.md, "Prediction intervals"):

1. The members fit on the training days forecast the validation window from the last training
   day, recursively, exactly as they forecast the test window and the future.
2. Each (series, horizon step h) gives a conformity score on the log1p scale, signed:
   ``r = log1p(actual) - log1p(forecast)``. The log1p scale is the metric's (RMSLE) and
   roughly scale-free, so one pool serves series that sell 0.1 and 10,000 units a day.
3. Per step h, the empirical quantiles of r across series are saved at ``PROBABILITIES``
   (0.005, 0.010, ..., 0.995).
4. A level L (percent) gives ``lower = expm1(log1p(f) + q_h((1 - L/100) / 2))`` and
   ``upper = expm1(log1p(f) + q_h((1 + L/100) / 2))``, clipped at 0.

As mlforecast's ``PredictionIntervals`` calibrates from cross-validation residuals per horizon
step, but the scores are pooled across series (mlforecast keeps per-series quantiles over
``n_windows`` refits; one calibration window without refits would leave one score per series).
With fewer than ``MIN_SERIES_PER_STEP`` series the steps are pooled too. Days after the
calibrated horizon reuse the last step's quantiles. The served members (refit on all history)
reuse the calibration of the first fit: the refit has the same capacity and more data, so its
errors are assumed no larger.

Test-window coverage (the share of actual sales inside each level's interval) goes into
evaluation.json under ``intervals``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecasting.errors import ArtifactError, ForecastRequestError

FILE = "intervals.json"
METHOD = "split_conformal_log1p_per_step"
PROBABILITIES = np.round(np.arange(1, 200) / 200, 3)
#: Levels whose coverage evaluation.json reports.
REPORTED_LEVELS = (50.0, 80.0, 95.0)
#: Below this many series a step's quantiles are too coarse: all steps are pooled.
MIN_SERIES_PER_STEP = 200
MIN_LEVEL, MAX_LEVEL = 1.0, 99.0


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


@dataclass(frozen=True)
class Calibration:
    """Per-step quantiles of the log1p residuals: what an interval is built from."""

    quantiles: np.ndarray        # (steps, len(PROBABILITIES)), non-decreasing along axis 1
    scores: int                  # residuals the quantiles rest on
    pooled_steps: bool           # True: every step shares one distribution
    window: tuple[str, str]      # first and last day of the calibration window

    @property
    def steps(self) -> int:
        return self.quantiles.shape[0]

    def residual_quantile(self, step: np.ndarray, probability: float) -> np.ndarray:
        """q_step(probability) for 0-based steps (later steps reuse the last one)."""
        rows = self.quantiles[np.minimum(np.asarray(step, dtype=np.int64), self.steps - 1)]
        col = np.interp(probability, PROBABILITIES, np.arange(len(PROBABILITIES)))
        lo = int(np.floor(col))
        hi = min(lo + 1, len(PROBABILITIES) - 1)
        w = col - lo
        return rows[..., lo] * (1 - w) + rows[..., hi] * w

    def bounds(self, forecast: np.ndarray, step: np.ndarray,
               level: float) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) sales for forecasts on 0-based ``step`` (arrays of one shape)."""
        alpha = 1.0 - level / 100.0
        base = np.log1p(np.clip(np.asarray(forecast, dtype=np.float64), 0.0, None))
        lower = np.expm1(base + self.residual_quantile(step, alpha / 2))
        upper = np.expm1(base + self.residual_quantile(step, 1 - alpha / 2))
        return np.clip(lower, 0.0, None), np.clip(upper, 0.0, None)

    def to_json(self) -> dict:
        return {"method": METHOD, "scale": "log1p", "probabilities": PROBABILITIES.tolist(),
                "quantiles": np.round(self.quantiles, 6).tolist(), "scores": self.scores,
                "pooled_steps": self.pooled_steps,
                "window": {"start": self.window[0], "end": self.window[1]}}

    @classmethod
    def from_json(cls, payload: dict) -> Calibration:
        if payload.get("method") != METHOD:
            raise ArtifactError(f"{FILE}: interval method {payload.get('method')!r} is not "
                                f"supported (this library reads {METHOD!r})")
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


def calibrate(forecast: np.ndarray, actual: np.ndarray, window: tuple[str, str]) -> Calibration:
    """Quantiles of the signed log1p residuals per step from (series, steps) arrays.

    ``actual`` is NaN where a series had not begun; those cells are left out.
    """
    forecast = np.clip(np.asarray(forecast, dtype=np.float64), 0.0, None)
    actual = np.asarray(actual, dtype=np.float64)
    resid = np.log1p(np.clip(actual, 0.0, None)) - np.log1p(forecast)
    ok = np.isfinite(resid)
    if not ok.any():
        raise ValueError("no actual sales in the calibration window")
    per_step = ok.sum(axis=0)
    pooled = bool(per_step.min() < MIN_SERIES_PER_STEP)
    if pooled:
        row = np.quantile(resid[ok], PROBABILITIES)
        q = np.tile(row, (resid.shape[1], 1))
    else:
        q = np.stack([np.quantile(resid[ok[:, h], h], PROBABILITIES)
                      for h in range(resid.shape[1])])
    q = np.maximum.accumulate(q, axis=1)  # guard against rounding: quantiles never decrease
    return Calibration(q, int(ok.sum()), pooled, window)


def coverage(calibration: Calibration, forecast: np.ndarray, actual: np.ndarray,
             levels: Iterable[float] = REPORTED_LEVELS) -> dict:
    """Per level: the share of actual sales inside the interval and the mean width, over the
    cells of (series, steps) arrays where ``actual`` is known."""
    forecast = np.asarray(forecast, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    step = np.broadcast_to(np.arange(forecast.shape[1]), forecast.shape)
    known = np.isfinite(actual)
    out = {}
    for level in levels:
        lower, upper = calibration.bounds(forecast, step, level)
        inside = (actual >= lower - 1e-9) & (actual <= upper + 1e-9)
        out[f"{level:g}"] = {"level": float(level),
                             "coverage": round(float(inside[known].mean()), 6),
                             "mean_width": round(float((upper - lower)[known].mean()), 6)}
    return out


def final_forecast(members: dict, final: str, inp) -> np.ndarray:
    """The final member's (series, days) forecast of ``inp`` (a hybrid blends the members')."""
    from forecasting.models.hybrid import HybridMember

    forecasts: dict = {}
    for name, member in members.items():   # members come before the hybrid that blends them
        forecasts[name] = (member.combine(forecasts) if isinstance(member, HybridMember)
                           else member.forecast(inp))
    return forecasts[final]


def calibrate_members(panel, split, members: dict, final: str, store_code: np.ndarray,
                      family_code: np.ndarray) -> tuple[Calibration, dict]:
    """The training pipeline's step: calibrate the final member on the validation window
    (forecast from the last training day) and measure the coverage on the test window
    (forecast from the last validation day). Returns the calibration and evaluation.json's
    ``intervals`` block."""
    from forecasting.history import panel_forecast_input, panel_window

    horizon = split.horizon
    lookback = max(m.lookback for m in members.values())

    def forecast_and_actual(origin: int) -> tuple[np.ndarray, np.ndarray]:
        inp = panel_forecast_input(panel, origin, horizon, lookback, store_code, family_code)
        return (final_forecast(members, final, inp),
                panel_window(panel, origin + horizon, horizon)[0])

    valid_forecast, valid_actual = forecast_and_actual(split.train_end)
    days = panel.dates(np.array([split.train_end + 1, split.valid_end]))
    calibration = calibrate(valid_forecast, valid_actual, (str(days[0]), str(days[1])))
    test_forecast, test_actual = forecast_and_actual(split.valid_end)
    block = {"method": METHOD, "model": final, "file": FILE,
             "calibration_window": {"start": str(days[0]), "end": str(days[1])},
             "calibration_scores": calibration.scores,
             "coverage": coverage(calibration, test_forecast, test_actual)}
    return calibration, block


def save(path: Path, calibration: Calibration) -> None:
    from forecasting.artifact import write_json

    write_json(path, calibration.to_json())


def load(model_dir: Path) -> Calibration | None:
    """The artifact's calibration, or None for an artifact saved without one."""
    path = Path(model_dir) / FILE
    if not path.exists():
        return None
    from forecasting.artifact import read_json

    return Calibration.from_json(read_json(path))
