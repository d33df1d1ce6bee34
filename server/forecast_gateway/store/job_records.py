"""The registry's training jobs: records, the idempotency of a Train's request id, and a
fleet's claims, leases, reaping and cancels (`dataplane.fleet`). A mixin of `Registry`, which
gives it `db`; kept apart so each module holds one concept.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import Connection, and_, func, select
from sqlalchemy.exc import IntegrityError

from forecast_gateway.domain import Job, JobState
from forecast_gateway.store import schema
from forecast_gateway.store.database import Database
from forecasting.promotion import Decision

_jobs = schema.jobs
_JOB_FIELDS = ("job_id", "retailer", "dataset_id", "model_kind", "hyperparameters", "horizon",
               "state", "created_at", "started_at", "ended_at", "failure_reason",
               "model_version", "stage", "progress", "metrics", "seq", "promote", "promotion",
               "data_note", "request_id", "promote_after")
_UPDATABLE = frozenset({"state", "started_at", "ended_at", "failure_reason", "model_version",
                        "stage", "progress", "metrics", "promotion", "promote_after"})


class JobRecords:
    """Job records in the store's database (`Registry` is one)."""

    db: Database

    # -- jobs --------------------------------------------------------------------------------

    def add_job(self, job: Job) -> Job:
        """Record a new job; with a `request_id` the retailer has used before, the job that
        request started instead (a retried Train starts one job)."""
        values = {name: _to_column(name, getattr(job, name)) for name in _JOB_FIELDS}
        try:
            with self.db.write() as conn:
                conn.execute(_jobs.insert().values(**values))
        except IntegrityError:      # the same request id, recorded a moment ago elsewhere
            earlier = self.job_by_request(job.retailer, job.request_id) if job.request_id \
                else None
            if earlier is None:
                raise
            return earlier
        return job

    def job_by_request(self, retailer: str, request_id: str) -> Job | None:
        """The retailer's job started by the Train with `request_id`, or None."""
        if not storable(retailer, request_id):
            return None
        with self.db.read() as conn:
            row = conn.execute(select(*_job_columns()).where(and_(
                _jobs.c.retailer == retailer, _jobs.c.request_id == request_id))).first()
        return None if row is None else _job(row)

    def update_job(self, job_id: str, **changes: object) -> Job | None:
        """Change some fields of a job (bumping `seq`); returns the updated job."""
        with self.db.write() as conn:
            return update_job_in(conn, job_id, changes)

    def job_by_id(self, job_id: str) -> Job | None:
        """A job by id alone (internal: backend events carry no retailer)."""
        if not storable(job_id):
            return None
        with self.db.read() as conn:
            row = conn.execute(select(*_job_columns()).where(_jobs.c.job_id == job_id)).first()
        return None if row is None else _job(row)

    def get_job(self, retailer: str, job_id: str) -> Job | None:
        """The retailer's job, or None."""
        if not storable(retailer, job_id):
            return None
        with self.db.read() as conn:
            row = conn.execute(select(*_job_columns()).where(and_(
                _jobs.c.retailer == retailer, _jobs.c.job_id == job_id))).first()
        return None if row is None else _job(row)

    def list_jobs(self, retailer: str, limit: int, offset: int, state: JobState | None) -> list[Job]:
        """The retailer's jobs, newest first."""
        query = select(*_job_columns()).where(_jobs.c.retailer == retailer)
        if state is not None:
            query = query.where(_jobs.c.state == state.value)
        query = query.order_by(_jobs.c.created_at.desc(), _jobs.c.job_id.desc()) \
            .limit(limit).offset(offset)
        with self.db.read() as conn:
            return [_job(r) for r in conn.execute(query).all()]

    def unfinished_jobs(self, owner: str | None = None) -> list[Job]:
        """Jobs in QUEUED or RUNNING (all retailers; or only those `owner` holds): what a
        restart cut off."""
        query = select(*_job_columns()).where(_jobs.c.state.in_(("QUEUED", "RUNNING")))
        if owner is not None:
            query = query.where(_jobs.c.owner == owner)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [_job(r) for r in rows]

    def job_counts(self) -> dict[str, int]:
        """Jobs by state, every state present (all retailers; for the metrics)."""
        counts = {state.value: 0 for state in JobState}
        with self.db.read() as conn:
            for state, count in conn.execute(select(_jobs.c.state, func.count())
                                             .group_by(_jobs.c.state)):
                counts[state] = count
        return counts

    # -- the fleet: claims, leases, cancel requests --------------------------------------------

    def claim_job(self, owner: str, lease_s: float) -> Job | None:
        """Claim the next QUEUED job nobody holds for `owner` under a lease of `lease_s`, or None.
        Fair: the oldest job of a retailer with nothing RUNNING first, then the oldest. Two
        gateways never claim one job (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the write
        lock)."""
        busy = select(_jobs.c.retailer).where(_jobs.c.state == JobState.RUNNING.value)
        candidate = (select(_jobs.c.job_id)
                     .where(and_(_jobs.c.state == JobState.QUEUED.value, _jobs.c.owner == "",
                                 _jobs.c.cancel_requested == 0))
                     .order_by(_jobs.c.retailer.in_(busy), _jobs.c.created_at, _jobs.c.job_id)
                     .limit(1))
        if self.db.dialect == "postgresql":
            candidate = candidate.with_for_update(skip_locked=True)
        with self.db.write() as conn:
            job_id = conn.execute(candidate).scalar()
            if job_id is None:
                return None
            claimed = conn.execute(_jobs.update().where(and_(
                _jobs.c.job_id == job_id, _jobs.c.owner == "")).values(
                owner=owner, lease_expires_at=time.time() + lease_s,
                attempts=_jobs.c.attempts + 1, seq=_jobs.c.seq + 1))
            if claimed.rowcount != 1:
                return None
            row = conn.execute(select(*_job_columns()).where(_jobs.c.job_id == job_id)).first()
        return _job(row)

    def renew_leases(self, owner: str, lease_s: float) -> list[str]:
        """Extend every lease `owner` holds on an unfinished job; the ids of those whose cancel
        was asked for (on another replica)."""
        with self.db.write() as conn:
            mine = and_(_jobs.c.owner == owner, _jobs.c.state.in_(("QUEUED", "RUNNING")))
            conn.execute(_jobs.update().where(mine).values(lease_expires_at=time.time() + lease_s))
            return list(conn.execute(select(_jobs.c.job_id).where(
                and_(mine, _jobs.c.cancel_requested == 1))).scalars())

    def reap_expired(self, reason: str) -> list[Job]:
        """Fail every unfinished job whose holder's lease ran out (its gateway died): FAILED with
        `reason` ({owner} and {expired} are filled in), never left RUNNING."""
        now = time.time()
        expired = and_(_jobs.c.state.in_(("QUEUED", "RUNNING")), _jobs.c.owner != "",
                       _jobs.c.lease_expires_at < now)
        reaped = []
        with self.db.write() as conn:
            rows = conn.execute(select(_jobs.c.job_id, _jobs.c.owner, _jobs.c.lease_expires_at)
                                .where(expired)).all()
            for job_id, owner, lease in rows:
                text = reason.format(owner=owner, expired=time.strftime(
                    "%Y-%m-%dT%H:%M:%SZ", time.gmtime(lease)))
                done = conn.execute(_jobs.update().where(and_(_jobs.c.job_id == job_id, expired))
                                    .values(state=JobState.FAILED.value, ended_at=now,
                                            failure_reason=text, seq=_jobs.c.seq + 1))
                if done.rowcount == 1:
                    reaped.append(job_id)
            return [_job(r) for r in conn.execute(
                select(*_job_columns()).where(_jobs.c.job_id.in_(reaped))).all()] if reaped else []

    def request_cancel(self, retailer: str, job_id: str, owner: str) -> str:
        """Cancel the job: "cancelled" when it was still waiting for a gateway (done here),
        "mine" when `owner` holds it (the caller stops it), "asked" when another gateway does
        (it stops it within its next poll), "finished" when it already ended."""
        if not storable(retailer, job_id):
            return "finished"
        with self.db.write() as conn:
            row = conn.execute(select(_jobs.c.state, _jobs.c.owner).where(and_(
                _jobs.c.retailer == retailer, _jobs.c.job_id == job_id))).first()
            if row is None or JobState(row.state).terminal:
                return "finished"
            if row.owner == "":
                conn.execute(_jobs.update().where(_jobs.c.job_id == job_id).values(
                    state=JobState.CANCELLED.value, ended_at=time.time(),
                    failure_reason="cancelled while queued", seq=_jobs.c.seq + 1))
                return "cancelled"
            if row.owner == owner:
                return "mine"
            conn.execute(_jobs.update().where(_jobs.c.job_id == job_id)
                         .values(cancel_requested=1))
            return "asked"

    def heartbeat(self, gateway_id: str, host: str, pid: int, started_at: float) -> None:
        """Record that `gateway_id` is alive now."""
        with self.db.write() as conn:
            conn.execute(self.db.insert_or_replace(schema.gateways, ("gateway_id",), {
                "gateway_id": gateway_id, "host": host, "pid": pid, "started_at": started_at,
                "heartbeat_at": time.time()}))


