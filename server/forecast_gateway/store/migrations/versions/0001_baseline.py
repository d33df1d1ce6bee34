"""Baseline: the schema the release before Alembic kept, in one database.

That release kept the registry (schema version 4, counted in `meta`) and the API keys in
`<data-dir>/registry.sqlite3`, and monitoring in `monitoring.sqlite3`. This revision brings an
older registry to version 4 with its own statements (`LEGACY_STEPS`), then creates whatever of
the baseline is missing: on a new database everything, on an old registry the monitoring
tables (whose rows `store.legacy` then copies over). The tables are written out here, frozen:
later revisions change them, never this file.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: The pre-Alembic registry's migrations: LEGACY_STEPS[n] takes version n to n + 1.
LEGACY_STEPS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE models ADD COLUMN manifest TEXT NOT NULL DEFAULT ''",),
    2: ("ALTER TABLE jobs ADD COLUMN promote TEXT NOT NULL DEFAULT 'if_better'",
        "ALTER TABLE jobs ADD COLUMN promotion TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE models ADD COLUMN promotion TEXT NOT NULL DEFAULT ''"),
    3: ("ALTER TABLE jobs ADD COLUMN data_note TEXT NOT NULL DEFAULT ''",),
}
LEGACY_VERSION = 4

baseline = sa.MetaData()
sa.Table("meta", baseline, sa.Column("key", sa.Text, primary_key=True),
         sa.Column("value", sa.Text, nullable=False))
sa.Table("retailers", baseline, sa.Column("retailer", sa.Text, primary_key=True),
         sa.Column("created_at", sa.Float, nullable=False), sa.Column("live_version", sa.Text))
sa.Table(
    "datasets", baseline,
    sa.Column("retailer", sa.Text, sa.ForeignKey("retailers.retailer"), nullable=False),
    *(sa.Column(name, sa.Text, nullable=False)
      for name in ("dataset_id", "filename", "format", "path")),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("series", sa.BigInteger, nullable=False),
    sa.Column("start_date", sa.Text, nullable=False),
    sa.Column("end_date", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("retailer", "dataset_id"))
jobs = sa.Table(
    "jobs", baseline,
    sa.Column("job_id", sa.Text, primary_key=True),
    sa.Column("retailer", sa.Text, sa.ForeignKey("retailers.retailer"), nullable=False),
    sa.Column("dataset_id", sa.Text, nullable=False),
    sa.Column("model_kind", sa.Text, nullable=False),
    sa.Column("hyperparameters", sa.Text, nullable=False),
    sa.Column("horizon", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float), sa.Column("ended_at", sa.Float),
    *(sa.Column(name, sa.Text, nullable=False, server_default="")
      for name in ("failure_reason", "model_version", "stage")),
    sa.Column("progress", sa.Float, nullable=False, server_default=sa.text("0")),
    sa.Column("metrics", sa.Text, nullable=False, server_default="{}"),
    sa.Column("seq", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("promote", sa.Text, nullable=False, server_default="if_better"),
    sa.Column("promotion", sa.Text, nullable=False, server_default=""),
    sa.Column("data_note", sa.Text, nullable=False, server_default=""))
sa.Index("jobs_by_retailer", jobs.c.retailer, jobs.c.created_at)
sa.Table(
    "models", baseline,
    sa.Column("retailer", sa.Text, sa.ForeignKey("retailers.retailer"), nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    *(sa.Column(name, sa.Text, nullable=False)
      for name in ("path", "job_id", "dataset_id", "model_kind", "final_model", "data_start",
                   "data_end")),
    sa.Column("horizon", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("manifest", sa.Text, nullable=False, server_default=""),
    sa.Column("promotion", sa.Text, nullable=False, server_default=""),
    sa.PrimaryKeyConstraint("retailer", "version"))
keys = sa.Table(
    "api_keys", baseline,
    sa.Column("key_id", sa.Text, primary_key=True),
    sa.Column("role", sa.Text, nullable=False), sa.Column("retailer", sa.Text),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    sa.Column("salt", sa.LargeBinary, nullable=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False), sa.Column("revoked_at", sa.Float),
    sa.CheckConstraint("role IN ('retailer', 'admin')", name="api_keys_role"),
    sa.CheckConstraint("(role = 'retailer') = (retailer IS NOT NULL)", name="api_keys_retailer"))
sa.Index("api_keys_by_retailer", keys.c.retailer)
sa.Table(
    "served", baseline,
    sa.Column("retailer", sa.Text, nullable=False), sa.Column("version", sa.Text, nullable=False),
    sa.Column("store_nbr", sa.Integer, nullable=False),
    sa.Column("family", sa.Text, nullable=False), sa.Column("day", sa.Integer, nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("forecast", sa.Float, nullable=False), sa.Column("naive", sa.Float),
    sa.PrimaryKeyConstraint("retailer", "version", "store_nbr", "family", "day"),
    sqlite_with_rowid=False)
sa.Table(
    "uploads", baseline,
    sa.Column("retailer", sa.Text, nullable=False),
    sa.Column("uploaded_at", sa.Float, nullable=False),
    *(sa.Column(name, sa.Text, nullable=False) for name in ("report", "version", "dataset_id")))
for name, key in (("live_scores", "step"), ("live_daily", "day")):
    sa.Table(name, baseline,
             sa.Column("retailer", sa.Text, nullable=False),
             sa.Column("version", sa.Text, nullable=False),
             sa.Column(key, sa.Integer, nullable=False),
             sa.Column("scores", sa.Text, nullable=False),
             sa.PrimaryKeyConstraint("retailer", "version", key))
sa.Table("drift", baseline, sa.Column("retailer", sa.Text, primary_key=True),
         sa.Column("checked_at", sa.Float, nullable=False),
         sa.Column("report", sa.Text, nullable=False))


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if inspector.has_table("meta"):       # a registry of the release before: finish its steps
        row = bind.execute(sa.text("SELECT value FROM meta WHERE key = 'schema_version'")).first()
        version = int(row[0]) if row else 1
        while version < LEGACY_VERSION:
            for statement in LEGACY_STEPS[version]:
                bind.execute(sa.text(statement))
            version += 1
    baseline.create_all(bind, checkfirst=True)
    bind.execute(sa.text("DELETE FROM meta WHERE key = 'schema_version'"))
    bind.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_version', :v)"),
                 {"v": str(LEGACY_VERSION)})


def downgrade() -> None:
    baseline.drop_all(op.get_bind())
