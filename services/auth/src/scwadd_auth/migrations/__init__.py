"""Alembic migrations of the auth tables, run at start by scwadd_core.db.run_migrations."""
