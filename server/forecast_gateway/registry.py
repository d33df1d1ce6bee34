"""The registry: retailers, datasets, training jobs, model versions and each retailer's live
pointer, in one SQLite file (`<data-dir>/registry.sqlite3`, WAL mode).

Every lookup is scoped by retailer: asking for another retailer's id finds nothing.
Thread-safe: one connection guarded by a lock; every method is one short transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from forecast_gateway.domain import Dataset, Job, JobState, ModelVersion
from forecast_gateway.sqlite_db import SqliteDb
from forecasting.promotion import Decision

SCHEMA_VERSION = 4

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS retailers (
    retailer     TEXT PRIMARY KEY,
    created_at   REAL NOT NULL,
    live_version TEXT
);
CREATE TABLE IF NOT EXISTS datasets (
    retailer   TEXT NOT NULL REFERENCES retailers(retailer),
    dataset_id TEXT NOT NULL,
    filename   TEXT NOT NULL,
    format     TEXT NOT NULL,
    path       TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    rows       INTEGER NOT NULL,
    series     INTEGER NOT NULL,
    start_date TEXT NOT NULL,
    end_date   TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (retailer, dataset_id)
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id          TEXT PRIMARY KEY,
    retailer        TEXT NOT NULL REFERENCES retailers(retailer),
    dataset_id      TEXT NOT NULL,
    model_kind      TEXT NOT NULL,
    hyperparameters TEXT NOT NULL,
    horizon         INTEGER NOT NULL,
    state           TEXT NOT NULL,
    created_at      REAL NOT NULL,
    started_at      REAL,
    ended_at        REAL,
    failure_reason  TEXT NOT NULL DEFAULT '',
    model_version   TEXT NOT NULL DEFAULT '',
    stage           TEXT NOT NULL DEFAULT '',
    progress        REAL NOT NULL DEFAULT 0,
    metrics         TEXT NOT NULL DEFAULT '{}',
    seq             INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_retailer ON jobs (retailer, created_at);
CREATE TABLE IF NOT EXISTS models (
    retailer    TEXT NOT NULL REFERENCES retailers(retailer),
    version     TEXT NOT NULL,
    number      INTEGER NOT NULL,
    path        TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    dataset_id  TEXT NOT NULL,
    model_kind  TEXT NOT NULL,
    final_model TEXT NOT NULL,
    data_start  TEXT NOT NULL,
    data_end    TEXT NOT NULL,
    horizon     INTEGER NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (retailer, version)
);
"""

# Schema changes after version 1, in order: MIGRATIONS[n] takes a version-n registry to n+1.
# `_SCHEMA` stays the version-1 shape; a new registry is created at 1 and migrated like an old
# one, so every registry goes through the same statements.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # The artifact manifest ({relative path: sha256}) recorded at publish, verified at load
    # ('' for versions published before it existed: recorded by the next start's reconcile).
    1: ("ALTER TABLE models ADD COLUMN manifest TEXT NOT NULL DEFAULT ''",),
    # The promotion gate: each job's policy, and the decision (JSON, '' before it is taken) on
    # the job and on the version it registered.
    2: ("ALTER TABLE jobs ADD COLUMN promote TEXT NOT NULL DEFAULT 'if_better'",
        "ALTER TABLE jobs ADD COLUMN promotion TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE models ADD COLUMN promotion TEXT NOT NULL DEFAULT ''"),
    # What the gateway did to a job's training data (stored actuals merged), '' for nothing.
    3: ("ALTER TABLE jobs ADD COLUMN data_note TEXT NOT NULL DEFAULT ''",),
}

_JOB_COLUMNS = ("job_id, retailer, dataset_id, model_kind, hyperparameters, horizon, state, "
                "created_at, started_at, ended_at, failure_reason, model_version, stage, progress, "
                "metrics, seq, promote, promotion, data_note")


