"""Training jobs: validate a Train request, record a QUEUED job, hand it to the backend, turn the
backend's events into job records, and let callers list, cancel and watch jobs."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable

from forecast_gateway.backends.base import TrainingOutcome, TrainingSpec
from forecast_gateway.dataplane import shadow_rule
from forecast_gateway.dataplane.datasets import DatasetService, new_id
from forecast_gateway.dataplane.models import ModelService
from forecast_gateway.dataplane.state import SharedState
from forecast_gateway.dataplane.tenant import Tenant
from forecast_gateway.domain import Dataset, Job, JobState
from forecast_gateway.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from forecasting import hyperparameters as hp_schema
from forecasting import promotion
from forecasting.errors import HyperparameterError
from forecasting.joblog import FAILURE_REASON_CHARS

log = logging.getLogger("forecast_gateway.dataplane.jobs")

# The library owns these: one declaration of what a training job accepts.
MODEL_KINDS = hp_schema.MODEL_KINDS
DEFAULT_HORIZON = int(hp_schema.SPECS["horizon"].default)
MAX_HORIZON = int(hp_schema.SPECS["horizon"].high)
MAX_PAGE_OFFSET = 2**31 - 1  # far past any retailer's job count; page tokens are offsets
RESTART_REASON = ("the gateway stopped while this job was {state}; its work is lost. "
                  "Submit the job again.")


class JobService:
    """A retailer's training jobs."""

    def __init__(self, state: SharedState, datasets: DatasetService, models: ModelService,
                 with_actuals: Callable[[Tenant, Dataset], tuple[Dataset, str]] | None = None,
                 gateway_id: str = ""):
        self._s = state
        self._datasets = datasets
        self._models = models
        # The dataset a Train uses and what was done to it (stored actuals merged in).
        self._with_actuals = with_actuals
        self.gateway_id = gateway_id
        # Called when a job is queued here or a training slot frees up (the fleet's dispatcher
        # claims jobs then; `dataplane.fleet`).
        self.on_queued: Callable[[], None] = lambda: None

    def fail_cut_off(self, owner: str | None = None) -> None:
        """At start-up: jobs a restart cut off are marked FAILED with the reason (every
        unfinished job; on a shared database only those this gateway's id held)."""
        for job in self._s.registry.unfinished_jobs(owner):
            state = "running" if job.state == JobState.RUNNING else "queued"
            updated = self._s.registry.update_job(
                job.job_id, state=JobState.FAILED, ended_at=time.time(),
                failure_reason=RESTART_REASON.format(state=state))
            if updated is not None:
                self._s.storage.write_job_record(updated)
            log.warning("job cut off by a restart marked FAILED",
                        extra={"fields": {"job_id": job.job_id, "retailer": job.retailer}})

    def train(self, tenant: Tenant, dataset_id: str, data_uri: str, model_kind: str,
              hyperparameters: dict[str, str], horizon: int,
              promote: str = promotion.DEFAULT_POLICY, request_id: str = "",
              promote_after: tuple[int, int, float] | None = None) -> Job:
        """Validate the request and record a QUEUED job: a gateway with a free training slot
        claims it (`dataplane.fleet`). A `request_id` the retailer used before returns the job
        that request started (a retried Train starts one job). `promote_after` (days,
        min_cells, margin) is the rule of promote=shadow (`shadow_rule`)."""
        if len(request_id) > 128 or any(not c.isprintable() for c in request_id):
            raise InvalidArgument("request_id", "at most 128 printable characters")
        if request_id:       # a retry: the first answer again, before any work is redone
            earlier = self._s.registry.job_by_request(tenant.retailer, request_id)
            if earlier is not None:
                return earlier
        model_kind = model_kind or "xgboost"
        if promote not in promotion.POLICIES:
            raise InvalidArgument("promote", f"{promote!r} is not one of "
                                             f"{', '.join(promotion.POLICIES)}")
        rule = shadow_rule.for_train(promote, promote_after, hyperparameters)
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
            raise InvalidArgument(exc.field, exc.reason) from None
        self._s.check_open()
        self._s.backend.check_available()
        if data_uri:
            if dataset_id:
                raise InvalidArgument("data_uri", "give dataset_id or data_uri, not both")
            dataset = self._datasets.from_uri(tenant, data_uri)
        else:
            # No dataset named: the retailer's newest upload (the seed's POST /train).
            dataset = (self._datasets.get(tenant, dataset_id) if dataset_id
                       else self._datasets.newest(tenant))
        note = ""
        if self._with_actuals is not None:   # never train behind the retailer's own actuals
            dataset, note = self._with_actuals(tenant, dataset)
        job = Job(
            job_id=new_id("job"), retailer=tenant.retailer, dataset_id=dataset.dataset_id,
            model_kind=model_kind, hyperparameters=dict(hyperparameters), horizon=horizon,
            state=JobState.QUEUED, created_at=time.time(), promote=promote, data_note=note,
            request_id=request_id, promote_after=rule,
        )
        recorded = self._s.registry.add_job(job)
        if recorded.job_id != job.job_id:          # a retry of a Train already recorded
            log.info("training job already started by this request id", extra={"fields": {
                "job_id": recorded.job_id, "retailer": tenant.retailer}})
            return recorded
        self._s.storage.write_job_record(job)
        log.info("training job queued", extra={"fields": {
            "job_id": job.job_id, "retailer": tenant.retailer, "dataset_id": dataset.dataset_id,
            "model_kind": model_kind}})
        self.on_queued()
        return job

    def start(self, job: Job) -> None:
        """Hand a job this gateway has claimed to its backend (a refusal fails the job)."""
        dataset = self._s.registry.get_dataset(job.retailer, job.dataset_id)
        if dataset is None:
            self._finish(job.job_id, JobState.FAILED, f"dataset {job.dataset_id!r} is gone")
            return
        hp = {**{k: str(v) for k, v in job.hyperparameters.items()},
              "model_kind": job.model_kind, "horizon": str(job.horizon)}
        try:
            data_path = self._s.dataset_file(dataset)   # fetched from the artifact store
        except Exception as exc:
            log.warning("the dataset of a claimed job cannot be read", exc_info=True,
                        extra={"fields": {"job_id": job.job_id}})
            self._finish(job.job_id, JobState.FAILED, f"dataset {job.dataset_id!r} cannot be "
                         f"read: {exc}"[:FAILURE_REASON_CHARS])
            return
        spec = TrainingSpec(
            job_id=job.job_id, retailer=job.retailer,
            job_dir=self._s.storage.job_dir(job.retailer, job.job_id),
            data_path=data_path, data_format=dataset.format,  # type: ignore[arg-type]
            hyperparameters=hp,
        )
        try:
            self._s.backend.submit_training(spec, _Listener(self))
        except Exception as exc:
            log.warning("the backend refused a claimed job", exc_info=True,
                        extra={"fields": {"job_id": job.job_id}})
            self._finish(job.job_id, JobState.FAILED, f"the backend refused the job: {exc}")

    def get(self, tenant: Tenant, job_id: str) -> Job:
        """The retailer's job; NotFound otherwise (also for another retailer's job)."""
        self._s.existing(tenant)
        if not job_id:
            raise InvalidArgument("job_id", "is required")
        job = self._s.registry.get_job(tenant.retailer, job_id)
        if job is None:
            raise NotFound("training job", job_id)
        return job

    def list(self, tenant: Tenant, page_size: int, page_token: str,
             state: JobState | None) -> tuple[list[Job], str]:
        """A page of the retailer's jobs, newest first, and the next page token ("" at the end)."""
        self._s.existing(tenant)
        if page_size < 0 or page_size > 1000:
            raise InvalidArgument("page_size", "must be between 0 and 1000")
        size = page_size or 100
        try:
            offset = int(page_token) if page_token else 0
            if not 0 <= offset <= MAX_PAGE_OFFSET:  # SQLite's OFFSET overflows past 2**63 - 1
                raise ValueError
        except ValueError:
            raise InvalidArgument("page_token", "is not a token from a previous response") from None
        jobs = self._s.registry.list_jobs(tenant.retailer, size + 1, offset, state)
        next_token = str(offset + size) if len(jobs) > size else ""
        return jobs[:size], next_token

    def cancel(self, tenant: Tenant, job_id: str) -> Job:
        """Stop the job: at once when no gateway has claimed it yet, through this gateway's
        backend when it runs here, within the holder's next poll when it runs on another
        replica. FailedPrecondition when it already finished."""
        job = self.get(tenant, job_id)
        if job.state.terminal:
            raise FailedPrecondition(f"training job {job_id!r} already finished ({job.state.value})")
        outcome = self._s.registry.request_cancel(tenant.retailer, job_id, self.gateway_id)
        if outcome == "cancelled":
            self._s.hub.notify(job_id)
            done = self.get(tenant, job_id)
            self._s.storage.write_job_record(done)
            return done
        if outcome == "mine" and not self._s.backend.cancel_training(job_id):
            raise FailedPrecondition(f"training job {job_id!r} is no longer running")
        if outcome == "finished":
            raise FailedPrecondition(f"training job {job_id!r} already finished")
        return self.get(tenant, job_id)

    async def watch(self, tenant: Tenant, job_id: str,
                    poll_s: float | None = None) -> AsyncIterator[Job]:
        """Yield the job now and after every change, until it is terminal. A change made here
        wakes the watch at once; one made by another replica is read every `poll_s` (default:
        the fleet's poll).

        Raises BackendUnavailable when the gateway starts stopping (the caller may retry).
        """
        poll_s = self._s.config.fleet_poll_s if poll_s is None else poll_s
        async for job in self._s.hub.follow(job_id, lambda: self.get(tenant, job_id),
                                            self._s.closing, poll_s, "job"):
            yield job

    # -- backend events ----------------------------------------------------------------------

    def _update(self, job_id: str, **changes: object) -> Job | None:
        job = self._s.registry.update_job(job_id, **changes)
        if job is not None and ("state" in changes or "model_version" in changes):
            self._s.storage.write_job_record(job)
        self._s.hub.notify(job_id)
        return job

    def _finish(self, job_id: str, state: JobState, reason: str = "") -> None:
        changes: dict[str, object] = {"state": state, "ended_at": time.time(), "failure_reason": reason}
        job = self._update(job_id, **changes)
        self._observe(job)
        log.info("training job finished", extra={"fields": {
            "job_id": job_id, "state": state.value, "failure_reason": reason[:200],
            "retailer": job.retailer if job else ""}})

    def _on_finished(self, job_id: str, outcome: TrainingOutcome) -> None:
        if outcome.state == "cancelled":
            self._finish(job_id, JobState.CANCELLED, outcome.failure_reason or "cancelled")
        elif outcome.state == "failed" or outcome.model_dir is None:
            self._finish(job_id, JobState.FAILED, outcome.failure_reason or "training failed")
        else:
            try:
                self._publish(job_id, outcome)
            except Exception as exc:
                log.exception("publishing the trained model failed", extra={"fields": {"job_id": job_id}})
                reason = f"the trained model could not be registered: {type(exc).__name__}: {exc}"
                self._finish(job_id, JobState.FAILED, reason[:FAILURE_REASON_CHARS])

    def _publish(self, job_id: str, outcome: TrainingOutcome) -> None:
        job = self._s.registry.job_by_id(job_id)
        if job is None:
            raise RuntimeError(f"job {job_id} vanished from the registry")
        assert outcome.model_dir is not None
        decision = self._models.promotion_for(job, outcome.model_dir)
        self._models.publish(job, outcome.model_dir, job_update={
            "state": JobState.SUCCEEDED, "ended_at": time.time(), "progress": 1.0,
            "failure_reason": "", "promotion": decision}, decision=decision)
        done = self._s.registry.job_by_id(job_id)
        if done is not None:
            self._s.storage.write_job_record(done)
        self._observe(done)
        self._s.hub.notify(job_id)

    def _observe(self, job: Job | None) -> None:
        """A finished job's training time, for the metrics."""
        if job is not None and job.started_at and job.ended_at:
            self._s.metrics.training_seconds.labels(job.state.value).observe(
                job.ended_at - job.started_at)


class _Listener:
    """Turns backend events into registry updates."""

    def __init__(self, jobs: JobService):
        self._jobs = jobs

    def on_started(self, job_id: str) -> None:
        self._jobs._update(job_id, state=JobState.RUNNING, started_at=time.time(), stage="start")

    def on_progress(self, job_id: str, stage: str, fraction: float) -> None:
        self._jobs._update(job_id, stage=stage, progress=fraction)

    def on_metric(self, job_id: str, name: str, value: float) -> None:
        job = self._jobs._s.registry.job_by_id(job_id)
        if job is not None:
            self._jobs._update(job_id, metrics={**job.metrics, name: value})

    def on_finished(self, job_id: str, outcome: TrainingOutcome) -> None:
        self._jobs._on_finished(job_id, outcome)
        self._jobs.on_queued()          # a training slot is free again
