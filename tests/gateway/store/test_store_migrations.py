"""The store's schema and its migrations, on both engines: the files the release before kept
(registry.sqlite3 and monitoring.sqlite3, written by 3abdd5b: fixtures/release_3abdd5b) open
with every record intact; an older registry finishes its own steps; a database at a baseline
revision with rows in it upgrades on PostgreSQL too; the head revision is exactly
`store/schema.py`; a database newer than the gateway is refused."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from forecast_gateway.auth.keys import KeyStore
from forecast_gateway.store import legacy, schema
from forecast_gateway.store.database import (
    Database,
    DatabaseError,
    alembic_config,
    default_url,
    normalise_url,
)
from forecast_gateway.store.monitoring_store import MonitoringStore
from forecast_gateway.store.registry import Registry
from sqlalchemy import create_engine, text

RELEASE = Path(__file__).resolve().parents[1] / "fixtures" / "release_3abdd5b"


def test_the_release_befores_files_open_with_every_record(tmp_path) -> None:
    for name in ("registry.sqlite3", "monitoring.sqlite3"):
        shutil.copy(RELEASE / name, tmp_path / name)
    expected = json.loads((RELEASE / "expected.json").read_text())
    db = Database.open(default_url(tmp_path))
    try:
        assert legacy.import_monitoring(db, tmp_path) == 7   # 3 served, 1 each of the rest
        assert not (tmp_path / "monitoring.sqlite3").exists()
        assert (tmp_path / "monitoring.sqlite3.imported").exists()
        registry, keys, monitoring = Registry(db, tmp_path), KeyStore(db), MonitoringStore(db)
        model = registry.get_model("acme", "v1")
        assert model.live and model.manifest == {"artifact.json": "cd" * 32}
        assert model.promotion.reason == "no live model to compare against"
        job = registry.get_job("acme", "job-1")
        assert job.metrics == {"xgboost.test.rmsle": 0.5} and job.data_note == ""
        assert job.request_id == "" and registry.get_dataset("acme", "ds-1").rows == 10
        assert keys.verify(expected["retailer_key"]).retailer == "acme"
        assert keys.get(expected["revoked_key_id"]).revoked
        served = monitoring.served("acme")
        assert len(served) == 3 and served["naive"].isna().sum() == 1
        assert monitoring.drift("acme")[1] == {"score": 0.25}
        assert monitoring.last_upload("acme")["dataset_id"] == "ds-2"
        assert monitoring.scores("acme")["v1"][0]["rmsle"] == 0.4
        assert monitoring.scores("acme", by="day")["v1"][17394]["count"] == 2
    finally:
        db.close()
    assert sqlite3.connect(tmp_path / "registry.sqlite3").execute(
        "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "5"
    again = Database.open(default_url(tmp_path))       # opening again changes nothing
    assert legacy.import_monitoring(again, tmp_path) == 0
    again.close()


def test_a_version_1_registry_finishes_its_own_steps(tmp_path) -> None:
    path = tmp_path / "registry.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE retailers (retailer TEXT PRIMARY KEY, created_at REAL NOT NULL,
                                live_version TEXT);
        CREATE TABLE models (retailer TEXT NOT NULL, version TEXT NOT NULL,
            number INTEGER NOT NULL, path TEXT NOT NULL, job_id TEXT NOT NULL,
            dataset_id TEXT NOT NULL, model_kind TEXT NOT NULL, final_model TEXT NOT NULL,
            data_start TEXT NOT NULL, data_end TEXT NOT NULL, horizon INTEGER NOT NULL,
            created_at REAL NOT NULL, PRIMARY KEY (retailer, version));
        CREATE TABLE jobs (job_id TEXT PRIMARY KEY, retailer TEXT NOT NULL,
            dataset_id TEXT NOT NULL, model_kind TEXT NOT NULL, hyperparameters TEXT NOT NULL,
            horizon INTEGER NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL,
            started_at REAL, ended_at REAL, failure_reason TEXT NOT NULL DEFAULT '',
            model_version TEXT NOT NULL DEFAULT '', stage TEXT NOT NULL DEFAULT '',
            progress REAL NOT NULL DEFAULT 0, metrics TEXT NOT NULL DEFAULT '{}',
            seq INTEGER NOT NULL DEFAULT 0);
        INSERT INTO meta VALUES ('schema_version', '1');
        INSERT INTO retailers VALUES ('acme', 0, 'v1');
        INSERT INTO models VALUES ('acme','v1',1,'retailers/acme/models/v1','job-1','ds-1',
            'xgboost','xgboost','2017-01-01','2017-08-15',16,0);""")
    old.commit()
    old.close()
    db = Database.open(default_url(tmp_path))
    try:
        registry = Registry(db, tmp_path)
        model = registry.get_model("acme", "v1")
        assert model is not None and model.live and model.manifest == {}
        registry.set_manifest("acme", "v1", {"artifact.json": "ab" * 32})
        assert registry.get_model("acme", "v1").manifest == {"artifact.json": "ab" * 32}
    finally:
        db.close()


def test_a_baseline_database_with_rows_upgrades_on_both_engines(database_url) -> None:
    """Made at revision 0001 (the baseline), with a job in it; the upgrade keeps it."""
    engine = create_engine(normalise_url(database_url))
    with engine.begin() as conn:
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(text("INSERT INTO retailers (retailer, created_at) VALUES ('acme', 0)"))
        conn.execute(text("INSERT INTO jobs (job_id, retailer, dataset_id, model_kind, "
                          "hyperparameters, horizon, state, created_at) VALUES ('job-1', 'acme', "
                          "'ds-1', 'xgboost', '{}', 16, 'SUCCEEDED', 0)"))
    engine.dispose()
    db = Database.open(database_url)
    try:
        job = Registry(db, Path(".")).get_job("acme", "job-1")
        assert job is not None and job.request_id == "" and db.counter("live") == 0
    finally:
        db.close()


def test_the_head_revision_is_the_schema_module(database_url) -> None:
    db = Database.open(database_url)
    try:
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
        assert diff == []
    finally:
        db.close()


def test_a_database_newer_than_the_gateway_is_refused(database_url) -> None:
    Database.open(database_url).close()
    engine = create_engine(normalise_url(database_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(DatabaseError, match="newer than this gateway knows .* upgrade the gateway"):
        Database.open(database_url)
