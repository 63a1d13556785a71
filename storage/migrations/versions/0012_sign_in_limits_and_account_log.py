"""sign-in limits and the account audit log: a session generation per staff account (sign-out
ends the session), fading failed sign-in counts per address and per address + account instead of
a lock on the account, and the account event log

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 00:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staffuser", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.drop_column("failed_logins")
        batch_op.drop_column("locked_until")
    op.create_table(
        "loginthrottle",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wait_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_loginthrottle_updated_at", "loginthrottle", ["updated_at"])
    op.create_table(
        "accountevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("agency_code", sa.String(length=32), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("actor_username", sa.String(length=64), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("details", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staffuser.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_accountevent_agency_id", "accountevent", ["agency_code", "id"])


def downgrade() -> None:
    op.drop_index("ix_accountevent_agency_id", table_name="accountevent")
    op.drop_table("accountevent")
    op.drop_index("ix_loginthrottle_updated_at", table_name="loginthrottle")
    op.drop_table("loginthrottle")
    with op.batch_alter_table("staffuser", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.drop_column("session_generation")
