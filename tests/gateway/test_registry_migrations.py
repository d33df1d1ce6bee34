"""The registry's schema migrations: an old registry opens with its records intact, at the
current schema version; a registry from a newer gateway is refused."""

from __future__ import annotations

import sqlite3

import pytest
from forecast_gateway import registry as reg


def _version_1_registry(path) -> None:
    db = sqlite3.connect(path)
    db.executescript(reg._SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO retailers VALUES ('acme', 0, 'v1')")
    db.execute("INSERT INTO models VALUES ('acme','v1',1,'retailers/acme/models/v1','job-1','ds-1',"
               "'xgboost','xgboost','2017-01-01','2017-08-15',16,0)")
    db.commit()
    db.close()


def test_an_old_registry_is_migrated_and_keeps_its_models(tmp_path) -> None:
    path = tmp_path / "registry.sqlite3"
    _version_1_registry(path)
    registry = reg.Registry(path, tmp_path)
    try:
        model = registry.get_model("acme", "v1")
        assert model is not None and model.live and model.manifest == {}
        registry.set_manifest("acme", "v1", {"artifact.json": "ab" * 32})
        assert registry.get_model("acme", "v1").manifest == {"artifact.json": "ab" * 32}
    finally:
        registry.close()
    version = sqlite3.connect(path).execute(
        "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(version) == reg.SCHEMA_VERSION
    reg.Registry(path, tmp_path).close()  # opening again is a no-op


def test_a_registry_from_a_newer_gateway_is_refused(tmp_path) -> None:
    path = tmp_path / "registry.sqlite3"
    reg.Registry(path, tmp_path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(reg.SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="upgrade the gateway"):
        reg.Registry(path, tmp_path)
