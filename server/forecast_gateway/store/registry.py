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

from forecast_gateway.domain import Dataset, ModelVersion
from forecast_gateway.store import schema
from forecast_gateway.store.database import Database
from forecast_gateway.store.job_records import (
    JobRecords,
    decision,
    decision_json,
    storable,
    text,
    update_job_in,
)
from forecasting.promotion import Decision

LIVE_COUNTER = "live"

_retailers, _datasets, _models = schema.retailers, schema.datasets, schema.models


class Registry(JobRecords):
    """Records in the store's database. Paths are stored relative to `root` (the data dir).
    The jobs' methods (leases and claims included) come from `JobRecords`."""

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
        if not storable(retailer):
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
                retailer=ds.retailer, dataset_id=ds.dataset_id, filename=text(ds.filename),
                format=ds.format, path=self._rel(ds.path), size_bytes=ds.size_bytes,
                sha256=ds.sha256, rows=ds.rows, series=ds.series, start_date=ds.start_date,
                end_date=ds.end_date, created_at=ds.created_at))

    def get_dataset(self, retailer: str, dataset_id: str) -> Dataset | None:
        """The retailer's dataset, or None."""
        if not storable(retailer, dataset_id):
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

    # -- models ------------------------------------------------------------------------------

    def next_model_number(self, retailer: str) -> int:
        """The next version number of the retailer (1 for the first model)."""
        with self.db.read() as conn:
            n = conn.execute(select(func.max(_models.c.number))
                             .where(_models.c.retailer == retailer)).scalar()
        return int(n or 0) + 1

    def add_model(self, model: ModelVersion, number: int, make_live: bool,
                  job_update: dict[str, object] | None = None, shadow: bool = False) -> None:
        """Record a model version; optionally make it live (or the version in shadow) and update
        its job, atomically."""
        with self.db.write() as conn:
            conn.execute(_models.insert().values(
                retailer=model.retailer, version=model.version, number=number,
                path=self._rel(model.path), job_id=model.job_id, dataset_id=model.dataset_id,
                model_kind=model.model_kind, final_model=model.final_model,
                data_start=model.data_start, data_end=model.data_end, horizon=model.horizon,
                created_at=model.created_at,
                manifest=json.dumps(model.manifest, sort_keys=True) if model.manifest else "",
                promotion=decision_json(model.promotion),
                trial=json.dumps(model.trial, sort_keys=True) if model.trial else ""))
            if make_live:
                self._set_live(conn, model.retailer, model.version)
            if shadow:
                self._set_shadow(conn, model.retailer, model.version)
            if job_update:
                update_job_in(conn, model.job_id, job_update)

    def _models_query(self):
        live = (_retailers.c.live_version == _models.c.version)
        shadow = (_retailers.c.shadow_version == _models.c.version)
        return select(_models, live.label("live"), shadow.label("shadow")).join(
            _retailers, _retailers.c.retailer == _models.c.retailer)

    def get_model(self, retailer: str, version: str) -> ModelVersion | None:
        """The retailer's model version, or None."""
        if not storable(retailer, version):
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
            promotion=decision(row.promotion), shadow=bool(row.shadow),
            trial=json.loads(row.trial) if row.trial else None,
        )

    # -- shadow (dataplane.shadow_trial) -----------------------------------------------------

    def shadow_versions(self) -> dict[str, str]:
        """Every retailer's version in shadow (retailers without one are left out)."""
        with self.db.read() as conn:
            rows = conn.execute(select(_retailers.c.retailer, _retailers.c.shadow_version)
                                .where(_retailers.c.shadow_version.is_not(None))).all()
        return {r.retailer: r.shadow_version for r in rows}

    def _set_shadow(self, conn: Connection, retailer: str, version: str | None) -> None:
        conn.execute(_retailers.update().where(_retailers.c.retailer == retailer)
                     .values(shadow_version=version))
        self.db.bump(conn, LIVE_COUNTER)     # replicas follow shadow switches as live ones

    def end_shadow(self, retailer: str, version: str, trial: dict, on: list[str],
                   trained: str, decided: Decision, job_id: str = "",
                   make_live: str = "") -> bool:
        """End the shadow of `version` in one transaction: clear the pointer (only if it still
        names `version`: on a fleet another replica may have decided first; False then), store
        `trial` on the versions `on`, the `decided` promotion on the `trained` version and its
        job, and with `make_live` switch the live version to that version."""
        with self.db.write() as conn:
            cleared = conn.execute(_retailers.update().where(and_(
                _retailers.c.retailer == retailer, _retailers.c.shadow_version == version))
                .values(shadow_version=None))
            if cleared.rowcount != 1:
                return False
            self.db.bump(conn, LIVE_COUNTER)
            self._store_trial(conn, retailer, on, trial)
            self._store_decision(conn, retailer, trained, decided, job_id)
            if make_live:
                self._set_live(conn, retailer, make_live)
        return True

    def store_trial(self, retailer: str, on: list[str], trial: dict, trained: str,
                    decided: Decision, job_id: str = "") -> None:
        """Store a running trial's latest numbers on the versions `on`, and the promotion
        decision carrying them on the `trained` version and its job."""
        with self.db.write() as conn:
            self._store_trial(conn, retailer, on, trial)
            self._store_decision(conn, retailer, trained, decided, job_id)

    def _store_trial(self, conn: Connection, retailer: str, on: list[str], trial: dict) -> None:
        conn.execute(_models.update().where(and_(_models.c.retailer == retailer,
                                                 _models.c.version.in_(on)))
                     .values(trial=json.dumps(trial, sort_keys=True)))

    def _store_decision(self, conn: Connection, retailer: str, version: str, decided: Decision,
                        job_id: str) -> None:
        conn.execute(_models.update().where(and_(
            _models.c.retailer == retailer, _models.c.version == version))
            .values(promotion=decision_json(decided)))
        if job_id:
            update_job_in(conn, job_id, {"promotion": decided})
