"""The upgrade from the release before Alembic, which kept monitoring in its own SQLite file.

The registry's file (`registry.sqlite3`) becomes the database itself: its Alembic baseline
revision finishes the old registry's steps and adds the monitoring tables. Their rows are then
copied here from `monitoring.sqlite3`, in chunks, whatever the target database; the old file is
renamed `monitoring.sqlite3.imported` afterwards, so the copy runs once and nothing is deleted.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from forecast_gateway.store import schema
from forecast_gateway.store.database import Database

log = logging.getLogger("forecast_gateway.store")

LEGACY_MONITORING = "monitoring.sqlite3"
TABLES = (schema.served, schema.uploads, schema.live_scores, schema.live_daily, schema.drift)
CHUNK = 10_000


def import_monitoring(db: Database, data_dir: Path) -> int:
    """Copy a legacy monitoring file's rows into ``db`` (rows already there are kept); the
    rows copied. A no-op without the file."""
    path = Path(data_dir) / LEGACY_MONITORING
    if not path.exists():
        return 0
    copied = 0
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        present = {r[0] for r in source.execute("SELECT name FROM sqlite_master")}
        for table in TABLES:
            if table.name not in present:
                continue
            names = [c.name for c in table.columns]
            rows = source.execute(f"SELECT {', '.join(names)} FROM {table.name}")
            while batch := rows.fetchmany(CHUNK):
                with db.write() as conn:
                    conn.execute(db.insert_ignoring_duplicates(table),
                                 [dict(zip(names, row)) for row in batch])
                copied += len(batch)
    finally:
        source.close()
    path.rename(path.with_name(path.name + ".imported"))
    log.info("monitoring rows copied from the release before's file",
             extra={"fields": {"rows": copied, "file": str(path)}})
    return copied
