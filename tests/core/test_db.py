"""Engines, sessions and programmatic Alembic migrations on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from scwadd_core.db import (
    database_reachable,
    ensure_database,
    make_engine,
    normalize_url,
    run_migrations,
    session_factory,
)
from scwadd_testing.example_migrations.models import Note
from scwadd_testing.postgres import postgres_unavailable_reason, postgres_url
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

PACKAGE = "scwadd_testing.example_migrations"


def test_migrations_create_the_tables_and_are_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    run_migrations(database_url, package=PACKAGE)
    run_migrations(database_url, package=PACKAGE)  # every replica runs them at start
    tables = set(inspect(engine).get_table_names())
    assert {"example_notes", "alembic_version_scwadd_testing"} <= tables
    Session = session_factory(engine)
    with Session.begin() as session:
        session.add(Note(job_id="job-1", body="first"))
    with pytest.raises(IntegrityError), Session.begin() as session:
        session.add(Note(job_id="job-1", body="duplicate"))  # the constraint idempotency relies on
    with Session() as session:
        assert session.scalars(select(Note.body)).all() == ["first"]
    assert database_reachable(engine)
    engine.dispose()


def test_a_package_without_env_py_is_refused(sqlite_url: str) -> None:
    with pytest.raises(FileNotFoundError, match="not an Alembic migrations package"):
        run_migrations(sqlite_url, package="scwadd_testing")


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_sqlite_file_directory_is_created(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'service.db'}"
    engine = make_engine(url)
    assert database_reachable(engine)
    assert (tmp_path / "nested" / "dir" / "service.db").exists()
    engine.dispose()


def test_an_unreachable_database_is_reported_not_ready() -> None:
    engine = make_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
    )
    assert database_reachable(engine) is False


def test_concurrent_migrations_from_two_replicas_both_succeed(database_url: str) -> None:
    """The chart's init containers may run the migration at the same moment."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: run_migrations(database_url, package=PACKAGE), range(2)))
    assert results == [None, None]
    engine = make_engine(database_url)
    assert "example_notes" in inspect(engine).get_table_names()
    engine.dispose()


def test_a_missing_postgresql_database_is_created_once_even_by_racing_replicas(
    sqlite_url: str,
) -> None:
    assert ensure_database(sqlite_url) is False  # SQLite: the file is made by connecting
    reason = postgres_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    names = [f"scwadd_t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    urls = [
        make_url(postgres_url()).set(database=name).render_as_string(hide_password=False)
        for name in names
    ]
    admin = create_engine(postgres_url(), isolation_level="AUTOCOMMIT")
    try:
        run_migrations(urls[0], package=PACKAGE, create_database=True)
        engine = make_engine(urls[0])
        assert "example_notes" in inspect(engine).get_table_names()
        engine.dispose()
        assert ensure_database(urls[0]) is False
        # Four init containers at once: one creates it, none fails.
        with ThreadPoolExecutor(4) as pool:
            created = list(pool.map(lambda _: ensure_database(urls[1]), range(4)))
        assert created.count(True) == 1
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
