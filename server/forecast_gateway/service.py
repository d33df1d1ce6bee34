"""The data plane: everything the API does, without gRPC.

`ForecastService` validates requests, keeps the registry and the storage layout, hands training
to the backend and turns its events into job records, publishes model versions (moved into
`models/<version>`, loaded, then made live in one registry transaction) and answers predictions
through the backend. Servicers translate protos to these calls and nothing more.

Blocking methods are plain functions (the gRPC layer runs them in thread pools); `watch_job` is
an async generator because it waits on events.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import shutil
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from forecast_gateway.backends.base import Backend, TrainingOutcome, TrainingSpec
from forecast_gateway.config import GatewayConfig
from forecast_gateway.domain import (
    Dataset,
    Evaluation,
    Job,
    JobState,
    MetricsReport,
    ModelRef,
    ModelVersion,
    RowColumns,
    Scores,
)
from forecast_gateway.errors import (
    BackendUnavailable,
    FailedPrecondition,
    InvalidArgument,
    NoLiveModel,
    NotFound,
    PayloadTooLarge,
)
from forecast_gateway.registry import Registry
from forecast_gateway.storage import Storage, check_retailer
from forecasting import hyperparameters as hp_schema
from forecasting.errors import HyperparameterError
from forecasting.joblog import FAILURE_REASON_CHARS

log = logging.getLogger("forecast_gateway.service")

# The library owns these: one declaration of what a training job accepts.
MODEL_KINDS = hp_schema.MODEL_KINDS
DEFAULT_HORIZON = int(hp_schema.SPECS["horizon"].default)
MAX_HORIZON = int(hp_schema.SPECS["horizon"].high)
RESTART_REASON = ("the gateway stopped while this job was {state}; its work is lost. "
                  "Submit the job again.")
_EXTENSIONS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def _new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def _nan(value: object) -> float:
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _scores(block: dict | None) -> Scores:
    block = block or {}
    return Scores(*(_nan(block.get(k)) for k in ("rmse", "rmsle", "mae", "wape", "bias")))


class _JobHub:
    """Wakes async watchers when a job changes; `notify` may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def subscribe(self, job_id: str) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        sub = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._subs.setdefault(job_id, set()).add(sub)
        return sub

    def unsubscribe(self, job_id: str, sub: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            subs = self._subs.get(job_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[job_id]

    def notify(self, job_id: str | None = None) -> None:
        with self._lock:
            subs = [s for k, v in self._subs.items() if job_id is None or k == job_id for s in v]
        for loop, event in subs:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # loop closed
                pass


@dataclass
class UploadSession:
    """An upload in progress: bytes go to a temporary file, `commit` validates and stores it."""

    service: ForecastService
    retailer: str
    filename: str
    format: str
    tmp_path: Path
    limit: int
    size: int = 0
    _file: BinaryIO | None = None
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256)

    def write(self, chunk: bytes) -> None:
        """Append a chunk; PayloadTooLarge over the chunk or total limit."""
        if len(chunk) > self.service.config.max_upload_chunk_bytes:
            raise PayloadTooLarge("an upload chunk", self.service.config.max_upload_chunk_bytes,
                                  "bytes", len(chunk))
        if self.size + len(chunk) > self.limit:
            raise PayloadTooLarge("the uploaded file", self.limit, "bytes", self.size + len(chunk))
        if self._file is None:
            self.tmp_path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.tmp_path, "wb")  # noqa: SIM115 - closed in commit/abort
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def commit(self) -> Dataset:
        """Validate the file against the store-sales schema and register it."""
        if self._file is not None:
            self._file.close()
        if self.size == 0:
            self.abort()
            raise InvalidArgument("chunk", "the upload carried no data")
        try:
            return self.service._store_dataset(self.retailer, self.filename, self.format,
                                               self.tmp_path, self._hash.hexdigest(), move=True)
        finally:
            self.abort()

    def abort(self) -> None:
        """Drop the temporary file."""
        if self._file is not None and not self._file.closed:
            self._file.close()
        self.tmp_path.unlink(missing_ok=True)


