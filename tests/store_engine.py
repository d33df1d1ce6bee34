"""Which database engine the suite's gateways use: the embedded SQLite default, or, with
`FORECAST_TEST_DATABASE=postgresql`, a fresh database per data dir on one PostgreSQL server
started for the run (`make test` runs the store's modules a second time that way).

`database_url_for(data_dir)` is what a test's gateway gets ("" for the default): the same
database for the same data dir, so a test that restarts a gateway finds its data again.
"""

from __future__ import annotations

import atexit
import os
import tempfile
from pathlib import Path

from postgres_server import PostgresServer

ENGINE = os.environ.get("FORECAST_TEST_DATABASE", "sqlite")
_server: PostgresServer | None = None
_databases: dict[Path, str] = {}


def database_url_for(data_dir: Path) -> str:
    """The database URL of the gateway on ``data_dir`` ("" on the SQLite default)."""
    global _server
    if ENGINE != "postgresql":
        return ""
    if _server is None:
        _server = PostgresServer(Path(tempfile.mkdtemp(prefix="forecast-pg-suite-"))).start()
        atexit.register(_server.stop)
    key = Path(data_dir).resolve()
    if key not in _databases:
        _databases[key] = _server.create()
    return _databases[key]


def open_database(data_dir: Path):
    """The database the gateway on ``data_dir`` uses, opened here (close it after use)."""
    from forecast_gateway.store.database import Database, default_url

    return Database.open(database_url_for(data_dir) or default_url(data_dir))


def database_dump(data_dir: Path) -> str:
    """Every row of every table of that database, as text (to look for what must not be
    stored)."""
    from forecast_gateway.store import schema

    db = open_database(data_dir)
    try:
        with db.read() as conn:
            return "\n".join(repr(tuple(row)) for table in schema.metadata.sorted_tables
                             for row in conn.execute(table.select()))
    finally:
        db.close()
