"""Challengers on live actuals: the version each retailer serves in shadow, a Train's
promote_after rule, and the shadow trial stored on each version that took part. Additive
columns only: a gateway of the release before ignores them (and serves no shadow).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("retailers", sa.Column("shadow_version", sa.Text))
    op.add_column("jobs", sa.Column("promote_after", sa.Text, nullable=False, server_default=""))
    op.add_column("models", sa.Column("trial", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("models", "trial")
    op.drop_column("jobs", "promote_after")
    op.drop_column("retailers", "shadow_version")