class ForecastService:
    """The gateway's data plane. Thread-safe."""

    def __init__(self, config: GatewayConfig, backend: Backend):
        self.config = config
        self.backend = backend
        self.storage = Storage(config.data_dir)
        self.storage.root.mkdir(parents=True, exist_ok=True)
        self.registry = Registry(self.storage.root / "registry.sqlite3", self.storage.root)
        self._hub = _JobHub()
        self._publish_lock = threading.Lock()
        self._live_lock = threading.Lock()
        self._live: dict[str, ModelRef] = {}
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Recover after a restart: fail jobs that were cut off, load the live pointers."""
        self.storage.clean_incoming()
        for job in self.registry.unfinished_jobs():
            state = "running" if job.state == JobState.RUNNING else "queued"
            updated = self.registry.update_job(
                job.job_id, state=JobState.FAILED, ended_at=time.time(),
                failure_reason=RESTART_REASON.format(state=state))
            if updated is not None:
                self.storage.write_job_record(updated)
            log.warning("job cut off by a restart marked FAILED",
                        extra={"fields": {"job_id": job.job_id, "retailer": job.retailer}})
        with self._live_lock:
            self._live = {}
            for retailer, version in self.registry.live_versions().items():
                model = self.registry.get_model(retailer, version)
                if model is not None:
                    self._live[retailer] = model.ref

    def begin_shutdown(self) -> None:
        """Stop accepting work that outlives a call; end open watches (they get UNAVAILABLE)."""
        self._closing = True
        self._hub.notify()

    def close(self) -> None:
        """Stop the backend (running jobs are marked FAILED) and close the registry."""
        self._closing = True
        self.backend.close("the gateway was stopped while this job was running. Submit it again.")
        self._hub.notify()
        self.registry.close()

    # -- retailers ---------------------------------------------------------------------------

    def _existing_retailer(self, retailer: str) -> str:
        check_retailer(retailer)
        if not self.registry.retailer_exists(retailer):
            raise NotFound("retailer", retailer, "it is created by its first UploadDataset")
        return retailer

    # -- datasets ----------------------------------------------------------------------------

    def begin_upload(self, retailer: str, filename: str, fmt: str, declared_size: int) -> UploadSession:
        """Start an upload. `fmt` is "csv", "parquet" or "" (inferred from `filename`)."""
        check_retailer(retailer, "header.retailer")
        if not filename:
            raise InvalidArgument("header.filename", "is required")
        if "/" in filename or "\\" in filename or len(filename) > 255:
            raise InvalidArgument("header.filename", "must be a bare file name of at most 255 characters")
        if not fmt:
            fmt = _EXTENSIONS.get(Path(filename).suffix.lower(), "")
            if not fmt:
                raise InvalidArgument("header.format", f"cannot infer the format of {filename!r}: "
                                      "name a .csv or .parquet file or set the format")
        if declared_size > self.config.max_upload_bytes:
            raise PayloadTooLarge("the uploaded file", self.config.max_upload_bytes, "bytes", declared_size)
        if self._closing:
            raise BackendUnavailable("the gateway is stopping")
        tmp = self.storage.incoming_dir(retailer) / f"{secrets.token_hex(8)}.part"
        return UploadSession(self, retailer, filename, fmt, tmp, self.config.max_upload_bytes)

    def _store_dataset(self, retailer: str, filename: str, fmt: str, source: Path, sha256: str,
                       move: bool) -> Dataset:
        from forecasting.schema import read_table, validate_history

        frame = read_table(source)
        clean, _report = validate_history(frame)
        dates = clean["date"]
        start, end = (str(np.datetime64(dates.min(), "D")), str(np.datetime64(dates.max(), "D")))
        series = int(clean[["store_nbr", "family"]].drop_duplicates().shape[0])
        self.registry.ensure_retailer(retailer)
        dataset_id = _new_id("ds")
        dest = self.storage.dataset_path(retailer, dataset_id, fmt)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if move:
            source.replace(dest)
        else:
            shutil.copyfile(source, dest)
        dataset = Dataset(
            dataset_id=dataset_id, retailer=retailer, filename=filename, format=fmt, path=dest,
            size_bytes=dest.stat().st_size, sha256=sha256, rows=len(clean), series=series,
            start_date=start, end_date=end, created_at=time.time(),
        )
        self.registry.add_dataset(dataset)
        log.info("dataset stored", extra={"fields": {
            "retailer": retailer, "dataset_id": dataset_id, "rows": dataset.rows,
            "bytes": dataset.size_bytes}})
        return dataset

    def _dataset_from_uri(self, retailer: str, uri: str) -> Dataset:
        parsed = urllib.parse.urlparse(uri)
        if parsed.scheme != "file":
            raise InvalidArgument("data_uri", f"scheme {parsed.scheme or '(none)'!r} is not supported "
                                  "by this gateway; upload the file with UploadDataset")
        if not self.config.allow_file_uris:
            raise InvalidArgument("data_uri", "file:// URIs are disabled on this gateway "
                                  "(--allow-file-uris); upload the file with UploadDataset")
        path = Path(urllib.parse.unquote(parsed.path))
        if not path.is_file():
            raise InvalidArgument("data_uri", f"{str(path)!r} is not a readable file")
        fmt = _EXTENSIONS.get(path.suffix.lower())
        if fmt is None:
            raise InvalidArgument("data_uri", "must name a .csv or .parquet file")
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return self._store_dataset(retailer, path.name, fmt, path, digest.hexdigest(), move=False)

    # -- training ----------------------------------------------------------------------------

    def train(self, retailer: str, dataset_id: str, data_uri: str, model_kind: str,
              hyperparameters: dict[str, str], horizon: int) -> Job:
        """Validate the request, record a QUEUED job and hand it to the backend."""
        check_retailer(retailer)
        model_kind = model_kind or "xgboost"
        if model_kind not in MODEL_KINDS:
            raise InvalidArgument("model_kind", f"{model_kind!r} is not one of {', '.join(MODEL_KINDS)}")
        horizon = horizon or DEFAULT_HORIZON
        if not 1 <= horizon <= MAX_HORIZON:
            raise InvalidArgument("horizon", f"must be between 1 and {MAX_HORIZON} days, got {horizon}")
        for key in hyperparameters:
            if key in ("model_kind", "horizon"):
                raise InvalidArgument(f"hyperparameters[{key!r}]", f"set {key} with its own field")
            if not key or len(key) > 64:
                raise InvalidArgument("hyperparameters", "names must be 1 to 64 characters")
        try:  # reject what the training job would reject, before a job exists
            hp_schema.parse({**hyperparameters, "model_kind": model_kind, "horizon": str(horizon)})
        except HyperparameterError as exc:
            raise InvalidArgument(f"hyperparameters[{exc.name!r}]", str(exc).split(": ", 1)[1]) \
                from None
        if self._closing:
            raise BackendUnavailable("the gateway is stopping")
        self.backend.check_available()
        if data_uri:
            if dataset_id:
                raise InvalidArgument("data_uri", "give dataset_id or data_uri, not both")
            if not self.registry.retailer_exists(retailer):
                self.registry.ensure_retailer(retailer)
            dataset = self._dataset_from_uri(retailer, data_uri)
        else:
            if not dataset_id:
                raise InvalidArgument("dataset_id", "is required (or give data_uri)")
            self._existing_retailer(retailer)
            found = self.registry.get_dataset(retailer, dataset_id)
            if found is None:
                raise NotFound("dataset", dataset_id)
            dataset = found
        job = Job(
            job_id=_new_id("job"), retailer=retailer, dataset_id=dataset.dataset_id,
            model_kind=model_kind, hyperparameters=dict(hyperparameters), horizon=horizon,
            state=JobState.QUEUED, created_at=time.time(),
        )
        self.registry.add_job(job)
        self.storage.write_job_record(job)
        hp = {**{k: str(v) for k, v in hyperparameters.items()},
              "model_kind": model_kind, "horizon": str(horizon)}
        spec = TrainingSpec(
            job_id=job.job_id, retailer=retailer, job_dir=self.storage.job_dir(retailer, job.job_id),
            data_path=dataset.path, data_format=dataset.format,  # type: ignore[arg-type]
            hyperparameters=hp,
        )
        try:
            self.backend.submit_training(spec, _Listener(self))
        except Exception as exc:
            self._finish(job.job_id, JobState.FAILED, f"the backend refused the job: {exc}")
            raise
        log.info("training job queued", extra={"fields": {
            "job_id": job.job_id, "retailer": retailer, "dataset_id": dataset.dataset_id,
            "model_kind": model_kind}})
        return job

    def get_job(self, retailer: str, job_id: str) -> Job:
        """The retailer's job; NotFound otherwise (also for another retailer's job)."""
        self._existing_retailer(retailer)
        if not job_id:
            raise InvalidArgument("job_id", "is required")
        job = self.registry.get_job(retailer, job_id)
        if job is None:
            raise NotFound("training job", job_id)
        return job

    def list_jobs(self, retailer: str, page_size: int, page_token: str,
                  state: JobState | None) -> tuple[list[Job], str]:
        """A page of the retailer's jobs, newest first, and the next page token ("" at the end)."""
        self._existing_retailer(retailer)
        if page_size < 0 or page_size > 1000:
            raise InvalidArgument("page_size", "must be between 0 and 1000")
        size = page_size or 100
        try:
            offset = int(page_token) if page_token else 0
            if offset < 0:
                raise ValueError
        except ValueError:
            raise InvalidArgument("page_token", "is not a token from a previous response") from None
        jobs = self.registry.list_jobs(retailer, size + 1, offset, state)
        next_token = str(offset + size) if len(jobs) > size else ""
        return jobs[:size], next_token

    def cancel_job(self, retailer: str, job_id: str) -> Job:
        """Ask the backend to stop the job; FailedPrecondition when it already finished."""
        job = self.get_job(retailer, job_id)
        if job.state.terminal:
            raise FailedPrecondition(f"training job {job_id!r} already finished ({job.state.value})")
        if not self.backend.cancel_training(job_id):
            raise FailedPrecondition(f"training job {job_id!r} is no longer running")
        return self.get_job(retailer, job_id)

    async def watch_job(self, retailer: str, job_id: str,
                        poll_s: float = 2.0) -> AsyncIterator[Job]:
        """Yield the job now and after every change, until it is terminal.

        Raises BackendUnavailable when the gateway starts stopping (the caller may retry).
        """
        job = self.get_job(retailer, job_id)
        sub = self._hub.subscribe(job_id)
        try:
            last_seq = -1
            while True:
                if job.seq != last_seq:
                    last_seq = job.seq
                    yield job
                if job.state.terminal:
                    return
                if self._closing:
                    raise BackendUnavailable("the gateway is stopping; watch the job again later")
                try:
                    await asyncio.wait_for(sub[1].wait(), timeout=poll_s)
                except TimeoutError:
                    pass
                sub[1].clear()
                job = self.get_job(retailer, job_id)
        finally:
            self._hub.unsubscribe(job_id, sub)

    # -- backend events ----------------------------------------------------------------------

    def _update(self, job_id: str, **changes: object) -> Job | None:
        job = self.registry.update_job(job_id, **changes)
        if job is not None and ("state" in changes or "model_version" in changes):
            self.storage.write_job_record(job)
        self._hub.notify(job_id)
        return job

    def _finish(self, job_id: str, state: JobState, reason: str = "", version: str = "") -> None:
        changes: dict[str, object] = {"state": state, "ended_at": time.time(), "failure_reason": reason}
        if state == JobState.SUCCEEDED:
            changes.update(progress=1.0, model_version=version)
        job = self._update(job_id, **changes)
        log.info("training job finished", extra={"fields": {
            "job_id": job_id, "state": state.value, "model_version": version,
            "failure_reason": reason[:200],
            "retailer": job.retailer if job else ""}})

    def _on_finished(self, job_id: str, outcome: TrainingOutcome) -> None:
        if outcome.state == "cancelled":
            self._finish(job_id, JobState.CANCELLED, outcome.failure_reason or "cancelled")
        elif outcome.state == "failed" or outcome.model_dir is None:
            self._finish(job_id, JobState.FAILED, outcome.failure_reason or "training failed")
        else:
            try:
                self._publish(job_id, outcome.model_dir)
            except Exception as exc:
                log.exception("publishing the trained model failed", extra={"fields": {"job_id": job_id}})
                reason = f"the trained model could not be registered: {type(exc).__name__}: {exc}"
                self._finish(job_id, JobState.FAILED, reason[:FAILURE_REASON_CHARS])

    def _publish(self, job_id: str, artifact_dir: Path) -> None:
        job = self.registry.job_by_id(job_id)
        if job is None:
            raise RuntimeError(f"job {job_id} vanished from the registry")
        with self._publish_lock:
            number = self.registry.next_model_number(job.retailer)
            version = f"v{number}"
            dest = self.storage.model_dir(job.retailer, version)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(artifact_dir), str(dest))
            model = self._model_record(job.retailer, version, dest, job.job_id, job.dataset_id,
                                       job.model_kind, job.horizon)
            self.backend.load_model(model.ref)  # loaded before it goes live
            self._make_live(model.ref, lambda: self.registry.add_model(
                model, number, make_live=True, job_update={
                    "state": JobState.SUCCEEDED, "ended_at": time.time(), "progress": 1.0,
                    "model_version": version, "failure_reason": ""}))
        done = self.registry.job_by_id(job_id)
        if done is not None:
            self.storage.write_job_record(done)
        self._hub.notify(job_id)
        log.info("model version live", extra={"fields": {
            "job_id": job_id, "retailer": job.retailer, "model_version": version}})

    @staticmethod
    def _model_record(retailer: str, version: str, path: Path, job_id: str, dataset_id: str,
                      model_kind: str, horizon: int) -> ModelVersion:
        meta: dict = {}
        meta_path = path / "artifact.json"
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
        data = meta.get("data") or {}
        hp = meta.get("hyperparameters") or {}
        return ModelVersion(
            retailer=retailer, version=version, path=path, job_id=job_id, dataset_id=dataset_id,
            model_kind=str(hp.get("model_kind") or model_kind),
            final_model=str(meta.get("final_model") or ""),
            data_start=str(data.get("start") or "")[:10], data_end=str(data.get("end") or "")[:10],
            horizon=int(hp.get("horizon") or meta.get("horizon") or horizon), created_at=time.time(),
        )

    def import_model(self, retailer: str, artifact_dir: Path, make_live: bool = True) -> ModelVersion:
        """Register an existing artifact directory (copied) as the retailer's next version.

        For benchmarks, migrations and operators; not exposed over the API.
        """
        check_retailer(retailer)
        self.registry.ensure_retailer(retailer)
        with self._publish_lock:
            number = self.registry.next_model_number(retailer)
            version = f"v{number}"
            dest = self.storage.model_dir(retailer, version)
            shutil.copytree(artifact_dir, dest)
            model = self._model_record(retailer, version, dest, "", "", "", DEFAULT_HORIZON)
            self.backend.load_model(model.ref)
            if make_live:
                self._make_live(model.ref, lambda: self.registry.add_model(
                    model, number, make_live=True))
            else:
                self.registry.add_model(model, number, make_live=False)
        return self.registry.get_model(retailer, version)  # type: ignore[return-value]

    def _make_live(self, ref: ModelRef, record: Callable[[], object]) -> None:
        """Switch the retailer's live version to `ref` (already loaded by the backend) as
        `record()` stores the switch in the registry; then let the backend free the version
        that stopped being live (requests that resolved it a moment ago are still answered)."""
        with self._live_lock:
            record()
            previous = self._live.get(ref.retailer)
            self._live[ref.retailer] = ref
        if previous is not None and previous.path != ref.path:
            self.backend.unload_model(previous)

    # -- models ------------------------------------------------------------------------------

    def resolve_model(self, retailer: str, version: str) -> ModelRef:
        """The live model (version "") or the named version of the retailer."""
        check_retailer(retailer)
        if not version:
            with self._live_lock:
                ref = self._live.get(retailer)
            if ref is not None:
                return ref
            self._existing_retailer(retailer)
            raise NoLiveModel(retailer)
        return self._named_model(retailer, version).ref

    def _named_model(self, retailer: str, version: str) -> ModelVersion:
        """The registered version (NOT_FOUND names the retailer or the version missing)."""
        self._existing_retailer(retailer)
        model = self.registry.get_model(retailer, version)
        if model is None:
            raise NotFound("model version", version)
        return model

    def list_models(self, retailer: str) -> list[ModelVersion]:
        """The retailer's versions, newest first, the live one marked."""
        self._existing_retailer(retailer)
        return self.registry.list_models(retailer)

    def set_live(self, retailer: str, version: str) -> ModelVersion:
        """Load `version`, then make it the retailer's live model."""
        check_retailer(retailer)
        if not version:
            raise InvalidArgument("model_version", "is required")
        model = self._named_model(retailer, version)
        self.backend.load_model(model.ref)
        self._make_live(model.ref, lambda: self.registry.set_live(retailer, version))
        log.info("model version live", extra={"fields": {"retailer": retailer, "model_version": version}})
        return self.registry.get_model(retailer, version)  # type: ignore[return-value]

    def get_metrics(self, retailer: str, version: str) -> MetricsReport:
        """The evaluation of the live (or named) model against the baseline."""
        model = self._named_model(retailer, version or self.resolve_model(retailer, "").version)
        path = model.path / "evaluation.json"
        if not path.exists():
            raise FailedPrecondition(f"model version {model.version!r} has no evaluation.json")
        ev = json.loads(path.read_text())
        final = str(ev.get("final_model") or model.final_model)
        evaluations = [
            Evaluation(name=name, baseline=False, final=(name == final),
                       overall=_scores(block.get("overall")),
                       per_family={f: _scores(s) for f, s in (block.get("per_family") or {}).items()})
            for name, block in (ev.get("models") or {}).items()
        ]
        base = ev.get("baseline")
        if base:
            evaluations.append(Evaluation(
                name=str(base.get("name") or "baseline"), baseline=True, final=False,
                overall=_scores(base.get("overall")),
                per_family={f: _scores(s) for f, s in (base.get("per_family") or {}).items()}))
        return MetricsReport(
            model=model, horizon=int(ev.get("horizon") or model.horizon),
            origin=str(ev.get("origin") or "")[:10], test_start=str(ev.get("test_start") or "")[:10],
            test_end=str(ev.get("test_end") or "")[:10], evaluations=evaluations,
        )

    # -- predictions -------------------------------------------------------------------------

    def check_rows(self, rows: RowColumns, limit: int, what: str) -> None:
        """Equal column lengths and the row limit."""
        n = len(rows)
        if n > limit:
            raise PayloadTooLarge(what, limit, "rows", n)
        for name, col in (("store_nbr", rows.store_nbr), ("family", rows.family)):
            if len(col) != n:
                raise InvalidArgument(f"rows.{name}", f"has {len(col)} values but rows.day has {n}")
        if rows.onpromotion is not None and len(rows.onpromotion) != n:
            raise InvalidArgument("rows.onpromotion",
                                  f"has {len(rows.onpromotion)} values but rows.day has {n} "
                                  "(leave it empty when unknown)")

    def predict(self, retailer: str, version: str, rows: RowColumns) -> tuple[np.ndarray, str]:
        """Forecasts for `rows` with the live (or named) model, and the version used."""
        self.check_rows(rows, self.config.max_predict_rows, "a Predict request")
        ref = self.resolve_model(retailer, version)
        return self.predict_with(ref, rows), ref.version

    def predict_with(self, ref: ModelRef, rows: RowColumns) -> np.ndarray:
        """Forecasts for `rows` with a resolved model (bulk streams resolve once)."""
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float64)
        values = self.backend.predict(ref, rows)
        if values.shape != (len(rows),):
            raise RuntimeError(f"backend returned {values.shape} forecasts for {len(rows)} rows")
        return values


class _Listener:
    """Turns backend events into registry updates."""

    def __init__(self, service: ForecastService):
        self._service = service

    def on_started(self, job_id: str) -> None:
        self._service._update(job_id, state=JobState.RUNNING, started_at=time.time(), stage="start")

    def on_progress(self, job_id: str, stage: str, fraction: float) -> None:
        self._service._update(job_id, stage=stage, progress=fraction)

    def on_metric(self, job_id: str, name: str, value: float) -> None:
        job = self._service.registry.job_by_id(job_id)
        if job is not None:
            self._service._update(job_id, metrics={**job.metrics, name: value})

    def on_finished(self, job_id: str, outcome: TrainingOutcome) -> None:
        self._service._on_finished(job_id, outcome)
