"""The registry: retailers, datasets, training jobs, model versions and each retailer's live
pointer, in the store's database (`store.schema`; SQLite in the data dir by default,
PostgreSQL for a fleet).

Every lookup is scoped by retailer: asking for another retailer's id finds nothing.
Thread-safe: every method is one short transaction on a pooled connection. Every live switch
bumps the `live` counter in the same transaction, which the other replicas of a fleet poll.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from sqlalchemy import Connection, and_, func, select
from sqlalchemy.exc import IntegrityError

from forecast_gateway.domain import Dataset, Job, JobState, ModelVersion
from forecast_gateway.store import schema
from forecast_gateway.store.database import Database
from forecasting.promotion import Decision

LIVE_COUNTER = "live"

_retailers, _datasets, _jobs, _models = (schema.retailers, schema.datasets, schema.jobs,
                                         schema.models)
_JOB_FIELDS = ("job_id", "retailer", "dataset_id", "model_kind", "hyperparameters", "horizon",
               "state", "created_at", "started_at", "ended_at", "failure_reason",
               "model_version", "stage", "progress", "metrics", "seq", "promote", "promotion",
               "data_note", "request_id")
_UPDATABLE = frozenset({"state", "started_at", "ended_at", "failure_reason", "model_version",
                        "stage", "progress", "metrics", "promotion"})


class Registry:
    """Records in the store's database. Paths are stored relative to `root` (the data dir)."""

    def __init__(self, db: Database, root: Path):
        self.db = db
        self.root = Path(root).resolve()

    def close(self) -> None:
        """Nothing of its own to close: the database belongs to whoever opened it."""

    def _rel(self, path: Path) -> str:
        try:
            return str(Path(path).resolve().relative_to(self.root))
        except ValueError:
            return str(Path(path).resolve())

    def _abs(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else self.root / p

    # -- retailers ---------------------------------------------------------------------------

    def ensure_retailer(self, retailer: str) -> None:
        """Create the retailer if it is new."""
        with self.db.write() as conn:
            conn.execute(self.db.insert_ignoring_duplicates(_retailers).values(
                retailer=retailer, created_at=time.time()))

    def retailer_exists(self, retailer: str) -> bool:
        """True when the retailer has been created."""
        if not _storable(retailer):
            return False
        with self.db.read() as conn:
            return conn.execute(select(_retailers.c.retailer)
                                .where(_retailers.c.retailer == retailer)).first() is not None

    def live_versions(self) -> dict[str, str]:
        """Every retailer's live version (retailers without one are left out)."""
        with self.db.read() as conn:
            rows = conn.execute(select(_retailers.c.retailer, _retailers.c.live_version)
                                .where(_retailers.c.live_version.is_not(None))).all()
        return {r.retailer: r.live_version for r in rows}

    def live_version(self, retailer: str) -> str | None:
        """The retailer's live version in the database, or None."""
        with self.db.read() as conn:
            return conn.execute(select(_retailers.c.live_version)
                                .where(_retailers.c.retailer == retailer)).scalar()

    def set_live(self, retailer: str, version: str) -> None:
        """Point the retailer's live model at `version`."""
        with self.db.write() as conn:
            self._set_live(conn, retailer, version)

    def _set_live(self, conn: Connection, retailer: str, version: str) -> None:
        conn.execute(_retailers.update().where(_retailers.c.retailer == retailer)
                     .values(live_version=version))
        self.db.bump(conn, LIVE_COUNTER)

    def live_counter(self) -> int:
        """How many live switches the database has seen (what replicas poll)."""
        return self.db.counter(LIVE_COUNTER)

    # -- datasets ----------------------------------------------------------------------------

    def add_dataset(self, ds: Dataset) -> None:
        """Record a stored, validated dataset."""
        with self.db.write() as conn:
            conn.execute(_datasets.insert().values(
                retailer=ds.retailer, dataset_id=ds.dataset_id, filename=_text(ds.filename),
                format=ds.format, path=self._rel(ds.path), size_bytes=ds.size_bytes,
                sha256=ds.sha256, rows=ds.rows, series=ds.series, start_date=ds.start_date,
                end_date=ds.end_date, created_at=ds.created_at))

    def get_dataset(self, retailer: str, dataset_id: str) -> Dataset | None:
        """The retailer's dataset, or None."""
        if not _storable(retailer, dataset_id):
            return None
        with self.db.read() as conn:
            row = conn.execute(select(_datasets).where(and_(
                _datasets.c.retailer == retailer, _datasets.c.dataset_id == dataset_id))).first()
        return None if row is None else self._dataset(row)

    def newest_dataset(self, retailer: str) -> Dataset | None:
        """The retailer's most recently uploaded dataset, or None when it has none."""
        with self.db.read() as conn:
            row = conn.execute(select(_datasets).where(_datasets.c.retailer == retailer)
                               .order_by(_datasets.c.created_at.desc(),
                                         _datasets.c.dataset_id.desc()).limit(1)).first()
        return None if row is None else self._dataset(row)

    def _dataset(self, row) -> Dataset:
        return Dataset(
            dataset_id=row.dataset_id, retailer=row.retailer, filename=row.filename,
            format=row.format, path=self._abs(row.path), size_bytes=row.size_bytes,
            sha256=row.sha256, rows=row.rows, series=row.series, start_date=row.start_date,
            end_date=row.end_date, created_at=row.created_at)

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
        if not _storable(retailer, request_id):
            return None
        with self.db.read() as conn:
            row = conn.execute(select(*_job_columns()).where(and_(
                _jobs.c.retailer == retailer, _jobs.c.request_id == request_id))).first()
        return None if row is None else _job(row)

    def update_job(self, job_id: str, **changes: object) -> Job | None:
        """Change some fields of a job (bumping `seq`); returns the updated job."""
        with self.db.write() as conn:
            return _update_job(conn, job_id, changes)

    def job_by_id(self, job_id: str) -> Job | None:
        """A job by id alone (internal: backend events carry no retailer)."""
        if not _storable(job_id):
            return None
        with self.db.read() as conn:
            row = conn.execute(select(*_job_columns()).where(_jobs.c.job_id == job_id)).first()
        return None if row is None else _job(row)

    def get_job(self, retailer: str, job_id: str) -> Job | None:
        """The retailer's job, or None."""
        if not _storable(retailer, job_id):
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
        if not _storable(retailer, job_id):
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

    # -- models ------------------------------------------------------------------------------

    def next_model_number(self, retailer: str) -> int:
        """The next version number of the retailer (1 for the first model)."""
        with self.db.read() as conn:
            n = conn.execute(select(func.max(_models.c.number))
                             .where(_models.c.retailer == retailer)).scalar()
        return int(n or 0) + 1

    def add_model(self, model: ModelVersion, number: int, make_live: bool,
                  job_update: dict[str, object] | None = None) -> None:
        """Record a model version; optionally make it live and update its job, atomically."""
        with self.db.write() as conn:
            conn.execute(_models.insert().values(
                retailer=model.retailer, version=model.version, number=number,
                path=self._rel(model.path), job_id=model.job_id, dataset_id=model.dataset_id,
                model_kind=model.model_kind, final_model=model.final_model,
                data_start=model.data_start, data_end=model.data_end, horizon=model.horizon,
                created_at=model.created_at,
                manifest=json.dumps(model.manifest, sort_keys=True) if model.manifest else "",
                promotion=_decision_json(model.promotion)))
            if make_live:
                self._set_live(conn, model.retailer, model.version)
            if job_update:
                _update_job(conn, model.job_id, job_update)

    def _models_query(self):
        live = (_retailers.c.live_version == _models.c.version)
        return select(_models, live.label("live")).join(
            _retailers, _retailers.c.retailer == _models.c.retailer)

    def get_model(self, retailer: str, version: str) -> ModelVersion | None:
        """The retailer's model version, or None."""
        if not _storable(retailer, version):
            return None
        with self.db.read() as conn:
            row = conn.execute(self._models_query().where(and_(
                _models.c.retailer == retailer, _models.c.version == version))).first()
        return None if row is None else self._model(row)

    def list_models(self, retailer: str) -> list[ModelVersion]:
        """The retailer's model versions, newest first."""
        with self.db.read() as conn:
            rows = conn.execute(self._models_query().where(_models.c.retailer == retailer)
                                .order_by(_models.c.number.desc())).all()
        return [self._model(r) for r in rows]

    def all_models(self) -> list[ModelVersion]:
        """Every retailer's model versions (the start-up reconcile compares them with the disk)."""
        with self.db.read() as conn:
            rows = conn.execute(self._models_query().order_by(_models.c.retailer,
                                                              _models.c.number)).all()
        return [self._model(r) for r in rows]

    def set_manifest(self, retailer: str, version: str, manifest: dict[str, str]) -> None:
        """Record the manifest of a version published before manifests existed."""
        with self.db.write() as conn:
            conn.execute(_models.update().where(and_(
                _models.c.retailer == retailer, _models.c.version == version))
                .values(manifest=json.dumps(manifest, sort_keys=True)))

    def _model(self, row) -> ModelVersion:
        return ModelVersion(
            retailer=row.retailer, version=row.version, path=self._abs(row.path),
            job_id=row.job_id, dataset_id=row.dataset_id, model_kind=row.model_kind,
            final_model=row.final_model, data_start=row.data_start, data_end=row.data_end,
            horizon=row.horizon, created_at=row.created_at, live=bool(row.live),
            manifest=json.loads(row.manifest) if row.manifest else {},
            promotion=_decision(row.promotion),
        )


def _job_columns():
    return [_jobs.c[name] for name in _JOB_FIELDS]


def _decision_json(decision: Decision | None) -> str:
    return "" if decision is None else json.dumps(decision.to_dict(), sort_keys=True)


def _decision(stored: str) -> Decision | None:
    return Decision.from_dict(json.loads(stored)) if stored else None


def _storable(*values: str) -> bool:
    """Whether text can be a key here: PostgreSQL's text holds no NUL character, so an id with
    one names nothing (ids are made by the gateway; a caller's NUL is never one)."""
    return not any("\x00" in v for v in values)


def _text(value: str) -> str:
    """Free text as a column holds it: a NUL (a training log's stray byte) becomes U+FFFD."""
    return value.replace("\x00", "\ufffd")


def _to_column(name: str, value: object) -> object:
    """A Job field as its column holds it."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, JobState):
        return value.value
    if name in ("metrics", "hyperparameters"):
        return json.dumps(value, sort_keys=True)
    if name == "promotion":
        return _decision_json(value)  # type: ignore[arg-type]
    return value


def _update_job(conn: Connection, job_id: str, changes: dict[str, object]) -> Job | None:
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
        seq=row.seq, promote=row.promote, promotion=_decision(row.promotion),
        data_note=row.data_note, request_id=row.request_id,
    )
