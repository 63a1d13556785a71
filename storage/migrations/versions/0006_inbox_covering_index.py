"""inbox: the agency/status index also carries the appointment date (index-only counts)

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INDEX = "ix_dossier_agency_status_activity"
COLUMNS = ["agency_code", "status", "last_activity_at"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no INCLUDE; its index stays as it is
    op.drop_index(INDEX, table_name="dossier")
    op.create_index(INDEX, "dossier", COLUMNS, postgresql_include=["appointment_date", "id"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="dossier")
    op.create_index(INDEX, "dossier", COLUMNS)
