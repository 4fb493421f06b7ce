"""job status failure sentence

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 18:11:29.856028
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("auth_job_status", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failure", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_job_status", schema=None) as batch_op:
        batch_op.drop_column("failure")
