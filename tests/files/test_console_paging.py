"""Paging that stays fast with 10,000 jobs, shown by behaviour: every page is a keyset walk of an
index (no OFFSET, no sort of the whole table), and walking all pages yields every job once, in
order, whatever the filter."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from scwadd_core.db import make_engine, session_factory
from scwadd_files.ledger import Console, JobQuery, page_statement
from scwadd_files.models import ConsoleJob
from scwadd_files.runtime import migrate
from scwadd_files.settings import Settings
from sqlalchemy import insert, text

pytestmark = pytest.mark.anyio
JOBS = 10_000
STATES = ("exported", "exported", "exported", "failed", "waiting")


def fill(database_url: str) -> Console:
    migrate(Settings(NATS_URL="nats://unused:4222", DATABASE_URL=database_url, HTPASSWD="x"))
    engine = make_engine(database_url)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "job_id": f"job-{n:05d}",
            "subscription_id": f"SUB{n % 997:04d}",
            # Several jobs share a consent second: the job id breaks the tie.
            "received_at": base + timedelta(seconds=n // 3),
            "updated_at": base,
            "state": STATES[n % len(STATES)],
            "grant_state": "flagged" if n % 101 == 0 else "revoked",
            "raw_objects": "[]",
            "usage_points": "[]",
            "services": "electricity",
            "delivered_sort": float(n % 500),
            "search_text": f"job-{n:05d} sub{n % 997:04d}",
        }
        for n in range(JOBS)
    ]
    with engine.begin() as connection:
        connection.execute(insert(ConsoleJob), rows)
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE files_console_jobs"))
    return Console(None, session_factory(engine))  # type: ignore[arg-type]


async def walk(console: Console, query: JobQuery) -> list[ConsoleJob]:
    seen: list[ConsoleJob] = []
    while True:
        page = await console.page(query)
        seen.extend(page.jobs)
        if page.next_cursor is None:
            return seen
        assert len(page.jobs) == query.limit
        query = JobQuery(**{**query.__dict__, "after": page.next_cursor})


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (JobQuery(limit=200), JOBS),
        (JobQuery(limit=200, sort="subscription", descending=False), JOBS),
        (JobQuery(limit=150, sort="delivered"), JOBS),
        (JobQuery(limit=100, state="failed"), JOBS // 5),
        (JobQuery(limit=100, grant="flagged", descending=False), len(range(0, JOBS, 101))),
        (JobQuery(limit=50, q="sub0007"), len([n for n in range(JOBS) if n % 997 == 7])),
    ],
    ids=["newest", "subscription", "delivered", "failed", "flagged", "search"],
)
async def test_every_job_once_in_order(database_url: str, query: JobQuery, expected: int) -> None:
    console = fill(database_url)
    jobs = await walk(console, query)
    ids = [j.job_id for j in jobs]
    assert len(ids) == len(set(ids)) == expected
    column = {"received": "received_at", "subscription": "subscription_id"}.get(
        query.sort, "delivered_sort"
    )
    keys = [(getattr(j, column), j.job_id) for j in jobs]
    assert keys == sorted(keys, reverse=query.descending)
    assert (await console.page(query)).total == expected


async def test_a_deep_page_walks_an_index_without_sorting(sqlite_url: str) -> None:
    """SQLite's plan for page 40 of each order: an index search, no temporary sort B-tree (the
    database reads limit + 1 rows from the cursor on, not the 8,000 before it)."""
    console = fill(sqlite_url)
    for query in (
        JobQuery(limit=200),
        JobQuery(limit=200, sort="subscription", descending=False),
        JobQuery(limit=200, sort="delivered"),
        JobQuery(limit=200, state="failed"),
    ):
        page = await console.page(query)
        for _ in range(8):
            page = await console.page(JobQuery(**{**query.__dict__, "after": page.next_cursor}))
        deep = JobQuery(**{**query.__dict__, "after": page.next_cursor})
        statement = page_statement(deep).compile(
            dialect=console.sessions.kw["bind"].dialect, compile_kwargs={"literal_binds": True}
        )
        with console.sessions() as session:
            plan = " | ".join(
                row[-1] for row in session.execute(text(f"EXPLAIN QUERY PLAN {statement}"))
            )
        assert "USING INDEX ix_files_console_jobs_" in plan or "USING COVERING INDEX" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
        # SQLite spells a bare LIMIT "LIMIT n OFFSET 0": nothing is skipped row by row.
        assert re.search(r"OFFSET [1-9]", str(statement).upper()) is None
