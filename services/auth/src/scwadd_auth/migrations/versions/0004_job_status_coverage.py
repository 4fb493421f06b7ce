"""job status coverage: the period exported, the period requested, the usage points

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("auth_job_status", schema=None) as batch_op:
        batch_op.add_column(sa.Column("covered_start", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("covered_end", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("requested_start", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("requested_end", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("usage_points", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_job_status", schema=None) as batch_op:
        for column in ("usage_points", "requested_end", "requested_start", "covered_end"):
            batch_op.drop_column(column)
        batch_op.drop_column("covered_start")
