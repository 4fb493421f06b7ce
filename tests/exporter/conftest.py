from __future__ import annotations

import pytest
from scwadd_testing.database import migrated_sessions


@pytest.fixture
def sessions(database_url):
    """Sessions on a database migrated with the service's own Alembic migrations."""
    with migrated_sessions(database_url, "scwadd_exporter.migrations") as sessions:
        yield sessions


@pytest.fixture
def sandbox(tmp_path):
    """The real PG&E-shaped custodian on free ports (mutual TLS on its API face)."""
    from scwadd_sandbox.testing import start_sandbox

    with start_sandbox(tmp_path / "pki") as running:
        yield running


@pytest.fixture
def exporter_port() -> int:
    from scwadd_testing import free_port

    return free_port()
