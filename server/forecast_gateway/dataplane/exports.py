"""Forecast exports: every series (or a filter) x the next N days, with intervals, as one Parquet
or CSV file at a destination, computed as a job the caller follows (progress, cancel, result).

`start` checks the whole request before a job exists (days, levels, the destination and its
scope, `export_destinations`; the model; unknown stores or families) and queues the job on a
small pool of export threads. A job forecasts its series a chunk at a time through the same
path as Forecast and PredictStream (`PredictionService.predict_with_levels`, the backend's
recursive multi-day forecast for whole series), appends each chunk to the file
(`export_files.ChunkWriter`) and forgets it, so memory holds one chunk whatever the retailer's
size. The file is written beside its destination (file://) or in the retailer's exports
directory (s3://, then uploaded, multipart when large), and appears at the destination only
when complete: a failed or cancelled export leaves nothing there.

The sagemaker backend answers FAILED_PRECONDITION: there, an export should be a Batch Transform
job on the inference image (docs/grpc_api.md, "Forecast exports"), not a stream of
InvokeEndpoint calls through the gateway.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast_gateway.backends.base import CONTENT_TYPES
from forecast_gateway.dataplane import export_destinations
from forecast_gateway.dataplane.datasets import new_id
from forecast_gateway.dataplane.export_destinations import Destination
from forecast_gateway.dataplane.export_files import ChunkWriter
from forecast_gateway.dataplane.export_jobs import ExportJob, ExportRecords
from forecast_gateway.dataplane.models import ModelService
from forecast_gateway.dataplane.planning import select_series
from forecast_gateway.dataplane.predictions import PredictionService
from forecast_gateway.dataplane.state import SharedState
from forecast_gateway.dataplane.tenant import Tenant
from forecast_gateway.domain import JobState, ModelRef, RowColumns
from forecast_gateway.errors import (
    BackendUnavailable,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from forecasting.errors import ForecastingError
from forecasting.forecast import MAX_HORIZON_DAYS
from forecasting.intervals import check_levels
from forecasting.joblog import FAILURE_REASON_CHARS

log = logging.getLogger("forecast_gateway.dataplane.exports")

#: Rows forecast (and held) at a time: a PredictStream chunk's default size.
CHUNK_ROWS = 200_000
#: Exports computed at once by one gateway; more wait QUEUED.
WORKERS = 2
RESTART_REASON = "the gateway stopped while this export was {state}; nothing was written. " \
                 "Export again."
_FORMATS = ("parquet", "csv")


class _Cancelled(Exception):
    pass


class ExportService:
    """A retailer's export jobs (see the module docstring)."""

    def __init__(self, state: SharedState, models: ModelService, predictions: PredictionService,
                 *, owner: str = "", chunk_rows: int = CHUNK_ROWS, workers: int = WORKERS):
        self._s = state
        self._owner = owner
        self._models = models
        self._predictions = predictions
        self._chunk_rows = chunk_rows
        self.records = ExportRecords(state.storage)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="export")
        self._cancels: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._store: Any = None        # the export store's ObjectStore, made on first use

    # -- the API -----------------------------------------------------------------------------

    def start(self, tenant: Tenant, version: str, days: int, stores: list[int],
              families: list[str], levels: list[float], destination: str,
              fmt: str) -> ExportJob:
        """Check the request and queue the export; the QUEUED job."""
        if not 1 <= days <= MAX_HORIZON_DAYS:
            raise InvalidArgument("days", f"must be between 1 and {MAX_HORIZON_DAYS}, got {days}")
        levels = check_levels(levels)
        if fmt and fmt not in _FORMATS:
            raise InvalidArgument("format", f"{fmt!r} is not one of {', '.join(_FORMATS)}")
        dest = export_destinations.parse(self._s.config, tenant.retailer, destination, fmt)
        if self._s.backend.name == "sagemaker":
            raise FailedPrecondition(
                "ExportForecasts is not available on the sagemaker backend yet (it will run as a "
                "Batch Transform job); export from a gateway on the local or docker backend with "
                "the same registry, or stream the rows with PredictStream")
        self._s.check_open()
        self._s.backend.check_available()
        ref = self._models.resolve(tenant, version)
        index = self._predictions.series_index(ref)
        series = select_series(index.series, stores, families)
        last = int((index.last_date - np.datetime64(0, "D")).astype(np.int64))
        probe = RowColumns(day=np.array([last + days], np.int32), store_nbr=np.zeros(1, np.int32),
                           family=np.array([""]))
        job = ExportJob(
            export_id=new_id("exp"), retailer=tenant.retailer, model_version=ref.version,
            destination=destination, format=dest.format, days=days, levels=levels,
            state=JobState.QUEUED, created_at=time.time(), stores=[int(s) for s in stores],
            families=[str(f) for f in families], series_total=len(series), owner=self._owner,
            warnings=self._predictions.warnings(ref, probe, levels))
        with self._lock:
            self._cancels[job.export_id] = threading.Event()
        self.records.add(job)
        log.info("export queued", extra={"fields": {
            "export_id": job.export_id, "retailer": job.retailer, "series": len(series),
            "days": days, "destination": dest.result_uri}})
        self._pool.submit(self._run, job, ref, series, dest, last)
        return job

    def get(self, tenant: Tenant, export_id: str) -> ExportJob:
        """The retailer's export job; NotFound otherwise (also for another retailer's)."""
        self._s.existing(tenant)
        if not export_id:
            raise InvalidArgument("export_id", "is required")
        job = self.records.get(tenant.retailer, export_id)
        if job is None:
            raise NotFound("export job", export_id)
        return job

    def cancel(self, tenant: Tenant, export_id: str) -> ExportJob:
        """Stop the export (before its next chunk); FailedPrecondition when it finished."""
        job = self.get(tenant, export_id)
        with self._lock:
            event = self._cancels.get(export_id)
        if job.state.terminal or event is None:
            raise FailedPrecondition(f"export job {export_id!r} already finished "
                                     f"({job.state.value})")
        event.set()
        if job.state == JobState.QUEUED:      # never started: cancelled now
            job = self._finish(job, JobState.CANCELLED, "cancelled")
        return job

    async def watch(self, tenant: Tenant, export_id: str,
                    poll_s: float = 1.0) -> AsyncIterator[ExportJob]:
        """Yield the job now and after every change, until it is terminal (as `jobs.watch`)."""
        async for job in self._s.hub.follow(export_id, lambda: self.get(tenant, export_id),
                                            self._s.closing, poll_s, "export"):
            yield job

    # -- lifecycle ---------------------------------------------------------------------------

    def fail_cut_off(self, owner: str | None = None) -> None:
        """At start-up: exports a restart cut off are FAILED with the reason, their partial
        files removed (on a data dir shared by a fleet, only those `owner` ran)."""
        for job in self.records.unfinished_on_disk():
            if owner is not None and job.owner != owner:
                continue
            if job.partial:
                Path(job.partial).unlink(missing_ok=True)
            state = "running" if job.state == JobState.RUNNING else "queued"
            self.records.update(job, state=JobState.FAILED, ended_at=time.time(), partial="",
                                failure_reason=RESTART_REASON.format(state=state))
            log.warning("export cut off by a restart marked FAILED",
                        extra={"fields": {"export_id": job.export_id, "retailer": job.retailer}})

    def close(self) -> None:
        """Stop every export (each ends FAILED or CANCELLED) and wait for the threads."""
        with self._lock:
            events = list(self._cancels.values())
        for event in events:
            event.set()
        self._pool.shutdown(wait=True, cancel_futures=False)

    # -- running -----------------------------------------------------------------------------

    def _finish(self, job: ExportJob, state: JobState, reason: str = "",
                **changes: object) -> ExportJob:
        current = self.records.get(job.retailer, job.export_id) or job
        if current.partial:     # gone before anyone sees the terminal state
            Path(current.partial).unlink(missing_ok=True)
        done = self.records.update(job, state=state, ended_at=time.time(),
                                   failure_reason=reason[:FAILURE_REASON_CHARS], partial="",
                                   **changes)
        with self._lock:
            self._cancels.pop(job.export_id, None)
        self._s.hub.notify(job.export_id)
        log.info("export finished", extra={"fields": {
            "export_id": job.export_id, "retailer": job.retailer, "state": state.value,
            "rows": done.rows, "failure_reason": reason[:200]}})
        return done

    def _run(self, job: ExportJob, ref: ModelRef, series: pd.DataFrame, dest: Destination,
             last: int) -> None:
        with self._lock:
            cancel = self._cancels.get(job.export_id)
        if cancel is None or cancel.is_set():
            return                                  # cancelled while queued
        partial = self._partial_path(job, dest)
        job = self.records.update(job, state=JobState.RUNNING, started_at=time.time(),
                                  partial=str(partial))
        self._s.hub.notify(job.export_id)
        try:
            job = self._write(job, ref, series, dest, last, partial, cancel)
            size = partial.stat().st_size
            uri = self._deliver(partial, dest)
            self._finish(job, JobState.SUCCEEDED, progress=1.0, result_uri=uri,
                         size_bytes=size)
        except _Cancelled:
            self._finish(job, JobState.CANCELLED, "cancelled")
        except ForecastingError as exc:      # the data plane's own errors say what happened
            self._finish(job, JobState.FAILED, str(exc))
        except Exception as exc:
            log.exception("export failed", extra={"fields": {"export_id": job.export_id}})
            self._finish(job, JobState.FAILED, f"internal error ({type(exc).__name__}); the "
                                               "gateway's log has the details")
        finally:
            partial.unlink(missing_ok=True)

    def _partial_path(self, job: ExportJob, dest: Destination) -> Path:
        if dest.path is not None:   # beside the destination: the final rename stays on one disk
            return dest.path.with_name(f".{dest.path.name}.{job.export_id}.partial")
        incoming = self.records.incoming(job.retailer)
        incoming.mkdir(parents=True, exist_ok=True)
        return incoming / f"{job.export_id}.{dest.format}"

    def _write(self, job: ExportJob, ref: ModelRef, series: pd.DataFrame, dest: Destination,
               last: int, partial: Path, cancel: threading.Event) -> ExportJob:
        keys = series.sort_values(["store_nbr", "family"], kind="stable")
        stores = keys["store_nbr"].to_numpy(np.int32)
        families = keys["family"].to_numpy(str)
        days = job.days
        dates = np.arange(last + 1, last + 1 + days, dtype=np.int32)
        per = max(1, self._chunk_rows // days)
        writer = ChunkWriter(partial, dest.format, job.levels, {
            "model_version": ref.version, "retailer": job.retailer, "days": str(days),
            "export_id": job.export_id})
        try:
            for start in range(0, len(stores), per):
                if cancel.is_set():
                    raise BackendUnavailable("the gateway stopped during the export; export "
                                             "again") if self._s.closing.is_set() \
                        else _Cancelled()
                n = min(per, len(stores) - start)
                rows = RowColumns(day=np.tile(dates, n),
                                  store_nbr=np.repeat(stores[start:start + n], days),
                                  family=np.repeat(families[start:start + n], days),
                                  onpromotion=np.zeros(n * days, np.int32))
                values, bounds = self._predictions.predict_with_levels(ref, rows, job.levels)
                writer.write(rows, values, bounds)
                done = start + n
                job = self.records.update(job, series_done=done, rows=writer.rows,
                                          progress=0.99 * done / max(len(stores), 1))
                self._s.hub.notify(job.export_id)
        finally:
            writer.close()
        return job

    def _deliver(self, partial: Path, dest: Destination) -> str:
        """Put the complete file at its destination; its URI."""
        if dest.path is not None:
            os.replace(partial, dest.path)
            return dest.result_uri
        return self._object_store(dest).put_file(partial, dest.key,
                                                 CONTENT_TYPES[dest.format])

    def _object_store(self, dest: Destination) -> Any:
        with self._lock:
            if self._store is None:
                from forecast_gateway.backends.sagemaker.aws import create_s3_client
                from forecast_gateway.dataplane.object_store import ObjectStore

                config = self._s.config
                s3 = create_s3_client(region=config.aws_region,
                                      endpoint_url=config.aws_endpoint_url,
                                      max_attempts=config.aws_max_attempts)
                assert dest.layout is not None
                self._store = ObjectStore(dest.layout, s3, self._s.storage,
                                          name="the export store")
            return self._store
