"""`AsyncForecastClient`: the SDK's core calls for asyncio programs, over grpc.aio.

The same `ClientConfig`, retries, load balancing, API key, timeouts and `ForecastClientError`s
as `ForecastClient`; the requests and errors come from `forecast_client.requests`, which both
clients share. The DataFrame helpers (`predict_frame`, `forecast`, `turnover`, ...) and the
monitoring calls are only on `ForecastClient`.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import grpc
import grpc.aio

from forecast_client import requests as _req
from forecast_client import rows as _rows
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2_grpc as pb_grpc
from forecast_client.config import ClientConfig
from forecast_client.exports import AsyncExportMethods
from forecast_client.frames import DEFAULT_MAX_IN_FLIGHT
from forecast_client.requests import Promote
from forecast_client.uploads import UPLOAD_CHUNK_BYTES, UploadSource
from forecast_client.waiting import await_terminal

T = TypeVar("T")


class AsyncForecastClient(AsyncExportMethods):
    """A connection to a forecast gateway for asyncio code.

    >>> async with AsyncForecastClient(ClientConfig(target="127.0.0.1:50051")) as client:
    ...     ds = await client.upload_dataset("acme", "data/sample/train.csv")
    ...     job = await client.train("acme", dataset_id=ds.dataset_id)
    ...     await client.wait_for_job("acme", job.job_id)

    Every call raises `ForecastClientError` (carrying the gRPC status code) when it fails. One
    client serves many concurrent tasks of its event loop; create it inside that loop.
    """

    def __init__(self, config: ClientConfig | None = None, *, target: str | None = None,
                 api_key: str | None = None):
        """Open a channel to `config.target` (or `target` and `api_key`, shortcuts for the
        default config; the key otherwise comes from FORECAST_API_KEY).

        The channel connects lazily; await `wait_until_ready` to fail fast when the gateway is
        down.
        """
        self.config = config = _req.resolve_config(config, target, api_key)
        creds = _req.channel_credentials(config)
        options = config.channel_options()
        if creds is None:
            self._channel = grpc.aio.insecure_channel(config.target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(config.target, creds, options=options)
        self._stub = pb_grpc.ForecastServiceStub(self._channel)

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the channel; in-flight calls are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncForecastClient:  # noqa: PYI034
        """Use the client as an async context manager; the channel closes on exit."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the channel."""
        await self.close()

    async def wait_until_ready(self, timeout_s: float | None = None) -> None:
        """Wait until the channel is connected; UNAVAILABLE error after `timeout_s` (default:
        `config.timeouts.connect_s`)."""
        timeout = self.config.timeouts.connect_s if timeout_s is None else timeout_s
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except TimeoutError:
            raise _req.not_ready_error(self.config.target, timeout) from None

    # -- plumbing ----------------------------------------------------------------------------

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return _req.call_metadata(self.config)

    async def _unary(self, method: Callable[..., Awaitable[T]], request: Any,
                     timeout: float | None, *, repeatable: bool = True) -> T:
        """One unary call; a `repeatable` one is sent again when the gateway went away
        (`Schedule.resend_pause`), with backoff, while the deadline allows."""
        metadata = self._metadata()
        schedule = _req.Schedule(self.config.retry, timeout)
        while True:
            try:
                return await method(
                    request, timeout=schedule.remaining(), metadata=metadata,
                    wait_for_ready=self.config.wait_for_ready,
                )
            except grpc.RpcError as err:
                pause = schedule.resend_pause(err.code(), repeatable)
                if pause is None:
                    raise _req.call_error(err, metadata, self.config.target) from None
            await asyncio.sleep(pause)

    # -- datasets ----------------------------------------------------------------------------

    async def upload_dataset(
        self,
        retailer: str,
        source: str | Path | bytes | BinaryIO,
        *,
        filename: str | None = None,
        format: str | None = None,
        chunk_bytes: int = UPLOAD_CHUNK_BYTES,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> pb.Dataset:
        """Upload a CSV or Parquet file of sales history and return the validated dataset.

        As `ForecastClient.upload_dataset`; the file is read in a worker thread, a chunk at a
        time, so the event loop keeps serving other tasks during a large upload.
        """
        with UploadSource(source, filename, format, chunk_bytes) as upload:
            async def requests() -> AsyncIterator[pb.UploadDatasetRequest]:
                yield _req.upload_header(retailer, upload)
                sent = 0
                while chunk := await asyncio.to_thread(upload.stream.read, upload.chunk_bytes):
                    sent += len(chunk)
                    yield pb.UploadDatasetRequest(chunk=chunk)
                    if on_progress is not None:
                        on_progress(sent, upload.total)

            response = await self._unary(self._stub.UploadDataset, requests(),
                                         self.config.timeouts.upload_s, repeatable=False)
        return response.dataset

    # -- training ----------------------------------------------------------------------------

    async def train(
        self,
        retailer: str,
        *,
        dataset_id: str | None = None,
        data_uri: str | None = None,
        model_kind: str = "xgboost",
        hyperparameters: dict[str, Any] | None = None,
        horizon: int = 0,
        promote: Promote = "if_better",
        request_id: str | None = None,
        promote_after: Mapping[str, float] | None = None,
    ) -> pb.TrainingJob:
        """Start training on an uploaded dataset (or a `data_uri` the gateway may read) and
        return the queued job; see `ForecastClient.train` for `promote` and `promote_after`.

        `request_id` (default: a fresh random id) makes the call safe to repeat: a Train that
        arrives again with the same id returns the job the first one started.
        """
        request = _req.train_request(
            retailer, dataset_id=dataset_id, data_uri=data_uri, model_kind=model_kind,
            hyperparameters=hyperparameters, horizon=horizon, promote=promote,
            request_id=request_id, promote_after=promote_after)
        return (await self._unary(self._stub.Train, request, self.config.timeouts.unary_s)).job

    async def get_job(self, retailer: str, job_id: str) -> pb.TrainingJob:
        """Return one training job."""
        request = pb.GetTrainingJobRequest(retailer=retailer, job_id=job_id)
        response = await self._unary(self._stub.GetTrainingJob, request,
                                     self.config.timeouts.unary_s)
        return response.job

    async def list_jobs(self, retailer: str, *,
                        state: pb.JobState.ValueType = pb.JOB_STATE_UNSPECIFIED,
                        limit: int | None = None) -> list[pb.TrainingJob]:
        """Return a retailer's jobs, newest first (all pages, or at most `limit`), optionally
        only those in `state`."""
        jobs: list[pb.TrainingJob] = []
        token = ""
        while True:
            request = _req.jobs_page_request(retailer, state, limit, len(jobs), token)
            response = await self._unary(self._stub.ListTrainingJobs, request,
                                         self.config.timeouts.unary_s)
            jobs.extend(response.jobs)
            token = response.next_page_token
            if _req.jobs_done(token, limit, len(jobs)):
                return jobs

    async def watch_job(self, retailer: str, job_id: str) -> AsyncGenerator[pb.TrainingJob, None]:
        """Yield the job each time its state or progress changes, ending after the terminal state.

        To stop early, close the iterator (`contextlib.aclosing`); the call is cancelled.
        """
        async for job in self._watch(self._stub.WatchTrainingJob,
                                     pb.WatchTrainingJobRequest(retailer=retailer, job_id=job_id)):
            yield job

    async def _watch(self, method: Callable[..., Any],
                     request: Any) -> AsyncGenerator[Any, None]:
        """The `job` of each event of a watch stream (training or export), ending with the
        stream; closing the iterator cancels the call."""
        metadata = self._metadata()
        call = method(request, timeout=self.config.timeouts.stream_s, metadata=metadata,
                      wait_for_ready=self.config.wait_for_ready)
        try:
            async for event in call:
                yield event.job
        except grpc.RpcError as err:
            raise _req.call_error(err, metadata, self.config.target) from None
        finally:
            call.cancel()

    async def wait_for_job(
        self,
        retailer: str,
        job_id: str,
        *,
        on_update: Callable[[pb.TrainingJob], None] | None = None,
        timeout_s: float | None = None,
    ) -> pb.TrainingJob:
        """Wait until the job is terminal and return it; `on_update(job)` sees every event.

        Survives a gateway restart: on UNAVAILABLE (or the CANCELLED of a stopping gateway)
        it reconnects and keeps watching. Raises DEADLINE_EXCEEDED after `timeout_s` (None: no
        limit), also while no event arrives.
        """
        return await await_terminal(lambda: self.watch_job(retailer, job_id),
                                    self.config.retry, job_id, timeout_s, on_update)

    async def cancel_job(self, retailer: str, job_id: str) -> pb.TrainingJob:
        """Ask a queued or running job to stop; FAILED_PRECONDITION when it already finished."""
        request = pb.CancelTrainingJobRequest(retailer=retailer, job_id=job_id)
        # Not repeated by the SDK: a second cancel of a job the first one stopped fails.
        response = await self._unary(self._stub.CancelTrainingJob, request,
                                     self.config.timeouts.unary_s, repeatable=False)
        return response.job

    # -- predictions -------------------------------------------------------------------------

    async def predict(
        self,
        retailer: str,
        *,
        date: Any,
        store_nbr: Any,
        family: Any,
        onpromotion: Any | None = None,
        model_version: str = "",
    ) -> _rows.Forecasts:
        """Forecast a few rows (at most 100,000) in one call; one forecast per row, in order.

        Arguments and result as `ForecastClient.predict` (a float64 numpy array, a list without
        numpy). Uses the live model unless `model_version` names one.
        """
        request = _req.predict_request(retailer, date, store_nbr, family, onpromotion,
                                       model_version)
        response = await self._unary(self._stub.Predict, request, self.config.timeouts.predict_s)
        return _rows.forecasts(response.forecast)

    async def predict_batches(
        self,
        retailer: str,
        batches: Iterable[pb.RowBatch] | AsyncIterable[pb.RowBatch],
        *,
        model_version: str = "",
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> AsyncGenerator[tuple[int, _rows.Forecasts, str], None]:
        """Bulk prediction over one PredictStream call: yield (chunk_index, forecasts,
        model_version) per batch, in the order the batches were given.

        At most `max_in_flight` chunks are sent ahead of the answers, so memory stays bounded
        however large the input. Closing the iterator cancels the stream on the gateway.
        """
        _req.check_in_flight(max_in_flight)
        window = asyncio.Semaphore(max_in_flight)

        async def requests() -> AsyncIterator[pb.PredictStreamRequest]:
            index = 0
            async for batch in _as_async(batches):
                await window.acquire()
                yield _req.stream_request(index, batch, retailer, model_version, ())
                index += 1

        metadata = self._metadata()
        call = self._stub.PredictStream(
            requests(), timeout=self.config.timeouts.stream_s, metadata=metadata,
            wait_for_ready=self.config.wait_for_ready)
        expected = 0
        try:
            async for response in call:
                window.release()
                _req.check_chunk(response, expected)
                yield expected, _rows.forecasts(response.forecast), response.model_version
                expected += 1
        except grpc.RpcError as err:
            raise _req.call_error(err, metadata, self.config.target) from None
        finally:
            call.cancel()

    # -- models and metrics ------------------------------------------------------------------

    async def get_metrics(self, retailer: str, *, model_version: str = "") -> pb.GetMetricsResponse:
        """The evaluation of the live model (or `model_version`) against the baseline, with the
        job, dataset and data window that produced it."""
        request = pb.GetMetricsRequest(retailer=retailer, model_version=model_version)
        return await self._unary(self._stub.GetMetrics, request, self.config.timeouts.unary_s)

    async def list_models(self, retailer: str) -> list[pb.ModelVersion]:
        """A retailer's model versions, newest first; the live one has `live=True`."""
        request = pb.ListModelsRequest(retailer=retailer)
        response = await self._unary(self._stub.ListModels, request, self.config.timeouts.unary_s)
        return list(response.models)

    async def set_live_model(self, retailer: str, model_version: str) -> pb.ModelVersion:
        """Make `model_version` the retailer's live model (promotion or rollback)."""
        request = pb.SetLiveModelRequest(retailer=retailer, model_version=model_version)
        response = await self._unary(self._stub.SetLiveModel, request,
                                     self.config.timeouts.unary_s)
        return response.model

    async def approve_model(self, retailer: str, model_version: str, *,
                            description: str = "") -> pb.SetModelApprovalResponse:
        """Approve `model_version` in the backend's model registry (as
        `ForecastClient.approve_model`: SageMaker's Approved; not a live switch)."""
        return await self._set_approval(retailer, model_version, pb.MODEL_APPROVAL_APPROVED,
                                        description)

    async def reject_model(self, retailer: str, model_version: str, *,
                           description: str = "") -> pb.SetModelApprovalResponse:
        """Reject `model_version` in the backend's model registry (as
        `ForecastClient.reject_model`: SageMaker's Rejected; a live version keeps serving)."""
        return await self._set_approval(retailer, model_version, pb.MODEL_APPROVAL_REJECTED,
                                        description)

    async def _set_approval(self, retailer: str, model_version: str,
                            approval: pb.ModelApproval.ValueType,
                            description: str) -> pb.SetModelApprovalResponse:
        request = pb.SetModelApprovalRequest(retailer=retailer, model_version=model_version,
                                             approval=approval, description=description)
        return await self._unary(self._stub.SetModelApproval, request,
                                 self.config.timeouts.unary_s)


async def _as_async(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    """The items of a plain or an async iterable, one at a time."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
