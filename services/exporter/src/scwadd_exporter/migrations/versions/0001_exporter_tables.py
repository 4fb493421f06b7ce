"""exporter tables

Revision ID: 0001
Revises:
Create Date: 2026-11-26 17:26:44.373762
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
        "exporter_exports",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("csv_name", sa.String(length=255), nullable=False),
        sa.Column("manifest_name", sa.String(length=255), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_exporter_exports")),
        sa.UniqueConstraint("csv_name", name=op.f("uq_exporter_exports_csv_name")),
        sa.UniqueConstraint("manifest_name", name=op.f("uq_exporter_exports_manifest_name")),
    )
    op.create_table(
        "exporter_grants",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("subscription_id", sa.String(length=200), nullable=False),
        sa.Column("authorization_uri", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("revoke_attempts", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_exporter_grants")),
    )
    with op.batch_alter_table("exporter_grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exporter_grants_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("exporter_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exporter_grants_state"))

    op.drop_table("exporter_grants")
    op.drop_table("exporter_exports")
