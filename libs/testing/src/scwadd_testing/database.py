"""A service's own database, migrated the way the service migrates it at start."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from scwadd_core.db import make_engine, run_migrations, session_factory
from sqlalchemy.orm import Session, sessionmaker


@contextmanager
def migrated_sessions(database_url: str, package: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on ``database_url`` after the Alembic migrations in ``package`` have run."""
    run_migrations(database_url, package=package)
    engine = make_engine(database_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()
