"""`ForecastServicer`: translates forecastapi.v1 messages to data-plane calls and back.

No decisions live here: validation, limits and errors belong to the data plane
(`forecast_gateway.dataplane`), status codes to `interceptor.to_status`. The retailer a request
names becomes a `Tenant` in one place, `edge.tenant_for`, which also checks that the caller may
act for it. Blocking work runs in the thread pools given at construction (stream chunks, unary
predictions, control calls, uploads), so the event loop keeps serving other calls.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import numpy as np
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2_grpc as pb_grpc

from forecast_gateway.api.edge import (
    STATE_FROM_PB,
    STATE_TO_PB,
    in_pool,
    receive_upload,
    tenant_for,
    timestamp,
)
from forecast_gateway.api.export_messages import export_to_pb, format_from_pb
from forecast_gateway.api.planning_messages import (
    coverage_to_pb,
    decision_to_pb,
    forecast_to_pb,
    intervals_to_pb,
    inventory_from_pb,
    promote_from_pb,
    promote_to_pb,
    promotions_from_pb,
    receipts_from_pb,
    turnover_to_pb,
)
from forecast_gateway.api.shadow_messages import promote_after_from_pb, trial_to_pb
from forecast_gateway.dataplane import ForecastService, UploadSession
from forecast_gateway.domain import (
    Dataset,
    Evaluation,
    Job,
    MetricsReport,
    ModelVersion,
    RowColumns,
    Scores,
)
from forecast_gateway.errors import InvalidArgument
from forecast_gateway.memory import Releaser

T = TypeVar("T")

_FORMAT_TO_PB = {"csv": pb.DATASET_FORMAT_CSV, "parquet": pb.DATASET_FORMAT_PARQUET}
_FORMAT_FROM_PB = {pb.DATASET_FORMAT_UNSPECIFIED: "", pb.DATASET_FORMAT_CSV: "csv",
                   pb.DATASET_FORMAT_PARQUET: "parquet"}


# -- translation ---------------------------------------------------------------------------------

def rows_from_pb(batch: pb.RowBatch) -> RowColumns:
    """RowBatch -> RowColumns (numpy columns)."""
    n = len(batch.day)
    promo = np.fromiter(batch.onpromotion, dtype=np.int32, count=len(batch.onpromotion)) \
        if len(batch.onpromotion) else None
    return RowColumns(
        day=np.fromiter(batch.day, dtype=np.int32, count=n),
        store_nbr=np.fromiter(batch.store_nbr, dtype=np.int32, count=len(batch.store_nbr)),
        family=np.asarray(list(batch.family), dtype=str) if len(batch.family) else np.zeros(0, dtype=str),
        onpromotion=promo,
    )


def dataset_to_pb(ds: Dataset) -> pb.Dataset:
    """Dataset -> pb.Dataset."""
    return pb.Dataset(
        dataset_id=ds.dataset_id, retailer=ds.retailer, filename=ds.filename,
        format=_FORMAT_TO_PB.get(ds.format, pb.DATASET_FORMAT_UNSPECIFIED),
        size_bytes=ds.size_bytes, sha256=ds.sha256, rows=ds.rows, series=ds.series,
        start_date=ds.start_date, end_date=ds.end_date, create_time=timestamp(ds.created_at),
    )


def job_to_pb(job: Job) -> pb.TrainingJob:
    """Job -> pb.TrainingJob."""
    return pb.TrainingJob(
        job_id=job.job_id, retailer=job.retailer, dataset_id=job.dataset_id,
        model_kind=job.model_kind, hyperparameters=job.hyperparameters, horizon=job.horizon,
        state=STATE_TO_PB[job.state], create_time=timestamp(job.created_at),
        start_time=timestamp(job.started_at), end_time=timestamp(job.ended_at),
        failure_reason=job.failure_reason, model_version=job.model_version, stage=job.stage,
        progress=job.progress, metrics=job.metrics, promote=promote_to_pb(job.promote),
        promotion=decision_to_pb(job.promotion), data_note=job.data_note,
        request_id=job.request_id,
    )


#: ModelApproval -> the backends' approval statuses (`backends.base.APPROVALS`).
APPROVALS = {pb.MODEL_APPROVAL_PENDING: "PendingManualApproval",
             pb.MODEL_APPROVAL_APPROVED: "Approved", pb.MODEL_APPROVAL_REJECTED: "Rejected"}


def model_to_pb(m: ModelVersion) -> pb.ModelVersion:
    """ModelVersion -> pb.ModelVersion."""
    return pb.ModelVersion(
        version=m.version, retailer=m.retailer, live=m.live, job_id=m.job_id,
        dataset_id=m.dataset_id, model_kind=m.model_kind, final_model=m.final_model,
        data_start_date=m.data_start, data_end_date=m.data_end, horizon=m.horizon,
        create_time=timestamp(m.created_at), promotion=decision_to_pb(m.promotion),
        shadow=m.shadow, trial=trial_to_pb(m.trial),
    )


def _scores_pb(s: Scores) -> pb.MetricValues:
    return pb.MetricValues(rmse=s.rmse, rmsle=s.rmsle, mae=s.mae, wape=s.wape, bias=s.bias,
                           mase=s.mase)


def _evaluation_pb(e: Evaluation) -> pb.ModelEvaluation:
    return pb.ModelEvaluation(
        name=e.name, baseline=e.baseline, final=e.final, overall=_scores_pb(e.overall),
        per_family={f: _scores_pb(s) for f, s in e.per_family.items()},
    )


def metrics_to_pb(r: MetricsReport) -> pb.GetMetricsResponse:
    """MetricsReport -> pb.GetMetricsResponse."""
    return pb.GetMetricsResponse(
        model=model_to_pb(r.model), horizon=r.horizon, origin_date=r.origin,
        test_start_date=r.test_start, test_end_date=r.test_end,
        evaluations=[_evaluation_pb(e) for e in r.evaluations],
        coverage=coverage_to_pb(r.coverage),
    )


# -- the servicer --------------------------------------------------------------------------------

class ForecastServicer(pb_grpc.ForecastServiceServicer):
    """forecastapi.v1.ForecastService on top of `ForecastService`."""

    def __init__(self, service: ForecastService, predict_pool: Executor, control_pool: Executor,
                 *, unary_pool: Executor | None = None, upload_pool: Executor | None = None,
                 releaser: Releaser | None = None):
        self._service = service
        self._predict_pool = predict_pool  # PredictStream chunks
        self._unary_pool = unary_pool or predict_pool  # Predict: never queued behind chunks
        self._control_pool = control_pool
        self._upload_pool = upload_pool or control_pool  # uploads, file:// datasets
        self._releaser = releaser  # hands bulk streams' freed memory back to the OS

    async def _control(self, fn: Callable[..., T], *args: Any) -> T:
        return await in_pool(self._control_pool, fn, *args)

    async def UploadDataset(self, request_iterator: AsyncIterator[pb.UploadDatasetRequest],
                            context: Any) -> pb.UploadDatasetResponse:
        def begin(h: pb.UploadHeader) -> UploadSession:
            return self._service.datasets.begin_upload(
                tenant_for(h.retailer, "header.retailer"), h.filename,
                _FORMAT_FROM_PB.get(h.format, ""), h.size_bytes)

        dataset = await receive_upload(request_iterator, begin, self._control_pool,
                                       self._upload_pool)
        return pb.UploadDatasetResponse(dataset=dataset_to_pb(dataset))

    async def Train(self, request: pb.TrainRequest, context: Any) -> pb.TrainResponse:
        pool = self._upload_pool if request.data_uri else self._control_pool  # reads a file
        job = await in_pool(pool,
            self._service.jobs.train, tenant_for(request.retailer), request.dataset_id,
            request.data_uri, request.model_kind, dict(request.hyperparameters), request.horizon,
            promote_from_pb(request.promote), request.request_id, promote_after_from_pb(request))
        return pb.TrainResponse(job=job_to_pb(job))

    async def GetTrainingJob(self, request: pb.GetTrainingJobRequest, context: Any) -> pb.GetTrainingJobResponse:
        job = await self._control(self._service.jobs.get, tenant_for(request.retailer),
                                  request.job_id)
        return pb.GetTrainingJobResponse(job=job_to_pb(job))

    async def ListTrainingJobs(self, request: pb.ListTrainingJobsRequest,
                               context: Any) -> pb.ListTrainingJobsResponse:
        state = STATE_FROM_PB.get(request.state)
        jobs, token = await self._control(self._service.jobs.list, tenant_for(request.retailer),
                                          request.page_size, request.page_token, state)
        return pb.ListTrainingJobsResponse(jobs=[job_to_pb(j) for j in jobs], next_page_token=token)

    async def WatchTrainingJob(self, request: pb.WatchTrainingJobRequest,
                               context: Any) -> AsyncIterator[pb.WatchTrainingJobResponse]:
        async for job in self._service.jobs.watch(tenant_for(request.retailer),
                                                  request.job_id):
            yield pb.WatchTrainingJobResponse(job=job_to_pb(job), terminal=job.state.terminal)

    async def CancelTrainingJob(self, request: pb.CancelTrainingJobRequest,
                                context: Any) -> pb.CancelTrainingJobResponse:
        job = await self._control(self._service.jobs.cancel, tenant_for(request.retailer),
                                  request.job_id)
        return pb.CancelTrainingJobResponse(job=job_to_pb(job))

    def _predict_unary(self, request: pb.PredictRequest) -> pb.PredictResponse:
        answer = self._service.predictions.predict_intervals(
            tenant_for(request.retailer), request.model_version, rows_from_pb(request.rows),
            list(request.levels))
        return pb.PredictResponse(forecast=answer.values.tolist(), model_version=answer.version,
                                  intervals=intervals_to_pb(answer.bounds),
                                  warnings=answer.warnings)

    async def Predict(self, request: pb.PredictRequest, context: Any) -> pb.PredictResponse:
        return await in_pool(self._unary_pool, self._predict_unary, request)

    def _predict_chunk(self, ref: Any, request: pb.PredictStreamRequest,
                       levels: list[float]) -> pb.PredictStreamResponse:
        try:
            rows = rows_from_pb(request.rows)
            self._service.predictions.check_rows(rows, self._service.config.max_stream_chunk_rows,
                                                 "a PredictStream chunk")
            values, bounds = self._service.predictions.predict_with_levels(ref, rows, levels)
            warnings = self._service.predictions.warnings(ref, rows, levels)
        except Exception as exc:
            exc.add_note(f"chunk {request.chunk_id!r}")
            raise
        return pb.PredictStreamResponse(chunk_id=request.chunk_id, forecast=values.tolist(),
                                        model_version=ref.version,
                                        intervals=intervals_to_pb(bounds), warnings=warnings)

    async def PredictStream(self, request_iterator: AsyncIterator[pb.PredictStreamRequest],
                            context: Any) -> AsyncIterator[pb.PredictStreamResponse]:
        # At most `stream_window` chunks are forecast at once (the cores work in parallel); the
        # next chunk is read only while the window has room, so gRPC's flow control holds back
        # a client that sends faster than we forecast. Answers leave in the order chunks came,
        # each as soon as it and those before it are done: a client that waits for an answer
        # before sending its next chunk is answered.
        ref = None
        levels: list[float] = []  # read from the first chunk, like the model version
        window = self._service.config.stream_window
        requests = aiter(request_iterator)
        reading: asyncio.Future | None = asyncio.ensure_future(anext(requests))
        in_flight: collections.deque[asyncio.Future] = collections.deque()
        try:
            while reading is not None or in_flight:
                waiting = {in_flight[0]} if in_flight else set()
                if reading is not None and len(in_flight) < window:
                    waiting.add(reading)
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if in_flight and in_flight[0].done():
                    yield in_flight.popleft().result()
                    continue
                if reading is None or not reading.done():
                    continue
                try:
                    request = reading.result()
                except StopAsyncIteration:
                    reading = None
                    continue
                reading = None
                if not request.chunk_id:
                    raise InvalidArgument("chunk_id", "is required on every chunk")
                if ref is None:
                    ref = await self._control(self._service.models.resolve,
                                              tenant_for(request.retailer), request.model_version)
                    levels = list(request.levels)
                elif request.retailer and request.retailer != ref.retailer:
                    raise InvalidArgument("retailer", f"chunk {request.chunk_id!r} names "
                                          "another retailer than the first chunk")
                in_flight.append(asyncio.ensure_future(
                    in_pool(self._predict_pool, self._predict_chunk, ref, request, levels)))
                reading = asyncio.ensure_future(anext(requests))
        finally:  # a cancelled or failed stream starts no more work
            for future in (*in_flight, *([reading] if reading is not None else [])):
                future.cancel()
            if self._releaser is not None:
                self._releaser.stream_ended()

    async def GetMetrics(self, request: pb.GetMetricsRequest, context: Any) -> pb.GetMetricsResponse:
        report = await self._control(self._service.models.metrics, tenant_for(request.retailer),
                                     request.model_version)
        return metrics_to_pb(report)

    async def ListModels(self, request: pb.ListModelsRequest, context: Any) -> pb.ListModelsResponse:
        models = await self._control(self._service.models.list, tenant_for(request.retailer))
        return pb.ListModelsResponse(models=[model_to_pb(m) for m in models])

    async def SetLiveModel(self, request: pb.SetLiveModelRequest, context: Any) -> pb.SetLiveModelResponse:
        model = await self._control(self._service.models.set_live, tenant_for(request.retailer),
                                    request.model_version)
        return pb.SetLiveModelResponse(model=model_to_pb(model))

    async def SetModelApproval(self, request: pb.SetModelApprovalRequest,
                               context: Any) -> pb.SetModelApprovalResponse:
        tenant = tenant_for(request.retailer)   # another retailer's call: PERMISSION_DENIED first
        approval = APPROVALS.get(request.approval)
        if approval is None:
            raise InvalidArgument("approval", "must be APPROVED, REJECTED or PENDING")
        model, entry = await self._control(
            self._service.models.set_approval, tenant, request.model_version, approval,
            request.description)
        return pb.SetModelApprovalResponse(model=model_to_pb(model), approval=request.approval,
                                           registry_entry=entry)

    async def Forecast(self, request: pb.ForecastRequest, context: Any) -> pb.ForecastResponse:
        answer = await in_pool(
            self._unary_pool, self._service.planning.forecast, tenant_for(request.retailer),
            request.model_version, request.days, list(request.store_nbr), list(request.family),
            list(request.levels), promotions_from_pb(request.promotions))
        return forecast_to_pb(answer)

    async def Turnover(self, request: pb.TurnoverRequest, context: Any) -> pb.TurnoverResponse:
        report = await in_pool(
            self._unary_pool, self._service.planning.turnover, tenant_for(request.retailer),
            request.model_version, request.days, inventory_from_pb(request.inventory),
            receipts_from_pb(request.receipts), request.lead_time_days,
            promotions_from_pb(request.promotions))
        return turnover_to_pb(report)

    async def ExportForecasts(self, request: pb.ExportForecastsRequest,
                              context: Any) -> pb.ExportForecastsResponse:
        job = await self._control(
            self._service.exports.start, tenant_for(request.retailer), request.model_version,
            request.days, list(request.store_nbr), list(request.family), list(request.levels),
            request.destination, format_from_pb(request.format))
        return pb.ExportForecastsResponse(job=export_to_pb(job))

    async def GetExportJob(self, request: pb.GetExportJobRequest,
                           context: Any) -> pb.GetExportJobResponse:
        job = await self._control(self._service.exports.get, tenant_for(request.retailer),
                                  request.export_id)
        return pb.GetExportJobResponse(job=export_to_pb(job))

    async def WatchExportJob(self, request: pb.WatchExportJobRequest,
                             context: Any) -> AsyncIterator[pb.WatchExportJobResponse]:
        async for job in self._service.exports.watch(tenant_for(request.retailer),
                                                     request.export_id):
            yield pb.WatchExportJobResponse(job=export_to_pb(job), terminal=job.state.terminal)

    async def CancelExportJob(self, request: pb.CancelExportJobRequest,
                              context: Any) -> pb.CancelExportJobResponse:
        job = await self._control(self._service.exports.cancel, tenant_for(request.retailer),
                                  request.export_id)
        return pb.CancelExportJobResponse(job=export_to_pb(job))
