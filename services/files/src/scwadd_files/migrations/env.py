"""Alembic environment: the shared body from scwadd_core.db."""

from scwadd_core.db import run_alembic_env

from scwadd_files.models import Base

run_alembic_env(Base.metadata)
