"""What makes one gateway a member of a fleet on one database (docs/fleet.md). The embedded
SQLite default is a fleet of one and runs the same code.

A `Dispatcher` thread per gateway, every `poll_s` (and at once when woken):

- **claims** QUEUED jobs nobody holds while its backend has a free training slot
  (`Registry.claim_job`: `FOR UPDATE SKIP LOCKED` on PostgreSQL), and starts them there: a Train
  answered by one replica may run on another, and no job runs twice;
- **keeps its leases alive** (`lease_s`, renewed every tick) and stops the jobs whose cancel was
  asked for on another replica;
- **fails the jobs of a gateway that died** (`kill -9`, a lost node): once a holder's lease has
  run out its jobs are FAILED with the reason, never left RUNNING;
- **follows live switches** made on other replicas: the `live` counter is polled, and a changed
  live version is loaded into this gateway's backend before its pointer moves.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time

from forecast_gateway.dataplane.jobs import JobService
from forecast_gateway.dataplane.models import ModelService
from forecast_gateway.dataplane.state import SharedState

log = logging.getLogger("forecast_gateway.dataplane.fleet")

REAPED_REASON = ("the gateway {owner} running this job stopped (its lease ran out at {expired}); "
                 "submit the job again")


def new_gateway_id() -> str:
    """A gateway process's id: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class Dispatcher:
    """The fleet member's background work (module docstring)."""

    def __init__(self, state: SharedState, jobs: JobService, models: ModelService,
                 gateway_id: str, lease_s: float, poll_s: float):
        self._s, self._jobs, self._models = state, jobs, models
        self.gateway_id = gateway_id
        self.lease_s, self.poll_s = lease_s, poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = time.time()
        self._live_seen = -1
        self._last_heartbeat = 0.0

    def start(self) -> None:
        """Take part: first tick now (so a restarted gateway's queue is picked up at once)."""
        self._tick()
        self._thread = threading.Thread(target=self._loop, name="fleet-dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Tick now (a job was queued here, a slot freed up)."""
        self._wake.set()

    def stop(self) -> None:
        """Claim nothing more; the leases held lapse unless the jobs end first (a graceful stop
        fails them with its own reason through the backend)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._tick()
            except Exception:   # the database away for a moment: try again next tick
                log.exception("fleet tick failed", extra={"fields": {"gateway": self.gateway_id}})

    def _tick(self) -> None:
        registry = self._s.registry
        now = time.time()
        if now - self._last_heartbeat >= min(self.lease_s / 3, 5.0):
            registry.heartbeat(self.gateway_id, socket.gethostname(), os.getpid(),
                               self._started_at)
            self._last_heartbeat = now
        for job_id in registry.renew_leases(self.gateway_id, self.lease_s):
            self._s.backend.cancel_training(job_id)
        for job in registry.reap_expired(REAPED_REASON):
            log.warning("job of a stopped gateway failed", extra={"fields": {
                "job_id": job.job_id, "retailer": job.retailer, "reason": job.failure_reason}})
            self._s.storage.write_job_record(job)
            self._s.hub.notify(job.job_id)
        while not self._s.closing.is_set() and self._s.backend.training_capacity() > 0:
            job = registry.claim_job(self.gateway_id, self.lease_s)
            if job is None:
                break
            self._jobs.start(job)
        seen = registry.live_counter()
        if seen != self._live_seen:
            self._models.follow_live()
            self._live_seen = seen
