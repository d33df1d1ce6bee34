"""`ForecastClient`: the hand-written SDK over the generated forecastapi.v1 stubs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import grpc

from forecast_client import requests as _req
from forecast_client import rows as _rows
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2 as pb
from forecast_client._gen.forecastapi.v1 import forecast_service_pb2_grpc as pb_grpc
from forecast_client._gen.forecastapi.v1 import monitoring_service_pb2_grpc as mpb_grpc
from forecast_client.config import ClientConfig
from forecast_client.exports import ExportMethods
from forecast_client.frames import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_IN_FLIGHT, FrameMethods  # noqa: F401 - re-exported
from forecast_client.monitoring import MonitoringMethods
from forecast_client.requests import (  # noqa: F401 - re-exported
    PROMOTE_POLICIES,
    SDK_ATTEMPTS,
    SERVER_WENT_AWAY,
    TERMINAL_STATES,
    Promote,
)
from forecast_client.uploads import UPLOAD_CHUNK_BYTES, UploadSource
from forecast_client.waiting import wait_terminal

T = TypeVar("T")


class ForecastClient(FrameMethods, MonitoringMethods, ExportMethods):
    """A connection to a forecast gateway.

    >>> with ForecastClient(ClientConfig(target="127.0.0.1:50051")) as client:
    ...     ds = client.upload_dataset("acme", "data/sample/train.csv")
    ...     job = client.wait_for_job("acme", client.train("acme", dataset_id=ds.dataset_id).job_id)
    ...     frame = client.predict_frame("acme", future_rows)

    Every call raises `ForecastClientError` (carrying the gRPC status code) when it fails.
    Calls are thread-safe; one client can be shared by many threads.
    """

    def __init__(self, config: ClientConfig | None = None, *, target: str | None = None,
                 api_key: str | None = None):
        """Open a channel to `config.target` (or `target` and `api_key`, shortcuts for the
        default config; the key otherwise comes from FORECAST_API_KEY).

        The channel connects lazily; call `wait_until_ready` to fail fast when the gateway is down.
        """
        self.config = config = _req.resolve_config(config, target, api_key)
        creds = _req.channel_credentials(config)
        if creds is None:
            self._channel = grpc.insecure_channel(config.target, options=config.channel_options())
        else:
            self._channel = grpc.secure_channel(config.target, creds, options=config.channel_options())
        self._stub = pb_grpc.ForecastServiceStub(self._channel)
        self._monitoring_stub = mpb_grpc.MonitoringServiceStub(self._channel)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the channel; in-flight calls are cancelled."""
        self._channel.close()

    def __enter__(self) -> ForecastClient:  # noqa: PYI034
        """Use the client as a context manager; the channel closes on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the channel."""
        self.close()

    def wait_until_ready(self, timeout_s: float | None = None) -> None:
        """Block until the channel is connected; UNAVAILABLE error after `timeout_s` (default:
        `config.timeouts.connect_s`)."""
        timeout = self.config.timeouts.connect_s if timeout_s is None else timeout_s
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise _req.not_ready_error(self.config.target, timeout) from None

    # -- plumbing ----------------------------------------------------------------------------

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return _req.call_metadata(self.config)

    def _unary(self, method: Callable[..., T], request: Any, timeout: float | None, *,
               repeatable: bool = True) -> T:
        """One unary call; a `repeatable` one is sent again when the gateway went away
        (`Schedule.resend_pause`), with backoff, while the deadline allows."""
        metadata = self._metadata()
        schedule = _req.Schedule(self.config.retry, timeout)
        while True:
            try:
                return method(
                    request, timeout=schedule.remaining(), metadata=metadata,
                    wait_for_ready=self.config.wait_for_ready,
                )
            except grpc.RpcError as err:
                pause = schedule.resend_pause(err.code(), repeatable)
                if pause is None:
                    raise _req.call_error(err, metadata, self.config.target) from None
            time.sleep(pause)

    # -- datasets ----------------------------------------------------------------------------

    def upload_dataset(
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

        `source` is a path, the file's bytes or a binary file object. `format` ("csv" or
        "parquet") defaults to the file name's extension. `on_progress(sent_bytes, total_bytes)`
        is called after each chunk. Bad data fails with INVALID_ARGUMENT naming the column, the
        rule and example rows; an oversized file with RESOURCE_EXHAUSTED.
        """
        with UploadSource(source, filename, format, chunk_bytes) as upload:
            def requests() -> Iterator[pb.UploadDatasetRequest]:
                yield _req.upload_header(retailer, upload)
                for chunk in upload.chunks(on_progress):
                    yield pb.UploadDatasetRequest(chunk=chunk)

            response = self._unary(self._stub.UploadDataset, requests(),
                                   self.config.timeouts.upload_s, repeatable=False)
        return response.dataset

    # -- training ----------------------------------------------------------------------------

    def train(
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
        """Start training on an uploaded dataset (or a `data_uri` the gateway may read).

        Hyperparameter values are sent as strings, as SageMaker passes them. Returns the queued
        job at once; follow it with `watch_job` or `wait_for_job`. When the job succeeds its model
        goes live according to `promote`: "if_better" (the default) only when it scores at least
        as well as the live model on the new job's test window, "always", or "never" (make it live
        later with `set_live_model`), or "shadow": registered and served in shadow beside the
        live model (which keeps answering), and promoted or rejected on live actuals by
        `promote_after`, a mapping of "days" (distinct days of actuals, default 7),
        "min_cells" (cells both forecast, default 100) and "margin" (the fraction by which it
        must beat the live model's error, default 0); the rule is evaluated after each
        `append_actuals`. The finished job's `promotion` holds both scores (and, under
        "shadow", the trial with its numbers once it decides).

        `request_id` (default: a fresh random id) makes the call safe to repeat: the gateway
        starts one job per retailer and id, and a Train that arrives again with the same id
        returns that job. The SDK's retries send the same id, so a retried Train never starts
        a second job; pass your own id to make your own retries (another process, a restart)
        just as safe.
        """
        request = _req.train_request(
            retailer, dataset_id=dataset_id, data_uri=data_uri, model_kind=model_kind,
            hyperparameters=hyperparameters, horizon=horizon, promote=promote,
            request_id=request_id, promote_after=promote_after)
        return self._unary(self._stub.Train, request, self.config.timeouts.unary_s).job

    def get_job(self, retailer: str, job_id: str) -> pb.TrainingJob:
        """Return one training job."""
        request = pb.GetTrainingJobRequest(retailer=retailer, job_id=job_id)
        return self._unary(self._stub.GetTrainingJob, request, self.config.timeouts.unary_s).job

    def list_jobs(self, retailer: str, *, state: pb.JobState.ValueType = pb.JOB_STATE_UNSPECIFIED,
                  limit: int | None = None) -> list[pb.TrainingJob]:
        """Return a retailer's jobs, newest first (all pages, or at most `limit`), optionally
        only those in `state` (a `JobState` value such as `pb.JOB_STATE_RUNNING`)."""
        jobs: list[pb.TrainingJob] = []
        token = ""
        while True:
            request = _req.jobs_page_request(retailer, state, limit, len(jobs), token)
            response = self._unary(self._stub.ListTrainingJobs, request, self.config.timeouts.unary_s)
            jobs.extend(response.jobs)
            token = response.next_page_token
            if _req.jobs_done(token, limit, len(jobs)):
                return jobs

    def watch_job(self, retailer: str, job_id: str) -> Iterator[pb.TrainingJob]:
        """Yield the job each time its state or progress changes, ending after the terminal state.

        Close the generator to stop watching (the call is cancelled).
        """
        return self._watch(self._stub.WatchTrainingJob,
                           pb.WatchTrainingJobRequest(retailer=retailer, job_id=job_id))

    def _watch(self, method: Callable[..., Any], request: Any) -> Iterator[Any]:
        """The `job` of each event of a watch stream (training or export), ending with the
        stream; closing the iterator cancels the call."""
        metadata = self._metadata()
        call = method(request, timeout=self.config.timeouts.stream_s, metadata=metadata,
                      wait_for_ready=self.config.wait_for_ready)
        try:
            for event in call:
                yield event.job
        except grpc.RpcError as err:
            raise _req.call_error(err, metadata, self.config.target) from None
        finally:
            call.cancel()

    def wait_for_job(
        self,
        retailer: str,
        job_id: str,
        *,
        on_update: Callable[[pb.TrainingJob], None] | None = None,
        timeout_s: float | None = None,
    ) -> pb.TrainingJob:
        """Block until the job is terminal and return it; `on_update(job)` sees every event.

        Survives a gateway restart: on UNAVAILABLE (or the CANCELLED of a stopping gateway)
        it reconnects and keeps watching until `timeout_s` (None: no limit) runs out. Raises
        DEADLINE_EXCEEDED after `timeout_s`.
        """
        return wait_terminal(lambda: self.watch_job(retailer, job_id), self.config.retry,
                             job_id, timeout_s, on_update)

    def cancel_job(self, retailer: str, job_id: str) -> pb.TrainingJob:
        """Ask a queued or running job to stop; FAILED_PRECONDITION when it already finished."""
        request = pb.CancelTrainingJobRequest(retailer=retailer, job_id=job_id)
        # Not repeated by the SDK: a second cancel of a job the first one stopped fails.
        return self._unary(self._stub.CancelTrainingJob, request, self.config.timeouts.unary_s,
                           repeatable=False).job

    # -- predictions -------------------------------------------------------------------------

    def predict(
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

        Columns are equal-length sequences (lists, numpy arrays or pandas Series); dates are
        'YYYY-MM-DD' strings, dates or datetime64. Returns a float64 numpy array (a list without
        numpy). Uses the live model unless `model_version` names one.
        """
        request = _req.predict_request(retailer, date, store_nbr, family, onpromotion,
                                       model_version)
        response = self._unary(self._stub.Predict, request, self.config.timeouts.predict_s)
        return _rows.forecasts(response.forecast)

    def predict_batches(
        self,
        retailer: str,
        batches: Iterable[pb.RowBatch],
        *,
        model_version: str = "",
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> Iterator[tuple[int, _rows.Forecasts, str]]:
        """Bulk prediction over one PredictStream call: yield (chunk_index, forecasts,
        model_version) per batch, in the order the batches were given.

        At most `max_in_flight` chunks are sent ahead of the answers, so memory stays bounded
        however large the input. Closing the generator cancels the stream on the gateway.
        """
        for index, response in enumerate(self._stream(
                retailer, batches, model_version=model_version, max_in_flight=max_in_flight,
                levels=())):
            yield index, _rows.forecasts(response.forecast), response.model_version

    def _stream(
        self,
        retailer: str,
        batches: Iterable[pb.RowBatch],
        *,
        model_version: str,
        max_in_flight: int,
        levels: Sequence[float],
    ) -> Iterator[pb.PredictStreamResponse]:
        """One PredictStream call: the responses, in batch order (see `predict_batches`)."""
        _req.check_in_flight(max_in_flight)
        window = threading.Semaphore(max_in_flight)
        stop = threading.Event()

        def requests() -> Iterator[pb.PredictStreamRequest]:
            for index, batch in enumerate(batches):
                while not window.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                yield _req.stream_request(index, batch, retailer, model_version, levels)

        metadata = self._metadata()
        call = self._stub.PredictStream(requests(), timeout=self.config.timeouts.stream_s,
                                        metadata=metadata, wait_for_ready=self.config.wait_for_ready)
        expected = 0
        try:
            for response in call:
                window.release()
                _req.check_chunk(response, expected)
                yield response
                expected += 1
        except grpc.RpcError as err:
            raise _req.call_error(err, metadata, self.config.target) from None
        finally:
            stop.set()
            call.cancel()

    # -- models and metrics ------------------------------------------------------------------

    def get_metrics(self, retailer: str, *, model_version: str = "") -> pb.GetMetricsResponse:
        """The evaluation of the live model (or `model_version`) against the baseline, with the
        job, dataset and data window that produced it."""
        request = pb.GetMetricsRequest(retailer=retailer, model_version=model_version)
        return self._unary(self._stub.GetMetrics, request, self.config.timeouts.unary_s)

    def list_models(self, retailer: str) -> list[pb.ModelVersion]:
        """A retailer's model versions, newest first; the live one has `live=True`."""
        request = pb.ListModelsRequest(retailer=retailer)
        return list(self._unary(self._stub.ListModels, request, self.config.timeouts.unary_s).models)

    def set_live_model(self, retailer: str, model_version: str) -> pb.ModelVersion:
        """Make `model_version` the retailer's live model (promotion or rollback)."""
        request = pb.SetLiveModelRequest(retailer=retailer, model_version=model_version)
        return self._unary(self._stub.SetLiveModel, request, self.config.timeouts.unary_s).model

    def approve_model(self, retailer: str, model_version: str, *,
                      description: str = "") -> pb.SetModelApprovalResponse:
        """Approve `model_version` in the backend's model registry (on SageMaker: its model
        package's status becomes Approved, with `description` as why). Approval does not make
        it live (`set_live_model` does). FAILED_PRECONDITION on a backend without a registry."""
        return self._set_approval(retailer, model_version, pb.MODEL_APPROVAL_APPROVED, description)

    def reject_model(self, retailer: str, model_version: str, *,
                     description: str = "") -> pb.SetModelApprovalResponse:
        """Reject `model_version` in the backend's model registry (SageMaker: Rejected), with
        `description` as why. A live version keeps serving. FAILED_PRECONDITION on a backend
        without a registry."""
        return self._set_approval(retailer, model_version, pb.MODEL_APPROVAL_REJECTED, description)

    def _set_approval(self, retailer: str, model_version: str, approval: pb.ModelApproval.ValueType,
                      description: str) -> pb.SetModelApprovalResponse:
        request = pb.SetModelApprovalRequest(retailer=retailer, model_version=model_version,
                                             approval=approval, description=description)
        return self._unary(self._stub.SetModelApproval, request, self.config.timeouts.unary_s)
