"""SCWADD's private test support (the dev group only, never in a service's image): a real
nats-server per test, databases on SQLite and PostgreSQL
(``database.migrated_sessions``), a service run in the test's event loop (``service.serving``),
Debian's headless chromium (``browser``).

The pytest fixtures live in :mod:`scwadd_testing.fixtures` (registered in the root
``tests/conftest.py``); the helpers here are plain code, usable from ``make run`` or a benchmark.
"""

from scwadd_testing.nats import NatsServer, free_port, nats_server_binary

__all__ = ["NatsServer", "free_port", "nats_server_binary"]
