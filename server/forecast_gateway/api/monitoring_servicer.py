"""`MonitoringServicer`: forecastapi.v1.MonitoringService over the data plane's
`MonitoringService`. Translation only; tenancy goes through `edge.tenant_for`, errors through
the interceptor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import Executor
from typing import Any

import numpy as np
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client._gen.forecastapi.v1 import monitoring_service_pb2 as mpb
from forecast_client._gen.forecastapi.v1 import monitoring_service_pb2_grpc as mpb_grpc

from forecast_gateway.api.edge import in_pool, receive_upload, tenant_for, timestamp
from forecast_gateway.api.shadow_messages import comparison_to_pb, trial_to_pb
from forecast_gateway.dataplane import ForecastService, UploadSession
from forecast_gateway.dataplane.monitoring import MonitoringReport
from forecast_gateway.errors import InvalidArgument

_FORMATS = {pb.DATASET_FORMAT_UNSPECIFIED: "", pb.DATASET_FORMAT_CSV: "csv",
            pb.DATASET_FORMAT_PARQUET: "parquet"}
_METRICS = ("rmse", "rmsle", "mae", "wape", "bias", "mase")


def _values(block: dict | None, prefix: str = "") -> pb.MetricValues:
    block = block or {}
    return pb.MetricValues(**{m: float("nan") if block.get(prefix + m) is None
                              else float(block[prefix + m]) for m in _METRICS})


def actuals_report_to_pb(report: dict) -> mpb.ActualsReport:
    """ActualsReport.as_dict() -> pb."""
    return mpb.ActualsReport(
        rows=report["rows"], new_days=report["new_days"], first_date=report["first_date"],
        last_date=report["last_date"], history_end_date=report["history_end"],
        corrected_rows=report["corrected_rows"], filled_cells=report["filled_cells"],
        dates_missing_in_every_series=report["dates_missing_in_every_series"],
        unknown_series=[f"{s}/{f}" for s, f in report["unknown_series"]],
        unknown_series_count=report["unknown_series_count"])


def drift_to_pb(drift: dict | None, checked_at: float | None = None) -> mpb.DriftReport | None:
    """A drift report (dict form) -> pb."""
    if drift is None:
        return None
    features = [mpb.DriftFeature(family="", feature=k, psi=v)
                for k, v in (drift.get("overall") or {}).items()]
    features += [mpb.DriftFeature(family=fam, feature=k, psi=v)
                 for fam, feats in (drift.get("per_family") or {}).items() for k, v in feats.items()]
    return mpb.DriftReport(
        check_time=timestamp(checked_at), reference_start_date=drift["reference"][0],
        reference_end_date=drift["reference"][1], recent_start_date=drift["recent"][0],
        recent_end_date=drift["recent"][1], features=features,
        drifted=[mpb.DriftFeature(**d) for d in drift.get("drifted") or []],
        moved_series=[mpb.MovedSeries(**m) for m in drift.get("moved_series") or []],
        score=float(drift.get("score") or 0.0), alert=bool(drift.get("alert")))


def _live(step: int, block: dict) -> mpb.LiveScores:
    return mpb.LiveScores(step=step, count=int(block.get("n") or 0), model=_values(block),
                          baseline=_values(block, "naive_"))


def monitoring_to_pb(r: MonitoringReport) -> mpb.GetMonitoringResponse:
    """MonitoringReport -> pb.GetMonitoringResponse."""
    versions = []
    for v in r.versions:
        scores = v["live_scores"]
        test = v["test"] or {}
        versions.append(mpb.VersionAccuracy(
            model_version=v["version"], live=v["live"], test=_values(test),
            test_baseline=_values(test.get("baseline")),
            live_overall=_live(0, scores[0]) if 0 in scores else None,
            live_per_step=[_live(step, block) for step, block in sorted(scores.items()) if step],
            live_per_day=[mpb.DailyScores(
                date=str(np.datetime64(day, "D")), count=int(block.get("n") or 0),
                model=_values(block), baseline=_values(block, "naive_"))
                for day, block in sorted(v["live_daily"].items())]))
    upload = r.last_upload
    return mpb.GetMonitoringResponse(
        retailer=r.retailer, live_model_version=r.live_version, history_end_date=r.history_end,
        versions=versions,
        last_actuals_time=timestamp(upload["uploaded_at"]) if upload else None,
        last_actuals=actuals_report_to_pb(upload["report"]) if upload else None,
        drift=drift_to_pb(r.drift, r.drift_checked_at), retrain_recommended=r.retrain_recommended,
        evidence=r.evidence, served_records=r.served_records, shadow=comparison_to_pb(r.shadow))


class MonitoringServicer(mpb_grpc.MonitoringServiceServicer):
    """forecastapi.v1.MonitoringService on top of `ForecastService.monitoring`."""

    def __init__(self, service: ForecastService, control_pool: Executor,
                 upload_pool: Executor | None = None):
        self._service = service
        self._pool = control_pool
        self._upload_pool = upload_pool or control_pool

    async def AppendActuals(self, request_iterator: AsyncIterator[mpb.AppendActualsRequest],
                            context: Any) -> mpb.AppendActualsResponse:
        def begin(header: mpb.ActualsHeader) -> UploadSession:
            tenant = tenant_for(header.retailer, "header.retailer")
            datasets = self._service.datasets
            datasets.check_file(header.filename, _FORMATS.get(header.format, ""),
                                header.size_bytes)
            correct = header.correct
            return datasets.begin_file(tenant, lambda path, _sha: self._service.monitoring
                                       .append_actuals(tenant, path, correct))

        outcome = await receive_upload(request_iterator, begin, self._pool, self._upload_pool)
        return mpb.AppendActualsResponse(
            report=actuals_report_to_pb(outcome.report), model_version=outcome.model_version,
            dataset_id=outcome.dataset_id, drift=drift_to_pb(outcome.drift),
            retrain_recommended=outcome.retrain_recommended, evidence=outcome.evidence,
            shadow=trial_to_pb(outcome.shadow))

    async def GetMonitoring(self, request: mpb.GetMonitoringRequest,
                            context: Any) -> mpb.GetMonitoringResponse:
        tenant = tenant_for(request.retailer)
        report = await in_pool(self._pool, self._service.monitoring.report, tenant)
        return monitoring_to_pb(report)

    async def CheckDrift(self, request: mpb.CheckDriftRequest,
                         context: Any) -> mpb.CheckDriftResponse:
        tenant = tenant_for(request.retailer)
        if not 0 <= request.window_days <= 366:
            raise InvalidArgument("window_days", "must be between 1 and 366 days (0: 28)")
        drift = await in_pool(self._pool, self._service.monitoring.check_drift, tenant,
                              request.window_days or 28)
        return mpb.CheckDriftResponse(drift=drift_to_pb(drift, None))
