from scwadd_core.db import run_alembic_env

from scwadd_testing.example_migrations.models import Base

run_alembic_env(Base.metadata)
