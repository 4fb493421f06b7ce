"""Alembic migrations of the exporter tables, run at start by scwadd_core.db.run_migrations."""
