"""Database helpers: one engine per service, SQLite by default and PostgreSQL (psycopg 3) in
production, and Alembic migrations run programmatically at start.

Each service keeps its migrations in a package inside its own code, e.g.
``services/auth/src/scwadd_auth/migrations/`` holding ``__init__.py``, ``script.py.mako``,
``versions/`` and a three-line ``env.py``::

    from scwadd_auth.models import Base
    from scwadd_core.db import run_alembic_env
    run_alembic_env(Base.metadata)

and at start::

    engine = make_engine(settings.DATABASE_URL)
    run_migrations(settings.DATABASE_URL, package="scwadd_auth.migrations")
    Session = session_factory(engine)

A new revision: ``alembic_config(url, "scwadd_auth.migrations")`` with ``alembic.command.revision``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.resources
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, event, text
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

log = logging.getLogger(__name__)

T = TypeVar("T")

# Explicit constraint names keep Alembic migrations identical on SQLite and PostgreSQL: a
# service's ``MetaData(naming_convention=NAMING_CONVENTION)``.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


async def in_transaction(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run ``work`` in one transaction on a worker thread (the database driver blocks; the event
    loop must not); committed if it returns, rolled back if it raises."""

    def run() -> T:
        with sessions.begin() as session:
            return work(session)

    return await asyncio.to_thread(run)


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC, timezone-aware: SQLite hands back naive datetimes for
    ``DateTime(timezone=True)`` columns (every value this project stores is UTC); an aware value
    with another offset (an event's ``occurred_at`` as its sender wrote it) is converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def normalize_url(url: str) -> URL:
    """Accept the URLs operators write (``postgres://``, ``postgresql://``) and pin psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with settings that suit the engine behind it.

    SQLite: the file's directory is created, foreign keys enforced, WAL so readers do not block
    the writer, and a busy timeout so two threads of one service wait instead of failing.
    PostgreSQL: connections are checked before use, so a database restart costs no request.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = sa_create_engine(parsed, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa_create_engine(parsed, **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (handlers return them)."""
    return sessionmaker(engine, expire_on_commit=False)


def database_reachable(engine: Engine) -> bool:
    """For ``/readyz``: a ``SELECT 1`` succeeds."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def wait_for_database(engine: Engine, timeout: float = 60.0) -> None:
    """At start, wait (bounded, with backoff) for a database that may start after us."""
    for attempt in Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_exponential_jitter(multiplier=0.2, max=5.0),
        retry=retry_if_exception_type(OperationalError),
        reraise=True,
    ):
        with attempt, engine.connect() as connection:
            connection.execute(text("SELECT 1"))


def _migrations_directory(package: str) -> str:
    location = importlib.resources.files(package)
    if not location.joinpath("env.py").is_file():
        raise FileNotFoundError(f"{package} has no env.py: it is not an Alembic migrations package")
    return str(location)


def default_version_table(package: str) -> str:
    """``scwadd_auth.migrations`` → ``alembic_version_scwadd_auth``: services never share a
    version table, even if an operator points two of them at one database."""
    return "alembic_version_" + package.split(".")[0]


def alembic_config(url: str, package: str, version_table: str | None = None) -> Any:
    """An Alembic ``Config`` for the migrations package ``package`` (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", _migrations_directory(package))
    # ConfigParser interpolates %; URL-encoded passwords contain it.
    config.set_main_option(
        "sqlalchemy.url",
        normalize_url(url).render_as_string(hide_password=False).replace("%", "%%"),
    )
    config.attributes["version_table"] = version_table or default_version_table(package)
    return config


def _advisory_lock_key(name: str) -> int:
    # pg_advisory_lock takes a signed 64-bit key; derive a stable one from the version table.
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


# PostgreSQL's SQLSTATEs for a database created meanwhile by another replica: duplicate_database,
# or unique_violation on pg_database when both CREATE DATABASEs ran at once.
_CREATED_MEANWHILE = {"42P04", "23505"}


def ensure_database(url: str, *, wait_seconds: float = 60.0) -> bool:
    """Create the PostgreSQL database ``url`` names if it does not exist yet; True if created.

    Connects to the server's ``postgres`` maintenance database with ``url``'s own credentials,
    which must hold CREATEDB (the in-chart PostgreSQL's owner does; a managed database usually
    is created by its operator instead, so callers ask for this only when told to, see
    ``DATABASE_CREATE``). Safe when several replicas run it at once. SQLite and other backends:
    nothing to do (False). Raises :class:`sqlalchemy.exc.SQLAlchemyError` when the server
    cannot be reached within ``wait_seconds`` or refuses the creation.
    """
    from sqlalchemy.exc import DBAPIError

    target = normalize_url(url)
    name = target.database
    if target.get_backend_name() != "postgresql" or not name:
        return False
    maintenance = make_engine(
        target.set(database="postgres").render_as_string(hide_password=False),
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",  # CREATE DATABASE cannot run in a transaction
    )
    try:
        wait_for_database(maintenance, timeout=wait_seconds)
        with maintenance.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if exists is not None:
                return False
            quoted = connection.dialect.identifier_preparer.quote(name)
            try:
                connection.exec_driver_sql(f"CREATE DATABASE {quoted}")
            except DBAPIError as error:
                if getattr(error.orig, "sqlstate", None) in _CREATED_MEANWHILE:
                    return False
                raise
        log.info("created the database", extra={"database": name})
        return True
    finally:
        maintenance.dispose()


def run_migrations(
    url: str,
    package: str,
    *,
    revision: str = "head",
    version_table: str | None = None,
    wait_seconds: float = 60.0,
    create_database: bool = False,
) -> None:
    """Upgrade the database at ``url`` to ``revision`` with the migrations in ``package``.

    Waits (bounded) for the database first; with ``create_database``, creates a missing
    PostgreSQL database first (:func:`ensure_database`). Safe when several replicas or init
    containers run it at once: on PostgreSQL they serialise on an advisory lock named after the
    version table, so the second one finds the schema current and does nothing; on SQLite the
    database file's own write lock does the same.
    """
    from alembic import command

    if create_database:
        ensure_database(url, wait_seconds=wait_seconds)
    config = alembic_config(url, package, version_table)
    engine = make_engine(url, poolclass=NullPool)
    try:
        wait_for_database(engine, timeout=wait_seconds)
        log.info("running database migrations", extra={"migrations": package, "revision": revision})
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            if connection.dialect.name == "postgresql":
                key = _advisory_lock_key(config.attributes["version_table"])
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                connection.commit()
                try:
                    command.upgrade(config, revision)
                finally:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()
            else:
                with _sqlite_migration_lock(normalize_url(url).database):
                    command.upgrade(config, revision)
    finally:
        engine.dispose()


@contextlib.contextmanager
def _sqlite_migration_lock(database: str | None) -> Iterator[None]:
    # SQLite's DDL is not serialised the way PostgreSQL's advisory lock serialises it: two
    # processes would both try to create the version table. A lock file beside the database
    # (SQLite is only ever shared by processes on one host) makes the second one wait.
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    lock_path = Path(database).expanduser().resolve().with_suffix(".migrate.lock")
    with open(lock_path, "a+b") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def run_alembic_env(target_metadata: Any) -> None:
    """The body of every service's ``migrations/env.py``."""
    from alembic import context

    config = context.config
    version_table = config.attributes.get("version_table") or "alembic_version"
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(
            url=url,
            target_metadata=target_metadata,
            literal_binds=True,
            version_table=version_table,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate_with(context, connection, target_metadata, version_table)
        return
    if url is None:
        raise RuntimeError("no database URL: call scwadd_core.db.run_migrations(url, package)")
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _migrate_with(context, connection, target_metadata, version_table)
    finally:
        engine.dispose()


def _migrate_with(context: Any, connection: Any, metadata: Any, version_table: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    if connection.in_transaction():
        connection.commit()
