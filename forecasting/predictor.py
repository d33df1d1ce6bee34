"""A loaded model that answers forecasts: used by the inference container and the gateway.

Load once per process (``Predictor.load``); ``predict*`` calls are thread-safe (XGBoost's
``inplace_predict`` is, and nothing else mutates state).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting import artifact, intervals
from forecasting.errors import ArtifactError, ForecastRequestError
from forecasting.forecast import Grid, SeriesLookup, build_grid, future_rows, gather
from forecasting.history import ForecastInput
from forecasting.models import member_class
from forecasting.schema import validate_future
from forecasting.wide import WideForecasts


class Predictor:
    """Forecasts from one model artifact."""

    def __init__(self, model_dir: Path, metadata: dict, members: dict, encoders: dict,
                 history: artifact.SeriesTable, zero_series: list, evaluation: dict,
                 calibration: intervals.AnyCalibration | None = None):
        self.model_dir = model_dir
        self.calibration = calibration
        self.metadata = metadata
        self.members = members
        self.final = members[metadata["final_model"]]
        self.evaluation = evaluation
        self.history = history
        self.encoders = encoders
        stores = np.asarray(encoders["store_nbr"], dtype=np.int64)
        families = np.asarray(encoders["family"], dtype=str)
        self.store_code = np.searchsorted(stores, history.store_nbr).astype(np.int32)
        self.family_code = np.searchsorted(families, history.family.astype(str)).astype(np.int32)
        zero_store = np.array([s for s, _ in zero_series], dtype=np.int64)
        zero_family = np.array([f for _, f in zero_series], dtype=str)
        self.lookup = SeriesLookup.build(history.store_nbr, history.family.astype(str),
                                         zero_store, zero_family)
        # Every series the model answers for: with history, and never sold (forecast 0).
        self.series = pd.DataFrame({
            "store_nbr": np.concatenate([history.store_nbr.astype(np.int64), zero_store]),
            "family": np.concatenate([history.family.astype(str), zero_family]).astype(object)})

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> Predictor:
        """Check and load an artifact directory; ``ArtifactError`` when it is not usable."""
        root = Path(model_dir)
        meta = artifact.check(root)
        try:
            members: dict = {}
            for name, info in meta["members"].items():
                member_meta = artifact.read_json(root / "members" / name / "member.json")
                cls_ = member_class(info["kind"])
                if info["kind"] == "hybrid":
                    members[name] = cls_.load(root / "members" / name, member_meta, members)
                else:
                    members[name] = cls_.load(root / "members" / name, member_meta)
            history = artifact.load_history(root / "history.parquet")
            return cls(root, meta, members, artifact.read_json(root / "encoders.json"), history,
                       artifact.read_json(root / "zero_series.json"),
                       artifact.read_json(root / "evaluation.json"), intervals.load(root))
        except ArtifactError:
            raise
        except Exception as exc:  # a damaged member file, parquet, ...
            raise ArtifactError(f"model artifact in {str(root)!r} cannot be loaded: "
                                f"{type(exc).__name__}: {exc}") from exc

    @classmethod
    def from_trained(cls, model) -> Predictor:
        """A predictor of a ``training.TrainedModel`` still in memory (no save and load: a
        backtest forecasts from each window's model at once)."""
        zero = [[int(s), str(f)] for s, f in zip(model.zero_series["store_nbr"],
                                                 model.zero_series["family"])]
        return cls(Path("."), model.metadata, model.members, model.encoders, model.history,
                   zero, model.evaluation, model.calibration)

    @property
    def last_date(self) -> np.datetime64:
        """The last day of the training history; forecasts start the day after."""
        return self.history.last_date

    def future_rows(self, days: int, onpromotion: int = 0) -> pd.DataFrame:
        """Every series the model answers for on each of the ``days`` days after its history,
        as rows ``predict`` accepts (see ``forecasting.forecast.future_rows``)."""
        return future_rows(self.series, days, self.last_date, onpromotion)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Forecasts for future rows (date, store_nbr, family[, onpromotion]), in row order."""
        rows, _ = validate_future(frame)
        return self.predict_columns(rows["date"].to_numpy(), rows["store_nbr"].to_numpy(),
                                    rows["family"].astype(str).to_numpy(),
                                    rows["onpromotion"].to_numpy())

    def predict_frame_intervals(self, frame: pd.DataFrame, levels,
                                ) -> tuple[np.ndarray, dict[float, tuple[np.ndarray, np.ndarray]]]:
        """``predict`` with the interval bounds per level (see ``predict_intervals``)."""
        rows, _ = validate_future(frame)
        return self.predict_intervals(rows["date"].to_numpy(), rows["store_nbr"].to_numpy(),
                                      rows["family"].astype(str).to_numpy(),
                                      rows["onpromotion"].to_numpy(), levels)

    def predict_columns(self, date, store_nbr, family, onpromotion=None,
                        wide: WideForecasts | None = None) -> np.ndarray:
        """Columnar fast path: equal-length arrays in, float64 forecasts out, in order. With
        ``wide``, a large request borrows its helper threads (``forecasting.wide``)."""
        grid, forecasts = self.forecast_grid(date, store_nbr, family, onpromotion, wide)
        return gather(grid, forecasts)

    def predict_intervals(self, date, store_nbr, family, onpromotion=None, levels=(),
                          wide: WideForecasts | None = None,
                          ) -> tuple[np.ndarray, dict[float, tuple[np.ndarray, np.ndarray]]]:
        """``predict_columns`` plus, per level in percent (e.g. 80), the (lower, upper) bounds
        of each row's prediction interval (``forecasting.intervals``).

        ``ArtifactError`` when levels are asked of a model saved without a calibration.
        """
        levels = intervals.check_levels(levels)
        if levels:
            self.require_calibration()
        grid, forecasts = self.forecast_grid(date, store_nbr, family, onpromotion, wide)
        point = gather(grid, forecasts)
        if not levels:   # no calibration work for a point forecast
            return point, {}
        step = np.broadcast_to(np.arange(forecasts.shape[1]), forecasts.shape)
        recent = self.history.sales[grid.series]      # each series' own variability
        bounds = {}
        for level in levels:
            lower, upper = (self.calibration.bounds(forecasts, step, level, recent)
                            if forecasts.size else (forecasts, forecasts))
            bounds[level] = (gather(grid, lower), gather(grid, upper))
        return point, bounds

    def require_calibration(self) -> intervals.AnyCalibration:
        """The calibration; ``ArtifactError`` naming the way out when there is none."""
        if self.calibration is None:
            version = self.metadata.get("schema_version")
            raise ArtifactError(f"this model was saved without prediction intervals (artifact "
                                f"schema version {version}); retrain it to get intervals")
        return self.calibration

    def forecast_grid(self, date, store_nbr, family, onpromotion=None,
                      wide: WideForecasts | None = None) -> tuple[Grid, np.ndarray]:
        """The request laid out as series x day and the (series, day) forecasts of it."""
        grid = build_grid(self.lookup, self.last_date, date, store_nbr, family, onpromotion)
        if len(grid.series) == 0:
            return grid, np.zeros((0, grid.horizon))
        s = grid.series
        dates = self.last_date + np.arange(1, grid.horizon + 1).astype("timedelta64[D]")
        inp = ForecastInput(self.history.sales[s], self.history.promo[s], self.store_code[s],
                            self.family_code[s], dates, grid.promo)
        if wide is None or self.final.kind != "xgboost":   # the recursion that can split
            return grid, self.final.forecast(inp)
        with wide.lend(len(s)) as (threads, pool):
            return grid, self.final.forecast(inp, threads, pool)

    def predict_feature_rows(self, matrix: np.ndarray) -> np.ndarray:
        """The built-in XGBoost convention: ready rows in ``features.json`` order -> sales."""
        member = self.members.get("xgboost")
        if member is None:
            raise ForecastRequestError("content type", "ready feature rows (headerless CSV) "
                                       "need a model with an XGBoost member")
        names = member.features.names
        matrix = np.asarray(matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != len(names):
            width = matrix.shape[1] if matrix.ndim == 2 else 0
            raise ForecastRequestError(
                "features", f"each row needs {len(names)} values ({', '.join(names)}), "
                            f"got {width}")
        from forecasting.models.base import from_target
        return from_target(member.predict_features(matrix), member.log_target).astype(np.float64)
