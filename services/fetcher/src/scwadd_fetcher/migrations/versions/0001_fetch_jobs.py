"""fetch jobs

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fetch_jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sealed_access_token", sa.Text(), nullable=True),
        sa.Column("sealed_refresh_token", sa.Text(), nullable=True),
        sa.Column("custodian_calls", sa.Integer(), nullable=False),
        sa.Column("outcome_subject", sa.String(128), nullable=True),
        sa.Column("outcome_event", sa.Text(), nullable=True),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_fetch_jobs_status", "fetch_jobs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_fetch_jobs_status", table_name="fetch_jobs")
    op.drop_table("fetch_jobs")
