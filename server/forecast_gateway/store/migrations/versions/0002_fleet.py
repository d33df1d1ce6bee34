"""The fleet: job leases, request ids and cancel requests, the live-switch counter replicas
poll, and the gateways' heartbeats. `meta.schema_version` becomes 5, so a gateway of the release before
(which reads up to 4) refuses this database instead of writing into it.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("request_id", sa.Text, nullable=False, server_default=""))
    op.add_column("jobs", sa.Column("owner", sa.Text, nullable=False, server_default=""))
    op.add_column("jobs", sa.Column("lease_expires_at", sa.Float))
    op.add_column("jobs", sa.Column("attempts", sa.Integer, nullable=False,
                                    server_default=sa.text("0")))
    op.add_column("jobs", sa.Column("cancel_requested", sa.Integer, nullable=False,
                                    server_default=sa.text("0")))
    op.create_index("jobs_by_request", "jobs", ["retailer", "request_id"], unique=True,
                    sqlite_where=sa.text("request_id != ''"),
                    postgresql_where=sa.text("request_id != ''"))
    op.create_index("jobs_unfinished", "jobs", ["state"])
    op.create_index("uploads_by_retailer", "uploads", ["retailer", "uploaded_at"])
    sequences = op.create_table(
        "sequences", sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False))
    op.bulk_insert(sequences, [{"name": "live", "value": 0}])
    op.create_table(
        "gateways", sa.Column("gateway_id", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False), sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False))
    op.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")


def downgrade() -> None:
    op.drop_table("gateways")
    op.drop_table("sequences")
    op.drop_index("uploads_by_retailer", "uploads")
    op.drop_index("jobs_unfinished", "jobs")
    op.drop_index("jobs_by_request", "jobs")
    for column in ("cancel_requested", "attempts", "lease_expires_at", "owner", "request_id"):
        op.drop_column("jobs", column)
    op.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
