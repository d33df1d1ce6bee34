"""Monitoring calls of `ForecastClient`: new actuals, live accuracy and drift
(forecastapi.v1.MonitoringService)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from forecast_client._gen.forecastapi.v1 import monitoring_service_pb2 as mpb
from forecast_client._gen.forecastapi.v1 import monitoring_service_pb2_grpc as mpb_grpc
from forecast_client.extras import require
from forecast_client.uploads import UPLOAD_CHUNK_BYTES, UploadSource

if TYPE_CHECKING:
    import pandas as pd

    from forecast_client.config import ClientConfig

_METRICS = ("rmse", "rmsle", "mae", "wape", "bias")


class MonitoringMethods:
    """Monitoring calls of `ForecastClient`."""

    if TYPE_CHECKING:  # provided by ForecastClient
        config: ClientConfig
        _monitoring_stub: mpb_grpc.MonitoringServiceStub

        def _unary(self, method: Callable[..., Any], request: Any, timeout: float | None, *,
                   repeatable: bool = True) -> Any: ...

    def append_actuals(
        self,
        retailer: str,
        source: str | Path | bytes | BinaryIO,
        *,
        correct: bool = False,
        filename: str | None = None,
        format: str | None = None,
        chunk_bytes: int = UPLOAD_CHUNK_BYTES,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> mpb.AppendActualsResponse:
        """Append new days of sales (CSV or Parquet of the store-sales schema) to the retailer's
        history.

        The live model moves forward to the latest actual day without a retrain (the response
        names the new live version), the forecasts served for those days are scored, and drift
        is checked. Days the history already holds fail with INVALID_ARGUMENT naming their keys
        unless `correct=True`; a rejected upload changes nothing. `source`, `filename`, `format`,
        `chunk_bytes` and `on_progress` are as in `upload_dataset`.
        """
        with UploadSource(source, filename, format, chunk_bytes) as upload:
            def requests() -> Iterator[mpb.AppendActualsRequest]:
                yield mpb.AppendActualsRequest(header=mpb.ActualsHeader(
                    retailer=retailer, filename=upload.filename, format=upload.format,
                    size_bytes=upload.total or 0, correct=correct))
                for chunk in upload.chunks(on_progress):
                    yield mpb.AppendActualsRequest(chunk=chunk)

            return self._unary(self._monitoring_stub.AppendActuals, requests(),
                               self.config.timeouts.upload_s, repeatable=False)

    def monitoring(self, retailer: str) -> mpb.GetMonitoringResponse:
        """The retailer's monitoring report: live accuracy of each version next to the
        seasonal-naive baseline and its test-window scores, the last actuals, the last drift
        check, and whether a retrain is recommended (with the evidence)."""
        request = mpb.GetMonitoringRequest(retailer=retailer)
        return self._unary(self._monitoring_stub.GetMonitoring, request,
                           self.config.timeouts.unary_s)

    def check_drift(self, retailer: str, *, window_days: int = 0) -> mpb.DriftReport | None:
        """Compare the newest `window_days` (default 28) of actuals with the live model's
        training window now; None before the retailer's first actuals."""
        request = mpb.CheckDriftRequest(retailer=retailer, window_days=window_days)
        response = self._unary(self._monitoring_stub.CheckDrift, request,
                               self.config.timeouts.unary_s)
        return response.drift if response.HasField("drift") else None

    def monitoring_frame(self, retailer: str, *, by: Literal["step", "date"] = "step"
                         ) -> pd.DataFrame:
        """Live scores as a DataFrame, one row per (trained version, horizon step) with step 0
        meaning all steps, or with `by="date"` per (trained version, target day): the live error
        over time. Columns: `model_version`, `live`, `step` or `date`, `count`, the model's
        metrics and the baseline's (`baseline_<metric>`). Needs the `pandas` extra."""
        pd = require("pandas", "DataFrames in and out")

        if by not in ("step", "date"):
            raise ValueError(f"by must be 'step' or 'date', got {by!r}")
        rows = []
        for v in self.monitoring(retailer).versions:
            blocks: list[Any] = list(v.live_per_day) if by == "date" else (
                ([v.live_overall] if v.HasField("live_overall") else []) + list(v.live_per_step))
            for block in blocks:
                row: dict[str, Any] = {"model_version": v.model_version, "live": v.live,
                                       by: getattr(block, by), "count": block.count}
                for metric in _METRICS:
                    row[metric] = getattr(block.model, metric)
                    row[f"baseline_{metric}"] = getattr(block.baseline, metric)
                rows.append(row)
        columns = ["model_version", "live", by, "count", *_METRICS,
                   *(f"baseline_{m}" for m in _METRICS)]
        frame = pd.DataFrame(rows, columns=columns)
        if by == "date":
            frame["date"] = pd.to_datetime(frame["date"])
        return frame
