"""console: rows whose reading had no value (from the export's manifest)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 19:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("files_console_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rows_without_value", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files_console_jobs", schema=None) as batch_op:
        batch_op.drop_column("rows_without_value")
