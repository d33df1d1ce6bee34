"""The SDK's pandas face: calls that take or return DataFrames.

`ForecastClient` inherits these from `FrameMethods`; `client.py` holds the connection and the
calls that return protobuf messages. Everything here needs pandas (the `pandas` extra).

Interval columns follow mlforecast's names: for level 80, `lo-80` and `hi-80` next to `sales`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from forecast_client import rows as _rows
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client.extras import require

if TYPE_CHECKING:
    import pandas as pd

    from forecast_client._gen.forecastapi.v1 import forecast_service_pb2_grpc as pb_grpc
    from forecast_client.config import ClientConfig

#: Default rows per PredictStream chunk and chunks in flight for the bulk helpers.
DEFAULT_CHUNK_ROWS = 50_000
DEFAULT_MAX_IN_FLIGHT = 4


def level_name(level: float) -> str:
    """'80' for 80.0, '99.5' for 99.5: the suffix of the `lo-`/`hi-` columns."""
    return f"{float(level):g}"


def interval_columns(levels: Sequence[float]) -> list[str]:
    """The interval column names for `levels`, in order: lo-80, hi-80, lo-95, hi-95, ..."""
    return [f"{side}-{level_name(lv)}" for lv in levels for side in ("lo", "hi")]


def _check_levels(levels: Iterable[float]) -> list[float]:
    out = [float(lv) for lv in levels]
    for lv in out:
        if not 1 <= lv <= 99:
            raise ValueError(f"levels: {lv:g} is not a percentage from 1 to 99 "
                             "(e.g. 80 or 95)")
    if len(set(out)) != len(out):
        raise ValueError("levels: each level may be given once")
    return out


def _interval_arrays(intervals: Sequence[pb.PredictionInterval]) -> dict[str, Any]:
    np = require("numpy", "DataFrames in and out")

    out: dict[str, Any] = {}
    for interval in intervals:
        name = level_name(interval.level)
        out[f"lo-{name}"] = np.asarray(interval.lower, dtype=np.float64)
        out[f"hi-{name}"] = np.asarray(interval.upper, dtype=np.float64)
    return out


def _promotion_batch(promotions: pd.DataFrame | None) -> pb.RowBatch | None:
    if promotions is None:
        return None
    missing = [c for c in (*_rows.REQUIRED_COLUMNS, "onpromotion") if c not in promotions.columns]
    if missing:
        raise ValueError(f"promotions: missing column(s) {', '.join(missing)}")
    return _rows.make_batch(promotions["date"], promotions["store_nbr"], promotions["family"],
                            promotions["onpromotion"])


class FrameMethods:
    """DataFrame calls of `ForecastClient` (see the module docstring)."""

    if TYPE_CHECKING:  # provided by ForecastClient
        config: ClientConfig
        _stub: pb_grpc.ForecastServiceStub

        def _unary(self, method: Callable[..., Any], request: Any, timeout: float | None, *,
                   repeatable: bool = True) -> Any: ...

        def get_metrics(self, retailer: str, *, model_version: str = "") -> pb.GetMetricsResponse: ...

        def _stream(self, retailer: str, batches: Iterable[pb.RowBatch], *, model_version: str,
                    max_in_flight: int, levels: Sequence[float]) -> Iterator[pb.PredictStreamResponse]: ...

    def predict_frame(
        self,
        retailer: str,
        frame: pd.DataFrame,
        *,
        model_version: str = "",
        output_column: str = "sales",
        levels: Sequence[float] = (),
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> pd.DataFrame:
        """Forecast every row of a pandas DataFrame (columns date, store_nbr, family and
        optionally onpromotion), streaming it in chunks of `chunk_rows`.

        Returns a copy of the frame with the forecasts in `output_column` and, for each of
        `levels` (e.g. `(80, 95)`), the interval columns `lo-80`, `hi-80`, ..., rows in the same
        order. Chunks never split a series: a series' forecast for a day depends on its
        promotions of the days before, which the gateway reads from the same chunk, so the
        answers equal one unary call over the whole frame. `on_progress(rows_done, rows_total)`
        is called after each chunk. A model trained without intervals answers levels with
        FAILED_PRECONDITION. `attrs["warnings"]` holds what the gateway said about the answers
        (rows past the model's trained horizon).
        """
        np = require("numpy", "DataFrames in and out")

        levels = _check_levels(levels)
        total = len(frame)
        out = frame.copy()
        names = [output_column, *interval_columns(levels)]
        if total == 0:
            for name in names:
                out[name] = np.array([], dtype=np.float64)
            return out
        # Chunks hold whole series (a forecast depends on the series' earlier days), so the
        # rows travel grouped by series and the answers are put back in the caller's order.
        codes = _rows.series_codes(frame)
        order = _rows.series_order(codes)
        columns = [c for c in (*_rows.REQUIRED_COLUMNS, "onpromotion") if c in frame.columns]
        batches = _rows.frame_batches(frame[columns].iloc[order], chunk_rows, codes[order])
        parts: dict[str, list[Any]] = {name: [] for name in names}
        warnings: dict[str, None] = {}
        done = 0
        for response in self._stream(retailer, batches, model_version=model_version,
                                     max_in_flight=max_in_flight, levels=levels):
            warnings.update(dict.fromkeys(response.warnings))
            values = {output_column: np.asarray(response.forecast, dtype=np.float64),
                      **_interval_arrays(response.intervals)}
            for name in names:
                parts[name].append(values[name])
            done += len(response.forecast)
            if on_progress is not None:
                on_progress(done, total)
        for name in names:
            result = np.empty(total, dtype=np.float64)
            result[order] = np.concatenate(parts[name])
            out[name] = result
        out.attrs["warnings"] = list(warnings)
        return out

    def forecast(
        self,
        retailer: str,
        days: int = 16,
        *,
        levels: Sequence[float] = (),
        stores: Sequence[int] | None = None,
        families: Sequence[str] | None = None,
        promotions: pd.DataFrame | None = None,
        model_version: str = "",
    ) -> pd.DataFrame:
        """Forecast the next `days` days after the model's history for every series of the
        retailer, or only `stores` and `families` — no file of future rows needed.

        Returns a DataFrame with columns date (YYYY-MM-DD), store_nbr, family, onpromotion,
        sales and, for each of `levels`, `lo-<level>` and `hi-<level>`; ordered by store_nbr,
        family, then date. `promotions` (columns date, store_nbr, family, onpromotion) lists
        known promotions of the forecast days; rows not listed have none. `attrs` holds
        `model_version` and `warnings` (days past the model's trained horizon).
        """
        pd = require("pandas", "DataFrames in and out")

        levels = _check_levels(levels)
        request = pb.ForecastRequest(retailer=retailer, model_version=model_version, days=days,
                                     store_nbr=[int(s) for s in stores or ()],
                                     family=[str(f) for f in families or ()], levels=levels)
        batch = _promotion_batch(promotions)
        if batch is not None:
            request.promotions.CopyFrom(batch)
        response = self._unary(self._stub.Forecast, request, self.config.timeouts.predict_s)
        rows = response.rows
        frame = pd.DataFrame({
            "date": [_rows.day_to_iso(d) for d in rows.day],
            "store_nbr": list(rows.store_nbr),
            "family": list(rows.family),
            "onpromotion": list(rows.onpromotion) or [0] * len(rows.day),
            "sales": list(response.forecast),
        })
        for name, values in _interval_arrays(response.intervals).items():
            frame[name] = values
        frame.attrs["model_version"] = response.model_version
        frame.attrs["warnings"] = list(response.warnings)
        return frame

    def turnover(
        self,
        retailer: str,
        inventory: pd.DataFrame,
        *,
        days: int = 0,
        receipts: pd.DataFrame | None = None,
        lead_time_days: int = 0,
        promotions: pd.DataFrame | None = None,
        model_version: str = "",
    ) -> pd.DataFrame:
        """Days of supply per series from stock on hand and the forecast demand.

        `inventory` has columns store_nbr, family, on_hand (units at the end of the model's
        last history day); `receipts` (optional) has date, store_nbr, family, quantity (units
        arriving at the start of that day). `days` is the horizon (0: the model's horizon);
        `lead_time_days` the window of the stockout probability (0: 7 days, or `days` when
        shorter). Returns one row per inventory row with columns store_nbr, family, on_hand,
        receipts, demand, days_of_supply, beyond_horizon (True: "more than `days` days"),
        turnover and stockout_probability. Bad rows fail with INVALID_ARGUMENT naming them.
        """
        pd = require("pandas", "DataFrames in and out")

        missing = [c for c in ("store_nbr", "family", "on_hand") if c not in inventory.columns]
        if missing:
            raise ValueError(f"inventory: missing column(s) {', '.join(missing)}")
        request = pb.TurnoverRequest(retailer=retailer, model_version=model_version, days=days,
                                     lead_time_days=lead_time_days)
        request.inventory.store_nbr.extend(
            _rows.ints(inventory["store_nbr"].to_numpy(), "inventory.store_nbr"))
        request.inventory.family.extend(inventory["family"].astype(str).tolist())
        request.inventory.on_hand.extend(
            _rows.floats(inventory["on_hand"].to_numpy(), "inventory.on_hand"))
        if receipts is not None:
            missing = [c for c in ("date", "store_nbr", "family", "quantity")
                       if c not in receipts.columns]
            if missing:
                raise ValueError(f"receipts: missing column(s) {', '.join(missing)}")
            batch = _rows.make_batch(receipts["date"], receipts["store_nbr"], receipts["family"])
            request.receipts.day.extend(batch.day)
            request.receipts.store_nbr.extend(batch.store_nbr)
            request.receipts.family.extend(batch.family)
            request.receipts.quantity.extend(
                _rows.floats(receipts["quantity"].to_numpy(), "receipts.quantity"))
        promoted = _promotion_batch(promotions)
        if promoted is not None:
            request.promotions.CopyFrom(promoted)
        response = self._unary(self._stub.Turnover, request, self.config.timeouts.predict_s)
        frame = pd.DataFrame({
            "store_nbr": list(response.store_nbr),
            "family": list(response.family),
            "on_hand": list(response.on_hand),
            "receipts": list(response.receipts),
            "demand": list(response.demand),
            "days_of_supply": list(response.days_of_supply),
            "beyond_horizon": list(response.beyond_horizon),
            "turnover": list(response.turnover),
            "stockout_probability": list(response.stockout_probability),
        })
        frame.attrs.update(model_version=response.model_version, days=response.days,
                           lead_time_days=response.lead_time_days,
                           first_date=response.first_date)
        return frame

    def metrics_frame(self, retailer: str, *, model_version: str = "") -> pd.DataFrame:
        """Overall test metrics as a pandas DataFrame: one row per member and the baseline."""
        pd = require("pandas", "DataFrames in and out")

        response = self.get_metrics(retailer, model_version=model_version)
        records = [
            {"model": e.name, "baseline": e.baseline, "final": e.final,
             "rmse": e.overall.rmse, "rmsle": e.overall.rmsle, "mae": e.overall.mae,
             "wape": e.overall.wape, "bias": e.overall.bias, "mase": e.overall.mase}
            for e in response.evaluations
        ]
        return pd.DataFrame.from_records(records)

    def coverage_frame(self, retailer: str, *, model_version: str = "") -> pd.DataFrame:
        """The final model's interval coverage on its test window: one row per level with
        columns level, coverage (0 to 1) and mean_width; empty for models without intervals."""
        pd = require("pandas", "DataFrames in and out")

        response = self.get_metrics(retailer, model_version=model_version)
        return pd.DataFrame.from_records(
            [{"level": c.level, "coverage": c.coverage, "mean_width": c.mean_width,
              "mean_interval_score": c.mean_interval_score,
              **{f"coverage_{t}": c.coverage_per_third.get(t, float("nan"))
                 for t in ("low", "mid", "high")}}
             for c in response.coverage],
            columns=["level", "coverage", "mean_width", "mean_interval_score", "coverage_low",
                     "coverage_mid", "coverage_high"])
