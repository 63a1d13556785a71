"""inbound event age index: old replay-guard rows are deleted by age

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 03:00:00
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inboundevent", schema=None) as batch_op:
        batch_op.create_index("ix_inboundevent_received_at", ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inboundevent", schema=None) as batch_op:
        batch_op.drop_index("ix_inboundevent_received_at")
