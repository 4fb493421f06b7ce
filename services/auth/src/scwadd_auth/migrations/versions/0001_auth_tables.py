"""auth tables

Revision ID: 0001
Revises:
Create Date: 2026-11-26 17:26:40.443812
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
        "auth_grants",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("status_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("subscription_id", sa.String(length=200), nullable=False),
        sa.Column("resource_uri", sa.Text(), nullable=False),
        sa.Column("authorization_uri", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("event_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("publish_attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_auth_grants")),
        sa.UniqueConstraint("event_id", name=op.f("uq_auth_grants_event_id")),
        sa.UniqueConstraint("status_id", name=op.f("uq_auth_grants_status_id")),
    )
    op.create_table(
        "auth_job_status",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("status_id", sa.String(length=64), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("export_rows", sa.Integer(), nullable=True),
        sa.Column("revocation", sa.String(length=32), nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_auth_job_status")),
        sa.UniqueConstraint("status_id", name=op.f("uq_auth_job_status_status_id")),
    )
    op.create_table(
        "auth_oauth_states",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("status_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_auth_oauth_states")),
    )


def downgrade() -> None:
    op.drop_table("auth_oauth_states")
    op.drop_table("auth_job_status")
    op.drop_table("auth_grants")
