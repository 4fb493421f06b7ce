"""Fixtures every test area may use (defined once in scwadd_core.testing.fixtures): nats_server,
nats, database_url (SQLite + PostgreSQL), sqlite_url, postgres_database_url, anyio_backend,
chromium (Debian's headless chromium, a playwright async Browser).
Async tests use anyio's pytest plugin: ``pytestmark = pytest.mark.anyio``.
Helpers that need the sandbox as custodian (registration, consent, tokens) are in
``custodian_support`` next to this file, importable from every test area; a webhook receiver
that verifies with the standardwebhooks library in ``webhooks_support``."""

pytest_plugins = ["scwadd_core.testing.fixtures"]