def _job_columns():
    return [_jobs.c[name] for name in _JOB_FIELDS]


def decision_json(value: Decision | None) -> str:
    """A promotion decision as its column holds it."""
    return "" if value is None else json.dumps(value.to_dict(), sort_keys=True)


def decision(stored: str) -> Decision | None:
    """A promotion decision from its column."""
    return Decision.from_dict(json.loads(stored)) if stored else None


def storable(*values: str) -> bool:
    """Whether text can be a key here: PostgreSQL's text holds no NUL character, so an id with
    one names nothing (ids are made by the gateway; a caller's NUL is never one)."""
    return not any("\x00" in v for v in values)


def text(value: str) -> str:
    """Free text as a column holds it: a NUL (a training log's stray byte) becomes U+FFFD."""
    return value.replace("\x00", "\ufffd")


def _to_column(name: str, value: object) -> object:
    """A Job field as its column holds it."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, JobState):
        return value.value
    if name in ("metrics", "hyperparameters"):
        return json.dumps(value, sort_keys=True)
    if name == "promote_after":
        return "" if value is None else json.dumps(value, sort_keys=True)
    if name == "promotion":
        return decision_json(value)  # type: ignore[arg-type]
    return value


def update_job_in(conn: Connection, job_id: str, changes: dict[str, object]) -> Job | None:
    """Change some fields of a job in `conn`'s transaction (bumping `seq`)."""
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValueError(f"cannot update job fields {sorted(unknown)}")
    if changes:
        conn.execute(_jobs.update().where(_jobs.c.job_id == job_id).values(
            seq=_jobs.c.seq + 1, **{k: _to_column(k, v) for k, v in changes.items()}))
    row = conn.execute(select(*_job_columns()).where(_jobs.c.job_id == job_id)).first()
    return None if row is None else _job(row)


def _job(row) -> Job:
    return Job(
        job_id=row.job_id, retailer=row.retailer, dataset_id=row.dataset_id,
        model_kind=row.model_kind, hyperparameters=json.loads(row.hyperparameters),
        horizon=row.horizon, state=JobState(row.state), created_at=row.created_at,
        started_at=row.started_at, ended_at=row.ended_at,
        failure_reason=row.failure_reason, model_version=row.model_version,
        stage=row.stage, progress=row.progress, metrics=json.loads(row.metrics),
        seq=row.seq, promote=row.promote, promotion=decision(row.promotion),
        data_note=row.data_note, request_id=row.request_id,
        promote_after=json.loads(row.promote_after) if row.promote_after else None,
    )
