"""A throw-away PostgreSQL schema per test, when a server is reachable."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    """``SCWADD_TEST_POSTGRES_URL``, or the server CI provides."""
    return os.environ.get("SCWADD_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


@cache
def postgres_unavailable_reason() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per test session)."""
    url = postgres_url()
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        where = make_url(url).render_as_string(hide_password=True)
        return f"PostgreSQL not reachable at {where}: not run ({type(error).__name__})"
    finally:
        engine.dispose()
    return None


@contextmanager
def isolated_schema(base_url: str | None = None) -> Iterator[str]:
    """Create a uniquely named schema and yield a URL whose connections use it by default
    (``search_path`` set through libpq ``options``); drop it afterwards."""
    base = make_url(base_url or postgres_url())
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = base.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
