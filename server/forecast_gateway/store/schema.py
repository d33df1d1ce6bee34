"""The gateway's one schema: registry, API keys, monitoring and the fleet's coordination, as
SQLAlchemy Core tables. The same tables serve SQLite (the embedded default) and PostgreSQL (a
fleet); Alembic's revisions under ``migrations/`` create and change them, and this module is
the head state they reach (``tests/gateway/store/test_store_migrations.py`` compares the two).

Times are epoch seconds (floats); JSON payloads are text. Every table is keyed by retailer
where it holds a retailer's data, so a lookup names the retailer it may see.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)

metadata = MetaData()

#: Key-value facts about the database itself ("schema_version": the pre-Alembic registry's
#: counter, kept so that an older gateway refuses a newer database).
meta = Table(
    "meta", metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

retailers = Table(
    "retailers", metadata,
    Column("retailer", Text, primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("live_version", Text),
    # Revision 0003: the version served in shadow beside the live one (dataplane.shadow_trial).
    Column("shadow_version", Text),
)

datasets = Table(
    "datasets", metadata,
    Column("retailer", Text, ForeignKey("retailers.retailer"), nullable=False),
    Column("dataset_id", Text, nullable=False),
    Column("filename", Text, nullable=False),
    Column("format", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("series", BigInteger, nullable=False),
    Column("start_date", Text, nullable=False),
    Column("end_date", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("retailer", "dataset_id"),
)

jobs = Table(
    "jobs", metadata,
    Column("job_id", Text, primary_key=True),
    Column("retailer", Text, ForeignKey("retailers.retailer"), nullable=False),
    Column("dataset_id", Text, nullable=False),
    Column("model_kind", Text, nullable=False),
    Column("hyperparameters", Text, nullable=False),
    Column("horizon", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("failure_reason", Text, nullable=False, server_default=""),
    Column("model_version", Text, nullable=False, server_default=""),
    Column("stage", Text, nullable=False, server_default=""),
    Column("progress", Float, nullable=False, server_default=text("0")),
    Column("metrics", Text, nullable=False, server_default="{}"),
    Column("seq", Integer, nullable=False, server_default=text("0")),
    Column("promote", Text, nullable=False, server_default="if_better"),
    Column("promotion", Text, nullable=False, server_default=""),
    Column("data_note", Text, nullable=False, server_default=""),
    # The fleet (revision 0002): the caller's request id (a retried Train starts one job), the
    # gateway that runs the job and until when its lease holds, and how often it was claimed.
    Column("request_id", Text, nullable=False, server_default=""),
    Column("owner", Text, nullable=False, server_default=""),
    Column("lease_expires_at", Float),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("cancel_requested", Integer, nullable=False, server_default=text("0")),
    # Revision 0003: a shadow job's promote_after rule (JSON; "" for other policies).
    Column("promote_after", Text, nullable=False, server_default=""),
)
Index("jobs_by_retailer", jobs.c.retailer, jobs.c.created_at)
Index("jobs_by_request", jobs.c.retailer, jobs.c.request_id, unique=True,
      sqlite_where=jobs.c.request_id != "", postgresql_where=jobs.c.request_id != "")
Index("jobs_unfinished", jobs.c.state)

models = Table(
    "models", metadata,
    Column("retailer", Text, ForeignKey("retailers.retailer"), nullable=False),
    Column("version", Text, nullable=False),
    Column("number", Integer, nullable=False),
    Column("path", Text, nullable=False),
    Column("job_id", Text, nullable=False),
    Column("dataset_id", Text, nullable=False),
    Column("model_kind", Text, nullable=False),
    Column("final_model", Text, nullable=False),
    Column("data_start", Text, nullable=False),
    Column("data_end", Text, nullable=False),
    Column("horizon", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("manifest", Text, nullable=False, server_default=""),
    Column("promotion", Text, nullable=False, server_default=""),
    # Revision 0003: the last shadow trial the version took part in (JSON; "" for none).
    Column("trial", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("retailer", "version"),
)

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", Text, primary_key=True),
    Column("role", Text, nullable=False),
    Column("retailer", Text),
    Column("name", Text, nullable=False, server_default=""),
    Column("salt", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    CheckConstraint("role IN ('retailer', 'admin')", name="api_keys_role"),
    CheckConstraint("(role = 'retailer') = (retailer IS NOT NULL)", name="api_keys_retailer"),
)
Index("api_keys_by_retailer", api_keys.c.retailer)

served = Table(
    "served", metadata,
    Column("retailer", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("store_nbr", Integer, nullable=False),
    Column("family", Text, nullable=False),
    Column("day", Integer, nullable=False),
    Column("step", Integer, nullable=False),
    Column("forecast", Float, nullable=False),
    Column("naive", Float),
    PrimaryKeyConstraint("retailer", "version", "store_nbr", "family", "day"),
    sqlite_with_rowid=False,
)

uploads = Table(
    "uploads", metadata,
    Column("retailer", Text, nullable=False),
    Column("uploaded_at", Float, nullable=False),
    Column("report", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("dataset_id", Text, nullable=False),
)
Index("uploads_by_retailer", uploads.c.retailer, uploads.c.uploaded_at)

live_scores = Table(
    "live_scores", metadata,
    Column("retailer", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("step", Integer, nullable=False),
    Column("scores", Text, nullable=False),
    PrimaryKeyConstraint("retailer", "version", "step"),
)

live_daily = Table(
    "live_daily", metadata,
    Column("retailer", Text, nullable=False),
    Column("version", Text, nullable=False),
    Column("day", Integer, nullable=False),
    Column("scores", Text, nullable=False),
    PrimaryKeyConstraint("retailer", "version", "day"),
)

drift = Table(
    "drift", metadata,
    Column("retailer", Text, primary_key=True),
    Column("checked_at", Float, nullable=False),
    Column("report", Text, nullable=False),
)

#: Counters every replica polls cheaply: "live" is bumped by every live-model switch, so a
#: replica reloads its live pointers within one poll of a switch on another.
sequences = Table(
    "sequences", metadata,
    Column("name", Text, primary_key=True),
    Column("value", BigInteger, nullable=False),
)

#: The gateways of a fleet: who is alive (its heartbeat), for leases and for operators.
gateways = Table(
    "gateways", metadata,
    Column("gateway_id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)
