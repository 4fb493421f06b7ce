"""Fixtures every test area may use (defined once in scwadd_testing.fixtures): nats_server,
nats, database_url (SQLite + PostgreSQL), sqlite_url, postgres_database_url, anyio_backend,
chromium (Debian's headless chromium, a playwright async Browser).
Async tests use anyio's pytest plugin: ``pytestmark = pytest.mark.anyio``.
Helpers that need the sandbox as custodian (registration, consent, tokens) are in
``custodian_support`` next to this file, importable from every test area; a webhook receiver
that verifies with the standardwebhooks library in ``webhooks_support``."""

from hypothesis import HealthCheck, settings

pytest_plugins = ["scwadd_testing.fixtures"]

# Hypothesis's per-example deadline measures the machine, not the property: a loaded CI machine
# must not fail a correct test (speed is `make bench`'s job).
settings.register_profile("scwadd", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("scwadd")
