"""outbox: index for web chat mailboxes

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_mailbox", "outboxmessage", ["channel", "recipient", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_mailbox", table_name="outboxmessage")
