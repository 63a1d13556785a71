"""the staff Telegram bot: accounts bound to Telegram users, one-time link tokens, and what each
inline button means

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 01:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stafftelegram",
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("waiting", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["staff_user_id"], ["staffuser.id"]),
        sa.PrimaryKeyConstraint("staff_user_id"),
        sa.UniqueConstraint("telegram_user_id"),
    )
    op.create_table(
        "stafflinktoken",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["staff_user_id"], ["staffuser.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index("ix_stafflinktoken_staff_user_id", "stafflinktoken", ["staff_user_id"])
    op.create_table(
        "staffbutton",
        sa.Column("key", sa.String(length=24), nullable=False),
        sa.Column("staff_user_id", sa.Integer(), nullable=False),
        sa.Column("dossier_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["staff_user_id"], ["staffuser.id"]),
        sa.ForeignKeyConstraint(["dossier_id"], ["dossier.id"]),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_staffbutton_staff_user_id", "staffbutton", ["staff_user_id"])


def downgrade() -> None:
    op.drop_index("ix_staffbutton_staff_user_id", "staffbutton")
    op.drop_table("staffbutton")
    op.drop_index("ix_stafflinktoken_staff_user_id", "stafflinktoken")
    op.drop_table("stafflinktoken")
    op.drop_table("stafftelegram")
