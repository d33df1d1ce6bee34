"""A fair, bounded queue of training jobs and the worker threads ("training slots") that run them.

Every backend that runs training as a process owes base.py's threading contract the same
guarantees, and they are easy to get subtly wrong twice: at most `slots` jobs run at once; a
waiting job whose retailer has nothing running goes first, so one retailer's burst cannot
starve another's; a queued job can be dropped and a running one stopped; `close` fails what
waits and stops what runs; and every submitted job gets exactly one `on_finished`, also when
the backend's own code crashes. A backend supplies only `run` (one job, start to outcome),
`stop` (ask a running job to end) and optionally `release` (clean up after a job).
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from forecast_gateway.backends.base import (
    TrainingListener,
    TrainingOutcome,
    TrainingSpec,
)
from forecast_gateway.errors import BackendUnavailable
from forecasting.joblog import FAILURE_REASON_CHARS

#: Grace period of the jobs still running at `close` (SIGTERM, then SIGKILL).
CLOSE_GRACE_S = 10.0


@dataclass(eq=False)
class QueuedJob:
    """One submitted job and whether it was asked to stop. Backends subclass it for handles of
    their own (a kill timer, ...)."""

    spec: TrainingSpec
    listener: TrainingListener
    process: subprocess.Popen | None = None
    """The job's process once `launch` started it."""
    cancel_requested: bool = False
    close_reason: str = ""
    """Set when the backend closes while the job runs: the job then ends `failed` with it."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def stopping(self) -> bool:
        """A cancel or a close asked this job to end."""
        return self.cancel_requested or bool(self.close_reason)

    def stopped_outcome(self) -> TrainingOutcome:
        """The outcome of a job that ended because it was asked to."""
        if self.close_reason:
            return TrainingOutcome("failed", failure_reason=self.close_reason)
        return TrainingOutcome("cancelled", failure_reason="cancelled by request")

    def launch(self, start: Callable[[], subprocess.Popen]) -> subprocess.Popen | None:
        """Start the job's process unless it was asked to stop (then None). Atomic with stop
        requests, so a cancel never slips between the check and the start."""
        with self._lock:
            if self.stopping:
                return None
            self.process = start()
            return self.process


J = TypeVar("J", bound=QueuedJob)


class TrainingQueue(Generic[J]):
    """Runs submitted jobs on `slots` worker threads. See the module docstring."""

    def __init__(
        self,
        run: Callable[[J], TrainingOutcome],
        stop: Callable[[J, float], None],
        *,
        slots: int,
        cancel_grace_s: float,
        log: logging.Logger,
        release: Callable[[J], None] | None = None,
        thread_name: str = "train-slot",
        join_timeout_s: float = 15.0,
    ):
        """`run(job)` runs one job to its outcome (`job.launch` starts its process);
        `stop(job, grace_s)` asks a launched job to end within `grace_s` and must return at once;
        `release(job)` runs after every job that was picked up, however it ended."""
        self._run, self._stop, self._release = run, stop, release
        self._cancel_grace_s = cancel_grace_s
        self._join_timeout_s = join_timeout_s
        self.log = log  # the backend's own logger, so the lines name the backend
        self._cond = threading.Condition()
        self._pending: list[J] = []
        self._running: dict[str, J] = {}
        self._closing = False
        self._workers = [threading.Thread(target=self._work, name=f"{thread_name}-{i}", daemon=True)
                         for i in range(slots)]
        for w in self._workers:
            w.start()

    @property
    def slots(self) -> int:
        """How many jobs run at once."""
        return len(self._workers)

    def free_slots(self) -> int:
        """Slots no submitted job is waiting for or running in."""
        with self._cond:
            return max(0, self.slots - len(self._running) - len(self._pending))

    def submit(self, job: J) -> None:
        """Queue the job; a free slot picks it up. BackendUnavailable once closing."""
        with self._cond:
            if self._closing:
                raise BackendUnavailable("the gateway is stopping; no new training jobs")
            self._pending.append(job)
            self._cond.notify()

    def cancel(self, job_id: str) -> bool:
        """Stop a running job (its `on_finished` follows once it has ended) or drop a queued one
        (`on_finished` now). False when the job is unknown or already finished."""
        with self._cond:
            queued = next((j for j in self._pending if j.spec.job_id == job_id), None)
            if queued is not None:
                self._pending.remove(queued)
            running = self._running.get(job_id)
        if running is not None:
            self._request_stop(running, self._cancel_grace_s)
            return True
        if queued is not None:  # the caller sees a failing on_finished here
            queued.listener.on_finished(job_id, TrainingOutcome(
                "cancelled", failure_reason="cancelled while queued"))
            return True
        return False

    def close(self, reason: str) -> None:
        """Fail queued jobs with `reason`, stop running ones (they end `failed` with `reason`) and
        wait for the workers. No job is accepted afterwards."""
        with self._cond:
            self._closing = True
            pending, self._pending = self._pending, []
            running = list(self._running.values())
            self._cond.notify_all()
        for job in running:
            self._request_stop(job, CLOSE_GRACE_S, close_reason=reason)
        for job in pending:
            self._finish(job, TrainingOutcome("failed", failure_reason=reason))
        for w in self._workers:
            w.join(timeout=self._join_timeout_s)

    def _request_stop(self, job: J, grace_s: float, close_reason: str = "") -> None:
        with job._lock:
            if close_reason:
                job.close_reason = close_reason
            else:
                job.cancel_requested = True
            if job.process is not None:  # not launched yet: `launch` sees `stopping` instead
                self._stop(job, grace_s)

    def _next(self) -> J | None:
        """The next job to run (fair: a retailer with nothing running first); None once closing."""
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if self._closing:
                return None
            busy = {j.spec.retailer for j in self._running.values()}
            job = next((j for j in self._pending if j.spec.retailer not in busy), self._pending[0])
            self._pending.remove(job)
            self._running[job.spec.job_id] = job
            return job

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                outcome = self._run(job)
            except Exception as exc:
                self.log.exception("training job crashed in the backend",
                                    extra={"fields": {"job_id": job.spec.job_id}})
                outcome = TrainingOutcome("failed", failure_reason=(
                    f"backend error: {type(exc).__name__}: {exc}")[:FAILURE_REASON_CHARS])
            finally:
                with self._cond:
                    self._running.pop(job.spec.job_id, None)
                if self._release is not None:
                    try:
                        self._release(job)
                    except Exception:  # a cleanup failure must not cost the job its on_finished
                        self.log.exception("cleaning up after a training job failed",
                                            extra={"fields": {"job_id": job.spec.job_id}})
            self._finish(job, outcome)

    def _finish(self, job: J, outcome: TrainingOutcome) -> None:
        try:
            job.listener.on_finished(job.spec.job_id, outcome)
        except Exception:
            self.log.exception("on_finished failed", extra={"fields": {"job_id": job.spec.job_id}})
