"""The gateway's state in one SQL database: SQLite in the data dir by default, PostgreSQL for a
fleet of gateways (`--database-url`). `schema.py` holds the tables, `migrations/` the Alembic
revisions that make them, `database.py` the engine and its transactions, `legacy.py` the
upgrade of the SQLite files the release before kept (docs/fleet.md)."""
