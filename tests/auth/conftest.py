from __future__ import annotations

import pytest
from scwadd_core.db import make_engine, run_migrations, session_factory


@pytest.fixture
def sessions(database_url):
    """Sessions on a database migrated with the service's own Alembic migrations."""
    run_migrations(database_url, package="scwadd_auth.migrations")
    engine = make_engine(database_url)
    yield session_factory(engine)
    engine.dispose()
