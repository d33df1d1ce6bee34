"""The gateway's state in one SQL database: SQLite in the data dir by default, PostgreSQL for a
fleet of gateways (`--database-url`). `schema.py` holds the tables, `migrations/` the Alembic
revisions that make them, `database.py` the engine and its transactions, `legacy.py` the
upgrade of the SQLite files the release before kept (docs/fleet.md).

Beside them, what the data plane stores through: `registry.py` (retailers, datasets, jobs,
versions and live pointers), `storage.py` (the per-retailer files), `monitoring_store.py`
(served forecasts and actuals), `manifest.py` (a published version's checksums),
`job_records.py` (a job's record beside its files) and `datadir_lock.py` (one gateway per data
dir on SQLite)."""
