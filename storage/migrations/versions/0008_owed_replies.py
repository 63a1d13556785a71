"""owed replies: a dialogue turn's replies (and an event acknowledged before it is handled) are
stored with its delivery until they are sent

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 21:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inboundevent", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recipient", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("payload", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("replies", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("reply_state", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("replies_sent", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("reply_lease_until", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "ix_inboundevent_unfinished",
            ["reply_lease_until"],
            unique=False,
            sqlite_where=sa.text("reply_state IN ('received', 'sending')"),
            postgresql_where=sa.text("reply_state IN ('received', 'sending')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("inboundevent", schema=None) as batch_op:
        batch_op.drop_index("ix_inboundevent_unfinished")
        batch_op.drop_column("reply_lease_until")
        batch_op.drop_column("replies_sent")
        batch_op.drop_column("reply_state")
        batch_op.drop_column("replies")
        batch_op.drop_column("payload")
        batch_op.drop_column("recipient")