class Registry:
    """SQLite-backed records. Paths are stored relative to `root` (the data dir)."""

    def __init__(self, path: Path, root: Path):
        self.root = Path(root).resolve()
        self._sql = SqliteDb(path, schema=_SCHEMA, rows_by_name=True, foreign_keys=True,
                             reentrant=True)
        self._db, self._lock, self._tx = self._sql.conn, self._sql.lock, self._sql.tx
        self._migrate()

    def _migrate(self) -> None:
        """Bring the schema to SCHEMA_VERSION, one transaction per step; refuse a newer one."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', '1')")
        while True:
            with self._tx() as db:
                current = int(db.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()["value"])
                if current > SCHEMA_VERSION:
                    raise RuntimeError(f"the registry has schema version {current}; this gateway "
                                       f"reads up to {SCHEMA_VERSION} (upgrade the gateway)")
                if current == SCHEMA_VERSION:
                    return
                for statement in MIGRATIONS[current]:
                    db.execute(statement)
                db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(current + 1),))

    def close(self) -> None:
        """Close the database."""
        self._sql.close()

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
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO retailers (retailer, created_at) VALUES (?, ?)",
                       (retailer, time.time()))

    def retailer_exists(self, retailer: str) -> bool:
        """True when the retailer has been created."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM retailers WHERE retailer = ?", (retailer,)).fetchone()
        return row is not None

    def live_versions(self) -> dict[str, str]:
        """Every retailer's live version (retailers without one are left out)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT retailer, live_version FROM retailers WHERE live_version IS NOT NULL").fetchall()
        return {r["retailer"]: r["live_version"] for r in rows}

    def set_live(self, retailer: str, version: str) -> None:
        """Point the retailer's live model at `version`."""
        with self._tx() as db:
            db.execute("UPDATE retailers SET live_version = ? WHERE retailer = ?", (version, retailer))

    # -- datasets ----------------------------------------------------------------------------

    def add_dataset(self, ds: Dataset) -> None:
        """Record a stored, validated dataset."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO datasets VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (ds.retailer, ds.dataset_id, ds.filename, ds.format, self._rel(ds.path),
                 ds.size_bytes, ds.sha256, ds.rows, ds.series, ds.start_date, ds.end_date,
                 ds.created_at),
            )

    def get_dataset(self, retailer: str, dataset_id: str) -> Dataset | None:
        """The retailer's dataset, or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM datasets WHERE retailer = ? AND dataset_id = ?",
                                   (retailer, dataset_id)).fetchone()
        return None if row is None else self._dataset(row)

    def newest_dataset(self, retailer: str) -> Dataset | None:
        """The retailer's most recently uploaded dataset, or None when it has none."""
        with self._lock:
            row = self._db.execute("SELECT * FROM datasets WHERE retailer = ? "
                                   "ORDER BY created_at DESC, rowid DESC LIMIT 1",
                                   (retailer,)).fetchone()
        return None if row is None else self._dataset(row)

    def _dataset(self, row: sqlite3.Row) -> Dataset:
        return Dataset(
            dataset_id=row["dataset_id"], retailer=row["retailer"], filename=row["filename"],
            format=row["format"], path=self._abs(row["path"]), size_bytes=row["size_bytes"],
            sha256=row["sha256"], rows=row["rows"], series=row["series"],
            start_date=row["start_date"], end_date=row["end_date"], created_at=row["created_at"],
        )

    # -- jobs --------------------------------------------------------------------------------

    def add_job(self, job: Job) -> None:
        """Record a new job."""
        with self._tx() as db:
            db.execute(
                f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (job.job_id, job.retailer, job.dataset_id, job.model_kind,
                 json.dumps(job.hyperparameters, sort_keys=True), job.horizon, job.state.value,
                 job.created_at, job.started_at, job.ended_at, job.failure_reason,
                 job.model_version, job.stage, job.progress, json.dumps(job.metrics), job.seq,
                 job.promote, _decision_json(job.promotion), job.data_note),
            )

    def update_job(self, job_id: str, **changes: object) -> Job | None:
        """Change some fields of a job (bumping `seq`); returns the updated job."""
        with self._tx() as db:
            return _update_job(db, job_id, changes)

    def job_by_id(self, job_id: str) -> Job | None:
        """A job by id alone (internal: backend events carry no retailer)."""
        with self._lock:
            row = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def get_job(self, retailer: str, job_id: str) -> Job | None:
        """The retailer's job, or None."""
        with self._lock:
            row = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE retailer = ? AND job_id = ?",
                                   (retailer, job_id)).fetchone()
        return None if row is None else _job(row)

    def list_jobs(self, retailer: str, limit: int, offset: int, state: JobState | None) -> list[Job]:
        """The retailer's jobs, newest first."""
        query = f"SELECT {_JOB_COLUMNS} FROM jobs WHERE retailer = ?"
        params: list[object] = [retailer]
        if state is not None:
            query += " AND state = ?"
            params.append(state.value)
        query += " ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?"
        params += [limit, offset]
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [_job(r) for r in rows]

    def unfinished_jobs(self) -> list[Job]:
        """Jobs in QUEUED or RUNNING (all retailers): what a restart cut off."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state IN ('QUEUED', 'RUNNING')").fetchall()
        return [_job(r) for r in rows]

    def job_counts(self) -> dict[str, int]:
        """Jobs by state, every state present (all retailers; for the metrics)."""
        counts = {state.value: 0 for state in JobState}
        with self._lock:
            for state, count in self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
                counts[state] = count
        return counts

    # -- models ------------------------------------------------------------------------------

    def next_model_number(self, retailer: str) -> int:
        """The next version number of the retailer (1 for the first model)."""
        with self._lock:
            row = self._db.execute("SELECT MAX(number) AS n FROM models WHERE retailer = ?",
                                   (retailer,)).fetchone()
        return int(row["n"] or 0) + 1

    def add_model(self, model: ModelVersion, number: int, make_live: bool,
                  job_update: dict[str, object] | None = None) -> None:
        """Record a model version; optionally make it live and update its job, atomically."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO models (retailer, version, number, path, job_id, dataset_id, "
                "model_kind, final_model, data_start, data_end, horizon, created_at, manifest, "
                "promotion) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (model.retailer, model.version, number, self._rel(model.path), model.job_id,
                 model.dataset_id, model.model_kind, model.final_model, model.data_start,
                 model.data_end, model.horizon, model.created_at,
                 json.dumps(model.manifest, sort_keys=True) if model.manifest else "",
                 _decision_json(model.promotion)),
            )
            if make_live:
                db.execute("UPDATE retailers SET live_version = ? WHERE retailer = ?",
                           (model.version, model.retailer))
            if job_update:
                _update_job(db, model.job_id, job_update)

    def get_model(self, retailer: str, version: str) -> ModelVersion | None:
        """The retailer's model version, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT m.*, (r.live_version = m.version) AS live FROM models m "
                "JOIN retailers r ON r.retailer = m.retailer WHERE m.retailer = ? AND m.version = ?",
                (retailer, version)).fetchone()
        return None if row is None else self._model(row)

    def list_models(self, retailer: str) -> list[ModelVersion]:
        """The retailer's model versions, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT m.*, (r.live_version = m.version) AS live FROM models m "
                "JOIN retailers r ON r.retailer = m.retailer WHERE m.retailer = ? "
                "ORDER BY m.number DESC", (retailer,)).fetchall()
        return [self._model(r) for r in rows]

    def all_models(self) -> list[ModelVersion]:
        """Every retailer's model versions (the start-up reconcile compares them with the disk)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT m.*, (r.live_version = m.version) AS live FROM models m "
                "JOIN retailers r ON r.retailer = m.retailer ORDER BY m.retailer, m.number").fetchall()
        return [self._model(r) for r in rows]

    def set_manifest(self, retailer: str, version: str, manifest: dict[str, str]) -> None:
        """Record the manifest of a version published before manifests existed."""
        with self._tx() as db:
            db.execute("UPDATE models SET manifest = ? WHERE retailer = ? AND version = ?",
                       (json.dumps(manifest, sort_keys=True), retailer, version))

    def _model(self, row: sqlite3.Row) -> ModelVersion:
        return ModelVersion(
            retailer=row["retailer"], version=row["version"], path=self._abs(row["path"]),
            job_id=row["job_id"], dataset_id=row["dataset_id"], model_kind=row["model_kind"],
            final_model=row["final_model"], data_start=row["data_start"], data_end=row["data_end"],
            horizon=row["horizon"], created_at=row["created_at"], live=bool(row["live"]),
            manifest=json.loads(row["manifest"]) if row["manifest"] else {},
            promotion=_decision(row["promotion"]),
        )


_UPDATABLE = frozenset({"state", "started_at", "ended_at", "failure_reason", "model_version",
                        "stage", "progress", "metrics", "promotion"})


def _decision_json(decision: Decision | None) -> str:
    return "" if decision is None else json.dumps(decision.to_dict(), sort_keys=True)


def _decision(stored: str) -> Decision | None:
    return Decision.from_dict(json.loads(stored)) if stored else None


def _update_job(db: sqlite3.Connection, job_id: str, changes: dict[str, object]) -> Job | None:
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValueError(f"cannot update job fields {sorted(unknown)}")
    values = {k: (v.value if isinstance(v, JobState) else json.dumps(v) if k == "metrics"
                  else _decision_json(v) if k == "promotion" else v)  # type: ignore[arg-type]
              for k, v in changes.items()}
    if values:
        sets = ", ".join(f"{k} = ?" for k in values)
        db.execute(f"UPDATE jobs SET {sets}, seq = seq + 1 WHERE job_id = ?", (*values.values(), job_id))
    row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return None if row is None else _job(row)


def _job(row: sqlite3.Row) -> Job:
    return Job(
        job_id=row["job_id"], retailer=row["retailer"], dataset_id=row["dataset_id"],
        model_kind=row["model_kind"], hyperparameters=json.loads(row["hyperparameters"]),
        horizon=row["horizon"], state=JobState(row["state"]), created_at=row["created_at"],
        started_at=row["started_at"], ended_at=row["ended_at"],
        failure_reason=row["failure_reason"], model_version=row["model_version"],
        stage=row["stage"], progress=row["progress"], metrics=json.loads(row["metrics"]),
        seq=row["seq"], promote=row["promote"], promotion=_decision(row["promotion"]),
        data_note=row["data_note"],
    )
