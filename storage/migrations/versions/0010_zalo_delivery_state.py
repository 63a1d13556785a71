"""zalo delivery state: a channel identity can be unreachable (unfollowed), an outbox message
keeps the service's message id and when its delivery receipt came

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 21:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("channelidentity", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unreachable_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_ref", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("receipt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_outboxmessage_sent_ref", ["sent_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outboxmessage", schema=None) as batch_op:
        batch_op.drop_index("ix_outboxmessage_sent_ref")
        batch_op.drop_column("receipt_at")
        batch_op.drop_column("sent_ref")
    with op.batch_alter_table("channelidentity", schema=None) as batch_op:
        batch_op.drop_column("unreachable_at")
