"""sms subscriptions: phones that asked by SMS ("DK <code>") for a dossier's status pushes

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 01:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "smssubscription",
        sa.Column("dossier_id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dossier_id"], ["dossier.id"]),
        sa.PrimaryKeyConstraint("dossier_id", "phone"),
    )


def downgrade() -> None:
    op.drop_table("smssubscription")
