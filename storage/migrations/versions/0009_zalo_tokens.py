"""zalo tokens: the Official Account's OAuth pair, kept in the database

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "zalotoken",
        sa.Column("oa_id", sa.String(length=32), nullable=False),
        sa.Column("access_token", sa.String(), nullable=False),
        sa.Column("refresh_token", sa.String(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("broken_reason", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("oa_id"),
    )


def downgrade() -> None:
    op.drop_table("zalotoken")
