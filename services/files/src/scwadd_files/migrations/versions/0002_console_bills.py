"""console: the customer's details and bills (from the export's manifest)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("files_console_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_name", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("service_addresses", sa.Text(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("bills_object", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("bills", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files_console_jobs", schema=None) as batch_op:
        batch_op.drop_column("bills")
        batch_op.drop_column("bills_object")
        batch_op.drop_column("service_addresses")
        batch_op.drop_column("customer_name")
