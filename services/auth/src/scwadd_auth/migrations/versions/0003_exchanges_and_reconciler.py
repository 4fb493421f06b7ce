"""exchange outbox, leases, custodian authorizations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 11:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_exchanges",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("status_id", sa.String(length=64), nullable=False),
        sa.Column("sealed_code", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_auth_exchanges")),
        sa.UniqueConstraint("status_id", name=op.f("uq_auth_exchanges_status_id")),
    )
    op.create_table(
        "auth_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_auth_leases")),
    )
    op.create_table(
        "auth_custodian_authorizations",
        sa.Column("authorization_uri", sa.String(length=512), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("authorization_uri", name=op.f("pk_auth_custodian_authorizations")),
    )
    with op.batch_alter_table("auth_job_status", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exchange", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_job_status", schema=None) as batch_op:
        batch_op.drop_column("exchange")
    op.drop_table("auth_custodian_authorizations")
    op.drop_table("auth_leases")
    op.drop_table("auth_exchanges")
