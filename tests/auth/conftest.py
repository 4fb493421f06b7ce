from __future__ import annotations

from collections.abc import Iterator

import pytest
from scwadd_sandbox.testing import RunningSandbox, start_sandbox
from scwadd_testing import free_port
from scwadd_testing.database import migrated_sessions


@pytest.fixture
def sessions(database_url):
    """Sessions on a database migrated with the service's own Alembic migrations."""
    with migrated_sessions(database_url, "scwadd_auth.migrations") as sessions:
        yield sessions


@pytest.fixture
def auth_port() -> int:
    return free_port()


@pytest.fixture
def sandbox(tmp_path, auth_port) -> Iterator[RunningSandbox]:
    """The real PG&E-shaped custodian on free ports, with our callback registered."""
    with start_sandbox(
        tmp_path / "pki", redirect_uri=f"http://127.0.0.1:{auth_port}/OAuthCallback"
    ) as running:
        yield running
